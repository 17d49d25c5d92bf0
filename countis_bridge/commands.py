"""Pure parsing of MQTT command payloads and building of command responses.

Public API (stable):

- ``parse_command(name, payload) -> Command``: ``name`` is the last level of
  ``<base>/<meter>/set/<name>``; ``payload`` the message payload (``bytes`` or ``str``).
  Raises :class:`CommandParseError` (``.command``, ``.reason``, ``.correlation_id``).
- ``TariffCommand(tariff: int, correlation_id)`` and ``PartialCommand(action:
  PartialAction, correlation_id)``: frozen dataclasses; ``Command`` is their union.
- ``CommandResponse`` (frozen): ``command``, ``status`` (``"ok"|"error"``), ``reason``,
  ``value``, ``correlation_id``; ``.as_dict()`` drops ``None`` fields, ``.to_json()``,
  ``.to_bytes()`` (always valid UTF-8: what the service publishes).
- ``ok_response(command, value=None)``, ``error_response(command, reason,
  correlation_id=None)``, ``parse_error_response(err)`` build responses for
  ``<base>/<meter>/response``.

Payloads accepted (case-insensitive, surrounding white space ignored):

- ``set/tariff``: ``1``, ``2``, ``T1``, ``T2`` (the select's options), or JSON
  ``{"value": <one of those, or the number 1/2>, "correlation_id": <string or integer>}``
  or a JSON string (``"T2"``).
- ``set/partial``: ``start``, ``stop``, ``reset``, or the same JSON forms.

Response examples::

    {"command": "tariff", "status": "ok", "value": 2, "correlation_id": "abc"}
    {"command": "partial", "status": "error", "reason": "unknown action 'pause' ..."}

``value`` of an ``ok`` response is the applied tariff as a number (like ``tariff`` in the
state message) or the partial action as a string.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from countis.errors import CountisError
from countis.models import PartialAction

#: Command names accepted under ``<base>/<meter>/set/``.
TARIFF = "tariff"
PARTIAL = "partial"
COMMAND_NAMES: tuple[str, ...] = (TARIFF, PARTIAL)

CorrelationId = str | int
_JSON_KEYS = frozenset({"value", "correlation_id"})
_MAX_PAYLOAD = 1024  # commands are tiny; refuse anything larger without parsing it
_MAX_DEPTH = 8  # a command is one flat object; deeper JSON is refused before decoding it


class CommandParseError(CountisError, ValueError):
    """A command message could not be understood; ``reason`` goes into the response."""

    def __init__(
        self, command: str, reason: str, correlation_id: CorrelationId | None = None
    ) -> None:
        """Keep the command name, the reason and the request's correlation id (if any)."""
        super().__init__(f"{command}: {reason}")
        self.command = command
        self.reason = reason
        self.correlation_id = correlation_id


@dataclass(frozen=True, slots=True, kw_only=True)
class TariffCommand:
    """Switch the active tariff (1 or 2)."""

    tariff: int
    correlation_id: CorrelationId | None = None

    @property
    def name(self) -> str:
        """Command name (``tariff``)."""
        return TARIFF


@dataclass(frozen=True, slots=True, kw_only=True)
class PartialCommand:
    """Start, stop or reset the partial meters."""

    action: PartialAction
    correlation_id: CorrelationId | None = None

    @property
    def name(self) -> str:
        """Command name (``partial``)."""
        return PARTIAL


