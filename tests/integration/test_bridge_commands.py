"""Commands over MQTT: tariff (select + plain topic), partial meters, refusals."""

from __future__ import annotations

import asyncio

BASE = "countis"
STATE = f"{BASE}/main/state"
RESPONSE = f"{BASE}/main/response"
PARTIAL = "partial_energy_import"


def has(key: str, value=None):
    def check(message) -> bool:
        state = message.json()
        return key in state and (value is None or state[key] == value)

    return check


async def command(recorder, topic: str, payload: str, *, within: float = 5.0):
    """Publish a command and return its response."""
    mark = recorder.mark()
    recorder.publish(topic, payload)
    return (await recorder.wait_for(RESPONSE, after=mark, within=within)).json()


async def discovery_of(recorder, meter):
    message = await recorder.wait_for(f"homeassistant/device/countis_{meter.serial}/config")
    return message.json()["cmps"]


async def test_tariff_via_the_select_and_the_plain_topic(
    bridge_harness, make_meter, emulator, mqtt_recorder
):
    meter = make_meter()
    (port,) = await emulator(meter)
    path = bridge_harness.config([bridge_harness.meter("Main", port, energy_interval=30)])
    async with bridge_harness.run(path):
        select = (await discovery_of(mqtt_recorder, meter))["active_tariff"]
        await mqtt_recorder.wait_for(STATE, has("tariff", 1))
        mark = mqtt_recorder.mark()
        response = await command(mqtt_recorder, select["command_topic"], "T2")
        assert response == {"command": "tariff", "status": "ok", "value": 2}
        assert meter.tariff == 2
        # Read back from the meter and published at once (the energy group is 30 s away).
        await mqtt_recorder.wait_for(STATE, has("tariff", 2), after=mark, within=2)

        response = await command(mqtt_recorder, f"{BASE}/main/set/tariff", "1")
        assert response["status"] == "ok"
        assert meter.tariff == 1
        response = await command(
            mqtt_recorder,
            f"{BASE}/main/set/tariff",
            '{"value": "T2", "correlation_id": "abc-1"}',
        )
        assert response == {
            "command": "tariff",
            "status": "ok",
            "value": 2,
            "correlation_id": "abc-1",
        }
        assert meter.tariff == 2


async def test_tariff_broadcast(bridge_harness, make_meter, emulator, mqtt_recorder):
    meter = make_meter()
    (port,) = await emulator(meter)
    path = bridge_harness.config([bridge_harness.meter("Main", port, tariff_broadcast=True)])
    async with bridge_harness.run(path):
        await mqtt_recorder.wait_for(STATE)
        response = await command(mqtt_recorder, f"{BASE}/main/set/tariff", "T2")
    assert response["status"] == "ok", response
    assert meter.tariff == 2


async def test_partial_reset_zeroes_the_meter(bridge_harness, make_meter, emulator, mqtt_recorder):
    meter = make_meter(speed=10)
    (port,) = await emulator(meter)
    path = bridge_harness.config([bridge_harness.meter("Main", port)])
    async with bridge_harness.run(path):
        reset = (await discovery_of(mqtt_recorder, meter))["partial_reset"]
        await mqtt_recorder.wait_for(STATE, lambda m: m.json().get(PARTIAL, 0) >= 0.05)
        before = meter.values()[PARTIAL]
        mark = mqtt_recorder.mark()
        response = await command(mqtt_recorder, reset["command_topic"], reset["payload_press"])
        assert response == {"command": "partial", "status": "ok", "value": "reset"}
        assert meter.values()[PARTIAL] < min(before, 0.05)
        state = await mqtt_recorder.wait_for(STATE, has(PARTIAL), after=mark)
    assert state.json()[PARTIAL] < 0.05


