"""Codec: round trips for every data type of the table, vectors written from the table."""

from __future__ import annotations

import pytest
from countis import codec
from countis.catalogue import VALUE_BY_KEY
from countis.errors import CodecError
from countis.registers import BY_NAME, REGISTERS
from countis.values import compute
from hypothesis import given
from hypothesis import strategies as st

RANGES = {
    "U8": (0, 0xFF),
    "U8_HEX": (0, 0xFF),
    "U16": (0, 0xFFFF),
    "U16_HEX": (0, 0xFFFF),
    "S16": (-0x8000, 0x7FFF),
    "U32": (0, 0xFFFF_FFFF),
    "S32": (-0x8000_0000, 0x7FFF_FFFF),
    "U64_HEX": (0, 0xFFFF_FFFF_FFFF_FFFF),
}
WORD = st.integers(0, 0xFFFF)
# Printable ASCII without surrounding blanks: decoding trims padding, so those cannot survive.
TEXT_CHARS = st.characters(min_codepoint=0x21, max_codepoint=0x7E)


def test_every_type_of_the_table_is_covered() -> None:
    assert {r.dtype for r in REGISTERS} == set(RANGES) | codec.STRING_TYPES


@pytest.mark.parametrize("dtype", sorted(RANGES))
@given(data=st.data())
def test_numeric_round_trip(dtype: str, data: st.DataObject) -> None:
    low, high = RANGES[dtype]
    value = data.draw(st.integers(low, high))
    words = codec.encode(dtype, value)
    assert len(words) == codec.TYPE_WORDS[dtype]
    assert all(0 <= w <= 0xFFFF for w in words)
    assert codec.decode(dtype, words) == value


@pytest.mark.parametrize("dtype", sorted(set(RANGES) - {"U8", "U8_HEX"}))
@given(data=st.data())
def test_numeric_words_round_trip(dtype: str, data: st.DataObject) -> None:
    """Every word pattern decodes to a value that encodes back to the same words."""
    words = data.draw(
        st.lists(WORD, min_size=codec.TYPE_WORDS[dtype], max_size=codec.TYPE_WORDS[dtype])
    )
    value = codec.decode(dtype, words)
    assert codec.encode(dtype, value) == words


@pytest.mark.parametrize("dtype", ["U8", "U8_HEX"])
@given(word=WORD)
def test_u8_reads_the_low_byte(dtype: str, word: int) -> None:
    assert codec.decode(dtype, [word]) == word & 0xFF


@given(text=st.text(TEXT_CHARS, max_size=4))
def test_string_16_round_trip(text: str) -> None:
    words = codec.encode("STRING_16", text, 4)
    assert len(words) == 4
    assert all(w <= 0xFF for w in words)  # one character per register, low byte
    assert codec.decode("STRING_16", words) == text


@pytest.mark.parametrize("count", [4, 8])
@given(data=st.data())
def test_string_norm_round_trip(count: int, data: st.DataObject) -> None:
    alphabet = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
    text = data.draw(st.text(alphabet, max_size=2 * count).map(str.strip))
    words = codec.encode("STRING_NORM", text, count)
    assert len(words) == count
    assert codec.decode("STRING_NORM", words) == text


@given(value=st.integers(0, 0xFFFF_FFFF))
def test_words_to_int_is_high_word_first(value: int) -> None:
    assert codec.int_to_words(value, 2) == [value >> 16, value & 0xFFFF]
    assert codec.words_to_int([value >> 16, value & 0xFFFF]) == value


def test_voltage_vector_from_the_table() -> None:
    # 23145 in the U32 at 0xC558 (V/100) is 231.45 V.
    reg = BY_NAME["phase1_voltage"]
    assert reg.address == 0xC558
    raw = codec.decode(reg.dtype, [0x0000, 23145])
    assert raw == 23145
    assert compute(VALUE_BY_KEY["voltage_l1"], {reg.name: raw}) == 231.45


def test_soco_vector_from_the_table() -> None:
    assert codec.decode("STRING_16", [0x0053, 0x004F, 0x0043, 0x004F]) == "SOCO"
    assert codec.encode("STRING_16", "SOCO", 4) == [0x0053, 0x004F, 0x0043, 0x004F]


def test_string_norm_vector() -> None:
    words = [0x434F, 0x554E, 0x5449, 0x5320, 0x4532, 0x3800, 0x0000, 0x0000]
    assert codec.decode("STRING_NORM", words) == "COUNTIS E28"
    assert codec.encode("STRING_NORM", "COUNTIS E28", 8) == words
    padded = [0x434F, 0x554E, 0x5449, 0x5320, 0x4532, 0x3820, 0x2020, 0x2020]
    assert codec.decode("STRING_NORM", padded) == "COUNTIS E28"


def test_negative_s32_power_vector() -> None:
    # -123 counts of 10 W: export of 1230 W on the S32 at 0xC568.
    reg = BY_NAME["total_active_power"]
    assert reg.dtype == "S32"
    raw = codec.decode("S32", [0xFFFF, 0xFF85])
    assert raw == -123
    assert compute(VALUE_BY_KEY["power"], {reg.name: raw}) == -1230
    assert codec.encode("S32", -1) == [0xFFFF, 0xFFFF]
    assert codec.decode("S32", [0x8000, 0x0000]) == -0x8000_0000


def test_negative_s16_power_factor_vector() -> None:
    assert codec.decode("S16", [0xFC18]) == -1000  # PF -1.000 (leading)


def test_u8_low_byte_vector() -> None:
    assert codec.decode("U8", [0x0002]) == 2
    assert codec.decode("U8", [0xAB02]) == 2
    assert codec.decode("U8_HEX", [0x0120]) == 0x20


def test_u64_hex_vector() -> None:
    words = [0x0123, 0x4567, 0x89AB, 0xCDEF]
    assert codec.decode("U64_HEX", words) == 0x0123_4567_89AB_CDEF


@pytest.mark.parametrize(
    ("dtype", "words"),
    [
        ("U16", []),
        ("U16", [1, 2]),
        ("U32", [1]),
        ("S32", [1, 2, 3]),
        ("U64_HEX", [1, 2, 3]),
        ("U16", [0x10000]),
        ("U32", [0, -1]),
        ("STRING_16", [0x10000]),
        ("STRING_NORM", [-1]),
        ("F32", [0, 0]),
    ],
)
def test_decode_errors(dtype: str, words: list[int]) -> None:
    with pytest.raises(CodecError):
        codec.decode(dtype, words)


@pytest.mark.parametrize(
    ("dtype", "value", "words"),
    [
        ("U8", 256, None),
        ("U8", -1, None),
        ("U16", 0x10000, None),
        ("S16", 0x8000, None),
        ("S16", -0x8001, None),
        ("U32", -1, None),
        ("S32", 0x8000_0000, None),
        ("U64_HEX", 1 << 64, None),
        ("U16", True, None),
        ("U16", 1.5, None),
        ("U16", "1", None),
        ("U32", 1, 1),
        ("F32", 1, None),
        ("STRING_16", "SOCOM", 4),
        ("STRING_16", "SOCO", None),
        ("STRING_16", 1, 4),
        ("STRING_NORM", "é", 8),
        ("STRING_NORM", "x" * 17, 8),
    ],
)
def test_encode_errors(dtype: str, value: object, words: int | None) -> None:
    with pytest.raises(CodecError):
        codec.encode(dtype, value, words)  # type: ignore[arg-type]


def test_codec_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="needs 2 words"):
        codec.decode("U32", [1])
