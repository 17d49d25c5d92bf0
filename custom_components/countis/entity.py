"""Base entity: one device per meter, unique ids shared with the MQTT bridge."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import CONF_HOST, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from countis.presentation import unique_id

from .const import DOMAIN, MANUFACTURER
from .coordinator import CountisCoordinator


def device_info(coordinator: CountisCoordinator) -> DeviceInfo:
    """The meter as a device: identified by its serial number, not by its address."""
    identity = coordinator.identity
    host = coordinator.config_entry.data[CONF_HOST]
    url_host = f"[{host}]" if ":" in host else host
    return DeviceInfo(
        identifiers={(DOMAIN, identity.serial_number)},
        manufacturer=MANUFACTURER,
        model=identity.name,
        model_id=identity.model,
        # E28 (and E24) are the MID-certified variants; the meter says so at 0x9E61.
        hw_version="MID" if identity.mid else None,
        name=coordinator.config_entry.title,
        serial_number=identity.serial_number,
        sw_version=identity.firmware_version,
        configuration_url=f"http://{url_host}/",
    )


class CountisEntity(CoordinatorEntity[CountisCoordinator]):
    """An entity of one meter."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: CountisCoordinator, description: EntityDescription) -> None:
        """Bind the description and derive unique id and device from the meter."""
        super().__init__(coordinator)
        self.entity_description = description
        # The same unique id the MQTT bridge announces for this value.
        self._attr_unique_id = unique_id(coordinator.identity.serial_number, description.key)
        self._attr_device_info = device_info(coordinator)


def remove_entities(
    hass: HomeAssistant, entry: ConfigEntry, platform: Platform, keys: set[str] | None = None
) -> None:
    """Drop registry entries of a platform that is off now (commands disabled, no plan).

    ``keys``: only the entities of these keys.
    """
    registry = er.async_get(hass)
    wanted = None if keys is None else {unique_id(str(entry.unique_id), key) for key in keys}
    for entity in er.async_entries_for_config_entry(registry, entry.entry_id):
        if entity.domain == platform and (wanted is None or entity.unique_id in wanted):
            registry.async_remove(entity.entity_id)
