"""Tariff plan: evaluation (DST, holidays), validation, signals, parsing and back.

Manual clock throughout: every instant is a plain datetime passed in.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from countis.tariff_plan import (
    TARIFFS,
    Rule,
    Schedule,
    Signal,
    TariffPlanError,
    next_change,
    payload_key,
    planned_tariff,
    signal_tariff,
    validate_schedule,
)
from countis.tariff_plan_parse import describe_plan, format_days, parse_plan, plan_to_dict
from hypothesis import given, settings
from hypothesis import strategies as st

PARIS = "Europe/Paris"
BERLIN = "Europe/Berlin"
EVERY_DAY = frozenset(range(7))
WEEKDAYS = frozenset(range(5))
US = timedelta(microseconds=1)


def hm(text: str) -> time:
    hour, minute = text.split(":")
    return time(int(hour) % 24, int(minute))  # "24:00" is midnight, as an end


def rule(days: frozenset[int] | int, span: str, tariff: int) -> Rule:
    start, end = span.split("-")
    days = frozenset({days}) if isinstance(days, int) else days
    return Rule(days=days, start=hm(start), end=hm(end), tariff=tariff)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(zone: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def switches(schedule: Schedule, start: datetime, end: datetime) -> list[tuple[datetime, int]]:
    """Walk next_change from ``start``: every switch before ``end`` and the tariff it sets."""
    found = []
    at: datetime | None = start
    while (at := next_change(schedule, at)) is not None and at < end:
        found.append((at, planned_tariff(schedule, at)))
    return found


# French "heures creuses": off-peak (T2) 22:00-06:00 every night, peak (T1) otherwise.
HEURES_CREUSES = Schedule(time_zone=PARIS, rules=(rule(EVERY_DAY, "22:00-06:00", 2),), default=1)
# German HT/NT: HT (T1) 06:00-22:00 on working days, NT (T2) nights and whole weekends.
HT_NT = Schedule(time_zone=BERLIN, rules=(rule(WEEKDAYS, "06:00-22:00", 1),), default=2)


# --- a whole week -----------------------------------------------------------------------


def test_heures_creuses_switch_at_06_and_22_every_day_of_a_week():
    monday = date(2026, 6, 1)
    expected = []
    for offset in range(7):
        day = monday + timedelta(days=offset)
        expected += [(local(PARIS, day.year, day.month, day.day, 6), 1)]
        expected += [(local(PARIS, day.year, day.month, day.day, 22), 2)]
    found = switches(HEURES_CREUSES, local(PARIS, 2026, 6, 1), local(PARIS, 2026, 6, 8))
    assert found == expected
    assert found[0][0] == utc(2026, 6, 1, 4)  # CEST: UTC+2


def test_ht_nt_switches_on_working_days_and_keeps_nt_over_the_weekend():
    expected = []
    for day in range(1, 6):  # 2026-06-01 is a Monday
        expected += [(local(BERLIN, 2026, 6, day, 6), 1), (local(BERLIN, 2026, 6, day, 22), 2)]
    expected += [(local(BERLIN, 2026, 6, 8, 6), 1)]
    assert switches(HT_NT, local(BERLIN, 2026, 6, 1), local(BERLIN, 2026, 6, 8, 12)) == expected
    assert planned_tariff(HT_NT, local(BERLIN, 2026, 6, 6, 12)) == 2  # Saturday noon


@pytest.mark.parametrize(
    ("boundary", "before", "after"),
    [
        (local(PARIS, 2026, 6, 3, 22), 1, 2),
        (local(PARIS, 2026, 6, 4, 6), 2, 1),
        (local(PARIS, 2026, 6, 4, 0), 2, 2),  # midnight inside the night: no boundary
    ],
)
def test_a_boundary_belongs_to_the_span_it_starts(boundary, before, after):
    assert planned_tariff(HEURES_CREUSES, boundary - US) == before
    assert planned_tariff(HEURES_CREUSES, boundary) == after


def test_next_change_is_strictly_after_the_instant_given():
    boundary = local(PARIS, 2026, 6, 3, 22)
    assert next_change(HEURES_CREUSES, boundary - US) == boundary
    assert next_change(HEURES_CREUSES, boundary) == local(PARIS, 2026, 6, 4, 6)


def test_instants_in_any_zone_give_utc():
    at = datetime(2026, 6, 3, 12, tzinfo=ZoneInfo("America/New_York"))
    change = next_change(HEURES_CREUSES, at)
    assert change == utc(2026, 6, 3, 20)
    assert change is not None
    assert change.tzinfo is UTC


def test_a_naive_instant_is_refused():
    with pytest.raises(ValueError, match="aware"):
        planned_tariff(HEURES_CREUSES, datetime(2026, 6, 3, 12))


def test_a_plan_without_rules_never_changes():
    plan = Schedule(time_zone=PARIS, default=2)
    assert planned_tariff(plan, utc(2026, 6, 3)) == 2
    assert next_change(plan, utc(2026, 6, 3)) is None


def test_rules_at_the_default_tariff_never_change_it():
    plan = Schedule(time_zone=PARIS, rules=(rule(EVERY_DAY, "22:00-06:00", 1),), default=1)
    assert next_change(plan, utc(2026, 6, 3)) is None


def test_whole_day_rules_all_week_replace_the_default():
    plan = Schedule(time_zone=PARIS, rules=(rule(EVERY_DAY, "00:00-24:00", 2),), default=1)
    assert planned_tariff(plan, utc(2026, 3, 29, 1, 30)) == 2
    assert next_change(plan, utc(2026, 6, 3)) is None


def test_whole_day_rule_on_sunday_only():
    plan = Schedule(time_zone=PARIS, rules=(rule(6, "00:00-24:00", 2),), default=1)
    assert switches(plan, local(PARIS, 2026, 6, 1), local(PARIS, 2026, 6, 15)) == [
        (local(PARIS, 2026, 6, 7), 2),
        (local(PARIS, 2026, 6, 8), 1),
        (local(PARIS, 2026, 6, 14), 2),
    ]


def test_sunday_night_rule_crosses_into_monday_morning():
    plan = Schedule(time_zone=PARIS, rules=(rule(6, "23:00-01:00", 2),), default=1)
    assert switches(plan, local(PARIS, 2026, 6, 6), local(PARIS, 2026, 6, 9)) == [
        (local(PARIS, 2026, 6, 7, 23), 2),
        (local(PARIS, 2026, 6, 8, 1), 1),
    ]


def test_adjacent_rules_with_the_same_tariff_do_not_switch():
    plan = Schedule(
        time_zone=PARIS,
        rules=(rule(EVERY_DAY, "22:00-24:00", 2), rule(EVERY_DAY, "00:00-06:00", 2)),
        default=1,
    )
    start, end = local(PARIS, 2026, 3, 27), local(PARIS, 2026, 4, 3)
    assert switches(plan, start, end) == switches(HEURES_CREUSES, start, end)


# --- daylight saving time (Europe/Paris: 2026-03-29 and 2026-10-25) ----------------------


def test_heures_creuses_switch_once_each_way_on_the_spring_forward_night():
    # Sat 22:00 CET = 21:00Z, Sun 06:00 CEST = 04:00Z, Sun 22:00 CEST = 20:00Z.
    assert switches(HEURES_CREUSES, utc(2026, 3, 28, 12), utc(2026, 3, 30, 12)) == [
        (utc(2026, 3, 28, 21), 2),
        (utc(2026, 3, 29, 4), 1),
        (utc(2026, 3, 29, 20), 2),
        (utc(2026, 3, 30, 4), 1),
    ]


def test_heures_creuses_switch_once_each_way_on_the_fall_back_night():
    # Sat 22:00 CEST = 20:00Z, Sun 06:00 CET = 05:00Z (the night lasts 9 hours).
    assert switches(HEURES_CREUSES, utc(2026, 10, 24, 12), utc(2026, 10, 26, 12)) == [
        (utc(2026, 10, 24, 20), 2),
        (utc(2026, 10, 25, 5), 1),
        (utc(2026, 10, 25, 21), 2),
        (utc(2026, 10, 26, 5), 1),
    ]


@pytest.mark.parametrize("start", ["02:00", "02:30", "02:59"])
def test_a_start_skipped_by_spring_forward_takes_effect_after_the_gap(start):
    plan = Schedule(time_zone=PARIS, rules=(rule(6, f"{start}-05:00", 2),), default=1)
    assert switches(plan, utc(2026, 3, 28, 12), utc(2026, 3, 30)) == [
        (utc(2026, 3, 29, 1), 2),  # 03:00 CEST, the first instant after the gap
        (utc(2026, 3, 29, 3), 1),  # 05:00 CEST
    ]
    assert planned_tariff(plan, utc(2026, 3, 29, 1) - US) == 1


def test_an_end_skipped_by_spring_forward_takes_effect_after_the_gap():
    plan = Schedule(time_zone=PARIS, rules=(rule(6, "01:00-02:30", 2),), default=1)
    assert switches(plan, utc(2026, 3, 28, 12), utc(2026, 3, 30)) == [
        (utc(2026, 3, 29, 0), 2),  # 01:00 CET
        (utc(2026, 3, 29, 1), 1),  # 02:30 does not exist: 03:00 CEST
    ]


def test_a_rule_inside_the_gap_does_not_apply_that_day():
    plan = Schedule(time_zone=PARIS, rules=(rule(6, "02:10-02:50", 2),), default=1)
    # Found a week later, past the first 8 days examined.
    assert next_change(plan, utc(2026, 3, 28, 12)) == local(PARIS, 2026, 4, 5, 2, 10)
    assert next_change(plan, utc(2026, 3, 21, 12)) == local(PARIS, 2026, 3, 22, 2, 10)


def test_a_start_doubled_by_fall_back_takes_effect_at_its_first_occurrence():
    plan = Schedule(time_zone=PARIS, rules=(rule(6, "02:30-05:00", 2),), default=1)
    assert switches(plan, utc(2026, 10, 24, 12), utc(2026, 10, 26)) == [
        (utc(2026, 10, 25, 0, 30), 2),  # 02:30 CEST; not again at 02:30 CET (01:30Z)
        (utc(2026, 10, 25, 4), 1),  # 05:00 CET
    ]


def test_an_end_doubled_by_fall_back_takes_effect_at_its_first_occurrence():
    plan = Schedule(time_zone=PARIS, rules=(rule(6, "01:00-02:30", 2),), default=1)
    assert switches(plan, utc(2026, 10, 24, 12), utc(2026, 10, 26)) == [
        (utc(2026, 10, 24, 23), 2),  # 01:00 CEST
        (utc(2026, 10, 25, 0, 30), 1),  # the first 02:30 (CEST) ...
    ]
    # ... so the second pass through 02:00-02:30 (CET, 01:00Z-01:30Z) stays off the rule.
    assert planned_tariff(plan, utc(2026, 10, 25, 1, 15)) == 1


def test_a_day_skipped_whole_by_the_date_line_still_ends_the_night():
    # Samoa skipped 2011-12-30: Thursday 29th 23:59:59 was followed by Saturday 31st.
    plan = Schedule(time_zone="Pacific/Apia", rules=(rule(EVERY_DAY, "22:00-06:00", 2),))
    start, end = local("Pacific/Apia", 2011, 12, 29, 12), local("Pacific/Apia", 2011, 12, 31, 12)
    # Thursday's night ends at 31st 00:00 (its 06:00 is in the gap), where Friday's night,
    # whose 22:00 is in the gap too, takes over until Saturday 06:00: no switch between.
    assert switches(plan, start, end) == [
        (local("Pacific/Apia", 2011, 12, 29, 22), 2),
        (local("Pacific/Apia", 2011, 12, 31, 6), 1),
    ]
    assert planned_tariff(plan, local("Pacific/Apia", 2011, 12, 31, 3)) == 2


def test_a_fall_back_across_midnight_starts_the_next_day_at_its_first_midnight():
    # St John's fell back at 00:01 NDT to 23:01 NST on 2010-11-07: the end of Saturday
    # happened twice, the second time after Sunday had begun (00:00 NDT, 02:30Z).
    plan = Schedule(
        time_zone="America/St_Johns", holidays=frozenset({date(2010, 11, 7)}), holiday_tariff=2
    )
    assert switches(plan, utc(2010, 11, 6, 12), utc(2010, 11, 9)) == [
        (utc(2010, 11, 7, 2, 30), 2),
        (utc(2010, 11, 8, 3, 30), 1),  # Monday 00:00 NST
    ]
    # Saturday 23:30 again (NST, 03:00Z) is inside the holiday.
    assert planned_tariff(plan, utc(2010, 11, 7, 3)) == 2
    assert next_change(plan, utc(2010, 11, 7, 3)) == utc(2010, 11, 8, 3, 30)


# --- holidays ---------------------------------------------------------------------------


def test_a_holiday_takes_the_default_tariff_all_day_unless_told_otherwise():
    plan = Schedule(
        time_zone=BERLIN,
        rules=HT_NT.rules,
        default=2,
        holidays=frozenset(
            {date(2026, 5, 14)}  # Christi Himmelfahrt, a Thursday
        ),
    )
    assert switches(plan, local(BERLIN, 2026, 5, 13), local(BERLIN, 2026, 5, 15, 12)) == [
        (local(BERLIN, 2026, 5, 13, 6), 1),
        (local(BERLIN, 2026, 5, 13, 22), 2),
        (local(BERLIN, 2026, 5, 15, 6), 1),
    ]


def test_off_peak_holiday_joins_the_nights_around_it():
    plan = Schedule(
        time_zone=PARIS,
        rules=HEURES_CREUSES.rules,
        holidays=frozenset({date(2026, 5, 1)}),  # a Friday
        holiday_tariff=2,
    )
    assert switches(plan, local(PARIS, 2026, 4, 30), local(PARIS, 2026, 5, 2, 12)) == [
        (local(PARIS, 2026, 4, 30, 6), 1),
        (local(PARIS, 2026, 4, 30, 22), 2),
        (local(PARIS, 2026, 5, 2, 6), 1),
    ]


def test_a_holiday_cuts_rules_crossing_midnight_into_it_and_keeps_their_tail_out_of_it():
    plan = Schedule(
        time_zone=PARIS,
        rules=HEURES_CREUSES.rules,
        holidays=frozenset({date(2026, 5, 1)}),
        holiday_tariff=1,
    )
    assert switches(plan, local(PARIS, 2026, 4, 30), local(PARIS, 2026, 5, 2, 12)) == [
        (local(PARIS, 2026, 4, 30, 6), 1),
        (local(PARIS, 2026, 4, 30, 22), 2),
        (local(PARIS, 2026, 5, 1), 1),  # Thursday's night gives way to the holiday
        (local(PARIS, 2026, 5, 2), 2),  # Friday's night is back after it: 00:00-06:00
        (local(PARIS, 2026, 5, 2, 6), 1),
    ]


def test_a_holiday_far_ahead_is_the_next_change_of_a_steady_plan():
    christmas = frozenset({date(2030, 12, 25), date(2030, 12, 26)})
    plan = Schedule(time_zone=PARIS, default=1, holidays=christmas, holiday_tariff=2)
    assert switches(plan, utc(2026, 1, 1), utc(2040, 1, 1)) == [
        (local(PARIS, 2030, 12, 25), 2),
        (local(PARIS, 2030, 12, 27), 1),  # two holidays in a row: one run
    ]
    assert next_change(plan, local(PARIS, 2030, 12, 26, 12)) == local(PARIS, 2030, 12, 27)


def test_holidays_at_the_steady_tariff_change_nothing():
    plan = Schedule(
        time_zone=PARIS,
        rules=(rule(EVERY_DAY, "00:00-24:00", 2),),
        holidays=frozenset({date(2026, 12, 25)}),
        holiday_tariff=2,
    )
    assert next_change(plan, utc(2026, 1, 1)) is None


def test_a_month_of_holidays_hides_the_rules_until_it_ends():
    closure = frozenset(date(2026, 8, 1) + timedelta(days=n) for n in range(30))
    plan = Schedule(time_zone=BERLIN, rules=HT_NT.rules, default=2, holidays=closure)
    # From Friday 31 July 22:00, NT until Monday 31 August 06:00.
    assert next_change(plan, local(BERLIN, 2026, 7, 31, 22)) == local(BERLIN, 2026, 8, 31, 6)


SPLIT_AT_MIDNIGHT = Schedule(
    time_zone=PARIS, rules=(rule(EVERY_DAY, "22:00-24:00", 2), rule(EVERY_DAY, "00:00-06:00", 2))
)


@pytest.mark.parametrize("plan", [HEURES_CREUSES, SPLIT_AT_MIDNIGHT], ids=["one", "split"])
@pytest.mark.parametrize("days", [7, 8, 9, 10, 17])
def test_a_run_of_off_peak_holidays_is_one_off_peak_stretch(plan, days):
    # Longer than the 8 local days next_change examines at once: their edges must match.
    closure = frozenset(date(2026, 8, 1) + timedelta(days=n) for n in range(days))
    plan = Schedule(time_zone=PARIS, rules=plan.rules, holidays=closure, holiday_tariff=2)
    reopening = date(2026, 8, 1) + timedelta(days=days)
    end = local(PARIS, reopening.year, reopening.month, reopening.day, 6)
    assert next_change(plan, local(PARIS, 2026, 8, 1, 12)) == end
    assert next_change(plan, local(PARIS, 2026, 7, 31, 23)) == end


# --- validation of a schedule built in code ---------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        (
            Schedule(time_zone="Mars/Olympus"),
            "tariff_plan.time_zone: 'Mars/Olympus' is not an IANA time zone",
        ),
        (Schedule(time_zone=PARIS, default=3), "tariff_plan.default: 3 is not a tariff"),
        (Schedule(time_zone=PARIS, default=True), "tariff_plan.default: True is not a tariff"),
        (
            Schedule(time_zone=PARIS, holiday_tariff=0),
            "tariff_plan.holiday_tariff: 0 is not a tariff",
        ),
        (
            Schedule(time_zone=PARIS, rules=(rule(frozenset(), "08:00-09:00", 2),)),
            "tariff_plan.rules[0].days: no days",
        ),
        (
            Schedule(time_zone=PARIS, rules=(rule(7, "08:00-09:00", 2),)),
            "tariff_plan.rules[0].days: [7] are not all days 0 (Monday) to 6 (Sunday)",
        ),
        (
            Schedule(time_zone=PARIS, rules=(rule(1, "08:00-08:00", 2),)),
            "tariff_plan.rules[0]: from and to are both 08:00; a rule needs a length",
        ),
        (
            Schedule(
                time_zone=PARIS,
                rules=(Rule(days=EVERY_DAY, start=time(8, tzinfo=UTC), end=time(9), tariff=2),),
            ),
            "tariff_plan.rules[0].from: 08:00:00+00:00 is not a plain wall time",
        ),
        (
            Schedule(
                time_zone=PARIS,
                rules=(Rule(days=EVERY_DAY, start=time(8), end=time(9, 0, 0, 5), tariff=2),),
            ),
            "tariff_plan.rules[0].to: 09:00:00.000005 is not a plain wall time",
        ),
    ],
)
def test_validate_schedule_names_the_field(schedule, message):
    with pytest.raises(TariffPlanError) as caught:
        validate_schedule(schedule)
    assert str(caught.value).startswith(message)


def test_validate_schedule_accepts_a_good_plan():
    validate_schedule(HEURES_CREUSES)
    validate_schedule(HT_NT, where="meters[0].tariff_plan")


def test_tariff_plan_error_is_a_value_error():
    assert issubclass(TariffPlanError, ValueError)


# --- signal -----------------------------------------------------------------------------

HC_HP = Signal(topic="homeassistant/sensor/tarif/state", mapping={"HC": 2, "Heures pleines": 1})


@pytest.mark.parametrize(
    ("payload", "tariff"),
    [
        ("HC", 2),
        ("hc", 2),
        ("  Hc\n", 2),
        (b"HC", 2),
        ("heures PLEINES", 1),
        ('{"state": "HC"}', 2),
        (b' {"state": " heures pleines ", "attributes": {}} ', 1),
        ('"HC"', 2),  # a bare JSON string
        ("HP", None),
        ("", None),
        ("unavailable", None),
        ('{"state": "HP"}', None),
        ('{"value": "HC"}', None),  # no "state" field
        ('{"state": null}', None),
        ("{not json", None),
        ('{"state": ' * 100_000, None),  # too deep for the parser: still just unknown
        (b"\xff\xfe", None),  # not UTF-8
    ],
)
def test_signal_payload_to_tariff(payload, tariff):
    assert signal_tariff(HC_HP, payload) == tariff


def test_signal_numeric_payloads():
    signal = Signal(topic="t", mapping={"1": 1, "2": 2})
    assert signal_tariff(signal, "2") == 2
    assert signal_tariff(signal, '{"state": 2}') == 2
    assert signal_tariff(signal, '{"state": true}') is None  # not 1


def test_signals_are_equal_by_value_and_hashable():
    again = Signal(topic=HC_HP.topic, mapping=dict(HC_HP.mapping))
    assert again == HC_HP
    assert hash(again) == hash(HC_HP)


# --- properties -------------------------------------------------------------------------

# Zones and their DST transitions, so the properties meet the odd nights often.
TRANSITIONS = {
    "UTC": (),
    "Asia/Kolkata": (),
    PARIS: (utc(2026, 3, 29, 1), utc(2026, 10, 25, 1)),
    "America/New_York": (utc(2026, 3, 8, 7), utc(2026, 11, 1, 6)),
    # 30-minute DST at 02:00.
    "Australia/Lord_Howe": (utc(2026, 4, 4, 15), utc(2026, 10, 3, 15, 30)),
    # DST at midnight: 00:00-01:00 skipped, 23:00-24:00 doubled.
    "America/Santiago": (utc(2026, 4, 5, 3), utc(2026, 9, 6, 4)),
    # DST at 00:01 until 2010: the end of Saturday repeated after Sunday 00:00.
    "America/St_Johns": (utc(2010, 3, 14, 3, 31), utc(2010, 11, 7, 2, 31)),
    # Skipped the whole of 2011-12-30 crossing the date line.
    "Pacific/Apia": (utc(2011, 4, 2, 14), utc(2011, 9, 24, 14), utc(2011, 12, 30, 10)),
}
WALL_TIMES = st.one_of(
    st.sampled_from(
        [time(0), time(0, 30), time(2), time(2, 30), time(3), time(6), time(22), time(23, 30)]
    ),
    st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 59])),
)
RULES = st.builds(
    Rule,
    days=st.frozensets(st.integers(0, 6), min_size=1),
    start=WALL_TIMES,
    end=WALL_TIMES,
    tariff=st.sampled_from(TARIFFS),
)


def instants(zone: str) -> st.SearchStrategy[datetime]:
    """Any instant in a couple of years, or one within 36 hours of a DST transition."""
    anywhere = st.datetimes(datetime(2025, 6, 1), datetime(2027, 6, 1), timezones=st.just(UTC))
    if not TRANSITIONS[zone]:
        return anywhere
    near = st.builds(
        lambda base, minutes: base + timedelta(minutes=minutes),
        st.sampled_from(TRANSITIONS[zone]),
        st.integers(-36 * 60, 36 * 60),
    )
    return st.one_of(anywhere, near)


@st.composite
def schedules(draw: st.DrawFn, zone: str, near: date) -> Schedule:
    """Valid schedules, holidays around ``near``: rules overlapping the ones kept are dropped."""
    kept: list[Rule] = []
    for candidate in draw(st.lists(RULES, min_size=1, max_size=5)):
        try:
            validate_schedule(Schedule(time_zone="UTC", rules=(*kept, candidate)))
        except TariffPlanError:
            continue
        kept.append(candidate)
    offsets = draw(st.sets(st.integers(-3, 25), max_size=6))
    run_start = draw(st.integers(-3, 10))  # and a run of holidays, up to three weeks
    offsets |= set(range(run_start, run_start + draw(st.integers(0, 21))))
    # Mostly a default the first rule differs from: rules at the default change nothing.
    first = kept[0].tariff if kept else 1  # the only candidate may have been invalid
    other = 2 if first == 1 else 1
    return Schedule(
        time_zone=zone,
        rules=tuple(kept),
        default=draw(st.sampled_from([other, other, first])),
        holidays=frozenset(near + timedelta(days=n) for n in offsets),
        holiday_tariff=draw(st.sampled_from([None, *TARIFFS])),
    )


@settings(max_examples=300, deadline=None)
@given(data=st.data(), zone=st.sampled_from(sorted(TRANSITIONS)))
def test_the_tariff_holds_until_next_change_and_differs_there(data, zone):
    at = data.draw(instants(zone))
    schedule = data.draw(schedules(zone, at.date()))
    current = planned_tariff(schedule, at)
    change = next_change(schedule, at)
    if change is None:
        assert all(planned_tariff(schedule, at + timedelta(days=n)) == current for n in range(40))
        return
    assert change > at
    assert change.tzinfo is UTC
    assert planned_tariff(schedule, change) != current
    between = [at + (change - at) * k / 7 for k in range(1, 7)] + [change - US]
    assert all(planned_tariff(schedule, instant) == current for instant in between)


def oracle(schedule: Schedule, wall: datetime) -> int:
    """The tariff at a naive wall time, straight from the rules (no DST: zone UTC)."""
    if wall.date() in schedule.holidays:
        return schedule.default if schedule.holiday_tariff is None else schedule.holiday_tariff
    today, now = wall.weekday(), wall.time()
    for r in schedule.rules:
        if r.start < r.end:
            if today in r.days and r.start <= now < r.end:
                return r.tariff
        elif (today in r.days and now >= r.start) or ((today - 1) % 7 in r.days and now < r.end):
            return r.tariff
    return schedule.default


def oracle_next_change(schedule: Schedule, wall: datetime) -> datetime | None:
    """The first rule boundary or midnight after ``wall`` where the oracle's tariff changes."""
    walls = sorted({time(0)} | {r.start for r in schedule.rules} | {r.end for r in schedule.rules})
    current = oracle(schedule, wall)
    for offset in range(40):
        day = wall.date() + timedelta(days=offset)
        for moment in (datetime.combine(day, w) for w in walls):
            if moment > wall and oracle(schedule, moment) != current:
                return moment
    return None


