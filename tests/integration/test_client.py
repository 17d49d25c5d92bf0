"""MeterClient against the emulated meter over real TCP on 127.0.0.1.

Meters run on a ManualClock, so nothing moves between the client's read and the model's
``values()``; time moves only when a test advances the clock.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from countis.catalogue import VALUE_BY_KEY, VALUE_KEYS, Enumerated, Scaled
from countis.client import MeterClient
from countis.errors import (
    MeterConnectionError,
    MeterTimeoutError,
    ModbusExceptionError,
    NotACountisError,
)
from countis.models import ValueType
from countis.registers import BY_NAME

from countis_bridge.emulator import EmulatedMeter, ManualClock, Profile
from countis_bridge.emulator.profiles import Sample

HOST = "127.0.0.1"
DAY = 86400.0
HOUR = 3600.0
PHASES = ("l1", "l2", "l3")
ENERGY_KINDS = ("energy_import", "energy_export", "reactive_energy_import",
                "reactive_energy_export", "apparent_energy")  # fmt: skip

Start = Callable[..., Any]


def resolution(key: str) -> float:
    """The value of one register count of ``key`` in its published unit."""
    source = VALUE_BY_KEY[key].source
    if isinstance(source, Enumerated):
        return 0.0
    if isinstance(source, Scaled):
        scale = BY_NAME[source.register].scale
        return (scale if scale is not None else 1.0) / source.divisor
    residual = BY_NAME[source.residual].scale
    assert residual is not None
    return residual / source.divisor


def assert_values_match(read: Mapping[str, ValueType], model: Mapping[str, ValueType]) -> None:
    assert set(read) == set(VALUE_KEYS)
    for key in VALUE_KEYS:
        got, want = read[key], model[key]
        if isinstance(want, str) or isinstance(got, str):
            assert got == want, key
        else:
            assert abs(got - want) <= resolution(key) / 2 + 1e-9 * max(1.0, abs(want)), (
                key,
                got,
                want,
            )


class Controlled(Profile):
    """A load the test steers: change attributes right after a read, then advance time."""

    name = "controlled"

    def __init__(self) -> None:
        self.voltage = 230.0
        self.current = 10.0
        self.angle = 25.0  # degrees; + inductive import, 180+ export
        self.imbalance = (1.0, 0.8, 1.2)

    def sample(self, t: float) -> Sample:
        i = tuple(self.current * k for k in self.imbalance)
        return Sample(
            voltages=(self.voltage, self.voltage + 1.5, self.voltage - 2.0),
            currents=(i[0], i[1], i[2]),
            angle=self.angle,
            frequency=50.0,
        )


@pytest.fixture
def clock() -> ManualClock:
    """Day 10, 00:00 UTC (the daily profiles follow UTC with a manual clock)."""
    return ManualClock(start=10 * DAY)


async def open_meter(emulator: Start, meter: EmulatedMeter, seconds: float = 2.0) -> MeterClient:
    (port,) = await emulator(meter)
    return MeterClient(HOST, port, unit=meter.unit_id, timeout=seconds)


# ------------------------------------------------------------------ identity and values
async def test_identity(emulator: Start, make_meter: Start) -> None:
    e28 = make_meter(model="E28", serial="21170A0100042")
    e27 = make_meter(model="E27", serial="21170A0100043-7")
    ports = await emulator(e28, e27)
    for meter, port in zip((e28, e27), ports, strict=True):
        async with MeterClient(HOST, port, unit=5, timeout=2.0) as client:
            identity = await client.identify()
        assert identity == meter.identity
    assert e28.identity.serial_number == "21170A0100042"
    assert (e28.identity.model, e28.identity.mid) == ("E28", True)
    assert (e27.identity.model, e27.identity.mid) == ("E27", False)
    assert e27.identity.serial_number == "21170A0100043-7"


@pytest.mark.parametrize("profile", ["constant", "daily", "random_walk", "pv"])
async def test_every_value_matches_the_model(
    emulator: Start, make_meter: Start, clock: ManualClock, profile: str
) -> None:
    meter = make_meter(profile=profile, clock=clock)
    async with await open_meter(emulator, meter) as client:
        for hours in (0.0, 9.5, 4.25):  # counters grow; midday export for pv
            clock.advance(hours * HOUR)
            reading = await client.read()
            assert_values_match(reading.values, meter.values())


async def test_read_subsets_and_timestamp(
    emulator: Start, make_meter: Start, clock: ManualClock
) -> None:
    meter = make_meter(clock=clock)
    async with await open_meter(emulator, meter) as client:
        before = time.time()
        reading = await client.read(["voltage_l1", "energy_import", "phase_sequence"])
        assert before <= reading.timestamp <= time.time()
        assert set(reading.values) == {"voltage_l1", "energy_import", "phase_sequence"}
        assert reading.values["phase_sequence"] == "123"
        assert reading.values["voltage_l1"] == meter.values()["voltage_l1"]
        assert await client.read_registers(0xC350, 4) == [0x53, 0x4F, 0x43, 0x4F]


# ------------------------------------------------------------------ commands
async def test_tariff_command_takes_effect(
    emulator: Start, make_meter: Start, clock: ManualClock
) -> None:
    meter = make_meter(clock=clock)
    async with await open_meter(emulator, meter) as client:
        assert (await client.read(["tariff"])).values["tariff"] == 1
        await client.set_tariff(2)
        assert meter.tariff == 2
        assert (await client.read(["tariff"])).values["tariff"] == 2
        await client.set_tariff(1, broadcast=True)
        assert meter.tariff == 1
        assert (await client.read(["tariff"])).values["tariff"] == 1
        await client.set_tariff(2, broadcast=True)
        assert meter.tariff == 2


async def test_partial_reset_takes_effect(
    emulator: Start, make_meter: Start, clock: ManualClock
) -> None:
    meter = make_meter(clock=clock)
    partial = [k for k in VALUE_KEYS if k.startswith("partial_")]
    async with await open_meter(emulator, meter) as client:
        clock.advance(2 * HOUR)
        before = (await client.read(partial)).values
        assert before["partial_energy_import"] > 0
        assert before["partial_energy_import_t1"] > 0
        await client.reset_partial()
        after = (await client.read(partial)).values
        assert all(value == 0 for value in after.values()), after
        assert meter.values()["partial_energy_import"] == 0
        lifetime = (await client.read(["energy_import"])).values["energy_import"]
        assert lifetime > 0  # totals are not resettable


# ------------------------------------------------------------------ faults
KEYS = ("voltage_l1", "energy_import")


async def test_exception_fault(emulator: Start, make_meter: Start) -> None:
    meter = make_meter()
    async with await open_meter(emulator, meter) as client:
        await client.read(KEYS)
        for code in (4, 6):
            meter.faults.exception(code)
            with pytest.raises(ModbusExceptionError) as caught:
                await client.read(KEYS)
            assert caught.value.code == code
        meter.faults.clear()
        assert set((await client.read(KEYS)).values) == set(KEYS)


async def test_no_answer_fault(emulator: Start, make_meter: Start) -> None:
    meter = make_meter()
    async with await open_meter(emulator, meter, seconds=0.3) as client:
        await client.read(KEYS)
        meter.faults.no_answer(True)
        with pytest.raises(MeterTimeoutError):
            await client.read(KEYS)
        meter.faults.clear()
        assert set((await client.read(KEYS)).values) == set(KEYS)


async def test_delay_fault(emulator: Start, make_meter: Start) -> None:
    meter = make_meter()
    async with await open_meter(emulator, meter, seconds=0.3) as client:
        meter.faults.delay(0.05)  # within the timeout: just slow
        await client.read(KEYS)
        meter.faults.delay(0.8)
        with pytest.raises(MeterTimeoutError):
            await client.read(KEYS)
        meter.faults.clear()
        # The late answer of the timed-out request must not be taken for this one.
        reading = await client.read(["tariff"])
        assert reading.values == {"tariff": 1}
        await asyncio.sleep(0.6)
        assert (await client.read(KEYS)).values["voltage_l1"] == meter.values()["voltage_l1"]


async def test_drop_during_a_request(emulator: Start, make_meter: Start) -> None:
    meter = make_meter()
    async with await open_meter(emulator, meter, seconds=3.0) as client:
        await client.read(KEYS)
        meter.faults.delay(2.0)
        pending = asyncio.create_task(client.read(KEYS))
        await asyncio.sleep(0.2)
        start = time.monotonic()
        assert meter.faults.drop_connections() == 1
        with pytest.raises(MeterConnectionError):
            await pending
        assert time.monotonic() - start < 1.5  # the drop is seen at once, not at the timeout
        meter.faults.clear()
        assert set((await client.read(KEYS)).values) == set(KEYS)


async def test_drop_between_requests_reconnects(emulator: Start, make_meter: Start) -> None:
    meter = make_meter()
    async with await open_meter(emulator, meter) as client:
        await client.read(KEYS)
        assert meter.faults.drop_connections() == 1
        await asyncio.sleep(0.05)
        assert not client.connected
        assert set((await client.read(KEYS)).values) == set(KEYS)
        assert client.connected


async def test_server_gone_and_back(make_meter: Start) -> None:
    from countis_bridge.emulator import EmulatorServer  # noqa: PLC0415

    meter = make_meter()
    async with EmulatorServer([meter], host=HOST, port=0) as server:
        port = server.ports[0]
        client = MeterClient(HOST, port, unit=5, timeout=1.0)
        async with client:
            await client.read(KEYS)
    async with client:
        with pytest.raises(MeterConnectionError):
            await client.read(KEYS)
        async with EmulatorServer([meter], host=HOST, port=port):
            assert set((await client.read(KEYS)).values) == set(KEYS)


async def test_wrong_unit_times_out(emulator: Start, make_meter: Start) -> None:
    meter = make_meter()
    (port,) = await emulator(meter)
    async with MeterClient(HOST, port, unit=6, timeout=0.3) as client:
        with pytest.raises(MeterTimeoutError):
            await client.identify()


async def test_exception_2_at_identification_is_not_a_countis(
    emulator: Start, make_meter: Start
) -> None:
    meter = make_meter()
    async with await open_meter(emulator, meter) as client:
        meter.faults.exception(2)
        with pytest.raises(NotACountisError):
            await client.identify()
        meter.faults.exception(4)
        with pytest.raises(ModbusExceptionError):
            await client.identify()
        meter.faults.clear()
        assert (await client.identify()) == meter.identity


async def test_requests_are_serialised(emulator: Start, make_meter: Start) -> None:
    meter = make_meter()
    async with await open_meter(emulator, meter) as client:
        readings = await asyncio.gather(*(client.read() for _ in range(5)), client.identify())
        assert all(set(r.values) == set(VALUE_KEYS) for r in readings[:5])


# ------------------------------------------------------------------ physics
def check_phase_physics(values: Mapping[str, ValueType]) -> None:
    """|S|^2 = P^2 + Q^2, |P| = V*I*|PF|, S = V*I and the PF sign, within resolution."""
    for ph in PHASES:
        p, q, s = (float(values[f"{kind}_{ph}"]) for kind in ("power", "reactive_power",
                                                                "apparent_power"))  # fmt: skip
        v, i, pf = (float(values[f"{kind}_{ph}"]) for kind in ("voltage", "current",
                                                                 "power_factor"))  # fmt: skip
        vi = v * i
        # P, Q, S move in 10 W steps (+-5 each); V, I, PF in 0.01 V, 1 mA, 0.001.
        assert abs(math.hypot(p, q) - s) <= 15, (ph, p, q, s)
        assert abs(abs(p) - vi * abs(pf)) <= 6 + vi * 0.0006, (ph, p, vi, pf)
        assert abs(s - vi) <= 6 + vi * 1e-4, (ph, s, vi)
        assert -1 <= pf <= 1
        if abs(p) >= 20 and abs(q) >= 20:
            assert math.copysign(1, pf) == math.copysign(1, p * q), (ph, p, q, pf)
    for kind in ("power", "reactive_power", "apparent_power"):
        total = sum(float(values[f"{kind}_{ph}"]) for ph in PHASES)
        assert abs(float(values[kind]) - total) <= 20, kind


@pytest.mark.parametrize("angle", [25.0, -30.0, 180.0 + 25.0, 180.0 - 30.0, 0.0, 90.0])
async def test_physics_in_every_quadrant(
    emulator: Start, make_meter: Start, clock: ManualClock, angle: float
) -> None:
    profile = Controlled()
    profile.angle = angle
    meter = make_meter(profile=profile, clock=clock)
    async with await open_meter(emulator, meter) as client:
        values = (await client.read()).values
        check_phase_physics(values)
        p, q = float(values["power"]), float(values["reactive_power"])
        assert math.copysign(1, p) == math.copysign(1, math.cos(math.radians(angle))) or abs(p) < 20
        assert math.copysign(1, q) == math.copysign(1, math.sin(math.radians(angle))) or abs(q) < 20


@pytest.mark.parametrize("profile", ["daily", "pv", "random_walk"])
async def test_physics_through_a_day(
    emulator: Start, make_meter: Start, clock: ManualClock, profile: str
) -> None:
    meter = make_meter(profile=profile, clock=clock)
    keys = [k for k in VALUE_KEYS if VALUE_BY_KEY[k].unit in ("V", "A", "W", "var", "VA")
            or k.startswith("power_factor")]  # fmt: skip
    async with await open_meter(emulator, meter) as client:
        signs = set()
        for _ in range(12):
            clock.advance(2 * HOUR)
            values = (await client.read(keys)).values
            check_phase_physics(values)
            signs.add((values["power_l1"] > 0, values["reactive_power_l1"] > 0))
        if profile == "pv":
            assert (False, True) in signs or (False, False) in signs  # exported at midday


def energy_keys(scope: str = "") -> list[str]:
    return [f"{kind}{scope}" for kind in ENERGY_KINDS]


async def test_energies_integrate_power(
    emulator: Start, make_meter: Start, clock: ManualClock
) -> None:
    profile = Controlled()
    meter = make_meter(profile=profile, clock=clock)
    keys = [*energy_keys(), *(k for ph in PHASES for k in energy_keys(f"_{ph}"))]
    power = ["power", "reactive_power", "apparent_power"]
    power += [f"{k}_{ph}" for k in power for ph in PHASES]
    async with await open_meter(emulator, meter) as client:
        for angle in (25.0, -40.0, 200.0, 150.0):  # all four quadrants
            profile.angle = angle
            clock.advance(1)  # the registers show the new load from here on
            before = (await client.read(keys + power)).values
            clock.advance(HOUR)
            after = (await client.read(keys)).values
            for scope in ("", *(f"_{ph}" for ph in PHASES)):
                p = float(before[f"power{scope}"])
                q = float(before[f"reactive_power{scope}"])
                s = float(before[f"apparent_power{scope}"])
                expected = {  # kWh in one hour at constant power
                    "energy_import": max(p, 0) / 1000,
                    "energy_export": max(-p, 0) / 1000,
                    "reactive_energy_import": max(q, 0) / 1000,
                    "reactive_energy_export": max(-q, 0) / 1000,
                    "apparent_energy": s / 1000,
                }
                for kind, kwh in expected.items():
                    key = f"{kind}{scope}"
                    delta = float(after[key]) - float(before[key])
                    # 10 W power steps over an hour (+-5 Wh per phase) and 10 Wh counters.
                    tolerance = 0.026 if scope else 0.046
                    assert abs(delta - kwh) <= tolerance, (key, delta, kwh)


async def test_energies_follow_a_varying_load(
    emulator: Start, make_meter: Start, clock: ManualClock
) -> None:
    meter = make_meter(profile="pv", clock=clock)
    clock.advance(6 * HOUR)
    keys = ["power_l1", "energy_import_l1", "energy_export_l1"]
    async with await open_meter(emulator, meter) as client:
        first = previous = (await client.read(keys)).values
        imported = exported = 0.0
        for _ in range(8 * 60):  # 06:00 to 14:00 in 60 s steps, trapezoid rule
            clock.advance(60)
            values = (await client.read(keys)).values
            mean = (float(previous["power_l1"]) + float(values["power_l1"])) / 2
            imported += max(mean, 0) * 60 / 3.6e6
            exported += max(-mean, 0) * 60 / 3.6e6
            previous = values
        got_import = float(previous["energy_import_l1"]) - float(first["energy_import_l1"])
        got_export = float(previous["energy_export_l1"]) - float(first["energy_export_l1"])
        assert exported > 1.0, "the pv profile should export around midday"
        assert got_import == pytest.approx(imported, rel=0.03, abs=0.05)
        assert got_export == pytest.approx(exported, rel=0.03, abs=0.05)


async def test_tariff_counters_move_only_in_the_active_tariff(
    emulator: Start, make_meter: Start, clock: ManualClock
) -> None:
    profile = Controlled()
    meter = make_meter(profile=profile, clock=clock)
    per_tariff = {t: [k for k in VALUE_KEYS if f"_{t}" in k] for t in ("t1", "t2")}
    async with await open_meter(emulator, meter) as client:
        for active, idle in (("t1", "t2"), ("t2", "t1"), ("t1", "t2")):
            await client.set_tariff(int(active[1]))
            for angle in (25.0, 200.0):  # import, then export
                profile.angle = angle
                before = (await client.read()).values
                clock.advance(2 * HOUR)
                after = (await client.read()).values
                for key in per_tariff[idle]:
                    assert after[key] == before[key], key
                for key in per_tariff[active]:
                    assert float(after[key]) >= float(before[key]), key
                moved = {k for k in per_tariff[active] if after[k] != before[k]}
                direction = "import" if angle < 90 else "export"
                assert f"energy_{direction}_{active}" in moved
                assert f"tariff_time_{active}" in moved
                assert f"partial_energy_{direction}_{active}" in moved


async def test_balance_by_the_manual_formula(
    emulator: Start, make_meter: Start, clock: ManualClock
) -> None:
    profile = Controlled()
    meter = make_meter(profile=profile, clock=clock)
    async with await open_meter(emulator, meter) as client:
        for tariff, angle, hours in ((1, 200.0, 10), (2, 25.0, 4), (1, 25.0, 3), (2, 160.0, 2)):
            await client.set_tariff(tariff)
            profile.angle = angle
            await client.read(["power"])
            clock.advance(hours * HOUR)
        values = (await client.read()).values
    t1 = float(values["energy_import_t1"]) - float(values["energy_export_t1"])
    t2 = float(values["energy_import_t2"]) - float(values["energy_export_t2"])
    # Per-tariff export registers count whole kWh (the meter has no finer ones).
    assert float(values["energy_balance"]) == pytest.approx(t1 + t2, abs=2.01)
    assert float(values["energy_balance"]) < -10  # exported more than imported
    net = float(values["energy_import"]) - float(values["energy_export"])
    assert float(values["energy_balance"]) == pytest.approx(net, abs=0.011)
    reactive = float(values["reactive_energy_import"]) - float(values["reactive_energy_export"])
    assert float(values["reactive_energy_balance"]) == pytest.approx(reactive, abs=0.011)


async def test_counter_wrap_never_looks_like_a_drop(
    emulator: Start, make_meter: Start, clock: ManualClock
) -> None:
    meter = make_meter(profile="constant", clock=clock, overflow_kwh=2)
    wrapped = ["energy_import", "reactive_energy_import", "apparent_energy", "energy_import_t1"]
    async with await open_meter(emulator, meter) as client:
        previous = (await client.read(wrapped)).values
        wraps = (await client.read_registers(0x9002, 7))[0]
        assert wraps == 0
        for _ in range(12):  # 6.21 kW: a wrap of 2 kWh every ~20 minutes
            clock.advance(600)
            values = (await client.read(wrapped)).values
            assert_values_match_subset(values, meter.values())
            for key in wrapped:
                delta = float(values[key]) - float(previous[key])
                assert delta > 0, key
            assert float(values["energy_import"]) - float(previous["energy_import"]) == (
                pytest.approx(6.21 / 6, abs=0.011)
            )
            previous = values
        assert (await client.read_registers(0x9002, 1))[0] >= 5  # it really wrapped


def assert_values_match_subset(
    read: Mapping[str, ValueType], model: Mapping[str, ValueType]
) -> None:
    for key, value in read.items():
        assert abs(float(value) - float(model[key])) <= resolution(key) / 2 + 1e-6, key
