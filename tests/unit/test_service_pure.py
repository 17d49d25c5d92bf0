"""Pure parts of the service: schedule slots, backoff, the published-meters registry."""

from __future__ import annotations

import json

import pytest
from countis.presentation import SENSORS

from countis_bridge import topics
from countis_bridge.mqtt import dump_json
from countis_bridge.poller import Backoff, PollerConfig, Slot
from countis_bridge.service import Published, Registry, slug_topics, stale_topics


def test_slot_advances_by_whole_intervals_without_drift():
    slot = Slot(1.0, 100.0)
    assert slot.advance(100.3) == 0  # served late, still on time for the next one
    assert slot.due == 101.0
    assert slot.advance(101.9) == 0
    assert slot.due == 102.0


def test_slot_skips_missed_deadlines_without_a_burst():
    slot = Slot(1.0, 100.0)
    assert slot.advance(103.5) == 3  # 101, 102, 103 passed during a long poll
    assert slot.due == 104.0
    assert slot.advance(105.0) == 0  # done exactly at the next deadline: still served
    assert slot.due == 105.0
    assert slot.advance(106.2) == 1
    assert slot.due == 107.0


def test_backoff_doubles_up_to_the_cap_and_resets():
    backoff = Backoff(0.5, 4.0)
    delays = [backoff.next() for _ in range(6)]
    nominal = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    for delay, expected in zip(delays, nominal, strict=True):
        assert expected * 0.9 <= delay <= expected * 1.1
    backoff.reset()
    assert backoff.next() <= 0.55


def test_poller_config_key_and_label():
    named = PollerConfig(name="PV roof", host="10.0.0.2")
    unnamed = PollerConfig(name=None, host="10.0.0.2", port=5020, unit=7)
    assert named.key == "pv_roof"
    assert named.label == "PV roof"
    assert unnamed.key == "10.0.0.2:5020:7"
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


def test_stale_topics_of_a_removed_meter_cover_discovery_and_state():
    stale = set(stale_topics(entry(), None))
    assert topics.device_discovery("homeassistant", "21170A0100042") in stale
    assert topics.entity_discovery("homeassistant", "sensor", "21170A0100042", "voltage") in stale
    assert {"countis/main/state", "countis/main/availability", "countis/main/voltage"} <= stale


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
    assert len(stale) == len(SENSORS) + 4  # sensors, 3 buttons, the select
    assert all(t.endswith("/config") and "/device/" not in t for t in stale)


def test_turning_per_value_topics_off_clears_them():
    stale = stale_topics(entry(per_value=True), entry())
    assert stale == [topics.value("countis", "main", s.key) for s in SENSORS]
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


def test_dump_json_keeps_numbers_and_read_only_mappings():
    from types import MappingProxyType  # noqa: PLC0415

    data = {"power": 2070, "voltage": 230.12, "values": MappingProxyType({"a": 1})}
    assert json.loads(dump_json(data)) == {"power": 2070, "voltage": 230.12, "values": {"a": 1}}
