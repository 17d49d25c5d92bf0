"""Home Assistant discovery payloads: snapshots and the MQTT contract (README, docs/design.md).

Snapshots live in ``tests/unit/snapshots/``; regenerate them after an intended change with
``UPDATE_SNAPSHOTS=1 pytest tests/unit/test_discovery.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from countis.catalogue import VALUE_KEYS
from countis.models import MeterIdentity
from countis.presentation import BUTTONS, PLAN_SENSORS, SENSORS, TARIFF_SELECT

from countis_bridge import SUPPORT_URL, __version__
from countis_bridge.discovery import (
    DiscoveryMeter,
    DiscoveryOptions,
    command_platforms,
    components,
    device_config,
    discovery_messages,
    entity_configs,
)

SNAPSHOTS = Path(__file__).parent / "snapshots"
SERIAL = "21170A0100042"
IDENTITY = MeterIdentity(
    vendor="SOCO",
    product_name="COUNTIS E2x",
    extended_name="COUNTIS E28",
    model="E28",
    serial_number=SERIAL,
    firmware_version="1.02",
    table_version="1.00",
    mid=True,
)
METER = DiscoveryMeter.from_identity(IDENTITY, slug="main", name="Main", host="192.168.0.4")
READ_ONLY = DiscoveryMeter.from_identity(IDENTITY, slug="main", name="Main", read_only=True)
DEVICE = DiscoveryOptions()
ENTITY = DiscoveryOptions(mode="entity")
COMMAND_KEYS = {b.key for b in BUTTONS} | {TARIFF_SELECT.key}


def normalized(data: Any) -> Any:
    """The payload with the package version replaced (snapshots survive releases)."""
    text = json.dumps(data, indent=1, ensure_ascii=False)
    return json.loads(text.replace(json.dumps(__version__), '"<version>"'))


def assert_snapshot(name: str, data: Any) -> None:
    path = SNAPSHOTS / f"{name}.json"
    data = normalized(data)
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    assert path.is_file(), f"missing snapshot {path}: run with UPDATE_SNAPSHOTS=1"
    assert json.loads(path.read_text(encoding="utf-8")) == data


def test_device_payload_snapshot() -> None:
    assert_snapshot("discovery_device", device_config(METER, DEVICE))


def test_read_only_device_payload_snapshot() -> None:
    config = device_config(READ_ONLY, DiscoveryOptions(base_topic="site/c", qos=0))
    commands = {k: v for k, v in config.pop("cmps").items() if k in COMMAND_KEYS}
    assert_snapshot("discovery_device_read_only", {**config, "command_cmps": commands})


def test_entity_payloads_snapshot() -> None:
    chosen = {"energy_import", "phase_sequence", "tariff", "partial_start", "active_tariff"}
    messages = {t: c for t, c in entity_configs(METER, ENTITY) if t.split("/")[-2] in chosen}
    assert len(messages) == len(chosen)
    assert_snapshot("discovery_entity", messages)


def test_device_block_and_origin() -> None:
    config = device_config(METER, DEVICE)
    assert config["dev"] == {
        "identifiers": [f"countis_{SERIAL}"],
        "name": "Main",
        "manufacturer": "Socomec",
        "model": "COUNTIS E28",
        "serial_number": SERIAL,
        "sw_version": "1.02",
        "configuration_url": "http://192.168.0.4/",
    }
    assert config["o"] == {
        "name": "countis-bridge",
        "sw_version": __version__,
        "support_url": SUPPORT_URL,
    }
    assert config["state_topic"] == "countis/main/state"
    assert config["qos"] == 1


def test_two_level_availability() -> None:
    config = device_config(METER, DiscoveryOptions(base_topic="site/countis"))
    assert config["availability"] == [
        {"topic": "site/countis/bridge/availability"},
        {"topic": "site/countis/main/availability"},
    ]
    assert config["availability_mode"] == "all"


def test_every_entity_spec_has_a_component_with_a_serial_based_unique_id() -> None:
    cmps = device_config(METER, DEVICE)["cmps"]
    assert set(cmps) == set(VALUE_KEYS) | COMMAND_KEYS
    for key, component in cmps.items():
        assert component["unique_id"] == f"countis_{SERIAL}_{key}"
        assert "object_id" not in component  # removed from HA's MQTT discovery in 2026.4
        assert component["default_entity_id"] == f"{component['p']}.main_{key}"
        assert component["qos"] == 1
        assert component["name"]
    assert {c["p"] for c in cmps.values()} == {"sensor", "button", "select"}


def test_sensor_components_render_the_specs() -> None:
    cmps = components(METER, DEVICE)
    for spec in SENSORS:
        component = cmps[spec.key]
        assert component["p"] == "sensor"
        assert component["name"] == spec.name
        assert component["enabled_by_default"] is spec.enabled_by_default
        assert component.get("unit_of_measurement") == spec.unit
        assert component.get("state_class") == spec.state_class
        assert component.get("suggested_display_precision") == spec.precision
        assert component.get("entity_category") == spec.entity_category
        assert component.get("icon") == spec.icon
        assert component.get("options") == (list(spec.options) or None)
        assert component.get("device_class") == spec.device_class
        assert f"value_json.{spec.key}" in component["value_template"]


def test_energy_dashboard_classes() -> None:
    cmps = components(METER, DEVICE)
    for key in ("energy_import", "energy_export", "energy_import_t1", "partial_energy_import"):
        assert cmps[key]["device_class"] == "energy"
        assert cmps[key]["state_class"] == "total_increasing"
        assert cmps[key]["unit_of_measurement"] == "kWh"
    assert cmps["energy_balance"]["device_class"] == "energy"
    assert cmps["energy_balance"]["state_class"] == "total"
    assert "last_reset_value_template" not in cmps["energy_balance"]
    assert cmps["reactive_energy_import"]["unit_of_measurement"] == "kvarh"
    assert cmps["reactive_energy_import"]["device_class"] == "reactive_energy"
    assert cmps["power"]["device_class"] == "power"
    assert cmps["power"]["state_class"] == "measurement"


def test_value_templates() -> None:
    cmps = components(METER, DEVICE)
    assert cmps["power"]["value_template"] == "{{ value_json.power | default('') }}"
    assert cmps["phase_sequence"]["value_template"] == (
        "{{ value_json.phase_sequence if value_json.phase_sequence is defined else this.state }}"
    )
    assert cmps["phase_sequence"]["options"] == ["123", "132", "unknown"]
    assert cmps["tariff"]["value_template"] == (
        "{{ value_json.tariff if value_json.tariff is defined else this.state }}"
    )


def test_command_components() -> None:
    cmps = components(METER, DEVICE)
    for button in BUTTONS:
        component = cmps[button.key]
        assert component["p"] == "button"
        assert component["command_topic"] == "countis/main/set/partial"
        assert component["payload_press"] == str(button.action)
    assert [cmps[b.key]["payload_press"] for b in BUTTONS] == ["start", "stop", "reset"]
    select = cmps["active_tariff"]
    assert select["p"] == "select"
    assert select["command_topic"] == "countis/main/set/tariff"
    assert select["options"] == ["T1", "T2"]
    assert select["value_template"] == (
        "{{ 'T' ~ value_json.tariff if value_json.tariff is defined else this.state }}"
    )


def test_read_only_meters_remove_their_command_entities() -> None:
    cmps = components(READ_ONLY, DEVICE)
    assert {k: v for k, v in cmps.items() if k in COMMAND_KEYS} == {
        key: {"p": platform} for key, platform in command_platforms().items()
    }
    assert "configuration_url" not in device_config(READ_ONLY, DEVICE)["dev"]


def test_meter_without_a_name_and_ipv6_host() -> None:
    meter = DiscoveryMeter.from_identity(IDENTITY, slug="21170a0100042", host="fd00::4")
    info = device_config(meter, DEVICE)["dev"]
    assert info["name"] == f"COUNTIS E28 {SERIAL}"
    assert info["configuration_url"] == "http://[fd00::4]/"


def test_per_entity_mode_has_the_same_unique_ids() -> None:
    device_ids = {c["unique_id"] for c in components(METER, DEVICE).values()}
    configs = entity_configs(METER, ENTITY)
    assert len(configs) == len(SENSORS) + len(COMMAND_KEYS)
    entity_ids = set()
    for topic, config in configs:
        assert config is not None
        prefix, platform, node, key, last = topic.split("/")
        assert (prefix, node, last) == ("homeassistant", f"countis_{SERIAL}", "config")
        assert config["unique_id"] == f"countis_{SERIAL}_{key}"
        assert "p" not in config
        assert config["device"] == device_config(METER, DEVICE)["dev"]
        assert config["o"]["name"] == "countis-bridge"
        assert config["availability_mode"] == "all"
        assert len(config["availability"]) == 2
        assert ("state_topic" in config) == (platform != "button")
        entity_ids.add(config["unique_id"])
    assert entity_ids == device_ids


def test_discovery_messages() -> None:
    ((topic, payload),) = discovery_messages(METER, DEVICE)
    assert topic == f"homeassistant/device/countis_{SERIAL}/config"
    assert json.loads(payload) == device_config(METER, DEVICE)
    messages = discovery_messages(READ_ONLY, DiscoveryOptions(mode="entity", discovery_prefix="h"))
    removed = {t for t, p in messages if p == ""}
    assert removed == {
        f"h/{platform}/countis_{SERIAL}/{key}/config"
        for key, platform in command_platforms().items()
    }
    for topic, payload in messages:
        if payload:
            assert json.loads(payload)["unique_id"].endswith(topic.split("/")[-2])


def test_reactive_energies_are_reactive_energy_sensors_in_kvarh() -> None:
    cmps = components(METER, DEVICE)
    reactive = [s for s in SENSORS if s.unit == "kvarh"]
    assert len(reactive) == 63
    for spec in reactive:
        assert cmps[spec.key]["device_class"] == "reactive_energy", spec.key


def test_a_meter_with_a_tariff_plan_gets_its_sensors() -> None:
    planned = replace(METER, tariff_plan=True)
    cmps = components(planned, DEVICE)
    assert set(cmps) == set(components(METER, DEVICE)) | {s.key for s in PLAN_SENSORS}
    assert cmps["next_tariff_change"]["device_class"] == "timestamp"
    assert cmps["tariff_source"]["options"] == ["schedule", "signal", "manual"]
    assert "next_tariff_change" not in components(METER, DEVICE)
