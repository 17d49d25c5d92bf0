"""Retained messages of meters that left the configuration are cleared on restart."""

from __future__ import annotations

BASE = "countis"


def device_topic(meter) -> str:
    return f"homeassistant/device/countis_{meter.serial}/config"


async def test_removed_meter_is_cleared_after_a_restart(
    bridge_harness, make_meter, emulator, mqtt_recorder
):
    main, second = make_meter(), make_meter()
    ports = await emulator(main, second)
    both = [bridge_harness.meter("Main", ports[0]), bridge_harness.meter("Second", ports[1])]
    async with bridge_harness.run(bridge_harness.config(both)):
        await mqtt_recorder.wait_for(f"{BASE}/second/state")
        await mqtt_recorder.wait_for(f"{BASE}/main/state")
    retained = await mqtt_recorder.retained()
    assert {device_topic(second), f"{BASE}/second/state", f"{BASE}/second/availability"} <= set(
        retained
    )

    async with bridge_harness.run(bridge_harness.config(both[:1])):
        mark = mqtt_recorder.mark()
        await mqtt_recorder.wait_for(f"{BASE}/main/state", after=mark)
        for topic in (device_topic(second), f"{BASE}/second/state", f"{BASE}/second/availability"):
            cleared = await mqtt_recorder.wait_for(topic, after=mark)
            assert cleared.payload == b""
        retained = await mqtt_recorder.retained()
    gone = {t for t in retained if "second" in t or str(second.serial) in t}
    assert gone == set()
    assert {device_topic(main), f"{BASE}/main/state", f"{BASE}/main/availability"} <= set(retained)


async def test_renamed_meter_keeps_its_device_and_moves_its_topics(
    bridge_harness, make_meter, emulator, mqtt_recorder
):
    meter = make_meter()
    (port,) = await emulator(meter)
    async with bridge_harness.run(bridge_harness.config([bridge_harness.meter("Main", port)])):
        await mqtt_recorder.wait_for(f"{BASE}/main/state")
    async with bridge_harness.run(bridge_harness.config([bridge_harness.meter("Grid", port)])):
        mark = mqtt_recorder.mark()
        await mqtt_recorder.wait_for(f"{BASE}/grid/state", after=mark)
        await mqtt_recorder.wait_for(f"{BASE}/main/state", lambda m: m.payload == b"", after=mark)
        retained = await mqtt_recorder.retained()
        assert bridge_harness.data_dir.joinpath("published.json").read_text().count("serial") == 1
    assert f"{BASE}/main/state" not in retained
    assert f"{BASE}/main/availability" not in retained
    # The device was never removed (Home Assistant would drop the user's settings).
    assert all(m.payload for m in mqtt_recorder.snapshot(device_topic(meter)))
    config = retained[device_topic(meter)]
    assert b'"state_topic":"countis/grid/state"' in config


async def test_switching_discovery_mode_clears_the_other_mode(
    bridge_harness, make_meter, emulator, mqtt_recorder
):
    meter = make_meter()
    (port,) = await emulator(meter)
    meters = [bridge_harness.meter("Main", port)]
    async with bridge_harness.run(bridge_harness.config(meters)):
        await mqtt_recorder.wait_for(device_topic(meter))
    entity_voltage = f"homeassistant/sensor/countis_{meter.serial}/voltage/config"
    path = bridge_harness.config(meters, mqtt={"discovery_mode": "entity"})
    async with bridge_harness.run(path):
        await mqtt_recorder.wait_for(entity_voltage)
        await mqtt_recorder.wait_for(device_topic(meter), lambda m: m.payload == b"")
        retained = await mqtt_recorder.retained("homeassistant/#")
    assert device_topic(meter) not in retained
    assert entity_voltage in retained
