"""One meter's poller: runs its :class:`~countis.session.MeterSession` and publishes it.

The session decides what to read, when, and what counts as a good value; the poller only
sleeps until the session's next poll, runs it, and turns what changed into MQTT messages
through a :class:`Sink` (the service) without awaiting the broker: MQTT trouble never
stalls polling, and the latest state is republished on reconnect.

Availability is the one gate for state: nothing but the availability itself is published
for a meter that is offline, and every state carries the timestamp of the reading its
newest values come from. An outage logs one WARNING when it starts and one INFO when it
ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from countis.client import MeterClient
from countis.clock import Clock
from countis.config import MeterConfig
from countis.errors import CountisError, MeterError
from countis.models import MeterIdentity
from countis.session import MeterLink, MeterSession, PollResult, SessionStats
from countis.tariff_master import TariffLine

from countis_bridge import topics
from countis_bridge.commands import (
    Command,
    CommandResponse,
    TariffCommand,
    error_response,
    ok_response,
)
from countis_bridge.mqtt import dump_json
from countis_bridge.partial_store import FilePartialStore

_LOG = logging.getLogger("countis_bridge.meter")


class Sink(Protocol):
    """Where a poller's messages go (the service); never blocks, drops when offline."""

    def publish(self, topic: str, payload: bytes | str) -> bool:
        """Publish retained without waiting; False when dropped (broker away)."""

    def identified(self, poller: MeterPoller, previous: MeterIdentity | None) -> None:
        """A meter (re)identified: publish its discovery."""