@settings(max_examples=300, deadline=None)
@given(data=st.data(), at=instants("UTC"))
def test_in_utc_the_plan_agrees_with_a_plain_reading_of_the_rules(data, at):
    schedule = data.draw(schedules("UTC", at.date()))
    wall = at.replace(tzinfo=None)
    assert planned_tariff(schedule, at) == oracle(schedule, wall)
    expected = oracle_next_change(schedule, wall)
    change = next_change(schedule, at)
    assert change == (None if expected is None else expected.replace(tzinfo=UTC))


# --- parsing ----------------------------------------------------------------------------


def test_parse_heures_creuses_as_written_in_yaml():
    # What PyYAML gives for unquoted dates: date objects.
    data = {
        "mode": "schedule",
        "time_zone": PARIS,
        "default": "T1",
        "rules": [{"days": "mon-sun", "from": "22:00", "to": "06:00", "tariff": "T2"}],
        "holidays": [date(2026, 5, 1), "2026-12-25"],
        "holiday_tariff": "t2",
    }
    assert parse_plan(data) == Schedule(
        time_zone=PARIS,
        rules=HEURES_CREUSES.rules,
        default=1,
        holidays=frozenset({date(2026, 5, 1), date(2026, 12, 25)}),
        holiday_tariff=2,
    )


