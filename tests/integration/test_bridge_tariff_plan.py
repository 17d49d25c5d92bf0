"""The bridge as tariff master, against emulated meters checked through their control API.

Plans of one-minute slots run on an accelerated clock (30x: a minute is 2 s): the
emulated meters integrate at the same speed, and the bridge judges counters and follows
the plan by the same time (the clock injection the demo uses).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from countis.clock import ScaledClock

from countis_bridge.emulator import EmulatorServer
from countis_bridge.emulator import server as emulator_server
from countis_bridge.emulator.control import ControlServer
from tests.control_api import EmulatorControl

SPEED = 30.0
STATE = "countis/main/state"


class Emulated:
    """Emulated meters with their control API, in this event loop."""

    def __init__(self, ports: list[int], control: int) -> None:
        self.ports = ports
        self.control = control

    async def tariff(self, index: int = 0) -> int:
        meter = await asyncio.to_thread(EmulatorControl(self.control, index).meter)
        return int(meter["tariff"])

    async def values(self, index: int = 0) -> dict[str, Any]:
        return await asyncio.to_thread(EmulatorControl(self.control, index).values)

    async def set_tariff(self, tariff: int, index: int = 0) -> None:
        """Switch a meter's tariff from its front panel."""
        await asyncio.to_thread(EmulatorControl(self.control, index).tariff, tariff)


