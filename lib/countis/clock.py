"""Time for a meter session: wall time stamps readings, loop time drives the schedule.

Injected, so tests run a session on a manual clock, and the demo runs emulated meters
faster than real time (:class:`ScaledClock`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Time for the session: wall time stamps readings, monotonic time drives the schedule."""

    def time(self) -> float:
        """Seconds of the meter's time (Unix time; the counter guard judges rates by it)."""
        ...

    def monotonic(self) -> float:
        """Seconds of the schedule's clock (the event loop's)."""
        ...


class SystemClock:
    """The wall clock and the running event loop's clock."""

    def time(self) -> float:
        """Unix time."""
        return time.time()

    def monotonic(self) -> float:
        """The event loop's time (what its timers use)."""
        return asyncio.get_running_loop().time()


class ScaledClock(SystemClock):
    """Wall time running ``speed`` times faster from now on (an emulated meter's time).

    The demo and tests run emulated meters faster than real time; the session judges
    their counters, and follows tariff plans, by the same accelerated time.
    """

    def __init__(self, speed: float) -> None:
        """Start at the current Unix time."""
        self.speed = speed
        self._start = time.time()

    def time(self) -> float:
        """Seconds of the accelerated time."""
        return self._start + (time.time() - self._start) * self.speed
