"""The counter guard: lifetime, partial and balance counters."""

from __future__ import annotations

import math

import pytest
from countis.catalogue import LIFETIME_COUNTER_KEYS, PARTIAL_COUNTER_KEYS, VALUE_BY_KEY
from countis.guard import (
    BALANCE_KEYS,
    GUARDED_KEYS,
    MAX_POWER_W,
    MAY_DROP_KEYS,
    CounterGuard,
    GuardLimits,
    GuardResult,
    Reason,
    resolution,
)
from countis.models import ValueType
from countis.partial import PartialMeter
from hypothesis import given, settings
from hypothesis import strategies as st

IMP = "energy_import"  # lifetime, whole kWh + 0.1 Wh residual
EXP_T1 = "energy_export_t1"  # lifetime, whole-kWh register
PART = "partial_energy_import"
BAL = "energy_balance"
TIME = "tariff_time_t1"
# Allowance for 10 s: 69.12 kW x 1.5 x (10 + 5) s = 0.432 kWh, plus one 10 Wh step.
TEN_S = 69.12 * 1.5 * 15 / 3600 + 0.01


def immediate() -> CounterGuard:
    return CounterGuard(GuardLimits(confirm_first=False))


def check(guard: CounterGuard, t: float, **values: ValueType) -> GuardResult:
    return guard.check(values, t)


def test_key_sets() -> None:
    assert IMP in LIFETIME_COUNTER_KEYS
    assert EXP_T1 in LIFETIME_COUNTER_KEYS
    assert TIME in LIFETIME_COUNTER_KEYS
    assert PART in PARTIAL_COUNTER_KEYS
    assert {BAL, "reactive_energy_balance"} == BALANCE_KEYS
    assert GUARDED_KEYS == LIFETIME_COUNTER_KEYS | PARTIAL_COUNTER_KEYS | BALANCE_KEYS
    assert not LIFETIME_COUNTER_KEYS & PARTIAL_COUNTER_KEYS


def test_limits() -> None:
    assert MAX_POWER_W == 69_120
    assert resolution(VALUE_BY_KEY[IMP]) == 0.01
    assert resolution(VALUE_BY_KEY[EXP_T1]) == 1.0
    assert resolution(VALUE_BY_KEY[PART]) == 0.01
    assert resolution(VALUE_BY_KEY[TIME]) == 0.01
    guard = CounterGuard()
    assert guard.allowance(IMP, 10) == pytest.approx(TEN_S)
    assert guard.allowance(EXP_T1, 10) == pytest.approx(TEN_S - 0.01 + 1.0)
    assert guard.allowance(TIME, 3600) == pytest.approx(1.5 * 3605 / 3600 + 0.01)
    assert guard.allowance(IMP, -50) == guard.allowance(IMP, 0)  # clock stepped back


def test_other_keys_pass_unchecked() -> None:
    guard = CounterGuard()
    values = {"power": -1500.0, "voltage": 0.0, "phase_sequence": "132", "tariff": 2}
    result = guard.check(values, 0)
    assert result.values == values
    assert not result.rejected
    assert not result.held


def test_first_value_is_held_until_confirmed() -> None:
    guard = CounterGuard()
    first = check(guard, 0, energy_import=100.0, power=5)
    assert dict(first.values) == {"power": 5}
    assert first.held == {IMP}
    assert not first.rejected
    assert guard.last(IMP) is None
    assert guard.rejected_total == 0  # held is not rejected
    second = check(guard, 10, energy_import=100.1)
    assert dict(second.values) == {IMP: 100.1}
    assert guard.last(IMP) == 100.1


def test_a_garbage_first_value_never_becomes_the_baseline() -> None:
    guard = CounterGuard()
    assert check(guard, 0, energy_import=4_294_967.0).held == {IMP}
    assert check(guard, 10, energy_import=100.0).held == {IMP}  # disagrees: new candidate
    assert dict(check(guard, 20, energy_import=100.1).values) == {IMP: 100.1}


def test_first_zero_is_a_real_value_for_unused_counters() -> None:
    guard = CounterGuard()
    check(guard, 0, energy_export=0.0)
    assert dict(check(guard, 10, energy_export=0.0).values) == {"energy_export": 0.0}


def test_without_confirmation_the_first_value_is_the_baseline() -> None:
    guard = immediate()
    assert dict(check(guard, 0, energy_import=100).values) == {IMP: 100}


