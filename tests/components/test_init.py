"""Setup, retry, unload/reload and the poll schedule."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_HOST, CONF_PORT, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from countis.client import MeterClient
from countis.config import DEFAULT_ENERGY_INTERVAL, DEFAULT_REALTIME_INTERVAL
from countis_bridge.emulator import EmulatedMeter, EmulatorServer, ManualClock
from custom_components.countis.config_flow import DEFAULT_OPTIONS
from custom_components.countis.const import (
    CONF_UNIT,
    DOMAIN,
    storage_key,
)

from .conftest import SERIAL
from .helpers import number, poll, state_of


async def test_unload_and_reload(
    hass: HomeAssistant, init_integration: MockConfigEntry, meter: EmulatedMeter
) -> None:
    entry = init_integration
    assert entry.state is ConfigEntryState.LOADED
    client = entry.runtime_data.coordinator.session.link
    assert isinstance(client, MeterClient)
    assert client.connected
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED
    assert not client.connected
    assert state_of(hass, "sensor", "energy_import") == STATE_UNAVAILABLE
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert number(hass, "energy_import") == meter.values()["energy_import"]


async def test_meter_offline_at_setup_retries(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry, free_port: int
) -> None:
    entry = mock_config_entry
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(entry, data={**entry.data, CONF_PORT: free_port})
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert entry.reason is not None
    assert entry.reason.startswith(f"Cannot connect to the meter at 127.0.0.1:{free_port}")


async def test_meter_silent_at_setup_retries(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry, meter: EmulatedMeter
) -> None:
    meter.faults.no_answer(True)
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_config_entry.state is ConfigEntryState.SETUP_RETRY
    assert mock_config_entry.reason is not None
    assert "did not answer in time" in mock_config_entry.reason


async def test_other_meter_at_address_retries(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    """The address now answers with another serial (DHCP): never mix two meters' data."""
    entry = mock_config_entry
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(entry, unique_id="21170A0100099")
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert entry.reason is not None
    assert "has serial number 21170A0100042, expected 21170A0100099" in entry.reason


async def test_energy_read_on_its_own_interval(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    meter: EmulatedMeter,
    clock: ManualClock,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Realtime values every realtime tick, energy counters only every energy interval."""
    coordinator = init_integration.runtime_data.coordinator
    assert coordinator.update_interval == timedelta(seconds=DEFAULT_REALTIME_INTERVAL)
    energy_before = number(hass, "energy_import")
    clock.advance(30)
    meter.set_tariff(2)  # the tariff sensor belongs to the energy group

    async def tick() -> None:
        freezer.tick(timedelta(seconds=DEFAULT_REALTIME_INTERVAL))
        async_fire_time_changed(hass)
        await hass.async_block_till_done(wait_background_tasks=True)

    ticks = int(DEFAULT_ENERGY_INTERVAL / DEFAULT_REALTIME_INTERVAL)
    for _ in range(ticks - 1):
        await tick()
        assert number(hass, "energy_import") == energy_before
        assert state_of(hass, "sensor", "tariff") == "1"
    await tick()
    assert number(hass, "energy_import") == meter.values()["energy_import"] > energy_before
    assert state_of(hass, "sensor", "tariff") == "2"


async def test_partial_state_saved_while_polling(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    init_integration: MockConfigEntry,
    meter: EmulatedMeter,
    freezer: FrozenDateTimeFactory,
) -> None:
    """The last raw partial values reach storage about every minute, not only on stop."""
    key = storage_key(SERIAL)
    assert key not in hass_storage
    for _ in range(int(70 / DEFAULT_REALTIME_INTERVAL)):
        freezer.tick(timedelta(seconds=DEFAULT_REALTIME_INTERVAL))
        async_fire_time_changed(hass)
        await hass.async_block_till_done(wait_background_tasks=True)
    saved = hass_storage[key]["data"]
    assert saved["running"] is True
    assert saved["last_raw"]["partial_energy_import"] == meter.values()["partial_energy_import"]


async def test_another_meter_at_the_address_makes_the_entities_unavailable_and_raises_a_repair(
    hass: HomeAssistant, issue_registry: ir.IssueRegistry, clock: ManualClock
) -> None:
    """DHCP gives our meter's address to another meter while Home Assistant runs."""
    ours = EmulatedMeter(model="E28", serial=SERIAL, unit_id=5, profile="constant", clock=clock)
    other = EmulatedMeter(model="E27", serial="21170A0100099", unit_id=5, profile="constant")
    async with EmulatorServer([ours], host="127.0.0.1", port=0) as server:
        port = server.ports[0]
        entry = MockConfigEntry(
            domain=DOMAIN,
            title=f"COUNTIS E28 {SERIAL}",
            unique_id=SERIAL,
            data={CONF_HOST: "127.0.0.1", CONF_PORT: port, CONF_UNIT: 5},
            options=dict(DEFAULT_OPTIONS),
        )
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        before = number(hass, "energy_import")
    issue_id = f"wrong_meter_{entry.entry_id}"
    async with EmulatorServer([other], host="127.0.0.1", port=port):
        for _ in range(2):
            await poll(hass)
        assert state_of(hass, "sensor", "energy_import") == STATE_UNAVAILABLE
        issue = issue_registry.async_get_issue(DOMAIN, issue_id)
        assert issue is not None
        assert issue.translation_placeholders is not None
        assert issue.translation_placeholders["found"] == "21170A0100099"
        assert issue.translation_placeholders["expected"] == SERIAL
        session = entry.runtime_data.coordinator.session
        assert session.guard.last("energy_import") == before  # nothing of the other meter
        assert session.identity is not None
        assert session.identity.serial_number == SERIAL
    async with EmulatorServer([ours], host="127.0.0.1", port=port):
        for _ in range(2):
            await poll(hass)
        assert number(hass, "energy_import") == ours.values()["energy_import"]
        assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
        await hass.config_entries.async_unload(entry.entry_id)
