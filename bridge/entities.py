"""Entity specs: the single table MQTT discovery and the Home Assistant integration render.

Keys are forever: a key is the JSON field of the state message, the suffix of the unique
id and the translation key's stem. Device classes, state classes and units are plain
strings (Home Assistant's values) so this module does not depend on Home Assistant.

Sources say which registers make a value; the client reads exactly those (``plan``).
Energies use the best resolution the meter offers: whole-kWh + 0.1 Wh residual pairs
where they exist, else the 10 Wh registers, else (per-tariff export/reactive/apparent,
which the meter only has in whole units) the whole-unit registers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from bridge.models import PartialAction


class Group(StrEnum):
    """Poll groups: each has its own interval."""

    REALTIME = "realtime"
    ENERGY = "energy"


@dataclass(frozen=True, slots=True, kw_only=True)
class Scaled:
    """A numeric register times its table scale, divided into the published unit.

    ``overflow`` names the register counting wraps of this counter (block 0x9000).
    """

    register: str
    divisor: float = 1.0
    overflow: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WithResidual:
    """A whole-unit U32 register plus its 0.1-unit U16 residual (``kWh x 1000 + res x 0.1 Wh``).

    ``signed``: the U32 is read as two's complement (energy balance; our choice, the table
    types it unsigned although a balance can be negative).
    """

    register: str
    residual: str
    divisor: float = 1000.0
    overflow: str | None = None
    signed: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Enumerated:
    """A code register mapped to strings; unknown codes map to ``default``."""

    register: str
    mapping: tuple[tuple[int, str], ...]
    default: str


Source = Scaled | WithResidual | Enumerated


@dataclass(frozen=True, slots=True, kw_only=True)
class SensorSpec:
    """One value of the meter, as a sensor."""

    key: str
    name: str
    translation_key: str
    placeholders: tuple[tuple[str, str], ...] = ()
    source: Source
    group: Group
    unit: str | None = None
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


PHASES = ("l1", "l2", "l3")
TARIFFS = ("t1", "t2")
KWH = 1000.0  # table units are Wh/varh/VAh; published units are k-units

# (key stem, English name, unit, device class, register stem in the per-phase/total blocks)
_ENERGY_KINDS: tuple[tuple[str, str, str, str | None, str], ...] = (
    ("energy_import", "Energy import", "kWh", "energy", "ea_plus"),
    ("energy_export", "Energy export", "kWh", "energy", "ea_minus"),
    ("reactive_energy_import", "Reactive energy import", "kvarh", "reactive_energy", "er_plus"),
    ("reactive_energy_export", "Reactive energy export", "kvarh", "reactive_energy", "er_minus"),
    ("apparent_energy", "Apparent energy", "kVAh", None, "eap"),
    (
        "reactive_energy_import_inductive",
        "Inductive reactive energy import",
        "kvarh",
        "reactive_energy",
        "er_plus_lagging",
    ),
    (
        "reactive_energy_import_capacitive",
        "Capacitive reactive energy import",
        "kvarh",
        "reactive_energy",
        "er_plus_leading",
    ),
    (
        "reactive_energy_export_inductive",
        "Inductive reactive energy export",
        "kvarh",
        "reactive_energy",
        "er_minus_lagging",
    ),
    (
        "reactive_energy_export_capacitive",
        "Capacitive reactive energy export",
        "kvarh",
        "reactive_energy",
        "er_minus_leading",
    ),
)
_KIND = {stem: (name, unit, dev_class, reg) for stem, name, unit, dev_class, reg in _ENERGY_KINDS}
# Wrap counters of the 0x9000 block, by the key they belong to.
_OVERFLOW = {
    "energy_import": "overflow_count_ea_plus",
    "energy_export": "overflow_count_ea_minus",
    "reactive_energy_import": "overflow_count_er_plus",
    "reactive_energy_export": "overflow_count_er_minus",
    "apparent_energy": "overflow_count_eap",
    "energy_import_t1": "overflow_count_ea_t1",
    "energy_import_t2": "overflow_count_ea_t2",
}


def _suffix(phase: str | None, tariff: str | None) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    """Key suffix, name suffix and translation placeholders for a phase and/or tariff."""
    key = name = ""
    placeholders: list[tuple[str, str]] = []
    if tariff:
        key += f"_{tariff}"
        name += f" {tariff.upper()}"
        placeholders.append(("tariff", tariff.upper()))
    if phase:
        key += f"_{phase}"
        name += f" {phase.upper()}"
        placeholders.append(("phase", phase.upper()))
    return key, name, tuple(placeholders)


def _tk(stem: str, phase: str | None, tariff: str | None) -> str:
    return stem + ("_tariff" if tariff else "") + ("_phase" if phase else "")


def _energy(
    stem: str,
    source: Source,
    *,
    phase: str | None = None,
    tariff: str | None = None,
    enabled: bool = False,
    prefix: tuple[str, str] = ("", ""),
) -> SensorSpec:
    name, unit, dev_class, _ = _KIND[stem]
    key_sfx, name_sfx, placeholders = _suffix(phase, tariff)
    key_prefix, name_prefix = prefix
    full_name = name_prefix + (name[0].lower() + name[1:] if name_prefix else name)
    return SensorSpec(
        key=key_prefix + stem + key_sfx,
        name=full_name + name_sfx,
        translation_key=_tk(key_prefix + stem, phase, tariff),
        placeholders=placeholders,
        source=source,
        group=Group.ENERGY,
        unit=unit,
        device_class=dev_class,
        state_class="total_increasing",
        precision=2,
        enabled_by_default=enabled,
    )


def _realtime(  # noqa: PLR0917 - rows of a table read best positionally
    key: str,
    name: str,
    register: str,
    unit: str | None,
    device_class: str | None,
    precision: int,
    *,
    tk: str | None = None,
    placeholders: tuple[tuple[str, str], ...] = (),
    enabled: bool = True,
) -> SensorSpec:
    return SensorSpec(
        key=key,
        name=name,
        translation_key=tk or key,
        placeholders=placeholders,
        source=Scaled(register=register),
        group=Group.REALTIME,
        unit=unit,
        device_class=device_class,
        state_class="measurement",
        precision=precision,
        enabled_by_default=enabled,
    )


def _realtime_specs() -> list[SensorSpec]:
    specs: list[SensorSpec] = []
    for i, phase in enumerate(PHASES, start=1):
        ph = (("phase", phase.upper()),)
        specs.append(
            _realtime(f"voltage_{phase}", f"Voltage {phase.upper()}", f"phase{i}_voltage",
                      "V", "voltage", 1, tk="voltage_phase", placeholders=ph)
        )  # fmt: skip
    specs.append(_realtime("voltage", "Voltage", "phase_voltage_sys_avg", "V", "voltage", 1))
    for a, b in (("1", "2"), ("2", "3"), ("3", "1")):
        line = (("line", f"L{a}-L{b}"),)
        specs.append(
            _realtime(f"voltage_l{a}_l{b}", f"Voltage L{a}-L{b}", f"line_voltage_u{a}{b}",
                      "V", "voltage", 1, tk="voltage_line", placeholders=line, enabled=False)
        )  # fmt: skip
    specs.append(
        _realtime("voltage_ll", "Line voltage", "line_voltage_sys_avg", "V", "voltage", 1,
                  enabled=False)
    )  # fmt: skip
    for i, phase in enumerate(PHASES, start=1):
        ph = (("phase", phase.upper()),)
        specs.append(
            _realtime(f"current_{phase}", f"Current {phase.upper()}", f"phase{i}_current",
                      "A", "current", 2, tk="current_phase", placeholders=ph)
        )  # fmt: skip
    specs.append(
        _realtime("current_n", "Neutral current", "neutral_current", "A", "current", 2,
                  enabled=False)
    )  # fmt: skip
    specs.append(_realtime("current", "Current", "current_sys_avg", "A", "current", 2))
    powers = (
        ("power", "Power", "active_power", "W", "power", True),
        ("reactive_power", "Reactive power", "reactive_power", "var", "reactive_power", True),
        ("apparent_power", "Apparent power", "apparent_power", "VA", "apparent_power", True),
        ("power_factor", "Power factor", "power_factor", None, "power_factor", True),
    )
    for key, name, reg, unit, dev_class, enabled in powers:
        precision = 3 if key == "power_factor" else 0
        specs.append(_realtime(key, name, f"total_{reg}", unit, dev_class, precision,
                               enabled=enabled))  # fmt: skip
        for i, phase in enumerate(PHASES, start=1):
            ph = (("phase", phase.upper()),)
            specs.append(
                _realtime(f"{key}_{phase}", f"{name} {phase.upper()}", f"phase{i}_{reg}", unit,
                          dev_class, precision, tk=f"{key}_phase", placeholders=ph,
                          enabled=key == "power")
            )  # fmt: skip
    specs.append(_realtime("frequency", "Frequency", "frequency", "Hz", "frequency", 2))
    for i, phase in enumerate(PHASES, start=1):
        ph = (("phase", phase.upper()),)
        raw = _realtime(f"current_raw_{phase}", f"Current without CT {phase.upper()}",
                        f"phase{i}_current_without_ct", "A", "current", 2,
                        tk="current_raw_phase", placeholders=ph, enabled=False)  # fmt: skip
        # A direct 80 A meter has no CT, so these equal the phase currents: polling them with
        # the energy group keeps every realtime poll at one request (block 0xC550).
        specs.append(replace(raw, group=Group.ENERGY))
    specs.append(
        SensorSpec(
            key="phase_sequence",
            name="Phase sequence",
            translation_key="phase_sequence",
            source=Enumerated(
                register="phase_sequence", mapping=((0, "123"), (1, "132")), default="unknown"
            ),
            # Slow-changing: rides with the energy group to keep realtime polls at 1 request.
            group=Group.ENERGY,
            device_class="enum",
            options=("123", "132", "unknown"),
            entity_category="diagnostic",
            icon="mdi:rotate-right",
        )
    )
    specs.append(
        SensorSpec(
            key="tariff",
            name="Tariff",
            translation_key="tariff",
            # 0xC801 mirrors 0xC6A1 inside the 10 Wh tariff block the energy poll reads anyway.
            source=Scaled(register="tariff_in_progress_c800"),
            group=Group.ENERGY,
            icon="mdi:cash-clock",
        )
    )
    return specs


def _energy_specs() -> list[SensorSpec]:
    specs: list[SensorSpec] = []
    main = ("energy_import", "energy_export")
    for stem, _name, _unit, _dc, reg in _ENERGY_KINDS:
        specs.append(
            _energy(stem, WithResidual(register=f"sum_{reg}", residual=f"sum_{reg}_residual",
                                       overflow=_OVERFLOW.get(stem)),
                    enabled="_inductive" not in stem and "_capacitive" not in stem)
        )  # fmt: skip
    for stem, _name, _unit, _dc, reg in _ENERGY_KINDS:
        for phase in PHASES:
            src: Source = WithResidual(
                register=f"{phase}_{reg}", residual=f"{phase}_{reg}_residual"
            )
            specs.append(_energy(stem, src, phase=phase))
    # Three-phase per tariff: 10 Wh registers for Ea+/Er+, whole units for the rest.
    per_tariff = {
        "energy_import": "{t}_ea_plus_10wh",
        "energy_export": "sum_{t}_ea_minus",
        "reactive_energy_import": "{t}_er_plus_10varh",
        "reactive_energy_export": "sum_{t}_er_minus",
        "apparent_energy": "sum_{t}_eap",
        "reactive_energy_import_inductive": "sum_{t}_er_plus_lagging",
        "reactive_energy_import_capacitive": "sum_{t}_er_plus_leading",
        "reactive_energy_export_inductive": "sum_{t}_er_minus_lagging",
        "reactive_energy_export_capacitive": "sum_{t}_er_minus_leading",
    }
    for stem, pattern in per_tariff.items():
        for tariff in TARIFFS:
            src = Scaled(register=pattern.format(t=tariff), divisor=KWH,
                         overflow=_OVERFLOW.get(f"{stem}_{tariff}"))  # fmt: skip
            specs.append(_energy(stem, src, tariff=tariff, enabled=stem in main))
    # Per phase and tariff (blocks 0x4F00/0x5700/0x5F00): whole units only.
    for stem, _name, _unit, _dc, reg in _ENERGY_KINDS:
        if reg in ("er_plus", "er_minus"):
            continue  # the meter has no plain Er+/Er- per phase and tariff
        for tariff in TARIFFS:
            for phase in PHASES:
                src = Scaled(register=f"{phase}_{tariff}_{reg}", divisor=KWH)
                specs.append(_energy(stem, src, phase=phase, tariff=tariff))
    for tariff in TARIFFS:
        specs.append(
            SensorSpec(
                key=f"tariff_time_{tariff}",
                name=f"Time in tariff {tariff.upper()}",
                translation_key="tariff_time_tariff",
                placeholders=(("tariff", tariff.upper()),),
                source=Scaled(register=f"{tariff}_time_counter_c800"),
                group=Group.ENERGY,
                unit="h",
                device_class="duration",
                state_class="total_increasing",
                precision=2,
                enabled_by_default=False,
                entity_category="diagnostic",
            )
        )
    return specs


def _partial_specs() -> list[SensorSpec]:
    partial = ("partial_", "Partial ")
    specs = [
        _energy("energy_import", Scaled(register="partial_ea_plus_10wh", divisor=KWH),
                enabled=True, prefix=partial),
        _energy("energy_export", Scaled(register="partial_ea_minus_10wh", divisor=KWH),
                enabled=True, prefix=partial),
        _energy("reactive_energy_import", Scaled(register="partial_er_plus_10varh", divisor=KWH),
                prefix=partial),
        _energy("reactive_energy_export", Scaled(register="partial_er_minus_10varh", divisor=KWH),
                prefix=partial),
        _energy("apparent_energy", Scaled(register="partial_eap_10vah", divisor=KWH),
                prefix=partial),
    ]  # fmt: skip
    for stem, reg in (("energy_import", "ea_plus"), ("energy_export", "ea_minus")):
        for tariff in TARIFFS:
            src: Source = WithResidual(register=f"partial_{tariff}_{reg}",
                               residual=f"partial_{tariff}_{reg}_residual")  # fmt: skip
            specs.append(_energy(stem, src, tariff=tariff, prefix=partial))
    for key, name, reg, unit, dev_class in (
        ("energy_balance", "Energy balance", "net_active_energy_balance", "kWh", "energy"),
        ("reactive_energy_balance", "Reactive energy balance", "net_reactive_energy_balance",
         "kvarh", "reactive_energy"),
    ):  # fmt: skip
        specs.append(
            SensorSpec(
                key=key,
                name=name,
                translation_key=key,
                source=WithResidual(register=reg, residual=f"{reg}_residual", signed=True),
                group=Group.ENERGY,
                unit=unit,
                device_class=dev_class,
                # Signed net counter: "total" without last_reset, never total_increasing.
                state_class="total",
                precision=2,
                enabled_by_default=key == "energy_balance",
            )
        )
    return specs


SENSORS: tuple[SensorSpec, ...] = (*_realtime_specs(), *_energy_specs(), *_partial_specs())
SENSOR_BY_KEY: dict[str, SensorSpec] = {s.key: s for s in SENSORS}
VALUE_KEYS: tuple[str, ...] = tuple(s.key for s in SENSORS)

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

#: Keys of counters that only ever grow (the counter guard checks them).
LIFETIME_COUNTER_KEYS: frozenset[str] = frozenset(
    s.key
    for s in SENSORS
    if s.state_class == "total_increasing" and not s.key.startswith("partial_")
)
#: Keys of partial counters: they grow, and drop only to 0 after a reset.
PARTIAL_COUNTER_KEYS: frozenset[str] = frozenset(
    s.key for s in SENSORS if s.key.startswith("partial_")
)


def keys_for_groups(groups: frozenset[Group] | set[Group]) -> tuple[str, ...]:
    """Value keys polled in the given groups, in table order."""
    return tuple(s.key for s in SENSORS if s.group in groups)
