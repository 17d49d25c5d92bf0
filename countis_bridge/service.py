"""The bridge supervisor: one TaskGroup with the broker session and one poller per meter.

- The broker task connects (LWT + birth), subscribes to the command topics and Home
  Assistant's status, clears meters removed from the configuration, republishes discovery
  and the last states, then dispatches incoming messages; when the connection drops it
  reconnects with capped backoff and does it all again.
- Each meter's :class:`~countis_bridge.poller.MeterPoller` polls forever on its own
  schedule and publishes through :meth:`Bridge.publish`, which never waits for the broker.
- :mod:`countis_bridge.retained` remembers which meters were announced, so that a meter
  removed from the configuration, a serial that changed or a discovery mode that changed
  can have its retained messages cleared.

Logging: one line per state change of the broker or of a meter, never one per poll.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import tempfile
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from countis.clock import Clock
from countis.config import MeterConfig
from countis.errors import ConfigError
from countis.models import MeterIdentity
from countis.schedule import Backoff, energy_offset
from countis.tariff_master import TariffLine
from countis.tariff_plan import Signal

from countis_bridge import topics
from countis_bridge.commands import (
    Command,
    CommandParseError,
    CommandResponse,
    TariffCommand,
    error_response,
    internal_error_response,
    parse_command,
    parse_error_response,
)
from countis_bridge.discovery import DiscoveryMeter, DiscoveryOptions, discovery_messages
from countis_bridge.mqtt import (
    STOP_TIMEOUT_S,
    BrokerConnectionError,
    BrokerOptions,
    Incoming,
    MqttConnection,
)
from countis_bridge.partial_store import FilePartialStore
from countis_bridge.poller import MeterPoller
from countis_bridge.retained import (
    REGISTRY_FILE,
    Published,
    Registry,
    meter_key,
    published_discovery,
    published_slug,
    stale_topics,
)

_LOG = logging.getLogger("countis_bridge.service")
# Stopping: tasks still running this long after being cancelled are cancelled again.
STOP_GRACE_S = 1.0
BROKER_STOP_GRACE_S = 2 * STOP_TIMEOUT_S + 1.0  # offline publish, then the disconnect


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeConfig:
    """Plain configuration of the whole bridge (the daemon maps Settings onto it)."""

    broker: BrokerOptions
    meters: Sequence[MeterConfig]
    data_dir: Path
    discovery: DiscoveryOptions
    per_value_topics: bool = False
    broker_backoff_first: float = 0.5
    broker_backoff_cap: float = 30.0
    clock: Clock | None = None  # the meters' time (the demo runs them faster)


def prepare_data_dir(path: Path) -> None:
    """Create ``path`` and write a file in it, or raise ConfigError saying why not.

    Checked before anything connects: a file in the way, a read-only file system or a
    path under /proc is a configuration problem, not a crash on the first write.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".countis-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except (OSError, ValueError) as err:  # ValueError: a NUL in the path
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise ConfigError(f"data_dir {str(path)!r} is not a writable directory: {reason}") from None


def _keep_cancelling(tasks: Sequence[asyncio.Task[None]], every: float) -> None:
    """Bound the stop: every ``every`` seconds, cancel again the tasks still running.

    The task group cancels each task once. A library that swallows that cancellation
    (Python 3.11's ``asyncio.wait_for`` does when the answer arrives in the same loop
    iteration) would keep its task, and so the bridge, running forever.
    """
    asyncio.get_running_loop().call_later(every, _cancel_again, tasks, every)


def _cancel_again(tasks: Sequence[asyncio.Task[None]], every: float) -> None:
    pending = [task for task in tasks if not task.done()]
    if not pending:
        return
    names = ", ".join(task.get_name() for task in pending[:3])
    more = f" and {len(pending) - 3} more" if len(pending) > 3 else ""
    _LOG.warning("stopping: %s%s still running; cancelling again", names, more)
    for task in pending:
        task.cancel()
    _keep_cancelling(pending, every)


