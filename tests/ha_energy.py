"""The energy dashboard's grid configuration for the meter's counters, per HA release.

Home Assistant 2026.3 replaced the grid source (one ``{"type": "grid", "flow_from": [...],
"flow_to": [...]}`` with lists of import and export counters) by grid *connections*: one
source per import/export pair, each with an optional power sensor (``stat_rate``, or
``power_config``). ``energy/save_prefs`` rejects the old form since ("not a valid option at
'energy_sources[0].flow_from'"); stored old prefs are migrated by pairing the lists by
position, and so does this module. Pure: no Home Assistant import (the e2e tests run it in
the test process, Home Assistant in another).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import zip_longest
from typing import Any

UNIFIED_GRID_SINCE = (2026, 3)


def unified_grid(version: str | tuple[int, int]) -> bool:
    """Whether Home Assistant ``version`` ("2026.11.0" or (2026, 11)) has grid connections."""
    if isinstance(version, str):
        year, month = version.split(".")[:2]
        version = (int(year), int(month))
    return version >= UNIFIED_GRID_SINCE


def grid_sources(
    imports: Sequence[str],
    exports: Sequence[str],
    power: str | None = None,
    *,
    unified: bool,
) -> list[dict[str, Any]]:
    """``energy_sources`` for ``energy/save_prefs``: the counters as grid import/export.

    ``power``: a signed power sensor, positive while importing (Home Assistant's standard
    orientation), on the first connection; only with ``unified`` (2026.3+).
    """
    if not unified:
        if power is not None:
            raise ValueError("a grid power sensor needs Home Assistant 2026.3+")
        return [
            {
                "type": "grid",
                "flow_from": [
                    {"stat_energy_from": e, "stat_cost": None, "entity_energy_price": None,
                     "number_energy_price": None}
                    for e in imports
                ],
                "flow_to": [
                    {"stat_energy_to": e, "stat_compensation": None,
                     "entity_energy_price": None, "number_energy_price": None}
                    for e in exports
                ],
                "cost_adjustment_day": 0,
            }
        ]  # fmt: skip
    sources: list[dict[str, Any]] = []
    for index, (imported, exported) in enumerate(zip_longest(imports, exports)):
        source: dict[str, Any] = {
            "type": "grid",
            "stat_energy_from": imported,
            "stat_energy_to": exported,
            "stat_cost": None,
            "entity_energy_price": None,
            "number_energy_price": None,
            "stat_compensation": None,
            "entity_energy_price_export": None,
            "number_energy_price_export": None,
            "cost_adjustment_day": 0,
        }
        if power is not None and index == 0:
            source["power_config"] = {"stat_rate": power}
        sources.append(source)
    return sources
