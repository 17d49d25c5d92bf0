"""The energy dashboard accepts the energy sensors (recorder running)."""

from __future__ import annotations

import pytest
from homeassistant.components.energy import data as energy_data
from homeassistant.components.energy.validate import async_validate
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from countis.presentation import SENSORS

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
    manager = await energy_data.async_get_manager(hass)
    await manager.async_update(
        {
            "energy_sources": [
                {
                    "type": "grid",
                    "flow_from": [
                        {
                            "stat_energy_from": eid,
                            "stat_cost": None,
                            "entity_energy_price": None,
                            "number_energy_price": None,
                        }
                        for eid in imports
                    ],
                    "flow_to": [
                        {
                            "stat_energy_to": eid,
                            "stat_compensation": None,
                            "entity_energy_price": None,
                            "number_energy_price": None,
                        }
                        for eid in exports
                    ],
                    "cost_adjustment_day": 0,
                }
            ]
        }
    )
    await hass.async_block_till_done()
    result = (await async_validate(hass)).as_dict()
    issues = [issue for source in result["energy_sources"] for issue in source]
    assert {issue["type"] for issue in issues} <= {"statistics_not_defined"}
    flagged = {eid for issue in issues for eid in issue["affected_entities"]}
    assert {eid for eid, _ in flagged} == set(imports) | set(exports)
