"""Pure figures of the fleet benchmark: missed deadlines, percentiles, request counts."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

from countis.catalogue import Group, keys_for_groups
from countis.plan import ReadRequest, plan_reads
from countis.values import registers_for

_TIMESTAMP = re.compile(rb'"timestamp":\s*(-?[0-9.eE+-]+)')


def poll_timestamp(payload: bytes) -> float | None:
    """The ``timestamp`` field of a state JSON (poll start), without parsing it all."""
    match = _TIMESTAMP.search(payload)
    return float(match.group(1)) if match else None


_ENERGY = re.compile(rb'"energy_import":\s*([0-9.eE+-]+)')


def energy_counter(payload: bytes) -> bytes | None:
    """The lifetime import counter's text in a state JSON (it moves on energy polls)."""
    match = _ENERGY.search(payload)
    return match.group(1) if match else None


def tick_plan(*, energy: bool) -> tuple[ReadRequest, ...]:
    """The FC3 requests of one bridge tick, every value key enabled.

    Like ``countis_bridge.poller``: a tick reads the realtime group, and on energy ticks both
    groups in one call (one plan over all their registers).
    """
    groups = {Group.REALTIME, Group.ENERGY} if energy else {Group.REALTIME}
    return plan_reads(registers_for(keys_for_groups(groups)))


def requests_per_poll(realtime: float, energy: float) -> float:
    """Modbus requests per realtime poll, energy ticks averaged in."""
    share = min(1.0, realtime / energy)
    rt, both = len(tick_plan(energy=False)), len(tick_plan(energy=True))
    return (1 - share) * rt + share * both


def missed_polls(stamps: Sequence[float], t0: float, t1: float, interval: float) -> int:
    """Deadlines in ``[t0, t1)`` that passed without a poll starting (``stamps`` sorted).

    Read from the gaps between consecutive poll starts: a gap of more than 1.5 intervals
    means a deadline went by (a poll more than half an interval late counts as missed).
    Robust to jitter at the window's edges, unlike comparing counts.
    """
    before = [s for s in stamps if s < t0]
    inside = [s for s in stamps if t0 <= s < t1]
    if not before and not inside:
        return math.floor((t1 - t0) / interval)
    # The last poll before the window, clipped so deadlines before the window don't count.
    prev = max(before[-1], t0 - interval) if before else t0
    missed = 0
    for stamp in [*inside, t1]:
        missed += max(0, math.floor((stamp - prev) / interval - 0.5))
        prev = stamp
    return missed


def start_lateness(stamps: Sequence[float], interval: float) -> list[float]:
    """How late each poll started after its slot, in seconds (``stamps`` of one meter).

    The bridge's slots are a fixed grid (first + k x interval, no drift) and a poll never
    starts early, so the on-time polls form the earliest cluster of the stamps' phases
    within the interval; its 10th percentile stands for the grid. A poll later than half
    an interval folds back onto the grid: ``missed_polls`` counts those.
    """
    if not stamps:
        return []
    half = interval / 2
    phases = [(s - stamps[0] + half) % interval - half for s in stamps]
    grid = percentile(sorted(phases), 10)
    return [max(0.0, p - grid) for p in phases]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0..100) of ascending values; NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def cpu_pct(cpu_s: float, wall_s: float) -> float:
    """CPU use in % of one core."""
    return 100.0 * cpu_s / wall_s if wall_s > 0 else math.nan


def rounded(values: Iterable[tuple[str, object]]) -> dict[str, object]:
    """Round floats for the JSON line (3 significant decimals are plenty)."""
    out: dict[str, object] = {}
    for key, value in values:
        if isinstance(value, float):
            out[key] = None if math.isnan(value) else round(value, 3)
        else:
            out[key] = value
    return out
