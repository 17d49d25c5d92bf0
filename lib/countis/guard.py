"""The counter guard: never let an implausible energy value through (pure).

Rules, per key, against the last value the guard accepted for it:

- Lifetime counters (:data:`countis.catalogue.LIFETIME_COUNTER_KEYS`): never lower than the
  last accepted value (so a 0 after a non-zero value is rejected), never higher than what
  the meter's maximum power could add in the elapsed time.
- Partial counters (:data:`countis.catalogue.PARTIAL_COUNTER_KEYS`): the same, except that
  after :meth:`CounterGuard.note_partial_reset` the next value may drop to 0 (plus what
  could have been counted since).
- Balances (:data:`countis.catalogue.BALANCE_KEYS`): both directions, at most max power.
- Every other key passes through unchecked. Non-numbers, NaN/inf and negative counters are
  rejected.

Rejected values are left out of the result and counted per key; the caller decides what to
publish instead (DESIGN: nothing stale, nothing zero). Guard state is not persisted: after a
restart the first value of every counter is the new baseline.

Corrupt readings: a lifetime counter below its last accepted value (0 after a non-zero
value included) means the whole reading is wrong (registers reading 0 or garbage), not
just that counter. The counters that may legitimately drop (partial counters after a
reset, balances both ways: :data:`MAY_DROP_KEYS`) cannot be trusted from such a reading:
a few zero readings in a row would pass for a reset on the front panel, or rebase a
balance. :meth:`CounterGuard.screen` withholds them; call it first, before the partial
meters see the reading::

    screened = guard.screen(reading.values)
    values = partial.apply(screened.values)
    if partial.meter_reset_detected:
        guard.note_partial_reset()
    result = guard.check(values, reading.timestamp)

Limits (documented choices):

- Maximum power ``MAX_POWER_W`` = 80 A x 3 phases x 288 V = 69.12 kW (the E27/E28 maximum
  current and voltage); reactive and apparent energies use the same figure (|Q| <= S).
  Time counters (kind ``TIME_COUNTER``) move at most one hour per hour.
- Allowed change in ``dt`` seconds = rate x ``margin`` x (``dt`` + ``slack_s``) + one
  resolution step of the key (10 Wh for the fine registers, 1 kWh for the whole-unit ones),
  with ``margin`` = 1.5 (meter over-range, clock jitter) and ``slack_s`` = 5 s (the poll's
  timestamp is taken before its requests, which may take up to a timeout).
- First value: with ``confirm_first`` (default) a counter's first value is held (reported in
  ``GuardResult.held``, not counted as a rejection) until the next reading agrees with it,
  so one garbage reading at start-up cannot become a baseline that blocks every real value.
  The first state of a freshly started bridge therefore lacks the counters.
- Recovery: a counter rejected for rising too fast is accepted once ``rebase_after``
  consecutive readings agree with each other (plausible among themselves), e.g. after a
  fault made the first baseline too low. A lower value is never accepted (balance: either
  direction recovers the same way).

Public API (stable): ``CounterGuard(limits=GuardLimits())``; ``.screen(values) ->
Screened(values, corrupt, withheld)``; ``.check(values, timestamp) -> GuardResult(values,
rejected, held)``; ``.note_partial_reset()``; ``.rejections`` (key -> count),
``.rejected_total``, ``.rebases`` (key -> count), ``.corrupt_readings``, ``.last(key)``;
``Reason`` (why a value was rejected); ``MAX_POWER_W``; ``MAY_DROP_KEYS``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from countis.catalogue import (
    BALANCE_KEYS,
    LIFETIME_COUNTER_KEYS,
    PARTIAL_COUNTER_KEYS,
    VALUE_BY_KEY,
    Enumerated,
    Kind,
    Scaled,
    ValueSpec,
)
from countis.models import ValueType
from countis.registers import BY_NAME

MAX_CURRENT_A = 80.0
MAX_VOLTAGE_V = 288.0
MAX_POWER_W = MAX_CURRENT_A * 3 * MAX_VOLTAGE_V  # 69_120 W
ENERGY_STEP = 0.01  # k-units: every energy counter moves in 10 Wh/varh/VAh steps
#: Every key the guard checks.
GUARDED_KEYS: frozenset[str] = LIFETIME_COUNTER_KEYS | PARTIAL_COUNTER_KEYS | BALANCE_KEYS
#: Counters that may legitimately drop: withheld from a corrupt reading (see ``screen``).
MAY_DROP_KEYS: frozenset[str] = PARTIAL_COUNTER_KEYS | BALANCE_KEYS


class Reason(StrEnum):
    """Why a value was rejected."""

    NOT_A_NUMBER = "not_a_number"
    NEGATIVE = "negative"
    DECREASED = "decreased"
    TOO_FAST = "too_fast"


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardLimits:
    """Tunables of the guard (defaults: see the module docstring)."""

    max_power_w: float = MAX_POWER_W
    margin: float = 1.5
    slack_s: float = 5.0
    confirm_first: bool = True
    rebase_after: int = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardResult:
    """Outcome of one :meth:`CounterGuard.check`."""

    values: Mapping[str, ValueType]  # accepted values and unchecked keys, to publish
    rejected: Mapping[str, Reason] = field(default_factory=dict)
    held: frozenset[str] = frozenset()  # first values waiting for confirmation

    def __post_init__(self) -> None:
        """Freeze the mappings."""
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))
        object.__setattr__(self, "rejected", MappingProxyType(dict(self.rejected)))


@dataclass(frozen=True, slots=True, kw_only=True)
class Screened:
    """Outcome of :meth:`CounterGuard.screen`: a reading with its untrusted keys left out."""

    values: Mapping[str, ValueType]  # the reading without ``withheld``
    corrupt: frozenset[str] = frozenset()  # lifetime counters below their last accepted value
    withheld: frozenset[str] = frozenset()  # keys that may drop, left out of a corrupt reading

    def __post_init__(self) -> None:
        """Freeze the mapping."""
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))

    @property
    def suspect(self) -> bool:
        """Whether the reading is corrupt (a lifetime counter went down)."""
        return bool(self.corrupt)


def resolution(spec: ValueSpec) -> float:
    """Smallest step the published value of a counter moves by."""
    source = spec.source
    assert not isinstance(source, Enumerated), spec.key
    scale = BY_NAME[source.register].scale or 1.0
    step = scale / source.divisor if isinstance(source, Scaled) else 0.0
    return max(step, ENERGY_STEP)


#: Resolution and whether the key is a time counter, per guarded key: computed once, as
#: the guard judges some hundred values per energy poll of every meter.
_STEP: dict[str, tuple[float, bool]] = {
    key: (resolution(VALUE_BY_KEY[key]), VALUE_BY_KEY[key].kind is Kind.TIME_COUNTER)
    for key in GUARDED_KEYS
}


@dataclass(slots=True, kw_only=True)
class _Point:
    value: float
    timestamp: float


@dataclass(slots=True, kw_only=True)
class _Candidate:
    value: float
    timestamp: float
    count: int = 1


class CounterGuard:
    """Per-meter guard over a stream of readings (call :meth:`check` for each)."""

    def __init__(self, limits: GuardLimits | None = None) -> None:
        """A guard without baselines."""
        self._limits = limits or GuardLimits()
        self._last: dict[str, _Point] = {}
        self._candidates: dict[str, _Candidate] = {}
        self._reset_noted: set[str] = set()
        self._rejections: dict[str, int] = {}
        self._rebases: dict[str, int] = {}
        self._corrupt_readings = 0

    @property
    def rejections(self) -> Mapping[str, int]:
        """Rejected values per key since the guard was made (diagnostics)."""
        return MappingProxyType(self._rejections)

    @property
    def rejected_total(self) -> int:
        """Rejected values of all keys."""
        return sum(self._rejections.values())

    @property
    def rebases(self) -> Mapping[str, int]:
        """Times a key's baseline was moved up after consistent rejected readings."""
        return MappingProxyType(self._rebases)

    @property
    def corrupt_readings(self) -> int:
        """Readings :meth:`screen` found corrupt since the guard was made."""
        return self._corrupt_readings

    def last(self, key: str) -> float | None:
        """The last accepted value of a key (``None`` before the first)."""
        point = self._last.get(key)
        return point.value if point else None

    def note_partial_reset(self) -> None:
        """The meter's partial counters were reset: their next values may drop to 0."""
        self._reset_noted = set(PARTIAL_COUNTER_KEYS)

    def allowance(self, key: str, dt: float) -> float:
        """Largest plausible change of ``key`` in ``dt`` seconds."""
        step, hours = _STEP[key]
        # Hours in a tariff move one per hour; energies at most the meter's maximum power.
        kilo_per_second = 1 / 3600 if hours else self._limits.max_power_w / 3.6e6
        span = (dt if dt > 0.0 else 0.0) + self._limits.slack_s
        return kilo_per_second * self._limits.margin * span + step

    def _plausible(self, key: str, old: float, new: float, dt: float) -> bool:
        """Within the allowed change; downward moves only for balances."""
        change = new - old
        if key in BALANCE_KEYS:
            change = abs(change)
        return 0.0 <= change <= self.allowance(key, dt)

    def _accept(self, key: str, value: float, timestamp: float) -> None:
        point = self._last.get(key)
        if point is None:
            self._last[key] = _Point(value=value, timestamp=timestamp)
        else:  # the hot path: no new object per key and poll
            point.value, point.timestamp = value, timestamp
        if self._candidates:
            self._candidates.pop(key, None)
        if self._reset_noted:
            self._reset_noted.discard(key)

    def _candidate(self, key: str, value: float, timestamp: float) -> int:
        """Record ``value`` as (part of) a new baseline; returns how many readings agree."""
        cand = self._candidates.get(key)
        dt = timestamp - cand.timestamp if cand else 0.0
        if cand is not None and self._plausible(key, cand.value, value, dt):
            cand.value, cand.timestamp, cand.count = value, timestamp, cand.count + 1
        else:
            cand = self._candidates[key] = _Candidate(value=value, timestamp=timestamp)
        return cand.count

    def _judge(self, key: str, value: float, timestamp: float) -> Reason | None:
        """Reason to reject ``value`` (``None`` = accepted and recorded)."""
        last = self._last[key]
        dt = timestamp - last.timestamp
        if self._plausible(key, last.value, value, dt):
            self._accept(key, value, timestamp)
            return None
        if value < last.value and key not in BALANCE_KEYS:
            self._candidates.pop(key, None)
            if key in self._reset_noted and value <= self.allowance(key, dt):
                self._accept(key, value, timestamp)
                return None
            return Reason.DECREASED
        if self._candidate(key, value, timestamp) >= self._limits.rebase_after:
            self._accept(key, value, timestamp)
            self._rebases[key] = self._rebases.get(key, 0) + 1
            return None
        return Reason.TOO_FAST

    def _first(self, key: str, value: float, timestamp: float) -> bool:
        """Handle a key without baseline; True if accepted."""
        needed = 2 if self._limits.confirm_first else 1
        if self._candidate(key, value, timestamp) >= needed:
            self._accept(key, value, timestamp)
            return True
        return False

    def screen(self, values: Mapping[str, ValueType]) -> Screened:
        """Withhold the counters that may drop when a lifetime counter went down.

        A lifetime counter below its last accepted value (so 0 after a non-zero value)
        makes the reading corrupt: its partial and balance values (:data:`MAY_DROP_KEYS`)
        are left out, so that neither the partial meters nor :meth:`check` see them. The
        lifetime counters stay in: :meth:`check` rejects and counts them. Call it before
        the partial meters; it records nothing but the count of corrupt readings.
        """
        corrupt = frozenset(
            key
            for key in LIFETIME_COUNTER_KEYS & values.keys()
            if (last := self._last.get(key)) is not None
            and isinstance(value := values[key], int | float)
            and value < last.value
        )
        if not corrupt:
            return Screened(values=values)
        self._corrupt_readings += 1
        withheld = MAY_DROP_KEYS & values.keys()
        kept = {k: v for k, v in values.items() if k not in withheld}
        return Screened(values=kept, corrupt=corrupt, withheld=frozenset(withheld))

    def check(self, values: Mapping[str, ValueType], timestamp: float) -> GuardResult:
        """Values to publish from one reading taken at ``timestamp`` (seconds)."""
        out: dict[str, ValueType] = {}
        rejected: dict[str, Reason] = {}
        held: set[str] = set()
        for key, value in values.items():
            if key not in GUARDED_KEYS:
                out[key] = value
                continue
            reason: Reason | None = None
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                reason = Reason.NOT_A_NUMBER
            elif value < 0 and key not in BALANCE_KEYS:
                reason = Reason.NEGATIVE
            elif key not in self._last:
                if not self._first(key, float(value), timestamp):
                    held.add(key)
                    continue
            else:
                reason = self._judge(key, float(value), timestamp)
            if reason is None:
                out[key] = value
            else:
                rejected[key] = reason
                self._rejections[key] = self._rejections.get(key, 0) + 1
        return GuardResult(values=out, rejected=rejected, held=frozenset(held))
