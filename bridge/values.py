"""Pure conversion of decoded registers into published values (the value-key contract)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from bridge.codec import Value
from bridge.entities import SENSOR_BY_KEY, Enumerated, Scaled, SensorSpec, Source, WithResidual
from bridge.errors import ProtocolError
from bridge.models import ValueType
from bridge.registers import BY_NAME, Register

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
        for reg in source_registers(SENSOR_BY_KEY[key].source):
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


def compute(spec: SensorSpec, raw: Mapping[str, Value]) -> ValueType:
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
    """Published values for ``keys`` from decoded registers."""
    return {key: compute(SENSOR_BY_KEY[key], raw) for key in keys}