def test_parse_ht_nt_in_other_spellings():
    data = {
        "mode": "schedule",
        "time_zone": BERLIN,
        "default": 2,
        "rules": [{"days": ["Monday-Friday"], "from": "6:00", "to": "22:00:00", "tariff": 1}],
    }
    assert parse_plan(data) == HT_NT


def test_parse_null_optional_keys_as_absent():
    data = {"mode": "schedule", "time_zone": PARIS, "default": None, "rules": None}
    assert parse_plan(data | {"holidays": None, "holiday_tariff": None}) == Schedule(
        time_zone=PARIS
    )


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ("mon", {0}),
        (" SUN ", {6}),
        ("wednesday", {2}),
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("fri-mon", {4, 5, 6, 0}),  # wraps over the weekend
        ("sat - sun", {5, 6}),
        ("tue-tue", {1}),
        ("mon-sun", set(range(7))),
        (["mon", "wed-thu", "wed"], {0, 2, 3}),
        (("sat", "sun"), {5, 6}),
    ],
)
def test_parse_days(days, expected):
    data = {"days": days, "from": "08:00", "to": "09:00", "tariff": 2}
    plan = parse_plan({"mode": "schedule", "time_zone": PARIS, "rules": [data]})
    assert isinstance(plan, Schedule)
    assert plan.rules[0].days == expected


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("08:00", "09:30", (time(8), time(9, 30))),
        ("8:05", "09:30:15", (time(8, 5), time(9, 30, 15))),
        ("22:00", "24:00", (time(22), time(0))),
        ("22:00", "00:00", (time(22), time(0))),
        ("00:00", "24:00", (time(0), time(0))),  # the whole day
        ("00:00", "24:00:00", (time(0), time(0))),
    ],
)
def test_parse_times(start, end, expected):
    data = {"days": "mon", "from": start, "to": end, "tariff": 2}
    plan = parse_plan({"mode": "schedule", "time_zone": PARIS, "rules": [data]})
    assert isinstance(plan, Schedule)
    assert (plan.rules[0].start, plan.rules[0].end) == expected