class MeterPoller:
    """Polls one meter forever; executes its commands; publishes through a sink."""

    def __init__(
        self,
        config: MeterConfig,
        *,
        sink: Sink,
        store: FilePartialStore,
        base_topic: str,
        per_value_topics: bool = False,
        phase: float = 0.0,
        energy_offset: float = 0.0,
        link: MeterLink | None = None,
        clock: Clock | None = None,
        tariff_line: TariffLine | None = None,
    ) -> None:
        """A poller of one meter; nothing runs before :meth:`run`.

        ``phase`` (0..1) spreads a fleet's polls over the realtime interval and
        ``energy_offset`` (seconds, see :func:`countis.schedule.energy_offset`) its energy
        reads over the energy interval.
        """
        self.config = config
        self.sink = sink
        self.store = store
        self.base_topic = base_topic
        self.per_value_topics = per_value_topics
        self.phase = phase
        self.energy_offset = energy_offset
        self.client = MeterClient.for_meter(config)
        self.session = MeterSession(
            config,
            link or self.client,
            clock=clock,
            store=store,
            energy_offset=energy_offset,
            tariff_line=tariff_line,
            keep_raw=False,  # no diagnostics here: a fleet saves the memory
        )
        self.slug: str | None = topics.slugify(config.name) if config.name else None
        self.last_state: bytes | None = None
        self._announced: MeterIdentity | None = None  # the meter discovery was sent for
        self._waker: asyncio.Future[None] | None = None

    @property
    def identity(self) -> MeterIdentity | None:
        """The meter's identity once it answered."""
        return self.session.identity

    @property
    def online(self) -> bool | None:
        """Whether the meter answers (None until the first success or the debounce)."""
        return self.session.online

    @property
    def stats(self) -> SessionStats:
        """The session's counters."""
        return self.session.stats

    # -- the poll loop -------------------------------------------------------------------

    async def run(self) -> None:
        """Poll until cancelled (errors are counted and retried, never raised)."""
        clock = self.session.clock
        self.session.anchor(clock.monotonic() + self.phase * self.config.realtime_interval)
        try:
            while True:
                _raise_if_cancelling()
                await self._sleep_until(self.session.next_poll_at())
                await self.poll_once()
        finally:
            self.client.close()
            self.store.flush()

    async def poll_once(self) -> None:
        """Run the session's poll (if one is due) and publish what changed."""
        was, failures = self.session.online, self.session.failures
        try:
            result = await self.session.poll()
        except MeterError as err:
            self._availability(was, failures, err)
            return
        if result is None:
            return  # woken early with nothing due
        self._availability(was, failures)
        if result.identified is not None:
            self._identified(result.identified)
        self.publish_state(result)

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
        """Poll now (the energy group too, e.g. after another meter's tariff broadcast)."""
        self.session.wake(energy=energy)
        if self._waker is not None:
            _resolve(self._waker)

    def tariff_signal(self, payload: bytes, *, retained: bool) -> None:
        """A message of the tariff plan's signal: poll at once when it asks for a switch."""
        if self.session.tariff_signal(payload, retained=retained):
            self.wake(energy=False)

    def _identified(self, identity: MeterIdentity) -> None:
        previous = self._announced
        if previous is not None:
            _LOG.warning(
                "%s: serial changed from %s to %s (another meter at this address)",
                self.config.label,
                previous.serial_number,
                identity.serial_number,
            )
        self._announced = identity
        self.slug = topics.meter_slug(self.config.name, identity.serial_number)
        self.last_state = None
        self.sink.identified(self, previous)

    # -- availability --------------------------------------------------------------------

    def _availability(self, was: bool | None, failures: int, err: MeterError | None = None) -> None:
        """Log and publish a change of the meter's availability (``failures``: before)."""
        now = self.session.online
        if now == was:
            return
        if now:
            identity = self.session.identity
            detail = f"{identity.name} serial {identity.serial_number}" if identity else ""
            after = f" after {failures} failed polls" if failures else ""
            _LOG.info("%s online (%s)%s", self.config.label, detail, after)
        elif now is False:
            _LOG.warning(
                "%s offline after %d failed polls: %s",
                self.config.label,
                self.session.failures,
                err or self.session.last_error,
            )
        self.publish_availability()

    # -- publishing ----------------------------------------------------------------------

    def publish_availability(self) -> None:
        """Publish the meter's availability (once known and the topic slug is known)."""
        if self.slug is None or self.online is None:
            return
        payload = b"online" if self.online else b"offline"
        self.sink.publish(topics.meter_availability(self.base_topic, self.slug), payload)

    def publish_state(self, result: PollResult) -> None:
        """Publish the merged state and the per-value topics of what ``result`` read.

        Only while the meter is online: an offline meter has no state worth showing.
        """
        if self.slug is None or not self.online:
            return
        state: dict[str, Any] = dict(self.session.values)
        state["timestamp"] = self.session.timestamp
        state["partial_running"] = self.session.partial.running
        state.update(self._tariff_state())
        self.last_state = dump_json(state)
        self.sink.publish(topics.state(self.base_topic, self.slug), self.last_state)
        if self.per_value_topics:
            self.publish_values(result.values)

    def _tariff_state(self) -> dict[str, Any]:
        """The tariff master's view for the state (the next change as ISO 8601, UTC)."""
        plan = self.session.tariff_state()
        change = plan.get("next_tariff_change")
        if change is not None:
            plan["next_tariff_change"] = datetime.fromtimestamp(change, UTC).isoformat()
        return plan

    def publish_values(self, values: Mapping[str, Any]) -> None:
        """Per-value topics: plain text numbers/strings (Node-RED friendly)."""
        if self.slug is None:
            return
        base, slug = self.base_topic, self.slug
        for key, value in values.items():
            self.sink.publish(topics.value(base, slug, key), str(value))

    def republish(self) -> None:
        """After a broker (re)connect or HA restart: availability and the last state.

        An offline meter gets its availability only: nothing that looks like a reading.
        """
        self.publish_availability()
        if self.last_state is not None and self.slug is not None and self.online:
            self.sink.publish(topics.state(self.base_topic, self.slug), self.last_state)
            if self.per_value_topics:
                self.publish_values(self.session.values)

    # -- commands ------------------------------------------------------------------------

    async def execute(self, command: Command) -> CommandResponse:
        """Run a command; every failure becomes an error response."""
        try:
            if isinstance(command, TariffCommand):
                result = await self.session.set_tariff(command.tariff)
            else:
                result = await self.session.partial_command(command.action)
        except CountisError as err:
            _LOG.warning("%s: %s command failed: %s", self.config.label, command.name, err)
            return error_response(command.name, str(err), command.correlation_id)
        self.publish_state(result)
        return ok_response(command)


def _raise_if_cancelling() -> None:
    """Stop a task that was asked to stop but whose cancellation a library swallowed.

    Python 3.11's ``asyncio.wait_for`` (aiomqtt uses it) returns the result instead of
    raising when the cancellation arrives in the same loop iteration as the answer. The
    task's cancellation request stays counted (``Task.cancelling``), so the poll loop
    checks it: otherwise that meter would go on polling and the bridge would never stop
    (seen at 1000 meters, where many answers and the stop meet).
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
