"""One meter's session: the whole per-reading pipeline, shared by the daemon and Home Assistant.

A :class:`MeterSession` owns, for one configured meter:

- **identity**: it identifies the meter on every new connection, before trusting a value
  read over it, and after every failure (a reconnect may reach another device: DHCP, a
  swapped meter). With an expected
  serial (``MeterConfig.serial``; Home Assistant's entries have one) another meter at the
  address fails the poll with :class:`~countis.errors.WrongMeterError`: none of its values
  is kept or judged. Without one (the daemon follows the configured address) the session
  adopts the new meter: fresh guard, its own partial-meter state, and the caller
  announces it under its own serial.
- **schedule**: which groups are due (:class:`~countis.schedule.PollSchedule`), retries
  and availability (``online`` turns False after ``offline_after`` failures in a row).
- **the pipeline** for each reading: screen (a lifetime counter went down: withhold what
  may drop) -> partial meters (start/stop offsets) -> counter guard. A counter's first
  value is held by the guard until a second reading confirms it; the session reads the
  energy group again at once, so the first state is complete.
- **values**: the last accepted value of every key. A value the guard rejects, or that a
  corrupt reading withholds, keeps its last accepted value: never a wrong one.
- **commands** with read-back (tariff) or a fresh reading (partial start/stop/reset), and
  **stats**.

The clock and the link to the meter are injected: unit tests run it with a scripted link
and a manual clock, without sockets or sleeps. The caller decides when to poll
(:meth:`next_poll_at`), and what to publish and log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from countis.catalogue import PARTIAL_COUNTER_KEYS, Group, keys_for_groups
from countis.clock import Clock, SystemClock
from countis.config import MeterConfig
from countis.errors import MeterConnectionError, MeterError, ReadOnlyError, WrongMeterError
from countis.guard import CounterGuard, GuardLimits, Reason
from countis.models import MeterIdentity, MeterReading, PartialAction, ValueType
from countis.partial import PartialMeter, PartialStateError
from countis.schedule import EARLY, Due, PollSchedule
from countis.tariff_master import TariffLine, TariffMaster

REALTIME_KEYS = keys_for_groups({Group.REALTIME})
ENERGY_KEYS = keys_for_groups({Group.ENERGY})
ALL_KEYS = keys_for_groups({Group.REALTIME, Group.ENERGY})
PARTIAL_KEYS = tuple(k for k in ALL_KEYS if k in PARTIAL_COUNTER_KEYS)
_LOG = logging.getLogger(__name__)


class MeterLink(Protocol):
    """What the session needs of a meter (:class:`countis.client.MeterClient` is one)."""

    @property
    def generation(self) -> int:
        """The number of the connection in use (a new one may reach another device)."""
        ...

    async def connect(self) -> int:
        """Open the connection unless it is open; its number."""
        ...

    async def identify(self) -> MeterIdentity:
        """The meter's identification."""
        ...

    async def read(self, keys: Iterable[str] | None = None) -> MeterReading:
        """The values of ``keys``."""
        ...

    async def set_tariff(self, tariff: int, *, broadcast: bool = False) -> None:
        """Switch the active tariff and confirm it by reading it back."""
        ...

    async def reset_partial(self) -> None:
        """Reset the meter's partial counters."""
        ...


class PartialStore(Protocol):
    """Where a meter's partial-meter state lives between runs (per serial number)."""

    async def load(self, serial: str) -> Mapping[str, Any] | None:
        """The saved state, or None."""
        ...

    def save(self, serial: str, state: Mapping[str, Any], *, urgent: bool) -> None:
        """Keep ``state``; ``urgent``: a command or a detected reset changed it (write now)."""
        ...