@pytest.mark.parametrize("tariff", [1, "1", "T1", "t1", " T1 "])
def test_parse_tariff_spellings(tariff):
    plan = parse_plan({"mode": "schedule", "time_zone": PARIS, "default": tariff})
    assert isinstance(plan, Schedule)
    assert plan.default == 1


def test_parse_signal():
    data = {"mode": "signal", "topic": "edf/tarif", "mapping": {"HC": "T2", "HP": 1, 2: 2}}
    plan = parse_plan(data)
    assert plan == Signal(topic="edf/tarif", mapping={"HC": 2, "HP": 1, "2": 2})
    assert isinstance(plan, Signal)
    assert signal_tariff(plan, " hc ") == 2
    with pytest.raises(TypeError):  # read-only
        plan.mapping["HC"] = 1  # type: ignore[index]


SCHEDULE = {"mode": "schedule", "time_zone": PARIS}
SIGNAL = {"mode": "signal", "topic": "edf/tarif", "mapping": {"HC": 2}}


def with_rules(*rules: tuple[object, object, object, object]) -> dict[str, object]:
    keys = ("days", "from", "to", "tariff")
    return SCHEDULE | {"rules": [dict(zip(keys, values, strict=True)) for values in rules]}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (["mode", "schedule"], "tariff_plan: expected a mapping, got list"),
        ({}, "tariff_plan.mode: missing (expected 'schedule' or 'signal')"),
        ({"mode": "clock"}, "tariff_plan.mode: 'clock' is not 'schedule' or 'signal'"),
        # schedule: keys and types
        (
            SCHEDULE | {"rule": []},
            "tariff_plan: unknown key 'rule'; "
            "expected mode, time_zone, default, rules, holidays, holiday_tariff",
        ),
        (
            SCHEDULE | {"topic": "t", 3: 1},
            "tariff_plan: unknown keys 'topic', 3; "
            "expected mode, time_zone, default, rules, holidays, holiday_tariff",
        ),
        ({"mode": "schedule"}, "tariff_plan.time_zone: missing"),
        (SCHEDULE | {"time_zone": 1}, "tariff_plan.time_zone: expected text, got int"),
        (
            SCHEDULE | {"time_zone": "Europe/Pariss"},
            "tariff_plan.time_zone: 'Europe/Pariss' is not an IANA time zone",
        ),
        (
            SCHEDULE | {"time_zone": "../etc/passwd"},
            "tariff_plan.time_zone: '../etc/passwd' is not an IANA time zone",
        ),
        (SCHEDULE | {"time_zone": ""}, "tariff_plan.time_zone: '' is not an IANA time zone"),
        (
            SCHEDULE | {"default": "T3"},
            "tariff_plan.default: 'T3' is not a tariff (expected T1 or T2)",
        ),
        (SCHEDULE | {"default": 0}, "tariff_plan.default: 0 is not a tariff (expected T1 or T2)"),
        (
            SCHEDULE | {"default": True},
            "tariff_plan.default: True is not a tariff (expected T1 or T2)",
        ),
        (
            SCHEDULE | {"default": "tt1"},
            "tariff_plan.default: 'tt1' is not a tariff (expected T1 or T2)",
        ),
        (
            SCHEDULE | {"default": 1.0},
            "tariff_plan.default: 1.0 is not a tariff (expected T1 or T2)",
        ),
        (
            SCHEDULE | {"holiday_tariff": "off-peak"},
            "tariff_plan.holiday_tariff: 'off-peak' is not a tariff (expected T1 or T2)",
        ),
        # rules
        (SCHEDULE | {"rules": {"days": "mon"}}, "tariff_plan.rules: expected a list, got dict"),
        (
            SCHEDULE | {"rules": ["22:00-06:00"]},
            "tariff_plan.rules[0]: expected a mapping, got str",
        ),
        (
            SCHEDULE | {"rules": [{"days": "mon", "start": "22:00"}]},
            "tariff_plan.rules[0]: unknown key 'start'; expected days, from, to, tariff",
        ),
        (
            SCHEDULE | {"rules": [{"days": "mon", "from": "22:00", "tariff": 2}]},
            "tariff_plan.rules[0].to: missing",
        ),
        (
            with_rules(("mo", "08:00", "09:00", 2)),
            "tariff_plan.rules[0].days: 'mo' is not a day "
            "(mon..sun, monday..sunday, or a range like mon-fri)",
        ),
        (
            with_rules(("mon-xyz", "08:00", "09:00", 2)),
            "tariff_plan.rules[0].days: 'mon-xyz' is not a day "
            "(mon..sun, monday..sunday, or a range like mon-fri)",
        ),
        (
            with_rules(("mon-wed-fri", "08:00", "09:00", 2)),
            "tariff_plan.rules[0].days: 'mon-wed-fri' is not a day "
            "(mon..sun, monday..sunday, or a range like mon-fri)",
        ),
        (
            with_rules(("mon,tue", "08:00", "09:00", 2)),
            "tariff_plan.rules[0].days: 'mon,tue' is not a day "
            "(mon..sun, monday..sunday, or a range like mon-fri)",
        ),
        (
            with_rules((["mon", "funday"], "08:00", "09:00", 2)),
            "tariff_plan.rules[0].days[1]: 'funday' is not a day "
            "(mon..sun, monday..sunday, or a range like mon-fri)",
        ),
        (
            with_rules(([0], "08:00", "09:00", 2)),
            "tariff_plan.rules[0].days[0]: 0 is not a day "
            "(mon..sun, monday..sunday, or a range like mon-fri)",
        ),
        (with_rules(([], "08:00", "09:00", 2)), "tariff_plan.rules[0].days: no days"),
        (
            with_rules((1, "08:00", "09:00", 2)),
            "tariff_plan.rules[0].days: 1 is not a day, a range of days or a list of them",
        ),
        (
            with_rules(("mon", "08:00", "09:00", 2), ("tue", "25:00", "09:00", 2)),
            "tariff_plan.rules[1].from: '25:00' is not a time HH:MM",
        ),
        (
            with_rules(("mon", "12:60", "13:00", 2)),
            "tariff_plan.rules[0].from: '12:60' is not a time HH:MM",
        ),
        (
            with_rules(("mon", "8h", "13:00", 2)),
            "tariff_plan.rules[0].from: '8h' is not a time HH:MM",
        ),
        (with_rules(("mon", "", "13:00", 2)), "tariff_plan.rules[0].from: '' is not a time HH:MM"),
        (
            with_rules(("mon", "\u0668:00", "13:00", 2)),  # an Arabic-Indic 8
            "tariff_plan.rules[0].from: '\u0668:00' is not a time HH:MM",
        ),
        (
            with_rules(("mon", "12:00", "13:00:60", 2)),
            "tariff_plan.rules[0].to: '13:00:60' is not a time HH:MM",
        ),
        (
            with_rules(("mon", "12:00", "24:01", 2)),
            "tariff_plan.rules[0].to: '24:01' is not a time HH:MM",
        ),
        (
            with_rules(("mon", "24:00", "06:00", 2)),
            "tariff_plan.rules[0].from: '24:00' is not a time HH:MM (24:00 only as 'to')",
        ),
        (
            with_rules(("mon", 1320, "06:00", 2)),  # YAML 1.1's reading of 22:00
            'tariff_plan.rules[0].from: 1320 is not a time HH:MM (quote times in YAML: "22:00")',
        ),
        (
            with_rules(("mon", time(22), "06:00", 2)),
            "tariff_plan.rules[0].from: datetime.time(22, 0) is not a time HH:MM",
        ),
        (
            with_rules(("mon", "08:00", "08:00", 2)),
            "tariff_plan.rules[0]: from and to are both 08:00; "
            "a rule needs a length (a whole day is 00:00-24:00)",
        ),
        (
            with_rules(("mon", "00:00", "00:00", 2)),
            "tariff_plan.rules[0]: from and to are both 00:00; write to: '24:00' for a whole day",
        ),
        (
            with_rules(("mon", "08:00", "09:00", 3)),
            "tariff_plan.rules[0].tariff: 3 is not a tariff (expected T1 or T2)",
        ),
        # overlapping rules, even with the same tariff
        (
            with_rules(("mon", "08:00", "12:00", 1), ("mon", "11:00", "13:00", 2)),
            "tariff_plan.rules[1]: overlaps tariff_plan.rules[0] on mon 11:00-12:00",
        ),
        (
            with_rules(("mon", "08:00", "12:00", 2), ("mon", "08:00", "12:00", 2)),
            "tariff_plan.rules[1]: overlaps tariff_plan.rules[0] on mon 08:00-12:00",
        ),
        (
            with_rules(("tue", "05:00", "07:00", 1), ("mon", "22:00", "06:00", 2)),
            "tariff_plan.rules[1]: overlaps tariff_plan.rules[0] on tue 05:00-06:00",
        ),
        (
            with_rules(("mon", "22:00", "04:00", 2), ("mon", "23:00", "01:00", 2)),
            "tariff_plan.rules[1]: overlaps tariff_plan.rules[0] on mon 23:00-tue 01:00",
        ),
        (
            with_rules(
                ("mon", "20:00", "22:00", 1),
                ("sun", "22:00", "06:00", 2),
                ("mon", "00:00", "01:00", 1),
            ),
            "tariff_plan.rules[2]: overlaps tariff_plan.rules[1] on mon 00:00-01:00",
        ),
        (
            with_rules(("mon-fri", "22:00", "06:00", 2), ("sat-sun", "00:00", "24:00", 2)),
            "tariff_plan.rules[1]: overlaps tariff_plan.rules[0] on sat 00:00-06:00",
        ),
        (
            with_rules(("mon-fri", "06:00", "22:00", 1), ("fri-mon", "21:00", "24:00", 2)),
            "tariff_plan.rules[1]: overlaps tariff_plan.rules[0] on mon 21:00-22:00",
        ),
        (
            with_rules(
                ("mon", "00:00", "24:00", 2),
                ("tue", "00:00", "24:00", 2),
                ("mon", "12:00", "13:00", 1),
            ),
            "tariff_plan.rules[2]: overlaps tariff_plan.rules[0] on mon 12:00-13:00",
        ),
        # holidays
        (SCHEDULE | {"holidays": "2026-05-01"}, "tariff_plan.holidays: expected a list, got str"),
        (
            SCHEDULE | {"holidays": ["2026-05-01", "2026-02-30"]},
            "tariff_plan.holidays[1]: '2026-02-30' is not a date YYYY-MM-DD",
        ),
        (
            SCHEDULE | {"holidays": ["01/05/2026"]},
            "tariff_plan.holidays[0]: '01/05/2026' is not a date YYYY-MM-DD",
        ),
        (
            SCHEDULE | {"holidays": ["\u0662026-05-01"]},  # an Arabic-Indic 2
            "tariff_plan.holidays[0]: '\u0662026-05-01' is not a date YYYY-MM-DD",
        ),
        (
            SCHEDULE | {"holidays": ["20260501"]},
            "tariff_plan.holidays[0]: '20260501' is not a date YYYY-MM-DD",
        ),
        (
            SCHEDULE | {"holidays": [datetime(2026, 5, 1, tzinfo=UTC)]},
            "tariff_plan.holidays[0]: datetime.datetime(2026, 5, 1, 0, 0, "
            "tzinfo=datetime.timezone.utc) is not a date YYYY-MM-DD",
        ),
        # signal
        (
            SIGNAL | {"rules": []},
            "tariff_plan: unknown key 'rules'; expected mode, topic, mapping",
        ),
        ({"mode": "signal", "mapping": {"HC": 2}}, "tariff_plan.topic: missing"),
        (SIGNAL | {"topic": " "}, "tariff_plan.topic: empty"),
        (SIGNAL | {"topic": ["a"]}, "tariff_plan.topic: expected text, got list"),
        (
            SIGNAL | {"topic": "edf/+/tarif"},
            "tariff_plan.topic: 'edf/+/tarif' has an MQTT wildcard; follow one topic",
        ),
        (
            SIGNAL | {"topic": "edf/#"},
            "tariff_plan.topic: 'edf/#' has an MQTT wildcard; follow one topic",
        ),
        ({"mode": "signal", "topic": "t"}, "tariff_plan.mapping: missing"),
        (
            SIGNAL | {"mapping": {}},
            "tariff_plan.mapping: empty; map at least one payload to T1 or T2",
        ),
        (SIGNAL | {"mapping": ["HC"]}, "tariff_plan.mapping: expected a mapping, got list"),
        (
            SIGNAL | {"mapping": {"HC": "T3"}},
            "tariff_plan.mapping['HC']: 'T3' is not a tariff (expected T1 or T2)",
        ),
        (
            SIGNAL | {"mapping": {True: 2}},
            "tariff_plan.mapping: key True is not a payload text "
            "(YAML reads unquoted on/off/yes/no/true/false as booleans: quote them)",
        ),
        (SIGNAL | {"mapping": {1.5: 2}}, "tariff_plan.mapping: key 1.5 is not a payload text"),
        (SIGNAL | {"mapping": {" ": 2}}, "tariff_plan.mapping: empty payload key ' '"),
        (
            SIGNAL | {"mapping": {"HC": 2, " hc": 2}},
            "tariff_plan.mapping: 'HC' and ' hc' are the same payload "
            "(case and surrounding spaces are ignored)",
        ),
    ],
)
def test_parse_errors_name_the_field(data, message):
    with pytest.raises(TariffPlanError) as caught:
        parse_plan(data)
    assert str(caught.value) == message


