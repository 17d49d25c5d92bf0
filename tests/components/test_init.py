"""Setup, retry, unload/reload and the poll schedule."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_PORT, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from countis.config import DEFAULT_ENERGY_INTERVAL, DEFAULT_REALTIME_INTERVAL
from countis_bridge.emulator import EmulatedMeter, ManualClock
from custom_components.countis.const import (
    storage_key,
)

from .conftest import SERIAL
from .helpers import number, state_of


async def test_unload_and_reload(
    hass: HomeAssistant, init_integration: MockConfigEntry, meter: EmulatedMeter
) -> None:
    entry = init_integration
    assert entry.state is ConfigEntryState.LOADED
    client = entry.runtime_data.client
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