class Bridge:
    """Supervises the broker session and every meter's poller."""

    def __init__(self, config: BridgeConfig) -> None:
        """Build the pollers; nothing runs before :meth:`run`."""
        self.config = config
        self.discovery = replace(config.discovery, qos=config.broker.qos)
        self.registry = Registry(config.data_dir / REGISTRY_FILE)
        store = FilePartialStore(config.data_dir)
        lines: dict[tuple[str, int], TariffLine] = {}  # meters switching by one broadcast
        count = max(len(config.meters), 1)
        self.pollers = [
            MeterPoller(
                meter,
                sink=self,
                store=store,
                base_topic=config.discovery.base_topic,
                per_value_topics=config.per_value_topics,
                phase=i / count,
                energy_offset=energy_offset(i, meter.realtime_interval, meter.energy_interval),
                clock=config.clock,
                tariff_line=lines.setdefault(meter.address, TariffLine())
                if meter.tariff_broadcast and meter.tariff_plan is not None
                else None,
            )
            for i, meter in enumerate(config.meters)
        ]
        # Topics of the tariff plans that follow a signal, and who follows each.
        self._signals: dict[str, list[MeterPoller]] = {}
        for poller in self.pollers:
            plan = poller.config.tariff_plan
            if isinstance(plan, Signal):
                self._signals.setdefault(plan.topic, []).append(poller)
        self.connection: MqttConnection | None = None
        self.connected = asyncio.Event()
        self._base = config.discovery.base_topic
        configured = {meter_key(p.config) for p in self.pollers}
        self._removals = {
            key: entry for key, entry in self.registry.entries.items() if key not in configured
        }
        self._tasks: set[asyncio.Task[None]] = set()

    # -- running -------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled (ConfigError at once if ``data_dir`` is not usable)."""
        prepare_data_dir(self.config.data_dir)
        try:
            async with asyncio.TaskGroup() as group:
                broker = group.create_task(self._broker_loop(), name="mqtt broker")
                tasks = [
                    group.create_task(self._save_registry_loop(), name="registry"),
                    group.create_task(self._settle_heap(), name="heap"),
                ]
                for poller in self.pollers:
                    tasks.append(
                        group.create_task(poller.run(), name=f"meter {poller.config.label}")
                    )
                try:
                    await asyncio.Event().wait()  # until stopped (or a task failed)
                except asyncio.CancelledError:
                    _keep_cancelling(tasks, STOP_GRACE_S)
                    # The broker task says "offline" and disconnects first (bounded).
                    _keep_cancelling([broker], BROKER_STOP_GRACE_S)
                    raise
        finally:
            self.registry.save()
            _LOG.info("stopped; totals: %s", self.totals())

    def totals(self) -> dict[str, float]:
        """Stats of every meter added up (diagnostics; logged when the bridge stops)."""
        out: dict[str, float] = {"meters": len(self.pollers)}
        for poller in self.pollers:
            for key, value in poller.stats.as_dict().items():
                if key != "last_poll_duration":
                    out[key] = out.get(key, 0) + value
        return out

    async def _settle_heap(self) -> None:
        """Keep what lives for the whole run out of the collector's full passes.

        Done once every meter has answered or failed its first poll. A fleet holds a few
        hundred thousand long-lived objects (sessions, counter baselines, values); every
        full collection walked them all on the event loop. At 1,000 meters that doubled
        the p99 state latency and tripled poll start lateness (bench/README.md). What the
        run creates later is collected as usual; nothing of a session forms reference
        cycles that freezing could keep alive.
        """
        while any(p.identity is None and p.online is None for p in self.pollers):  # noqa: ASYNC110 - no event to wait on: a check a second
            await asyncio.sleep(1.0)
        gc.collect()
        gc.freeze()

    async def _save_registry_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._settle_removals()  # also when the last meter settles by failing
            self.registry.save()

    async def _broker_loop(self) -> None:
        broker = self.config.broker
        backoff = Backoff(self.config.broker_backoff_first, self.config.broker_backoff_cap)
        where = f"{broker.host}:{broker.port}"
        was_up: bool | None = None
        while True:
            try:
                async with MqttConnection(
                    broker, availability_topic=topics.bridge_availability(self._base)
                ) as connection:
                    self.connection = connection
                    _LOG.info("connected to MQTT broker %s", where)
                    was_up = True
                    backoff.reset()
                    await self._session(connection)
            except BrokerConnectionError as err:
                if was_up is not False:
                    _LOG.warning("MQTT broker %s unavailable (%s); retrying", where, err)
                was_up = False
            finally:
                self.connection = None
                self.connected.clear()
            await asyncio.sleep(backoff.next())

    async def _session(self, connection: MqttConnection) -> None:
        """One broker session: subscribe, (re)publish, then dispatch until it drops."""
        await connection.subscribe(
            topics.command_filter(self._base),
            topics.ha_status(self.discovery.discovery_prefix),
            *self._signals,
        )
        await self.republish_all()
        self._settle_removals()
        self.connected.set()
        async for message in connection.messages():
            self._dispatch(message)

    # -- publishing ----------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = True) -> bool:
        """Publish without waiting; dropped (False) while the broker is away."""
        connection = self.connection
        if connection is None:
            return False
        try:
            connection.publish_nowait(topic, payload, retain=retain)
        except BrokerConnectionError:
            return False  # the broker task notices, logs once and republishes on reconnect
        except ValueError as err:  # no MQTT message (a topic over 65535 bytes): not ours to fix
            _LOG.warning("cannot publish to %.80r: %s", topic, err)
            return False
        return True

    def identified(self, poller: MeterPoller, previous: MeterIdentity | None) -> None:
        """A meter was identified (first time, or another serial): announce it."""
        del previous  # the registry knows what was published before, even across restarts
        self._announce(poller)
        self._settle_removals()

    async def republish_all(self) -> None:
        """Discovery, availability and last state of every identified meter.

        A discovery payload takes a few ms to build: yield now and then so a fleet's
        pollers keep their schedule while Home Assistant restarts.
        """
        for index, poller in enumerate(self.pollers, start=1):
            if poller.identity is not None:
                self._announce(poller)
            poller.republish()
            if index % 10 == 0:
                await asyncio.sleep(0)

    def _announce(self, poller: MeterPoller) -> None:
        identity, slug, cfg = poller.identity, poller.slug, poller.config
        if identity is None or slug is None or self.connection is None:
            return  # announced when the broker session starts
        entry = Published(
            serial=identity.serial_number,
            slug=slug,
            base_topic=self._base,
            discovery_prefix=self.discovery.discovery_prefix,
            mode=self.discovery.mode,
            per_value=self.config.per_value_topics,
        )
        old = self.registry.entries.get(meter_key(cfg))
        if old is not None and old != entry:
            handed = [self.publish(topic, b"") for topic in stale_topics(old, entry)]
            if not all(handed):
                return  # the broker went away: try again on the next session
        self.registry.set(meter_key(cfg), entry)
        meter = DiscoveryMeter.from_identity(
            identity,
            slug=slug,
            name=cfg.name,
            host=cfg.host,
            read_only=cfg.read_only,
            tariff_plan=cfg.tariff_plan is not None,
        )
        for topic, payload in discovery_messages(meter, self.discovery):
            self.publish(topic, payload)

    def _settle_removals(self) -> None:
        """Clear what meters that left the configuration published, once it is safe.

        Safe means every configured meter has answered or failed: a meter that was only
        renamed keeps its serial, and clearing its discovery would make Home Assistant
        delete the device with the user's settings (its old topic slug is cleared).
        """
        if not self._removals or self.connection is None:
            return
        if any(p.identity is None and p.online is None for p in self.pollers):
            return  # a configured meter has not answered nor failed yet: its serial is unknown
        serials = {p.identity.serial_number for p in self.pollers if p.identity is not None}
        slugs = {p.slug for p in self.pollers}
        for key, old in list(self._removals.items()):
            stale = [] if old.slug in slugs else published_slug(old)
            if old.serial not in serials:
                stale += published_discovery(old)
                _LOG.info("meter %s (serial %s) left the configuration: removed", key, old.serial)
            if not all([self.publish(topic, b"") for topic in stale]):  # noqa: C419 - publish all
                return  # the broker went away: again in the next session
            del self._removals[key]
            self.registry.set(key, None)

    # -- incoming messages ---------------------------------------------------------------

    def _dispatch(self, message: Incoming) -> None:
        for poller in self._signals.get(message.topic, ()):
            poller.tariff_signal(message.payload, retained=message.retain)
        if message.topic == topics.ha_status(self.discovery.discovery_prefix):
            if message.payload.strip().lower() == b"online":
                _LOG.info("Home Assistant is online: republishing discovery and states")
                self._spawn(self.republish_all())
            return
        parsed = topics.parse_command_topic(self._base, message.topic)
        if parsed is None:
            return
        if message.retain:
            return  # a retained command is an old command: never act on it
        slug, name = parsed
        self._spawn(self._command(slug, name, message.payload))

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        """Run ``job`` beside the message loop (commands must not block dispatching)."""
        task = asyncio.create_task(job)
        self._tasks.add(task)  # keep a reference until it is done
        task.add_done_callback(self._job_done)

    def _job_done(self, task: asyncio.Task[None]) -> None:
        """Forget a finished job; a job that failed anyway is logged, not left unretrieved."""
        self._tasks.discard(task)
        if not task.cancelled() and (err := task.exception()) is not None:
            _LOG.error("background job failed", exc_info=err)

    async def _command(self, slug: str, name: str, payload: bytes) -> None:
        """Answer one command message: exactly one response, whatever happens."""
        command: Command | None = None
        try:
            command = parse_command(name, payload)
            response = await self._execute(slug, command)
        except CommandParseError as err:
            _LOG.warning("meter %.80s: bad command on set/%.40s: %s", slug, name, err.reason)
            response = parse_error_response(err)
        except Exception:  # a bug must neither kill this task silently nor go unanswered
            _LOG.exception("meter %.80s: %.40s command crashed", slug, name)
            cid = command.correlation_id if command is not None else None
            response = internal_error_response(name, cid)
        self.publish(topics.response(self._base, slug), response.to_bytes(), retain=False)

    async def _execute(self, slug: str, command: Command) -> CommandResponse:
        """Run a parsed command on the meter of ``slug``."""
        poller = next((p for p in self.pollers if p.slug == slug), None)
        if poller is None:
            return error_response(command.name, f"unknown meter {slug!r}", command.correlation_id)
        response = await poller.execute(command)
        if response.status == "ok" and isinstance(command, TariffCommand):
            self._refresh_broadcast_siblings(poller)
        return response

    def _refresh_broadcast_siblings(self, poller: MeterPoller) -> None:
        """After a broadcast tariff write, meters behind the same address read it back now."""
        if not poller.config.tariff_broadcast:
            return
        where = poller.config.address
        for other in self.pollers:
            if other is not poller and other.config.address == where:
                other.wake()
