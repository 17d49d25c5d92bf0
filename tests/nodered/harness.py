"""Helpers of the Node-RED tier (no pytest fixtures here): processes, Node-RED, its /comms.

Every process runs in its own session and is stopped by its process group id, never by
name. Every wait has a deadline. The standard library and paho-mqtt (a dependency of the
bridge) only: the editor's websocket (``/comms``) is read by a minimal RFC 6455 client below.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.control_api import http, http_json
from tests.processes import HOST, Process, wait_until


@dataclass(frozen=True, slots=True)
class Received:
    """One MQTT message the observer saw."""

    topic: str
    payload: bytes
    retain: bool
    at: float  # time.monotonic() on arrival


class MqttObserver:
    """A paho client recording every message under ``topic_filter`` (own network thread)."""

    def __init__(
        self, port: int, topic_filter: str = "#", client_id: str = "nodered-tier-observer"
    ) -> None:
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._filter = topic_filter
        self._client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id
        )
        self._client.on_connect = lambda client, *_: client.subscribe(self._filter, qos=1)
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect(HOST, port, keepalive=30)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            self.stop()
            msg = f"the MQTT observer could not subscribe on port {port}"
            raise AssertionError(msg)

    def _on_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(
                Received(msg.topic, bytes(msg.payload), msg.retain, time.monotonic())
            )

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()

    def on(self, topic: str, after: float = 0.0) -> list[Received]:
        """Messages of ``topic`` that arrived after the monotonic time ``after``."""
        with self._lock:
            return [m for m in self.messages if m.topic == topic and m.at > after]


# --- flows ------------------------------------------------------------------------------------


def load_flow(path: Path) -> list[dict[str, Any]]:
    """The nodes of one flow file (a JSON array)."""
    nodes = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(nodes, list), f"{path}: a flow file is a JSON array of nodes"
    return nodes


def readme_flow(readme: Path) -> list[dict[str, Any]]:
    """The flow shown inline in the README's Node-RED section (its first JSON block)."""
    text = readme.read_text(encoding="utf-8")
    section = text.split("\n## Node-RED\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```json\n", 1)[1].split("\n```", 1)[0]
    nodes = json.loads(block)
    assert isinstance(nodes, list), "the README's flow is a JSON array of nodes"
    return nodes


def merge_flows(
    flows: Iterable[list[dict[str, Any]]], *, broker_host: str, broker_port: int
) -> list[dict[str, Any]]:
    """One deployable configuration of several flows, broker config nodes pointed elsewhere.

    Nodes of different flows with the same id (the broker configuration every example
    carries) must agree on every field both have; the one with more fields is deployed.
    """
    merged: dict[str, dict[str, Any]] = {}
    for nodes in flows:
        for node in nodes:
            known = merged.get(node["id"])
            if known is not None:
                differ = [k for k in node.keys() & known.keys() if node[k] != known[k]]
                assert not differ, f"two nodes with id {node['id']} differ in {differ}"
                if len(known) >= len(node):
                    continue
            merged[node["id"]] = copy.deepcopy(node)
    for node in merged.values():
        if node["type"] == "mqtt-broker":
            node["broker"], node["port"] = broker_host, str(broker_port)
    return list(merged.values())


# --- Node-RED -------------------------------------------------------------------------------

SETTINGS_JS = """\
// Written by the countis-bridge Node-RED test tier: loopback only, nothing from outside.
module.exports = {{
    uiHost: "127.0.0.1",
    uiPort: {port},
    userDir: {user_dir},
    flowFile: "flows.json",
    flowFilePretty: true,
    credentialSecret: false,
    httpNodeRoot: false,
    telemetry: {{ enabled: false, updateNotification: false }},
    diagnostics: {{ enabled: false, ui: false }},
    runtimeState: {{ enabled: false, ui: false }},
    externalModules: {{
        autoInstall: false,
        palette: {{ allowInstall: false, allowUpdate: false, allowUpload: false }},
        modules: {{ allowInstall: false }},
    }},
    functionExternalModules: false,
    editorTheme: {{
        projects: {{ enabled: false }},
        tours: false,
        multiplayer: {{ enabled: false }},
    }},
    logging: {{ console: {{ level: "info", metrics: false, audit: false }} }},
    mqttReconnectTime: 500,
    debugMaxLength: 10000,
}};
"""


