"""Pure conversion of decoded registers into published values (the value-key contract)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from countis.catalogue import VALUE_BY_KEY, Enumerated, Scaled, Source, ValueSpec, WithResidual
from countis.codec import Value
from countis.errors import ProtocolError
from countis.models import ValueType
from countis.registers import BY_NAME, Register

OVERFLOW_VALUE = "overflow_value"


def _decimals(step: float) -> int:
    """Decimal places that represent multiples of ``step`` exactly (0.01 -> 2, 10 -> 0)."""
    return max(0, -math.floor(math.log10(step) + 1e-9))


def _number(value: float, step: float) -> float | int:
    places = _decimals(step)
    return round(value) if places == 0 else round(value, places)


def source_registers(source: Source) -> tuple[Register, ...]:
    """The registers a source needs, including the overflow block when it counts wraps."""
    names: list[str] = [source.register]
    if isinstance(source, WithResidual):
        names.append(source.residual)
    if isinstance(source, Scaled | WithResidual) and source.overflow:
        names += [source.overflow, OVERFLOW_VALUE]
    return tuple(BY_NAME[name] for name in names)


def registers_for(keys: Iterable[str]) -> tuple[Register, ...]:
    """Every register needed to produce the given value keys (deduplicated, ordered)."""
    seen: dict[str, Register] = {}
    for key in keys:
        for reg in source_registers(VALUE_BY_KEY[key].source):
            seen.setdefault(reg.name, reg)
    return tuple(sorted(seen.values(), key=lambda r: r.address))


def _int(raw: Mapping[str, Value], name: str) -> int:
    value = raw.get(name)
    if not isinstance(value, int):
        msg = f"register {name} missing or not numeric"
        raise ProtocolError(msg)
    return value


def _wraps(raw: Mapping[str, Value], overflow: str | None, divisor: float) -> float:
    """Energy lost to counter wraps, in the published unit (the 0x9000 block)."""
    if overflow is None:
        return 0.0
    wrap = BY_NAME[OVERFLOW_VALUE]
    assert wrap.scale is not None
    return _int(raw, overflow) * _int(raw, OVERFLOW_VALUE) * wrap.scale / divisor


def compute(spec: ValueSpec, raw: Mapping[str, Value]) -> ValueType:
    """The published value of one spec from decoded registers ``raw`` (name -> value)."""
    source = spec.source
    if isinstance(source, Enumerated):
        return dict(source.mapping).get(_int(raw, source.register), source.default)
    reg = BY_NAME[source.register]
    scale = reg.scale if reg.scale is not None else 1.0
    if isinstance(source, Scaled):
        step = scale / source.divisor
        value = _int(raw, source.register) * step + _wraps(raw, source.overflow, source.divisor)
        return _number(value, step)
    whole = _int(raw, source.register)
    if source.signed and whole >= 1 << 31:
        whole -= 1 << 32
    residual = BY_NAME[source.residual]
    assert residual.scale is not None
    step = residual.scale / source.divisor
    value = (
        whole * scale / source.divisor
        + _int(raw, source.residual) * step
        + _wraps(raw, source.overflow, source.divisor)
    )
    return _number(value, step)


def compute_values(keys: Iterable[str], raw: Mapping[str, Value]) -> dict[str, ValueType]:
    """Published values for ``keys`` from decoded registers (same results as ``compute``)."""
    conversion = compile_values(tuple(keys))
    return conversion([_int(raw, name) for name in conversion.registers])


# ---------------------------------------------------------------- compiled conversions
# A poller converts the same key set every second for ever: work out each value's step,
# decimals and wrap factor once per key set, then a poll is one small closure per value
# over the raw integers by position (no spec or register lookups, no log10). Every
# closure evaluates the same arithmetic as ``compute``, in the same order, so results
# are identical to the last bit.

#: Raw register values (decoded integers) by position -> one published value.
Converter = Callable[[Sequence[int]], ValueType]


@dataclass(frozen=True, slots=True, kw_only=True)
class Conversion:
    """Values of a key set from raw register integers given by position (``registers``)."""

    keys: tuple[str, ...]
    registers: tuple[str, ...]  # register names, in the order the raw integers come
    converters: tuple[Converter, ...]  # one per key

    def __call__(self, raw: Sequence[int]) -> dict[str, ValueType]:
        """The published values; ``raw[i]`` is the integer of ``registers[i]``."""
        return {key: convert(raw) for key, convert in zip(self.keys, self.converters, strict=True)}


@lru_cache(maxsize=128)
def compile_values(keys: tuple[str, ...], registers: tuple[str, ...] | None = None) -> Conversion:
    """The conversion of ``keys``; raw integers in ``registers`` order (default: by address).

    Cached: callers ask for the same few key sets on every poll.
    """
    needed = tuple(reg.name for reg in registers_for(keys))  # KeyError for an unknown key
    if registers is None:
        registers = needed
    elif missing := set(needed) - set(registers):
        msg = f"registers {sorted(missing)} are needed but not given"
        raise ValueError(msg)
    index = {name: i for i, name in enumerate(registers)}
    converters = tuple(_converter(VALUE_BY_KEY[key].source, index) for key in keys)
    return Conversion(keys=keys, registers=registers, converters=converters)


def _converter(source: Source, index: Mapping[str, int]) -> Converter:
    """One value's closure over the raw integers (the arithmetic of ``compute``)."""
    if isinstance(source, Enumerated):
        i, mapping, default = index[source.register], dict(source.mapping), source.default
        return lambda raw: mapping.get(raw[i], default)
    if isinstance(source, Scaled):
        return _scaled(source, index)
    return _with_residual(source, index)


