"""Availability: meter faults (debounced), the bridge's last will, broker restarts."""

from __future__ import annotations

import asyncio
import signal
import time

BASE = "countis"
STATE = f"{BASE}/main/state"
AVAILABILITY = f"{BASE}/main/availability"
BRIDGE = f"{BASE}/bridge/availability"


def payload_is(text: str):
    return lambda message: message.payload == text.encode()


def has_energy(message) -> bool:
    return "energy_import" in message.json()


async def test_meter_goes_offline_after_the_debounce_and_comes_back(
    bridge_harness, make_meter, emulator, mqtt_recorder
):
    meter = make_meter(speed=10)
    (port,) = await emulator(meter)
    path = bridge_harness.config([bridge_harness.meter("Main", port)], offline_after=3)
    async with bridge_harness.run(path) as bridge:
        await mqtt_recorder.wait_for(AVAILABILITY, payload_is("online"))
        before = (await mqtt_recorder.wait_for(STATE, has_energy)).json()
        mark = mqtt_recorder.mark()
        fault_at = time.time()
        meter.faults.no_answer(True)
        offline = await mqtt_recorder.wait_for(AVAILABILITY, payload_is("offline"), after=mark)
        # Debounced: three failed polls (0.5 s timeout each), not the first one.
        assert offline.at - fault_at > 1.2
        assert bridge.pollers[0].stats.failures >= 3
        await asyncio.sleep(0.5)
        during = mqtt_recorder.since(mark, STATE)
        # Nothing published from a poll that started after the fault: no stale or zero state.
        assert all(m.json()["timestamp"] < fault_at for m in during), during
        assert len(during) <= 1

        mark = mqtt_recorder.mark()
        cleared_at = time.time()
        meter.faults.clear()
        await mqtt_recorder.wait_for(AVAILABILITY, payload_is("online"), after=mark)
        after = await mqtt_recorder.wait_for(
            STATE, lambda m: m.json()["timestamp"] >= cleared_at and has_energy(m), after=mark
        )
    assert after.json()["energy_import"] >= before["energy_import"]


async def test_exception_answers_count_as_failures(
    bridge_harness, make_meter, emulator, mqtt_recorder
):
    meter = make_meter()
    (port,) = await emulator(meter)
    path = bridge_harness.config([bridge_harness.meter("Main", port)], offline_after=2)
    async with bridge_harness.run(path):
        await mqtt_recorder.wait_for(AVAILABILITY, payload_is("online"))
        mark = mqtt_recorder.mark()
        meter.faults.exception(4)
        await mqtt_recorder.wait_for(AVAILABILITY, payload_is("offline"), after=mark)
        meter.faults.clear()
        await mqtt_recorder.wait_for(AVAILABILITY, payload_is("online"), after=mark)


async def test_unreachable_meter_is_published_offline(bridge_harness, mqtt_recorder):
    port = bridge_harness.free_port()  # nothing listens there
    path = bridge_harness.config([bridge_harness.meter("Main", port)], offline_after=2)
    async with bridge_harness.run(path):
        await mqtt_recorder.wait_for(BRIDGE, payload_is("online"))
        await mqtt_recorder.wait_for(AVAILABILITY, payload_is("offline"))
    assert mqtt_recorder.snapshot(STATE) == []


async def test_killed_bridge_gets_its_last_will(
    bridge_harness, make_meter, emulator, mqtt_recorder
):
    meter = make_meter()
    (port,) = await emulator(meter)
    path = bridge_harness.config([bridge_harness.meter("Main", port)])
    proc = bridge_harness.spawn(path)
    try:
        await mqtt_recorder.wait_for(BRIDGE, payload_is("online"), within=10)
        await mqtt_recorder.wait_for(STATE, within=10)
        mark = mqtt_recorder.mark()
        proc.send_signal(signal.SIGKILL)
        await mqtt_recorder.wait_for(BRIDGE, payload_is("offline"), after=mark)
    finally:
        proc.wait(timeout=5)
    retained = await mqtt_recorder.retained(BRIDGE)
    assert retained == {BRIDGE: b"offline"}


async def test_stopped_bridge_says_offline_and_exits_0(
    bridge_harness, make_meter, emulator, mqtt_recorder
):
    meter = make_meter()
    (port,) = await emulator(meter)
    path = bridge_harness.config([bridge_harness.meter("Main", port)])
    proc = bridge_harness.spawn(path)
    await mqtt_recorder.wait_for(STATE, within=10)
    mark = mqtt_recorder.mark()
    proc.send_signal(signal.SIGTERM)
    await mqtt_recorder.wait_for(BRIDGE, payload_is("offline"), after=mark)
    for _ in range(100):
        if proc.poll() is not None:
            break
        await asyncio.sleep(0.05)
    assert proc.returncode == 0, bridge_harness.log_text()
    assert "stopped; totals: {'meters': 1, 'polls_done': " in bridge_harness.log_text()


async def test_broker_restart_reconnects_and_republishes(
    bridge_harness, mosquitto, make_meter, emulator, mqtt_recorder
):
    meter = make_meter()
    (port,) = await emulator(meter)
    serial = str(meter.serial)
    discovery = f"homeassistant/device/countis_{serial}/config"
    # Slow cadence: after the restart, state and availability come from the republication.
    path = bridge_harness.config(
        [bridge_harness.meter("Main", port, realtime_interval=30, energy_interval=60)]
    )
    async with bridge_harness.run(path):
        await mqtt_recorder.wait_for(STATE)
        await mqtt_recorder.wait_for(discovery)
        mosquitto.restart()  # persistence is off: every retained message is gone
        mark = mqtt_recorder.mark()
        await mqtt_recorder.wait_for(BRIDGE, payload_is("online"), after=mark, within=10)
        await mqtt_recorder.wait_for(discovery, after=mark)
        await mqtt_recorder.wait_for(STATE, after=mark)
        await mqtt_recorder.wait_for(AVAILABILITY, payload_is("online"), after=mark)
        retained = await mqtt_recorder.retained()
        # Commands work on the new session (subscriptions were renewed).
        mark = mqtt_recorder.mark()
        mqtt_recorder.publish(f"{BASE}/main/set/tariff", "2")
        response = await mqtt_recorder.wait_for(f"{BASE}/main/response", after=mark)
    assert {BRIDGE, discovery, STATE, AVAILABILITY} <= set(retained)
    assert response.json()["status"] == "ok"
    assert meter.tariff == 2
