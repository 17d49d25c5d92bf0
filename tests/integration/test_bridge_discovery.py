"""Home Assistant discovery published by the bridge (emulated meters, real Mosquitto)."""

from __future__ import annotations

import json

from countis.presentation import BUTTONS, SENSORS, TARIFF_SELECT

BASE = "countis"
ALL_KEYS = {s.key for s in SENSORS} | {b.key for b in BUTTONS} | {TARIFF_SELECT.key}


def device_topic(serial: str) -> str:
    return f"homeassistant/device/countis_{serial}/config"


async def test_device_discovery_one_retained_config_per_meter(
    bridge_harness, make_meter, emulator, mqtt_recorder
):
    meters = [make_meter(), make_meter(model="E27")]
    ports = await emulator(*meters)
    path = bridge_harness.config(
        [bridge_harness.meter("Main", ports[0]), bridge_harness.meter("PV roof", ports[1])]
    )
    async with bridge_harness.run(path):
        for meter in meters:
            await mqtt_recorder.wait_for(device_topic(str(meter.serial)))
        retained = await mqtt_recorder.retained("homeassistant/#")

    configs = {t: json.loads(p) for t, p in retained.items() if p}
    assert set(configs) == {device_topic(str(m.serial)) for m in meters}
    for meter, slug in zip(meters, ("main", "pv_roof"), strict=True):
        serial = str(meter.serial)
        config = configs[device_topic(serial)]
        assert config["dev"]["identifiers"] == [f"countis_{serial}"]
        assert config["dev"]["manufacturer"] == "Socomec"
        assert config["dev"]["model"] == f"COUNTIS {meter.model}"
        assert config["dev"]["serial_number"] == serial
        assert config["dev"]["configuration_url"] == "http://127.0.0.1/"
        assert {"name", "sw_version", "support_url"} <= set(config["o"])
        assert config["state_topic"] == f"{BASE}/{slug}/state"
        assert config["availability_mode"] == "all"
        assert [a["topic"] for a in config["availability"]] == [
            f"{BASE}/bridge/availability",
            f"{BASE}/{slug}/availability",
        ]
        components = config["cmps"]
        assert set(components) == ALL_KEYS  # every entity spec
        for key, component in components.items():
            assert component["unique_id"] == f"countis_{serial}_{key}"
            assert "object_id" not in component
            assert component["default_entity_id"] == f"{component['p']}.{slug}_{key}"
        uids = [c["unique_id"] for c in components.values()]
        assert len(uids) == len(set(uids))
        for spec in SENSORS:
            component = components[spec.key]
            if spec.unit == "kWh" and spec.device_class == "energy":
                expected = "total" if "balance" in spec.key else "total_increasing"
                assert component["state_class"] == expected, spec.key
                assert component["unit_of_measurement"] == "kWh"
        assert components["energy_import"]["device_class"] == "energy"
        assert components["energy_balance"]["state_class"] == "total"
        select = components[TARIFF_SELECT.key]
        assert select["command_topic"] == f"{BASE}/{slug}/set/tariff"
        assert select["options"] == ["T1", "T2"]


async def test_entity_mode_one_config_per_entity_with_the_same_unique_ids(
    bridge_harness, make_meter, emulator, mqtt_recorder
):
    meter = make_meter()
    (port,) = await emulator(meter)
    serial = str(meter.serial)
    path = bridge_harness.config(
        [bridge_harness.meter("Main", port)], mqtt={"discovery_mode": "entity"}
    )
    async with bridge_harness.run(path):
        await mqtt_recorder.wait_for(f"homeassistant/select/countis_{serial}/active_tariff/config")
        await mqtt_recorder.wait_for(f"homeassistant/sensor/countis_{serial}/voltage/config")
        retained = await mqtt_recorder.retained("homeassistant/#", settle=0.5)

    configs = {t: json.loads(p) for t, p in retained.items() if p}
    assert device_topic(serial) not in configs
    by_uid = {c["unique_id"]: (t, c) for t, c in configs.items()}
    assert set(by_uid) == {f"countis_{serial}_{key}" for key in ALL_KEYS}
    topic, voltage = by_uid[f"countis_{serial}_voltage"]
    assert topic == f"homeassistant/sensor/countis_{serial}/voltage/config"
    assert voltage["state_topic"] == f"{BASE}/main/state"
    assert voltage["availability_mode"] == "all"
    assert voltage["device"]["identifiers"] == [f"countis_{serial}"]


async def test_home_assistant_online_republishes_discovery_and_state(
    bridge_harness, make_meter, emulator, mqtt_recorder
):
    meter = make_meter()
    (port,) = await emulator(meter)
    serial = str(meter.serial)
    # A slow cadence: a state message after the mark can only be the republication.
    path = bridge_harness.config(
        [bridge_harness.meter("Main", port, realtime_interval=30, energy_interval=60)]
    )
    async with bridge_harness.run(path):
        await mqtt_recorder.wait_for(f"{BASE}/main/state")
        mark = mqtt_recorder.mark()
        mqtt_recorder.publish("homeassistant/status", "online")
        await mqtt_recorder.wait_for(device_topic(serial), after=mark)
        await mqtt_recorder.wait_for(f"{BASE}/main/state", after=mark)
        await mqtt_recorder.wait_for(
            f"{BASE}/main/availability", lambda m: m.payload == b"online", after=mark
        )
        # "offline" from Home Assistant changes nothing.
        mark = mqtt_recorder.mark()
        mqtt_recorder.publish("homeassistant/status", "offline")
        await mqtt_recorder.wait_for("homeassistant/status", after=mark)
        assert mqtt_recorder.since(mark, device_topic(serial)) == []


async def test_read_only_meter_has_no_command_entities(
    bridge_harness, make_meter, emulator, mqtt_recorder
):
    meter = make_meter()
    (port,) = await emulator(meter)
    path = bridge_harness.config([bridge_harness.meter("Main", port, read_only=True)])
    async with bridge_harness.run(path):
        message = await mqtt_recorder.wait_for(device_topic(str(meter.serial)))
    components = message.json()["cmps"]
    assert components[TARIFF_SELECT.key] == {"p": "select"}  # removal stubs
    assert all(components[b.key] == {"p": "button"} for b in BUTTONS)