@pytest.fixture
async def emulated() -> AsyncIterator[Any]:
    """``await emulated(meter, ..., gateway=False)``: serve meters and their control API."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(*meters: Any, gateway: bool = False) -> Emulated:
            control = await stack.enter_async_context(ControlServer(meters, None))
            server = await stack.enter_async_context(
                EmulatorServer(list(meters), host="127.0.0.1", port=0, gateway=gateway)
            )
            control.serving(server.ports)
            return Emulated(server.ports, control.port)

        yield start


def hhmm(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%H:%M")


def minute_slots(start: float, t2_slots: tuple[int, ...]) -> tuple[float, dict[str, Any]]:
    """The first whole minute at least 30 s after ``start``, and a UTC plan whose T2
    slots are those minutes after it (every other minute T1)."""
    first = math.ceil((start + 30) / 60) * 60
    rules = [
        {"days": "mon-sun", "from": hhmm(first + 60 * k), "to": hhmm(first + 60 * (k + 1)),
         "tariff": "T2"}
        for k in t2_slots
    ]  # fmt: skip
    return first, {"mode": "schedule", "time_zone": "UTC", "rules": rules}


async def until(clock: ScaledClock, moment: float) -> None:
    """Sleep until the accelerated clock reads ``moment``."""
    await asyncio.sleep(max(0.0, (moment - clock.time()) / SPEED))


async def test_one_minute_slots_switch_the_meter_and_only_its_counters_move(
    bridge_harness, make_meter, emulated
):
    clock = ScaledClock(SPEED)
    meter = make_meter(speed=SPEED)
    device = await emulated(meter)
    first, plan = minute_slots(clock.time(), (0, 2))
    path = bridge_harness.config([bridge_harness.meter("Main", device.ports[0], tariff_plan=plan)])
    async with bridge_harness.run(path, clock=clock) as bridge:
        for k, tariff in enumerate((2, 1, 2)):  # slots T2, T1, T2
            slot = first + 60 * k
            await until(clock, slot + 12)  # switched within a realtime interval, and settled
            assert await device.tariff() == tariff, f"slot {k}"
            before = await device.values()
            await until(clock, slot + 50)
            after = await device.values()
            assert await device.tariff() == tariff
            active, idle = (f"energy_import_t{tariff}", f"energy_import_t{3 - tariff}")
            assert after[active] > before[active], f"slot {k}: T{tariff} counter stood still"
            assert after[idle] == before[idle], f"slot {k}: T{3 - tariff} counter moved"
        stats = bridge.pollers[0].stats
    assert stats.tariff_switches == 3
    assert stats.tariff_reasserts == 0


async def test_a_tariff_changed_behind_the_bridge_comes_back_within_an_energy_interval(
    bridge_harness, make_meter, emulated, mqtt_recorder
):
    meter = make_meter()
    device = await emulated(meter)
    all_day = {"days": "mon-sun", "from": "00:00", "to": "24:00", "tariff": "T2"}
    always_t2 = {"time_zone": "UTC", "rules": [all_day]}
    path = bridge_harness.config(
        [bridge_harness.meter("Main", device.ports[0], energy_interval=1.0, tariff_plan=always_t2)]
    )
    async with bridge_harness.run(path) as bridge:
        state = await mqtt_recorder.wait_for(STATE, lambda m: m.json().get("tariff") == 2)
        assert state.json()["tariff_planned"] == 2
        assert state.json()["tariff_source"] == "schedule"
        assert await device.tariff() == 2  # asserted at start, inside the T2 window
        await device.set_tariff(1)  # the front panel, say
        assert await device.tariff() == 1
        await asyncio.sleep(1.0 + 0.5)  # one energy interval, and a realtime tick of slack
        assert await device.tariff() == 2
        assert bridge.pollers[0].stats.tariff_reasserts == 1


async def test_a_broadcast_plan_switches_three_meters_behind_one_address_with_one_write(
    bridge_harness, make_meter, emulated, monkeypatch
):
    requests: list[Any] = []  # every write request the gateway got (pymodbus hands a
    handle = emulator_server._Context.handle  # broadcast over once per unit: count objects)

    async def counting(self: Any, request: Any) -> Any:
        if request.function_code in (6, 16) and all(r is not request for r in requests):
            requests.append(request)
        return await handle(self, request)

    monkeypatch.setattr(emulator_server._Context, "handle", counting)
    clock = ScaledClock(SPEED)
    meters = [make_meter(unit_id=unit, speed=SPEED) for unit in (5, 6, 7)]
    device = await emulated(*meters, gateway=True)
    first, plan = minute_slots(clock.time(), (0,))
    entries = [
        bridge_harness.meter(f"Line {unit}", device.ports[0], unit=unit, tariff_broadcast=True,
                             tariff_plan="night")
        for unit in (5, 6, 7)
    ]  # fmt: skip
    path = bridge_harness.config(entries, tariff_plans={"night": plan})
    async with bridge_harness.run(path, clock=clock):
        await until(clock, first - 10)
        assert [m.tariff for m in meters] == [1, 1, 1]
        assert requests == []
        await until(clock, first + 15)
        assert [m.tariff for m in meters] == [2, 2, 2]
    # One unit-0 write; the three meters read it back.
    assert [(r.dev_id, r.function_code) for r in requests] == [(0, 6)]


async def test_a_signal_switches_only_when_fresh(
    bridge_harness, make_meter, emulated, mqtt_recorder
):
    meter = make_meter()
    device = await emulated(meter)
    signal = {"topic": "grid/tariff", "mapping": {"peak": "T1", "offpeak": "T2"}}
    mqtt_recorder.publish("grid/tariff", "offpeak", retain=True)  # before the bridge: stale
    path = bridge_harness.config(
        [bridge_harness.meter("Main", device.ports[0], tariff_plan=signal)]
    )
    async with bridge_harness.run(path):
        state = await mqtt_recorder.wait_for(STATE, lambda m: "tariff_source" in m.json())
        assert state.json()["tariff_planned"] is None
        await asyncio.sleep(1.0)
        assert await device.tariff() == 1  # the retained signal switched nothing
        old = json.dumps({"state": "offpeak", "last_changed": "2020-01-01T00:00:00+00:00"})
        mqtt_recorder.publish("grid/tariff", old)
        await asyncio.sleep(1.0)
        assert await device.tariff() == 1  # a stale signal neither
        mqtt_recorder.publish("grid/tariff", "offpeak")
        await mqtt_recorder.wait_for(STATE, lambda m: m.json().get("tariff") == 2, within=5)
        assert await device.tariff() == 2
