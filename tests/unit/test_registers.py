"""lib/countis/registers.py against Socomec's table (docs/meter/registers.csv)."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import pytest
from countis import client, codec
from countis.catalogue import VALUES
from countis.registers import BLOCK_BY_NAME, BLOCKS, BY_NAME, REGISTERS
from countis.values import source_registers

CSV_PATH = Path(__file__).resolve().parents[2] / "docs" / "meter" / "registers.csv"
ROWS = list(csv.DictReader(CSV_PATH.open(encoding="utf-8")))
DATA_ROWS = {row["name"]: row for row in ROWS if row["data_type"] != "-"}


def _scale(text: str) -> float | None:
    return float(text) if text else None


def assert_matches_csv(name: str) -> None:
    """The register ``name`` has exactly the CSV row's values."""
    assert name in DATA_ROWS, f"{name} is not a data row of the CSV"
    row, reg = DATA_ROWS[name], BY_NAME[name]
    assert reg.address == int(row["hex_address"], 16), name
    assert reg.words == int(row["words"]), name
    assert reg.dtype == row["data_type"], name
    assert reg.scale == _scale(row["scale"]), name
    assert reg.unit == row["unit"], name
    assert reg.access == row["access"], name
    assert reg.block == row["table"], name


def test_csv_is_the_complete_table() -> None:
    assert len(ROWS) == 745
    assert len(DATA_ROWS) == 272
    for row in ROWS:
        assert int(row["hex_address"], 16) == int(row["dec_address"])


@pytest.mark.parametrize("name", sorted(DATA_ROWS))
def test_every_data_row_is_in_the_module(name: str) -> None:
    assert_matches_csv(name)


def test_module_has_no_register_the_csv_lacks() -> None:
    assert {r.name for r in REGISTERS} == set(DATA_ROWS)
    assert len(REGISTERS) == len(BY_NAME)


def test_blocks_match_the_csv() -> None:
    from_csv = {(r["table"], int(r["block_start_hex"], 16), int(r["block_words"])) for r in ROWS}
    assert {(b.name, b.start, b.words) for b in BLOCKS} == from_csv
    assert len(BLOCKS) == len(BLOCK_BY_NAME) == 29


def test_rows_tile_their_blocks() -> None:
    by_block: dict[str, list[dict[str, str]]] = {}
    for row in ROWS:
        by_block.setdefault(row["table"], []).append(row)
    for name, rows in by_block.items():
        block = BLOCK_BY_NAME[name]
        rows.sort(key=lambda r: int(r["hex_address"], 16))
        address = block.start
        for row in rows:
            assert int(row["hex_address"], 16) == address, row["name"]
            address += int(row["words"])
        assert address == block.end, name


def test_blocks_do_not_overlap_and_hold_their_registers() -> None:
    ordered = sorted(BLOCKS, key=lambda b: b.start)
    for before, after in itertools.pairwise(ordered):
        assert before.end <= after.start
    for reg in REGISTERS:
        block = BLOCK_BY_NAME[reg.block]
        assert block.start <= reg.address
        assert reg.address + reg.words <= block.end


def test_fixed_size_types_have_the_codec_word_count() -> None:
    for reg in REGISTERS:
        if reg.dtype in codec.TYPE_WORDS:
            assert reg.words == codec.TYPE_WORDS[reg.dtype], reg.name
        else:
            assert reg.dtype in codec.STRING_TYPES, reg.name


def _spec_register_names() -> set[str]:
    return {reg.name for spec in VALUES for reg in source_registers(spec.source)}


@pytest.mark.parametrize("name", sorted(_spec_register_names()))
def test_every_register_a_spec_uses_has_the_csv_values(name: str) -> None:
    assert_matches_csv(name)


def test_every_register_the_client_uses_has_the_csv_values() -> None:
    used = [
        client._MID,
        client._SET_TARIFF,
        client._TARIFF,
        client._RESET_PARTIAL,
    ]
    for reg in used:
        assert_matches_csv(reg.name)
    assert (client._MID.address, client._SET_TARIFF.address) == (0x9E61, 0x9E21)
    assert (client._TARIFF.address, client._RESET_PARTIAL.address) == (0xC6A1, 0x9E40)
    ident = client._IDENT
    assert (ident.start, ident.words) == (0xC350, 66)
    for name in ("soco_signature", "vendor_name", "product_name", "extended_name"):
        assert_matches_csv(name)
        assert BY_NAME[name].block == ident.name


@pytest.mark.parametrize(
    ("name", "address", "dtype", "scale"),
    [
        ("phase1_voltage", 0xC558, "U32", 0.01),
        ("frequency", 0xC55E, "U32", 0.001),  # Hz/1000, not the E3x/E4x Hz/100
        ("phase1_current", 0xC560, "U32", 0.001),
        ("total_active_power", 0xC568, "S32", 10.0),
        ("total_power_factor", 0xC56E, "S32", 0.001),
        ("total_ea_plus_10wh", 0xC702, "U32", 10.0),
        ("sum_ea_plus", 0x6583, "U32", 1000.0),
        ("sum_ea_plus_residual", 0x6585, "U16", 0.1),
        ("net_active_energy_balance", 0x8100, "U32", 1000.0),
        ("overflow_value", 0x9000, "U32", 10.0),
        ("phase_sequence", 0xC873, "U16", None),
        ("soco_signature", 0xC350, "STRING_16", None),
        ("extended_name", 0xC38A, "STRING_NORM", None),
    ],
)
def test_design_facts(name: str, address: int, dtype: str, scale: float | None) -> None:
    reg = BY_NAME[name]
    assert (reg.address, reg.dtype, reg.scale) == (address, dtype, scale)
