"""The emulator's register image: every block, types, reserved words, identification."""

from __future__ import annotations

import itertools
import struct

import pytest
from countis.codec import decode, encode
from countis.registers import BLOCKS, BY_NAME, REGISTERS

from countis_bridge.emulator import ConstantProfile, EmulatedMeter, ManualClock
from countis_bridge.emulator.image import GETTERS, SORTED_BLOCKS, counter_key, locate, struct_code

HOUR = 3600.0


@pytest.fixture(scope="module")
def meter():
    clock = ManualClock()
    meter = EmulatedMeter(serial="21170A0100042", profile="daily", clock=clock, seed=4)
    clock.advance(30 * HOUR)  # a bit of everything: inductive and capacitive periods
    meter.set_tariff(2)
    clock.advance(5 * HOUR)
    return meter


def words(meter, address, count):
    data = meter.frame().read(address, count)
    assert data is not None
    return list(struct.unpack(f">{count}H", data))


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.name)
def test_every_block_is_served_whole_and_nothing_past_its_end(meter, block):
    frame = meter.frame()
    for start in range(block.start, block.end, 125):
        count = min(125, block.end - start)
        data = frame.read(start, count)
        assert data is not None
        assert len(data) == 2 * count
    assert frame.read(block.end - 1, 2) is None  # runs past the block
    assert locate(block.start) == block
    assert locate(block.end - 1) == block


def test_addresses_outside_every_block():
    frame = EmulatedMeter(clock=ManualClock()).frame()
    covered = {a for b in BLOCKS for a in range(b.start, b.end)}
    for address in (0, 0x4D7F, 0x7FFF, 0xA000, 0xFFFF, 0xC34F):
        assert address not in covered
        assert frame.read(address, 1) is None
        assert locate(address) is None


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.name)
def test_reserved_words_read_zero(meter, block):
    used = {
        a
        for r in REGISTERS
        if r.block == block.name and r.access != "W"
        for a in range(r.address, r.address + r.words)
    }
    served = words(meter, block.start, min(block.words, 125))
    for offset, word in enumerate(served):
        if block.start + offset not in used:
            assert word == 0, hex(block.start + offset)


@pytest.mark.parametrize("reg", [r for r in REGISTERS if r.name in GETTERS], ids=lambda r: r.name)
def test_struct_layout_agrees_with_the_codec(meter, reg):
    """The dynamic blocks are packed with struct: the bytes must be codec.encode's."""
    value = GETTERS[reg.name](meter.frame())
    if struct_code(reg) == "i" and reg.dtype == "U32":  # the signed balance
        value &= 0xFFFFFFFF
    assert words(meter, reg.address, reg.words) == encode(reg.dtype, value, reg.words)


def test_sorted_blocks_do_not_overlap():
    for a, b in itertools.pairwise(SORTED_BLOCKS):
        assert a.end <= b.start


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("sum_ea_plus", "sum.ea_plus"),
        ("sum_ea_plus_residual", "sum.ea_plus"),
        ("l2_er_minus_leading_residual", "l2.er_minus_leading"),
        ("l3_t2_eap", "l3.t2.eap"),
        ("sum_t1_er_plus", "sum.t1.er_plus"),
        ("total_eap_10vah", "sum.eap"),
        ("total_er_minus_kvarh", "sum.er_minus"),
        ("partial_eap_kvah", "partial.eap"),
        ("partial_t2_ea_minus_residual", "partial.t2.ea_minus"),
        ("t1_er_plus_10varh", "sum.t1.er_plus"),
        ("t2_ea_plus_kwh", "sum.t2.ea_plus"),
        ("er_minus_total_mvarh_16bit", "sum.er_minus"),
        ("sum_tariff_in_progress", None),
        ("phase1_voltage", None),
    ],
)
def test_counter_keys_of_registers(name, key):
    assert counter_key(name) == key


def _decode(meter, name):
    reg = BY_NAME[name]
    return decode(reg.dtype, words(meter, reg.address, reg.words))


@pytest.mark.parametrize(("model", "mid"), [("E27", 0), ("E28", 1)])
def test_identification_block(model, mid):
    meter = EmulatedMeter(model=model, serial="21170A0100042-7", clock=ManualClock())
    assert words(meter, 0xC350, 4) == [0x53, 0x4F, 0x43, 0x4F]
    assert _decode(meter, "soco_signature") == "SOCO"
    assert _decode(meter, "product_order_id") == 100
    assert _decode(meter, "vendor_name") == "SOCOMEC"
    assert _decode(meter, "product_name") == "COUNTIS"
    assert _decode(meter, "extended_name") == f"COUNTIS {model}"
    assert _decode(meter, "serial_aa_ss") == 0x2117
    assert _decode(meter, "serial_sst_l") == 0x0A01
    assert _decode(meter, "serial_order") == 42
    assert _decode(meter, "serial_reserve") == 7
    assert _decode(meter, "product_software_version") == 102
    assert _decode(meter, "jbus_table_version") == 10318
    assert _decode(meter, "mid_status") == mid
    assert _decode(meter, "indus_mode") == 0
    assert _decode(meter, "slave_address") == 5
    assert _decode(meter, "code_table") == (0x48503055 if mid else 0x48503054)
    assert meter.identity.serial_number == "21170A0100042-7"
    assert meter.identity.firmware_version == "1.02"
    assert meter.identity.mid is bool(mid)
    assert meter.identity.name == f"COUNTIS {model}"


def test_write_only_commands_read_zero(meter):
    for name in ("set_tariff_number", "reset_partial_energies_cmd", "system_action"):
        assert _decode(meter, name) == 0


def test_realtime_registers_and_16_bit_block():
    meter = EmulatedMeter(profile="constant", clock=ManualClock())
    assert _decode(meter, "phase1_voltage") == 23000
    assert _decode(meter, "phase1_voltage_16bit") == 23000
    assert _decode(meter, "frequency") == 50000
    assert _decode(meter, "frequency_16bit") == 50000
    assert _decode(meter, "phase1_current") == 10000
    assert _decode(meter, "phase2_current_without_ct") == 10000
    assert _decode(meter, "total_power_factor") == 900
    assert _decode(meter, "phase3_power_factor_16bit") == 900
    assert _decode(meter, "total_active_power") == 621
    assert _decode(meter, "phase_sequence") == 0
    assert _decode(meter, "tariff_count") == 2
    assert _decode(meter, "tariff_in_progress") == 1
    assert _decode(meter, "l3_tariff_in_progress") == 1
    # Negative power factor and power: two's complement.
    export = EmulatedMeter(
        profile=ConstantProfile(export=True, inductive=False), clock=ManualClock()
    )
    assert _decode(export, "total_active_power") == -621
    assert _decode(export, "total_power_factor") == -900
    assert _decode(export, "total_power_factor_16bit") == -900


def test_16_bit_current_saturates():
    meter = EmulatedMeter(profile=ConstantProfile(current=70.0), clock=ManualClock())
    assert _decode(meter, "current_sys_avg") == 70000
    assert _decode(meter, "current_sys_avg_16bit") == 0xFFFF


def test_mwh_registers():
    clock = ManualClock()
    meter = EmulatedMeter(profile=ConstantProfile(current=60.0), clock=clock)
    clock.advance(100 * HOUR)  # 3 x 230 x 60 x 0.9 W for 100 h = 3.726 MWh
    assert _decode(meter, "ea_plus_total_mwh_16bit") == 3
    assert _decode(meter, "total_ea_plus_kwh") == 3726
