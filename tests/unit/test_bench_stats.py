"""The fleet benchmark's pure figures and its hand-written MQTT framing."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import fleetstats as fs
import rawmqtt


def test_no_missed_polls_on_a_jittery_schedule():
    stamps = [10.0 + k + (0.02 if k % 2 else -0.02) for k in range(-2, 8)]
    assert fs.missed_polls(stamps, 10.0, 14.0, 1.0) == 0


def test_a_gap_counts_the_deadlines_it_skipped():
    stamps = [9.5, 10.5, 13.5, 14.5]  # polls due at 11.5 and 12.5 never started
    assert fs.missed_polls(stamps, 10.0, 15.0, 1.0) == 2


def test_a_poll_more_than_half_an_interval_late_is_missed():
    assert fs.missed_polls([9.9, 11.6, 12.6], 10.0, 13.0, 1.0) == 1


def test_silence_at_the_end_of_the_window_counts():
    assert fs.missed_polls([9.9, 10.9], 10.0, 14.0, 1.0) == 2


def test_deadlines_before_the_window_do_not_count():
    # The bridge stalled during warm-up, then polled on time inside the window.
    assert fs.missed_polls([1.0, 10.2, 11.2, 12.2], 10.0, 13.0, 1.0) == 0


def test_a_meter_that_never_published_misses_every_poll():
    assert fs.missed_polls([], 10.0, 14.0, 1.0) == 4


def test_lateness_is_measured_from_the_on_time_grid():
    stamps = [100.3 + k for k in range(20)]
    stamps[7] += 0.25  # one poll started 250 ms late
    late = fs.start_lateness(stamps, 1.0)
    assert late[7] == pytest.approx(0.25)
    assert max(late[:7] + late[8:]) == pytest.approx(0.0, abs=1e-9)


def test_lateness_survives_a_grid_near_the_interval_edge():
    stamps = [100.999 + k + (0.002 if k % 3 else 0.0) for k in range(30)]
    late = fs.start_lateness(stamps, 1.0)
    assert max(late) == pytest.approx(0.002, abs=1e-6)
    assert fs.start_lateness([], 1.0) == []


def test_percentile_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert fs.percentile(values, 50) == 50.0
    assert fs.percentile(values, 99) == 99.0
    assert fs.percentile(values, 100) == 100.0
    assert math.isnan(fs.percentile([], 50))


def test_poll_timestamp_is_read_without_parsing_the_state():
    assert fs.poll_timestamp(b'{"voltage_l1":230.1,"timestamp":1700000000.25}') == 1700000000.25
    assert fs.poll_timestamp(b'{"timestamp": 17e8, "x": 1}') == 17e8
    assert fs.poll_timestamp(b'{"voltage_l1":230.1}') is None


def test_tick_plans_stay_inside_the_pdu_limit():
    for energy in (False, True):
        plan = fs.tick_plan(energy=energy)
        assert plan
        assert all(0 < r.count <= 125 for r in plan)


def test_requests_per_poll_averages_energy_ticks_in():
    rt, both = len(fs.tick_plan(energy=False)), len(fs.tick_plan(energy=True))
    assert fs.requests_per_poll(1.0, 10.0) == pytest.approx(0.9 * rt + 0.1 * both)
    assert fs.requests_per_poll(1.0, 1.0) == both


def test_rounded_turns_nan_into_null():
    assert fs.rounded([("a", 1.23456), ("b", math.nan), ("c", 3)]) == {
        "a": 1.235,
        "b": None,
        "c": 3,
    }


@pytest.mark.parametrize("n", [0, 127, 128, 16383, 16384, 2_097_152])
def test_remaining_length_round_trips_through_the_packet_buffer(n):
    header = rawmqtt.publish_header(b"t/x", n, 1, True, 7)
    payload = bytes(n)
    buffer = rawmqtt.PacketBuffer()
    packet = header + payload
    # Fed in two pieces: the reader must wait for the whole packet.
    assert buffer.feed(packet[:3]) == []
    [(first, body)] = buffer.feed(packet[3:])
    topic, got, retain = rawmqtt.parse_publish(first, body)
    assert (topic, got, retain) == (b"t/x", payload, True)
    assert first & 0x06 == 0x02  # QoS 1


def test_packet_buffer_splits_back_to_back_packets():
    one = rawmqtt.publish_header(b"a", 2, 0, False, 0) + b"hi"
    two = bytes((rawmqtt.PUBACK, 2, 0, 9))
    packets = rawmqtt.PacketBuffer().feed(one + two)
    assert [first & 0xF0 for first, _ in packets] == [rawmqtt.PUBLISH, rawmqtt.PUBACK]
    assert rawmqtt.parse_publish(*packets[0]) == (b"a", b"hi", False)