class NodeRed:
    """A Node-RED process with its own user directory, its editor/admin API on loopback."""

    def __init__(self, install: Path, workdir: Path, port: int) -> None:
        self.red_js = install / "node_modules" / "node-red" / "red.js"
        self.user_dir = workdir / "node-red"
        self.port = port
        self.url = f"http://{HOST}:{port}"
        self.user_dir.mkdir(parents=True, exist_ok=True)
        settings = self.user_dir / "settings.js"
        settings.write_text(SETTINGS_JS.format(port=port, user_dir=json.dumps(str(self.user_dir))))
        env = {**os.environ, "NODE_RED_DISABLE_TELEMETRY": "1", "NO_UPDATE_NOTIFIER": "1"}
        command = ["node", str(self.red_js), "--settings", str(settings)]
        command += ["--userDir", str(self.user_dir)]
        self.process = Process("node-red", command, workdir / "node-red.log", env)

    @property
    def log(self) -> Path:
        """Node-RED's console output."""
        return self.process.log

    def start(self) -> NodeRed:
        """Start the process (see :meth:`wait_ready`)."""
        self.process.start()
        return self

    def ready(self) -> bool:
        """Whether the admin API answers with the settings (the runtime is up)."""
        self.process.check_running()
        try:
            return bool(http_json("GET", self.url + "/settings").get("version"))
        except (AssertionError, OSError):
            return False

    def wait_ready(self, within: float = 30.0) -> None:
        """Wait until the admin API answers."""
        wait_until(self.ready, within=within, every=0.1, what="Node-RED's admin API")

    def deploy(self, nodes: list[dict[str, Any]]) -> str:
        """Replace every flow with ``nodes`` (admin API v2, full deploy); the new revision."""
        headers = {"Node-RED-API-Version": "v2", "Node-RED-Deployment-Type": "full"}
        answer = http_json("POST", self.url + "/flows", {"flows": nodes}, headers)
        return str(answer["rev"])

    def flows(self) -> list[dict[str, Any]]:
        """The deployed flows (admin API v2)."""
        answer = http_json("GET", self.url + "/flows", headers={"Node-RED-API-Version": "v2"})
        return list(answer["flows"])

    def inject(self, node_id: str) -> None:
        """Press an inject node's button."""
        http("POST", f"{self.url}/inject/{node_id}")

    def log_lines(self, level: str) -> list[str]:
        """Lines of Node-RED's log at ``level`` (``error``, ``warn``, ...)."""
        if not self.log.exists():
            return []
        marker = f"[{level}]"
        return [ln for ln in self.log.read_text(errors="replace").splitlines() if marker in ln]


# --- the editor's websocket -----------------------------------------------------------------

_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass(frozen=True, slots=True)
class CommsMessage:
    """One message Node-RED sent its editors: ``debug``, ``status/<node id>``, ``hb``, ..."""

    topic: str
    data: Any
    at: float  # time.monotonic() on arrival


