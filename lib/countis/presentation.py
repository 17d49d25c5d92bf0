"""How Home Assistant shows the catalogue: names, device and state classes, precision, icons.

Plain data with Home Assistant's string values, so neither this library nor the daemon
depends on Home Assistant; MQTT discovery and the custom integration both render it. It
reads the catalogue (keys, kinds, units) and never the other way round: the counter guard
judges kinds, so changing a state class here for Home Assistant's sake changes nothing
but what Home Assistant shows.
"""

from __future__ import annotations

from dataclasses import dataclass

from countis.catalogue import VALUES, Kind, ValueSpec
from countis.models import PartialAction

#: Home Assistant state class of each kind (None: no long-term statistics).
STATE_CLASS: dict[Kind, str | None] = {
    Kind.MEASUREMENT: "measurement",
    Kind.LIFETIME_COUNTER: "total_increasing",
    Kind.TIME_COUNTER: "total_increasing",
    Kind.PARTIAL_COUNTER: "total_increasing",
    # A signed net counter: "total" without last_reset, never total_increasing.
    Kind.BALANCE: "total",
    Kind.TARIFF: None,
    Kind.STATUS: None,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class _Stem:
    """How the values of one stem are shown."""

    name: str
    device_class: str | None = None
    precision: int | None = None
    icon: str | None = None
    entity_category: str | None = None
    options: tuple[str, ...] = ()


def _energy(name: str) -> _Stem:
    return _Stem(name=name, device_class="energy", precision=2)


def _reactive(name: str) -> _Stem:
    return _Stem(name=name, device_class="reactive_energy", precision=2)


_STEMS: dict[str, _Stem] = {
    "voltage": _Stem(name="Voltage", device_class="voltage", precision=1),
    "voltage_ll": _Stem(name="Line voltage", device_class="voltage", precision=1),
    "current": _Stem(name="Current", device_class="current", precision=2),
    "current_n": _Stem(name="Neutral current", device_class="current", precision=2),
    "current_raw": _Stem(name="Current without CT", device_class="current", precision=2),
    "power": _Stem(name="Power", device_class="power", precision=0),
    "reactive_power": _Stem(name="Reactive power", device_class="reactive_power", precision=0),
    "apparent_power": _Stem(name="Apparent power", device_class="apparent_power", precision=0),
    "power_factor": _Stem(name="Power factor", device_class="power_factor", precision=3),
    "frequency": _Stem(name="Frequency", device_class="frequency", precision=2),
    "phase_sequence": _Stem(name="Phase sequence", device_class="enum", icon="mdi:rotate-right",
                            entity_category="diagnostic", options=("123", "132", "unknown")),
    "tariff": _Stem(name="Tariff", icon="mdi:cash-clock"),
    "energy_import": _energy("Energy import"),
    "energy_export": _energy("Energy export"),
    "reactive_energy_import": _reactive("Reactive energy import"),
    "reactive_energy_export": _reactive("Reactive energy export"),
    "apparent_energy": _Stem(name="Apparent energy", precision=2),
    "reactive_energy_import_inductive": _reactive("Inductive reactive energy import"),
    "reactive_energy_import_capacitive": _reactive("Capacitive reactive energy import"),
    "reactive_energy_export_inductive": _reactive("Inductive reactive energy export"),
    "reactive_energy_export_capacitive": _reactive("Capacitive reactive energy export"),
    "tariff_time": _Stem(name="Time in tariff", device_class="duration", precision=2,
                         entity_category="diagnostic"),
    "energy_balance": _energy("Energy balance"),
    "reactive_energy_balance": _reactive("Reactive energy balance"),
}  # fmt: skip
# Shown by default (the rest is there, disabled, for those who want it): what a household
# or a sub-meter dashboard uses.
_ENABLED_STEMS = frozenset({
    "voltage", "current", "power", "reactive_power", "apparent_power", "power_factor",
    "frequency", "phase_sequence", "tariff", "energy_import", "energy_export",
    "reactive_energy_import", "reactive_energy_export", "apparent_energy",
    "partial_energy_import", "partial_energy_export", "energy_balance",
})  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class SensorSpec:
    """One value (of the catalogue, or of the tariff plan) as a Home Assistant sensor."""

    key: str
    unit: str | None = None
    name: str
    translation_key: str
    placeholders: tuple[tuple[str, str], ...] = ()
    device_class: str | None = None
    state_class: str | None = None
    precision: int | None = None
    enabled_by_default: bool = True
    entity_category: str | None = None
    icon: str | None = None
    options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ButtonSpec:
    """A partial-meter command button."""

    key: str
    name: str
    translation_key: str
    action: PartialAction
    icon: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SelectSpec:
    """The active-tariff select; its state is the value ``value_key``."""

    key: str
    name: str
    translation_key: str
    value_key: str
    options: tuple[str, ...]
    icon: str


def _stem_of(value: ValueSpec) -> tuple[_Stem, str]:
    """How the value's stem is shown, and its English name (partial counters: prefixed)."""
    base = value.stem.removeprefix("partial_")
    stem = _STEMS[base]
    if base == value.stem:
        return stem, stem.name
    return stem, "Partial " + stem.name[0].lower() + stem.name[1:]


def _enabled(value: ValueSpec) -> bool:
    """Totals of the everyday values; per phase only power; per tariff only Ea+/Ea-."""
    if value.stem not in _ENABLED_STEMS or value.line:
        return False
    if value.kind is Kind.PARTIAL_COUNTER:
        return value.tariff is None
    if value.kind is Kind.LIFETIME_COUNTER:
        if value.phase:
            return False
        return value.tariff is None or value.stem in ("energy_import", "energy_export")
    if value.phase:
        return value.stem in ("voltage", "current", "power")
    return True


def describe(value: ValueSpec) -> SensorSpec:
    """The sensor of one catalogue value."""
    stem, name = _stem_of(value)
    placeholders: list[tuple[str, str]] = []
    translation_key = value.stem
    if value.tariff:
        name += f" {value.tariff.upper()}"
        placeholders.append(("tariff", value.tariff.upper()))
        translation_key += "_tariff"
    if value.phase:
        name += f" {value.phase.upper()}"
        placeholders.append(("phase", value.phase.upper()))
        translation_key += "_phase"
    if value.line:
        line = "-".join(part.upper() for part in value.line.split("_"))
        name += f" {line}"
        placeholders.append(("line", line))
        translation_key += "_line"
    return SensorSpec(
        key=value.key,
        unit=value.unit,
        name=name,
        translation_key=translation_key,
        placeholders=tuple(placeholders),
        device_class=stem.device_class,
        state_class=STATE_CLASS[value.kind],
        precision=stem.precision,
        enabled_by_default=_enabled(value),
        entity_category=stem.entity_category,
        icon=stem.icon,
        options=stem.options,
    )


SENSORS: tuple[SensorSpec, ...] = tuple(describe(v) for v in VALUES)
SENSOR_BY_KEY: dict[str, SensorSpec] = {s.key: s for s in SENSORS}

#: What the tariff master reports, for meters that follow a tariff plan.
PLAN_SENSORS: tuple[SensorSpec, ...] = (
    SensorSpec(key="tariff_planned", name="Planned tariff", translation_key="tariff_planned",
               icon="mdi:calendar-clock"),
    SensorSpec(key="next_tariff_change", name="Next tariff change",
               translation_key="next_tariff_change", device_class="timestamp"),
    SensorSpec(key="tariff_source", name="Tariff source", translation_key="tariff_source",
               device_class="enum", options=("schedule", "signal", "manual"),
               entity_category="diagnostic", icon="mdi:source-branch"),
)  # fmt: skip

BUTTONS: tuple[ButtonSpec, ...] = (
    ButtonSpec(key="partial_start", name="Partial meter start",
               translation_key="partial_start", action=PartialAction.START, icon="mdi:play"),
    ButtonSpec(key="partial_stop", name="Partial meter stop",
               translation_key="partial_stop", action=PartialAction.STOP, icon="mdi:pause"),
    ButtonSpec(key="partial_reset", name="Partial meter reset",
               translation_key="partial_reset", action=PartialAction.RESET, icon="mdi:restore"),
)  # fmt: skip

TARIFF_SELECT = SelectSpec(
    key="active_tariff",
    name="Active tariff",
    translation_key="active_tariff",
    value_key="tariff",
    options=("T1", "T2"),
    icon="mdi:cash-multiple",
)


def node_id(serial: str) -> str:
    """Device id / discovery node id of a meter (from its serial, never from its address)."""
    return f"countis_{serial}"


def unique_id(serial: str, key: str) -> str:
    """Home Assistant unique id of one entity of a meter (the same in MQTT and the integration)."""
    return f"countis_{serial}_{key}"
