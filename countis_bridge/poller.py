"""One meter's long-lived poller: schedule, availability, guard, partial meters, commands.

A :class:`MeterPoller` owns one :class:`~countis.client.MeterClient` (one TCP connection
for the life of the bridge) and runs one task. Two groups (realtime, energy) have their
own intervals; a tick reads only the value keys of the groups that are due, in one call,
so the client fetches only their blocks. Deadlines advance by whole intervals from the
first one (no drift); a slot that passed while a poll was still running is skipped and
counted as missed, never made up in a burst. Each poller waits for its own meter only,
so a slow meter cannot delay another.

A fleet spreads its work: the service gives meter *i* a phase within the realtime interval
and an energy offset of ``i mod (energy / realtime)`` realtime intervals
(:func:`energy_offset`), so each realtime tick of the fleet carries its share of the
energy reads (21 requests each) instead of every meter reading energies in the same
second. The first poll reads every group (a full first state); failures, retries and
wake-ups never move the grid, so the spread survives an outage of the whole fleet.

The poller publishes through a :class:`Sink` (the service) without awaiting the broker:
MQTT trouble never stalls polling, and the latest values are republished on reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from countis.catalogue import PARTIAL_COUNTER_KEYS, Group, keys_for_groups
from countis.client import MeterClient
from countis.errors import CountisError, MeterError
from countis.guard import GUARDED_KEYS, CounterGuard
from countis.models import MeterIdentity, PartialAction, ValueType
from countis.partial import PartialMeter, PartialStateError

from countis_bridge import topics
from countis_bridge.commands import (
    Command,
    CommandResponse,
    PartialCommand,
    TariffCommand,
    error_response,
    ok_response,
)
from countis_bridge.mqtt import dump_json

_LOG = logging.getLogger("countis_bridge.meter")

REALTIME_KEYS = keys_for_groups({Group.REALTIME})
ENERGY_KEYS = keys_for_groups({Group.ENERGY})
ALL_KEYS = keys_for_groups({Group.REALTIME, Group.ENERGY})
_PARTIAL_KEYS = tuple(k for k in ALL_KEYS if k in PARTIAL_COUNTER_KEYS)
_REALTIME_GUARDED = any(k in GUARDED_KEYS or k in PARTIAL_COUNTER_KEYS for k in REALTIME_KEYS)
_EARLY = 1e-3  # a deadline this close counts as due (timer granularity)


@dataclass(frozen=True, slots=True, kw_only=True)
class PollerConfig:
    """Plain settings of one meter's poller (the daemon maps Settings onto these)."""

    name: str | None
    host: str
    port: int = 502
    unit: int = 5
    timeout: float = 3.0
    realtime_interval: float = 2.0
    energy_interval: float = 10.0
    read_only: bool = False
    tariff_broadcast: bool = False
    offline_after: int = 3
    backoff_cap: float = 30.0
    base_topic: str = "countis"
    per_value_topics: bool = False

    @property
    def key(self) -> str:
        """Stable config identity: the name's slug, else the Modbus address."""
        slug = topics.slugify(self.name) if self.name else ""
        return slug or f"{self.host}:{self.port}:{self.unit}"

    @property
    def label(self) -> str:
        """How log lines name the meter."""
        return self.name or f"{self.host}:{self.port} unit {self.unit}"


@dataclass(slots=True, kw_only=True)
class MeterStats:
    """Counters of one poller, for diagnostics and the benchmark (mutable on purpose)."""

    polls_done: int = 0
    polls_missed: int = 0
    failures: int = 0
    guard_rejections: int = 0
    corrupt_readings: int = 0  # a lifetime counter went down: partial/balance withheld
    last_poll_duration: float = 0.0
    commands: int = 0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return asdict(self)


class Sink(Protocol):
    """Where a poller's messages go (the service); never blocks, drops when offline."""

    def publish(self, topic: str, payload: bytes | str) -> bool:
        """Publish retained without waiting; False when dropped (broker away)."""

    def identified(self, poller: MeterPoller, previous: MeterIdentity | None) -> None:
        """A meter (re)identified: publish its discovery."""


