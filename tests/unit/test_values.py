"""Value computation: residual pairs, signed balance, wraps, enumerations, resolution."""

from __future__ import annotations

import math

import pytest
from countis import codec
from countis.catalogue import (
    VALUE_BY_KEY,
    VALUE_KEYS,
    VALUES,
    Enumerated,
    Scaled,
    ValueSpec,
    WithResidual,
)
from countis.errors import ProtocolError
from countis.registers import BY_NAME
from countis.values import OVERFLOW_VALUE, compute, compute_values, registers_for, source_registers
from hypothesis import given, settings
from hypothesis import strategies as st

U32 = st.integers(0, 0xFFFF_FFFF)
RESIDUAL = st.integers(0, 9999)  # 0.1 Wh steps below one kWh
WRAP = 100_000_000  # default overflow value: 1,000,000 kWh in 10 Wh units


def raw_for(key: str, **values: int) -> dict[str, codec.Value]:
    """Decoded registers for ``key``: zeros, overflow value WRAP, then ``values``."""
    raw: dict[str, codec.Value] = {
        reg.name: 0 for reg in source_registers(VALUE_BY_KEY[key].source)
    }
    if OVERFLOW_VALUE in raw:
        raw[OVERFLOW_VALUE] = WRAP
    raw.update(values)
    return raw


def test_residual_pair_vector() -> None:
    raw = raw_for("energy_import", sum_ea_plus=12345, sum_ea_plus_residual=6789)
    assert compute(VALUE_BY_KEY["energy_import"], raw) == 12345.6789


@given(whole=U32, residual=RESIDUAL)
def test_residual_pair_keeps_every_tenth_of_a_watt_hour(whole: int, residual: int) -> None:
    raw = raw_for("energy_import_l2", l2_ea_plus=whole, l2_ea_plus_residual=residual)
    value = compute(VALUE_BY_KEY["energy_import_l2"], raw)
    assert isinstance(value, float)
    assert round(value * 10_000) == whole * 10_000 + residual


def test_signed_balance_vector() -> None:
    # -1.5 kWh: whole part floor(-1.5) = -2 as two's complement, residual +0.5 kWh.
    raw = raw_for(
        "energy_balance",
        net_active_energy_balance=0xFFFF_FFFE,
        net_active_energy_balance_residual=5000,
    )
    assert compute(VALUE_BY_KEY["energy_balance"], raw) == -1.5


@given(tenths_of_wh=st.integers(-(2**31) * 10_000, (2**31 - 1) * 10_000))
def test_signed_balance_round_trip(tenths_of_wh: int) -> None:
    whole, residual = divmod(tenths_of_wh, 10_000)  # floor and a non-negative remainder
    raw = raw_for(
        "reactive_energy_balance",
        net_reactive_energy_balance=codec.decode("U32", codec.encode("S32", whole)),
        net_reactive_energy_balance_residual=residual,
    )
    value = compute(VALUE_BY_KEY["reactive_energy_balance"], raw)
    assert round(float(value) * 10_000) == tenths_of_wh


def test_balance_is_signed_but_import_is_not() -> None:
    assert isinstance(VALUE_BY_KEY["energy_balance"].source, WithResidual)
    assert VALUE_BY_KEY["energy_balance"].source.signed
    raw = raw_for("energy_import", sum_ea_plus=0xFFFF_FFFE)
    assert compute(VALUE_BY_KEY["energy_import"], raw) == 0xFFFF_FFFE


def test_overflow_wraps_are_added() -> None:
    raw = raw_for(
        "energy_import",
        sum_ea_plus=12,
        sum_ea_plus_residual=3000,
        overflow_count_ea_plus=2,
    )
    assert compute(VALUE_BY_KEY["energy_import"], raw) == 2_000_012.3
    raw = raw_for("energy_import_t1", t1_ea_plus_10wh=5, overflow_count_ea_t1=1)
    assert compute(VALUE_BY_KEY["energy_import_t1"], raw) == 1_000_000.05


