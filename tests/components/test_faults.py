"""Meter faults: entities go unavailable, no wrong counter value is ever recorded."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
from homeassistant.const import EVENT_STATE_CHANGED, STATE_UNAVAILABLE
from homeassistant.core import Event, HomeAssistant, callback
from pytest_homeassistant_custom_component.common import MockConfigEntry

from countis.catalogue import LIFETIME_COUNTER_KEYS, PARTIAL_COUNTER_KEYS
from countis.guard import BALANCE_KEYS
from countis.presentation import SENSORS
from countis_bridge.emulator import EmulatedMeter, ManualClock
from custom_components.countis.const import DOMAIN

from .helpers import entity_id, number, poll, state_of

ENABLED = [s.key for s in SENSORS if s.enabled_by_default]
# Every counter, the signed balance included (it only grows here: the load imports).
COUNTERS = [k for k in ENABLED if k in LIFETIME_COUNTER_KEYS | PARTIAL_COUNTER_KEYS | BALANCE_KEYS]


@pytest.fixture
def recorded(hass: HomeAssistant) -> dict[str, list[str]]:
    """Every state written for a counter entity: what the recorder would store."""
    by_entity: dict[str, list[str]] = {}

    @callback
    def listen(event: Event) -> None:
        new = event.data["new_state"]
        if new is not None and new.domain == "sensor":
            by_entity.setdefault(new.entity_id, []).append(new.state)

    hass.bus.async_listen(EVENT_STATE_CHANGED, listen)
    return by_entity


def counter_history(hass: HomeAssistant, recorded: dict[str, list[str]], key: str) -> list[float]:
    return [
        float(s) for s in recorded.get(entity_id(hass, "sensor", key), []) if s != "unavailable"
    ]


def assert_all_equal_meter(hass: HomeAssistant, meter: EmulatedMeter) -> None:
    values = meter.values()
    for key in ENABLED:
        state = state_of(hass, "sensor", key)
        assert state != STATE_UNAVAILABLE, key
        expected = values[key]
        if isinstance(expected, str):
            assert state == expected, key
        else:
            assert float(state) == pytest.approx(expected, abs=1e-6), key


async def refresh(entry: MockConfigEntry) -> None:
    coordinator = entry.runtime_data.coordinator
    coordinator.session.wake()
    await coordinator.async_refresh()


DELAY = 1.0  # > the tests' Modbus timeout of 0.5 s


def inject(meter: EmulatedMeter, fault: str) -> None:
    if fault == "no_answer":
        meter.faults.no_answer(True)
    elif fault == "exception":
        meter.faults.exception(4)  # server device failure
    else:
        meter.faults.delay(DELAY)


@pytest.mark.parametrize("fault", ["no_answer", "exception", "delay"])
async def test_outage_and_recovery(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    meter: EmulatedMeter,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
    fault: str,
) -> None:
    caplog.set_level(logging.INFO, logger=f"custom_components.{DOMAIN}")
    inject(meter, fault)
    for _ in range(3):
        await poll(hass)
    for key in ENABLED:
        assert state_of(hass, "sensor", key) == STATE_UNAVAILABLE, key
    assert state_of(hass, "select", "active_tariff") == STATE_UNAVAILABLE
    meter.faults.clear()
    clock.advance(30)
    await poll(hass)
    assert_all_equal_meter(hass, meter)
    await poll(hass)
    # One line when the meter went away, one when it came back: not one per poll.
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("custom_components")]
    assert len([line for line in lines if line.startswith("Error fetching")]) == 1
    assert len([line for line in lines if "recovered" in line]) == 1
    if fault == "delay":
        # Late answers still sleep in the emulator's pymodbus handler tasks, which its
        # shutdown does not cancel (see test_config_flow): let them finish.
        await asyncio.sleep(DELAY)


async def test_connection_drop_recovers(
    hass: HomeAssistant, init_integration: MockConfigEntry, meter: EmulatedMeter
) -> None:
    assert meter.faults.drop_connections() == 1
    # The drop may cost one poll, never more.
    await poll(hass)
    await poll(hass)
    assert_all_equal_meter(hass, meter)


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(lambda m: m.faults.zero_counters(True), id="zero_counters"),
        pytest.param(lambda m: m.faults.lower_counters(True), id="lower_counters"),
    ],
)
async def test_bad_counters_are_never_recorded(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    meter: EmulatedMeter,
    clock: ManualClock,
    recorded: dict[str, list[str]],
    fault: Callable[[EmulatedMeter], None],
) -> None:
    good = {key: number(hass, key) for key in COUNTERS}
    fault(meter)
    for _ in range(3):  # longer than the partial meter's reset confirmation
        clock.advance(10)
        await refresh(init_integration)
        assert state_of(hass, "sensor", "power") != STATE_UNAVAILABLE  # the meter answers
        # A corrupt reading changes no counter: each keeps its last accepted value.
        assert {key: number(hass, key) for key in COUNTERS} == good
    meter.faults.clear()
    clock.advance(10)
    await refresh(init_integration)
    assert_all_equal_meter(hass, meter)
    for key in COUNTERS:
        history = counter_history(hass, recorded, key)
        assert history == sorted(history), (key, history)
        assert all(value >= good[key] for value in history), (key, history)