@dataclass(slots=True)
class Slot:
    """The deadlines of one poll group (monotonic seconds)."""

    interval: float
    due: float

    def advance(self, now: float) -> int:
        """Step to the next deadline after ``now``; returns how many were skipped."""
        self.due += self.interval
        if self.due >= now:
            return 0
        missed = int((now - self.due) // self.interval) + 1
        self.due += missed * self.interval
        return missed


def energy_offset(index: int, realtime: float, energy: float) -> float:
    """Seconds from meter ``index``'s first realtime slot to its energy grid.

    Whole realtime intervals, so energy reads ride on realtime ticks: ``index mod k``
    with ``k`` realtime ticks per energy interval. Consecutive meters (which the service
    also spreads over the realtime interval) land on consecutive ticks.
    """
    ticks = max(1, int(energy / realtime + 1e-9)) if realtime > 0 else 1
    return (index % ticks) * realtime


class Backoff:
    """Capped exponential delays with a little jitter (a fleet must not retry in step)."""

    def __init__(self, first: float, cap: float) -> None:
        """Delays ``first``, ``2 first``, ... up to ``cap`` seconds."""
        self.first = first
        self.cap = max(cap, first)
        self._attempt = 0

    def next(self) -> float:
        """The next delay."""
        delay = min(self.cap, self.first * 2.0**self._attempt)
        self._attempt = min(self._attempt + 1, 32)
        return delay * random.uniform(0.9, 1.1)

    def reset(self) -> None:
        """Back to the first delay."""
        self._attempt = 0


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so a crash never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class MeterPoller:
    """Polls one meter forever; executes its commands; publishes through a sink."""

    def __init__(
        self,
        config: PollerConfig,
        *,
        sink: Sink,
        data_dir: Path,
        phase: float = 0.0,
        energy_offset: float = 0.0,
    ) -> None:
        """A poller of one meter; nothing runs before :meth:`run`.

        ``phase`` (0..1) spreads a fleet's polls over the realtime interval and
        ``energy_offset`` (seconds, see :func:`energy_offset`) its energy reads over the
        energy interval.
        """
        self.config = config
        self.sink = sink
        self.data_dir = data_dir
        self.phase = phase
        self.energy_offset = energy_offset
        self.stats = MeterStats()
        self.identity: MeterIdentity | None = None
        self.slug: str | None = topics.slugify(config.name) if config.name else None
        self.online: bool | None = None  # None until the first success or the debounce
        self.values: dict[str, ValueType] = {}
        self.last_state: bytes | None = None
        self.partial = PartialMeter()
        self.guard = CounterGuard()
        self.client: MeterClient | None = None
        self._failures = 0
        self._reidentify = True
        self._backoff = Backoff(config.realtime_interval, config.backoff_cap)
        self._commands = asyncio.Lock()
        self._slots: tuple[Slot, Slot] | None = None
        self._waker: asyncio.Future[None] | None = None
        self._poll_now = False  # wake(): poll at once, off the grid
        self._with_energy = True  # read the energy group with the next poll, due or not

    # -- the poll loop -------------------------------------------------------------------

    async def run(self) -> None:
        """Poll until cancelled (errors are counted and retried, never raised)."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        first = loop.time() + self.phase * cfg.realtime_interval
        realtime = Slot(cfg.realtime_interval, first)
        energy = Slot(cfg.energy_interval, first + self.energy_offset)
        self._slots = (realtime, energy)
        self._with_energy = True  # the first poll reads everything: a full first state
        retry_at: float | None = None  # set while failing: the next attempt, off the grid
        async with MeterClient(cfg.host, cfg.port, cfg.unit, cfg.timeout) as client:
            self.client = client
            try:
                while True:
                    _raise_if_cancelling()
                    await self._sleep_until(self._next_poll(retry_at))
                    now = loop.time() + _EARLY
                    rt_slot, en_slot = realtime.due <= now, energy.due <= now
                    rt_due = rt_slot or self._poll_now or retry_at is not None
                    en_due = en_slot or self._with_energy
                    if not (rt_due or en_due):
                        continue  # woken early with nothing due
                    self._poll_now = self._with_energy = False  # a wake-up from now on counts
                    try:
                        await self._poll(realtime=rt_due, energy=en_due)
                    except MeterError as err:
                        retry_at = loop.time() + self._failed(err)
                        self._with_energy = True  # read everything once the meter is back
                        continue
                    now = loop.time()
                    recovering, retry_at = retry_at is not None, None
                    for slot, served in ((realtime, rt_slot), (energy, en_slot)):
                        if recovering:
                            if slot.due <= now:  # slots of the outage: failures, not misses
                                slot.advance(now)
                        elif served:
                            self.stats.polls_missed += slot.advance(now)
            finally:
                self.client = None

    def _next_poll(self, retry_at: float | None) -> float:
        """When to poll next (loop time): now after a wake-up, the retry, else the grid."""
        if self._poll_now:
            return -math.inf
        if retry_at is not None:
            return retry_at
        assert self._slots is not None
        realtime, energy = self._slots
        return min(realtime.due, energy.due)

    async def _sleep_until(self, when: float) -> None:
        """Sleep until ``when`` (loop time) unless :meth:`wake` is called first."""
        loop = asyncio.get_running_loop()
        if when <= loop.time():
            return
        waker = self._waker = loop.create_future()
        handle = loop.call_at(when, _resolve, waker)
        try:
            await waker
        finally:
            handle.cancel()
            self._waker = None

    def wake(self, *, energy: bool = True) -> None:
        """Poll now (the energy group too, e.g. after another meter's tariff broadcast).

        An extra poll off the grid: the schedule's deadlines stay where they are.
        """
        self._poll_now = True
        self._with_energy = self._with_energy or energy
        if self._waker is not None:
            _resolve(self._waker)

    async def _poll(self, *, realtime: bool, energy: bool) -> None:
        started = time.time()
        t0 = time.perf_counter()
        client = self._client()
        if self._reidentify:
            await self._identify(client)
        keys = ALL_KEYS if realtime and energy else REALTIME_KEYS if realtime else ENERGY_KEYS
        reading = await client.read(keys)
        self._succeeded()
        if energy or _REALTIME_GUARDED:
            accepted = self._accept(reading.values, reading.timestamp)
        else:  # realtime values carry no counters: nothing for the guard or partial meters
            accepted = reading.values
            self.values.update(accepted)
        self.publish_state(started, keys=accepted)
        self.stats.polls_done += 1
        self.stats.last_poll_duration = time.perf_counter() - t0

    def _client(self) -> MeterClient:
        if self.client is None:
            msg = f"{self.config.label}: not connected"
            raise MeterError(msg)
        return self.client

    def _accept(self, raw: Mapping[str, ValueType], timestamp: float) -> Mapping[str, ValueType]:
        """Screening, partial offsets, then the counter guard; merge what passes into ``values``.

        A corrupt reading (a lifetime counter went down) keeps its partial and balance
        values away from the partial meters and the state: they keep their last values.
        """
        screened = self.guard.screen(raw)
        if screened.suspect:
            self.stats.corrupt_readings += 1
            _LOG.debug(
                "%s: corrupt reading (%s went down): withheld %s",
                self.config.label,
                sorted(screened.corrupt),
                sorted(screened.withheld),
            )
        values = self.partial.apply(screened.values)
        if self.partial.meter_reset_detected:
            self.guard.note_partial_reset()
            self._save_partial()
        result = self.guard.check(values, timestamp)
        if result.rejected:
            self.stats.guard_rejections += len(result.rejected)
            _LOG.debug("%s: guard rejected %s", self.config.label, dict(result.rejected))
        self.values.update(result.values)
        return result.values

    async def _identify(self, client: MeterClient) -> None:
        identity = await client.identify()
        self._reidentify = False
        previous = self.identity
        if previous is not None and previous.serial_number == identity.serial_number:
            self.identity = identity
            return
        if previous is not None:
            _LOG.warning(
                "%s: serial changed from %s to %s (another meter at this address)",
                self.config.label,
                previous.serial_number,
                identity.serial_number,
            )
        self.identity = identity
        self.slug = topics.meter_slug(self.config.name, identity.serial_number)
        self.values.clear()
        self.last_state = None
        self.guard = CounterGuard()
        self.partial = self._load_partial(identity.serial_number)
        self.sink.identified(self, previous)

    # -- availability --------------------------------------------------------------------

    def _succeeded(self) -> None:
        if self.online is not True:
            failures = self._failures
            self.online = True
            identity = self.identity
            detail = f"{identity.name} serial {identity.serial_number}" if identity else ""
            after = f" after {failures} failed polls" if failures else ""
            _LOG.info("%s online (%s)%s", self.config.label, detail, after)
            self.publish_availability()
        self._failures = 0
        self._backoff.reset()

    def _failed(self, err: MeterError) -> float:
        """Count a failed poll; returns the delay before the next attempt."""
        self.stats.failures += 1
        self._failures += 1
        self._reidentify = True  # the device behind the address may have changed
        if self._failures >= self.config.offline_after:
            if self.online is not False:
                self.online = False
                _LOG.warning(
                    "%s offline after %d failed polls: %s", self.config.label, self._failures, err
                )
                self.publish_availability()
            # Offline: retry with capped backoff rather than at the poll cadence.
            return self._backoff.next()
        # Not yet offline (debounce): retry at the normal cadence.
        return self.config.realtime_interval

    # -- publishing ----------------------------------------------------------------------

    def publish_availability(self) -> None:
        """Publish the meter's availability (once known and the topic slug is known)."""
        if self.slug is None or self.online is None:
            return
        payload = b"online" if self.online else b"offline"
        self.sink.publish(topics.meter_availability(self.config.base_topic, self.slug), payload)

    def publish_state(self, timestamp: float, *, keys: Mapping[str, Any] | None = None) -> None:
        """Publish the merged state (every value key seen so far) and per-value topics."""
        if self.slug is None:
            return
        state: dict[str, Any] = dict(self.values)
        state["timestamp"] = timestamp
        state["partial_running"] = self.partial.running
        self.last_state = dump_json(state)
        base = self.config.base_topic
        self.sink.publish(topics.state(base, self.slug), self.last_state)
        if self.config.per_value_topics:
            self.publish_values(self.values if keys is None else keys)

    def publish_values(self, values: Mapping[str, Any]) -> None:
        """Per-value topics: plain text numbers/strings (Node-RED friendly)."""
        if self.slug is None:
            return
        base, slug = self.config.base_topic, self.slug
        for key, value in values.items():
            self.sink.publish(topics.value(base, slug, key), str(value))

    def republish(self) -> None:
        """After a broker (re)connect or HA restart: availability and the last state.

        An offline meter gets its availability only: nothing that looks like a reading.
        """
        self.publish_availability()
        if self.last_state is not None and self.slug is not None and self.online:
            self.sink.publish(topics.state(self.config.base_topic, self.slug), self.last_state)
            if self.config.per_value_topics:
                self.publish_values(self.values)

    # -- commands ------------------------------------------------------------------------

    async def execute(self, command: Command) -> CommandResponse:
        """Run a command; every failure becomes an error response."""
        self.stats.commands += 1
        cid = command.correlation_id
        if self.config.read_only:
            return error_response(command.name, "the meter is read-only", cid)
        async with self._commands:  # commands of one meter run in arrival order
            try:
                if self.identity is None or self.client is None:
                    msg = "the meter has not been reached yet"
                    raise MeterError(msg)
                if isinstance(command, TariffCommand):
                    await self._set_tariff(self.client, command.tariff)
                else:
                    await self._partial(self.client, command)
            except CountisError as err:
                _LOG.warning("%s: %s command failed: %s", self.config.label, command.name, err)
                return error_response(command.name, str(err), cid)
        return ok_response(command)

    async def _set_tariff(self, client: MeterClient, tariff: int) -> None:
        started = time.time()
        await client.set_tariff(tariff, broadcast=self.config.tariff_broadcast)
        reading = await client.read(("tariff",))  # read back what the meter now says
        self.values.update(reading.values)
        self.publish_state(started, keys=reading.values)

    async def _partial(self, client: MeterClient, command: PartialCommand) -> None:
        started = time.time()
        if command.action is PartialAction.RESET:
            await client.reset_partial()
            self.partial.reset()
            self.guard.note_partial_reset()
            self._save_partial()
            reading = await client.read(_PARTIAL_KEYS)
            self._accept(reading.values, reading.timestamp)  # zeros, allowed after a reset
        elif command.action is PartialAction.STOP:
            self.partial.stop()
            self._save_partial()
        else:
            self.partial.start()
            self._save_partial()
        partial = {k: self.values[k] for k in _PARTIAL_KEYS if k in self.values}
        self.publish_state(started, keys=partial)

    # -- persisted partial-meter state ---------------------------------------------------

    def _partial_path(self, serial: str) -> Path:
        return self.data_dir / f"partial-{topics.slugify(serial) or 'meter'}.json"

    def _load_partial(self, serial: str) -> PartialMeter:
        path = self._partial_path(serial)
        try:
            return PartialMeter.from_json(path.read_bytes())
        except FileNotFoundError:
            return PartialMeter()
        except (OSError, PartialStateError) as err:
            _LOG.warning("%s: ignoring partial-meter state %s: %s", self.config.label, path, err)
            return PartialMeter()

    def _save_partial(self) -> None:
        if self.identity is None:
            return
        path = self._partial_path(self.identity.serial_number)
        try:
            write_atomic(path, self.partial.to_json())
        except OSError as err:
            _LOG.warning("%s: cannot save partial-meter state %s: %s", self.config.label, path, err)


def _raise_if_cancelling() -> None:
    """Stop a task that was asked to stop but whose cancellation a library swallowed.

    Python 3.11's ``asyncio.wait_for`` (pymodbus and aiomqtt use it) returns the result
    instead of raising when the cancellation arrives in the same loop iteration as the
    answer. The task's cancellation request stays counted (``Task.cancelling``), so the
    poll loop checks it: otherwise that meter would go on polling and the bridge would
    never stop (seen at 1000 meters, where many answers and the stop meet).
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