async def test_stop_freezes_start_continues_and_restart_keeps_it(
    bridge_harness, make_meter, emulator, mqtt_recorder
):
    meter = make_meter(speed=10)
    (port,) = await emulator(meter)
    path = bridge_harness.config([bridge_harness.meter("Main", port)])
    topic = f"{BASE}/main/set/partial"
    async with bridge_harness.run(path):
        await mqtt_recorder.wait_for(STATE, lambda m: m.json().get(PARTIAL, 0) >= 0.02)
        assert (await command(mqtt_recorder, topic, "stop"))["status"] == "ok"
        stopped = await mqtt_recorder.wait_for(STATE, has("partial_running", False))
        frozen = stopped.json()[PARTIAL]
        raw_at_stop = meter.values()[PARTIAL]
        await asyncio.sleep(1.5)
        mark = mqtt_recorder.mark()
        later = await mqtt_recorder.wait_for(STATE, has(PARTIAL), after=mark)
        assert later.json()[PARTIAL] == frozen  # frozen in the bridge ...
        assert meter.values()[PARTIAL] > raw_at_stop + 0.01  # ... while the meter counts

    # A restart keeps the stopped state (persisted in the data directory).
    async with bridge_harness.run(path):
        mark = mqtt_recorder.mark()
        state = await mqtt_recorder.wait_for(STATE, has(PARTIAL), after=mark)
        assert state.json()["partial_running"] is False
        assert state.json()[PARTIAL] == frozen
        assert (await command(mqtt_recorder, topic, "start"))["status"] == "ok"
        await asyncio.sleep(1.0)
        mark = mqtt_recorder.mark()
        resumed = await mqtt_recorder.wait_for(STATE, has(PARTIAL), after=mark)
    value = resumed.json()[PARTIAL]
    assert resumed.json()["partial_running"] is True
    assert frozen < value < frozen + 0.1  # continues from the frozen value
    assert value < meter.values()[PARTIAL] - 0.01  # not the meter's own (higher) value


async def test_retained_commands_are_ignored(bridge_harness, make_meter, emulator, mqtt_recorder):
    meter = make_meter()
    (port,) = await emulator(meter)
    mqtt_recorder.publish(f"{BASE}/main/set/tariff", "T2", retain=True)
    path = bridge_harness.config([bridge_harness.meter("Main", port)])
    async with bridge_harness.run(path) as bridge:
        await mqtt_recorder.wait_for(STATE)
        await asyncio.sleep(0.5)
        assert bridge.connected.is_set()  # subscribed, so the retained message was delivered
    assert meter.tariff == 1
    assert mqtt_recorder.snapshot(RESPONSE) == []


async def test_bad_commands_get_error_responses_and_the_bridge_keeps_running(
    bridge_harness, make_meter, emulator, mqtt_recorder
):
    meter = make_meter()
    (port,) = await emulator(meter)
    path = bridge_harness.config([bridge_harness.meter("Main", port)])
    async with bridge_harness.run(path):
        await mqtt_recorder.wait_for(STATE)
        bad = [
            ("tariff", "T3", "unknown tariff"),
            ("tariff", '{"value": 2', "malformed JSON"),
            ("partial", "pause", "unknown action"),
            ("partial", '{"value": "stop", "correlation_id": 7, "x": 1}', "unknown JSON field"),
            ("explode", "now", "unknown command"),
        ]
        for name, payload, reason in bad:
            response = await command(mqtt_recorder, f"{BASE}/main/set/{name}", payload)
            assert response["status"] == "error", response
            assert reason in response["reason"], response
            assert response["command"] == name
        assert (
            await command(
                mqtt_recorder, f"{BASE}/main/set/partial", '{"value": 1, "correlation_id": 9}'
            )
        )["correlation_id"] == 9
        mark = mqtt_recorder.mark()
        mqtt_recorder.publish(f"{BASE}/nosuch/set/tariff", "T2")
        response = await mqtt_recorder.wait_for(f"{BASE}/nosuch/response", after=mark)
        assert response.json()["status"] == "error"
        assert (await command(mqtt_recorder, f"{BASE}/main/set/tariff", "T2"))["status"] == "ok"
        mark = mqtt_recorder.mark()
        await mqtt_recorder.wait_for(STATE, after=mark)  # still polling
    assert meter.tariff == 2


async def test_read_only_meters_refuse_commands(
    bridge_harness, make_meter, emulator, mqtt_recorder
):
    meter = make_meter(speed=10)
    (port,) = await emulator(meter)
    path = bridge_harness.config([bridge_harness.meter("Main", port, read_only=True)])
    async with bridge_harness.run(path):
        counted = await mqtt_recorder.wait_for(STATE, lambda m: m.json().get(PARTIAL, 0) > 0)
        tariff = await command(mqtt_recorder, f"{BASE}/main/set/tariff", "T2")
        reset = await command(
            mqtt_recorder, f"{BASE}/main/set/partial", '{"value": "reset", "correlation_id": "r"}'
        )
    assert tariff["status"] == "error"
    assert "read-only" in tariff["reason"]
    assert reset == {
        "command": "partial",
        "status": "error",
        "reason": tariff["reason"],
        "correlation_id": "r",
    }
    assert meter.tariff == 1
    assert meter.values()[PARTIAL] >= counted.json()[PARTIAL]  # not reset
