"""Shared integration fixtures: a real Mosquitto, an MQTT recorder, emulated meters.

Everything listens on 127.0.0.1 on free ports. Nothing here is mocked: the broker is the
Debian ``mosquitto`` binary (missing -> the fixture fails with a clear message, never a
skip) and the meters are the project's emulator over Modbus TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from countis_bridge.ports import free_port, port_open
from tests.processes import HOST, mosquitto_binary


class Mosquitto:
    """A private Mosquitto broker on a free loopback port (no persistence)."""

    def __init__(self, workdir: Path) -> None:
        self.host = HOST
        self.port = free_port()
        self.binary = mosquitto_binary()
        self.config = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        self.config.write_text(
            f"listener {self.port} {HOST}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "set_tcp_nodelay true\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 5.0) -> None:
        """Start the broker and wait until the port accepts connections."""
        assert not self.running, "broker already running"
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [self.binary, "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"mosquitto did not start on port {self.port}: {self.log_text()}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the broker (retained messages are lost: persistence is off)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def restart(self) -> None:
        """Stop and start again on the same port."""
        self.stop()
        self.start()

    def log_text(self) -> str:
        """The broker's log so far (for failure messages)."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A running private broker; stopped after the test."""
    workdir = tmp_path / "mosquitto"
    workdir.mkdir()
    broker = Mosquitto(workdir)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@dataclass(frozen=True, slots=True)
class Received:
    """One message seen by the recorder."""

    topic: str
    payload: bytes
    retain: bool
    at: float  # time.time() on arrival

    def json(self) -> Any:
        """The payload parsed as JSON."""
        return json.loads(self.payload)

    @property
    def text(self) -> str:
        """The payload as text."""
        return self.payload.decode()


class MqttRecorder:
    """A paho subscriber (own network thread) recording every message it receives.

    Waits are async and poll, so the event loop (and an in-process bridge) keeps running.
    """

    _ids = itertools.count()

    def __init__(self, host: str, port: int, topics: tuple[str, ...] = ("#",)) -> None:
        self.host = host
        self.port = port
        self.topics = topics
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"test-recorder-{next(self._ids)}",
        )
        self._client.on_message = self._on_message
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe

    def _on_connect(self, client: paho.Client, *_: Any) -> None:
        client.subscribe([(topic, 1) for topic in self.topics])

    def _on_subscribe(self, *_: Any) -> None:
        self._subscribed.set()

    def _on_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Received(msg.topic, bytes(msg.payload), msg.retain, time.time()))

    def start(self, timeout: float = 5.0) -> None:
        """Connect (reconnecting by itself if the broker restarts) and subscribe."""
        self._client.reconnect_delay_set(min_delay=0.05, max_delay=0.2)
        self._client.connect(self.host, self.port, keepalive=30)
        self._client.loop_start()
        if not self._subscribed.wait(timeout):
            msg = f"recorder could not subscribe on {self.host}:{self.port}"
            raise TimeoutError(msg)

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> None:
        """Publish (QoS 1) and wait until the broker acknowledged it."""
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=5)

    async def publish_all(self, messages: list[tuple[str, bytes | str]]) -> None:
        """Publish (QoS 1) in a burst, then wait until the broker acknowledged them all.

        Waiting for each acknowledgement in turn costs tens of ms per message (Nagle's
        algorithm meets delayed ACKs) and blocks the event loop meanwhile.
        """
        infos = [self._client.publish(topic, payload, qos=1) for topic, payload in messages]
        deadline = time.monotonic() + 30
        while not all(info.is_published() for info in infos):
            assert time.monotonic() < deadline, "the broker did not acknowledge the burst"
            await asyncio.sleep(0.02)

    def snapshot(self, topic: str | None = None) -> list[Received]:
        """Messages so far, optionally only of one topic."""
        with self._lock:
            return [m for m in self.messages if topic is None or m.topic == topic]

    def mark(self) -> int:
        """A position in the message list; pass it as ``after`` to wait for newer ones."""
        with self._lock:
            return len(self.messages)

    def clear(self) -> None:
        """Forget every message received so far."""
        with self._lock:
            self.messages.clear()

    def since(self, after: int, topic: str | None = None) -> list[Received]:
        """Messages received after ``mark()`` returned ``after``."""
        with self._lock:
            return [m for m in self.messages[after:] if topic is None or m.topic == topic]

    def last(self, topic: str) -> Received | None:
        """The latest message of ``topic``, if any."""
        found = self.snapshot(topic)
        return found[-1] if found else None

    async def wait_for(
        self,
        topic: str,
        predicate: Callable[[Received], bool] | None = None,
        *,
        after: int = 0,
        within: float = 5.0,
    ) -> Received:
        """The first message on ``topic`` after ``after`` that satisfies ``predicate``."""
        deadline = time.monotonic() + within
        while True:
            for msg in self.since(after, topic):
                if predicate is None or predicate(msg):
                    return msg
            if time.monotonic() > deadline:
                seen = [m.payload[:80] for m in self.since(after, topic)][-5:]
                msg_ = f"no matching message on {topic} within {within} s (last: {seen})"
                raise AssertionError(msg_)
            await asyncio.sleep(0.02)

    async def wait_count(
        self, topic: str, count: int, *, after: int = 0, within: float = 5.0
    ) -> list[Received]:
        """Wait until ``count`` messages arrived on ``topic`` after ``after``."""
        deadline = time.monotonic() + within
        while len(found := self.since(after, topic)) < count:
            if time.monotonic() > deadline:
                msg = f"{len(found)} of {count} messages on {topic} within {within} s"
                raise AssertionError(msg)
            await asyncio.sleep(0.02)
        return found

    async def retained(self, topic_filter: str = "#", *, settle: float = 0.3) -> dict[str, bytes]:
        """What the broker retains now: a fresh subscription's retained messages."""
        probe = MqttRecorder(self.host, self.port, (topic_filter,))
        probe.start()
        try:
            await asyncio.sleep(settle)
            return {m.topic: m.payload for m in probe.snapshot() if m.retain}
        finally:
            probe.stop()


