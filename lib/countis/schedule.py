"""When to poll one meter, and which groups each poll reads (pure: the time is passed in).

Two groups (realtime, energy) have their own intervals. Deadlines advance by whole
intervals from the first one (no drift); a slot that passed while a poll was still running
is skipped and counted as missed, never made up in a burst.

A fleet spreads its work: meter *i* gets a phase within the realtime interval and an energy
offset of ``i mod (energy / realtime)`` realtime intervals (:func:`energy_offset`), so each
realtime tick of the fleet carries its share of the energy reads instead of every meter
reading energies in the same second. The first poll reads every group (a full first
state); failures, retries and wake-ups never move the grid, so the spread survives an
outage of the whole fleet.

While a meter fails, attempts leave the grid: the first retries come at the realtime
cadence, then with capped exponential backoff (:class:`Backoff`, with jitter so a fleet
does not retry in step). The cap is small (a fraction more than a realtime interval by
default), so a meter that answers again is back within two poll intervals.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

#: A deadline this close counts as due (timer granularity).
EARLY = 1e-3


@dataclass(slots=True)
class Slot:
    """The deadlines of one poll group."""

    interval: float
    due: float

    def advance(self, now: float) -> int:
        """Step to the next deadline after ``now``; returns how many were skipped."""
        self.due += self.interval
        if self.due >= now:
            return 0
        missed = int((now - self.due) // self.interval) + 1
        self.due += missed * self.interval
        return missed


def energy_offset(index: int, realtime: float, energy: float) -> float:
    """Seconds from meter ``index``'s first realtime slot to its energy grid.

    Whole realtime intervals, so energy reads ride on realtime ticks: ``index mod k``
    with ``k`` realtime ticks per energy interval. Consecutive meters (which the daemon
    also spreads over the realtime interval) land on consecutive ticks.
    """
    ticks = max(1, int(energy / realtime + 1e-9)) if realtime > 0 else 1
    return (index % ticks) * realtime


class Backoff:
    """Capped exponential delays with a little jitter (a fleet must not retry in step)."""

    def __init__(
        self, first: float, cap: float, jitter: Callable[[float, float], float] = random.uniform
    ) -> None:
        """Delays ``first``, ``2 first``, ... up to ``cap`` seconds, each times 0.9-1.1."""
        self.first = first
        self.cap = max(cap, first)
        self._jitter = jitter
        self._attempt = 0

    def next(self) -> float:
        """The next delay."""
        delay = min(self.cap, self.first * 2.0**self._attempt)
        self._attempt = min(self._attempt + 1, 32)
        return delay * self._jitter(0.9, 1.1)

    def reset(self) -> None:
        """Back to the first delay."""
        self._attempt = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Due:
    """What one poll reads, and which grid slots it serves."""

    realtime: bool
    energy: bool
    realtime_slot: bool  # the realtime grid slot was due
    energy_slot: bool  # the energy grid slot was due


class PollSchedule:
    """The poll grid of one meter, its retries and its wake-ups."""

    def __init__(
        self,
        *,
        realtime: float,
        energy: float,
        start: float,
        energy_offset: float = 0.0,
        retry_cap: float | None = None,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        """A grid whose first realtime slot is ``start``; energies ``energy_offset`` later."""
        self.realtime = Slot(realtime, start)
        self.energy = Slot(energy, start + energy_offset)
        self.retry_at: float | None = None  # set while failing: the next attempt, off the grid
        self._backoff = Backoff(realtime, retry_cap or realtime, jitter)
        self._now = False  # wake(): poll at once, off the grid
        self._with_energy = True  # read the energy group with the next poll, due or not

    @property
    def failing(self) -> bool:
        """Whether the last attempt failed."""
        return self.retry_at is not None

    def next_at(self) -> float:
        """When to poll next: at once after a wake-up, the retry while failing, else the grid."""
        if self._now:
            return -math.inf
        if self.retry_at is not None:
            return self.retry_at
        return min(self.realtime.due, self.energy.due)

    def due(self, now: float, *, early: float = EARLY, force: bool = False) -> Due | None:
        """What a poll at ``now`` reads (None: nothing is due yet).

        ``force``: the caller is the scheduler (Home Assistant's coordinator): read the
        realtime group whatever the grid says, and energies when their slot is within
        ``early``.
        """
        rt_slot = self.realtime.due <= now + early
        en_slot = self.energy.due <= now + early
        realtime = rt_slot or self._now or self.retry_at is not None or force
        energy = en_slot or self._with_energy
        if not (realtime or energy):
            return None
        self._now = self._with_energy = False  # a wake-up from now on counts
        return Due(realtime=realtime, energy=energy, realtime_slot=rt_slot, energy_slot=en_slot)

    def succeeded(self, due: Due, now: float) -> int:
        """Advance the served slots past ``now``; returns how many slots were missed.

        After a failure the slots that passed meanwhile are failures, not misses.
        """
        recovering, self.retry_at = self.retry_at is not None, None
        self._backoff.reset()
        missed = 0
        for slot, served in ((self.realtime, due.realtime_slot), (self.energy, due.energy_slot)):
            if recovering:
                if slot.due <= now:
                    slot.advance(now)
            elif served:
                missed += slot.advance(now)
        return missed

    def failed(self, now: float, *, back_off: bool) -> float:
        """An attempt failed: the time of the next one (energies are read with it).

        ``back_off``: the meter counts as offline, so retries slow down (up to the cap);
        before that they follow the realtime cadence.
        """
        self._with_energy = True  # read everything once the meter is back
        delay = self._backoff.next() if back_off else self.realtime.interval
        self.retry_at = now + delay
        return self.retry_at

    def wake(self, *, energy: bool = True) -> None:
        """Poll at once (off the grid), the energy group too unless ``energy`` is False."""
        self._now = True
        self._with_energy = self._with_energy or energy
