"""The emulated meter's model with a manual clock: integration, tariffs, partials, wraps."""

from __future__ import annotations

import pytest
from countis.catalogue import VALUE_KEYS
from countis.registers import BY_NAME

from countis_bridge.emulator import ConstantProfile, EmulatedMeter, ManualClock
from countis_bridge.emulator import energy as en
from countis_bridge.emulator.modbus import (
    RESET_PARTIAL,
    RESET_PARTIAL_MASK,
    RESET_TARIFF_MASK,
    TARIFF,
)

HOUR = 3600.0


def make(clock=None, **kwargs):
    options = {"serial": "21170A0100042", "profile": "constant", "clock": clock or ManualClock()}
    options.update(kwargs)
    return EmulatedMeter(**options)


def raw(meter, name):
    """The raw integer of one register, as served now."""
    reg = BY_NAME[name]
    data = meter.frame().read(reg.address, reg.words)
    assert data is not None
    return int.from_bytes(data, "big")


def test_nothing_moves_without_the_manual_clock():
    meter = make()
    first = meter.values()
    assert meter.values() == first
    assert first["energy_import"] == 0
    assert first["power"] == 6210


def test_values_cover_every_value_key():
    assert set(make().values()) == set(VALUE_KEYS)


def test_energy_is_the_integral_of_power():
    clock = ManualClock()
    meter = make(clock)
    clock.advance(HOUR)
    values = meter.values()
    assert values["energy_import"] == 6.21  # 3 x 230 V x 10 A x 0.9 for one hour
    assert values["energy_import_l1"] == 2.07
    assert values["apparent_energy"] == 6.9
    assert values["reactive_energy_import"] == pytest.approx(6.9 * 0.43589, abs=0.01)
    assert values["energy_export"] == 0
    # Many small steps give the same result as one big one.
    clock2 = ManualClock()
    meter2 = make(clock2)
    for _ in range(360):
        clock2.advance(10)
        meter2.frame()
    assert meter2.values()["energy_import"] == 6.21


def test_speed_multiplies_time():
    clock = ManualClock()
    meter = make(clock, speed=60.0)
    clock.advance(60)
    assert meter.values()["energy_import"] == 6.21


@pytest.mark.parametrize(
    ("profile", "grows", "stays_zero"),
    [
        (
            ConstantProfile(),
            ("energy_import", "reactive_energy_import", "reactive_energy_import_inductive"),
            ("energy_export", "reactive_energy_export", "reactive_energy_import_capacitive"),
        ),
        (
            ConstantProfile(inductive=False),
            ("energy_import", "reactive_energy_export", "reactive_energy_export_capacitive"),
            ("energy_export", "reactive_energy_import", "reactive_energy_export_inductive"),
        ),
        (
            ConstantProfile(export=True),  # angle 205.8 deg: P < 0, Q < 0 -> Q3, lagging
            ("energy_export", "reactive_energy_export", "reactive_energy_export_inductive"),
            ("energy_import", "reactive_energy_import", "reactive_energy_export_capacitive"),
        ),
        (
            ConstantProfile(export=True, inductive=False),  # P < 0, Q > 0 -> Q2, leading
            ("energy_export", "reactive_energy_import", "reactive_energy_import_capacitive"),
            ("energy_import", "reactive_energy_export", "reactive_energy_import_inductive"),
        ),
    ],
)
def test_quadrant_split(profile, grows, stays_zero):
    clock = ManualClock()
    meter = make(clock, profile=profile)
    clock.advance(HOUR)
    values = meter.values()
    for key in grows:
        assert values[key] > 0, key
        assert values[f"{key}_l2"] > 0, key
    for key in stays_zero:
        assert values[key] == 0, key
    for direction in ("import", "export"):
        whole = values[f"reactive_energy_{direction}"]
        parts = (
            values[f"reactive_energy_{direction}_inductive"]
            + values[f"reactive_energy_{direction}_capacitive"]
        )
        assert whole == pytest.approx(parts, abs=0.011)


def test_tariff_split_and_time_counters():
    clock = ManualClock()
    meter = make(clock)
    clock.advance(HOUR)
    meter.set_tariff(2)
    clock.advance(2 * HOUR)
    values = meter.values()
    assert values["tariff"] == 2
    assert values["energy_import_t1"] == 6.21
    assert values["energy_import_t2"] == 12.42
    assert values["energy_import"] == 18.63
    assert values["apparent_energy_t1"] == 6  # whole kVAh only per tariff
    assert values["tariff_time_t1"] == 1.0
    assert values["tariff_time_t2"] == 2.0
    assert values["energy_import_t1_l3"] == 2  # whole kWh per phase and tariff
    with pytest.raises(ValueError, match="tariff"):
        meter.set_tariff(3)


def test_energy_balance_follows_the_manual_formula():
    clock = ManualClock()
    meter = make(clock)
    clock.advance(HOUR)  # T1: import 6.21 kWh
    meter.set_tariff(2)
    meter.profile = ConstantProfile(export=True, current=20.0)
    clock.advance(HOUR)  # T2: export 12.42 kWh
    values = meter.values()
    counters = meter.counters()
    expected = (counters["sum.t1.ea_plus"] - counters["sum.t1.ea_minus"]) + (
        counters["sum.t2.ea_plus"] - counters["sum.t2.ea_minus"]
    )
    assert values["energy_balance"] == pytest.approx(expected / 1000, abs=0.01)
    assert values["energy_balance"] == pytest.approx(6.21 - 12.42)
    # Negative balance: whole part in two's complement, residual >= 0 (lead's decision).
    assert raw(meter, "net_active_energy_balance") == (1 << 32) - 7
    assert raw(meter, "net_active_energy_balance_residual") == 7900  # 0.79 kWh in 0.1 Wh
    reactive = (counters["sum.t1.er_plus"] - counters["sum.t1.er_minus"]) + (
        counters["sum.t2.er_plus"] - counters["sum.t2.er_minus"]
    )
    assert values["reactive_energy_balance"] == pytest.approx(reactive / 1000, abs=0.01)


