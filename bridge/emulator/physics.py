"""Pure three-phase physics: phase voltages, currents and one load angle -> every quantity.

Conventions (the lead's decisions, see the register notes):

* ``angle`` is the angle by which each phase current lags its voltage (degrees, load
  convention). 0..90 = import inductive, -90..0 = import capacitive, beyond +-90 = export.
* P = V*I*cos(angle), Q = V*I*sin(angle), S = V*I, so S^2 = P^2 + Q^2 per phase.
* Power factor = |P| / S with sign + when lagging (P*Q > 0) and - when leading (P*Q < 0).
* Phase sequence 123: V1 at 0 deg, V2 at -120 deg, V3 at +120 deg.
* Totals: P, Q, S are sums over the phases (every phase shares the load angle, so the
  total S also equals sqrt(P^2 + Q^2)); system V/U/I are averages of the three phases.
"""

from __future__ import annotations

import cmath
import math
from dataclasses import dataclass

Triple = tuple[float, float, float]

#: Phase angles of V1, V2, V3 for the 123 (clockwise) sequence, in radians.
PHASE_ANGLES: Triple = (0.0, -2.0 * math.pi / 3.0, 2.0 * math.pi / 3.0)


def power_factor(p: float, q: float, s: float) -> float:
    """Signed power factor: + lagging (P*Q > 0), - leading (P*Q < 0); 1.0 without load."""
    if s <= 0.0:
        return 1.0
    magnitude = min(1.0, abs(p) / s)
    return -magnitude if p * q < 0.0 else magnitude


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """Every realtime quantity of the meter at one instant (SI units, unquantized)."""

    v: Triple  # phase-to-neutral voltages V1..V3 (V)
    u: Triple  # line voltages U12, U23, U31 (V)
    i: Triple  # phase currents I1..I3 (A)
    i_n: float  # neutral current (A), vector sum of the phase currents
    p: Triple  # active power per phase (W), signed
    q: Triple  # reactive power per phase (var), signed
    s: Triple  # apparent power per phase (VA)
    pf: Triple  # power factor per phase, signed
    p_total: float
    q_total: float
    s_total: float
    pf_total: float
    frequency: float  # Hz

    @property
    def v_avg(self) -> float:
        """System phase-to-neutral voltage (average of V1..V3)."""
        return sum(self.v) / 3.0

    @property
    def u_avg(self) -> float:
        """System line voltage (average of U12, U23, U31)."""
        return sum(self.u) / 3.0

    @property
    def i_avg(self) -> float:
        """System current (average of I1..I3)."""
        return sum(self.i) / 3.0


def compute(voltages: Triple, currents: Triple, angle_deg: float, frequency: float) -> Snapshot:
    """The snapshot for phase voltages, phase currents and the shared load angle."""
    theta = math.radians(angle_deg)
    cos_t, sin_t = math.cos(theta), math.sin(theta)
    v_ph = [cmath.rect(v, a) for v, a in zip(voltages, PHASE_ANGLES, strict=True)]
    i_ph = [cmath.rect(i, a - theta) for i, a in zip(currents, PHASE_ANGLES, strict=True)]
    s_ph = [v * i for v, i in zip(voltages, currents, strict=True)]
    p_ph = [s * cos_t for s in s_ph]
    q_ph = [s * sin_t for s in s_ph]
    p_total, q_total, s_total = sum(p_ph), sum(q_ph), sum(s_ph)
    return Snapshot(
        v=voltages,
        u=(abs(v_ph[0] - v_ph[1]), abs(v_ph[1] - v_ph[2]), abs(v_ph[2] - v_ph[0])),
        i=currents,
        i_n=abs(i_ph[0] + i_ph[1] + i_ph[2]),
        p=(p_ph[0], p_ph[1], p_ph[2]),
        q=(q_ph[0], q_ph[1], q_ph[2]),
        s=(s_ph[0], s_ph[1], s_ph[2]),
        pf=(
            power_factor(p_ph[0], q_ph[0], s_ph[0]),
            power_factor(p_ph[1], q_ph[1], s_ph[1]),
            power_factor(p_ph[2], q_ph[2], s_ph[2]),
        ),
        p_total=p_total,
        q_total=q_total,
        s_total=s_total,
        pf_total=power_factor(p_total, q_total, s_total),
        frequency=frequency,
    )
