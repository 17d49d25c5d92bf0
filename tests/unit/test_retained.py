"""The retained topics a meter owns and the registry of what was published."""

from __future__ import annotations

import json

import pytest
from countis.catalogue import VALUE_KEYS
from countis.config import MeterConfig

from countis_bridge import topics
from countis_bridge.discovery import command_platforms
from countis_bridge.retained import (
    Published,
    Registry,
    discovery_topics,
    meter_key,
    removal_topics,
    slug_topics,
    stale_topics,
)

SERIAL = "21170A0100042"
COMMAND_KEYS = tuple(command_platforms())


def test_meter_key_and_label():
    named = MeterConfig(name="PV roof", host="10.0.0.2")
    unnamed = MeterConfig(host="10.0.0.2", port=5020, unit=7)
    assert meter_key(named) == "pv_roof"
    assert named.label == "PV roof"
    assert meter_key(unnamed) == "10.0.0.2:5020:7"
    assert unnamed.label == "10.0.0.2:5020 unit 7"


def entry(**changes) -> Published:
    base = {
        "serial": "21170A0100042",
        "slug": "main",
        "base_topic": "countis",
        "discovery_prefix": "homeassistant",
        "mode": "device",
        "per_value": False,
    }
    base.update(changes)
    return Published(**base)


def test_stale_topics_of_a_removed_meter_are_what_it_published():
    stale = set(stale_topics(entry(), None))
    assert stale == {
        topics.device_discovery("homeassistant", "21170A0100042"),
        "countis/main/state",
        "countis/main/availability",
    }
    everything = set(stale_topics(entry(mode="entity", per_value=True), None))
    assert (
        topics.entity_discovery("homeassistant", "sensor", "21170A0100042", "voltage") in everything
    )
    assert "countis/main/voltage" in everything
    assert topics.device_discovery("homeassistant", "21170A0100042") not in everything


def test_nothing_is_stale_when_nothing_changed():
    assert stale_topics(entry(), entry()) == []


@pytest.mark.parametrize(
    ("change", "expected", "kept"),
    [
        ({"mode": "entity"}, "homeassistant/device/countis_21170A0100042/config", None),
        (
            {"serial": "21170A0100043"},
            "homeassistant/device/countis_21170A0100042/config",
            "countis/main/state",
        ),
        (
            {"slug": "grid"},
            "countis/main/state",
            "homeassistant/device/countis_21170A0100042/config",
        ),
    ],
)
def test_stale_topics_after_a_change(change, expected, kept):
    stale = stale_topics(entry(), entry(**change))
    assert expected in stale
    assert kept not in stale


def test_entity_to_device_mode_clears_the_entity_configs():
    stale = stale_topics(entry(mode="entity"), entry())
    assert len(stale) == len(VALUE_KEYS) + 4  # sensors, 3 buttons, the select
    assert all(t.endswith("/config") and "/device/" not in t for t in stale)


def test_turning_per_value_topics_off_clears_them():
    stale = stale_topics(entry(per_value=True), entry())
    assert stale == [topics.value("countis", "main", key) for key in VALUE_KEYS]
    assert set(slug_topics("countis", "main")) >= set(stale)


def test_registry_round_trip_and_damaged_files(tmp_path):
    path = tmp_path / "published.json"
    registry = Registry(path)
    assert registry.entries == {}
    assert registry.set("main", entry()) is None
    registry.save()
    again = Registry(path)
    assert again.entries == {"main": entry()}
    assert not again.dirty
    assert again.set("main", None) == entry()
    again.save()
    assert json.loads(path.read_text())["meters"] == {}
    path.write_text("{not json")
    assert Registry(path).entries == {}


def test_removal_of_a_meter_that_is_gone() -> None:
    assert removal_topics(entry(serial=SERIAL)) == [
        f"homeassistant/device/countis_{SERIAL}/config",
        "countis/main/state",
        "countis/main/availability",
    ]  # device mode, no per-value topics: three empty messages, not three hundred
    topics = removal_topics(entry(serial=SERIAL, mode="entity", per_value=True))
    assert len(topics) == len(set(topics))
    assert f"homeassistant/sensor/countis_{SERIAL}/power/config" in topics
    assert f"homeassistant/button/countis_{SERIAL}/partial_reset/config" in topics
    assert f"homeassistant/select/countis_{SERIAL}/active_tariff/config" in topics
    assert "countis/main/state" in topics
    assert "countis/main/availability" in topics
    assert "countis/main/energy_import" in topics
    assert "countis/bridge/availability" not in topics
    assert len(topics) == len(VALUE_KEYS) + len(COMMAND_KEYS) + 2 + len(VALUE_KEYS)


def test_discovery_topics_of_a_meter() -> None:
    topics = discovery_topics("homeassistant", SERIAL)
    assert len(topics) == 1 + len(VALUE_KEYS) + len(COMMAND_KEYS)
    assert not [t for t in topics if t.startswith("countis/")]


def test_removal_of_some_entities() -> None:
    chosen = discovery_topics("homeassistant", SERIAL, ["partial_start", "power"])
    assert chosen == [
        f"homeassistant/button/countis_{SERIAL}/partial_start/config",
        f"homeassistant/sensor/countis_{SERIAL}/power/config",
    ]
    with pytest.raises(KeyError):
        discovery_topics("homeassistant", SERIAL, ["no_such_key"])
