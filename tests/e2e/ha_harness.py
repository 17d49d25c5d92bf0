"""Helpers of the real-Home-Assistant end-to-end test (no pytest fixtures here).

Processes run in their own sessions and are stopped by PID (process group), never by name.
Every wait has a deadline. Home Assistant is seeded as in the project's HA testing notes:
no onboarding, the MQTT integration pointed at the test broker by a config entry, and an
admin user with a long-lived token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from countis_bridge.ports import free_port, port_open

HOST = "127.0.0.1"
T = TypeVar("T")


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago (held open together)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def wait_until(probe: Callable[[], T | None], *, within: float, every: float = 0.2, what: str) -> T:
    """Call ``probe`` until it returns something other than None/False; fail at the deadline."""
    deadline = time.monotonic() + within
    last_error: Exception | None = None
    while True:
        try:
            result = probe()
        except (OSError, ValueError, KeyError) as err:  # not up yet, half-written, ...
            last_error, result = err, None
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"timed out after {within:.0f} s waiting for {what}{detail}")
        time.sleep(every)


def tail(path: Path, lines: int = 60) -> str:
    """The last lines of a log file (for failure reports)."""
    if not path.exists():
        return f"({path.name} does not exist)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class Process:
    """A child process in its own session, stopped by process group id."""

    def __init__(
        self, name: str, command: Sequence[str], log: Path, env: Mapping[str, str] | None = None
    ) -> None:
        """Remember how to start it; nothing runs yet."""
        self.name = name
        self.command = list(command)
        self.log = log
        self.env = dict(os.environ if env is None else env)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        """Start (appending to the log)."""
        assert not self.running, f"{self.name} already runs"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )
        return self

    @property
    def running(self) -> bool:
        """Whether the main process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the process group, then SIGKILL it after ``timeout``; returns the status."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            status = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            status = proc.wait(timeout=5)
        # Whatever else is left in the group (children of children) goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return status


def start_mosquitto(binary: str, workdir: Path) -> tuple[Process, int]:
    """A private anonymous broker on a free loopback port (no persistence)."""
    port = free_port()
    config = workdir / "mosquitto.conf"
    config.write_text(f"listener {port} {HOST}\nallow_anonymous true\npersistence false\n")
    broker = Process("mosquitto", [binary, "-c", str(config)], workdir / "mosquitto.log").start()
    wait_until(lambda: port_open(port), within=10, every=0.05, what="mosquitto")
    return broker, port


# --- Home Assistant -------------------------------------------------------------------------


def seed_ha_config(config: Path, *, http_port: int, mqtt_port: int) -> str:
    """Write a configuration Home Assistant starts from without onboarding; returns a token."""
    import jwt  # noqa: PLC0415 - from the HA venv (PyJWT comes with homeassistant)

    storage = config / ".storage"
    storage.mkdir(parents=True)
    now = datetime.now(UTC).isoformat()
    (config / "configuration.yaml").write_text(
        "homeassistant:\n  name: CI\n  latitude: 52.5\n  longitude: 13.4\n  elevation: 0\n"
        "  unit_system: metric\n  time_zone: UTC\n  currency: EUR\n  country: DE\n"
        f"http:\n  server_host: 127.0.0.1\n  server_port: {http_port}\n"
        "api:\n"
        # MQTT debug shows every topic and discovery payload; the template renders (one
        # line with the whole state message per entity and message) would flood the log.
        "logger:\n  default: warning\n  logs:\n    homeassistant.components.mqtt: debug\n"
        "    homeassistant.components.mqtt.models: info\n"
        "recorder:\nenergy:\n"
    )

    def store(key: str, data: Any, version: int = 1, minor: int = 1) -> None:
        body = {"version": version, "minor_version": minor, "key": key, "data": data}
        (storage / key).write_text(json.dumps(body, indent=1))

    user_id, token_id, jwt_key = uuid.uuid4().hex, uuid.uuid4().hex, secrets.token_hex(64)
    store(
        "auth",
        {
            "users": [
                {"id": user_id, "group_ids": ["system-admin"], "is_owner": True,
                 "is_active": True, "name": "ci", "system_generated": False,
                 "local_only": False},
            ],
            "groups": [
                {"id": "system-admin", "name": "Administrators"},
                {"id": "system-users", "name": "Users"},
                {"id": "system-read-only", "name": "Read Only"},
            ],
            "credentials": [],
            "refresh_tokens": [
                {"id": token_id, "user_id": user_id, "client_id": None, "client_name": "ci",
                 "client_icon": None, "token_type": "long_lived_access_token",
                 "created_at": now, "access_token_expiration": 315360000.0,
                 "token": secrets.token_hex(64), "jwt_key": jwt_key, "last_used_at": None,
                 "last_used_ip": None, "expire_at": None, "credential_id": None,
                 "version": None},
            ],
        },
    )  # fmt: skip
    store("onboarding", {"done": ["user", "core_config", "analytics", "integration"]}, 4)
    store(
        "core.config_entries",
        {
            "entries": [
                {"created_at": now, "modified_at": now,
                 "data": {"broker": HOST, "port": mqtt_port}, "disabled_by": None,
                 "discovery_keys": {}, "domain": "mqtt", "entry_id": uuid.uuid4().hex,
                 "minor_version": 2, "version": 1,
                 "options": {"discovery": True, "discovery_prefix": "homeassistant"},
                 "pref_disable_new_entities": False, "pref_disable_polling": False,
                 "source": "user", "subentries": [], "title": HOST, "unique_id": None},
            ]
        },
        minor=5,
    )  # fmt: skip
    issued = int(time.time())
    claims = {"iss": token_id, "iat": issued, "exp": issued + 315360000}
    return str(jwt.encode(claims, jwt_key, algorithm="HS256"))


