"""Fault injection for one emulated meter, switchable at run time."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any


class Faults:
    """The faults of one meter. Setters switch a fault; ``clear()`` switches all off.

    Communication faults (the server applies them to every request of the meter's unit):
    ``no_answer`` swallows requests, ``delay`` answers after N seconds, ``exception``
    answers every request with a Modbus exception code (nothing is applied).
    Value faults (the meter applies them to what the registers show): ``freeze`` stops
    the registers while the model goes on, ``zero_counters`` makes every counter register
    read 0, ``lower_counters`` makes the lifetime energy registers read a lower value.
    ``drop_connections`` closes the current connections once; new ones are accepted.
    """

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        """Start without faults; ``on_change`` runs after a value fault changes."""
        self._on_change = on_change
        self._droppers: list[Callable[[], int]] = []
        self.delay_seconds: float | None = None
        self.silent = False
        self.exception_code: int | None = None
        self.frozen = False
        self.zeroed = False
        self.lowered = False
        #: Any communication fault on (one attribute test on the server's hot path).
        self.active = False

    def _communication_changed(self) -> None:
        self.active = self.silent or self.delay_seconds is not None or bool(self.exception_code)

    def _values_changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def add_dropper(self, dropper: Callable[[], int]) -> Callable[[], None]:
        """Register how to close this meter's connections; returns the unregister call."""
        self._droppers.append(dropper)
        return lambda: self._droppers.remove(dropper)

    def drop_connections(self) -> int:
        """Close every current connection of this meter now; returns how many."""
        return sum(dropper() for dropper in list(self._droppers))

    def delay(self, seconds: float | None) -> None:
        """Answer every request ``seconds`` late (None = on time)."""
        if seconds is not None and (not math.isfinite(seconds) or seconds < 0):
            msg = f"delay must be a non-negative number of seconds, not {seconds}"
            raise ValueError(msg)
        self.delay_seconds = seconds
        self._communication_changed()

    def no_answer(self, on: bool = True) -> None:
        """Swallow every request without an answer (the client times out)."""
        self.silent = on
        self._communication_changed()

    def exception(self, code: int | None) -> None:
        """Answer every request with Modbus exception ``code`` (e.g. 4, 6); None = off."""
        if code is not None and not 1 <= code <= 0xFF:
            msg = f"exception code must be 1..255, not {code}"
            raise ValueError(msg)
        self.exception_code = code
        self._communication_changed()

    def freeze(self, on: bool = True) -> None:
        """Stop the registers where they are; the model goes on (values jump on release)."""
        self.frozen = on
        self._values_changed()

    def zero_counters(self, on: bool = True) -> None:
        """Every counter register (energies, balance, wrap counts, tariff time) reads 0."""
        self.zeroed = on
        self._values_changed()

    def lower_counters(self, on: bool = True) -> None:
        """Lifetime energy registers read 10 % (at least 1 kWh) lower than the model."""
        self.lowered = on
        self._values_changed()

    def clear(self) -> None:
        """Switch every fault off."""
        self.delay_seconds = None
        self.silent = False
        self.exception_code = None
        self.frozen = self.zeroed = self.lowered = False
        self._communication_changed()
        self._values_changed()

    def as_dict(self) -> dict[str, Any]:
        """The current faults, in the control API's JSON form."""
        return {
            "delay": self.delay_seconds,
            "no_answer": self.silent,
            "exception": self.exception_code,
            "freeze": self.frozen,
            "zero_counters": self.zeroed,
            "lower_counters": self.lowered,
        }
