"""Exception rules, serial numbers, faults and the state file of the emulator (pure)."""

from __future__ import annotations

import json

import pytest
from countis.errors import ConfigError

from countis_bridge.emulator import EmulatedMeter, Faults, ManualClock
from countis_bridge.emulator.identity import Serial, check_model
from countis_bridge.emulator.modbus import (
    RESET_PARTIAL,
    RESET_PARTIAL_MASK,
    RESET_TARIFF_MASK,
    SYSTEM_ACTION,
    TARIFF,
    ExceptionCode,
    broadcast_applies,
    check_read,
    check_write,
)

HOUR = 3600.0


@pytest.mark.parametrize(
    ("count", "expected"),
    [(0, ExceptionCode.ILLEGAL_VALUE), (1, None), (125, None), (126, ExceptionCode.ILLEGAL_VALUE)],
)
def test_read_count_rule(count, expected):
    assert check_read(count) == expected


@pytest.mark.parametrize(
    ("address", "values", "expected"),
    [
        (TARIFF, [1], None),
        (TARIFF, [2], None),
        (TARIFF, [0], ExceptionCode.ILLEGAL_VALUE),
        (TARIFF, [3], ExceptionCode.ILLEGAL_VALUE),
        (RESET_PARTIAL, [0x20], None),
        (RESET_PARTIAL, [0x21], ExceptionCode.ILLEGAL_VALUE),
        (RESET_PARTIAL_MASK, [0x1F], None),
        (RESET_PARTIAL_MASK, [0], ExceptionCode.ILLEGAL_VALUE),
        (RESET_PARTIAL_MASK, [0x20], ExceptionCode.ILLEGAL_VALUE),
        (RESET_TARIFF_MASK, [0xFFFF], None),
        (RESET_TARIFF_MASK, [4], ExceptionCode.ILLEGAL_VALUE),
        (SYSTEM_ACTION, [0xA1], None),
        (SYSTEM_ACTION, [0x00], ExceptionCode.ILLEGAL_VALUE),
        (0xC558, [1], ExceptionCode.ILLEGAL_ADDRESS),  # read-only
        (0x9E20, [1], ExceptionCode.ILLEGAL_ADDRESS),  # reserved word of the tariff block
        (0xE000, [7], ExceptionCode.ILLEGAL_ADDRESS),  # slave address: locked
        (0xE001, [4], ExceptionCode.ILLEGAL_ADDRESS),  # RS-485 settings: locked
        (0x0000, [1], ExceptionCode.ILLEGAL_ADDRESS),  # outside every block
        (0x9E20, [0, 1], ExceptionCode.ILLEGAL_ADDRESS),  # checked as a whole
        (TARIFF, [], ExceptionCode.ILLEGAL_VALUE),
        (TARIFF, [1] * 124, ExceptionCode.ILLEGAL_VALUE),
    ],
)
def test_write_rules(address, values, expected):
    assert check_write(address, values) == expected


def test_broadcast_applies_to_the_tariff_only():
    assert broadcast_applies(TARIFF, [2])
    assert not broadcast_applies(TARIFF, [5])
    assert not broadcast_applies(RESET_PARTIAL, [0x20])


@pytest.mark.parametrize(
    "text", ["21170A0100042", "0000000000000", "FFFFffff65535", "ABCD123400000-12"]
)
def test_serial_round_trip(text):
    assert str(Serial.parse(text)).upper() == text.upper()


@pytest.mark.parametrize(
    "text", ["", "21170A010004", "2117GA0100042", "21170A0165536", "21170A0100042-"]
)
def test_bad_serials(text):
    with pytest.raises(ConfigError):
        Serial.parse(text)


def test_serial_counting_for_fleets():
    first = Serial.parse("21170A0100042")
    assert str(first.plus(3)) == "21170A0100045"
    with pytest.raises(ConfigError):
        Serial.parse("21170A0165535").plus(1)


def test_model_check():
    assert check_model("e27") == "E27"
    with pytest.raises(ConfigError):
        check_model("E23")


def test_meter_arguments_are_checked():
    for kwargs in ({"unit_id": 0}, {"speed": 0.0}, {"overflow_kwh": 0}, {"profile": "nope"}):
        with pytest.raises(ConfigError):
            EmulatedMeter(clock=ManualClock(), **kwargs)


def test_faults_switch_and_clear():
    changes = []
    faults = Faults(on_change=lambda: changes.append(1))
    assert not faults.active
    faults.delay(0.5)
    assert faults.active
    assert faults.delay_seconds == 0.5
    faults.delay(None)
    faults.exception(6)
    faults.no_answer(True)
    faults.freeze(True)
    faults.zero_counters(True)
    faults.lower_counters(True)
    assert faults.as_dict() == {
        "delay": None,
        "no_answer": True,
        "exception": 6,
        "freeze": True,
        "zero_counters": True,
        "lower_counters": True,
    }
    faults.clear()
    assert not faults.active
    assert not any(v for v in faults.as_dict().values())
    assert len(changes) == 4  # freeze, zero, lower, clear
    with pytest.raises(ValueError, match="delay"):
        faults.delay(-1)
    with pytest.raises(ValueError, match="exception code"):
        faults.exception(0)


def test_drop_connections_calls_every_registered_dropper():
    faults = Faults()
    undo = faults.add_dropper(lambda: 2)
    faults.add_dropper(lambda: 1)
    assert faults.drop_connections() == 3
    undo()
    assert faults.drop_connections() == 1


def test_state_file_round_trip(tmp_path):
    path = tmp_path / "meter.json"
    clock = ManualClock(1000.0)
    meter = EmulatedMeter(serial="21170A0100042", profile="pv", state_file=path, clock=clock)
    clock.advance(20 * HOUR)
    meter.set_tariff(2)
    meter.partial_stop()
    clock.advance(HOUR)
    meter.save_state()
    assert [p.name for p in tmp_path.iterdir()] == ["meter.json"]  # no temporary left
    before, values = meter.counters(), meter.values()

    clock2 = ManualClock(0.0)  # a restart: the simulated time continues where it was
    again = EmulatedMeter(serial="21170A0100042", profile="pv", state_file=path, clock=clock2)
    assert again.counters() == before
    assert again.tariff == 2
    assert not again.partial_running
    assert again.sim_time == meter.sim_time
    restored = again.values()
    for key, value in values.items():
        if "energy" in key or key.startswith("tariff"):
            assert restored[key] == value, key


def test_state_file_errors(tmp_path):
    path = tmp_path / "meter.json"
    EmulatedMeter(serial="21170A0100042", state_file=path, clock=ManualClock()).save_state()
    with pytest.raises(ConfigError, match="belongs to meter 21170A0100042"):
        EmulatedMeter(serial="21170A0100043", state_file=path, clock=ManualClock())
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        EmulatedMeter(serial="21170A0100042", state_file=path, clock=ManualClock())
    path.write_text(json.dumps({"format": 99}))
    with pytest.raises(ConfigError, match="not a countis-bridge emulator state"):
        EmulatedMeter(serial="21170A0100042", state_file=path, clock=ManualClock())


def test_no_state_file_no_save(tmp_path):
    meter = EmulatedMeter(clock=ManualClock())
    meter.save_state()  # no-op
    assert meter.state()["counters"]["sum.ea_plus"] == 0
