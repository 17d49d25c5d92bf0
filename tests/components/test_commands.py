"""Commands: partial reset (meter), start/stop (Home Assistant), tariff select, read-only."""

from __future__ import annotations

import pytest
from homeassistant.components.button import DOMAIN as BUTTON_DOMAIN
from homeassistant.components.button import SERVICE_PRESS
from homeassistant.components.select import ATTR_OPTION, SERVICE_SELECT_OPTION
from homeassistant.components.select import DOMAIN as SELECT_DOMAIN
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from countis.catalogue import PARTIAL_COUNTER_KEYS
from countis.presentation import SENSOR_BY_KEY
from countis_bridge.emulator import EmulatedMeter, ManualClock
from custom_components.countis.config_flow import DEFAULT_OPTIONS
from custom_components.countis.const import CONF_COMMANDS, DOMAIN

from .conftest import SERIAL
from .helpers import entity_id, number, state_of

# 60 s of the constant profile (6.2 kW) add about 0.1 kWh: plausible for the counter guard
# even though the test runs in well under a second of wall time.
STEP = 60.0


async def press(hass: HomeAssistant, key: str) -> None:
    await hass.services.async_call(
        BUTTON_DOMAIN,
        SERVICE_PRESS,
        {ATTR_ENTITY_ID: entity_id(hass, "button", key)},
        blocking=True,
    )


async def refresh(entry: MockConfigEntry) -> None:
    """Poll realtime and energies now (as the energy interval would)."""
    coordinator = entry.runtime_data.coordinator
    coordinator.session.wake()
    await coordinator.async_refresh()


async def test_reset_zeroes_partial_counters(
    hass: HomeAssistant, init_integration: MockConfigEntry, meter: EmulatedMeter
) -> None:
    assert number(hass, "partial_energy_import") > 0
    lifetime = number(hass, "energy_import")
    await press(hass, "partial_reset")
    values = meter.values()
    for key in PARTIAL_COUNTER_KEYS:
        assert values[key] == 0, key
    for key in PARTIAL_COUNTER_KEYS:
        if SENSOR_BY_KEY[key].enabled_by_default:
            assert number(hass, key) == 0, key
    assert number(hass, "energy_import") == lifetime  # totals cannot be reset


async def test_stop_freezes_and_start_continues(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    meter: EmulatedMeter,
    clock: ManualClock,
) -> None:
    await press(hass, "partial_stop")
    frozen = number(hass, "partial_energy_import")
    lifetime = number(hass, "energy_import")
    assert frozen == meter.values()["partial_energy_import"]

    clock.advance(STEP)
    await refresh(init_integration)
    assert number(hass, "energy_import") > lifetime  # the meter counts on
    assert number(hass, "partial_energy_import") == frozen  # the partial meter is stopped

    await press(hass, "partial_start")
    at_start = meter.values()["partial_energy_import"]
    assert number(hass, "partial_energy_import") == frozen
    clock.advance(STEP)
    await refresh(init_integration)
    counted = meter.values()["partial_energy_import"] - at_start
    assert counted > 0
    assert number(hass, "partial_energy_import") == pytest.approx(frozen + counted, abs=1e-6)


async def test_stopped_state_survives_reload(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    meter: EmulatedMeter,
    clock: ManualClock,
) -> None:
    """The start/stop state is stored with Home Assistant's Store."""
    entry = init_integration
    await press(hass, "partial_stop")
    frozen = number(hass, "partial_energy_import")
    assert await hass.config_entries.async_unload(entry.entry_id)
    clock.advance(STEP)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert not entry.runtime_data.coordinator.session.partial.running
    assert number(hass, "partial_energy_import") == frozen
    assert meter.values()["partial_energy_import"] > frozen