def test_lifetime_counters_never_go_down() -> None:
    guard = immediate()
    check(guard, 0, energy_import=100.0)
    assert check(guard, 10, energy_import=99.99).rejected == {IMP: Reason.DECREASED}
    assert check(guard, 20, energy_import=0.0).rejected == {IMP: Reason.DECREASED}
    assert check(guard, 30, energy_import=0).rejected == {IMP: Reason.DECREASED}
    assert dict(check(guard, 40, energy_import=100.0).values) == {IMP: 100.0}  # equal is fine
    assert guard.rejections == {IMP: 3}
    assert guard.rejected_total == 3
    assert guard.last(IMP) == 100.0


def test_lifetime_counters_never_jump_faster_than_max_power() -> None:
    guard = immediate()
    check(guard, 0, energy_import=100.0)
    assert check(guard, 10, energy_import=100.0 + TEN_S + 0.001).rejected == {IMP: Reason.TOO_FAST}
    # The rejected value did not move the baseline; a plausible one is accepted.
    accepted = check(guard, 10, energy_import=100.0 + TEN_S - 0.001)
    assert IMP in accepted.values
    assert guard.rejections == {IMP: 1}


def test_one_resolution_step_is_always_allowed() -> None:
    guard = immediate()
    check(guard, 0, energy_export_t1=7.0)
    assert EXP_T1 in check(guard, 1, energy_export_t1=8.0).values  # whole-kWh register tick
    assert check(guard, 2, energy_export_t1=10.0).rejected == {EXP_T1: Reason.TOO_FAST}


def test_a_long_outage_allows_a_large_increase() -> None:
    guard = immediate()
    check(guard, 0, energy_import=100.0)
    day = 24 * 3600
    assert IMP in check(guard, day, energy_import=100.0 + 69.12 * 24).values
    assert check(guard, day + 10, energy_import=5000.0).rejected == {IMP: Reason.TOO_FAST}


def test_time_counters_move_at_most_an_hour_per_hour() -> None:
    guard = immediate()
    check(guard, 0, tariff_time_t1=10.0)
    assert TIME in check(guard, 3600, tariff_time_t1=11.0).values
    assert check(guard, 3610, tariff_time_t1=12.0).rejected == {TIME: Reason.TOO_FAST}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (math.nan, Reason.NOT_A_NUMBER),
        (math.inf, Reason.NOT_A_NUMBER),
        (-math.inf, Reason.NOT_A_NUMBER),
        ("12.5", Reason.NOT_A_NUMBER),
        (True, Reason.NOT_A_NUMBER),
        (-0.01, Reason.NEGATIVE),
    ],
)
def test_non_numbers_and_negative_counters(value: ValueType, reason: Reason) -> None:
    for key in (IMP, PART):
        guard = CounterGuard()
        assert guard.check({key: value}, 0).rejected == {key: reason}
        assert guard.rejections == {key: 1}


def test_balances_move_both_ways_but_not_too_fast() -> None:
    guard = immediate()
    check(guard, 0, energy_balance=-5.0)
    assert BAL in check(guard, 10, energy_balance=-5.3).values  # exporting
    assert BAL in check(guard, 20, energy_balance=-5.0).values  # importing
    assert check(guard, 30, energy_balance=-5.0 - TEN_S - 0.01).rejected == {BAL: Reason.TOO_FAST}
    assert check(guard, 40, energy_balance=200.0).rejected == {BAL: Reason.TOO_FAST}
    assert check(guard, 50, energy_balance=math.nan).rejected == {BAL: Reason.NOT_A_NUMBER}
    assert guard.rejections == {BAL: 3}


def test_partial_counters_drop_only_after_a_noted_reset() -> None:
    guard = immediate()
    check(guard, 0, partial_energy_import=50.0)
    assert check(guard, 10, partial_energy_import=0.0).rejected == {PART: Reason.DECREASED}
    guard.note_partial_reset()
    # Not to 0 (nor to what could have been counted since): still rejected.
    assert check(guard, 20, partial_energy_import=20.0).rejected == {PART: Reason.DECREASED}
    assert dict(check(guard, 30, partial_energy_import=0.02).values) == {PART: 0.02}
    # The reset was used up: the next drop is rejected again.
    assert check(guard, 40, partial_energy_import=0.0).rejected == {PART: Reason.DECREASED}
    assert guard.rejections == {PART: 3}


