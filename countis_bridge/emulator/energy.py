"""Pure energy bookkeeping: counters per phase, direction, tariff and quadrant.

Counters are floats in Wh / varh / VAh (time counters in seconds) keyed by dotted names:
``<scope>.<kind>`` lifetime, ``<scope>.<tariff>.<kind>`` per tariff, ``partial.<kind>``,
``partial.<tariff>.<kind>`` and ``time.<tariff>``; scopes are ``l1 l2 l3 sum``.

Quadrants (the lead's decisions): Ea+ integrates P > 0, Ea- integrates |P| for P < 0;
Er+ integrates Q > 0, Er- integrates |Q| for Q < 0; "lagging" (inductive) is P*Q > 0
(Q1, Q3), "leading" (capacitive) P*Q < 0 (Q2, Q4), so Er+ = Er+ lagging + Er+ leading and
likewise for Er-. With P = 0 (no active power) reactive energy counts as lagging for Q > 0
and leading for Q < 0. Eap integrates S always.

Registers show counters in 10 Wh steps (``counts``); the seven quantities of the overflow
block wrap at the configured value (``WRAPPED``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from countis_bridge.emulator.physics import Snapshot

SCOPES = ("l1", "l2", "l3", "sum")
TARIFFS = ("t1", "t2")
KINDS = (
    "ea_plus",
    "ea_minus",
    "er_plus",
    "er_minus",
    "eap",
    "er_plus_lagging",
    "er_plus_leading",
    "er_minus_lagging",
    "er_minus_leading",
)
PARTIAL_KINDS = ("ea_plus", "er_plus", "eap", "ea_minus", "er_minus")
PARTIAL_TARIFF_KINDS = ("ea_plus", "ea_minus")
TIME_KEYS = ("time.t1", "time.t2")

#: Lifetime counters (never reset): per scope, and per scope and tariff.
LIFETIME_KEYS: tuple[str, ...] = tuple(f"{s}.{k}" for s in SCOPES for k in KINDS) + tuple(
    f"{s}.{t}.{k}" for s in SCOPES for t in TARIFFS for k in KINDS
)
PARTIAL_KEYS: tuple[str, ...] = tuple(f"partial.{k}" for k in PARTIAL_KINDS) + tuple(
    f"partial.{t}.{k}" for t in TARIFFS for k in PARTIAL_TARIFF_KINDS
)
ALL_KEYS: tuple[str, ...] = LIFETIME_KEYS + PARTIAL_KEYS + TIME_KEYS

#: The counters of the overflow block 0x9000 (Ea+, Er+, Ea-, Er-, Eap, Ea+ T1, Ea+ T2), in
#: the order of its wrap-count registers.
WRAPPED: tuple[str, ...] = (
    "sum.ea_plus",
    "sum.er_plus",
    "sum.ea_minus",
    "sum.er_minus",
    "sum.eap",
    "sum.t1.ea_plus",
    "sum.t2.ea_plus",
)

#: Partial-reset bit mask of register 0xE222 -> the partial counters each bit clears.
#: The per-tariff partials (block 0x8000) follow the Ea+ and Ea- bits.
RESET_BITS: dict[int, tuple[str, ...]] = {
    0x0001: ("partial.ea_plus", "partial.t1.ea_plus", "partial.t2.ea_plus"),
    0x0002: ("partial.er_plus",),
    0x0004: ("partial.eap",),
    0x0008: ("partial.ea_minus", "partial.t1.ea_minus", "partial.t2.ea_minus"),
    0x0010: ("partial.er_minus",),
}
RESET_ALL = 0x001F

RESOLUTION = 10.0  # Wh: every register moves in 10 Wh / varh / VAh steps
EPS = 1e-6  # Wh: keeps float sums such as 6209.999999 on the right side of a step


def new_counters() -> dict[str, float]:
    """Every counter at zero."""
    return dict.fromkeys(ALL_KEYS, 0.0)


def load_counters(saved: Mapping[str, object]) -> dict[str, float]:
    """Counters from a saved mapping; unknown keys are ignored, missing ones start at 0."""
    counters = new_counters()
    for key in ALL_KEYS:
        value = saved.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            counters[key] = float(value)
    return counters


def counts(value: float) -> int:
    """A counter in the meter's 10 Wh steps (what every energy register shows)."""
    return int((value + EPS) // RESOLUTION)


def _keys(scope: str, prefix: str) -> tuple[str, ...]:
    return tuple(f"{scope}.{prefix}{kind}" for kind in KINDS)


# Key tuples in KINDS order: [scope index] for lifetime, [scope index][tariff index].
_LIFE = tuple(_keys(scope, "") for scope in SCOPES)
_TARIFF = tuple(tuple(_keys(scope, f"{t}.") for t in TARIFFS) for scope in SCOPES)


def _add(  # noqa: PLR0917 - the hot loop of the integration: positional on purpose
    c: dict[str, float], keys: tuple[str, ...], p: float, q: float, s: float, h: float
) -> None:
    if p > 0.0:
        c[keys[0]] += p * h
    elif p < 0.0:
        c[keys[1]] -= p * h
    if q > 0.0:
        c[keys[2]] += q * h
        c[keys[5] if p >= 0.0 else keys[6]] += q * h
    elif q < 0.0:
        c[keys[3]] -= q * h
        c[keys[7] if p < 0.0 else keys[8]] -= q * h
    c[keys[4]] += s * h


def integrate(
    c: dict[str, float], snap: Snapshot, seconds: float, tariff: int, partial_running: bool
) -> None:
    """Add ``seconds`` of the powers in ``snap`` to the counters (tariff 1 or 2)."""
    if seconds <= 0.0:
        return
    h = seconds / 3600.0
    t = tariff - 1
    for n in range(3):
        p, q, s = snap.p[n], snap.q[n], snap.s[n]
        _add(c, _LIFE[n], p, q, s, h)
        _add(c, _TARIFF[n][t], p, q, s, h)
    p, q, s = snap.p_total, snap.q_total, snap.s_total
    _add(c, _LIFE[3], p, q, s, h)
    _add(c, _TARIFF[3][t], p, q, s, h)
    c[TIME_KEYS[t]] += seconds
    if partial_running:
        tname = TARIFFS[t]
        if p > 0.0:
            c["partial.ea_plus"] += p * h
            c[f"partial.{tname}.ea_plus"] += p * h
        elif p < 0.0:
            c["partial.ea_minus"] -= p * h
            c[f"partial.{tname}.ea_minus"] -= p * h
        if q > 0.0:
            c["partial.er_plus"] += q * h
        elif q < 0.0:
            c["partial.er_minus"] -= q * h
        c["partial.eap"] += s * h


def reset_partial(c: dict[str, float], mask: int = RESET_ALL) -> None:
    """Clear the partial counters selected by the 0xE222 bit mask (default: all)."""
    for bit, keys in RESET_BITS.items():
        if mask & bit:
            for key in keys:
                c[key] = 0.0


def reset_tariff_time(c: dict[str, float], tariffs: Iterable[int]) -> None:
    """Clear the time-in-tariff counters of the given tariffs (1, 2)."""
    for tariff in tariffs:
        c[TIME_KEYS[tariff - 1]] = 0.0


def zeroed(c: Mapping[str, float]) -> dict[str, float]:
    """Every counter at 0 (the ``zero_counters`` fault)."""
    return dict.fromkeys(c, 0.0)


def lowered(c: Mapping[str, float]) -> dict[str, float]:
    """Lifetime counters 10 % (at least 1 kWh) lower (the ``lower_counters`` fault)."""
    out = dict(c)
    for key in LIFETIME_KEYS:
        out[key] = max(0.0, c[key] - max(1000.0, 0.1 * c[key]))
    return out


def balance_counts(c: Mapping[str, float], kind: str) -> int:
    """Energy balance of manual 4.6.2 in 10 Wh steps, from the per-tariff counters.

    ``kind`` is ``ea`` (kWh: (+T1) - (-T1) + (+T2) - (-T2)) or ``er`` (kvarh, likewise).
    """
    return sum(
        counts(c[f"sum.{t}.{kind}_plus"]) - counts(c[f"sum.{t}.{kind}_minus"]) for t in TARIFFS
    )
