"""The session as tariff master: switches at boundaries, re-asserts, overrides, signals.

A scripted meter and a manual clock (Unix seconds, UTC plans): no sockets, no sleeps.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from countis.config import MeterConfig
from countis.errors import ConfigError
from countis.session import MeterSession
from countis.tariff_master import TariffLine
from countis.tariff_plan_parse import parse_plan

from tests.scripted import ManualClock, ScriptedMeter

NIGHT = {
    "mode": "schedule",
    "time_zone": "UTC",
    "rules": [{"days": "mon-sun", "from": "22:00", "to": "06:00", "tariff": "T2"}],
}
SIGNAL = {"mode": "signal", "topic": "grid/tariff", "mapping": {"peak": "T1", "offpeak": "T2"}}


def at(hour: int, minute: int = 0, day: int = 3) -> float:
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC).timestamp()


def make(plan=NIGHT, *, start: float, line: TariffLine | None = None, **config):
    """A session polling every minute, energies every two (hours pass in few polls)."""
    meter, clock = ScriptedMeter(), ManualClock(start)
    intervals = {"realtime_interval": 60.0, "energy_interval": 120.0, **config}
    cfg = MeterConfig(host="127.0.0.1", tariff_plan=parse_plan(plan), **intervals)
    session = MeterSession(cfg, meter, clock=clock, start=start, tariff_line=line)
    return session, meter, clock


async def poll_until(session: MeterSession, clock: ManualClock, until: float) -> None:
    """Poll on the session's own grid until ``until``."""
    while (due := max(clock.now, session.next_poll_at())) <= until:
        clock.now = due
        await session.poll()
    clock.now = until


def tariff_writes(meter: ScriptedMeter) -> list[tuple[int, bool]]:
    return [args for kind, args in meter.writes if kind == "tariff"]


async def test_the_plan_switches_at_its_boundaries():
    session, meter, clock = make(start=at(21, 58))
    await poll_until(session, clock, at(21, 59))
    assert tariff_writes(meter) == []  # T1 planned, T1 on the meter: nothing to write
    assert session.tariff_state()["tariff_planned"] == 1
    assert session.tariff_state()["next_tariff_change"] == at(22)
    await poll_until(session, clock, at(22))
    assert tariff_writes(meter) == [(2, False)]  # within one realtime interval of 22:00
    assert session.values["tariff"] == 2
    await poll_until(session, clock, at(6, day=4))
    assert tariff_writes(meter) == [(2, False), (1, False)]
    assert session.stats.tariff_switches == 2
    assert session.stats.tariff_reasserts == 0
    assert [s.reason for s in session.tariff.history] == ["plan", "plan"]


async def test_a_bridge_started_inside_a_t2_window_asserts_t2_at_start():
    session, meter, _ = make(start=at(23, 30))
    await session.poll()
    assert tariff_writes(meter) == [(2, False)]
    assert session.values["tariff"] == 2


async def test_a_tariff_changed_behind_our_back_comes_back_within_one_energy_poll():
    session, meter, clock = make(start=at(23))
    await session.poll()
    meter.move(tariff=1)  # the front panel, another master, a power cut
    await poll_until(session, clock, at(23, 2))  # the next energy poll (2 min)
    assert session.values["tariff"] == 2
    assert session.stats.tariff_reasserts == 1
    assert session.tariff.history[-1].reason == "reassert"


async def test_a_manual_switch_overrides_until_the_next_boundary():
    session, meter, clock = make(start=at(23))
    await session.poll()
    await session.set_tariff(1)
    assert session.tariff_state()["tariff_source"] == "manual"
    await poll_until(session, clock, at(5, 59, day=4))
    assert session.values["tariff"] == 1  # kept: no re-assertion of the plan's T2
    assert session.stats.tariff_reasserts == 0
    await poll_until(session, clock, at(6, day=4))
    assert session.tariff_state()["tariff_source"] == "schedule"  # the boundary ended it
    await poll_until(session, clock, at(22, day=4))
    assert tariff_writes(meter)[-1] == (2, False)


async def test_a_signal_plan_waits_for_a_fresh_signal():
    session, meter, clock = make(SIGNAL, start=at(12))
    await session.poll()
    assert session.tariff_state() == {
        "tariff_planned": None, "next_tariff_change": None, "tariff_source": "signal"}  # fmt: skip
    assert session.tariff_signal(b"offpeak", retained=True) is False  # published before us
    stale = '{"state": "offpeak", "last_changed": "2026-12-03T11:00:00+00:00"}'
    assert session.tariff_signal(stale) is False  # an hour old
    assert session.tariff_signal(b"weather") is False  # unknown payload: keep the tariff
    await poll_until(session, clock, at(12, 5))
    assert tariff_writes(meter) == []
    assert session.tariff_signal(b" OffPeak\n") is True
    assert session.next_poll_at() == float("-inf")  # polled at once to switch
    await session.poll()
    assert tariff_writes(meter) == [(2, False)]
    assert session.tariff_state()["tariff_planned"] == 2


async def test_meters_of_one_line_switch_with_one_broadcast():
    line = TariffLine()
    hourly = {"energy_interval": 3600.0, "tariff_broadcast": True}
    first, meter1, clock1 = make(start=at(21, 59), line=line, **hourly)
    second, meter2, clock2 = make(start=at(21, 59), line=line, **hourly)
    await first.poll()
    await second.poll()
    clock1.now = clock2.now = at(22)  # a realtime tick of both: the tariff is not read
    await first.poll()
    meter2.move(tariff=2)  # the broadcast reached the second meter too
    await second.poll()
    assert tariff_writes(meter1) == [(2, True)]  # one unit-0 write for the line
    assert tariff_writes(meter2) == []  # read back only
    assert second.values["tariff"] == 2
    assert meter2.reads[-1] == ("tariff",)


async def test_a_meter_the_broadcast_missed_gets_its_own_write():
    line = TariffLine()
    first, meter1, _ = make(start=at(22), line=line, tariff_broadcast=True)
    second, meter2, _ = make(start=at(22), line=line, tariff_broadcast=True)
    await first.poll()
    meter2.reads.clear()
    await second.poll()
    assert tariff_writes(meter1) == [(2, True)]
    assert meter2.reads[-1] == ("tariff",)  # it read back first
    assert tariff_writes(meter2) == [(2, False)]


def test_a_plan_on_a_read_only_meter_is_refused():
    with pytest.raises(ConfigError, match="read-only meter cannot follow a tariff plan"):
        MeterConfig(host="h", read_only=True, tariff_plan=parse_plan(NIGHT))