def test_parse_errors_start_with_the_path_given():
    data = with_rules(("mon", "08:00", "12:00", 1), ("mon", "11:00", "13:00", 2))
    with pytest.raises(TariffPlanError) as caught:
        parse_plan(data, where="meters[2].tariff_plan")
    assert str(caught.value) == (
        "meters[2].tariff_plan.rules[1]: overlaps meters[2].tariff_plan.rules[0] on mon 11:00-12:00"
    )


# --- back to plain data, and descriptions -----------------------------------------------


def test_plan_to_dict_of_heures_creuses():
    plan = Schedule(
        time_zone=PARIS,
        rules=(rule(EVERY_DAY, "22:00-24:00", 2), rule(EVERY_DAY, "00:00-06:00", 2)),
        holidays=frozenset({date(2026, 12, 25), date(2026, 5, 1)}),
        holiday_tariff=2,
    )
    assert plan_to_dict(plan) == {
        "mode": "schedule",
        "time_zone": PARIS,
        "default": "T1",
        "rules": [
            {"days": "mon-sun", "from": "22:00", "to": "24:00", "tariff": "T2"},
            {"days": "mon-sun", "from": "00:00", "to": "06:00", "tariff": "T2"},
        ],
        "holidays": ["2026-05-01", "2026-12-25"],
        "holiday_tariff": "T2",
    }