class HomeAssistant:
    """REST and websocket access to a running Home Assistant with a bearer token."""

    def __init__(self, port: int, token: str) -> None:
        """Where it listens and how to authenticate."""
        self.url = f"http://{HOST}:{port}"
        self.token = token

    def request(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        """One REST call; returns the decoded JSON answer (HTTP errors raise)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read()
        return json.loads(text) if text else None

    def state(self, entity_id: str) -> dict[str, Any] | None:
        """The state object of one entity, None while it does not exist."""
        try:
            return dict(self.request("GET", f"/api/states/{entity_id}"))
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
            raise

    def states(self) -> dict[str, dict[str, Any]]:
        """Every state by entity id."""
        return {s["entity_id"]: s for s in self.request("GET", "/api/states")}

    def call_service(self, domain: str, service: str, data: Mapping[str, Any]) -> None:
        """Call a service through the REST API."""
        self.request("POST", f"/api/services/{domain}/{service}", dict(data))

    def running_with_mqtt(self) -> bool:
        """Core RUNNING and the mqtt integration loaded."""
        config = self.request("GET", "/api/config", timeout=3)
        return config.get("state") == "RUNNING" and "mqtt" in config.get("components", [])

    def ws(self, *messages: Mapping[str, Any], timeout: float = 20.0) -> list[Any]:
        """Send websocket commands (ids added here); returns each command's ``result``."""
        return asyncio.run(asyncio.wait_for(self._ws(messages), timeout))

    async def _ws(self, messages: Sequence[Mapping[str, Any]]) -> list[Any]:
        import aiohttp  # noqa: PLC0415 - from the HA venv

        results = []
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{self.url}/api/websocket") as ws,
        ):
            assert (await ws.receive_json())["type"] == "auth_required"
            await ws.send_json({"type": "auth", "access_token": self.token})
            auth = await ws.receive_json()
            assert auth["type"] == "auth_ok", auth
            for number, message in enumerate(messages, start=1):
                await ws.send_json({**message, "id": number})
                while True:
                    answer = await ws.receive_json()
                    if answer.get("id") == number and answer.get("type") == "result":
                        break
                assert answer["success"], answer
                results.append(answer["result"])
        return results


# --- the emulator's control API -------------------------------------------------------------


class EmulatorControl:
    """HTTP JSON control API of ``countis-bridge emulate --control-port``."""

    def __init__(self, port: int, meter: int = 0) -> None:
        """The API's port and the meter index."""
        self.url = f"http://{HOST}:{port}/meters/{meter}"

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            text = response.read()
        return json.loads(text) if text else None

    def values(self) -> dict[str, Any]:
        """The meter's values by value key, quantized as its registers carry them."""
        answer = self._call("GET", "/values")
        return dict(answer.get("values", answer))