class Comms:
    """Node-RED's ``/comms`` websocket, read by a thread; debug output and node statuses.

    Node-RED sends a new connection the retained messages (every node's current status) and
    then, as they happen, debug messages (``{"id": <debug node>, "msg": "<encoded>",
    "format": ...}``; node errors too, with ``level`` 20) and status changes.
    """

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.messages: list[CommsMessage] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._sock = socket.create_connection((HOST, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self._sock.sendall(
            (
                f"GET /comms HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self._sock.recv(4096)
            if not chunk:
                msg = "Node-RED closed /comms during the handshake"
                raise ConnectionError(msg)
            head += chunk
        head, self._buffer = head.split(b"\r\n\r\n", 1)
        accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
        if " 101 " not in lines[0] or headers.get("sec-websocket-accept") != accept:
            msg = f"no websocket upgrade on /comms: {lines[0]}"
            raise ConnectionError(msg)
        self._sock.settimeout(0.5)
        self._thread = threading.Thread(target=self._read_loop, name="node-red comms", daemon=True)
        self._thread.start()
        for topic in ("status/#", "debug", "notification/#"):
            self._send_text(json.dumps({"subscribe": topic}))

    # -- reading ---------------------------------------------------------------------------

    def _recv_exact(self, count: int) -> bytes:
        while len(self._buffer) < count:
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                if self._closed.is_set():
                    raise ConnectionError("closed") from None
                continue
            if not chunk:
                raise ConnectionError("Node-RED closed /comms")
            self._buffer += chunk
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def _frame(self) -> tuple[int, bool, bytes]:
        first, second = self._recv_exact(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._recv_exact(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._recv_exact(8))
        mask = self._recv_exact(4) if second & 0x80 else b""
        payload = self._recv_exact(length)
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return first & 0x0F, bool(first & 0x80), payload

    def _read_loop(self) -> None:
        fragments = b""
        with contextlib.suppress(ConnectionError, OSError):
            while not self._closed.is_set():
                opcode, fin, payload = self._frame()
                if opcode == 0x8:  # close
                    break
                if opcode == 0x9:  # ping
                    self._send(0xA, payload)
                    continue
                if opcode in (0x1, 0x0):  # text, continuation
                    fragments += payload
                    if fin:
                        self._deliver(fragments)
                        fragments = b""

    def _deliver(self, text: bytes) -> None:
        now = time.monotonic()
        batch = json.loads(text)
        with self._lock:
            for item in batch if isinstance(batch, list) else [batch]:
                if isinstance(item, dict) and "topic" in item:
                    self.messages.append(CommsMessage(item["topic"], item.get("data"), now))

    # -- writing ---------------------------------------------------------------------------

    def _send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        else:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self._sock.sendall(head + mask + masked)

    def _send_text(self, text: str) -> None:
        self._send(0x1, text.encode())

    def close(self) -> None:
        """Close the connection and stop the reader."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self._send(0x8, b"")
        self._thread.join(timeout=2)
        self._sock.close()

    # -- queries ---------------------------------------------------------------------------

    def mark(self) -> int:
        """A position in the message list; pass it as ``after`` to see newer messages only."""
        with self._lock:
            return len(self.messages)

    def since(self, after: int = 0) -> list[CommsMessage]:
        """Messages received after ``mark()`` returned ``after``."""
        with self._lock:
            return self.messages[after:]

    def debug(self, node_id: str, after: int = 0) -> list[Any]:
        """Decoded outputs of the debug node ``node_id`` since ``after``."""
        out = []
        for message in self.since(after):
            data = message.data
            if message.topic == "debug" and isinstance(data, dict) and data.get("id") == node_id:
                out.append(decode_debug(data))
        return out

    def errors(self, after: int = 0) -> list[dict[str, Any]]:
        """Errors and warnings nodes reported to the editor (``node.error``/``node.warn``)."""
        return [
            m.data
            for m in self.since(after)
            if m.topic == "debug" and isinstance(m.data, dict) and m.data.get("level") in (20, 30)
        ]

    def statuses(self, node_id: str, after: int = 0) -> list[dict[str, Any]]:
        """The statuses of a node (``{"text", "fill", "shape"}``) since ``after``."""
        topic = f"status/{node_id}"
        return [m.data for m in self.since(after) if m.topic == topic]

    def status(self, node_id: str) -> dict[str, Any] | None:
        """The latest status of a node, None if it has none yet."""
        found = self.statuses(node_id)
        return found[-1] if found else None

    def wait_debug(
        self,
        node_id: str,
        predicate: Callable[[Any], bool] = lambda _: True,
        *,
        after: int = 0,
        within: float = 10.0,
    ) -> Any:
        """The first output of debug node ``node_id`` after ``after`` matching ``predicate``."""

        def probe() -> Any:
            for value in self.debug(node_id, after):
                if predicate(value):
                    return [value]  # a list: a falsy value is a match too
            return None

        try:
            return wait_until(probe, within=within, what=f"debug output of {node_id}")[0]
        except AssertionError as err:
            seen = self.debug(node_id, after)[-3:]
            raise AssertionError(f"{err}; last outputs: {seen}") from None

    def wait_status(
        self, node_id: str, predicate: Callable[[dict[str, Any]], bool], *, within: float = 10.0
    ) -> dict[str, Any]:
        """The status of ``node_id`` once it matches ``predicate``."""

        def probe() -> dict[str, Any] | None:
            status = self.status(node_id)
            return status if status is not None and predicate(status) else None

        try:
            return wait_until(probe, within=within, what=f"status of {node_id}")
        except AssertionError as err:
            raise AssertionError(f"{err}; last status: {self.status(node_id)}") from None


def decode_debug(data: Mapping[str, Any]) -> Any:
    """The value a debug node showed (its ``msg`` is JSON text for objects and numbers)."""
    text, kind = data.get("msg"), str(data.get("format", ""))
    if kind.startswith(("Object", "array", "number", "boolean")) and isinstance(text, str):
        with contextlib.suppress(ValueError):
            return json.loads(text)
    return text
