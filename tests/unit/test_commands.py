"""Command payload parsing and responses."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError

import pytest
from countis.errors import CountisError
from countis.models import PartialAction
from hypothesis import given
from hypothesis import strategies as st

from countis_bridge.commands import (
    COMMAND_NAMES,
    CommandParseError,
    CommandResponse,
    PartialCommand,
    TariffCommand,
    error_response,
    ok_response,
    parse_command,
    parse_error_response,
)


@pytest.mark.parametrize(
    ("payload", "tariff"),
    [
        ("1", 1),
        ("2", 2),
        ("T1", 1),
        ("t2", 2),
        (b" T2\n", 2),
        ('"T1"', 1),
        ('{"value": 2}', 2),
        ('{"value": "t1"}', 1),
        ('{"value": " T2 "}', 2),
    ],
)
def test_tariff_payloads(payload: str | bytes, tariff: int) -> None:
    assert parse_command("tariff", payload) == TariffCommand(tariff=tariff)


@pytest.mark.parametrize(
    ("payload", "action"),
    [
        ("start", PartialAction.START),
        ("STOP", PartialAction.STOP),
        (b"Reset", PartialAction.RESET),
        ('"stop"', PartialAction.STOP),
        ('{"value": "reset"}', PartialAction.RESET),
    ],
)
def test_partial_payloads(payload: str | bytes, action: PartialAction) -> None:
    assert parse_command("partial", payload) == PartialCommand(action=action)


@pytest.mark.parametrize("cid", ["abc-1", 42, 0, ""])
def test_correlation_ids_are_kept(cid: str | int) -> None:
    payload = json.dumps({"value": "T2", "correlation_id": cid})
    assert parse_command("tariff", payload) == TariffCommand(tariff=2, correlation_id=cid)
    payload = json.dumps({"correlation_id": cid, "value": "start"})
    command = parse_command("partial", payload)
    assert command == PartialCommand(action=PartialAction.START, correlation_id=cid)


@pytest.mark.parametrize(
    ("name", "payload", "reason"),
    [
        ("bogus", "1", "unknown command 'bogus'"),
        ("", "1", "unknown command ''"),
        ("Tariff", "1", "unknown command 'Tariff'"),
        ("tariff", "", "empty payload"),
        ("tariff", "   ", "empty payload"),
        ("tariff", "3", "unknown tariff '3'"),
        ("tariff", "T3", "unknown tariff 'T3'"),
        ("tariff", "0", "unknown tariff '0'"),
        ("tariff", "TT1", "unknown tariff 'TT1'"),
        ("tariff", '{"value": 3}', "unknown tariff 3"),
        ("tariff", '{"value": true}', "unknown tariff True"),
        ("tariff", '{"value": 1.0}', "unknown tariff 1.0"),
        ("tariff", '{"value": null}', "unknown tariff None"),
        ("tariff", "[1]", "unknown tariff '[1]'"),
        ("tariff", "{not json", "malformed JSON"),
        ("tariff", '"unterminated', "malformed JSON"),
        ("tariff", "{}", 'needs a "value"'),
        ("tariff", '{"value": 1, "extra": 2}', "unknown JSON field(s): extra"),
        ("tariff", b"\xff\xfe", "not UTF-8"),
        ("tariff", "1" * 2000, "too large"),
        ("partial", "pause", "unknown action 'pause'"),
        ("partial", '{"value": 1}', "unknown action 1"),
        ("partial", '{"value": "start", "correlation_id": [1]}', "correlation_id must be"),
        ("partial", '{"value": "start", "correlation_id": true}', "correlation_id must be"),
    ],
)
def test_bad_payloads_raise_with_a_reason(name: str, payload: str | bytes, reason: str) -> None:
    with pytest.raises(CommandParseError) as info:
        parse_command(name, payload)
    assert reason in info.value.reason
    assert info.value.command == name
    assert isinstance(info.value, CountisError)
    assert str(info.value) == f"{name}: {info.value.reason}"


def test_parse_error_keeps_the_correlation_id_once_known() -> None:
    with pytest.raises(CommandParseError) as info:
        parse_command("tariff", '{"value": "T9", "correlation_id": "req-7"}')
    assert info.value.correlation_id == "req-7"
    response = parse_error_response(info.value)
    assert response.as_dict() == {
        "command": "tariff",
        "status": "error",
        "reason": "unknown tariff 'T9' (expected 1, 2, T1 or T2)",
        "correlation_id": "req-7",
    }
    with pytest.raises(CommandParseError) as info:
        parse_command("partial", '{"correlation_id": 5}')
    assert info.value.correlation_id == 5


@given(st.binary(max_size=64) | st.text(max_size=64))
def test_parsing_never_raises_anything_but_parse_errors(payload: bytes | str) -> None:
    for name in COMMAND_NAMES:
        reason = ""
        try:
            command = parse_command(name, payload)
        except CommandParseError as err:
            reason = err.reason
        else:
            assert command.name == name
            continue
        assert reason


def test_ok_responses() -> None:
    tariff = TariffCommand(tariff=2, correlation_id="a")
    assert ok_response(tariff).to_json() == (
        '{"command":"tariff","status":"ok","value":2,"correlation_id":"a"}'
    )
    partial = PartialCommand(action=PartialAction.RESET)
    assert ok_response(partial).as_dict() == {
        "command": "partial",
        "status": "ok",
        "value": "reset",
    }
    assert ok_response(partial, value="done").value == "done"


def test_error_responses() -> None:
    response = error_response("tariff", "meter is read-only", 9)
    assert response == CommandResponse(
        command="tariff", status="error", reason="meter is read-only", correlation_id=9
    )
    assert json.loads(response.to_json()) == {
        "command": "tariff",
        "status": "error",
        "reason": "meter is read-only",
        "correlation_id": 9,
    }
    assert error_response("x", "ünïcode").to_json() == (
        '{"command":"x","status":"error","reason":"ünïcode"}'
    )


def test_commands_are_frozen() -> None:
    command = TariffCommand(tariff=1)
    with pytest.raises(FrozenInstanceError):
        command.tariff = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        TariffCommand(1)  # type: ignore[misc]
