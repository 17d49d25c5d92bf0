"""The poll schedule over real TCP: after an outage a meter returns to its own grid.

A fleet's meters keep their phases and energy offsets only if failures never move a
meter's grid: a short network outage of the whole fleet would otherwise line up every
meter's energy reads again.
"""

from __future__ import annotations

import asyncio

BASE = "countis"
STATE = f"{BASE}/main/state"
INTERVAL = 0.2


def grid_offsets(stamps: list[float], origin: float) -> list[float]:
    """Distance of each stamp from the grid through ``origin``, in intervals (0..0.5)."""
    out = []
    for stamp in stamps:
        fraction = ((stamp - origin) / INTERVAL) % 1.0
        out.append(min(fraction, 1.0 - fraction))
    return out


async def test_polls_return_to_their_grid_after_an_outage(
    bridge_harness, make_meter, emulator, mqtt_recorder
):
    meter = make_meter(speed=10)
    (port,) = await emulator(meter)
    path = bridge_harness.config(
        [bridge_harness.meter("Main", port, energy_interval=0.4, timeout=0.3)]
    )
    async with bridge_harness.run(path) as bridge:
        await mqtt_recorder.wait_for(STATE)
        mark = mqtt_recorder.mark()
        await mqtt_recorder.wait_count(STATE, 4, after=mark)
        before = [m.json()["timestamp"] for m in mqtt_recorder.since(mark, STATE)]
        meter.faults.no_answer(True)
        await asyncio.sleep(1.3)  # timeouts, then retries off the grid with backoff
        failures = bridge.pollers[0].stats.failures
        meter.faults.no_answer(False)
        mark = mqtt_recorder.mark()
        after = await mqtt_recorder.wait_count(STATE, 6, after=mark, within=5)

    assert failures >= 2
    origin = before[0]
    assert max(grid_offsets(before, origin)) < 0.25
    # The first poll after the outage is the retry (off the grid); then back on it.
    stamps = [m.json()["timestamp"] for m in after][1:]
    assert max(grid_offsets(stamps, origin)) < 0.25, grid_offsets(stamps, origin)
