"""Config flow, reconfigure and options against the emulated meter (real TCP)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from homeassistant.config_entries import SOURCE_USER
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pymodbus.datastore import (
    ModbusDeviceContext,
    ModbusSequentialDataBlock,
    ModbusServerContext,
)
from pymodbus.server import ModbusTcpServer
from pytest_homeassistant_custom_component.common import MockConfigEntry

from countis.client import MeterClient
from countis.config import DEFAULT_ENERGY_INTERVAL, DEFAULT_REALTIME_INTERVAL
from countis_bridge.emulator import EmulatedMeter, EmulatorServer
from custom_components.countis.const import (
    CONF_COMMANDS,
    CONF_ENERGY_INTERVAL,
    CONF_REALTIME_INTERVAL,
    CONF_TARIFF_MODE,
    CONF_UNIT,
    DOMAIN,
)

from .conftest import HOST, SERIAL, UNIT

DELAY = 1.0


@pytest.fixture
async def zeros_port() -> AsyncIterator[int]:
    """A plain Modbus server (not a COUNTIS) whose holding registers all read 0."""
    block = ModbusSequentialDataBlock(1, [0] * 65535)
    context = ModbusServerContext(devices=ModbusDeviceContext(hr=block), single=True)
    server = ModbusTcpServer(context, address=(HOST, 0))
    await server.serve_forever(background=True)
    yield server.transport.sockets[0].getsockname()[1]
    await server.shutdown()


async def _start(hass: HomeAssistant) -> str:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {}
    return result["flow_id"]


def _input(port: int, unit: int = UNIT) -> dict[str, object]:
    return {CONF_HOST: HOST, CONF_PORT: port, CONF_UNIT: unit}


async def test_user_flow_creates_entry(hass: HomeAssistant, port: int) -> None:
    flow_id = await _start(hass)
    result = await hass.config_entries.flow.async_configure(flow_id, _input(port))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == f"COUNTIS E28 {SERIAL}"
    assert result["data"] == _input(port)
    assert result["options"] == {
        CONF_REALTIME_INTERVAL: DEFAULT_REALTIME_INTERVAL,
        CONF_ENERGY_INTERVAL: DEFAULT_ENERGY_INTERVAL,
        CONF_COMMANDS: True,
        CONF_TARIFF_MODE: "none",
    }
    assert result["result"].unique_id == SERIAL
    await hass.async_block_till_done()


async def test_cannot_connect_then_success(hass: HomeAssistant, port: int, free_port: int) -> None:
    flow_id = await _start(hass)
    result = await hass.config_entries.flow.async_configure(flow_id, _input(free_port))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_HOST: "cannot_connect"}
    result = await hass.config_entries.flow.async_configure(flow_id, _input(port))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()


@pytest.mark.parametrize("fault", ["no_answer", "delay"])
async def test_timeout_then_success(
    hass: HomeAssistant, meter: EmulatedMeter, port: int, fault: str
) -> None:
    if fault == "no_answer":
        meter.faults.no_answer(True)
    else:
        meter.faults.delay(DELAY)  # the tests' Modbus timeout is 0.5 s
    flow_id = await _start(hass)
    result = await hass.config_entries.flow.async_configure(flow_id, _input(port))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_UNIT: "timeout"}
    meter.faults.clear()
    result = await hass.config_entries.flow.async_configure(flow_id, _input(port))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    if fault == "delay":
        # The emulator's late answer is still asleep in a pymodbus handler task that its
        # shutdown does not cancel: let it finish (it started before this sleep).
        await asyncio.sleep(DELAY)


async def test_wrong_unit_times_out(hass: HomeAssistant, port: int) -> None:
    """A COUNTIS answers its own unit id only: another id is silence."""
    flow_id = await _start(hass)
    result = await hass.config_entries.flow.async_configure(flow_id, _input(port, unit=7))
    assert result["errors"] == {CONF_UNIT: "timeout"}
    result = await hass.config_entries.flow.async_configure(flow_id, _input(port))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()


async def test_not_countis_then_success(hass: HomeAssistant, port: int, zeros_port: int) -> None:
    flow_id = await _start(hass)
    result = await hass.config_entries.flow.async_configure(flow_id, _input(zeros_port))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_HOST: "not_countis"}
    result = await hass.config_entries.flow.async_configure(flow_id, _input(port))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()


async def test_duplicate_meter_aborts(
    hass: HomeAssistant, port: int, mock_config_entry: MockConfigEntry
) -> None:
    # Same serial under another address (the meter moved): still the same meter.
    mock_config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        mock_config_entry, data={**mock_config_entry.data, CONF_HOST: "192.0.2.1"}
    )
    flow_id = await _start(hass)
    result = await hass.config_entries.flow.async_configure(flow_id, _input(port))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_reconfigure(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    meter: EmulatedMeter,
    free_port: int,
) -> None:
    entry = init_integration
    result = await entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], _input(free_port))
    assert result["errors"] == {CONF_HOST: "cannot_connect"}
    # The same meter, now reachable at another port.
    async with EmulatorServer([meter], host=HOST, port=0) as moved:
        new = _input(moved.ports[0])
        result = await hass.config_entries.flow.async_configure(result["flow_id"], new)
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "reconfigure_successful"
        await hass.async_block_till_done()
        assert entry.data == new
        assert entry.state.name == "LOADED"
        # Reloaded with the new address: no restart needed.
        link = entry.runtime_data.coordinator.session.link
        assert isinstance(link, MeterClient)
        assert link.port == moved.ports[0]
        await hass.config_entries.async_unload(entry.entry_id)


async def test_reconfigure_other_meter_aborts(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    other = EmulatedMeter(model="E27", serial="21170A0100099", unit_id=UNIT, profile="constant")
    async with EmulatorServer([other], host=HOST, port=0) as server:
        result = await init_integration.start_reconfigure_flow(hass)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], _input(server.ports[0])
        )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "unique_id_mismatch"
    assert init_integration.data[CONF_PORT] != server.ports[0]


async def test_options_take_effect(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    entry = init_integration
    coordinator = entry.runtime_data.coordinator
    assert coordinator.update_interval.total_seconds() == DEFAULT_REALTIME_INTERVAL
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "init"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_REALTIME_INTERVAL: 5.0,
            CONF_ENERGY_INTERVAL: 30.0,
            CONF_COMMANDS: False,
            CONF_TARIFF_MODE: "none",
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.options == {
        CONF_REALTIME_INTERVAL: 5.0,
        CONF_ENERGY_INTERVAL: 30.0,
        CONF_COMMANDS: False,
        CONF_TARIFF_MODE: "none",
    }
    assert entry.state.name == "LOADED"
    new = entry.runtime_data.coordinator
    assert new is not coordinator  # reloaded with the new options
    assert new.update_interval.total_seconds() == 5.0
    assert not hass.states.async_entity_ids("button")
    assert not hass.states.async_entity_ids("select")