def _scaled(source: Scaled, index: Mapping[str, int]) -> Converter:
    reg = BY_NAME[source.register]
    i = index[reg.name]
    step = (reg.scale if reg.scale is not None else 1.0) / source.divisor
    places = _decimals(step)
    wraps = _wrap_indices(source.overflow, index)
    if wraps is None and reg.words <= 2 and (m := _whole_steps(step, places)) is not None:
        # The hot path (every realtime value): the exact decimal, no float round().
        if places == 0:
            return lambda raw: raw[i] * m
        unit = 10**places
        return lambda raw: raw[i] * m / unit
    if wraps is None:
        if places == 0:
            return lambda raw: round(raw[i] * step)
        return lambda raw: round(raw[i] * step, places)
    c, w, wrap_scale = wraps
    divisor = source.divisor
    if places == 0:
        return lambda raw: round(raw[i] * step + raw[c] * raw[w] * wrap_scale / divisor)
    return lambda raw: round(raw[i] * step + raw[c] * raw[w] * wrap_scale / divisor, places)


def _whole_steps(step: float, places: int) -> int | None:
    """``m`` with ``step == m / 10**places`` (to float precision), if ``m`` is small.

    Then for any raw count of up to 32 bits ``round(raw * step, places)`` is exactly the
    decimal ``raw * m / 10**places``: the product's float error stays below an eighth
    of the last place, so ``round`` finds that decimal and returns the double nearest to
    it, which is what the integer true division gives (correctly rounded), at a fifth
    of the cost. At ``places == 0`` both are the integer ``raw * m``.
    """
    scaled = step * 10**places
    m = round(scaled)
    return m if 0 < m < 1 << 16 and math.isclose(scaled, m, rel_tol=1e-12) else None


def _with_residual(source: WithResidual, index: Mapping[str, int]) -> Converter:
    reg, residual = BY_NAME[source.register], BY_NAME[source.residual]
    assert residual.scale is not None
    i, r, signed, divisor = index[reg.name], index[residual.name], source.signed, source.divisor
    scale = reg.scale if reg.scale is not None else 1.0
    step = residual.scale / divisor
    places = _decimals(step)
    wraps = _wrap_indices(source.overflow, index)

    def convert(raw: Sequence[int]) -> float | int:
        whole = raw[i]
        if signed and whole >= 1 << 31:
            whole -= 1 << 32
        value = whole * scale / divisor + raw[r] * step
        if wraps is not None:
            value += raw[wraps[0]] * raw[wraps[1]] * wraps[2] / divisor
        return round(value) if places == 0 else round(value, places)

    return convert


def _wrap_indices(overflow: str | None, index: Mapping[str, int]) -> tuple[int, int, float] | None:
    """Positions of a wrap count and of the overflow value, and the value's scale."""
    if overflow is None:
        return None
    wrap = BY_NAME[OVERFLOW_VALUE]
    assert wrap.scale is not None
    return index[overflow], index[OVERFLOW_VALUE], wrap.scale
