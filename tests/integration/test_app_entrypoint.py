"""The app's real entrypoint, as the container runs it, against a stand-in Supervisor.

The entrypoint (the Dockerfile's CMD: ``python -m countis_bridge.app``) runs as a subprocess with
an ``options.json`` (``emulate: true``: the add-on's own emulated meter is the meter), asks
a stand-in for the Supervisor's ``/services/mqtt`` on loopback for the broker, and execs the
bridge. The broker is a real Mosquitto that only accepts the credentials the stand-in hands
out; the test sees the bridge's retained device discovery arrive there.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import pwd
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.integration.conftest import free_port, port_open
from tests.processes import mosquitto_binary

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
USER = "addons"
PASSWORD = secrets.token_urlsafe(12)
TOKEN = secrets.token_hex(16)


def dockerfile_cmd() -> list[str]:
    """The CMD of the add-on's Dockerfile (exec form)."""
    for line in (ROOT / "addon" / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if line.startswith("CMD "):
            return list(json.loads(line.removeprefix("CMD ")))
    pytest.fail("the add-on Dockerfile has no CMD")


def entrypoint_command() -> list[str]:
    """The Dockerfile's CMD with this interpreter in place of the image's python3."""
    cmd = dockerfile_cmd()
    assert cmd[0] == "python3"
    return [sys.executable, *cmd[1:]]


def mosquitto_password_line(user: str, password: str) -> str:
    """A mosquitto 2 password file line ($7$: PBKDF2-SHA512, as mosquitto_passwd writes)."""
    salt = secrets.token_bytes(12)
    iterations = 101
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    b64 = base64.b64encode
    return f"{user}:$7${iterations}${b64(salt).decode()}${b64(digest).decode()}\n"


@dataclass
class Broker:
    """A private Mosquitto on a free loopback port that needs a user name and password."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        passwords = self.workdir / "passwords"
        passwords.write_text(mosquitto_password_line(USER, PASSWORD))
        passwords.chmod(0o600)
        config = self.workdir / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} {HOST}\nallow_anonymous false\n"
            f"password_file {passwords}\npersistence false\n"
            # Started as root, mosquitto would switch to its own user, which cannot read
            # the password file in the test's private directory; as anyone else, no effect.
            f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
        )
        with (self.workdir / "mosquitto.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [mosquitto_binary(), "-c", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 5
        while not port_open(self.port):
            assert self.proc.poll() is None, self.log()
            assert time.monotonic() < deadline, f"mosquitto did not start: {self.log()}"
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=5)

    def log(self) -> str:
        path = self.workdir / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    workdir = tmp_path / "broker"
    workdir.mkdir()
    running = Broker(workdir)
    running.start()
    try:
        yield running
    finally:
        running.stop()


class Supervisor:
    """Stand-in for the Supervisor API: ``GET /services/mqtt`` with a bearer token."""

    def __init__(self, service: dict[str, Any]) -> None:
        self.service = service
        self.requests: list[tuple[str, str | None]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stand_in.requests.append((self.path, self.headers.get("Authorization")))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self.answer(401, {"result": "error", "message": "Unauthorized"})
                elif self.path == "/services/mqtt":
                    self.answer(200, {"result": "ok", "data": stand_in.service})
                else:
                    self.answer(404, {"result": "error", "message": "Not found"})

            def answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Supervisor:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def mosquitto_service(port: int) -> dict[str, Any]:
    """The Mosquitto add-on's MQTT service, as the Supervisor reports it."""
    return {
        "addon": "core_mosquitto",
        "host": HOST,
        "port": port,
        "ssl": False,
        "protocol": "3.1.1",
        "username": USER,
        "password": PASSWORD,
    }


class Entrypoint:
    """The entrypoint subprocess in its own session (its emulator child shares the group)."""

    def __init__(self, tmp_path: Path, options: dict[str, Any], supervisor_url: str) -> None:
        self.tmp_path = tmp_path
        options_file = tmp_path / "options.json"
        options_file.write_text(json.dumps(options))
        self.env = {
            **os.environ,
            "COUNTIS_ADDON_OPTIONS": str(options_file),
            "COUNTIS_ADDON_DATA": str(tmp_path / "data"),
            "COUNTIS_ADDON_RUN_DIR": str(tmp_path / "run"),
            "COUNTIS_SUPERVISOR_URL": supervisor_url,
            "SUPERVISOR_TOKEN": TOKEN,
        }
        self.log_path = tmp_path / "addon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, token: str = TOKEN) -> subprocess.Popen[bytes]:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                entrypoint_command(),
                env={**self.env, "SUPERVISOR_TOKEN": token},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.tmp_path,
            )
        return self.proc

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def health(self) -> int:
        """Exit status of the health check command, run like Docker's HEALTHCHECK does."""
        check = subprocess.run(
            [*entrypoint_command(), "health"],
            env=self.env,
            capture_output=True,
            check=False,
            timeout=30,
        )
        return check.returncode

    def group_alive(self) -> bool:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def kill_group(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


class Subscriber:
    """A paho client with the add-on's broker credentials, keeping the last payload per topic."""

    def __init__(self, port: int, topics: tuple[str, ...]) -> None:
        self.messages: dict[str, bytes] = {}
        self.ready = threading.Event()
        self.client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self.client.username_pw_set(USER, PASSWORD)
        self.client.on_connect = lambda c, *_: c.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = self._on_message
        self.client.connect(HOST, port)
        self.client.loop_start()
        assert self.ready.wait(5), "subscriber could not subscribe"

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        self.messages[msg.topic] = bytes(msg.payload)

    def wait(self, predicate: Any, within: float, what: str, log: Any) -> Any:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for topic, payload in list(self.messages.items()):
                if (found := predicate(topic, payload)) is not None:
                    return found
            time.sleep(0.05)
        pytest.fail(f"no {what} within {within} s; add-on log:\n{log()[-3000:]}")

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def anonymous_refused(port: int) -> bool:
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    refused = threading.Event()
    client.on_connect = lambda _c, _u, _f, rc, _p: refused.set() if rc.is_failure else None
    client.connect(HOST, port)
    client.loop_start()
    try:
        return refused.wait(5)
    finally:
        client.disconnect()
        client.loop_stop()


def test_entrypoint_uses_the_supervisor_broker_and_publishes_discovery(
    tmp_path: Path, broker: Broker
) -> None:
    assert anonymous_refused(broker.port), "the broker must insist on the credentials"
    options = {
        "meters": [],
        "realtime_interval": 1.0,
        "energy_interval": 2.0,
        "discovery_prefix": "homeassistant",
        "base_topic": "countis",
        "discovery_mode": "device",
        "per_value_topics": False,
        "mqtt": {},
        "log_level": "info",
        "emulate": True,
    }
    with Supervisor(mosquitto_service(broker.port)) as supervisor:
        entrypoint = Entrypoint(tmp_path, options, supervisor.url)
        subscriber = Subscriber(
            broker.port, ("homeassistant/device/+/config", "countis/+/availability")
        )
        try:
            proc = entrypoint.start()

            def device_config(topic: str, payload: bytes) -> dict[str, Any] | None:
                if not topic.startswith("homeassistant/device/") or not payload:
                    return None
                return dict(json.loads(payload))

            config = subscriber.wait(device_config, 30, "device discovery", entrypoint.log)
            assert config["dev"]["name"] == "Emulated meter"
            assert config["cmps"], "discovery lists the meter's entities"
            node = config["dev"]["ids"][0] if "ids" in config["dev"] else None
            node = node or config["dev"]["identifiers"][0]
            assert node == "countis_21170A0100001"  # the add-on pins the emulated serial
            subscriber.wait(
                lambda t, p: True if (t, p) == ("countis/bridge/availability", b"online") else None,
                10,
                "bridge online",
                entrypoint.log,
            )
            # The credentials came from the stand-in, asked once with the add-on's token.
            assert supervisor.requests == [("/services/mqtt", f"Bearer {TOKEN}")]
            # exec: the entrypoint's process became the bridge (same PID).
            cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
            assert cmdline[-3:-1] == [b"run", b"--config"], cmdline
            settings = tmp_path / "run" / "countis-bridge.yaml"
            assert cmdline[-1] == str(settings).encode()

            # The Dockerfile's HEALTHCHECK: healthy while the bridge is online on the broker.
            assert entrypoint.health() == 0

            # Stopping the bridge stops the add-on's emulated meter too.
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) in (0, -signal.SIGTERM, 128 + signal.SIGTERM)
            assert entrypoint.health() == 1  # the bridge said offline on its way out
            deadline = time.monotonic() + 10
            while entrypoint.group_alive():
                assert time.monotonic() < deadline, "the emulated meter outlived the bridge"
                time.sleep(0.05)
            assert (tmp_path / "data" / "emulator-state.json").exists()
        finally:
            subscriber.stop()
            entrypoint.kill_group()


def test_entrypoint_stops_with_one_line_when_the_supervisor_refuses(tmp_path: Path) -> None:
    options = {"meters": [{"name": "Main", "host": HOST, "port": free_port()}], "mqtt": {}}
    with Supervisor(mosquitto_service(1883)) as supervisor:
        entrypoint = Entrypoint(tmp_path, options, supervisor.url)
        try:
            proc = entrypoint.start(token="wrong")
            assert proc.wait(timeout=20) == 2
        finally:
            entrypoint.kill_group()
    last = entrypoint.log().strip().splitlines()[-1]
    assert (
        last == "countis-bridge app: error: Supervisor refused the MQTT service request (HTTP 401)"
    )
