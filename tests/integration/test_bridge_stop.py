"""Stopping a busy bridge: a fleet under load must exit within seconds, cleanly.

At 1000 meters the bridge used to hang after SIGTERM: a poll whose answer arrived in the
same loop iteration as the stop swallowed the cancellation (Python 3.11's
``asyncio.wait_for``) and that meter went on polling for ever. Many meters on short
intervals overload the bridge on purpose here, so that answers and the stop meet.
"""

from __future__ import annotations

import asyncio
import signal
import time

METERS = 200
STOP_WITHIN = 8.0  # s: the MQTT goodbye is bounded at 2 x 2 s, the rest is immediate
BRIDGE = "countis/bridge/availability"


async def test_an_overloaded_fleet_stops_within_seconds_and_says_offline(
    bridge_harness, make_meter, emulator, make_recorder
):
    meters = [make_meter() for _ in range(METERS)]
    ports = await emulator(*meters)
    path = bridge_harness.config(
        [
            bridge_harness.meter(f"m{i}", port, realtime_interval=0.1, energy_interval=0.2)
            for i, port in enumerate(ports)
        ]
    )
    broker = bridge_harness.broker
    # Only the bridge's availability and one meter: a recorder of every state would be
    # busier than the bridge.
    recorder = make_recorder(broker.host, broker.port, (BRIDGE, "countis/m0/state"))
    proc = bridge_harness.spawn(path)
    await recorder.wait_for(BRIDGE, lambda m: m.payload == b"online", within=15)
    await recorder.wait_for("countis/m0/state", within=15)
    await asyncio.sleep(1.5)  # every meter polling
    mark = recorder.mark()

    proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    for _ in range(int(STOP_WITHIN / 0.05)):
        if proc.poll() is not None:
            break
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - started

    assert proc.returncode == 0, f"still running {elapsed:.1f} s after SIGTERM"
    log = bridge_harness.log_text()
    assert f"stopped; totals: {{'meters': {METERS}, 'polls_done': " in log, log[-2000:]
    await recorder.wait_for(BRIDGE, lambda m: m.payload == b"offline", after=mark, within=2)
    assert await recorder.retained(BRIDGE) == {BRIDGE: b"offline"}
