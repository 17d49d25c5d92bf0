"""The shared table of scripted readings through Home Assistant's coordinator.

tests/unit/test_scripted_poller.py runs the same table through the daemon's poller: both
front ends must show exactly the values the table expects. The session runs on the
scripted meter and a manual clock; entities show what the coordinator holds.
"""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers.update_coordinator import UpdateFailed
from pytest_homeassistant_custom_component.common import MockConfigEntry

from countis.config import MeterConfig
from countis.session import MeterSession
from custom_components.countis.coordinator import CountisCoordinator
from tests.scripted import ENERGY_S, REALTIME_S, STEPS, ManualClock, ScriptedMeter, replay


async def test_the_scripted_table_through_the_coordinator(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    mock_config_entry.add_to_hass(hass)
    meter, clock = ScriptedMeter(), ManualClock()
    config = MeterConfig(
        host="127.0.0.1",
        serial=mock_config_entry.unique_id,
        realtime_interval=REALTIME_S,
        energy_interval=ENERGY_S,
        offline_after=1,
    )
    session = MeterSession(config, meter, clock=clock, start=clock.now)
    coordinator = CountisCoordinator(hass, mock_config_entry, session)
    for step in STEPS:
        replay(meter, clock, step)
        try:
            coordinator.data = await coordinator._async_update_data()
        except UpdateFailed:
            assert step.fault is not None, step.note
        else:
            assert step.fault is None, step.note
        shown = {key: coordinator.data.values[key] for key in step.expect}
        assert shown == dict(step.expect), step.note
        if step.fault is None:
            assert coordinator.data.timestamp == clock.now, step.note