def test_a_reset_note_is_used_up_by_the_next_accepted_value() -> None:
    guard = immediate()
    check(guard, 0, partial_energy_import=0.0, partial_energy_export=3.0)
    guard.note_partial_reset()
    result = check(guard, 10, partial_energy_import=0.05, partial_energy_export=0.0)
    assert dict(result.values) == {PART: 0.05, "partial_energy_export": 0.0}
    assert check(guard, 20, partial_energy_import=0.0).rejected == {PART: Reason.DECREASED}


def test_partial_counters_do_not_jump_either() -> None:
    guard = immediate()
    check(guard, 0, partial_energy_import=1.0)
    assert check(guard, 10, partial_energy_import=50.0).rejected == {PART: Reason.TOO_FAST}


def test_consistent_rejected_readings_rebase_upwards() -> None:
    guard = CounterGuard(GuardLimits(confirm_first=False, rebase_after=3))
    check(guard, 0, energy_import=0.0)  # e.g. a zeroing fault at start-up
    assert check(guard, 10, energy_import=12_345.0).rejected == {IMP: Reason.TOO_FAST}
    assert check(guard, 20, energy_import=12_345.1).rejected == {IMP: Reason.TOO_FAST}
    assert dict(check(guard, 30, energy_import=12_345.2).values) == {IMP: 12_345.2}
    assert guard.rebases == {IMP: 1}
    assert guard.rejections == {IMP: 2}
    assert IMP in check(guard, 40, energy_import=12_345.3).values


def test_inconsistent_readings_do_not_rebase() -> None:
    guard = CounterGuard(GuardLimits(confirm_first=False, rebase_after=2))
    check(guard, 0, energy_import=10.0)
    check(guard, 10, energy_import=5_000.0)
    check(guard, 20, energy_import=9_000.0)  # disagrees with 5000: new candidate
    check(guard, 30, energy_import=9.0)  # lower than the baseline: breaks the streak
    assert check(guard, 40, energy_import=9_000.1).rejected == {IMP: Reason.TOO_FAST}
    assert IMP in check(guard, 50, energy_import=9_000.2).values
    assert guard.rebases == {IMP: 1}


def test_balances_rebase_both_ways() -> None:
    guard = CounterGuard(GuardLimits(confirm_first=False, rebase_after=2))
    check(guard, 0, energy_balance=100.0)
    check(guard, 10, energy_balance=-400.0)
    assert BAL in check(guard, 20, energy_balance=-400.1).values
    assert guard.rebases == {BAL: 1}


def test_result_is_frozen() -> None:
    result = CounterGuard().check({"power": 1}, 0)
    with pytest.raises(TypeError):
        result.values["power"] = 2  # type: ignore[index]
    with pytest.raises(TypeError):
        result.rejected[IMP] = Reason.NEGATIVE  # type: ignore[index]


def test_custom_max_power() -> None:
    guard = CounterGuard(GuardLimits(max_power_w=3_600, margin=1.0, slack_s=0.0))
    assert guard.allowance(IMP, 3600) == pytest.approx(3.6 + 0.01)


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=3600),
            st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers()),
        ),
        max_size=30,
    )
)
def test_accepted_lifetime_values_never_decrease(readings: list[tuple[float, float]]) -> None:
    guard = CounterGuard()
    t = 0.0
    accepted: list[float] = []
    for dt, value in readings:
        t += dt
        result = guard.check({IMP: value}, t)
        if IMP in result.values:
            accepted.append(float(value))
    assert accepted == sorted(accepted)
    assert all(math.isfinite(v) and v >= 0 for v in accepted)


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=60),  # seconds between polls
            st.floats(min_value=0, max_value=1),  # fraction of max power
            st.sampled_from(["ok", "ok", "ok", "zero", "lower"]),
            st.integers(min_value=1, max_value=10_000),  # how much lower, in 10 Wh steps
        ),
        min_size=1,
        max_size=40,
    )
)
def test_faults_never_pass_and_real_values_always_do(
    polls: list[tuple[int, float, str, int]],
) -> None:
    """A healthy start, then zeros and lower values mixed into a real counter's readings."""
    guard = CounterGuard()
    t, real = 0.0, 1_000.0
    published: list[float] = []
    for dt, load, fault, lower in [(10, 0.5, "ok", 0), (10, 0.5, "ok", 0), *polls]:
        t += dt
        real = round(real + MAX_POWER_W / 3.6e6 * load * dt, 2)  # 10 Wh resolution
        below = round(published[-1] - lower / 100, 2) if published else 0.0
        reading = {"zero": 0.0, "lower": max(0.0, below)}.get(fault, real)
        result = guard.check({IMP: reading}, t)
        if fault == "ok" and t > 10:
            assert result.values[IMP] == real  # every real reading after the first gets through
        elif IMP in result.values:
            assert fault == "ok"  # the first, confirmed by the second
        if IMP in result.values:
            published.append(float(result.values[IMP]))
    assert published == sorted(published)
    assert guard.rebases == {}
    assert guard.rejected_total == sum(fault != "ok" for _, _, fault, _ in polls)


