"""The register image: every block of the table, encoded lazily from one model frame.

A :class:`Frame` is what the registers show at one tick (the realtime snapshot, a copy of
the counters, the tariff). Blocks are encoded on first request and cached in the frame,
so a poll of one block costs one ``struct.pack`` per tick. Blocks that never change
(identification, flags, settings, command registers) are encoded once per meter with
:func:`countis.codec.encode`. The dynamic blocks use ``struct`` layouts built from the
table's types (high word first, like the codec; a unit test checks both agree).

Reserved words and write-only command registers read 0. Quantities are rounded to the
table's scale; unsigned 16-bit registers saturate at 0xFFFF (e.g. the 16-bit system
current above 65.535 A: the table gives the register no more room).
"""

from __future__ import annotations

import bisect
import math
import re
import struct
from collections.abc import Callable, Mapping
from typing import Final

from countis.codec import Value, decode, encode
from countis.registers import BLOCKS, REGISTERS, Block, Register

from countis_bridge.emulator.energy import (
    ALL_KEYS,
    EPS,
    RESOLUTION,
    SCOPES,
    TIME_KEYS,
    WRAPPED,
    balance_counts,
    counts,
)
from countis_bridge.emulator.physics import Snapshot

# Blocks sorted by address, for bisection.
SORTED_BLOCKS: Final = tuple(sorted(BLOCKS, key=lambda b: b.start))
_STARTS: Final = [b.start for b in SORTED_BLOCKS]
_ENDS: Final = [b.end for b in SORTED_BLOCKS]
_U32: Final = 0xFFFFFFFF


class Frame:
    """What every register shows at one tick; blocks are encoded on demand and cached."""

    __slots__ = ("_cache", "_static", "counters", "sim_time", "snap", "tariff", "wrap")

    def __init__(
        self,
        *,
        sim_time: float,
        snap: Snapshot,
        counters: dict[str, float],
        tariff: int,
        wrap: int,
        static: Mapping[int, bytes],
    ) -> None:
        """Freeze the model's state of this tick (``counters`` must be a private copy)."""
        self.sim_time = sim_time
        self.snap = snap
        self.counters = counters
        self.tariff = tariff
        self.wrap = wrap  # counter wrap value, in 10 Wh steps
        self._static = static
        self._cache: dict[int, bytes] = {}

    def derive(self, counters: dict[str, float]) -> Frame:
        """The same tick with other counters (fault injection)."""
        return Frame(
            sim_time=self.sim_time,
            snap=self.snap,
            counters=counters,
            tariff=self.tariff,
            wrap=self.wrap,
            static=self._static,
        )

    def block_bytes(self, index: int) -> bytes:
        """The whole block ``SORTED_BLOCKS[index]`` as big-endian register bytes."""
        data = self._cache.get(index)
        if data is None:
            layout = _DYNAMIC.get(index)
            if layout is None:
                data = self._static[index]
            else:
                packer, getters = layout
                data = packer.pack(*[get(self) for get in getters])
            self._cache[index] = data
        return data

    def read(self, address: int, count: int) -> bytes | None:
        """Bytes of ``count`` registers from ``address``; None unless inside one block."""
        index = bisect.bisect_right(_STARTS, address) - 1
        if index < 0 or address + count > _ENDS[index]:
            return None
        offset = 2 * (address - _STARTS[index])
        return self.block_bytes(index)[offset : offset + 2 * count]


def locate(address: int) -> Block | None:
    """The block holding ``address``, if any."""
    index = bisect.bisect_right(_STARTS, address) - 1
    if index < 0 or address >= _ENDS[index]:
        return None
    return SORTED_BLOCKS[index]


# --------------------------------------------------------------------------------------
# Getters: register name -> function(frame) -> raw register integer.
Getter = Callable[[Frame], int]

_STRUCT_CODE = {"U8": "H", "U8_HEX": "H", "U16": "H", "U16_HEX": "H", "S16": "h"}
_STRUCT_CODE |= {"U32": "I", "S32": "i", "U64_HEX": "Q"}
_LIMITS = {"H": (0, 0xFFFF), "h": (-0x8000, 0x7FFF), "I": (0, _U32), "i": (-(1 << 31), _U32 >> 1)}
# The balance is typed U32 in the table but can be negative: two's complement (lead's choice).
_SIGNED_OVERRIDE = {"net_active_energy_balance": "i", "net_reactive_energy_balance": "i"}


