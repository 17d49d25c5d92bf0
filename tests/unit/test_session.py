"""MeterSession: the per-reading pipeline on a scripted meter and a manual clock.

No sockets, no sleeps: the meter is tests.scripted.ScriptedMeter, time moves by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest
from countis.catalogue import LIFETIME_COUNTER_KEYS, PARTIAL_COUNTER_KEYS, VALUE_KEYS
from countis.config import MeterConfig
from countis.errors import CommandError, MeterConnectionError, ReadOnlyError, WrongMeterError
from countis.models import PartialAction
from countis.session import ENERGY_KEYS, REALTIME_KEYS, MeterSession

from tests.scripted import IDENTITY, OTHER_SERIAL, SERIAL, ManualClock, ScriptedMeter

LOST = MeterConnectionError("gone")


class MemoryStore:
    """A PartialStore in memory that records what was saved and how urgently."""

    def __init__(self, saved: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.saved: dict[str, Mapping[str, Any]] = dict(saved or {})
        self.urgent: list[bool] = []

    async def load(self, serial: str) -> Mapping[str, Any] | None:
        return self.saved.get(serial)

    def save(self, serial: str, state: Mapping[str, Any], *, urgent: bool) -> None:
        self.saved[serial] = state
        self.urgent.append(urgent)


def make(**config: Any) -> tuple[MeterSession, ScriptedMeter, ManualClock, MemoryStore]:
    meter, clock, store = ScriptedMeter(), ManualClock(), MemoryStore()
    cfg = MeterConfig(host="127.0.0.1", realtime_interval=1.0, energy_interval=2.0, **config)
    session = MeterSession(cfg, meter, clock=clock, store=store, start=clock.now)
    return session, meter, clock, store


async def test_the_first_poll_confirms_every_counter_at_once():
    session, meter, _, _ = make()
    result = await session.poll()
    assert result is not None
    assert result.identified == IDENTITY
    assert set(session.values) == set(VALUE_KEYS)  # held first values were re-read at once
    assert session.stats.held_rereads == 1
    assert meter.reads == [tuple(k for k in VALUE_KEYS if k in REALTIME_KEYS + ENERGY_KEYS),
                           ENERGY_KEYS]  # fmt: skip
    assert session.online is True
    assert session.timestamp == ManualClock().now


async def test_realtime_ticks_between_energy_ticks():
    session, meter, clock, _ = make()
    await session.poll()
    meter.reads.clear()
    clock.advance(1.0)
    await session.poll()
    clock.advance(1.0)
    await session.poll()
    assert meter.reads == [REALTIME_KEYS, REALTIME_KEYS + ENERGY_KEYS]
    assert await session.poll() is None  # nothing due at the same instant


async def test_another_serial_with_an_expected_one_is_refused_and_nothing_is_kept():
    session, meter, clock, _ = make(serial=SERIAL)
    await session.poll()
    before = dict(session.values)
    meter.fault = LOST
    clock.advance(1.0)
    with pytest.raises(MeterConnectionError):
        await session.poll()
    meter.fault = None
    meter.identity = replace(IDENTITY, serial_number=OTHER_SERIAL)
    meter.move(energy_import=5.0)  # the other meter's counter
    meter.reads.clear()
    clock.advance(1.0)
    with pytest.raises(WrongMeterError) as caught:
        await session.poll()
    assert (caught.value.found, caught.value.expected) == (OTHER_SERIAL, SERIAL)
    assert meter.reads == []  # not one value of the other meter was read
    assert session.values == before
    assert session.guard.last("energy_import") == 1000.0


async def test_without_an_expected_serial_the_new_meter_starts_afresh():
    session, meter, clock, store = make()
    await session.poll()
    await session.partial_command(PartialAction.STOP)
    assert session.partial.running is False
    meter.fault = LOST
    clock.advance(1.0)
    with pytest.raises(MeterConnectionError):
        await session.poll()
    meter.fault = None
    meter.identity = replace(IDENTITY, serial_number=OTHER_SERIAL)
    meter.move(energy_import=5.0)
    clock.advance(1.0)
    result = await session.poll()
    assert result is not None
    assert result.identified is not None
    assert result.identified.serial_number == OTHER_SERIAL
    assert session.values["energy_import"] == 5.0  # a fresh guard: no baseline of the old one
    assert session.partial.running is True  # the new meter's own (empty) partial state
    assert SERIAL in store.saved  # the old meter's state stays where it was


async def test_the_meter_is_identified_again_after_every_failure():
    session, meter, clock, _ = make()
    await session.poll()
    for _ in range(2):
        meter.fault = LOST
        clock.advance(1.0)
        with pytest.raises(MeterConnectionError):
            await session.poll()
        meter.fault = None
        clock.advance(1.0)
        await session.poll()
    assert meter.identifications == 3


async def test_a_zero_reading_keeps_every_counter_at_its_last_value():
    session, meter, clock, _ = make()
    await session.poll()
    clock.advance(2.0)
    meter.values.update(dict.fromkeys(meter.values.keys() & (
        LIFETIME_COUNTER_KEYS | PARTIAL_COUNTER_KEYS | {"energy_balance"}), 0.0))  # fmt: skip
    result = await session.poll()
    assert result is not None
    assert "energy_balance" in result.withheld
    assert "partial_energy_import" in result.withheld
    assert result.rejected["energy_import"] == "decreased"
    assert session.values["energy_import"] == 1000.0
    assert session.values["partial_energy_import"] == 10.0
    assert session.values["energy_balance"] == 500.0
    assert session.stats.corrupt_readings == 1


async def test_a_counter_too_fast_is_rejected_then_rebased_by_agreeing_readings():
    session, meter, clock, _ = make()
    await session.poll()
    for step in range(3):
        clock.advance(2.0)
        meter.move(energy_import=9000.0 + step * 0.01)
        await session.poll()
        expected = 1000.0 if step < 2 else 9000.02
        assert session.values["energy_import"] == expected
    assert session.guard.rebases["energy_import"] == 1


async def test_partial_stop_start_and_reset():
    session, meter, clock, store = make()
    await session.poll()
    meter.move(partial_energy_import=10.05)
    stopped = await session.partial_command(PartialAction.STOP)
    assert stopped.values["partial_energy_import"] == 10.05  # a fresh reading before the stop
    clock.advance(2.0)
    meter.move(partial_energy_import=10.2)
    await session.poll()
    assert session.values["partial_energy_import"] == 10.05  # frozen
    await session.partial_command(PartialAction.START)
    clock.advance(2.0)
    meter.move(partial_energy_import=10.3)
    await session.poll()
    assert session.values["partial_energy_import"] == 10.15  # continues from the frozen value
    reset = await session.partial_command(PartialAction.RESET)
    assert ("reset_partial", None) in meter.writes
    assert reset.values["partial_energy_import"] == 0.0
    assert store.urgent.count(True) == 3
    assert store.saved[SERIAL]["running"] is True


async def test_a_reset_on_the_front_panel_is_detected_and_saved_at_once():
    session, meter, clock, store = make()
    await session.poll()
    for _ in range(2):  # one low reading is withheld, the second confirms the reset
        clock.advance(2.0)
        meter.move(partial_energy_import=0.01)
        await session.poll()
    assert session.values["partial_energy_import"] == 0.01
    assert store.urgent[-1] is True


async def test_a_tariff_write_whose_read_back_disagrees():
    session, meter, _, _ = make()
    await session.poll()
    meter.tariff_reported = 1
    with pytest.raises(CommandError):
        await session.set_tariff(2)
    assert session.values["tariff"] == 1
    assert session.next_poll_at() == float("-inf")  # read what the meter says, at once
    meter.tariff_reported = None
    result = await session.set_tariff(2)
    assert result.values == {"tariff": 2}
    assert session.values["tariff"] == 2
    assert meter.writes[-1] == ("tariff", (2, False))


async def test_commands_refused_when_read_only_or_before_the_meter_answered():
    session, _, _, _ = make()
    with pytest.raises(Exception, match="not been reached"):
        await session.set_tariff(2)
    read_only, _, _, _ = make(read_only=True)
    await read_only.poll()
    with pytest.raises(ReadOnlyError):
        await read_only.partial_command(PartialAction.RESET)


async def test_the_meter_going_away_and_coming_back():
    session, meter, clock, _ = make(offline_after=3)
    await session.poll()
    meter.fault = LOST
    times = []
    for _ in range(5):
        clock.now = max(clock.now, session.next_poll_at())
        with pytest.raises(MeterConnectionError):
            await session.poll()
        times.append(session.online)
    assert times == [True, True, False, False, False]  # offline after 3 failures in a row
    # Retries stay close to the poll cadence: at most 1.5 realtime intervals (+10 % jitter).
    assert session.next_poll_at() - clock.now <= 1.5 * 1.1 + 1e-9
    meter.fault = None
    clock.now = session.next_poll_at()
    result = await session.poll()
    assert result is not None
    assert session.online is True
    assert session.failures == 0
    assert meter.reads[-1] == REALTIME_KEYS + ENERGY_KEYS  # everything, once back
    assert session.stats.failures == 5


async def test_a_silent_reconnect_to_another_meter_is_caught_before_any_value():
    """No failure in between: the connection dropped and came back to another device."""
    session, meter, clock, _ = make(serial=SERIAL)
    await session.poll()
    meter.reconnect()
    meter.identity = replace(IDENTITY, serial_number=OTHER_SERIAL)
    meter.reads.clear()
    clock.advance(1.0)
    with pytest.raises(WrongMeterError):
        await session.poll()
    assert meter.reads == []


async def test_a_reconnect_during_the_read_discards_it():
    session, meter, clock, _ = make()
    await session.poll()
    read = meter.read

    async def read_over_a_new_connection(keys=None):
        meter.reconnect()
        await meter.connect()
        return await read(keys)

    meter.read = read_over_a_new_connection  # type: ignore[method-assign]
    before = dict(session.values)
    meter.move(power=999.0)
    clock.advance(1.0)
    with pytest.raises(MeterConnectionError, match="reconnected during the read"):
        await session.poll()
    assert session.values == before
    meter.read = read  # type: ignore[method-assign]
    clock.now = session.next_poll_at()
    await session.poll()  # identified on the new connection, then read
    assert session.values["power"] == 999.0
    assert meter.identifications == 2
