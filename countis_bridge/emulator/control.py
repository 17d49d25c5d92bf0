"""A tiny HTTP/JSON control API for a running emulator process (127.0.0.1 only).

Tests and benchmarks running the emulator as a separate process use it to inject faults
and press the front-panel buttons. Endpoints (``i`` = meter index from 0):

    GET  /meters                 every meter: index, serial, model, unit, port, tariff,
                                 partial_running, faults, values
    GET  /meters/i               one meter, same fields
    GET  /meters/i/values        the meter's values by value key
    GET  /meters/i/faults        the active faults
    POST /meters/i/faults        {"delay": s|null, "no_answer": bool, "exception": code|null,
                                  "freeze": bool, "zero_counters": bool,
                                  "lower_counters": bool, "drop": true, "clear": true}
                                 (only the fields given change; "clear" first, "drop" last)
    POST /meters/i/partial       {"action": "start" | "stop" | "reset"}
    POST /meters/i/tariff        {"tariff": 1 | 2}

Answers are JSON objects; errors are ``{"error": "..."}`` with status 400 (a request or
body that cannot be read: not HTTP, not JSON, nested too deep, wrong types), 404, 405,
500 (a bug, logged) and 503 while the meters are not served yet (the API listens first,
so the port its caller picked cannot be taken by one of a fleet's meter ports in the
meantime). Every request is answered before the connection closes.
Standard library only (asyncio streams), one request per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from countis.errors import ConfigError

from countis_bridge.emulator.meter import EmulatedMeter

_LOG = logging.getLogger(__name__)
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_MAX_BODY = 64 * 1024
_LINGER_S = 1.0  # how long the rest of a request is read after answering it


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _flag(body: dict[str, Any], key: str) -> bool:
    value = body[key]
    if not isinstance(value, bool):
        raise _HttpError(400, f"{key} must be true or false")
    return value


def _number_or_null(body: dict[str, Any], key: str, *, integer: bool) -> Any:
    value = body[key]
    kinds = (int,) if integer else (int, float)
    if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
        raise _HttpError(400, f"{key} must be {'an integer' if integer else 'a number'} or null")
    return value


def apply_faults(meter: EmulatedMeter, body: dict[str, Any]) -> dict[str, Any]:
    """Apply a fault request body to ``meter``; returns the faults and dropped connections."""
    known = {"delay", "no_answer", "exception", "freeze", "zero_counters", "lower_counters"}
    unknown = set(body) - known - {"drop", "clear"}
    if unknown:
        raise _HttpError(400, f"unknown fault fields: {', '.join(sorted(unknown))}")
    faults = meter.faults
    try:
        if "clear" in body and _flag(body, "clear"):
            faults.clear()
        if "delay" in body:
            faults.delay(_number_or_null(body, "delay", integer=False))
        if "exception" in body:
            faults.exception(_number_or_null(body, "exception", integer=True))
        setters = {
            "no_answer": faults.no_answer,
            "freeze": faults.freeze,
            "zero_counters": faults.zero_counters,
            "lower_counters": faults.lower_counters,
        }
        for key, setter in setters.items():
            if key in body:
                setter(_flag(body, key))
    except ValueError as err:
        raise _HttpError(400, str(err)) from err
    dropped = faults.drop_connections() if "drop" in body and _flag(body, "drop") else 0
    return {"faults": faults.as_dict(), "dropped": dropped}


class ControlServer:
    """The control API for ``meters``, on 127.0.0.1:``port``.

    ``ports`` are the meters' Modbus ports; None until they are served (answers 503),
    set them with :meth:`serving`.
    """

    def __init__(
        self, meters: Sequence[EmulatedMeter], ports: Sequence[int] | None, port: int = 0
    ) -> None:
        """Remember the meters; nothing listens before ``async with``."""
        self.meters = list(meters)
        self.meter_ports = None if ports is None else list(ports)
        self.host = "127.0.0.1"
        self.port = port
        self._server: asyncio.Server | None = None

    def serving(self, ports: Sequence[int]) -> None:
        """The meters listen on ``ports`` now: start answering."""
        self.meter_ports = list(ports)

    async def __aenter__(self) -> ControlServer:
        """Listen; ``self.port`` is the bound port afterwards."""
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self.port)
        except OSError as err:
            msg = f"control API cannot listen on {self.host}:{self.port} ({err.strerror})"
            raise ConfigError(msg) from err
        self.port = int(self._server.sockets[0].getsockname()[1])
        _LOG.info("control API on http://%s:%d/meters", self.host, self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def describe(self, index: int) -> dict[str, Any]:
        """One meter as ``GET /meters/i`` shows it."""
        meter, ports = self.meters[index], self.meter_ports or []
        return {
            "index": index,
            "serial": str(meter.serial),
            "model": meter.model,
            "unit": meter.unit_id,
            "port": ports[index] if index < len(ports) else None,
            "tariff": meter.tariff,
            "partial_running": meter.partial_running,
            "faults": meter.faults.as_dict(),
            "values": meter.values(),
        }

    def route(self, method: str, path: str, body: bytes) -> Any:
        """The JSON answer to one request (raises ``_HttpError`` for errors)."""
        if self.meter_ports is None:
            raise _HttpError(503, "starting: the meters are not served yet")
        parts = [p for p in path.split("?", 1)[0].split("/") if p]
        if not parts or parts[0] != "meters" or len(parts) > 3:
            raise _HttpError(404, f"no such resource: {path}")
        if len(parts) == 1:
            if method != "GET":
                raise _HttpError(405, "use GET")
            return [self.describe(i) for i in range(len(self.meters))]
        index = _meter_index(parts[1], len(self.meters))
        meter = self.meters[index]
        action = parts[2] if len(parts) == 3 else ""
        if method == "GET":
            readers = {"": lambda: self.describe(index), "values": meter.values}
            readers["faults"] = meter.faults.as_dict
            if action not in readers:
                raise _HttpError(404, f"no such resource: {path}")
            return readers[action]()
        if method != "POST" or action not in ("faults", "partial", "tariff"):
            raise _HttpError(405 if action in ("", "values") else 404, f"cannot {method} {path}")
        data = _json_object(body)
        if action == "faults":
            return apply_faults(meter, data)
        if action == "partial":
            return _partial(meter, data)
        if data.get("tariff") not in (1, 2) or isinstance(data.get("tariff"), bool):
            raise _HttpError(400, 'body must be {"tariff": 1} or {"tariff": 2}')
        meter.set_tariff(data["tariff"])
        return {"tariff": meter.tariff}

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        status, answer = 200, None
        try:
            method, path, body = await asyncio.wait_for(_read_request(reader), timeout=10.0)
            answer = self.route(method, path, body)
        except _HttpError as err:
            status, answer = err.status, {"error": str(err)}
        except (ValueError, TimeoutError, asyncio.IncompleteReadError, ConnectionError) as err:
            status, answer = 400, {"error": f"bad request: {err}"}
        except Exception:  # a bug must still get an answer, not a closed connection
            _LOG.exception("control API: request failed")
            status, answer = 500, {"error": "internal error"}
        payload = json.dumps(answer).encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        )
        with contextlib.suppress(ConnectionError):
            writer.write(head.encode() + payload)
            await writer.drain()
            # Closing with unread input would send a reset, which can destroy the answer
            # before the client reads it (an over-long or unread request): end our side,
            # then read what is left, briefly.
            writer.write_eof()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_discard(reader), _LINGER_S)
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _discard(reader: asyncio.StreamReader) -> None:
    """Read and drop input until the client closes (at most ``_MAX_BODY`` x 16 bytes)."""
    for _ in range(16):
        if not await reader.read(_MAX_BODY):
            return


def _meter_index(text: str, count: int) -> int:
    """The meter index of a path part (ASCII digits only: ``int`` takes others too)."""
    if text.isascii() and text.isdigit() and len(text) <= 6 and int(text) < count:
        return int(text)
    raise _HttpError(404, f"no meter {text[:20]!r} (have {count})")


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes]:
    line = (await reader.readline()).decode("latin-1").strip()
    method, path, _version = line.split(" ", 2)
    length = 0
    while header := (await reader.readline()).strip():
        name, _, value = header.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    if not 0 <= length <= _MAX_BODY:
        msg = f"body of {length} bytes"
        raise ValueError(msg)
    return method.upper(), path, await reader.readexactly(length) if length else b""


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}")
    except json.JSONDecodeError as err:
        raise _HttpError(400, f"body is not JSON: {err.msg}") from err
    except (ValueError, RecursionError) as err:  # not UTF-8; nested too deep to decode
        raise _HttpError(400, f"body is not usable JSON: {type(err).__name__}") from err
    if not isinstance(data, dict):
        raise _HttpError(400, "body must be a JSON object")
    return data


def _partial(meter: EmulatedMeter, data: dict[str, Any]) -> dict[str, Any]:
    actions = {"start": meter.partial_start, "stop": meter.partial_stop}
    actions["reset"] = meter.partial_reset
    action = data.get("action")
    if not isinstance(action, str) or action not in actions:
        raise _HttpError(400, 'body must be {"action": "start" | "stop" | "reset"}')
    actions[action]()
    return {"partial_running": meter.partial_running}
