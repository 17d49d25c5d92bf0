"""Partial-meter buttons: start/stop (kept by Home Assistant) and reset (in the meter)."""

from __future__ import annotations

from dataclasses import dataclass

from homeassistant.components.button import ButtonEntity, ButtonEntityDescription
from homeassistant.const import EntityCategory, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from countis.models import PartialAction
from countis.presentation import BUTTONS

from .const import CONF_COMMANDS
from .coordinator import CountisConfigEntry, option
from .entity import CountisEntity, remove_entities

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class CountisButtonEntityDescription(ButtonEntityDescription):
    """A partial-meter button."""

    action: PartialAction


DESCRIPTIONS: tuple[CountisButtonEntityDescription, ...] = tuple(
    CountisButtonEntityDescription(
        key=spec.key,
        translation_key=spec.translation_key,
        action=spec.action,
        entity_category=EntityCategory.CONFIG,
    )
    for spec in BUTTONS
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: CountisConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the partial-meter buttons unless commands are disabled (read-only)."""
    if not option(entry, CONF_COMMANDS):
        remove_entities(hass, entry, Platform.BUTTON)
        return
    coordinator = entry.runtime_data.coordinator
    async_add_entities(CountisButton(coordinator, description) for description in DESCRIPTIONS)


class CountisButton(CountisEntity, ButtonEntity):
    """Start, stop or reset the partial meters."""

    entity_description: CountisButtonEntityDescription

    async def async_press(self) -> None:
        """Run the action."""
        await self.coordinator.async_partial(self.entity_description.action)
