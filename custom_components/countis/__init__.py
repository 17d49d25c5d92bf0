"""Socomec COUNTIS E27/E28 energy meters over Modbus TCP, natively (no MQTT needed)."""

from __future__ import annotations

from homeassistant.const import CONF_HOST, CONF_PORT, Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryNotReady
from homeassistant.helpers.storage import Store

from countis.client import MeterClient
from countis.errors import MeterError
from countis.models import MeterIdentity
from countis.partial import PartialMeter, PartialStateError

from . import const
from .const import CONF_UNIT, DOMAIN, LOGGER, STORAGE_VERSION, storage_key
from .coordinator import (
    CountisConfigEntry,
    CountisCoordinator,
    CountisRuntimeData,
    PartialStore,
    translate_error,
    where,
)

PLATFORMS = [Platform.BUTTON, Platform.SELECT, Platform.SENSOR]


async def _identify(entry: CountisConfigEntry, client: MeterClient) -> MeterIdentity:
    """The meter's identity; it must still be the meter this entry was made for."""
    try:
        identity = await client.identify()
    except MeterError as err:
        raise translate_error(ConfigEntryNotReady, err, entry) from err
    if entry.unique_id and identity.serial_number != entry.unique_id:
        # Another meter now answers at this address (DHCP shuffle): wait for ours.
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="wrong_meter",
            translation_placeholders={
                **where(entry),
                "found": identity.serial_number,
                "expected": entry.unique_id,
            },
        )
    return identity


async def _load_partial(store: PartialStore) -> PartialMeter:
    data = await store.async_load()
    if data is None:
        return PartialMeter()
    try:
        return PartialMeter.from_dict(data)
    except PartialStateError as err:
        LOGGER.warning("Ignoring the stored partial-meter state: %s", err)
        return PartialMeter()


async def async_setup_entry(hass: HomeAssistant, entry: CountisConfigEntry) -> bool:
    """Connect, identify the meter, read it once, then add the entities."""
    client = MeterClient(
        entry.data[CONF_HOST],
        port=entry.data[CONF_PORT],
        unit=entry.data[CONF_UNIT],
        timeout=const.TIMEOUT,
    )
    try:
        identity = await _identify(entry, client)
        store: PartialStore = Store(hass, STORAGE_VERSION, storage_key(identity.serial_number))
        partial = await _load_partial(store)
        coordinator = CountisCoordinator(
            hass, entry, client=client, identity=identity, store=store, partial=partial
        )
        await coordinator.async_config_entry_first_refresh()
    except BaseException:
        client.close()
        raise
    entry.runtime_data = CountisRuntimeData(
        client=client, identity=identity, coordinator=coordinator, options=dict(entry.options)
    )
    entry.async_on_unload(client.close)
    entry.async_on_unload(entry.add_update_listener(_async_options_updated))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def _async_options_updated(hass: HomeAssistant, entry: CountisConfigEntry) -> None:
    """New intervals or command setting: reload (entities for commands come and go).

    Data changes (reconfigure) reload through the flow already.
    """
    if entry.options != entry.runtime_data.options:
        hass.config_entries.async_schedule_reload(entry.entry_id)


async def async_unload_entry(hass: HomeAssistant, entry: CountisConfigEntry) -> bool:
    """Remove the entities, keep the partial-meter state, close the connection."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        await entry.runtime_data.coordinator.async_save_partial()
    return unloaded