@dataclass(slots=True, kw_only=True)
class SessionStats:
    """Counters of one session, for diagnostics and the benchmark (mutable on purpose)."""

    polls_done: int = 0
    polls_missed: int = 0
    failures: int = 0
    guard_rejections: int = 0
    corrupt_readings: int = 0  # a lifetime counter went down: partial/balance withheld
    held_rereads: int = 0  # immediate second reads that confirmed first values
    last_poll_duration: float = 0.0
    commands: int = 0
    tariff_switches: int = 0  # writes the tariff plan made at its boundaries (or at start)
    tariff_reasserts: int = 0  # writes because the meter reported another tariff

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return asdict(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class PollResult:
    """What one poll or command changed."""

    timestamp: float  # when the values were read (the session clock's time)
    values: Mapping[str, ValueType]  # keys this poll read, with the values now kept for them
    identified: MeterIdentity | None = None  # a meter was (re)identified as a new one
    rejected: Mapping[str, Reason] = field(default_factory=dict)
    withheld: frozenset[str] = frozenset()  # left out of a corrupt reading

    def __post_init__(self) -> None:
        """Freeze the mappings (a frozen one, a reading's values, is kept as it is)."""
        for name in ("values", "rejected"):
            mapping = getattr(self, name)
            if not isinstance(mapping, MappingProxyType):
                object.__setattr__(self, name, MappingProxyType(dict(mapping)))


class MeterSession:
    """One meter's identity, schedule, pipeline, values and commands."""

    def __init__(
        self,
        config: MeterConfig,
        link: MeterLink,
        *,
        clock: Clock | None = None,
        store: PartialStore | None = None,
        start: float | None = None,
        energy_offset: float = 0.0,
        guard_limits: GuardLimits | None = None,
        tariff_line: TariffLine | None = None,
        keep_raw: bool = True,
    ) -> None:
        """A session that has not talked to the meter yet.

        ``keep_raw``: remember the raw readings (:attr:`raw`, for diagnostics).
        ``start`` is the first poll's time on the schedule's clock (None: whenever the
        session is first asked, see :meth:`anchor`); ``energy_offset`` puts
        this meter's energy reads on a later realtime tick (see
        :func:`countis.schedule.energy_offset`).
        """
        self.config = config
        self.link = link
        self.clock: Clock = clock or SystemClock()
        self.store = store
        self._energy_offset = energy_offset
        self._grid = self._schedule(start) if start is not None else None
        self.stats = SessionStats()
        self.identity: MeterIdentity | None = None
        self.online: bool | None = None  # None until the first success or the debounce
        self.failures = 0  # in a row
        self.last_error: MeterError | None = None
        self.values: dict[str, ValueType] = {}
        self.raw: dict[str, ValueType] = {}  # the last raw value of every key (diagnostics)
        self._keep_raw = keep_raw  # a fleet saves the memory: the daemon has no diagnostics
        self.timestamp: float | None = None  # of the newest reading behind ``values``
        self.partial = PartialMeter()
        self._limits = guard_limits
        self.guard = CounterGuard(guard_limits)
        self._identified_on: int | None = None  # the connection the identity was read on
        self._lock = asyncio.Lock()  # polls and commands take turns on the meter
        plan = config.tariff_plan
        self.tariff = TariffMaster(plan) if plan is not None else None
        self._tariff_line = tariff_line if config.tariff_broadcast else None
        self._asserted: int | None = None  # the tariff last written or confirmed for the plan

    # -- polling -------------------------------------------------------------------------

    def _schedule(self, start: float) -> PollSchedule:
        cfg = self.config
        return PollSchedule(
            realtime=cfg.realtime_interval,
            energy=cfg.energy_interval,
            start=start,
            energy_offset=self._energy_offset,
            retry_cap=cfg.retry_cap,
        )

    def anchor(self, start: float) -> None:
        """Put the first poll at ``start`` (the schedule clock's time); the grid follows."""
        self._grid = self._schedule(start)

    @property
    def schedule(self) -> PollSchedule:
        """The poll schedule (anchored now if nobody anchored it before)."""
        if self._grid is None:
            self._grid = self._schedule(self.clock.monotonic())
        return self._grid

    def next_poll_at(self) -> float:
        """When the next poll is due (the schedule clock's time; -inf: at once)."""
        return self.schedule.next_at()

    def wake(self, *, energy: bool = True) -> None:
        """Poll at once (e.g. after another meter's tariff broadcast); the grid stays."""
        self.schedule.wake(energy=energy)

    async def poll(self, *, early: float = EARLY, force: bool = False) -> PollResult | None:
        """Read what is due and run it through the pipeline; None if nothing is due.

        A failure is counted (availability, retry time) and raised as MeterError.
        ``force``: read now whatever the grid says (Home Assistant schedules its own polls).
        """
        due = self.schedule.due(self.clock.monotonic(), early=early, force=force)
        if due is None:
            return None
        async with self._lock:
            started = time.perf_counter()
            try:
                result = await self._poll(due)
            except MeterError as err:
                self._failed(err)
                raise
            self.stats.polls_missed += self.schedule.succeeded(due, self.clock.monotonic())
            self._succeeded()
            await self._follow_plan(fresh="tariff" in result.values)
            self.stats.polls_done += 1
            self.stats.last_poll_duration = time.perf_counter() - started
            return result

    async def _poll(self, due: Due) -> PollResult:
        # Every new connection may reach another device (DHCP, a swapped meter): identify
        # on it before trusting a value read over it.
        identified = None
        if await self.link.connect() != self._identified_on:
            identified = await self._identify()
        keys = ENERGY_KEYS if not due.realtime else ALL_KEYS if due.energy else REALTIME_KEYS
        stamp = self.clock.time()
        reading = await self.link.read(keys)
        if self.link.generation != self._identified_on:
            self._identified_on = None
            msg = f"{self.config.label}: reconnected during the read (identity unchecked)"
            raise MeterConnectionError(msg)
        if not due.energy:  # realtime values carry no counters: nothing to judge
            self._keep(reading.values, reading.values, stamp)
            return PollResult(timestamp=stamp, values=reading.values, identified=identified)
        result = self._judge(reading.values, stamp)
        if result.held:
            # The guard holds a counter's first value until a second reading agrees (start,
            # a new meter): confirm at once so the first state carries every counter.
            self.stats.held_rereads += 1
            stamp = self.clock.time()
            again = await self.link.read(ENERGY_KEYS)
            result = self._judge(again.values, stamp, earlier=result)
        self._save_partial(urgent=self.partial.meter_reset_detected)
        values = {key: self.values[key] for key in result.read if key in self.values}
        return PollResult(
            timestamp=stamp,
            values=values,
            identified=identified,
            rejected=result.rejected,
            withheld=result.withheld,
        )

    def _judge(
        self, raw: Mapping[str, ValueType], stamp: float, earlier: _Judged | None = None
    ) -> _Judged:
        """Screen, partial meters, guard; keep what passes. ``earlier``: merged into it."""
        screened = self.guard.screen(raw)
        if screened.suspect:
            self.stats.corrupt_readings += 1
        adjusted = self.partial.apply(screened.values)
        if self.partial.meter_reset_detected:
            self.guard.note_partial_reset()  # reset on the front panel or while we were away
        checked = self.guard.check(adjusted, stamp)
        self.stats.guard_rejections += len(checked.rejected)
        self._keep(raw, checked.values, stamp)
        judged = _Judged(
            read=frozenset(raw),
            rejected=dict(checked.rejected),
            withheld=screened.withheld,
            held=bool(checked.held),
        )
        return judged.after(earlier) if earlier else judged

    def _keep(
        self, raw: Mapping[str, ValueType], accepted: Mapping[str, ValueType], stamp: float
    ) -> None:
        if self._keep_raw:
            self.raw.update(raw)
        self.values.update(accepted)
        self.timestamp = stamp

    async def _identify(self) -> MeterIdentity | None:
        """Identify the meter; returns it when it is another one than before (or the first)."""
        identity = await self.link.identify()
        expected = self.config.serial
        if expected is not None and identity.serial_number != expected:
            msg = (
                f"{self.config.where} unit {self.config.unit} is meter {identity.serial_number},"
                f" not {expected}"
            )
            raise WrongMeterError(msg, found=identity.serial_number, expected=expected)
        self._identified_on = self.link.generation
        previous, self.identity = self.identity, identity
        if previous is not None and previous.serial_number == identity.serial_number:
            return None
        # Another meter (or the first): nothing of the previous one carries over.
        self.values.clear()
        self.raw.clear()
        self.timestamp = None
        self.guard = CounterGuard(self._limits)
        self.partial = await self._load_partial(identity.serial_number)
        return identity

    def _succeeded(self) -> None:
        self.failures = 0
        self.last_error = None
        self.online = True

    def _failed(self, err: MeterError) -> None:
        self.stats.failures += 1
        self.failures += 1
        self.last_error = err
        self._identified_on = None  # identify again, whatever connection comes next
        offline = self.failures >= self.config.offline_after
        if offline:
            self.online = False
        self.schedule.failed(self.clock.monotonic(), back_off=offline)

    # -- commands ------------------------------------------------------------------------

    def _check_writable(self) -> None:
        if self.config.read_only:
            raise ReadOnlyError("the meter is read-only")
        if self.identity is None:
            raise MeterError("the meter has not been reached yet")

    async def set_tariff(self, tariff: int) -> PollResult:
        """Switch the active tariff (1 or 2), confirmed by read-back."""
        self.stats.commands += 1
        self._check_writable()
        async with self._lock:
            stamp = self.clock.time()
            try:
                await self.link.set_tariff(tariff, broadcast=self.config.tariff_broadcast)
            except MeterError:
                self.schedule.wake()  # read what the meter says now, at once
                raise
            self._keep({"tariff": tariff}, {"tariff": tariff}, stamp)
            if self.tariff is not None:
                self.tariff.manual(tariff, stamp)  # until the plan's next switch
                self.tariff.record(stamp, tariff, "manual")
                self._asserted = tariff
        return PollResult(timestamp=stamp, values={"tariff": tariff})

    async def partial_command(self, action: PartialAction) -> PollResult:
        """Start or stop (in the session) or reset (in the meter) the partial meters.

        Each acts on a fresh reading of the partial counters, so the freeze point of a stop
        is the meter's value now, not one energy poll ago.
        """
        self.stats.commands += 1
        self._check_writable()
        async with self._lock:
            if action is PartialAction.RESET:
                await self.link.reset_partial()
                self.partial.reset()
                self.guard.note_partial_reset()
            stamp = self.clock.time()
            reading = await self.link.read(PARTIAL_KEYS)
            self._judge(reading.values, stamp)
            if action is PartialAction.START:
                self.partial.start()
            elif action is PartialAction.STOP:
                self.partial.stop()
            self._save_partial(urgent=True)
        values = {key: self.values[key] for key in PARTIAL_KEYS if key in self.values}
        return PollResult(timestamp=stamp, values=values)

    # -- the tariff plan -----------------------------------------------------------------

    def tariff_signal(self, payload: str | bytes, *, retained: bool = False) -> bool:
        """A message of the plan's signal; True (and a poll at once) when it asks a switch."""
        if self.tariff is None:
            return False
        changed = self.tariff.signal(payload, now=self.clock.time(), retained=retained)
        if changed:
            self.wake(energy=False)
        return changed

    def tariff_state(self) -> dict[str, Any]:
        """What the tariff master says now (empty without a plan).

        ``tariff_planned`` (1, 2 or None: not known yet), ``next_tariff_change`` (Unix
        seconds or None) and ``tariff_source`` (``schedule``, ``signal`` or ``manual``).
        """
        if self.tariff is None:
            return {}
        now = self.clock.time()
        return {
            "tariff_planned": self.tariff.planned(now),
            "next_tariff_change": self.tariff.next_change(now),
            "tariff_source": self.tariff.source.value,
        }

    async def _follow_plan(self, *, fresh: bool) -> None:
        """Switch at the plan's boundaries; re-assert when a fresh read-back disagrees.

        Called after every successful poll (within one realtime interval of a boundary);
        ``fresh``: this poll read the meter's tariff. A failed write is logged and retried
        at the next poll: it never makes the poll a failure.
        """
        master = self.tariff
        if master is None:
            return
        now = self.clock.time()
        want = master.planned(now)
        active = self.values.get("tariff")
        if want is None or (want == self._asserted and (not fresh or active == want)):
            return
        if want != self._asserted and active == want:
            self._asserted = want  # already there (a restart inside the window, say)
            return
        reassert = want == self._asserted
        try:
            await self._write_tariff(want, now, broadcast=not reassert)
        except MeterError as err:
            _LOG.warning("%s: cannot switch to tariff T%d: %s", self.config.label, want, err)
            return
        self._asserted = want
        if reassert:
            self.stats.tariff_reasserts += 1
            _LOG.info(
                "%s: tariff re-asserted to T%d (the meter reported T%s)",
                self.config.label,
                want,
                active,
            )
        else:
            self.stats.tariff_switches += 1
        master.record(now, want, "reassert" if reassert else "plan")

    async def _write_tariff(self, tariff: int, now: float, *, broadcast: bool) -> None:
        """Write the tariff (by broadcast for a line of meters) and keep the read-back."""
        line = self._tariff_line  # the caller (a poll) holds the session's lock
        if not broadcast or line is None:
            await self.link.set_tariff(tariff)
        else:
            async with line.lock:
                if line.tariff == tariff:
                    # A sibling broadcast this switch: read ours back, write if it missed.
                    reading = await self.link.read(("tariff",))
                    if reading.values.get("tariff") != tariff:
                        await self.link.set_tariff(tariff)
                else:
                    await self.link.set_tariff(tariff, broadcast=True)
                    line.tariff = tariff
        self._keep({"tariff": tariff}, {"tariff": tariff}, now)

    # -- partial-meter state -------------------------------------------------------------

    async def _load_partial(self, serial: str) -> PartialMeter:
        if self.store is None:
            return PartialMeter()
        data = await self.store.load(serial)
        if data is None:
            return PartialMeter()
        try:
            return PartialMeter.from_dict(data)
        except PartialStateError as err:
            _LOG.warning("%s: ignoring the saved partial-meter state: %s", self.config.label, err)
            return PartialMeter()

    def _save_partial(self, *, urgent: bool) -> None:
        if self.store is not None and self.identity is not None:
            self.store.save(self.identity.serial_number, self.partial.to_dict(), urgent=urgent)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Judged:
    """One pass of a reading through the pipeline."""

    read: frozenset[str]
    rejected: dict[str, Reason]
    withheld: frozenset[str]
    held: bool

    def after(self, earlier: _Judged) -> _Judged:
        """The pass of a confirming re-read, merged with the ``earlier`` one (keys of both)."""
        return _Judged(
            read=self.read | earlier.read,
            rejected={**earlier.rejected, **self.rejected},
            withheld=self.withheld,
            held=self.held,
        )