def test_partial_counters_start_stop_reset():
    clock = ManualClock()
    meter = make(clock)
    clock.advance(HOUR)
    assert meter.values()["partial_energy_import"] == 6.21
    meter.partial_stop()
    assert not meter.partial_running
    clock.advance(HOUR)
    values = meter.values()
    assert values["partial_energy_import"] == 6.21  # frozen while stopped
    assert values["partial_energy_import_t1"] == 6.21
    assert values["energy_import"] == 12.42  # totals keep counting
    meter.partial_start()
    clock.advance(HOUR)
    assert meter.values()["partial_energy_import"] == 12.42
    meter.partial_reset()
    values = meter.values()
    assert values["partial_energy_import"] == 0
    assert values["partial_apparent_energy"] == 0
    assert values["partial_energy_import_t1"] == 0
    assert values["energy_import"] == 18.63
    assert meter.partial_running


def test_partial_reset_by_register_mask():
    clock = ManualClock()
    meter = make(clock)
    clock.advance(HOUR)
    meter.apply_write(RESET_PARTIAL_MASK, [0x0004])  # Eap only
    values = meter.values()
    assert values["partial_apparent_energy"] == 0
    assert values["partial_energy_import"] == 6.21
    meter.apply_write(RESET_PARTIAL_MASK, [0x0001])  # Ea+ and the per-tariff Ea+
    values = meter.values()
    assert values["partial_energy_import"] == 0
    assert values["partial_energy_import_t1"] == 0
    assert values["partial_reactive_energy_import"] > 0
    meter.apply_write(RESET_PARTIAL, [0x20])
    assert meter.values()["partial_reactive_energy_import"] == 0


def test_tariff_and_tariff_time_reset_by_register():
    clock = ManualClock()
    meter = make(clock)
    meter.apply_write(TARIFF, [2])
    assert meter.tariff == 2
    clock.advance(HOUR)
    meter.apply_write(RESET_TARIFF_MASK, [0xFFFF])
    values = meter.values()
    assert values["tariff_time_t2"] == 0
    assert values["energy_import_t2"] == 6.21  # energies per tariff are not reset


def test_resolution_is_10_wh_everywhere():
    clock = ManualClock()
    meter = make(clock)
    clock.advance(5)  # 6210 W x 5 s = 8.6 Wh: below one step
    assert meter.values()["energy_import"] == 0
    assert raw(meter, "sum_ea_plus_residual") == 0
    clock.advance(1)  # 10.35 Wh
    assert meter.values()["energy_import"] == 0.01
    assert raw(meter, "sum_ea_plus_residual") == 100  # 10 Wh in 0.1 Wh units
    assert raw(meter, "total_ea_plus_10wh") == 1
    clock.advance(HOUR)
    for name in ("sum_ea_plus_residual", "l1_ea_plus_residual", "sum_eap_residual"):
        assert raw(meter, name) % 100 == 0, name


def test_counters_wrap_at_the_overflow_value():
    clock = ManualClock()
    meter = make(clock, overflow_kwh=5)
    clock.advance(HOUR)  # 6.21 kWh: one wrap at 5 kWh
    assert raw(meter, "overflow_value") == 500
    assert raw(meter, "overflow_count_ea_plus") == 1
    assert raw(meter, "overflow_count_ea_t1") == 1
    assert raw(meter, "overflow_count_eap") == 1
    assert raw(meter, "overflow_count_ea_minus") == 0
    assert raw(meter, "sum_ea_plus") == 1  # 1.21 kWh shown
    assert raw(meter, "total_ea_plus_10wh") == 121
    assert raw(meter, "t1_ea_plus_10wh") == 121
    assert raw(meter, "l1_ea_plus") == 2  # per phase: no wrap
    values = meter.values()  # the client's formula adds the wraps back
    assert values["energy_import"] == 6.21
    assert values["energy_import_t1"] == 6.21
    assert values["apparent_energy"] == 6.9


def test_faults_change_what_the_registers_show():
    clock = ManualClock()
    meter = make(clock)
    clock.advance(HOUR)
    meter.faults.freeze(True)
    frozen = raw(meter, "total_ea_plus_10wh")
    clock.advance(HOUR)
    assert raw(meter, "total_ea_plus_10wh") == frozen  # registers stop ...
    assert meter.values()["energy_import"] == 12.42  # ... the model goes on
    meter.faults.freeze(False)
    assert raw(meter, "total_ea_plus_10wh") == 1242
    meter.faults.zero_counters(True)
    assert raw(meter, "total_ea_plus_10wh") == 0
    assert raw(meter, "t1_time_counter") == 0
    assert raw(meter, "total_active_power") == 621  # realtime values stay
    meter.faults.zero_counters(False)
    meter.faults.lower_counters(True)
    assert raw(meter, "total_ea_plus_10wh") < 1242
    assert raw(meter, "partial_ea_plus_10wh") == 1242  # partial counters are not lowered
    meter.faults.clear()
    assert raw(meter, "total_ea_plus_10wh") == 1242


def test_integration_counts_all_counters_from_zero():
    counters = en.new_counters()
    assert set(counters) == set(en.ALL_KEYS)
    assert en.load_counters({"sum.ea_plus": 5.0, "junk": 1, "sum.eap": -1})["sum.ea_plus"] == 5.0
    assert en.load_counters({"sum.eap": -1})["sum.eap"] == 0.0
    assert en.counts(9.9999999) == 1  # float sums just below a step count as the step