@pytest.mark.parametrize(
    ("days", "text"),
    [
        ({0}, "mon"),
        ({0, 1, 2, 3, 4}, "mon-fri"),
        ({5, 6}, "sat-sun"),
        ({4, 5, 6, 0}, "fri-mon"),
        ({6, 0}, "sun-mon"),
        ({0, 2, 3, 4}, ["mon", "wed-fri"]),
        ({0, 2, 6}, ["wed", "sun-mon"]),
        (set(range(7)), "mon-sun"),
    ],
)
def test_format_days_as_runs(days, text):
    assert format_days(frozenset(days)) == text


def test_describe_plans_for_logs():
    holidays = frozenset({date(2026, 5, 1), date(2026, 12, 25)})
    assert describe_plan(HEURES_CREUSES) == "schedule Europe/Paris: mon-sun 22:00-06:00 T2, else T1"
    assert describe_plan(HT_NT) == "schedule Europe/Berlin: mon-fri 06:00-22:00 T1, else T2"
    assert (
        describe_plan(Schedule(time_zone=PARIS, holidays=holidays, holiday_tariff=2))
        == "schedule Europe/Paris: T1; 2 holidays at T2"
    )
    plan = Schedule(
        time_zone="UTC",
        rules=(rule(frozenset({0, 2, 3}), "00:00-24:00", 2),),
        holidays=frozenset({date(2026, 5, 1)}),
    )
    assert (
        describe_plan(plan) == "schedule UTC: mon,wed-thu 00:00-24:00 T2, else T1; 1 holiday at T1"
    )
    assert describe_plan(HC_HP) == (
        "signal homeassistant/sensor/tarif/state: HC -> T2, Heures pleines -> T1"
    )


