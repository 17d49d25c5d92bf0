"""Frozen value objects that cross module boundaries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

#: A published value: numbers as numbers, a few enumerations as strings.
ValueType = float | int | str


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterIdentity:
    """What a meter says about itself (product identification block + MID flag)."""

    vendor: str
    product_name: str
    extended_name: str
    model: str  # "E27", "E28" (or "E23"/"E24" behind a gateway)
    serial_number: str
    firmware_version: str
    table_version: str
    mid: bool

    @property
    def name(self) -> str:
        """Human name of the product, e.g. ``COUNTIS E28``."""
        return f"COUNTIS {self.model}"


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterReading:
    """Values read from one meter at one moment, keyed by the value-key contract."""

    timestamp: float  # Unix time of the start of the poll
    values: Mapping[str, ValueType] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Freeze the mapping so a reading cannot change after it was made."""
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))


class PartialAction(StrEnum):
    """Partial-meter commands: reset runs in the meter, start/stop in the bridge."""

    START = "start"
    STOP = "stop"
    RESET = "reset"
