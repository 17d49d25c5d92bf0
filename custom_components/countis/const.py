"""Constants of the Socomec COUNTIS integration."""

from __future__ import annotations

import logging
from typing import Final

DOMAIN: Final = "countis"
LOGGER = logging.getLogger(__package__)
MANUFACTURER: Final = "Socomec"

CONF_UNIT: Final = "unit"
CONF_REALTIME_INTERVAL: Final = "realtime_interval"
CONF_ENERGY_INTERVAL: Final = "energy_interval"
CONF_COMMANDS: Final = "commands"

DEFAULT_PORT: Final = 502
# The E27/E28 factory Modbus address (manual: "Modbus address 5").
DEFAULT_UNIT: Final = 5
DEFAULT_REALTIME_INTERVAL: Final = 2.0
DEFAULT_ENERGY_INTERVAL: Final = 10.0
DEFAULT_COMMANDS: Final = True
# One Modbus request round trip; a meter on the LAN answers in a few milliseconds.
TIMEOUT: Final = 3.0

MIN_INTERVAL: Final = 1.0
MAX_INTERVAL: Final = 3600.0

#: Partial start/stop state lives in the bridge, not in the meter: persisted per meter.
STORAGE_VERSION: Final = 1


def storage_key(serial: str) -> str:
    """Storage key of the partial-meter state of one meter."""
    return f"{DOMAIN}.{serial}.partial"