SIGNALS = st.builds(
    Signal,
    topic=st.text(
        st.characters(exclude_characters="+#", exclude_categories=("Cs",)), min_size=1
    ).filter(str.strip),
    # One key per payload_key: parse_plan refuses "HC" next to "hc".
    mapping=st.dictionaries(
        st.text(min_size=1).filter(str.strip), st.sampled_from(TARIFFS), min_size=1
    )
    .map(lambda mapping: {payload_key(k): (k, v) for k, v in mapping.items()})
    .map(lambda by_key: dict(by_key.values())),
)


@settings(max_examples=200, deadline=None)
@given(
    data=st.data(),
    zone=st.sampled_from(sorted(TRANSITIONS)),
    near=st.dates(date(1900, 1, 1), date(2200, 1, 1)),
)
def test_schedules_survive_plan_to_dict_and_back(data, zone, near):
    plan = data.draw(schedules(zone, near))
    plain = plan_to_dict(plan)
    assert json.loads(json.dumps(plain)) == plain
    assert parse_plan(plain) == plan
    assert isinstance(describe_plan(plan), str)


@settings(max_examples=200, deadline=None)
@given(plan=SIGNALS)
def test_signals_survive_plan_to_dict_and_back(plan):
    plain = plan_to_dict(plan)
    assert json.loads(json.dumps(plain)) == plain
    assert parse_plan(plain) == plan
    assert all(signal_tariff(plan, key) == tariff for key, tariff in plan.mapping.items())


