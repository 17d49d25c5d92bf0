"""Tariff plan of a COUNTIS E27/E28: which tariff, T1 or T2, the bridge writes, and when.

The meter keeps two tariffs but has no clock: its tariff changes only when the Modbus
master writes it. The bridge is that master and follows either a weekly :class:`Schedule`
or an MQTT :class:`Signal`. This module is the pure core: the model, its validation and
its evaluation. Nothing here reads a clock: every function takes the instant it works on.
Plain mappings (YAML, JSON, Home Assistant options) are parsed by
:mod:`countis.tariff_plan_parse`.

Semantics of a schedule:

* Rules are local wall times in the schedule's IANA time zone. ``start < end`` covers
  that span of each listed day; ``end <= start`` crosses midnight (22:00-06:00 on Monday
  covers Monday 22:00 to Tuesday 06:00); ``00:00``-``00:00`` (written ``00:00``-``24:00``)
  is the whole day. Any other ``start == end`` is refused: nothing or a whole day?
* Outside every rule the default tariff applies. Rules never overlap (refused, even with
  the same tariff), so at most one rule applies at any instant.
* A holiday is a local calendar day, midnight to midnight, at ``holiday_tariff`` (``None``:
  the default tariff) whatever the rules say. A rule crossing midnight is cut there: its
  part on a holiday gives way to the holiday, its part on an ordinary day still applies.
  22:00-06:00 on the eve of a holiday stops at 00:00; on the evening of a holiday it does
  not start, but still applies from 00:00 to 06:00 the next (ordinary) day.
* Daylight saving time: a boundary is a wall time. A wall time skipped by the spring
  forward gap takes effect at the first instant after the gap (02:30 on 2026-03-29 in
  Europe/Paris takes effect at 03:00 CEST, 01:00 UTC), so a rule lying wholly inside the
  gap does not apply that day. A wall time that happens twice on the fall back night
  takes effect at its first occurrence only. Every rule so switches exactly once each way
  each day it applies, 22:00-06:00 included, on both nights.

Schedules must be valid (:func:`validate_schedule`; the parser always checks) before they
are evaluated.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from math import ceil, floor
from typing import NamedTuple, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from countis.errors import ConfigError

#: The meter's tariffs.
T1 = 1
T2 = 2
TARIFFS = (T1, T2)
#: Short day names, index 0 = Monday as in :meth:`datetime.date.weekday`.
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_DAY = timedelta(days=1)
_MIDNIGHT = time(0)
_DAY_US = 86_400_000_000
_WEEK_US = 7 * _DAY_US
# Local days scanned per step of next_change: a week plus one, so a plan that changes
# every week shows its change in the first step (bar a rule swallowed by a DST gap).
_STEP_DAYS = 8


class TariffPlanError(ConfigError):
    """An invalid tariff plan; the message starts with the path of the offending field."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """``tariff`` from ``start`` to ``end`` (local wall times) on ``days`` (0 = Monday)."""

    days: frozenset[int]
    start: time
    end: time
    tariff: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """A weekly plan in the local wall time of an IANA zone, with holidays."""

    time_zone: str
    rules: tuple[Rule, ...] = ()
    default: int = T1
    holidays: frozenset[date] = frozenset()
    holiday_tariff: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Signal:
    """Follow an MQTT topic whose payloads map to tariffs (see :func:`signal_tariff`)."""

    topic: str
    # A mapping is not hashable; equal signals still hash equal through their topic.
    mapping: Mapping[str, int] = field(hash=False)


TariffPlan: TypeAlias = Schedule | Signal


# --- validation -------------------------------------------------------------------------


def validate_schedule(schedule: Schedule, *, where: str = "tariff_plan") -> None:
    """Raise :class:`TariffPlanError`, naming the field under ``where``, if unusable."""
    _check_zone(schedule.time_zone, f"{where}.time_zone")
    _check_tariff(schedule.default, f"{where}.default")
    if schedule.holiday_tariff is not None:
        _check_tariff(schedule.holiday_tariff, f"{where}.holiday_tariff")
    for index, rule in enumerate(schedule.rules):
        _check_rule(rule, f"{where}.rules[{index}]")
    _check_overlaps(schedule.rules, where)


def _check_zone(name: str, path: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:  # ValueError: "", "/etc/..", ".."
        msg = f"{path}: {name!r} is not an IANA time zone"
        raise TariffPlanError(msg) from err


def _check_tariff(tariff: int, path: str) -> None:
    # bool is an int: True would pass as tariff 1.
    if isinstance(tariff, bool) or tariff not in TARIFFS:
        msg = f"{path}: {tariff!r} is not a tariff (expected T1 or T2)"
        raise TariffPlanError(msg)


def _check_rule(rule: Rule, path: str) -> None:
    if not rule.days:
        msg = f"{path}.days: no days"
        raise TariffPlanError(msg)
    if not rule.days <= frozenset(range(7)):
        msg = f"{path}.days: {sorted(rule.days)} are not all days 0 (Monday) to 6 (Sunday)"
        raise TariffPlanError(msg)
    _check_tariff(rule.tariff, f"{path}.tariff")
    for key, wall in (("from", rule.start), ("to", rule.end)):
        # A zone of its own would contradict the schedule's; fractions of a second would
        # not survive plan_to_dict.
        if wall.tzinfo is not None or wall.microsecond:
            msg = f"{path}.{key}: {wall} is not a plain wall time (no zone, whole seconds)"
            raise TariffPlanError(msg)
    if rule.start == rule.end != _MIDNIGHT:
        msg = (
            f"{path}: from and to are both {format_time(rule.start)}; "
            "a rule needs a length (a whole day is 00:00-24:00)"
        )
        raise TariffPlanError(msg)


class _Segment(NamedTuple):
    start: int  # microseconds since Monday 00:00, local wall time
    end: int
    rule: int  # index in Schedule.rules


def _week_segments(rules: Iterable[Rule]) -> list[_Segment]:
    """Every rule occurrence on the weekly circle, split at the end of the week."""
    segments = []
    for index, rule in enumerate(rules):
        start, end = _micros(rule.start), _micros(rule.end)
        length = end - start if end > start else end + _DAY_US - start
        for day in rule.days:
            first = day * _DAY_US + start
            segments.append(_Segment(first, min(first + length, _WEEK_US), index))
            if first + length > _WEEK_US:  # Sunday night into Monday morning
                segments.append(_Segment(0, first + length - _WEEK_US, index))
    return sorted(segments)


def _micros(wall: time) -> int:
    return ((wall.hour * 60 + wall.minute) * 60 + wall.second) * 1_000_000 + wall.microsecond


def _check_overlaps(rules: tuple[Rule, ...], where: str) -> None:
    # Sorted by start, a segment overlaps an earlier one iff it starts before the
    # furthest end seen so far.
    reach: _Segment | None = None
    for segment in _week_segments(rules):
        if reach is not None and segment.start < reach.end:
            first, second = sorted((reach.rule, segment.rule))
            when = _format_span(segment.start, min(segment.end, reach.end))
            msg = f"{where}.rules[{second}]: overlaps {where}.rules[{first}] on {when}"
            raise TariffPlanError(msg)
        if reach is None or segment.end > reach.end:
            reach = segment


def _format_span(start: int, end: int) -> str:
    """``tue 05:00-06:00``, or ``mon 23:00-tue 01:00`` across midnight."""
    day, offset = divmod(start, _DAY_US)
    end_day, end_offset = divmod(end, _DAY_US)
    if end_offset == 0 and end_day == day + 1:
        return f"{DAY_NAMES[day]} {_format_micros(offset)}-24:00"
    if end_day == day:
        return f"{DAY_NAMES[day]} {_format_micros(offset)}-{_format_micros(end_offset)}"
    return (
        f"{DAY_NAMES[day]} {_format_micros(offset)}-"
        f"{DAY_NAMES[end_day % 7]} {_format_micros(end_offset)}"
    )


def _format_micros(micros: int) -> str:
    seconds = micros // 1_000_000
    return format_time(time(seconds // 3600, seconds // 60 % 60, seconds % 60))


def format_time(wall: time, *, end: bool = False) -> str:
    """``HH:MM`` (``HH:MM:SS`` if it has seconds); an ``end`` at midnight is ``24:00``."""
    if end and wall == _MIDNIGHT:
        return "24:00"
    return wall.strftime("%H:%M:%S" if wall.second else "%H:%M")


# --- evaluation -------------------------------------------------------------------------


class _Span(NamedTuple):
    start: datetime  # UTC
    end: datetime
    tariff: int
    holiday: bool


def planned_tariff(schedule: Schedule, at: datetime) -> int:
    """The tariff ``schedule`` plans at the instant ``at`` (an aware datetime)."""
    tz = ZoneInfo(schedule.time_zone)
    day = _local_day(tz, at)
    # A span starts on its local day and ends by the end of the next one; the day after
    # is there for a fall back across midnight, which repeats the end of ``day`` after
    # the next day has begun.
    return _tariff_at(schedule, _spans(schedule, tz, day - _DAY, day + _DAY), at)


def next_change(schedule: Schedule, at: datetime) -> datetime | None:
    """The first instant after ``at`` whose planned tariff differs from the one at ``at``.

    In UTC; ``None`` if the tariff never changes. Only rule and holiday boundaries are
    examined, a few local days at a time: no scanning minute by minute.
    """
    tz = ZoneInfo(schedule.time_zone)
    current = planned_tariff(schedule, at)
    steady = _steady_tariff(schedule)
    if steady is not None:
        return _next_holiday_change(schedule, tz, at, current, steady)
    first = _local_day(tz, at)
    # Rules that change the tariff do so every week, unless holidays hide them: past the
    # last holiday, two steps always find a change (DST gaps are months apart).
    horizon = max([first, *schedule.holidays]) + 2 * _STEP_DAYS * _DAY
    while first <= horizon:
        last = first + (_STEP_DAYS - 1) * _DAY
        found = _change_between(schedule, tz, at, current, first=first, last=last)
        if found is not None:
            return found
        first = last + _DAY
    return None


def _change_between(
    schedule: Schedule, tz: ZoneInfo, at: datetime, current: int, *, first: date, last: date
) -> datetime | None:
    """The first boundary after ``at``, on local days first..last, where the tariff changes."""
    spans = _spans(schedule, tz, first - _DAY, last)
    # Boundaries before ``since`` were examined by the previous step (with the spans
    # they need); spans of later days start at or after ``until``.
    since = _local_to_utc(tz, first, _MIDNIGHT)
    until = _local_to_utc(tz, last + _DAY, _MIDNIGHT)
    edges = sorted(
        {edge for span in spans for edge in span[:2] if edge > at and since <= edge < until}
    )
    return next((edge for edge in edges if _tariff_at(schedule, spans, edge) != current), None)


def _steady_tariff(schedule: Schedule) -> int | None:
    """The tariff the rules give at every instant (holidays aside), if they give one."""
    tariffs = {rule.tariff for rule in schedule.rules}
    if tariffs <= {schedule.default}:
        return schedule.default
    covered = sum(s.end - s.start for s in _week_segments(schedule.rules))
    if covered == _WEEK_US and len(tariffs) == 1:  # one tariff all week, default never used
        return tariffs.pop()
    return None


def _next_holiday_change(
    schedule: Schedule, tz: ZoneInfo, at: datetime, current: int, steady: int
) -> datetime | None:
    """Next change when only holidays change the tariff: the start or end of a holiday run."""
    if _holiday_tariff(schedule) == steady:
        return None
    day = _local_day(tz, at)
    if current == steady:  # not on a holiday: the next one starts the change
        starts = (
            _local_to_utc(tz, holiday, _MIDNIGHT)
            for holiday in sorted(schedule.holidays)
            if holiday >= day
        )
        return next((start for start in starts if start > at), None)
    # On a holiday (``day``, or the next one during a fall back across midnight): the
    # tariff comes back when the run of consecutive holidays ends.
    last = day if day in schedule.holidays else day + _DAY
    while last + _DAY in schedule.holidays:
        last += _DAY
    return _local_to_utc(tz, last + _DAY, _MIDNIGHT)


def _holiday_tariff(schedule: Schedule) -> int:
    if schedule.holiday_tariff is None:
        return schedule.default
    return schedule.holiday_tariff


def _spans(schedule: Schedule, tz: ZoneInfo, first: date, last: date) -> list[_Span]:
    """Holidays and rule occurrences starting on local days first..last, in UTC."""
    spans = []
    day = first
    while day <= last:
        if day in schedule.holidays:
            start = _local_to_utc(tz, day, _MIDNIGHT)
            end = _local_to_utc(tz, day + _DAY, _MIDNIGHT)
            spans.append(_Span(start, end, _holiday_tariff(schedule), holiday=True))
        # Rules of a holiday are kept: the holiday span overrides them on its own day
        # only, and the part after midnight still applies.
        for rule in schedule.rules:
            if day.weekday() in rule.days:
                end_day = day if rule.start < rule.end else day + _DAY
                start = _local_to_utc(tz, day, rule.start)
                end = _local_to_utc(tz, end_day, rule.end)
                spans.append(_Span(start, end, rule.tariff, holiday=False))
        day += _DAY
    return spans


def _tariff_at(schedule: Schedule, spans: Iterable[_Span], at: datetime) -> int:
    """Holiday, else the rule covering ``at`` (at most one), else the default."""
    tariff = schedule.default
    for span in spans:
        if span.start <= at < span.end:
            if span.holiday:
                return span.tariff
            tariff = span.tariff
    return tariff


def _local_day(tz: ZoneInfo, at: datetime) -> date:
    if at.utcoffset() is None:
        msg = f"expected an aware datetime, got the naive {at.isoformat()}"
        raise ValueError(msg)
    return at.astimezone(tz).date()


def _local_to_utc(tz: ZoneInfo, day: date, wall: time) -> datetime:
    """When ``wall`` on ``day`` takes effect: its first occurrence, or the end of its DST gap."""
    local = datetime.combine(day, wall, tzinfo=tz)  # fold=0: the first occurrence
    instant = local.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) == local.replace(tzinfo=None):
        return instant
    return _gap_end(tz, local)


def _gap_end(tz: ZoneInfo, local: datetime) -> datetime:
    """The first instant after the DST gap that skips the wall time ``local``."""
    # Read with the offset after the gap (fold=1) the skipped wall time falls before the
    # transition, with the offset before it (fold=0) at or after. Bisect between the two
    # on whole seconds: time zone transitions are whole seconds.
    low = floor(local.replace(fold=1).astimezone(UTC).timestamp())
    high = ceil(local.astimezone(UTC).timestamp())
    before = datetime.fromtimestamp(low, tz).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, tz).utcoffset() == before:
            low = middle
        else:
            high = middle
    return datetime.fromtimestamp(high, UTC)


# --- signal -----------------------------------------------------------------------------


def payload_key(text: str) -> str:
    """The form payloads and mapping keys are compared in: stripped, case-folded."""
    return text.strip().casefold()


def signal_tariff(signal: Signal, payload: str | bytes) -> int | None:
    """The tariff an MQTT payload asks for, or ``None`` (keep the current one) if unknown.

    The payload is plain text (Home Assistant's statestream publishes the bare state) or
    JSON, whose ``"state"`` field, or a bare JSON string, is then the text.
    """
    if isinstance(payload, bytes):
        try:
            payload = payload.decode()
        except UnicodeDecodeError:
            return None
    lookup = {payload_key(key): tariff for key, tariff in signal.mapping.items()}
    text = payload.strip()
    found = lookup.get(payload_key(text))
    if found is None and text[:1] in ("{", '"'):
        state = _json_state(text)
        if state is not None:
            found = lookup.get(payload_key(state))
    return found


def _json_state(text: str) -> str | None:
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        return None
    state = document.get("state") if isinstance(document, dict) else document
    if isinstance(state, str):
        return state
    # {"state": 2} from a bridge that publishes numbers; true would read as 1 otherwise.
    if isinstance(state, int) and not isinstance(state, bool):
        return str(state)
    return None