def struct_code(reg: Register) -> str:
    """The ``struct`` code of one numeric register."""
    return _SIGNED_OVERRIDE.get(reg.name) or _STRUCT_CODE[reg.dtype]


def _realtime_quantities() -> dict[str, Callable[[Snapshot], float]]:
    """Physical value of each realtime register, before scaling."""
    q: dict[str, Callable[[Snapshot], float]] = {
        "frequency": lambda s: s.frequency,
        "neutral_current": lambda s: s.i_n,
        "total_active_power": lambda s: s.p_total,
        "total_reactive_power": lambda s: s.q_total,
        "total_apparent_power": lambda s: s.s_total,
        "total_power_factor": lambda s: s.pf_total,
        "current_sys_avg": lambda s: s.i_avg,
        "line_voltage_sys_avg": lambda s: s.u_avg,
        "phase_voltage_sys_avg": lambda s: s.v_avg,
    }
    for n, pair in enumerate(("12", "23", "31")):
        q[f"line_voltage_u{pair}"] = lambda s, n=n: s.u[n]  # type: ignore[misc]
    for n in range(3):
        ph = f"phase{n + 1}"
        q[f"{ph}_voltage"] = lambda s, n=n: s.v[n]  # type: ignore[misc]
        q[f"{ph}_current"] = lambda s, n=n: s.i[n]  # type: ignore[misc]
        q[f"{ph}_current_without_ct"] = lambda s, n=n: s.i[n]  # type: ignore[misc]
        q[f"{ph}_active_power"] = lambda s, n=n: s.p[n]  # type: ignore[misc]
        q[f"{ph}_reactive_power"] = lambda s, n=n: s.q[n]  # type: ignore[misc]
        q[f"{ph}_apparent_power"] = lambda s, n=n: s.s[n]  # type: ignore[misc]
        q[f"{ph}_power_factor"] = lambda s, n=n: s.pf[n]  # type: ignore[misc]
    # The 16-bit block repeats some of them.
    for name in list(q):
        q[f"{name}_16bit"] = q[name]
    return q


def _realtime_getter(reg: Register, quantity: Callable[[Snapshot], float]) -> Getter:
    assert reg.scale is not None
    scale = reg.scale
    code = struct_code(reg)
    if code in ("I", "i"):  # 32 bits hold every value the physics can produce
        return lambda f: round(quantity(f.snap) / scale)
    low, high = _LIMITS[code]  # 16-bit registers saturate
    return lambda f: min(high, max(low, round(quantity(f.snap) / scale)))


def counter_key(name: str) -> str | None:
    """The energy counter a register shows (``sum.ea_plus``...), None for other registers."""
    if match := re.fullmatch(r"(e[ar]_(?:plus|minus))_total_m(?:wh|varh)_16bit", name):
        return f"sum.{match.group(1)}"
    base = re.sub(r"_residual$", "", name)
    base = re.sub(r"_(?:kwh|kvarh|kvah|10wh|10varh|10vah)$", "", base)
    head, _, rest = base.partition("_")
    scope = {"total": "sum", "partial": "partial", "t1": "sum.t1", "t2": "sum.t2"}.get(head)
    scope = scope or (head if head in SCOPES else None)
    if scope is None:
        return None
    if rest[:3] in ("t1_", "t2_"):
        scope, rest = f"{scope}.{rest[:2]}", rest[3:]
    key = f"{scope}.{rest}"
    return key if key in ALL_KEYS else None


