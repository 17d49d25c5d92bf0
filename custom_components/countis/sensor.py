"""Sensors: one per value of the shared spec table (countis.presentation.SENSORS)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import dt as dt_util

from countis.models import ValueType
from countis.presentation import PLAN_SENSORS, SENSORS, SensorSpec

from .coordinator import CountisConfigEntry
from .entity import CountisEntity, remove_entities

# Coordinator-driven: entities never poll on their own.
PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class CountisSensorEntityDescription(SensorEntityDescription):
    """A sensor description rendered from a spec."""

    spec: SensorSpec


def describe(spec: SensorSpec) -> CountisSensorEntityDescription:
    """Render one spec as a Home Assistant sensor description."""
    return CountisSensorEntityDescription(
        key=spec.key,
        spec=spec,
        translation_key=spec.translation_key,
        translation_placeholders=dict(spec.placeholders) or None,
        device_class=SensorDeviceClass(spec.device_class) if spec.device_class else None,
        state_class=SensorStateClass(spec.state_class) if spec.state_class else None,
        native_unit_of_measurement=spec.unit,
        suggested_display_precision=spec.precision,
        entity_registry_enabled_default=spec.enabled_by_default,
        entity_category=EntityCategory(spec.entity_category) if spec.entity_category else None,
        options=list(spec.options) or None,
    )


DESCRIPTIONS: tuple[CountisSensorEntityDescription, ...] = tuple(describe(s) for s in SENSORS)
PLAN_DESCRIPTIONS: tuple[CountisSensorEntityDescription, ...] = tuple(
    describe(s) for s in PLAN_SENSORS
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: CountisConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add every sensor of the table (rarely used ones start disabled), and the plan's."""
    coordinator = entry.runtime_data.coordinator
    async_add_entities(CountisSensor(coordinator, description) for description in DESCRIPTIONS)
    if coordinator.session.tariff is not None:
        async_add_entities(CountisPlanSensor(coordinator, d) for d in PLAN_DESCRIPTIONS)
    else:  # no plan (any more): its sensors go, rather than stay unavailable
        remove_entities(hass, entry, Platform.SENSOR, {d.key for d in PLAN_DESCRIPTIONS})


class CountisSensor(CountisEntity, SensorEntity):
    """One value of the meter."""

    entity_description: CountisSensorEntityDescription

    @property
    def available(self) -> bool:
        """Unavailable while the meter is, or while the counter guard rejects the value."""
        return super().available and self.entity_description.key in self.coordinator.data.values

    @property
    def native_value(self) -> ValueType | None:
        """The published value."""
        return self.coordinator.data.values.get(self.entity_description.key)


class CountisPlanSensor(CountisEntity, SensorEntity):
    """What the tariff master says: the planned tariff, its next change, its source."""

    entity_description: CountisSensorEntityDescription

    @property
    def native_value(self) -> ValueType | datetime | None:
        """The plan's value (the next change as a time)."""
        value = self.coordinator.data.plan.get(self.entity_description.key)
        if self.entity_description.key == "next_tariff_change" and value is not None:
            return dt_util.utc_from_timestamp(value)
        return cast("ValueType | None", value)
