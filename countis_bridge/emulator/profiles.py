"""Load profiles: what the emulated meter measures at a given time (pure, seeded).

A profile turns simulated time into phase voltages, phase currents, the load angle and
the frequency (see ``physics`` for the conventions). Everything depends only on the seed
and the time, except the random walk, which walks forward from where it was.

* ``constant``: fixed currents, power factor and 230 V / 50 Hz (deterministic tests).
* ``daily``: a household/office day: night base load, morning and evening peaks,
  inductive by day and capacitive at night.
* ``random_walk``: a mean-reverting random walk of the load and of the angle.
* ``pv``: the daily curve minus a photovoltaic plant: export around midday (P < 0).
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass

from countis.errors import ConfigError

from countis_bridge.emulator.physics import Triple

MAX_CURRENT = 80.0  # A: the E27/E28 connects directly up to 80 A
NOMINAL_VOLTAGE = 230.0
NOMINAL_FREQUENCY = 50.0
_DAY = 86400.0
_TAU = 2.0 * math.pi
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class Sample:
    """What a profile says at one instant."""

    voltages: Triple
    currents: Triple
    angle: float  # degrees, load convention, export already included (beyond +-90)
    frequency: float


def noise(seed: int, index: int, stream: int) -> float:
    """A reproducible pseudo-random number in [-1, 1) for (seed, index, stream)."""
    x = (
        seed * 0x9E3779B97F4A7C15 + index * 0xBF58476D1CE4E5B9 + stream * 0x94D049BB133111EB
    ) & _MASK64
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _MASK64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _MASK64
    x ^= x >> 31
    return (x >> 11) / float(1 << 52) - 1.0


class Profile(ABC):
    """A load profile: simulated time -> measured quantities."""

    name: str = ""

    @abstractmethod
    def sample(self, t: float) -> Sample:
        """The quantities at simulated time ``t`` (Unix seconds)."""


class ConstantProfile(Profile):
    """Fixed load: ``current`` A on every phase (times ``imbalance``), fixed power factor."""

    name = "constant"

    def __init__(
        self,
        *,
        current: float = 10.0,
        power_factor: float = 0.9,
        inductive: bool = True,
        export: bool = False,
        voltage: float = NOMINAL_VOLTAGE,
        frequency: float = NOMINAL_FREQUENCY,
        imbalance: Triple = (1.0, 1.0, 1.0),
    ) -> None:
        """Describe the load; the defaults give 2070 W per phase (230 V, 10 A, PF 0.9)."""
        if not 0.0 <= power_factor <= 1.0:
            msg = f"power factor must be within 0..1, not {power_factor}"
            raise ConfigError(msg)
        angle = math.degrees(math.acos(power_factor))
        angle = angle if inductive else -angle
        currents = tuple(min(MAX_CURRENT, max(0.0, current * k)) for k in imbalance)
        self._sample = Sample(
            voltages=(voltage, voltage, voltage),
            currents=(currents[0], currents[1], currents[2]),
            angle=angle + 180.0 if export else angle,
            frequency=frequency,
        )

    def sample(self, t: float) -> Sample:
        """Always the same quantities."""
        return self._sample


class _Varying(Profile):
    """A grid with small voltage/frequency variations and a load given by ``load``."""

    def __init__(self, seed: int, utc_offset: float = 0.0) -> None:
        rng = random.Random(seed)
        self.seed = seed
        self.utc_offset = utc_offset
        self._v_phase = [rng.uniform(0.0, _TAU) for _ in range(6)]
        self._f_phase = (rng.uniform(0.0, _TAU), rng.uniform(0.0, _TAU))
        self._ripple = (rng.uniform(0.0, _TAU), rng.uniform(0.0, _TAU), rng.uniform(0.0, _TAU))
        # Unequal phases make a neutral current; kept within +-8 %.
        self._imbalance = (1.0, 1.0 + rng.uniform(-0.08, 0.08), 1.0 + rng.uniform(-0.08, 0.08))

    @abstractmethod
    def load(self, t: float) -> tuple[float, float]:
        """Signed phase-1 current (A, < 0 = export) and the load angle (deg, + inductive)."""

    def sample(self, t: float) -> Sample:
        """Grid and load at ``t``."""
        current, angle = self.load(t)
        magnitude = abs(current)
        currents = tuple(min(MAX_CURRENT, magnitude * k) for k in self._imbalance)
        ph = self._v_phase
        slow, fast = _TAU * t / 21600.0, _TAU * t / 130.0
        voltages = tuple(
            NOMINAL_VOLTAGE + 2.5 * math.sin(slow + ph[n]) + 0.7 * math.sin(fast + ph[n + 3])
            for n in range(3)
        )
        frequency = (
            NOMINAL_FREQUENCY
            + 0.03 * math.sin(_TAU * t / 900.0 + self._f_phase[0])
            + 0.008 * math.sin(_TAU * t / 37.0 + self._f_phase[1])
        )
        return Sample(
            voltages=(voltages[0], voltages[1], voltages[2]),
            currents=(currents[0], currents[1], currents[2]),
            angle=angle + 180.0 if current < 0.0 else angle,
            frequency=frequency,
        )

    def _hour(self, t: float) -> float:
        return ((t + self.utc_offset) % _DAY) / 3600.0

    def _day_factor(self, t: float, stream: int, spread: float) -> float:
        """A factor 1 +- spread that changes from one (local) day to the next."""
        day = math.floor((t + self.utc_offset) / _DAY)
        return 1.0 + spread * noise(self.seed, day, stream)


def _bump(hour: float, centre: float, width: float) -> float:
    """A bell curve over the hour of day, wrapping around midnight."""
    distance = min(abs(hour - centre), 24.0 - abs(hour - centre))
    return math.exp(-0.5 * (distance / width) ** 2)


class DailyProfile(_Varying):
    """A day of consumption: base load, morning and evening peaks; PF varies with the day."""

    name = "daily"

    def household(self, t: float) -> float:
        """Consumption current on phase 1 (A)."""
        h = self._hour(t)
        current = (
            3.0 + 12.0 * _bump(h, 7.5, 1.2) + 6.0 * _bump(h, 12.5, 1.5) + 20.0 * _bump(h, 19.5, 1.8)
        ) * self._day_factor(t, 1, 0.12)
        current += 0.8 * math.sin(_TAU * t / 420.0 + self._ripple[0])
        current += 0.5 * math.sin(_TAU * t / 97.0 + self._ripple[1])
        return max(0.5, current)

    def angle(self, t: float) -> float:
        """Inductive (up to 40 deg) around mid-afternoon, capacitive from ~22 h to ~6 h."""
        h = self._hour(t)
        return 15.0 + 25.0 * math.cos(_TAU * (h - 14.0) / 24.0)

    def load(self, t: float) -> tuple[float, float]:
        """Household consumption only."""
        return self.household(t), self.angle(t)


class PvProfile(DailyProfile):
    """The daily curve minus a PV plant (peak ~28 A per phase at 13 h): midday export."""

    name = "pv"

    def pv(self, t: float) -> float:
        """PV production current on phase 1 (A)."""
        h = self._hour(t)
        if not 6.0 < h < 20.0:
            return 0.0
        clouds = 0.85 + 0.15 * math.sin(_TAU * t / 1800.0 + self._ripple[2])
        return 28.0 * math.sin(math.pi * (h - 6.0) / 14.0) * clouds * self._day_factor(t, 2, 0.2)

    def load(self, t: float) -> tuple[float, float]:
        """Net current: negative (export) when production exceeds consumption."""
        return self.household(t) - self.pv(t), self.angle(t)


class RandomWalkProfile(_Varying):
    """Load and angle follow mean-reverting random walks, knots every 10 s, interpolated."""

    name = "random_walk"
    STEP = 10.0  # s between knots
    _CURRENT = (18.0, 0.02, 1.5, 0.5, 70.0)  # mean, reversion, step sigma, min, max
    _ANGLE = (15.0, 0.02, 3.0, -35.0, 50.0)

    def __init__(self, seed: int, utc_offset: float = 0.0) -> None:
        """Start both walks at their means; the walk advances with time only."""
        super().__init__(seed, utc_offset)
        self._knot: int | None = None
        self._now = (self._CURRENT[0], self._ANGLE[0])
        self._next = self._now

    def _walk(self, index: int, value: float, stream: int, spec: tuple[float, ...]) -> float:
        mean, reversion, sigma, low, high = spec
        step = (noise(self.seed, index, stream) + noise(self.seed, index, stream + 1)) * sigma
        return min(high, max(low, value + reversion * (mean - value) + step))

    def _step(self, index: int, values: tuple[float, float]) -> tuple[float, float]:
        return (
            self._walk(index, values[0], 10, self._CURRENT),
            self._walk(index, values[1], 20, self._ANGLE),
        )

    def load(self, t: float) -> tuple[float, float]:
        """The walk interpolated at ``t``."""
        knot = math.floor(t / self.STEP)
        if self._knot is None or knot - self._knot > 5000:
            # First use, or a jump too long to walk: restart near the mean.
            self._knot = knot
            self._now = self._step(knot, (self._CURRENT[0], self._ANGLE[0]))
            self._next = self._step(knot + 1, self._now)
        while self._knot < knot:
            self._knot += 1
            self._now, self._next = self._next, self._step(self._knot + 1, self._next)
        # Times before the current knot (rare) use the knot's value.
        frac = min(1.0, max(0.0, t / self.STEP - self._knot))
        return (
            self._now[0] + (self._next[0] - self._now[0]) * frac,
            self._now[1] + (self._next[1] - self._now[1]) * frac,
        )


PROFILE_NAMES: tuple[str, ...] = ("constant", "daily", "random_walk", "pv")


def make_profile(name: str, *, seed: int, utc_offset: float = 0.0) -> Profile:
    """The profile called ``name`` (see ``PROFILE_NAMES``)."""
    if name == "constant":
        return ConstantProfile()
    if name == "daily":
        return DailyProfile(seed, utc_offset)
    if name == "random_walk":
        return RandomWalkProfile(seed, utc_offset)
    if name == "pv":
        return PvProfile(seed, utc_offset)
    msg = f"unknown profile {name!r} (choose from {', '.join(PROFILE_NAMES)})"
    raise ConfigError(msg)
