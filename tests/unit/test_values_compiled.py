"""Compiled conversions (``compile_values``) give exactly what ``compute`` gives."""

from __future__ import annotations

import random

import pytest
from countis import codec
from countis.catalogue import VALUE_BY_KEY, VALUE_KEYS, Group, keys_for_groups
from countis.errors import ProtocolError
from countis.registers import BY_NAME
from countis.values import OVERFLOW_VALUE, compile_values, compute, compute_values, registers_for
from hypothesis import given, settings
from hypothesis import strategies as st

ALL_REGISTERS = registers_for(VALUE_KEYS)


def register_value(name: str) -> st.SearchStrategy[int]:
    """Any integer the register's type can carry, edge values favoured."""
    reg = BY_NAME[name]
    if name == OVERFLOW_VALUE:
        return st.integers(1, 100_000_000)
    if reg.dtype in ("U8", "U8_HEX"):
        return st.integers(0, 0xFF)
    bits = 16 * reg.words
    if reg.dtype in codec.SIGNED_TYPES:
        return st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    return st.integers(0, (1 << bits) - 1)


RAW = st.fixed_dictionaries({reg.name: register_value(reg.name) for reg in ALL_REGISTERS})


def assert_identical(got: object, want: object, key: str) -> None:
    # Same type and text: 1230 must not become 1230.0, nor 0.0 become -0.0, in the JSON.
    assert (type(got), repr(got)) == (type(want), repr(want)), key


@settings(max_examples=300)
@given(raw=RAW)
def test_every_key_is_identical_to_compute(raw: dict[str, int]) -> None:
    conversion = compile_values(VALUE_KEYS)
    values = conversion([raw[name] for name in conversion.registers])
    assert list(values) == list(VALUE_KEYS)
    for key in VALUE_KEYS:
        assert_identical(values[key], compute(VALUE_BY_KEY[key], raw), key)


@settings(max_examples=100)
@given(raw=RAW, seed=st.integers(0, 1000))
def test_any_register_order(raw: dict[str, int], seed: int) -> None:
    keys = keys_for_groups({Group.ENERGY})
    order = [reg.name for reg in ALL_REGISTERS]  # more than the keys need: extras are fine
    random.Random(seed).shuffle(order)
    conversion = compile_values(keys, tuple(order))
    values = conversion([raw[name] for name in order])
    for key in keys:
        assert_identical(values[key], compute(VALUE_BY_KEY[key], raw), key)


def test_wrapped_and_signed_examples() -> None:
    keys = ("energy_import", "energy_balance", "energy_import_t1", "power_l1", "phase_sequence")
    raw = {reg.name: 0 for reg in registers_for(keys)}
    raw |= {
        "sum_ea_plus": 12,
        "sum_ea_plus_residual": 3000,
        "overflow_count_ea_plus": 2,
        OVERFLOW_VALUE: 100_000_000,
        "net_active_energy_balance": 0xFFFF_FFFE,
        "net_active_energy_balance_residual": 5000,
        "t1_ea_plus_10wh": 5,
        "overflow_count_ea_t1": 1,
        "phase1_active_power": 123,
        "phase_sequence": 7,
    }
    assert compute_values(keys, raw) == {
        "energy_import": 2_000_012.3,
        "energy_balance": -1.5,
        "energy_import_t1": 1_000_000.05,
        "power_l1": 1230,
        "phase_sequence": "unknown",
    }


def test_conversions_are_cached_per_key_set() -> None:
    keys = keys_for_groups({Group.REALTIME})
    assert compile_values(keys) is compile_values(tuple(keys))
    assert compile_values(keys).registers == tuple(r.name for r in registers_for(keys))


def test_missing_registers_and_unknown_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="phase1_voltage"):
        compile_values(("voltage_l1",), ("phase2_voltage",))
    with pytest.raises(KeyError):
        compile_values(("no_such_key",))
    with pytest.raises(ProtocolError):
        compute_values(["voltage_l1"], {"phase2_voltage": 1})
    with pytest.raises(ProtocolError):
        compute_values(["voltage_l1"], {"phase1_voltage": "SOCO"})
