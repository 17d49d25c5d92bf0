"""The energy dashboard accepts the energy sensors (recorder running)."""

from __future__ import annotations

import pytest
from homeassistant.components.energy import data as energy_data
from homeassistant.components.energy.validate import async_validate
from homeassistant.const import MAJOR_VERSION, MINOR_VERSION
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from countis.presentation import SENSORS
from tests.ha_energy import grid_sources, unified_grid

from .helpers import entity_id


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(
    recorder_mock: object, enable_custom_integrations: None
) -> None:
    """The recorder must be set up before the hass fixture: ask for it first."""


async def test_energy_dashboard_validation(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Every enabled energy sensor is accepted by the energy dashboard."""
    assert await async_setup_component(hass, "energy", {})
    energy = [s for s in SENSORS if s.device_class == "energy" and s.enabled_by_default]
    imports = [entity_id(hass, "sensor", s.key) for s in energy if "export" not in s.key]
    exports = [entity_id(hass, "sensor", s.key) for s in energy if "export" in s.key]
    assert len(imports) >= 4
    assert len(exports) >= 4
    unified = unified_grid((MAJOR_VERSION, MINOR_VERSION))
    # The signed power sensor joins the grid from 2026.3 on (grid connections).
    power = entity_id(hass, "sensor", "power") if unified else None
    # What energy/save_prefs would store: its schema first, then the manager.
    sources = energy_data.ENERGY_SOURCE_SCHEMA(
        grid_sources(imports, exports, power, unified=unified)
    )
    manager = await energy_data.async_get_manager(hass)
    await manager.async_update({"energy_sources": sources})
    await hass.async_block_till_done()
    result = (await async_validate(hass)).as_dict()
    issues = [issue for source in result["energy_sources"] for issue in source]
    assert {issue["type"] for issue in issues} <= {"statistics_not_defined"}
    flagged = {eid for issue in issues for eid in issue["affected_entities"]}
    assert {eid for eid, _ in flagged} == set(imports) | set(exports) | ({power} - {None})
