"""The tariff plan in the integration: options flow, plan sensors, switching the meter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from countis_bridge.emulator import EmulatedMeter
from custom_components.countis.config_flow import DEFAULT_OPTIONS
from custom_components.countis.const import CONF_COMMANDS, CONF_TARIFF_MODE, CONF_TARIFF_PLAN

from .helpers import state_of

NIGHT = "mon-sun 22:00-06:00 T2"


async def options_flow(hass: HomeAssistant, entry: MockConfigEntry, mode: str, **init: object):
    result = await hass.config_entries.options.async_init(entry.entry_id)
    return await hass.config_entries.options.async_configure(
        result["flow_id"], {**DEFAULT_OPTIONS, **init, CONF_TARIFF_MODE: mode}
    )


def schedule_form(rules: str = NIGHT, **changes: object) -> dict[str, object]:
    return {"time_zone": "UTC", "default": "T1", "rules": rules, "holidays": "",
            "holiday_tariff": "default", **changes}  # fmt: skip


async def tick(hass: HomeAssistant, freezer: FrozenDateTimeFactory, seconds: float = 2.0) -> None:
    freezer.tick(timedelta(seconds=seconds))
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)


async def test_a_schedule_set_in_the_options_switches_the_meter(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    meter: EmulatedMeter,
    freezer: FrozenDateTimeFactory,
) -> None:
    freezer.move_to(datetime(2026, 12, 3, 21, 59, 50, tzinfo=UTC))
    entry = init_integration
    result = await options_flow(hass, entry, "schedule")
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "schedule"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], schedule_form(holidays="2026-12-25\n2027-01-01")
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()  # OptionsFlowWithReload reloads the entry
    assert entry.options[CONF_TARIFF_PLAN]["rules"][0]["from"] == "22:00"
    assert entry.options[CONF_TARIFF_PLAN]["holidays"] == ["2026-12-25", "2027-01-01"]
    assert meter.tariff == 1
    assert state_of(hass, "sensor", "tariff_planned") == "1"
    assert state_of(hass, "sensor", "tariff_source") == "schedule"
    next_change = state_of(hass, "sensor", "next_tariff_change")
    assert datetime.fromisoformat(next_change) == datetime(2026, 12, 3, 22, tzinfo=UTC)
    for _ in range(6):  # across 22:00 on Home Assistant's clock
        await tick(hass, freezer)
    assert meter.tariff == 2
    assert state_of(hass, "sensor", "tariff") == "2"
    assert state_of(hass, "sensor", "tariff_planned") == "2"


async def test_the_tariff_select_overrides_until_the_next_switch(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    meter: EmulatedMeter,
    freezer: FrozenDateTimeFactory,
) -> None:
    freezer.move_to(datetime(2026, 12, 3, 23, tzinfo=UTC))
    result = await options_flow(hass, init_integration, "schedule")
    await hass.config_entries.options.async_configure(result["flow_id"], schedule_form())
    await hass.async_block_till_done()
    assert meter.tariff == 2  # set up inside the T2 window: asserted at once
    await hass.services.async_call(
        "select",
        "select_option",
        {"entity_id": hass.states.async_entity_ids("select")[0], "option": "T1"},
        blocking=True,
    )
    assert meter.tariff == 1
    await tick(hass, freezer, 10)
    assert meter.tariff == 1  # not re-asserted: a manual switch holds
    assert state_of(hass, "sensor", "tariff_source") == "manual"


async def test_following_an_entity(
    hass: HomeAssistant, init_integration: MockConfigEntry, meter: EmulatedMeter
) -> None:
    hass.states.async_set("input_select.grid_tariff", "peak")
    result = await options_flow(hass, init_integration, "entity")
    assert result["step_id"] == "entity"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {"entity_id": "input_select.grid_tariff", "mapping": "peak=T1\noff-peak = T2"},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert meter.tariff == 1
    hass.states.async_set("input_select.grid_tariff", "off-peak")
    await hass.async_block_till_done(wait_background_tasks=True)
    assert meter.tariff == 2
    assert state_of(hass, "sensor", "tariff_source") == "signal"
    hass.states.async_set("input_select.grid_tariff", "unavailable")  # unknown: keep T2
    await hass.async_block_till_done(wait_background_tasks=True)
    assert meter.tariff == 2


@pytest.mark.parametrize(
    ("rules", "error"),
    [
        ("mon-fri 22:00 T2", "plan.rules[0]: 'mon-fri 22:00 T2' is not 'days HH:MM-HH:MM T1|T2'"),
        ("mon 08:00-12:00 T2\nmon 11:00-13:00 T2", "overlaps plan.rules[0] on mon 11:00-12:00"),
    ],
)
async def test_a_bad_schedule_is_a_clear_error(
    hass: HomeAssistant, init_integration: MockConfigEntry, rules: str, error: str
) -> None:
    result = await options_flow(hass, init_integration, "schedule")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], schedule_form(rules)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_plan"}
    assert error in result["description_placeholders"]["error"]
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], schedule_form(time_zone="Mars/Base")
    )
    assert "'Mars/Base' is not an IANA time zone" in result["description_placeholders"]["error"]


async def test_an_empty_mapping_and_a_read_only_meter_are_refused(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    result = await options_flow(hass, init_integration, "entity")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"entity_id": "input_select.grid_tariff", "mapping": " "}
    )
    assert result["errors"] == {"base": "invalid_plan"}
    assert "mapping" in result["description_placeholders"]["error"]
    result = await options_flow(hass, init_integration, "schedule", **{CONF_COMMANDS: False})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "read_only_plan"}
