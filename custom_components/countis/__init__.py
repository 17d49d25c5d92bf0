"""Socomec COUNTIS E27/E28 energy meters over Modbus TCP, natively (no MQTT needed)."""

from __future__ import annotations

from homeassistant.const import Platform
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers.event import async_track_state_change_event

from countis.client import MeterClient
from countis.session import MeterSession
from countis.tariff_plan import Signal

from .coordinator import (
    CountisConfigEntry,
    CountisCoordinator,
    CountisRuntimeData,
    HomeAssistantClock,
    PartialStore,
    meter_config,
)

PLATFORMS = [Platform.BUTTON, Platform.SELECT, Platform.SENSOR]


async def async_setup_entry(hass: HomeAssistant, entry: CountisConfigEntry) -> bool:
    """Identify the meter and read it once (through its session), then add the entities."""
    config = meter_config(entry)
    client = MeterClient.for_meter(config)
    store = PartialStore(hass)
    session = MeterSession(config, client, clock=HomeAssistantClock(), store=store)
    coordinator = CountisCoordinator(hass, entry, session)
    try:
        # Another meter at the address fails this (ConfigEntryNotReady, and a repair issue).
        await coordinator.async_config_entry_first_refresh()
    except BaseException:
        client.close()
        raise
    entry.runtime_data = CountisRuntimeData(coordinator=coordinator, store=store)
    entry.async_on_unload(client.close)
    if isinstance(config.tariff_plan, Signal):
        _follow_entity(hass, entry, coordinator, config.tariff_plan.topic)
    # Options reload the entry through the options flow (OptionsFlowWithReload).
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


def _follow_entity(
    hass: HomeAssistant, entry: CountisConfigEntry, coordinator: CountisCoordinator, entity_id: str
) -> None:
    """The tariff plan follows an entity: its current state, then every change."""

    @callback
    def changed(event: Event[EventStateChangedData]) -> None:
        new = event.data["new_state"]
        if new is not None:
            coordinator.tariff_signal(new.state)

    if (state := hass.states.get(entity_id)) is not None:
        coordinator.tariff_signal(state.state)
    entry.async_on_unload(async_track_state_change_event(hass, [entity_id], changed))


async def async_unload_entry(hass: HomeAssistant, entry: CountisConfigEntry) -> bool:
    """Remove the entities, keep the partial-meter state, close the connection."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        await entry.runtime_data.store.async_flush()
    return unloaded