def _counter_getter(reg: Register, key: str) -> Getter:
    """Whole k-units (scale 1000), residual (0.1), 10 Wh steps (10) or MWh (1e6).

    Written out per case: these run for every register of every energy read.
    """
    eps, step = EPS, RESOLUTION
    mask = 0xFFFF if reg.words == 1 and reg.scale != 0.1 else _U32
    divisor = {1000.0: 100, 10.0: 1, 1e6: 100_000}.get(reg.scale or 0.0)
    if key in WRAPPED:
        if divisor is None:
            return lambda f: _residual(int((f.counters[key] + eps) // step) % f.wrap)
        return lambda f: (int((f.counters[key] + eps) // step) % f.wrap // divisor) & mask
    if divisor is None:
        return lambda f: _residual(int((f.counters[key] + eps) // step))
    return lambda f: (int((f.counters[key] + eps) // step) // divisor) & mask


_OVERFLOW_KEYS = {
    f"overflow_count_{suffix}": key
    for suffix, key in zip(
        ("ea_plus", "er_plus", "ea_minus", "er_minus", "eap", "ea_t1", "ea_t2"),
        WRAPPED,
        strict=True,
    )
}


def _time_getter(tariff: int) -> Getter:
    key = TIME_KEYS[tariff - 1]
    # 0.01 h steps; the epsilon keeps float sums such as 3599.99999 on the right side.
    return lambda f: min(_U32, math.floor((f.counters[key] + 1e-6) / 36.0))


def _residual(steps: int) -> int:
    """The 0.1-unit residual register of a counter in 10 Wh steps."""
    return steps % 100 * 100


def _special_getters() -> dict[str, Getter]:
    g: dict[str, Getter] = {
        "phase_sequence": lambda f: 0,  # 123: the emulator wires its phases clockwise
        "tariff_count": lambda f: 2,
        "tariff_count_c800": lambda f: 2,
        "tariff_in_progress": lambda f: f.tariff,
        "tariff_in_progress_c800": lambda f: f.tariff,
        "overflow_value": lambda f: f.wrap,
        # Whole part floor()ed (two's complement), residual >= 0 (lead's decision).
        "net_active_energy_balance": lambda f: balance_counts(f.counters, "ea") // 100,
        "net_active_energy_balance_residual": lambda f: _residual(balance_counts(f.counters, "ea")),
        "net_reactive_energy_balance": lambda f: balance_counts(f.counters, "er") // 100,
        "net_reactive_energy_balance_residual": lambda f: _residual(
            balance_counts(f.counters, "er")
        ),
    }
    for scope in SCOPES:
        g[f"{scope}_tariff_in_progress"] = lambda f: f.tariff
    for tariff in (1, 2):
        g[f"t{tariff}_time_counter"] = g[f"t{tariff}_time_counter_c800"] = _time_getter(tariff)
    for name, key in _OVERFLOW_KEYS.items():
        g[name] = lambda f, key=key: (counts(f.counters[key]) // f.wrap) & 0xFF  # type: ignore[misc]
    return g


def build_getters() -> dict[str, Getter]:
    """A getter for every register whose value changes with the model."""
    getters = _special_getters()
    realtime = _realtime_quantities()
    for reg in REGISTERS:
        if reg.name in getters:
            continue
        if reg.name in realtime:
            getters[reg.name] = _realtime_getter(reg, realtime[reg.name])
        elif (key := counter_key(reg.name)) is not None:
            getters[reg.name] = _counter_getter(reg, key)
    return getters


GETTERS: Final = build_getters()


def _layout(block: Block) -> tuple[struct.Struct, tuple[Getter, ...]]:
    fmt, getters, address = ">", [], block.start
    for reg in sorted((r for r in REGISTERS if r.block == block.name), key=lambda r: r.address):
        if reg.address > address:
            fmt += f"{2 * (reg.address - address)}x"  # reserved words read 0
        fmt += struct_code(reg)
        getters.append(GETTERS[reg.name])
        address = reg.address + reg.words
    if block.end > address:
        fmt += f"{2 * (block.end - address)}x"
    return struct.Struct(fmt), tuple(getters)


def _is_dynamic(block: Block) -> bool:
    return any(r.name in GETTERS for r in REGISTERS if r.block == block.name)


_DYNAMIC: Final = {i: _layout(b) for i, b in enumerate(SORTED_BLOCKS) if _is_dynamic(b)}


def static_blocks(values: Mapping[str, Value]) -> dict[int, bytes]:
    """Encode the blocks that never change, from register values by name.

    Registers of these blocks missing from ``values`` (write-only commands) read 0.
    """
    out: dict[int, bytes] = {}
    for index, block in enumerate(SORTED_BLOCKS):
        if index in _DYNAMIC:
            continue
        words = [0] * block.words
        for reg in REGISTERS:
            if reg.block == block.name and reg.name in values:
                offset = reg.address - block.start
                words[offset : offset + reg.words] = encode(reg.dtype, values[reg.name], reg.words)
        out[index] = struct.pack(f">{block.words}H", *words)
    return out


def decode_registers(frame: Frame, registers: tuple[Register, ...]) -> dict[str, Value]:
    """Decode registers from a frame exactly as a client would (``values()``)."""
    raw: dict[str, Value] = {}
    for reg in registers:
        data = frame.read(reg.address, reg.words)
        assert data is not None, reg.name
        words = struct.unpack(f">{reg.words}H", data)
        raw[reg.name] = decode(reg.dtype, words)
    return raw
