"""The emulate command's options and the control API's routing (no network)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from countis.errors import ConfigError

from countis_bridge.cli import build_parser
from countis_bridge.emulator import EmulatedMeter, ManualClock
from countis_bridge.emulator.cli import build_options, state_file_for
from countis_bridge.emulator.control import ControlServer, _HttpError
from countis_bridge.emulator.identity import Serial


def parse(*argv):
    return build_parser().parse_args(["emulate", *argv])


def test_fleet_options_count_serials_and_name_state_files(tmp_path):
    options = build_options(
        parse(
            "--meters", "3", "--serial", "21170A0100042", "--state-file", str(tmp_path / "s.json")
        )
    )
    serials = [str(m.serial) for m in options.meters]
    assert serials == ["21170A0100042", "21170A0100043", "21170A0100044"]
    assert [m.state_file.name for m in options.meters] == [f"s-{s}.json" for s in serials]
    assert len({m.seed for m in options.meters}) == 3  # distinct physics per meter
    assert options.host == "127.0.0.1"
    assert options.control_port is None


def test_single_meter_keeps_its_state_file_name(tmp_path):
    assert state_file_for(str(tmp_path / "s.json"), Serial.parse("21170A0100001"), 1) == Path(
        tmp_path / "s.json"
    )
    assert state_file_for(None, Serial.parse("21170A0100001"), 5) is None


def test_options_carry_model_unit_profile_seed_and_overflow():
    options = build_options(
        parse(
            "--model", "E27", "--unit", "9", "--profile", "constant", "--seed", "5",
            "--overflow-kwh", "10", "--speed", "60", "--control-port", "0",
        )
    )  # fmt: skip
    meter = options.meters[0]
    assert (meter.model, meter.unit_id, meter.profile.name) == ("E27", 9, "constant")
    assert (meter.seed, meter.wrap, meter.speed) == (5, 1000, 60.0)
    assert options.control_port == 0


@pytest.mark.parametrize(
    "argv",
    [
        ("--meters", "0"),
        ("--port", "65535", "--meters", "2"),
        ("--port", "-1"),
        ("--serial", "nope"),
        ("--unit", "0"),
        ("--speed", "0"),
        ("--control-port", "70000"),
    ],
)
def test_bad_options_are_config_errors(argv):
    with pytest.raises(ConfigError):
        build_options(parse(*argv))


@pytest.fixture
def control():
    meters = [
        EmulatedMeter(serial=f"21170A010000{n}", profile="constant", clock=ManualClock())
        for n in (1, 2)
    ]
    return ControlServer(meters, [5020, 5021])


def test_control_lists_meters(control):
    listing = control.route("GET", "/meters", b"")
    assert [m["serial"] for m in listing] == ["21170A0100001", "21170A0100002"]
    assert listing[1]["port"] == 5021
    assert listing[0]["values"]["power"] == 6210
    assert listing[0]["faults"]["freeze"] is False
    json.dumps(listing)  # JSON all the way
    assert control.route("GET", "/meters/1/values", b"")["voltage"] == 230.0
    assert control.route("GET", "/meters/0", b"")["index"] == 0


def test_control_sets_faults_partial_and_tariff(control):
    meter = control.meters[1]
    body = json.dumps({"delay": 0.5, "exception": 6, "freeze": True, "drop": True}).encode()
    answer = control.route("POST", "/meters/1/faults", body)
    assert answer["faults"]["delay"] == 0.5
    assert meter.faults.exception_code == 6
    assert meter.faults.frozen
    assert answer["dropped"] == 0  # not served: nothing to drop
    answer = control.route("POST", "/meters/1/faults", b'{"clear": true, "no_answer": true}')
    assert answer["faults"]["no_answer"] is True
    assert answer["faults"]["exception"] is None
    assert control.route("GET", "/meters/1/faults", b"")["no_answer"] is True
    assert control.route("POST", "/meters/1/partial", b'{"action": "stop"}') == {
        "partial_running": False
    }
    assert control.route("POST", "/meters/1/tariff", b'{"tariff": 2}') == {"tariff": 2}
    assert meter.tariff == 2
    assert control.meters[0].tariff == 1


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/", b"", 404),
        ("GET", "/meters/2", b"", 404),
        ("GET", "/meters/x/values", b"", 404),
        ("GET", "/meters/0/nothing", b"", 404),
        ("DELETE", "/meters/0/values", b"", 405),
        ("POST", "/meters", b"{}", 405),
        ("POST", "/meters/0/faults", b"[1]", 400),
        ("POST", "/meters/0/faults", b"{bad", 400),
        ("POST", "/meters/0/faults", b'{"delay": "soon"}', 400),
        ("POST", "/meters/0/faults", b'{"delay": -1}', 400),
        ("POST", "/meters/0/faults", b'{"exception": 1.5}', 400),
        ("POST", "/meters/0/faults", b'{"exception": 300}', 400),
        ("POST", "/meters/0/faults", b'{"freeze": 1}', 400),
        ("POST", "/meters/0/faults", b'{"explode": true}', 400),
        ("POST", "/meters/0/partial", b'{"action": "jump"}', 400),
        ("POST", "/meters/0/tariff", b'{"tariff": 3}', 400),
        ("POST", "/meters/0/tariff", b'{"tariff": true}', 400),
    ],
)
def test_control_errors(control, method, path, body, status):
    with pytest.raises(_HttpError) as caught:
        control.route(method, path, body)
    assert caught.value.status == status


def test_control_answers_503_until_the_meters_are_served():
    starting = ControlServer([EmulatedMeter(clock=ManualClock())], None)
    with pytest.raises(_HttpError) as caught:
        starting.route("GET", "/meters", b"")
    assert caught.value.status == 503
    starting.serving([5020])
    assert starting.route("GET", "/meters", b"")[0]["port"] == 5020
