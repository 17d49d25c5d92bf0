"""State messages: cadence, content, per-value topics, independence of meters."""

from __future__ import annotations

import asyncio

from countis.catalogue import VALUE_KEYS
from countis.presentation import SENSOR_BY_KEY

BASE = "countis"


def complete(message) -> bool:
    return set(VALUE_KEYS) <= set(message.json())


async def test_state_has_every_value_key_at_the_configured_cadence(
    bridge_harness, make_meter, emulator, mqtt_recorder
):
    meter = make_meter(speed=10)
    (port,) = await emulator(meter)
    # Energy every second realtime slot: every poll lies on the 0.2 s grid.
    path = bridge_harness.config([bridge_harness.meter("Main", port, energy_interval=0.4)])
    topic = f"{BASE}/main/state"
    async with bridge_harness.run(path) as bridge:
        first = await mqtt_recorder.wait_for(topic, complete)
        assert mqtt_recorder.last(topic).retain is False  # live, retained only for newcomers
        mark = mqtt_recorder.mark()
        await asyncio.sleep(2.0)
        window = mqtt_recorder.since(mark, topic)
        stats = bridge.pollers[0].stats
        retained = await mqtt_recorder.retained(topic)

    state = first.json()
    assert set(state) == {*VALUE_KEYS, "timestamp", "partial_running"}
    assert state["partial_running"] is True
    for key in VALUE_KEYS:
        spec = SENSOR_BY_KEY[key]
        if spec.device_class != "enum":
            assert isinstance(state[key], int | float), key  # numbers as numbers
    truth = meter.values()
    assert abs(state["voltage_l1"] - truth["voltage_l1"]) < 1.0
    assert state["power"] > 0
    assert state["tariff"] == 1
    # 0.2 s realtime cadence: about 10 states in 2 s, each poll on the schedule's grid
    # (deadline = first + n x interval: late polls do not shift the ones after them).
    assert 6 <= len(window) <= 12, len(window)
    stamps = [m.json()["timestamp"] for m in window]
    offsets = [((t - stamps[0]) / 0.2) % 1.0 for t in stamps]
    assert all(min(f, 1.0 - f) < 0.3 for f in offsets), offsets
    assert all(m.json().keys() >= set(VALUE_KEYS) for m in window)
    assert stats.polls_done >= 8
    assert stats.failures == 0
    assert retained[topic]  # the broker keeps the latest state


async def test_per_value_topics(bridge_harness, make_meter, emulator, mqtt_recorder):
    meter = make_meter(speed=10)
    (port,) = await emulator(meter)
    path = bridge_harness.config(
        [bridge_harness.meter("Main", port)], mqtt={"per_value_topics": True}
    )
    async with bridge_harness.run(path):
        voltage = await mqtt_recorder.wait_for(f"{BASE}/main/voltage_l1")
        energy = await mqtt_recorder.wait_for(f"{BASE}/main/energy_import")
        sequence = await mqtt_recorder.wait_for(f"{BASE}/main/phase_sequence")
    assert abs(float(voltage.text) - 230) < 10
    assert float(energy.text) >= 0
    assert sequence.text == "123"
    assert voltage.retain is False


async def test_a_slow_meter_does_not_delay_another(
    bridge_harness, make_meter, emulator, mqtt_recorder
):
    slow, fast = make_meter(), make_meter()
    ports = await emulator(slow, fast)
    slow.faults.delay(0.15)  # a realtime poll (2 requests) takes longer than its interval
    path = bridge_harness.config(
        [
            bridge_harness.meter("Slow", ports[0], timeout=2.0),
            bridge_harness.meter("Fast", ports[1]),
        ]
    )
    async with bridge_harness.run(path) as bridge:
        await mqtt_recorder.wait_for(f"{BASE}/fast/state")
        await mqtt_recorder.wait_for(f"{BASE}/slow/state", within=8)
        mark = mqtt_recorder.mark()
        await asyncio.sleep(2.0)
        fast_count = len(mqtt_recorder.since(mark, f"{BASE}/fast/state"))
        slow_stats = bridge.pollers[0].stats
    assert fast_count >= 7, fast_count
    assert slow_stats.polls_missed > 0  # slots skipped, not made up in a burst
    assert slow_stats.failures == 0


async def test_the_first_state_carries_every_key_with_the_default_intervals(
    bridge_harness, make_meter, emulator, mqtt_recorder, make_recorder
):
    """A consumer that starts with the bridge sees every counter at once (no 10 s wait).

    Default intervals (2 s realtime, 10 s energy): the counter guard holds a counter's
    first value until a second reading confirms it, and the bridge confirms at once.
    """
    meter = make_meter()
    (port,) = await emulator(meter)
    entry = bridge_harness.meter("Main", port, realtime_interval=2.0, energy_interval=10.0)
    path = bridge_harness.config([entry])
    topic = f"{BASE}/main/state"
    async with bridge_harness.run(path):
        online = await mqtt_recorder.wait_for(
            f"{BASE}/main/availability", lambda m: m.payload == b"online", within=10
        )
        first = await mqtt_recorder.wait_for(topic, lambda m: True, within=5)
        assert first.at - online.at < 2.0  # the same poll: within 2 s of the meter answering
        assert set(VALUE_KEYS) <= set(first.json())
        # ... and what a newcomer gets retained is the same full state.
        newcomer = make_recorder("127.0.0.1", bridge_harness.broker.port, (topic,))
        retained = await newcomer.wait_for(topic, lambda m: m.retain, within=5)
        assert set(VALUE_KEYS) <= set(retained.json())
