"""The active-tariff select (T1/T2): writes the meter's tariff register."""

from __future__ import annotations

from homeassistant.components.select import SelectEntity, SelectEntityDescription
from homeassistant.const import EntityCategory, Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from countis.presentation import TARIFF_SELECT

from .const import CONF_COMMANDS, DOMAIN
from .coordinator import CountisConfigEntry, option
from .entity import CountisEntity, remove_entities

# One command at a time per meter (the client serialises anyway).
PARALLEL_UPDATES = 1

DESCRIPTION = SelectEntityDescription(
    key=TARIFF_SELECT.key,
    translation_key=TARIFF_SELECT.translation_key,
    options=list(TARIFF_SELECT.options),
    entity_category=EntityCategory.CONFIG,
)


def tariff_option(value: object) -> str | None:
    """Option for a tariff number (1 -> "T1"); None for anything else."""
    if isinstance(value, int | float) and int(value) == value and 1 <= value <= 2:
        return TARIFF_SELECT.options[int(value) - 1]
    return None


async def async_setup_entry(
    hass: HomeAssistant,
    entry: CountisConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the tariff select unless commands are disabled (read-only)."""
    if not option(entry, CONF_COMMANDS):
        remove_entities(hass, entry, Platform.SELECT)
        return
    async_add_entities([CountisTariffSelect(entry.runtime_data.coordinator, DESCRIPTION)])


class CountisTariffSelect(CountisEntity, SelectEntity):
    """The meter's active tariff."""

    @property
    def current_option(self) -> str | None:
        """The tariff the meter reports."""
        return tariff_option(self.coordinator.data.values.get(TARIFF_SELECT.value_key))

    async def async_select_option(self, option: str) -> None:
        """Switch the meter to the selected tariff."""
        if option not in TARIFF_SELECT.options:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="invalid_tariff",
                translation_placeholders={"option": option},
            )
        await self.coordinator.async_set_tariff(TARIFF_SELECT.options.index(option) + 1)