# --- rules as text (the integration's form) ----------------------------------------------


def test_rules_from_text_round_trip() -> None:
    from countis.tariff_plan_parse import rules_from_text, rules_to_text  # noqa: PLC0415

    text = "mon-thu 22:00-06:00 T2\nsat,sun 00:00-24:00 t2"
    rules = rules_from_text(text)
    assert rules == [
        {"days": ["mon-thu"], "from": "22:00", "to": "06:00", "tariff": "T2"},
        {"days": ["sat", "sun"], "from": "00:00", "to": "24:00", "tariff": "t2"},
    ]
    plan = parse_plan({"mode": "schedule", "time_zone": "Europe/Paris", "rules": rules})
    assert isinstance(plan, Schedule)
    assert rules_to_text(plan.rules) == "mon-thu 22:00-06:00 T2\nsat-sun 00:00-24:00 T2"
    assert rules_from_text("mon 08:00-09:00 T2; tue 08:00-09:00 T2")[1]["days"] == ["tue"]
    assert rules_from_text("  \n") == []


@pytest.mark.parametrize("line", ["mon-fri 22:00 T2", "mon 22:00-06:00", "22:00-06:00 T2 mon x"])
def test_rules_from_text_names_the_bad_line(line: str) -> None:
    from countis.tariff_plan_parse import rules_from_text  # noqa: PLC0415

    with pytest.raises(TariffPlanError, match=r"^rules\[1\]: .* is not 'days HH:MM-HH:MM T1\|T2'"):
        rules_from_text(f"sat 00:00-24:00 T2\n{line}", where="rules")