@pytest.fixture
def mqtt_recorder(mosquitto: Mosquitto) -> Iterator[MqttRecorder]:
    """A recorder subscribed to ``#`` on the test broker."""
    recorder = MqttRecorder(mosquitto.host, mosquitto.port)
    recorder.start()
    try:
        yield recorder
    finally:
        recorder.stop()


_serials = itertools.count(1)


def new_serial() -> str:
    """A distinct serial number per emulated meter of the session (13 characters)."""
    return f"21170A01{next(_serials):05d}"


@pytest.fixture
async def emulator() -> AsyncIterator[Callable[..., Any]]:
    """Start emulated meters: ``ports = await emulator(meter, ...)`` (one free port each)."""
    from countis_bridge.emulator import EmulatorServer  # noqa: PLC0415 - optional per test module

    async with contextlib.AsyncExitStack() as stack:

        async def start(*meters: Any) -> list[int]:
            server = await stack.enter_async_context(
                EmulatorServer(list(meters), host=HOST, port=0)
            )
            return list(server.ports)

        yield start


@pytest.fixture
def make_meter() -> Callable[..., Any]:
    """Build an EmulatedMeter with test defaults (constant load, unit 5, new serial)."""
    from countis_bridge.emulator import EmulatedMeter  # noqa: PLC0415

    def build(**kwargs: Any) -> Any:
        options: dict[str, Any] = {
            "model": "E28",
            "serial": new_serial(),
            "unit_id": 5,
            "profile": "constant",
            "speed": 1.0,
            "seed": 1,
        }
        options.update(kwargs)
        return EmulatedMeter(**options)

    return build


