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
    v1, v2, v3 = voltages
    i1, i2, i3 = currents
    s1, s2, s3 = v1 * i1, v2 * i2, v3 * i3
    p1, p2, p3 = s1 * cos_t, s2 * cos_t, s3 * cos_t
    q1, q2, q3 = s1 * sin_t, s2 * sin_t, s3 * sin_t
    p_total, q_total, s_total = p1 + p2 + p3, q1 + q2 + q3, s1 + s2 + s3
    # Phasors 120 deg apart: |a - b|^2 = a^2 + b^2 + a*b for the line voltages, and the
    # shared load angle rotates all currents alike, so |I1 + I2 + I3| needs magnitudes only.
    neutral = i1 * i1 + i2 * i2 + i3 * i3 - i1 * i2 - i2 * i3 - i3 * i1
    return Snapshot(
        v=voltages,
        u=(
            math.sqrt(v1 * v1 + v2 * v2 + v1 * v2),
            math.sqrt(v2 * v2 + v3 * v3 + v2 * v3),
            math.sqrt(v3 * v3 + v1 * v1 + v3 * v1),
        ),
        i=currents,
        i_n=math.sqrt(max(0.0, neutral)),
        p=(p1, p2, p3),
        q=(q1, q2, q3),
        s=(s1, s2, s3),
        pf=(power_factor(p1, q1, s1), power_factor(p2, q2, s2), power_factor(p3, q3, s3)),
        p_total=p_total,
        q_total=q_total,
        s_total=s_total,
        pf_total=power_factor(p_total, q_total, s_total),
        frequency=frequency,
    )
