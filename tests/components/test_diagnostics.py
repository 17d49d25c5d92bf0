"""Diagnostics: identity, options and raw values, never the meter's address."""

from __future__ import annotations

import json

from homeassistant.const import CONF_HOST
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from countis_bridge.emulator import EmulatedMeter

from .conftest import HOST, SERIAL


async def test_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    init_integration: MockConfigEntry,
    meter: EmulatedMeter,
) -> None:
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, init_integration)
    assert HOST not in json.dumps(diagnostics)
    assert diagnostics["entry"]["data"][CONF_HOST] == "**REDACTED**"
    assert diagnostics["entry"]["options"] == dict(init_integration.options)
    identity = diagnostics["identity"]
    assert identity["serial_number"] == SERIAL
    assert identity["model"] == "E28"
    assert identity["mid"] is True
    raw = diagnostics["raw_values"]
    assert raw["energy_import"] == meter.values()["energy_import"]
    assert raw["voltage_l1"] == meter.values()["voltage_l1"]
    assert diagnostics["partial"]["running"] is True
    assert diagnostics["poll"]["last_update_success"] is True
    assert diagnostics["guard"]["rejections"] == {}


async def test_diagnostics_during_outage(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    init_integration: MockConfigEntry,
    meter: EmulatedMeter,
) -> None:
    """The last error is named by type only: its message contains the address."""
    meter.faults.exception(4)
    await init_integration.runtime_data.coordinator.async_refresh()
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, init_integration)
    meter.faults.clear()
    assert HOST not in json.dumps(diagnostics)
    assert diagnostics["poll"] == {
        "last_update_success": False,
        "last_exception": "UpdateFailed",
        "update_interval": 2.0,
    }
