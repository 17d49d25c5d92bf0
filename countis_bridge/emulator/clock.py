"""Clocks that drive the emulated meter: the wall clock, or a manual one for tests."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Where the meter takes "now" from (seconds; the wall clock gives Unix time)."""

    #: True when time moves only on request (tests): the model then updates on every
    #: change instead of at most once per tick of real time.
    manual: bool
    #: Seconds to add to the clock's time to get local time (the daily load curve).
    utc_offset: float

    def now(self) -> float:
        """Current time in seconds."""
        ...


class SystemClock:
    """Unix time that never jumps: the wall clock at start, then the monotonic clock.

    A wall-clock step (NTP, manual setting) would otherwise stall the model or make it
    integrate a long jump at once.
    """

    manual = False

    def __init__(self) -> None:
        """Anchor to the wall clock; read the local UTC offset (the daily curve)."""
        self.utc_offset = float(time.localtime().tm_gmtoff)
        self._offset = time.time() - time.monotonic()

    def now(self) -> float:
        """Current time in Unix seconds."""
        return time.monotonic() + self._offset


class ManualClock:
    """A clock that moves only when told to: with it nothing in the meter moves by itself."""

    manual = True
    utc_offset = 0.0

    def __init__(self, start: float = 0.0) -> None:
        """Start at ``start`` seconds (0 = 1970-01-01 00:00 UTC, midnight for the profiles)."""
        self._now = float(start)

    def now(self) -> float:
        """The current manual time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (never backwards)."""
        if seconds < 0:
            msg = f"a clock cannot go backwards ({seconds} s)"
            raise ValueError(msg)
        self._now += seconds