def test_a_wrap_never_looks_like_a_drop() -> None:
    spec = VALUE_BY_KEY["energy_import_t2"]
    before = compute(spec, raw_for(spec.key, t2_ea_plus_10wh=WRAP - 1))
    after = compute(spec, raw_for(spec.key, t2_ea_plus_10wh=1, overflow_count_ea_t2=1))
    assert float(after) - float(before) == pytest.approx(0.02)
    spec = VALUE_BY_KEY["apparent_energy"]
    before = compute(spec, raw_for(spec.key, sum_eap=999_999, sum_eap_residual=9900))
    after = compute(spec, raw_for(spec.key, sum_eap_residual=100, overflow_count_eap=1))
    assert float(after) - float(before) == pytest.approx(0.02)


def test_counters_with_wrap_registers_read_the_overflow_block() -> None:
    for key, count in (
        ("energy_import", "overflow_count_ea_plus"),
        ("energy_export", "overflow_count_ea_minus"),
        ("reactive_energy_import", "overflow_count_er_plus"),
        ("reactive_energy_export", "overflow_count_er_minus"),
        ("apparent_energy", "overflow_count_eap"),
        ("energy_import_t1", "overflow_count_ea_t1"),
        ("energy_import_t2", "overflow_count_ea_t2"),
    ):
        names = {reg.name for reg in registers_for([key])}
        assert {count, OVERFLOW_VALUE} <= names, key


@pytest.mark.parametrize(
    ("code", "text"), [(0, "123"), (1, "132"), (2, "unknown"), (0xFFFF, "unknown")]
)
def test_phase_sequence_enumeration(code: int, text: str) -> None:
    assert compute(VALUE_BY_KEY["phase_sequence"], {"phase_sequence": code}) == text


SCALED = [s for s in VALUES if isinstance(s.source, Scaled)]


@pytest.mark.parametrize("spec", SCALED, ids=lambda s: s.key)
@settings(max_examples=25)
@given(data=st.data())
def test_scaled_values_keep_the_register_resolution(spec: ValueSpec, data: st.DataObject) -> None:
    assert isinstance(spec.source, Scaled)
    reg = BY_NAME[spec.source.register]
    signed = reg.dtype in codec.SIGNED_TYPES
    bits = 16 * reg.words
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if reg.dtype in ("U8", "U8_HEX"):
        high = 0xFF
    count = data.draw(st.integers(low, high))
    value = compute(spec, raw_for(spec.key, **{reg.name: count}))
    step = (reg.scale if reg.scale is not None else 1.0) / spec.source.divisor
    assert round(float(value) / step) == count  # no count lost to rounding
    assert math.isclose(float(value), count * step, rel_tol=1e-12, abs_tol=step * 1e-6)
    if step >= 1:
        assert isinstance(value, int)


def test_examples_of_published_resolution() -> None:
    assert compute(VALUE_BY_KEY["frequency"], {"frequency": 50012}) == 50.012
    assert compute(VALUE_BY_KEY["current_l1"], {"phase1_current": 12345}) == 12.345
    assert compute(VALUE_BY_KEY["power_factor_l3"], {"phase3_power_factor": -875}) == -0.875
    assert compute(VALUE_BY_KEY["power_l1"], {"phase1_active_power": 123}) == 1230
    assert compute(VALUE_BY_KEY["partial_energy_import"], {"partial_ea_plus_10wh": 7}) == 0.07
    assert compute(VALUE_BY_KEY["tariff"], {"tariff_in_progress_c800": 2}) == 2


def test_missing_or_bad_register_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        compute(VALUE_BY_KEY["voltage_l1"], {})
    with pytest.raises(ProtocolError):
        compute(VALUE_BY_KEY["voltage_l1"], {"phase1_voltage": "SOCO"})


def test_registers_for_is_deduplicated_and_ordered() -> None:
    regs = registers_for(["energy_import", "energy_export", "energy_import"])
    assert len(regs) == len({r.name for r in regs})
    assert [r.address for r in regs] == sorted(r.address for r in regs)


def test_compute_values_gives_every_key() -> None:
    raw: dict[str, codec.Value] = {r.name: 0 for r in registers_for(VALUE_KEYS)}
    values = compute_values(VALUE_KEYS, raw)
    assert list(values) == list(VALUE_KEYS)
    kinds = {type(s.source) for s in VALUES}
    assert kinds == {Scaled, WithResidual, Enumerated}
