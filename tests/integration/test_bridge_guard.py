"""The counter guard end to end: bad counter readings never reach the state topic."""

from __future__ import annotations

import asyncio

import pytest

from bridge.entities import LIFETIME_COUNTER_KEYS

BASE = "countis"
STATE = f"{BASE}/main/state"


def counters(message) -> dict[str, float]:
    state = message.json()
    return {k: state[k] for k in LIFETIME_COUNTER_KEYS if k in state}


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
        series = [s[key] for s in states if key in s]
        assert series == sorted(series), f"{key} went down: {series}"
    during = [counters(m).get("energy_import") for m in mqtt_recorder.since(mark, STATE)]
    assert all(value is None or value > 0.02 for value in during), during
