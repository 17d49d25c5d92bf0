"""The tariff master of one meter: which tariff it should be on now, and why (pure).

The meter has no clock: the bridge switches T1/T2 for it, following a plan
(:mod:`countis.tariff_plan`): a weekly schedule, or a signal (MQTT payloads, or a Home
Assistant entity's state). A manual command (``set/tariff``, the tariff select) is an
**override until the next switch**: the next schedule boundary, or the next signal that
asks for a tariff. The override, not a refusal, because a user who presses T2 expects T2,
and because the next boundary puts the plan back in charge without anyone having to
remember to undo it.

Signals: a retained message (published before we subscribed: we cannot know when) or a
stale one (its JSON carries a timestamp older than :data:`SIGNAL_MAX_AGE_S`) never switches
anything. Until a fresh signal arrives the planned tariff is unknown and the meter is left
as it is.

Every function takes the time it works on (Unix seconds); the session calls them.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from countis.tariff_plan import (
    Schedule,
    Signal,
    TariffPlan,
    next_change,
    planned_tariff,
    signal_tariff,
)

#: A signal whose JSON says it is older than this is stale (seconds).
SIGNAL_MAX_AGE_S = 600.0
#: How many switches diagnostics remember.
HISTORY = 20
_STAMP_KEYS = ("timestamp", "last_changed", "last_updated", "time")


class TariffSource(StrEnum):
    """Where the planned tariff comes from now."""

    SCHEDULE = "schedule"
    SIGNAL = "signal"
    MANUAL = "manual"


@dataclass(frozen=True, slots=True, kw_only=True)
class Switch:
    """One tariff the session wrote (diagnostics)."""

    at: float  # Unix seconds
    tariff: int
    reason: str  # "plan", "reassert" (the meter said otherwise), "manual"


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


class TariffMaster:
    """The planned tariff of one meter under a plan, with manual overrides."""

    def __init__(self, plan: TariffPlan) -> None:
        """Follow ``plan`` (valid: parsed by :func:`countis.tariff_plan_parse.parse_plan`)."""
        self.plan = plan
        self.signalled: int | None = None  # the tariff the last fresh signal asked for
        self._manual: int | None = None
        self._manual_until: float | None = None  # schedule: the boundary that ends it
        self.history: deque[Switch] = deque(maxlen=HISTORY)

    @property
    def source(self) -> TariffSource:
        """Where the planned tariff comes from."""
        if self._manual is not None:
            return TariffSource.MANUAL
        return TariffSource.SIGNAL if isinstance(self.plan, Signal) else TariffSource.SCHEDULE

    def planned(self, now: float) -> int | None:
        """The tariff the meter should be on at ``now`` (None: not known yet)."""
        self._expire(now)
        if self._manual is not None:
            return self._manual
        if isinstance(self.plan, Schedule):
            return planned_tariff(self.plan, _utc(now))
        return self.signalled

    def next_change(self, now: float) -> float | None:
        """When the planned tariff changes next (schedule only: a signal has no future)."""
        self._expire(now)
        if self._manual_until is not None:
            return self._manual_until
        return self._plan_change(now)

    def manual(self, tariff: int, now: float) -> None:
        """A user switched the tariff: keep it until the plan's next switch."""
        self._manual = tariff
        self._manual_until = self._plan_change(now)

    def signal(self, payload: str | bytes, *, now: float, retained: bool = False) -> bool:
        """A signal message; True when it changes the planned tariff.

        Retained or stale messages, and payloads the mapping does not know, change nothing.
        """
        if not isinstance(self.plan, Signal) or retained or _stale(payload, now):
            return False
        tariff = signal_tariff(self.plan, payload)
        if tariff is None:
            return False
        before = self.planned(now)
        self.signalled = tariff
        self._manual = self._manual_until = None  # a new signal ends a manual override
        return tariff != before

    def record(self, at: float, tariff: int, reason: str) -> None:
        """Remember a switch (diagnostics)."""
        self.history.append(Switch(at=at, tariff=tariff, reason=reason))

    def _plan_change(self, now: float) -> float | None:
        """When the schedule's tariff changes next (None: never, or a signal plan)."""
        if not isinstance(self.plan, Schedule):
            return None
        after = next_change(self.plan, _utc(now))
        return after.timestamp() if after is not None else None

    def _expire(self, now: float) -> None:
        if self._manual_until is not None and now >= self._manual_until:
            self._manual = self._manual_until = None


def _stale(payload: str | bytes, now: float) -> bool:
    """Whether a JSON payload says it is older than :data:`SIGNAL_MAX_AGE_S`."""
    text = payload.decode(errors="replace") if isinstance(payload, bytes) else payload
    if not text.lstrip().startswith("{"):
        return False  # plain text carries no time: fresh when it arrives
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return False
    if not isinstance(document, dict):
        return False
    for key in _STAMP_KEYS:
        stamp = _seconds(document.get(key))
        if stamp is not None:
            return now - stamp > SIGNAL_MAX_AGE_S
    return False


def _seconds(value: object) -> float | None:
    """A Unix time from a number or an ISO 8601 text (with a zone), else None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed.timestamp() if parsed.tzinfo is not None else None
    return None


class TariffLine:
    """Meters behind one address that switch tariffs by broadcast (unit 0) together.

    At a switch of their shared plan the first session to see it writes unit 0 for all;
    the others, which wait for that write, only read their tariff back (and write their
    own if it did not take).
    """

    def __init__(self) -> None:
        """No broadcast yet."""
        self.tariff: int | None = None  # what the last broadcast of the line set
        self.lock = asyncio.Lock()  # one switch decision at a time
