"""Emulator physics and load profiles (pure)."""

from __future__ import annotations

import cmath
import math

import pytest
from countis.errors import ConfigError

from countis_bridge.emulator.physics import PHASE_ANGLES, compute, power_factor
from countis_bridge.emulator.profiles import (
    MAX_CURRENT,
    PROFILE_NAMES,
    ConstantProfile,
    DailyProfile,
    make_profile,
)

DAY = 86400.0


@pytest.mark.parametrize(
    ("angle", "p_sign", "q_sign", "pf_sign"),
    [
        (30.0, 1, 1, 1),  # Q1: import, inductive -> lagging, PF +
        (-30.0, 1, -1, -1),  # Q4: import, capacitive -> leading, PF -
        (150.0, -1, 1, -1),  # Q2: export, Q > 0 -> leading, PF -
        (210.0, -1, -1, 1),  # Q3: export, Q < 0 -> lagging, PF +
    ],
)
def test_quadrants_and_power_factor_sign(angle, p_sign, q_sign, pf_sign):
    snap = compute((230.0, 231.0, 229.0), (10.0, 12.0, 8.0), angle, 50.0)
    for n in range(3):
        assert math.copysign(1, snap.p[n]) == p_sign
        assert math.copysign(1, snap.q[n]) == q_sign
        assert math.copysign(1, snap.pf[n]) == pf_sign
        assert snap.s[n] ** 2 == pytest.approx(snap.p[n] ** 2 + snap.q[n] ** 2)
        assert abs(snap.p[n]) == pytest.approx(snap.v[n] * snap.i[n] * abs(snap.pf[n]))
    assert snap.s_total**2 == pytest.approx(snap.p_total**2 + snap.q_total**2)
    assert math.copysign(1, snap.pf_total) == pf_sign


def test_line_voltages_and_neutral_current_match_phasors():
    volts, amps, angle = (231.0, 228.5, 233.2), (12.0, 7.5, 20.0), 25.0
    snap = compute(volts, amps, angle, 50.0)
    v = [cmath.rect(m, a) for m, a in zip(volts, PHASE_ANGLES, strict=True)]
    theta = math.radians(angle)
    i = [cmath.rect(m, a - theta) for m, a in zip(amps, PHASE_ANGLES, strict=True)]
    assert snap.u == pytest.approx((abs(v[0] - v[1]), abs(v[1] - v[2]), abs(v[2] - v[0])))
    assert snap.i_n == pytest.approx(abs(i[0] + i[1] + i[2]))
    assert snap.v_avg == pytest.approx(sum(volts) / 3)
    assert snap.u_avg == pytest.approx(sum(snap.u) / 3)
    assert snap.i_avg == pytest.approx(sum(amps) / 3)


def test_balanced_load_has_no_neutral_current_and_400_v_lines():
    snap = compute((230.0,) * 3, (10.0,) * 3, 20.0, 50.0)
    assert snap.i_n == pytest.approx(0.0, abs=1e-6)
    assert snap.u == pytest.approx((230 * math.sqrt(3),) * 3)


def test_power_factor_without_load_is_one():
    assert power_factor(0.0, 0.0, 0.0) == 1.0


def test_constant_profile_gives_the_documented_load():
    sample = ConstantProfile().sample(123.0)
    snap = compute(sample.voltages, sample.currents, sample.angle, sample.frequency)
    assert snap.p == pytest.approx((2070.0,) * 3)
    assert snap.pf_total == pytest.approx(0.9)
    assert snap.frequency == 50.0


def test_constant_profile_export_and_capacitive():
    sample = ConstantProfile(export=True, inductive=False, power_factor=0.8).sample(0.0)
    snap = compute(sample.voltages, sample.currents, sample.angle, sample.frequency)
    assert snap.p_total < 0 < snap.q_total
    assert snap.pf_total == pytest.approx(-0.8)


def test_constant_profile_rejects_bad_power_factor():
    with pytest.raises(ConfigError):
        ConstantProfile(power_factor=1.5)


def _day(name, seed=3, step=300.0, start=0.0):
    profile = make_profile(name, seed=seed)
    return [profile.sample(start + k * step) for k in range(int(DAY / step))]


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_profiles_stay_within_the_meter_ratings(name):
    for sample in _day(name):
        assert all(0.0 <= i <= MAX_CURRENT for i in sample.currents)
        assert all(220.0 < v < 240.0 for v in sample.voltages)
        assert 49.9 < sample.frequency < 50.1


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_profiles_are_reproducible_with_a_seed(name):
    assert _day(name, seed=7) == _day(name, seed=7)


@pytest.mark.parametrize("name", ["daily", "random_walk", "pv"])
def test_seeds_make_different_meters(name):
    assert _day(name, seed=1) != _day(name, seed=2)


def test_daily_profile_has_inductive_and_capacitive_periods():
    angles = [s.angle for s in _day("daily")]
    assert min(angles) < 0 < max(angles)
    currents = [s.currents[0] for s in _day("daily")]
    assert max(currents) > 3 * min(currents)  # peaks and a night base load


def test_pv_profile_exports_at_midday_and_imports_at_night():
    profile = make_profile("pv", seed=3)

    def power(hour):
        s = profile.sample(hour * 3600.0)
        return compute(s.voltages, s.currents, s.angle, s.frequency).p_total

    assert power(13.0) < 0  # export: energy flows both ways
    assert power(2.0) > 0
    assert power(20.5) > 0


def test_random_walk_moves_and_follows_local_time_offset():
    samples = _day("random_walk", step=60.0)
    currents = {round(s.currents[0], 3) for s in samples}
    assert len(currents) > 100
    angles = [s.angle for s in samples]
    assert max(angles) - min(angles) > 5
    # A long jump restarts the walk instead of walking a year knot by knot.
    far = make_profile("random_walk", seed=3)
    far.sample(0.0)
    assert 0 < far.sample(365 * DAY).currents[0] <= MAX_CURRENT


def test_daily_profile_follows_the_utc_offset():
    utc = DailyProfile(3, utc_offset=0.0)
    cest = DailyProfile(3, utc_offset=7200.0)
    assert cest.angle(0.0) == utc.angle(7200.0)
    assert cest.angle(0.0) != utc.angle(0.0)


def test_unknown_profile_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown profile"):
        make_profile("sine", seed=1)
