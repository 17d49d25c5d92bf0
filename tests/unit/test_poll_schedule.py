"""The poll schedule (pure): grid slots, backoff, retries, wake-ups."""

from __future__ import annotations

from countis.schedule import Backoff, Slot


def test_slot_advances_by_whole_intervals_without_drift():
    slot = Slot(1.0, 100.0)
    assert slot.advance(100.3) == 0  # served late, still on time for the next one
    assert slot.due == 101.0
    assert slot.advance(101.9) == 0
    assert slot.due == 102.0


def test_slot_skips_missed_deadlines_without_a_burst():
    slot = Slot(1.0, 100.0)
    assert slot.advance(103.5) == 3  # 101, 102, 103 passed during a long poll
    assert slot.due == 104.0
    assert slot.advance(105.0) == 0  # done exactly at the next deadline: still served
    assert slot.due == 105.0
    assert slot.advance(106.2) == 1
    assert slot.due == 107.0


def test_backoff_doubles_up_to_the_cap_and_resets():
    backoff = Backoff(0.5, 4.0)
    delays = [backoff.next() for _ in range(6)]
    nominal = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    for delay, expected in zip(delays, nominal, strict=True):
        assert expected * 0.9 <= delay <= expected * 1.1
    backoff.reset()
    assert backoff.next() <= 0.55
