"""The value catalogue: every value the meter gives, what it means and where it comes from.

Keys are forever: a key is the JSON field of the daemon's state message, the suffix of
the unique id and the translation key's stem. Each value has

- a **kind** that says what the number is (a measurement, a lifetime counter, a partial
  counter, a signed balance, ...): the counter guard and the partial meters read kinds,
  never Home Assistant's state classes, which live in :mod:`countis.presentation`;
- a **source** that says which registers make it (the client reads exactly those) and a
  **unit** (the unit of the published number);
- **facets** (stem, phase, line, tariff) that the key is made of; presentation builds
  names and translation keys from them.

Energies use the best resolution the meter offers: whole-kWh + 0.1 Wh residual pairs
where they exist, else the 10 Wh registers, else (per-tariff export/reactive/apparent,
which the meter only has in whole units) the whole-unit registers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Group(StrEnum):
    """Poll groups: each has its own interval."""

    REALTIME = "realtime"
    ENERGY = "energy"


class Kind(StrEnum):
    """What a value means, for the logic that judges it."""

    MEASUREMENT = "measurement"  # an instantaneous value: V, A, W, var, VA, PF, Hz
    LIFETIME_COUNTER = "lifetime_counter"  # an energy counter that only grows
    TIME_COUNTER = "time_counter"  # hours spent in a tariff: grows at most 1 h per hour
    PARTIAL_COUNTER = "partial_counter"  # grows; drops to 0 only when reset
    BALANCE = "balance"  # a signed net counter: moves both ways
    TARIFF = "tariff"  # the active tariff (1 or 2)
    STATUS = "status"  # an enumeration (phase sequence)


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
class ValueSpec:
    """One value of the meter: its key, meaning and registers."""

    stem: str  # what is measured: "voltage", "energy_import", "partial_energy_export", ...
    phase: str | None = None  # "l1".."l3"
    line: str | None = None  # "l1_l2", "l2_l3", "l3_l1" (line-to-line voltages)
    tariff: str | None = None  # "t1", "t2"
    source: Source
    group: Group
    kind: Kind
    unit: str | None = None

    @property
    def key(self) -> str:
        """The value key: the stem, then tariff, phase and line (``energy_import_t1_l2``)."""
        return "_".join(p for p in (self.stem, self.tariff, self.phase, self.line) if p)


PHASES = ("l1", "l2", "l3")
LINES = ("l1_l2", "l2_l3", "l3_l1")
TARIFFS = ("t1", "t2")
KWH = 1000.0  # table units are Wh/varh/VAh; published units are k-units

# Energy stems: (stem, unit, register stem in the per-phase/total blocks)
ENERGY_STEMS: tuple[tuple[str, str, str], ...] = (
    ("energy_import", "kWh", "ea_plus"),
    ("energy_export", "kWh", "ea_minus"),
    ("reactive_energy_import", "kvarh", "er_plus"),
    ("reactive_energy_export", "kvarh", "er_minus"),
    ("apparent_energy", "kVAh", "eap"),
    ("reactive_energy_import_inductive", "kvarh", "er_plus_lagging"),
    ("reactive_energy_import_capacitive", "kvarh", "er_plus_leading"),
    ("reactive_energy_export_inductive", "kvarh", "er_minus_lagging"),
    ("reactive_energy_export_capacitive", "kvarh", "er_minus_leading"),
)
_UNIT = {stem: unit for stem, unit, _ in ENERGY_STEMS}
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


def _measurement(stem: str, register: str, unit: str | None, **facets: str) -> ValueSpec:
    return ValueSpec(
        stem=stem,
        source=Scaled(register=register),
        group=Group.REALTIME,
        kind=Kind.MEASUREMENT,
        unit=unit,
        **facets,
    )


def _counter(
    stem: str, source: Source, kind: Kind = Kind.LIFETIME_COUNTER, **facets: str
) -> ValueSpec:
    unit = _UNIT[stem.removeprefix("partial_")]
    return ValueSpec(stem=stem, source=source, group=Group.ENERGY, kind=kind, unit=unit, **facets)


def _realtime_values() -> list[ValueSpec]:
    values = [
        _measurement("voltage", f"phase{i}_voltage", "V", phase=p)
        for i, p in enumerate(PHASES, start=1)
    ]
    values.append(_measurement("voltage", "phase_voltage_sys_avg", "V"))
    values += [
        _measurement("voltage", f"line_voltage_u{line[1]}{line[4]}", "V", line=line)
        for line in LINES
    ]
    values.append(_measurement("voltage_ll", "line_voltage_sys_avg", "V"))
    values += [
        _measurement("current", f"phase{i}_current", "A", phase=p)
        for i, p in enumerate(PHASES, start=1)
    ]
    values.append(_measurement("current_n", "neutral_current", "A"))
    values.append(_measurement("current", "current_sys_avg", "A"))
    powers = (
        ("power", "active_power", "W"),
        ("reactive_power", "reactive_power", "var"),
        ("apparent_power", "apparent_power", "VA"),
        ("power_factor", "power_factor", None),
    )
    for stem, register, unit in powers:
        values.append(_measurement(stem, f"total_{register}", unit))
        values += [
            _measurement(stem, f"phase{i}_{register}", unit, phase=p)
            for i, p in enumerate(PHASES, start=1)
        ]
    values.append(_measurement("frequency", "frequency", "Hz"))
    # A direct 80 A meter has no CT, so these equal the phase currents: polling them with
    # the energy group keeps every realtime poll at one request (block 0xC550).
    values += [
        ValueSpec(stem="current_raw", phase=p, group=Group.ENERGY, kind=Kind.MEASUREMENT,
                  source=Scaled(register=f"phase{i}_current_without_ct"), unit="A")
        for i, p in enumerate(PHASES, start=1)
    ]  # fmt: skip
    values.append(
        ValueSpec(
            stem="phase_sequence",
            source=Enumerated(
                register="phase_sequence", mapping=((0, "123"), (1, "132")), default="unknown"
            ),
            # Slow-changing: rides with the energy group to keep realtime polls at 1 request.
            group=Group.ENERGY,
            kind=Kind.STATUS,
        )
    )
    values.append(
        ValueSpec(
            stem="tariff",
            # 0xC801 mirrors 0xC6A1 inside the 10 Wh tariff block the energy poll reads anyway.
            source=Scaled(register="tariff_in_progress_c800"),
            group=Group.ENERGY,
            kind=Kind.TARIFF,
        )
    )
    return values


def _energy_values() -> list[ValueSpec]:
    values = [
        _counter(stem, WithResidual(register=f"sum_{reg}", residual=f"sum_{reg}_residual",
                                    overflow=_OVERFLOW.get(stem)))
        for stem, _unit, reg in ENERGY_STEMS
    ]  # fmt: skip
    values += [
        _counter(stem, WithResidual(register=f"{p}_{reg}", residual=f"{p}_{reg}_residual"), phase=p)
        for stem, _unit, reg in ENERGY_STEMS
        for p in PHASES
    ]
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
        for t in TARIFFS:
            src = Scaled(register=pattern.format(t=t), divisor=KWH,
                         overflow=_OVERFLOW.get(f"{stem}_{t}"))  # fmt: skip
            values.append(_counter(stem, src, tariff=t))
    # Per phase and tariff (blocks 0x4F00/0x5700/0x5F00): whole units only; the meter has
    # no plain Er+/Er- per phase and tariff.
    values += [
        _counter(stem, Scaled(register=f"{p}_{t}_{reg}", divisor=KWH), tariff=t, phase=p)
        for stem, _unit, reg in ENERGY_STEMS
        if reg not in ("er_plus", "er_minus")
        for t in TARIFFS
        for p in PHASES
    ]
    values += [
        ValueSpec(stem="tariff_time", tariff=t, source=Scaled(register=f"{t}_time_counter_c800"),
                  group=Group.ENERGY, kind=Kind.TIME_COUNTER, unit="h")
        for t in TARIFFS
    ]  # fmt: skip
    return values


def _partial_values() -> list[ValueSpec]:
    fine = (  # three-phase partial counters in 10 Wh/varh/VAh
        ("energy_import", "partial_ea_plus_10wh"),
        ("energy_export", "partial_ea_minus_10wh"),
        ("reactive_energy_import", "partial_er_plus_10varh"),
        ("reactive_energy_export", "partial_er_minus_10varh"),
        ("apparent_energy", "partial_eap_10vah"),
    )
    partial = Kind.PARTIAL_COUNTER
    values = [
        _counter(f"partial_{stem}", Scaled(register=register, divisor=KWH), partial)
        for stem, register in fine
    ]
    values += [
        _counter(f"partial_{stem}", WithResidual(register=f"partial_{t}_{reg}",
                 residual=f"partial_{t}_{reg}_residual"), partial, tariff=t)
        for stem, reg in (("energy_import", "ea_plus"), ("energy_export", "ea_minus"))
        for t in TARIFFS
    ]  # fmt: skip
    for stem, register in (
        ("energy_balance", "net_active_energy_balance"),
        ("reactive_energy_balance", "net_reactive_energy_balance"),
    ):
        values.append(
            ValueSpec(
                stem=stem,
                source=WithResidual(
                    register=register, residual=f"{register}_residual", signed=True
                ),
                group=Group.ENERGY,
                kind=Kind.BALANCE,
                unit="kvarh" if stem.startswith("reactive") else "kWh",
            )
        )
    return values


VALUES: tuple[ValueSpec, ...] = (*_realtime_values(), *_energy_values(), *_partial_values())
VALUE_BY_KEY: dict[str, ValueSpec] = {v.key: v for v in VALUES}
VALUE_KEYS: tuple[str, ...] = tuple(VALUE_BY_KEY)


def keys_of(*kinds: Kind) -> frozenset[str]:
    """Keys of the values of the given kinds."""
    return frozenset(v.key for v in VALUES if v.kind in kinds)


#: Counters that never go down: energies since manufacture and the tariff time counters.
LIFETIME_COUNTER_KEYS: frozenset[str] = keys_of(Kind.LIFETIME_COUNTER, Kind.TIME_COUNTER)
#: Partial counters: they grow, and drop only to 0 after a reset.
PARTIAL_COUNTER_KEYS: frozenset[str] = keys_of(Kind.PARTIAL_COUNTER)
#: Signed net counters: they move both ways.
BALANCE_KEYS: frozenset[str] = keys_of(Kind.BALANCE)


def keys_for_groups(groups: frozenset[Group] | set[Group]) -> tuple[str, ...]:
    """Value keys polled in the given groups, in catalogue order."""
    return tuple(v.key for v in VALUES if v.group in groups)
