"""Pure conversion between Modbus register words and values, for every type of the table.

Words are 16-bit unsigned integers; multi-word values are big-endian, high word first
(OpenEMS, tested on E27/E28 hardware, and the other public drivers agree).
"""

from __future__ import annotations

from collections.abc import Sequence

from countis.errors import CodecError

Value = int | str

#: Number of words each fixed-size type occupies; strings take the table's word count.
TYPE_WORDS: dict[str, int] = {
    "U8": 1,
    "U8_HEX": 1,
    "U16": 1,
    "U16_HEX": 1,
    "S16": 1,
    "U32": 2,
    "S32": 2,
    "U64_HEX": 4,
}
STRING_TYPES = frozenset({"STRING_16", "STRING_NORM"})
SIGNED_TYPES = frozenset({"S16", "S32"})


def _check_words(words: Sequence[int], count: int | None, dtype: str) -> None:
    if count is not None and len(words) != count:
        msg = f"{dtype} needs {count} words, got {len(words)}"
        raise CodecError(msg)
    for word in words:
        if not 0 <= word <= 0xFFFF:
            msg = f"register word out of range: {word}"
            raise CodecError(msg)


def words_to_int(words: Sequence[int], *, signed: bool = False) -> int:
    """Join words (high word first) into one integer."""
    value = 0
    for word in words:
        value = (value << 16) | word
    bits = 16 * len(words)
    if signed and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


def int_to_words(value: int, count: int, *, signed: bool = False) -> list[int]:
    """Split an integer into ``count`` words, high word first."""
    bits = 16 * count
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not low <= value <= high:
        msg = f"{value} does not fit in {count} {'signed' if signed else 'unsigned'} words"
        raise CodecError(msg)
    value &= (1 << bits) - 1
    return [(value >> (16 * (count - 1 - i))) & 0xFFFF for i in range(count)]


def decode(dtype: str, words: Sequence[int]) -> Value:
    """Decode the words of one register of type ``dtype`` (the table's spelling)."""
    if dtype == "STRING_16":
        # One ASCII character in the low byte of each register ("SOCO" at 0xC350).
        _check_words(words, None, dtype)
        return "".join(chr(w & 0xFF) for w in words).replace("\x00", " ").strip()
    if dtype == "STRING_NORM":
        # Two characters per register, high byte first; NUL padding shown as space.
        _check_words(words, None, dtype)
        raw = b"".join(w.to_bytes(2, "big") for w in words)
        return raw.decode("latin-1").replace("\x00", " ").strip()
    count = TYPE_WORDS.get(dtype)
    if count is None:
        msg = f"unknown data type {dtype!r}"
        raise CodecError(msg)
    _check_words(words, count, dtype)
    if dtype in ("U8", "U8_HEX"):
        # 8-bit values live in the low byte of their register.
        return words[0] & 0xFF
    return words_to_int(words, signed=dtype in SIGNED_TYPES)


def encode(dtype: str, value: Value, words: int | None = None) -> list[int]:
    """Encode ``value`` as register words of type ``dtype``.

    ``words`` is the register's word count; it is required for strings.
    """
    if dtype in STRING_TYPES:
        if not isinstance(value, str) or words is None:
            msg = f"{dtype} needs a str value and a word count"
            raise CodecError(msg)
        return _encode_string(dtype, value, words)
    if not isinstance(value, int) or isinstance(value, bool):
        msg = f"{dtype} needs an int value, got {value!r}"
        raise CodecError(msg)
    count = TYPE_WORDS.get(dtype)
    if count is None:
        msg = f"unknown data type {dtype!r}"
        raise CodecError(msg)
    if words is not None and words != count:
        msg = f"{dtype} occupies {count} words, not {words}"
        raise CodecError(msg)
    if dtype in ("U8", "U8_HEX"):
        if not 0 <= value <= 0xFF:
            msg = f"{value} does not fit in {dtype}"
            raise CodecError(msg)
        return [value]
    return int_to_words(value, count, signed=dtype in SIGNED_TYPES)


def _encode_string(dtype: str, value: str, words: int) -> list[int]:
    try:
        raw = value.encode("ascii")
    except UnicodeEncodeError as err:
        msg = f"{dtype} holds ASCII only: {value!r}"
        raise CodecError(msg) from err
    if dtype == "STRING_16":
        if len(raw) > words:
            msg = f"{value!r} longer than {words} characters"
            raise CodecError(msg)
        return list(raw.ljust(words, b"\x00"))
    if len(raw) > 2 * words:
        msg = f"{value!r} longer than {2 * words} characters"
        raise CodecError(msg)
    padded = raw.ljust(2 * words, b"\x00")
    return [int.from_bytes(padded[i : i + 2], "big") for i in range(0, len(padded), 2)]
