"""The bridge's MQTT discovery payloads against Home Assistant's own MQTT schemas.

Pure: no broker. Every payload of ``countis_bridge.discovery`` goes through the same steps Home
Assistant's MQTT discovery applies (abbreviations, device schema, shared options, the
platform's discovery schema) and the value templates are rendered by its template engine.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from homeassistant.components.mqtt import button, select, sensor
from homeassistant.components.mqtt.discovery import (
    MQTTDiscoveryPayload,
    _merge_common_device_options,
    _replace_all_abbreviations,
)
from homeassistant.components.mqtt.schemas import DEVICE_DISCOVERY_SCHEMA
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers.template import Template

from countis.models import MeterIdentity
from countis.presentation import BUTTONS, SENSORS, TARIFF_SELECT
from countis_bridge.discovery import DiscoveryMeter, DiscoveryOptions, discovery_messages

IDENTITY = MeterIdentity(
    vendor="SOCO",
    product_name="COUNTIS E2x",
    extended_name="COUNTIS E28",
    model="E28",
    serial_number="21170A0100042",
    firmware_version="1.02",
    table_version="1.00",
    mid=True,
)
SCHEMAS = {
    "sensor": sensor.DISCOVERY_SCHEMA,
    "button": button.DISCOVERY_SCHEMA,
    "select": select.DISCOVERY_SCHEMA,
}
# Keys Home Assistant may drop: default_entity_id is unknown to 2025.4 (object_id sets the
# entity id there); buttons have no state topic but inherit the device's shared one.
DROPPABLE = {"default_entity_id", "state_topic"}


def meter(*, read_only: bool = False) -> DiscoveryMeter:
    return DiscoveryMeter.from_identity(
        IDENTITY, slug="main", name="Main", host="192.168.0.4", read_only=read_only
    )


def validate(platform: str, config: dict[str, Any]) -> None:
    validated = SCHEMAS[platform](dict(config))
    assert set(config) - set(validated) <= DROPPABLE


@pytest.mark.parametrize("read_only", [False, True])
async def test_device_payload_passes_the_schemas(hass: HomeAssistant, read_only: bool) -> None:
    ((_, text),) = discovery_messages(meter(read_only=read_only), DiscoveryOptions())
    payload = MQTTDiscoveryPayload(json.loads(text))
    _replace_all_abbreviations(payload)
    DEVICE_DISCOVERY_SCHEMA(payload)
    validated = 0
    for config in payload["components"].values():
        platform = config.pop("platform")
        if not config:  # a removal stub (read-only meter's command entities)
            continue
        component = MQTTDiscoveryPayload(config)
        component["device"] = payload["device"]
        component["origin"] = payload["origin"]
        _merge_common_device_options(component, payload)
        validate(platform, component)
        validated += 1
    assert validated == len(SENSORS) + (0 if read_only else len(BUTTONS) + 1)


async def test_entity_payloads_pass_the_schemas(hass: HomeAssistant) -> None:
    messages = discovery_messages(meter(), DiscoveryOptions(mode="entity"))
    assert len(messages) == len(SENSORS) + len(BUTTONS) + 1
    for topic, text in messages:
        payload = MQTTDiscoveryPayload(json.loads(text))
        _replace_all_abbreviations(payload)
        validate(topic.split("/")[1], payload)


def render(hass: HomeAssistant, template: str, payload: dict[str, Any], state: str) -> Any:
    entity_state = State("sensor.main_x", state)
    return Template(template, hass).async_render_with_possible_json_value(
        json.dumps(payload), "", variables={"this": entity_state}
    )


async def test_value_templates_render_and_tolerate_missing_keys(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    ((_, text),) = discovery_messages(meter(), DiscoveryOptions())
    cmps = json.loads(text)["cmps"]
    caplog.set_level(logging.WARNING)
    power = cmps["power"]["value_template"]
    assert render(hass, power, {"power": 1234.5}, "1") == "1234.5"
    assert render(hass, power, {"voltage": 230.0}, "1") == ""  # ignored by numeric sensors
    tariff = cmps[TARIFF_SELECT.key]["value_template"]
    assert render(hass, tariff, {"tariff": 2}, "T1") == "T2"
    assert render(hass, tariff, {"power": 1}, "T1") == "T1"  # keeps the current option
    sequence = cmps["phase_sequence"]["value_template"]
    assert render(hass, sequence, {"phase_sequence": "132"}, "123") == "132"
    assert render(hass, sequence, {}, "123") == "123"
    assert "Template variable" not in caplog.text
