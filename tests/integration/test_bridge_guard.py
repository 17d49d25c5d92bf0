"""The counter guard end to end: bad counter readings never reach the state topic."""

from __future__ import annotations

import asyncio

import pytest
from countis.catalogue import LIFETIME_COUNTER_KEYS, PARTIAL_COUNTER_KEYS
from countis.guard import BALANCE_KEYS

BASE = "countis"
STATE = f"{BASE}/main/state"
PART = "partial_energy_import"


def counters(message, keys=LIFETIME_COUNTER_KEYS) -> dict[str, float]:
    state = message.json()
    return {k: state[k] for k in keys if k in state}


def series(states: list[dict[str, float]], key: str) -> list[float]:
    return [s[key] for s in states if key in s]


@pytest.mark.parametrize("fault", ["zero_counters", "lower_counters"])
async def test_zero_or_lower_lifetime_counters_never_reach_the_state(
    fault, bridge_harness, make_meter, emulator, mqtt_recorder
):
    meter = make_meter(speed=10)
    (port,) = await emulator(meter)
    path = bridge_harness.config([bridge_harness.meter("Main", port)])
    async with bridge_harness.run(path) as bridge:
        await mqtt_recorder.wait_for(STATE, lambda m: m.json().get("energy_import", 0) > 0.02)
        mark = mqtt_recorder.mark()
        getattr(meter.faults, fault)(True)
        await asyncio.sleep(1.5)  # three energy polls with the fault
        getattr(meter.faults, fault)(False)
        await asyncio.sleep(0.6)
        rejections = bridge.pollers[0].stats.guard_rejections
        assert bridge.pollers[0].online is True  # bad values are not a failure of the meter

    states = [counters(m) for m in mqtt_recorder.snapshot(STATE)]
    states = [s for s in states if s]
    assert len(mqtt_recorder.since(mark, STATE)) >= 5  # states went on during the fault
    assert rejections > 0
    for key in LIFETIME_COUNTER_KEYS:
        values = series(states, key)
        assert values == sorted(values), f"{key} went down: {values}"
    during = [counters(m).get("energy_import") for m in mqtt_recorder.since(mark, STATE)]
    assert all(value is None or value > 0.02 for value in during), during


@pytest.mark.parametrize("fault", ["zero_counters", "lower_counters"])
async def test_partial_and_balance_values_never_move_with_a_corrupt_reading(
    fault, bridge_harness, make_meter, emulator, mqtt_recorder
):
    """Zeros would pass for a partial reset on the front panel, lower totals move balances."""
    meter = make_meter(speed=10)  # the constant load imports: everything only grows
    (port,) = await emulator(meter)
    path = bridge_harness.config([bridge_harness.meter("Main", port)])
    async with bridge_harness.run(path) as bridge:
        await mqtt_recorder.wait_for(STATE, lambda m: m.json().get(PART, 0) > 0.02, within=8)
        mark = mqtt_recorder.mark()
        getattr(meter.faults, fault)(True)
        await asyncio.sleep(2.0)  # four energy polls with the fault: a reset is confirmed by two
        getattr(meter.faults, fault)(False)
        await asyncio.sleep(1.0)
        corrupt = bridge.pollers[0].stats.corrupt_readings
        partial_running = bridge.pollers[0].session.partial.running

    keys = PARTIAL_COUNTER_KEYS | BALANCE_KEYS
    states = [counters(m, keys) for m in mqtt_recorder.snapshot(STATE)]
    assert len(mqtt_recorder.since(mark, STATE)) >= 10  # states went on during the fault
    assert corrupt >= 3
    assert partial_running
    for key in keys:
        values = series(states, key)
        assert values, key
        assert values == sorted(values), f"{key} went down: {values}"
    before = [counters(m, keys) for m in mqtt_recorder.snapshot()[:mark] if m.topic == STATE]
    before = series(before, PART)
    assert series(states, PART)[-1] > before[-1] > 0.02  # it went on counting afterwards
