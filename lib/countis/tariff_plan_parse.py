"""Tariff plans from plain mappings (YAML, JSON, Home Assistant options), and back.

:func:`parse_plan` refuses what it does not understand with a :class:`TariffPlanError`
whose message starts with the path of the field, for instance
``tariff_plan.rules[1].from: '25:00' is not a time HH:MM``. The two shapes::

    mode: schedule
    time_zone: Europe/Paris
    default: T1               # optional: T1
    rules:                    # optional: none
      - days: mon-fri         # a day, a range (fri-mon wraps) or a list of them
        from: "22:00"         # quoted: YAML 1.1 reads 22:00 as the number 1320
        to: "06:00"           # to <= from crosses midnight; "24:00" ends at midnight
        tariff: T2            # T1, T2, 1 or 2
    holidays: [2026-05-01]    # optional: ISO dates, local days
    holiday_tariff: T2        # optional: the default tariff

    mode: signal
    topic: homeassistant/sensor/tarif/state
    mapping: {HC: T2, HP: T1} # payload -> tariff; case and surrounding spaces ignored

An optional key that is null counts as absent (Home Assistant options leave empty
fields). :func:`plan_to_dict` gives the shape back, ``parse_plan(plan_to_dict(plan)) ==
plan``, and :func:`describe_plan` a one-line summary for logs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from datetime import date, datetime, time
from types import MappingProxyType
from typing import Any

from countis.tariff_plan import (
    DAY_NAMES,
    T1,
    TARIFFS,
    Rule,
    Schedule,
    Signal,
    TariffPlan,
    TariffPlanError,
    format_time,
    payload_key,
    validate_schedule,
)

_SCHEDULE_KEYS = ("mode", "time_zone", "default", "rules", "holidays", "holiday_tariff")
_RULE_KEYS = ("days", "from", "to", "tariff")
_SIGNAL_KEYS = ("mode", "topic", "mapping")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_INDEX = {name: i for names in (DAY_NAMES, _FULL_DAY_NAMES) for i, name in enumerate(names)}
_TIME = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", re.ASCII)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def parse_plan(data: Mapping[str, Any], *, where: str = "tariff_plan") -> TariffPlan:
    """A valid plan from a plain mapping, or a :class:`TariffPlanError` naming the field."""
    data = _mapping(data, where)
    mode = data.get("mode")
    if mode == "schedule":
        return _schedule(data, where)
    if mode == "signal":
        return _signal(data, where)
    if mode is None:
        msg = f"{where}.mode: missing (expected 'schedule' or 'signal')"
    else:
        msg = f"{where}.mode: {mode!r} is not 'schedule' or 'signal'"
    raise TariffPlanError(msg)


def _schedule(data: Mapping[str, Any], where: str) -> Schedule:
    _check_keys(data, where, _SCHEDULE_KEYS, required=("time_zone",))
    rules = _list(_get(data, "rules", []), f"{where}.rules")
    holiday_tariff = _get(data, "holiday_tariff", None)
    schedule = Schedule(
        time_zone=_text(data["time_zone"], f"{where}.time_zone"),
        rules=tuple(_rule(item, f"{where}.rules[{i}]") for i, item in enumerate(rules)),
        default=_tariff(_get(data, "default", T1), f"{where}.default"),
        holidays=_holidays(_get(data, "holidays", []), f"{where}.holidays"),
        holiday_tariff=(
            None if holiday_tariff is None else _tariff(holiday_tariff, f"{where}.holiday_tariff")
        ),
    )
    # The zone, whole-day rules and overlaps: the checks a schedule built in code needs too.
    validate_schedule(schedule, where=where)
    return schedule


def _rule(data: object, path: str) -> Rule:
    data = _mapping(data, path)
    _check_keys(data, path, _RULE_KEYS, required=_RULE_KEYS)
    days = _days(data["days"], f"{path}.days")
    start = _time(data["from"], f"{path}.from", end=False)
    end = _time(data["to"], f"{path}.to", end=True)
    # "00:00"-"24:00" is the whole day; "00:00"-"00:00" could as well mean nothing.
    if start == end == time(0) and not data["to"].strip().startswith("24"):
        msg = f"{path}: from and to are both 00:00; write to: '24:00' for a whole day"
        raise TariffPlanError(msg)
    return Rule(days=days, start=start, end=end, tariff=_tariff(data["tariff"], f"{path}.tariff"))


def _days(value: object, path: str) -> frozenset[int]:
    if isinstance(value, str):
        return _day_range(value, path)
    if not isinstance(value, list | tuple):
        msg = f"{path}: {value!r} is not a day, a range of days or a list of them"
        raise TariffPlanError(msg)
    if not value:
        msg = f"{path}: no days"
        raise TariffPlanError(msg)
    return frozenset().union(*(_day_range(item, f"{path}[{i}]") for i, item in enumerate(value)))


def _day_range(value: object, path: str) -> frozenset[int]:
    """``mon``, ``monday`` or ``mon-fri``; ``fri-mon`` wraps over the weekend."""
    names = value.split("-") if isinstance(value, str) else []
    indexes = [_DAY_INDEX[key] for name in names if (key := name.strip().casefold()) in _DAY_INDEX]
    if not 1 <= len(names) <= 2 or len(indexes) != len(names):
        msg = f"{path}: {value!r} is not a day (mon..sun, monday..sunday, or a range like mon-fri)"
        raise TariffPlanError(msg)
    first, last = indexes[0], indexes[-1]
    return frozenset((first + n) % 7 for n in range((last - first) % 7 + 1))


def _time(value: object, path: str, *, end: bool) -> time:
    """``HH:MM`` or ``HH:MM:SS`` (Home Assistant's time selector); ``24:00`` as an end."""
    match = _TIME.fullmatch(value.strip()) if isinstance(value, str) else None
    if match:
        hour, minute, second = (int(group or 0) for group in match.groups())
        if end and (hour, minute, second) == (24, 0, 0):
            return time(0)
        if hour < 24 and minute < 60 and second < 60:
            return time(hour, minute, second)
    msg = f"{path}: {value!r} is not a time HH:MM"
    if isinstance(value, int) and not isinstance(value, bool):
        msg += ' (quote times in YAML: "22:00")'  # YAML 1.1 reads 22:00 as 22 * 60 + 0
    elif isinstance(value, str) and value.strip() in {"24:00", "24:00:00"}:
        msg += " (24:00 only as 'to')"
    raise TariffPlanError(msg)


def _tariff(value: object, path: str) -> int:
    """T1 or T2: ``1``, ``2``, ``"T1"``, ``"t2"``, ``"2"``; never ``True``, which is 1."""
    if isinstance(value, int) and not isinstance(value, bool) and value in TARIFFS:
        return value
    if isinstance(value, str):
        digit = value.strip().casefold().removeprefix("t")
        if digit in {str(t) for t in TARIFFS}:
            return int(digit)
    msg = f"{path}: {value!r} is not a tariff (expected T1 or T2)"
    raise TariffPlanError(msg)


def _holidays(value: object, path: str) -> frozenset[date]:
    return frozenset(_date(item, f"{path}[{i}]") for i, item in enumerate(_list(value, path)))


def _date(value: object, path: str) -> date:
    # YAML reads an unquoted 2026-05-01 as a date already; a datetime is not a day.
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    # fromisoformat alone would take 20260501 and 2026-W18-5 too.
    if isinstance(value, str) and _DATE.fullmatch(value.strip()):
        with suppress(ValueError):  # 2026-02-30
            return date.fromisoformat(value.strip())
    msg = f"{path}: {value!r} is not a date YYYY-MM-DD"
    raise TariffPlanError(msg)


def _signal(data: Mapping[str, Any], where: str) -> Signal:
    _check_keys(data, where, _SIGNAL_KEYS, required=("topic", "mapping"))
    topic = _text(data["topic"], f"{where}.topic")
    if not topic.strip():
        msg = f"{where}.topic: empty"
        raise TariffPlanError(msg)
    if "+" in topic or "#" in topic:
        msg = f"{where}.topic: {topic!r} has an MQTT wildcard; follow one topic"
        raise TariffPlanError(msg)
    return Signal(topic=topic, mapping=_payload_mapping(data["mapping"], f"{where}.mapping"))


def _payload_mapping(value: object, path: str) -> Mapping[str, int]:
    data = _mapping(value, path)
    if not data:
        msg = f"{path}: empty; map at least one payload to T1 or T2"
        raise TariffPlanError(msg)
    tariffs: dict[str, int] = {}
    seen: dict[str, str] = {}  # payload_key -> the key as written
    for key, tariff in data.items():
        text = _payload(key, path)
        if payload_key(text) in seen:
            msg = (
                f"{path}: {seen[payload_key(text)]!r} and {text!r} are the same payload "
                "(case and surrounding spaces are ignored)"
            )
            raise TariffPlanError(msg)
        seen[payload_key(text)] = text
        tariffs[text] = _tariff(tariff, f"{path}[{text!r}]")
    return MappingProxyType(tariffs)


def _payload(key: object, path: str) -> str:
    if isinstance(key, bool):  # before int: a bool is an int
        msg = (
            f"{path}: key {key!r} is not a payload text (YAML reads unquoted "
            "on/off/yes/no/true/false as booleans: quote them)"
        )
        raise TariffPlanError(msg)
    if isinstance(key, int):  # YAML reads an unquoted 1 as a number
        return str(key)
    if not isinstance(key, str):
        msg = f"{path}: key {key!r} is not a payload text"
        raise TariffPlanError(msg)
    if not key.strip():
        msg = f"{path}: empty payload key {key!r}"
        raise TariffPlanError(msg)
    return key


# --- shared checks ----------------------------------------------------------------------


def _get(data: Mapping[str, Any], key: str, absent: Any) -> Any:
    """``data[key]``; ``absent`` if it is missing or null."""
    value = data.get(key)
    return absent if value is None else value


def _check_keys(
    data: Mapping[str, Any], path: str, allowed: Sequence[str], *, required: Sequence[str]
) -> None:
    unknown = [key for key in data if key not in allowed]
    if unknown:
        keys = ", ".join(repr(key) for key in unknown)
        plural = "s" if len(unknown) > 1 else ""
        msg = f"{path}: unknown key{plural} {keys}; expected {', '.join(allowed)}"
        raise TariffPlanError(msg)
    for key in required:
        if key not in data:
            msg = f"{path}.{key}: missing"
            raise TariffPlanError(msg)


def _mapping(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        msg = f"{path}: expected a mapping, got {type(value).__name__}"
        raise TariffPlanError(msg)
    return value


def _list(value: object, path: str) -> Sequence[object]:
    if not isinstance(value, list | tuple):
        msg = f"{path}: expected a list, got {type(value).__name__}"
        raise TariffPlanError(msg)
    return value


def _text(value: object, path: str) -> str:
    if not isinstance(value, str):
        msg = f"{path}: expected text, got {type(value).__name__}"
        raise TariffPlanError(msg)
    return value


# --- back to plain data -----------------------------------------------------------------


def plan_to_dict(plan: TariffPlan) -> dict[str, Any]:
    """The plain, JSON-ready mapping :func:`parse_plan` reads back to ``plan``."""
    if isinstance(plan, Signal):
        mapping = {key: tariff_name(tariff) for key, tariff in plan.mapping.items()}
        return {"mode": "signal", "topic": plan.topic, "mapping": mapping}
    holiday = None if plan.holiday_tariff is None else tariff_name(plan.holiday_tariff)
    return {
        "mode": "schedule",
        "time_zone": plan.time_zone,
        "default": tariff_name(plan.default),
        "rules": [_rule_to_dict(rule) for rule in plan.rules],
        "holidays": [day.isoformat() for day in sorted(plan.holidays)],
        "holiday_tariff": holiday,
    }


def _rule_to_dict(rule: Rule) -> dict[str, Any]:
    return {
        "days": format_days(rule.days),
        "from": format_time(rule.start),
        "to": format_time(rule.end, end=True),
        "tariff": tariff_name(rule.tariff),
    }


def tariff_name(tariff: int) -> str:
    """``T1`` or ``T2``, as the meter's display names them."""
    return f"T{tariff}"


def format_days(days: frozenset[int]) -> str | list[str]:
    """Days as runs: ``mon-fri``, ``sat-mon`` (wrapping), or a list such as ``[mon, wed-fri]``."""
    if len(days) == 7:
        return "mon-sun"
    runs = []
    for first in sorted(days):
        if (first - 1) % 7 in days:
            continue  # inside a run started earlier (or wrapping from Sunday)
        last = first
        while (last + 1) % 7 in days:
            last = (last + 1) % 7
        runs.append(DAY_NAMES[first] if last == first else f"{DAY_NAMES[first]}-{DAY_NAMES[last]}")
    return runs[0] if len(runs) == 1 else runs


def describe_plan(plan: TariffPlan) -> str:
    """One line for logs, e.g. ``schedule Europe/Paris: mon-sun 22:00-06:00 T2, else T1``."""
    if isinstance(plan, Signal):
        pairs = ", ".join(f"{key} -> {tariff_name(t)}" for key, t in plan.mapping.items())
        return f"signal {plan.topic}: {pairs}"
    default = tariff_name(plan.default)
    rules = ", ".join(_rule_text(rule) for rule in plan.rules)
    text = f"schedule {plan.time_zone}: " + (f"{rules}, else {default}" if rules else default)
    if plan.holidays:
        count = len(plan.holidays)
        holiday = default if plan.holiday_tariff is None else tariff_name(plan.holiday_tariff)
        text += f"; {count} holiday{'s' if count > 1 else ''} at {holiday}"
    return text


def _days_text(days: frozenset[int]) -> str:
    formatted = format_days(days)
    return formatted if isinstance(formatted, str) else ",".join(formatted)


# --- rules as lines of text (a form field) ----------------------------------------------


def rules_from_text(text: str, *, where: str = "tariff_plan.rules") -> list[dict[str, Any]]:
    """Rules written one per line (or ``;``-separated) as ``days HH:MM-HH:MM tariff``.

    ``mon-fri 22:00-06:00 T2`` or ``sat,sun 00:00-24:00 T2``: the same fields as the
    mappings :func:`parse_plan` reads, which checks them; this only splits the text.
    """
    rules: list[dict[str, Any]] = []
    lines = [line.strip() for line in text.replace(";", "\n").splitlines()]
    for index, line in enumerate(line for line in lines if line):
        parts = line.split()
        span = parts[1].split("-") if len(parts) == 3 else []
        if len(span) != 2:
            msg = f"{where}[{index}]: {line!r} is not 'days HH:MM-HH:MM T1|T2'"
            raise TariffPlanError(msg)
        days = [day for day in parts[0].split(",") if day]
        rules.append({"days": days, "from": span[0], "to": span[1], "tariff": parts[2]})
    return rules


def rules_to_text(rules: Iterable[Rule]) -> str:
    """Rules as :func:`rules_from_text` reads them, one per line."""
    return "\n".join(_rule_text(rule) for rule in rules)


def _rule_text(rule: Rule) -> str:
    """``mon-fri 22:00-06:00 T2`` (days as a comma-separated list of runs)."""
    start, end = format_time(rule.start), format_time(rule.end, end=True)
    return f"{_days_text(rule.days)} {start}-{end} {tariff_name(rule.tariff)}"
