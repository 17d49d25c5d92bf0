"""Socomec COUNTIS E27/E28 energy meters over Modbus TCP, natively (no MQTT needed)."""

from __future__ import annotations

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant

from countis.client import MeterClient
from countis.session import MeterSession

from .coordinator import (
    CountisConfigEntry,
    CountisCoordinator,
    CountisRuntimeData,
    PartialStore,
    meter_config,
)

PLATFORMS = [Platform.BUTTON, Platform.SELECT, Platform.SENSOR]


async def async_setup_entry(hass: HomeAssistant, entry: CountisConfigEntry) -> bool:
    """Identify the meter and read it once (through its session), then add the entities."""
    config = meter_config(entry)
    client = MeterClient(config.host, config.port, config.unit, config.timeout)
    store = PartialStore(hass)
    session = MeterSession(config, client, store=store)
    coordinator = CountisCoordinator(hass, entry, session)
    try:
        # Another meter at the address fails this (ConfigEntryNotReady, and a repair issue).
        await coordinator.async_config_entry_first_refresh()
    except BaseException:
        client.close()
        raise
    entry.runtime_data = CountisRuntimeData(coordinator=coordinator, store=store)
    entry.async_on_unload(client.close)
    entry.async_on_unload(entry.add_update_listener(_async_options_updated))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def _async_options_updated(hass: HomeAssistant, entry: CountisConfigEntry) -> None:
    """New intervals or command setting: reload (entities for commands come and go)."""
    hass.config_entries.async_schedule_reload(entry.entry_id)


async def async_unload_entry(hass: HomeAssistant, entry: CountisConfigEntry) -> bool:
    """Remove the entities, keep the partial-meter state, close the connection."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        await entry.runtime_data.store.async_flush()
    return unloaded