def test_a_meter_answering_frozen_values_catches_up_by_rebase() -> None:
    guard = immediate()
    check(guard, 0, energy_import=100.0)
    for t in range(10, 610, 10):  # ten minutes of the same (stale) answer: plausible
        assert IMP in check(guard, t, energy_import=100.0).values
    # Unfrozen: 10 kW for ten minutes arrive at once, more than 10 s can explain ...
    assert check(guard, 610, energy_import=101.7).rejected == {IMP: Reason.TOO_FAST}
    assert check(guard, 620, energy_import=101.73).rejected == {IMP: Reason.TOO_FAST}
    # ... until three readings agree with each other.
    assert IMP in check(guard, 630, energy_import=101.76).values
    assert guard.rebases == {IMP: 1}


def test_screen_passes_a_sound_reading_unchanged() -> None:
    guard = immediate()
    assert not guard.screen({IMP: 5.0, PART: 1.0, BAL: -2.0}).suspect  # no baseline yet
    check(guard, 0, energy_import=5.0)
    reading = {IMP: 5.0, PART: 0.0, BAL: -9.0, "power": 3}
    screened = guard.screen(reading)
    assert dict(screened.values) == reading
    assert not screened.suspect
    assert screened.corrupt == screened.withheld == frozenset()
    assert guard.corrupt_readings == 0


@pytest.mark.parametrize("low", [0.0, 4.99], ids=["zero", "lower"])
def test_a_lifetime_counter_going_down_withholds_what_may_drop(low: float) -> None:
    guard = immediate()
    check(guard, 0, energy_import=5.0, energy_export_t1=2.0)
    reading = {IMP: low, EXP_T1: 2.0, PART: 0.0, BAL: -1.0, "power": 3, "tariff": 1}
    screened = guard.screen(reading)
    assert screened.suspect
    assert screened.corrupt == {IMP}
    assert screened.withheld == {PART, BAL}
    # The lifetime counters stay in: check() rejects the one that went down.
    assert dict(screened.values) == {IMP: low, EXP_T1: 2.0, "power": 3, "tariff": 1}
    assert guard.corrupt_readings == 1
    assert check(guard, 10, **screened.values).rejected == {IMP: Reason.DECREASED}
    with pytest.raises(TypeError):
        screened.values["power"] = 4  # type: ignore[index]


def test_may_drop_keys() -> None:
    assert MAY_DROP_KEYS == PARTIAL_COUNTER_KEYS | BALANCE_KEYS
    assert not MAY_DROP_KEYS & LIFETIME_COUNTER_KEYS


@pytest.mark.parametrize("fault", ["zero", "lower"])
def test_partial_and_balance_never_drop_through_a_counter_fault(fault: str) -> None:
    """Screening, partial meters, guard (as the poller and the coordinator chain them)."""
    guard, partial = CounterGuard(), PartialMeter()
    published: dict[str, list[float]] = {PART: [], BAL: []}
    for t in range(0, 200, 10):
        bad = 60 <= t < 140  # eight corrupt readings in a row
        real = {IMP: 1000.0 + t / 100, PART: 7.0 + t / 100, BAL: -1000.0 - t / 100}
        if bad and fault == "zero":
            reading = dict.fromkeys(real, 0.0)
        elif bad:  # lower lifetime counters, so a lower balance, partial unchanged
            reading = {IMP: real[IMP] - 100.0, PART: real[PART], BAL: real[BAL] + 100.0}
        else:
            reading = real
        values = partial.apply(guard.screen(reading).values)
        if partial.meter_reset_detected:
            guard.note_partial_reset()
        result = guard.check(values, t)
        for key, series in published.items():
            if key in result.values:
                series.append(float(result.values[key]))
                assert not bad, f"{key} published from a corrupt reading"
    assert published[PART] == sorted(published[PART])
    assert published[PART][-1] == pytest.approx(7.0 + 1.9)
    assert published[BAL] == sorted(published[BAL], reverse=True)  # exporting steadily
    assert guard.corrupt_readings == 8
    assert guard.rebases == {}
