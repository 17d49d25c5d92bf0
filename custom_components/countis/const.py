"""Constants of the Socomec COUNTIS integration."""

from __future__ import annotations

import logging
from typing import Final

from countis.config import DEFAULT_TIMEOUT

DOMAIN: Final = "countis"
LOGGER = logging.getLogger(__package__)
MANUFACTURER: Final = "Socomec"

CONF_UNIT: Final = "unit"
CONF_REALTIME_INTERVAL: Final = "realtime_interval"
CONF_ENERGY_INTERVAL: Final = "energy_interval"
CONF_COMMANDS: Final = "commands"
CONF_TARIFF_MODE: Final = "tariff_mode"
CONF_TARIFF_PLAN: Final = "tariff_plan"  # the plan, as countis.tariff_plan_parse writes it

TARIFF_MODES: Final = ("none", "schedule", "entity")

DEFAULT_COMMANDS: Final = True
# One Modbus request round trip (the library's default; tests shorten it).
TIMEOUT: float = DEFAULT_TIMEOUT

# The options form offers a practical range inside the library's limits.
MIN_INTERVAL: Final = 1.0
MAX_INTERVAL: Final = 3600.0

#: Partial start/stop state lives in the bridge, not in the meter: persisted per meter.
STORAGE_VERSION: Final = 1


def storage_key(serial: str) -> str:
    """Storage key of the partial-meter state of one meter."""
    return f"{DOMAIN}.{serial}.partial"