def meter_entry(name: str | None, port: int, **options: Any) -> dict[str, Any]:
    """A ``meters:`` item for an emulated meter with fast test intervals."""
    entry: dict[str, Any] = {
        "host": HOST,
        "port": port,
        "unit": 5,
        "realtime_interval": 0.2,
        "energy_interval": 0.5,
        "timeout": 0.5,
    }
    if name is not None:
        entry["name"] = name
    entry.update(options)
    return entry


class BridgeHarness:
    """Writes bridge configurations for the test broker and runs the bridge.

    In process (``async with harness.run(path) as bridge``) for most tests, or as a
    ``countis-bridge run`` child process (``harness.spawn(path)``) where a process must die.
    """

    def __init__(self, workdir: Path, broker: Mosquitto) -> None:
        self.workdir = workdir
        self.broker = broker
        self.data_dir = workdir / "data"
        self._procs: list[subprocess.Popen[bytes]] = []

    free_port = staticmethod(free_port)

    @staticmethod
    def meter(name: str | None, port: int, **options: Any) -> dict[str, Any]:
        """A ``meters:`` item for an emulated meter with fast test intervals."""
        return meter_entry(name, port, **options)

    def config(self, meters: list[dict[str, Any]], **settings: Any) -> Path:
        """Write a YAML configuration (``mqtt`` keys merge over the broker's) and return it."""
        mqtt = {"host": self.broker.host, "port": self.broker.port}
        mqtt.update(settings.pop("mqtt", {}))
        data = {"mqtt": mqtt, "meters": meters, "data_dir": str(self.data_dir)}
        data.update(settings)
        path = self.workdir / "countis-bridge.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    @contextlib.asynccontextmanager
    async def run(self, path: Path, *, clock: Any = None) -> AsyncIterator[Any]:
        """The bridge of configuration ``path``, running in this event loop.

        ``clock``: the meters' time (a faster one for emulated meters run faster).
        """
        from countis_bridge.daemon import bridge_config  # noqa: PLC0415
        from countis_bridge.service import Bridge  # noqa: PLC0415
        from countis_bridge.settings import load_settings  # noqa: PLC0415

        bridge = Bridge(dataclasses.replace(bridge_config(load_settings(path)), clock=clock))
        task = asyncio.create_task(bridge.run(), name="bridge under test")
        try:
            yield bridge
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def spawn(self, path: Path, *extra: str) -> subprocess.Popen[bytes]:
        """``countis-bridge run --config path`` as a child process (killed after the test)."""
        log = (self.workdir / "bridge.log").open("ab")
        proc = subprocess.Popen(
            [*countis_bridge_command(), "run", "--config", str(path), *extra],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self._procs.append(proc)
        return proc

    def log_text(self) -> str:
        """Output of the spawned bridges so far."""
        log = self.workdir / "bridge.log"
        return log.read_text(errors="replace") if log.exists() else ""

    def cleanup(self) -> None:
        """Kill what is still running."""
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def countis_bridge_command() -> list[str]:
    """How to run the ``countis-bridge`` script of this environment."""
    script = Path(sys.executable).with_name("countis-bridge")
    return [str(script)] if script.exists() else [sys.executable, "-m", "countis_bridge"]


@pytest.fixture
def bridge_harness(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[BridgeHarness]:
    """Configure and run bridges against the test broker."""
    harness = BridgeHarness(tmp_path, mosquitto)
    try:
        yield harness
    finally:
        harness.cleanup()


@pytest.fixture
def countis_bridge_argv() -> list[str]:
    """Command line prefix that runs this environment's ``countis-bridge``."""
    return countis_bridge_command()


@pytest.fixture
def make_recorder() -> Iterator[Callable[..., MqttRecorder]]:
    """Start extra recorders on any broker: ``make_recorder(host, port, topics)``."""
    started: list[MqttRecorder] = []

    def start(host: str, port: int, topics: tuple[str, ...] = ("#",)) -> MqttRecorder:
        recorder = MqttRecorder(host, port, topics)
        recorder.start()
        started.append(recorder)
        return recorder

    try:
        yield start
    finally:
        for recorder in started:
            recorder.stop()
