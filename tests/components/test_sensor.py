"""Sensors: every spec rendered, states equal to the emulated meter's values."""

from __future__ import annotations

import pytest
from homeassistant.components.sensor import SensorDeviceClass
from homeassistant.const import ATTR_DEVICE_CLASS, ATTR_UNIT_OF_MEASUREMENT, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from countis.presentation import SENSORS, SensorSpec
from countis_bridge.emulator import EmulatedMeter
from custom_components.countis.const import DOMAIN

from .conftest import SERIAL
from .helpers import entity_id, resolution

KNOWN_DEVICE_CLASSES = {member.value for member in SensorDeviceClass}


def _check(hass: HomeAssistant, spec: SensorSpec, expected: object) -> None:
    state = hass.states.get(entity_id(hass, "sensor", spec.key))
    assert state is not None, spec.key
    assert state.state != STATE_UNAVAILABLE, spec.key
    if isinstance(expected, str):
        assert state.state == expected, spec.key
    else:
        assert isinstance(expected, int | float)
        assert float(state.state) == pytest.approx(expected, abs=resolution(spec) / 2), spec.key
    assert state.attributes.get(ATTR_UNIT_OF_MEASUREMENT) == spec.unit, spec.key
    assert state.attributes.get("state_class") == spec.state_class, spec.key
    if spec.device_class in KNOWN_DEVICE_CLASSES or spec.device_class is None:
        assert state.attributes.get(ATTR_DEVICE_CLASS) == spec.device_class, spec.key
    else:
        # Home Assistant 2025.4 has no reactive_energy device class yet: none is set.
        assert spec.device_class == "reactive_energy", spec.key
        assert ATTR_DEVICE_CLASS not in state.attributes, spec.key


async def test_enabled_sensors_equal_meter(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    meter: EmulatedMeter,
    entity_registry: er.EntityRegistry,
) -> None:
    expected = meter.values()
    enabled = [spec for spec in SENSORS if spec.enabled_by_default]
    assert len(enabled) > 20
    for spec in SENSORS:
        entry = entity_registry.async_get(entity_id(hass, "sensor", spec.key))
        assert entry is not None
        assert entry.unique_id == f"countis_{SERIAL}_{spec.key}"
        assert entry.translation_key == spec.translation_key
        if spec.enabled_by_default:
            assert entry.disabled_by is None
            _check(hass, spec, expected[spec.key])
        else:
            assert entry.disabled_by is er.RegistryEntryDisabler.INTEGRATION
            assert hass.states.get(entry.entity_id) is None
    # The counters are real numbers, not placeholders.
    assert expected["energy_import"] > 0
    assert expected["energy_import_t2"] > 0
    assert expected["partial_energy_import"] > 0


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_all_sensors_equal_meter(
    hass: HomeAssistant, init_integration: MockConfigEntry, meter: EmulatedMeter
) -> None:
    expected = meter.values()
    for spec in SENSORS:
        _check(hass, spec, expected[spec.key])


async def test_names_and_device(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    device_registry: dr.DeviceRegistry,
    entity_registry: er.EntityRegistry,
) -> None:
    # (DeviceRegistry.async_get_device is deprecated since 2026.9 and raises in tests.)
    (device,) = dr.async_entries_for_config_entry(device_registry, init_integration.entry_id)
    assert device.identifiers == {(DOMAIN, SERIAL)}
    assert device.manufacturer == "Socomec"
    assert device.model == "COUNTIS E28"
    assert device.model_id == "E28"
    assert device.hw_version == "MID"
    assert device.serial_number == SERIAL
    identity = init_integration.runtime_data.coordinator.identity
    assert device.sw_version == identity.firmware_version
    assert device.configuration_url == "http://127.0.0.1/"
    assert device.name == f"COUNTIS E28 {SERIAL}"
    # Translated names with placeholders.
    state = hass.states.get(entity_id(hass, "sensor", "voltage_l2"))
    assert state is not None
    assert state.name == f"COUNTIS E28 {SERIAL} Voltage L2"
    state = hass.states.get(entity_id(hass, "sensor", "energy_import_t1"))
    assert state is not None
    assert state.name == f"COUNTIS E28 {SERIAL} Energy import T1"
    entries = er.async_entries_for_device(
        entity_registry, device.id, include_disabled_entities=True
    )
    assert len([e for e in entries if e.domain == "sensor"]) == len(SENSORS)