async def test_front_panel_reset_is_followed(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    meter: EmulatedMeter,
    clock: ManualClock,
) -> None:
    """A reset outside Home Assistant: one low reading is withheld, the second confirms."""
    await press(hass, "partial_stop")
    assert number(hass, "partial_energy_import") > 0
    frozen = number(hass, "partial_energy_import")
    meter.partial_reset()
    await refresh(init_integration)
    # One low reading is not trusted yet: the last accepted value stays.
    assert number(hass, "partial_energy_import") == frozen
    clock.advance(STEP)
    await refresh(init_integration)
    # Stopped in Home Assistant: the frozen value follows the reset to 0 and stays there.
    assert number(hass, "partial_energy_import") == 0
    await press(hass, "partial_start")
    clock.advance(STEP)
    await refresh(init_integration)
    assert 0 < number(hass, "partial_energy_import") < meter.values()["partial_energy_import"]


async def test_start_stop_need_the_meter(
    hass: HomeAssistant, init_integration: MockConfigEntry, meter: EmulatedMeter
) -> None:
    """Stop freezes the last reading: without a fresh one it refuses (translated)."""
    meter.faults.exception(4)
    with pytest.raises(HomeAssistantError) as err:
        await press(hass, "partial_stop")
    meter.faults.clear()
    assert err.value.translation_key == "modbus_exception"  # the fresh reading failed
    assert init_integration.runtime_data.coordinator.session.partial.running


async def test_select_tariff(
    hass: HomeAssistant, init_integration: MockConfigEntry, meter: EmulatedMeter
) -> None:
    select = entity_id(hass, "select", "active_tariff")
    assert state_of(hass, "select", "active_tariff") == "T1"
    state = hass.states.get(select)
    assert state is not None
    assert state.attributes["options"] == ["T1", "T2"]
    await hass.services.async_call(
        SELECT_DOMAIN,
        SERVICE_SELECT_OPTION,
        {ATTR_ENTITY_ID: select, ATTR_OPTION: "T2"},
        blocking=True,
    )
    assert meter.tariff == 2
    assert state_of(hass, "select", "active_tariff") == "T2"
    assert state_of(hass, "sensor", "tariff") == "2"
    # And back, also when the meter was switched elsewhere (front panel / broadcast).
    meter.set_tariff(1)
    await refresh(init_integration)
    assert state_of(hass, "select", "active_tariff") == "T1"


async def test_command_error_is_translated(
    hass: HomeAssistant, init_integration: MockConfigEntry, meter: EmulatedMeter
) -> None:
    meter.faults.exception(4)
    with pytest.raises(HomeAssistantError) as err:
        await press(hass, "partial_reset")
    assert err.value.translation_key == "modbus_exception"
    assert str(err.value) == (
        f"The meter answered with Modbus exception 4: {err.value.translation_placeholders['error']}"
    )
    meter.faults.clear()


@pytest.mark.parametrize("options", [{**DEFAULT_OPTIONS, CONF_COMMANDS: False}])
async def test_read_only_has_no_commands(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    meter: EmulatedMeter,
    entity_registry: er.EntityRegistry,
) -> None:
    entries = er.async_entries_for_config_entry(entity_registry, init_integration.entry_id)
    assert {entry.domain for entry in entries} == {"sensor"}
    assert not hass.states.async_entity_ids(BUTTON_DOMAIN)
    assert not hass.states.async_entity_ids(SELECT_DOMAIN)
    coordinator = init_integration.runtime_data.coordinator
    with pytest.raises(HomeAssistantError) as err:
        await coordinator.async_set_tariff(2)
    assert err.value.translation_key == "read_only"
    assert "Commands are disabled" in str(err.value)
    assert meter.tariff == 1


async def test_disabling_commands_removes_entities(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    entity_registry: er.EntityRegistry,
) -> None:
    entry = init_integration
    assert entity_registry.async_get_entity_id("button", DOMAIN, f"countis_{SERIAL}_partial_reset")
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {**DEFAULT_OPTIONS, CONF_COMMANDS: False}
    )
    await hass.async_block_till_done()  # the options flow reloads the entry
    assert (
        entity_registry.async_get_entity_id("button", DOMAIN, f"countis_{SERIAL}_partial_reset")
        is None
    )
    assert (
        entity_registry.async_get_entity_id("select", DOMAIN, f"countis_{SERIAL}_active_tariff")
        is None
    )
    assert not hass.states.async_entity_ids(BUTTON_DOMAIN)
