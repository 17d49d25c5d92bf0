"""A scripted meter and a manual clock for session tests, shared by the daemon's and the
integration's tests (no sockets, no sleeps), plus one table of scripted readings that both
front ends must publish identically.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from countis.catalogue import BALANCE_KEYS, LIFETIME_COUNTER_KEYS, PARTIAL_COUNTER_KEYS, VALUES
from countis.errors import CommandError, MeterConnectionError, MeterError
from countis.models import MeterIdentity, MeterReading, ValueType

SERIAL = "21170A0100042"
OTHER_SERIAL = "21170A0100099"
IDENTITY = MeterIdentity(
    vendor="SOCOMEC",
    product_name="COUNTIS",
    extended_name="COUNTIS E28",
    model="E28",
    serial_number=SERIAL,
    firmware_version="1.02",
    table_version="1.00",
    mid=True,
)


def baseline() -> dict[str, ValueType]:
    """A plausible full reading: every key of the catalogue."""
    out: dict[str, ValueType] = {}
    for value in VALUES:
        key = value.key
        if key in LIFETIME_COUNTER_KEYS:
            out[key] = 1000.0
        elif key in PARTIAL_COUNTER_KEYS:
            out[key] = 10.0
        elif key in BALANCE_KEYS:
            out[key] = 500.0
        elif key == "phase_sequence":
            out[key] = "123"
        elif key == "tariff":
            out[key] = 1
        else:
            out[key] = 230.0
    return out


class ManualClock:
    """Wall and schedule time that move only when a test says so."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        """Both clocks start at ``start``."""
        self.now = start

    def time(self) -> float:
        """Wall time."""
        return self.now

    def monotonic(self) -> float:
        """Schedule time (the same manual seconds)."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move both clocks forward."""
        self.now += seconds


@dataclass
class ScriptedMeter:
    """A meter whose readings, identity and faults the test sets (a countis MeterLink)."""

    values: dict[str, ValueType] = field(default_factory=baseline)
    identity: MeterIdentity = IDENTITY
    fault: MeterError | None = None
    tariff_reported: int | None = None  # what a tariff read-back says (None: the written one)
    reads: list[tuple[str, ...]] = field(default_factory=list)
    writes: list[tuple[str, Any]] = field(default_factory=list)
    identifications: int = 0
    generation: int = 0  # connections "opened": a fault drops the current one
    _dropped: bool = True

    def _check(self) -> None:
        if self.fault is not None:
            self._dropped = True
            raise self.fault

    async def connect(self) -> int:
        """A new connection after a fault (or the first)."""
        self._check()
        if self._dropped:
            self.generation += 1
            self._dropped = False
        return self.generation

    def reconnect(self) -> None:
        """The connection drops silently: the next request opens another."""
        self._dropped = True

    async def identify(self) -> MeterIdentity:
        """The scripted identity (or the fault)."""
        self._check()
        self.identifications += 1
        return self.identity

    async def read(self, keys: Iterable[str] | None = None) -> MeterReading:
        """The scripted values of ``keys``."""
        self._check()
        wanted = tuple(keys) if keys is not None else tuple(self.values)
        self.reads.append(wanted)
        return MeterReading(timestamp=0.0, values={k: self.values[k] for k in wanted})

    async def set_tariff(self, tariff: int, *, broadcast: bool = False) -> None:
        """Write the tariff; the read-back may disagree (``tariff_reported``)."""
        self._check()
        self.writes.append(("tariff", (tariff, broadcast)))
        reported = self.tariff_reported or tariff
        self.values["tariff"] = reported
        if reported != tariff:
            raise CommandError(f"tariff {tariff} written but the meter reports {reported}")

    async def reset_partial(self) -> None:
        """Reset the partial counters to zero."""
        self._check()
        self.writes.append(("reset_partial", None))
        for key in PARTIAL_COUNTER_KEYS:
            self.values[key] = 0.0

    def move(self, **changes: ValueType) -> None:
        """Change some values of the meter."""
        self.values.update(changes)


# -- one table of scripted readings for both front ends ---------------------------------

LOST = MeterConnectionError("127.0.0.1:502: connection lost")


@dataclass(frozen=True)
class Step:
    """Advance the clock, change the meter, poll; then these values must be published."""

    advance: float
    changes: Mapping[str, ValueType] = field(default_factory=dict)
    fault: MeterError | None = None
    expect: Mapping[str, ValueType] = field(default_factory=dict)
    note: str = ""


REALTIME_S = 1.0
ENERGY_S = 2.0
IMP = "energy_import"
PART = "partial_energy_import"
BAL = "energy_balance"

STEPS: tuple[Step, ...] = (
    Step(0.0, expect={IMP: 1000.0, PART: 10.0, BAL: 500.0, "power": 230.0},
         note="first poll: every counter confirmed by an immediate re-read"),
    Step(REALTIME_S, {"power": 1500.0}, expect={"power": 1500.0, IMP: 1000.0},
         note="realtime only"),
    Step(REALTIME_S, {IMP: 1000.01, PART: 10.01, BAL: 500.01},
         expect={IMP: 1000.01, PART: 10.01, BAL: 500.01}, note="energies move"),
    Step(ENERGY_S, {IMP: 0.0, PART: 0.0, BAL: 0.0},
         expect={IMP: 1000.01, PART: 10.01, BAL: 500.01},
         note="a zero reading: the counter is rejected, partial and balance withheld"),
    Step(ENERGY_S, {IMP: 5000.0, PART: 10.02, BAL: 500.02},
         expect={IMP: 1000.01, PART: 10.02, BAL: 500.02}, note="too fast: rejected"),
    Step(ENERGY_S, {IMP: 1000.03}, expect={IMP: 1000.03}, note="back to plausible"),
    Step(REALTIME_S, fault=LOST, expect={IMP: 1000.03}, note="the meter is away"),
    Step(REALTIME_S, {IMP: 1000.05, "power": 900.0}, expect={IMP: 1000.05, "power": 900.0},
         note="back: identified again, everything read"),
)  # fmt: skip


def replay(meter: ScriptedMeter, clock: ManualClock, step: Step) -> None:
    """Apply a step's time and changes to the scripted meter (before the poll)."""
    clock.advance(step.advance)
    meter.move(**step.changes)
    meter.fault = step.fault
