"""The partial-meter start/stop/reset state machine."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from countis.catalogue import PARTIAL_COUNTER_KEYS
from countis.partial import PartialMeter, PartialStateError
from hypothesis import given, settings
from hypothesis import strategies as st

IMP = "partial_energy_import"
EXP = "partial_energy_export"


def test_partial_keys_are_the_partial_counters() -> None:
    assert {IMP, EXP, "partial_energy_import_t1"} <= PARTIAL_COUNTER_KEYS


def test_running_passes_values_through() -> None:
    meter = PartialMeter()
    values = {IMP: 12.34, "power": 1500, "phase_sequence": "123", EXP: 0}
    assert meter.apply(values) == values
    assert meter.running
    assert not meter.meter_reset_detected


def test_stop_freezes_and_start_continues_from_the_frozen_value() -> None:
    meter = PartialMeter()
    assert meter.apply({IMP: 10.0, EXP: 1.0, "power": 5}) == {IMP: 10.0, EXP: 1.0, "power": 5}
    meter.stop()
    assert not meter.running
    assert meter.apply({IMP: 12.5, EXP: 1.5, "power": 6}) == {IMP: 10.0, EXP: 1.0, "power": 6}
    assert meter.apply({IMP: 13.0, EXP: 2.0}) == {IMP: 10.0, EXP: 1.0}
    meter.start()
    # The meter counted 3 kWh while stopped: they are not published.
    assert meter.apply({IMP: 13.25, EXP: 2.0}) == {IMP: 10.25, EXP: 1.0}
    meter.stop()
    assert meter.apply({IMP: 20.0, EXP: 9.0}) == {IMP: 10.25, EXP: 1.0}
    meter.start()
    assert meter.apply({IMP: 20.01, EXP: 9.0}) == {IMP: 10.26, EXP: 1.0}


def test_float_noise_is_rounded_to_the_finest_resolution() -> None:
    meter = PartialMeter()
    meter.apply({IMP: 0.3})
    meter.stop()
    meter.apply({IMP: 0.5})
    meter.start()
    assert meter.apply({IMP: 0.7}) == {IMP: 0.5}  # not 0.49999999999999994
    assert meter.apply({IMP: 1.2345678}) == {IMP: 1.0346}


def test_stop_and_start_twice_are_no_ops() -> None:
    meter = PartialMeter()
    meter.apply({IMP: 5.0})
    meter.start()
    meter.stop()
    meter.apply({IMP: 6.0})
    meter.stop()  # must not re-freeze at 6 - 0
    assert meter.apply({IMP: 7.0}) == {IMP: 5.0}
    meter.start()
    meter.start()
    assert meter.apply({IMP: 7.5}) == {IMP: 5.5}


def test_stopped_before_the_first_reading_freezes_at_the_first_value() -> None:
    meter = PartialMeter()
    meter.stop()
    assert meter.apply({IMP: 4.0}) == {IMP: 4.0}
    assert meter.apply({IMP: 5.0}) == {IMP: 4.0}
    meter.start()
    assert meter.apply({IMP: 6.0}) == {IMP: 5.0}


def test_a_key_first_seen_while_stopped_freezes_with_its_offset() -> None:
    meter = PartialMeter.from_dict(
        {"version": 1, "running": False, "offsets": {EXP: 1.0}, "frozen": {}, "last_raw": {}}
    )
    assert meter.apply({EXP: 3.0}) == {EXP: 2.0}
    assert meter.apply({EXP: 4.0}) == {EXP: 2.0}


def test_reset_while_running_publishes_the_meter_from_zero() -> None:
    meter = PartialMeter()
    meter.apply({IMP: 10.0})
    meter.stop()
    meter.apply({IMP: 15.0})
    meter.start()
    assert meter.apply({IMP: 16.0}) == {IMP: 11.0}
    meter.reset()
    assert meter.running
    # The (near-)zero after our own reset is not a drop to confirm: published at once.
    assert meter.apply({IMP: 0.0}) == {IMP: 0.0}
    assert not meter.meter_reset_detected
    assert meter.apply({IMP: 0.5}) == {IMP: 0.5}


def test_reset_while_stopped_freezes_every_partial_counter_at_zero() -> None:
    meter = PartialMeter()
    meter.apply({IMP: 10.0, EXP: 2.0})
    meter.stop()
    meter.reset()
    assert not meter.running
    assert meter.apply({IMP: 0.2, EXP: 0.0}) == {IMP: 0.0, EXP: 0.0}
    assert meter.apply({IMP: 0.7, EXP: 0.1}) == {IMP: 0.0, EXP: 0.0}
    meter.start()
    assert meter.apply({IMP: 1.0, EXP: 0.1}) == {IMP: 0.3, EXP: 0.0}
    assert meter.to_dict()["frozen"] == {}


def test_start_right_after_a_stopped_reset_resumes_at_the_next_reading() -> None:
    meter = PartialMeter()
    meter.apply({IMP: 10.0})
    meter.stop()
    meter.reset()
    meter.start()  # no reading since the reset: continue from 0 at the next one
    assert meter.apply({IMP: 0.4}) == {IMP: 0.0}
    assert meter.apply({IMP: 1.4}) == {IMP: 1.0}


def test_stop_again_before_resuming_keeps_the_resume_value() -> None:
    meter = PartialMeter()
    meter.stop()
    meter.reset()
    meter.start()
    meter.stop()
    assert meter.apply({IMP: 3.0}) == {IMP: 0.0}


def test_a_reset_outside_the_bridge_is_confirmed_by_a_second_reading() -> None:
    meter = PartialMeter()
    meter.apply({IMP: 10.0, EXP: 2.0})
    meter.stop()
    meter.apply({IMP: 12.0, EXP: 2.0})
    meter.start()
    assert meter.apply({IMP: 13.0, EXP: 2.0, "power": 1}) == {IMP: 11.0, EXP: 2.0, "power": 1}
    # Front-panel reset: the first low reading is withheld ...
    assert meter.apply({IMP: 0.01, EXP: 0.0, "power": 2}) == {"power": 2}
    assert not meter.meter_reset_detected
    # ... the second confirms it: the meter's values are published, offsets are gone.
    assert meter.apply({IMP: 0.02, EXP: 0.0}) == {IMP: 0.02, EXP: 0.0}
    assert meter.meter_reset_detected
    assert meter.apply({IMP: 0.03, EXP: 0.0}) == {IMP: 0.03, EXP: 0.0}
    assert not meter.meter_reset_detected
    assert meter.to_dict()["offsets"] == {}


def test_a_reset_outside_the_bridge_while_stopped_freezes_at_zero() -> None:
    meter = PartialMeter()
    meter.apply({IMP: 10.0})
    meter.stop()
    assert meter.apply({IMP: 0.0}) == {}
    assert meter.apply({IMP: 0.1}) == {IMP: 0.0}
    assert meter.meter_reset_detected
    meter.start()
    assert meter.apply({IMP: 0.6}) == {IMP: 0.5}


def test_a_single_low_reading_is_a_glitch() -> None:
    meter = PartialMeter()
    meter.apply({IMP: 10.0})
    assert meter.apply({IMP: 0.0}) == {}
    assert meter.apply({IMP: 10.1}) == {IMP: 10.1}
    assert not meter.meter_reset_detected
    assert meter.apply({IMP: 10.2}) == {IMP: 10.2}


def test_a_reading_below_the_first_low_one_restarts_the_confirmation() -> None:
    meter = PartialMeter()
    meter.apply({IMP: 10.0})
    assert meter.apply({IMP: 5.0}) == {}
    assert meter.apply({IMP: 1.0}) == {}  # lower again: not a counter counting from 0
    assert meter.apply({IMP: 1.0}) == {IMP: 1.0}
    assert meter.meter_reset_detected


def test_reset_detected_after_a_restart_from_persisted_state() -> None:
    meter = PartialMeter()
    meter.apply({IMP: 10.0})
    meter.stop()
    meter.apply({IMP: 14.0})
    meter.start()
    restored = PartialMeter.from_json(meter.to_json())
    # The meter was reset while the bridge was down: no negative value, ever.
    assert restored.apply({IMP: 3.0}) == {}
    assert restored.apply({IMP: 3.5}) == {IMP: 3.5}


def test_round_trip_keeps_the_behaviour() -> None:
    meter = PartialMeter()
    meter.apply({IMP: 10.0, EXP: 1.0})
    meter.stop()
    meter.apply({IMP: 11.0, EXP: 1.0})
    restored = PartialMeter.from_json(meter.to_json())
    assert restored.to_dict() == meter.to_dict()
    assert not restored.running
    assert restored.apply({IMP: 12.0, EXP: 1.0}) == {IMP: 10.0, EXP: 1.0}
    restored.start()
    assert restored.apply({IMP: 12.5, EXP: 1.0}) == {IMP: 10.5, EXP: 1.0}
    assert PartialMeter.from_dict(json.loads(restored.to_json())).to_dict() == (restored.to_dict())


def test_persisted_form() -> None:
    meter = PartialMeter()
    meter.apply({IMP: 10.0})
    meter.stop()
    assert meter.to_dict() == {
        "version": 1,
        "running": False,
        "offsets": {},
        "frozen": {IMP: 10.0},
        "resume": {},
        "last_raw": {IMP: 10.0},
    }


def test_unknown_keys_in_persisted_state_are_dropped() -> None:
    data = {"version": 1, "running": True, "offsets": {"gone_key": 1.0, IMP: 2}}
    meter = PartialMeter.from_dict(data)
    assert meter.to_dict()["offsets"] == {IMP: 2.0}


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ([], "must be a JSON object"),
        ({"running": True}, "unsupported partial-meter state version None"),
        ({"version": 2, "running": True}, "version 2"),
        ({"version": 1}, "'running' must be true or false"),
        ({"version": 1, "running": "yes"}, "'running' must be true or false"),
        ({"version": 1, "running": True, "offsets": []}, "'offsets' must be an object"),
        ({"version": 1, "running": True, "frozen": {IMP: "1"}}, f"frozen.{IMP} must be"),
        ({"version": 1, "running": True, "frozen": {IMP: True}}, "must be a number"),
        ({"version": 1, "running": True, "last_raw": {IMP: -1}}, "must be a number >= 0"),
        ({"version": 1, "running": True, "resume": {IMP: math.nan}}, "must be a number"),
    ],
)
def test_bad_persisted_state(data: Any, problem: str) -> None:
    with pytest.raises(PartialStateError, match=problem):
        PartialMeter.from_dict(data)


def test_bad_json() -> None:
    with pytest.raises(PartialStateError, match="not valid JSON"):
        PartialMeter.from_json("{")
    with pytest.raises(PartialStateError, match="not valid JSON"):
        PartialMeter.from_json(b"\xff")
    with pytest.raises(PartialStateError, match="must be a JSON object"):
        PartialMeter.from_json("[]")


# A session of operations against a meter whose counter only grows (no outside reset).
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("read"), st.integers(min_value=0, max_value=500)),
        st.tuples(st.sampled_from(["stop", "start", "save"]), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=300)
@given(OPS)
def test_published_values_follow_the_meter_only_while_running(ops: list[tuple[str, int]]) -> None:
    meter = PartialMeter()
    raw = 0.0
    published: float | None = None
    counted_while_running = 0.0  # what the published value must equal
    for op, step in ops:
        if op == "read":
            before = raw
            raw = round(raw + step / 100, 2)
            if meter.running and published is not None:
                counted_while_running += raw - before
            value = meter.apply({IMP: raw})[IMP]
            assert isinstance(value, float)
            assert 0.0 <= value <= raw + 1e-9
            if published is None:
                counted_while_running = value  # the first reading is published as it is
            elif not meter.running:
                assert value == published  # frozen
            else:
                assert value >= published  # continues from the frozen value
            assert value == pytest.approx(counted_while_running, abs=1e-6)
            published = value
        elif op == "stop":
            meter.stop()
        elif op == "start":
            meter.start()
        else:
            meter = PartialMeter.from_json(meter.to_json())
        assert not meter.meter_reset_detected


def test_a_reset_hidden_by_a_stale_persisted_reading_is_caught_by_the_offset() -> None:
    meter = PartialMeter()
    meter.apply({IMP: 10.0})
    meter.stop()
    meter.apply({IMP: 50.0})
    meter.start()  # offset 40
    saved = meter.to_json()  # persisted with last reading 50
    meter.apply({IMP: 60.0})
    # Bridge down; meter reset and counted 45 kWh: above nothing the bridge saw, below 50.
    restored = PartialMeter.from_json(saved)
    assert restored.apply({IMP: 45.0}) == {}
    assert restored.apply({IMP: 45.5}) == {IMP: 45.5}
    # Without a last reading at all, the offset alone shows the reset.
    data = {"version": 1, "running": True, "offsets": {IMP: 40.0}}
    fresh = PartialMeter.from_dict(data)
    assert fresh.apply({IMP: 30.0}) == {}
    assert fresh.apply({IMP: 30.0}) == {IMP: 30.0}
    assert fresh.meter_reset_detected