Command = TariffCommand | PartialCommand


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandResponse:
    """The message published on ``<base>/<meter>/response`` for one command."""

    command: str
    status: Literal["ok", "error"]
    reason: str | None = None
    value: str | int | None = None
    correlation_id: CorrelationId | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict; fields that are ``None`` are left out."""
        out: dict[str, Any] = {"command": self.command, "status": self.status}
        for key in ("reason", "value", "correlation_id"):
            field = getattr(self, key)
            if field is not None:
                out[key] = field
        return out

    def to_json(self) -> str:
        """Compact JSON text of :meth:`as_dict` that always encodes to UTF-8.

        Readable Unicode as is; a text holding a lone surrogate (a correlation id that
        was a JSON escape of one) is written with ASCII escapes, so it is echoed exactly.
        """
        data = self.as_dict()
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return json.dumps(data, separators=(",", ":"), ensure_ascii=True)
        return text

    def to_bytes(self) -> bytes:
        """:meth:`to_json` as UTF-8 bytes (the payload published)."""
        return self.to_json().encode("utf-8")


def _text(command: str, payload: bytes | str) -> str:
    if len(payload) > _MAX_PAYLOAD:
        raise CommandParseError(command, f"payload too large (over {_MAX_PAYLOAD} bytes)")
    if isinstance(payload, bytes):
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise CommandParseError(command, "payload is not UTF-8 text") from None
    text = payload.strip()
    if not text:
        raise CommandParseError(command, "empty payload")
    return text


def _correlation_id(command: str, data: dict[str, Any]) -> CorrelationId | None:
    cid = data.get("correlation_id")
    if cid is None or (isinstance(cid, str | int) and not isinstance(cid, bool)):
        return cid
    raise CommandParseError(command, "correlation_id must be a string or an integer")


def _too_deep(text: str) -> bool:
    """Whether JSON ``text`` nests arrays/objects deeper than ``_MAX_DEPTH`` (strings skipped)."""
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > _MAX_DEPTH:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _unwrap(command: str, text: str) -> tuple[Any, CorrelationId | None]:
    """The command's value and correlation id from plain text or JSON."""
    if not text.startswith(("{", '"')):
        return text, None
    if _too_deep(text):
        raise CommandParseError(command, f"JSON nested deeper than {_MAX_DEPTH} levels")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
        raise CommandParseError(command, "malformed JSON") from None
    if isinstance(data, str):
        return data, None
    if not isinstance(data, dict):  # pragma: no cover - '{' or '"' always decodes to these
        raise CommandParseError(command, "JSON payload must be an object")
    cid = _correlation_id(command, data)
    if unknown := sorted(set(data) - _JSON_KEYS):
        raise CommandParseError(command, f"unknown JSON field(s): {', '.join(unknown)}", cid)
    if "value" not in data:
        raise CommandParseError(command, 'JSON payload needs a "value"', cid)
    return data["value"], cid


def _tariff(value: Any, cid: CorrelationId | None) -> TariffCommand:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if isinstance(text, str):
        text = text.strip().upper().removeprefix("T")
        if text in ("1", "2"):
            return TariffCommand(tariff=int(text), correlation_id=cid)
    reason = f"unknown tariff {value!r} (expected 1, 2, T1 or T2)"
    raise CommandParseError(TARIFF, reason, cid)


def _partial(value: Any, cid: CorrelationId | None) -> PartialCommand:
    if isinstance(value, str):
        try:
            return PartialCommand(action=PartialAction(value.strip().lower()), correlation_id=cid)
        except ValueError:
            pass
    reason = f"unknown action {value!r} (expected start, stop or reset)"
    raise CommandParseError(PARTIAL, reason, cid)


def parse_command(name: str, payload: bytes | str) -> Command:
    """The command of a message on ``<base>/<meter>/set/<name>``.

    Raises :class:`CommandParseError` for unknown names and malformed payloads.
    """
    if name not in COMMAND_NAMES:
        raise CommandParseError(name, f"unknown command {name!r} (expected tariff or partial)")
    value, cid = _unwrap(name, _text(name, payload))
    return _tariff(value, cid) if name == TARIFF else _partial(value, cid)


def ok_response(command: Command, value: str | int | None = None) -> CommandResponse:
    """Success response; ``value`` defaults to the tariff number or the partial action."""
    if value is None:
        value = command.tariff if isinstance(command, TariffCommand) else str(command.action)
    return CommandResponse(
        command=command.name, status="ok", value=value, correlation_id=command.correlation_id
    )


def error_response(
    command: str, reason: str, correlation_id: CorrelationId | None = None
) -> CommandResponse:
    """Error response (``command`` is the name as received, possibly unknown)."""
    return CommandResponse(
        command=command, status="error", reason=reason, correlation_id=correlation_id
    )


def parse_error_response(err: CommandParseError) -> CommandResponse:
    """Error response for a payload that could not be parsed."""
    return error_response(err.command, err.reason, err.correlation_id)


def internal_error_response(
    command: str, correlation_id: CorrelationId | None = None
) -> CommandResponse:
    """The answer when handling a command failed in an unexpected way (a bug, logged)."""
    return error_response(command, "internal error", correlation_id)
