"""Topic builders and the meter slug."""

from __future__ import annotations

import re

import pytest
from countis.presentation import node_id, unique_id
from hypothesis import given
from hypothesis import strategies as st

from countis_bridge import topics

SLUG = re.compile(r"^([a-z0-9]+(_[a-z0-9]+)*)?$")


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Main", "main"),
        ("Heat pump", "heat_pump"),
        ("  Heat   pump  ", "heat_pump"),
        ("Küche Süd-West", "kuche_sud_west"),
        ("Straße 12", "strasse_12"),
        ("Ærø Øst", "aero_ost"),
        ("PV/Inverter #2", "pv_inverter_2"),
        ("already_slug", "already_slug"),
        ("__x__", "x"),
        ("21170A0100042", "21170a0100042"),
        ("21170A0100042-3", "21170a0100042_3"),
        ("!!!", ""),
        ("电表", ""),
    ],
)
def test_slugify(name: str, slug: str) -> None:
    assert topics.slugify(name) == slug


@given(st.text())
def test_slugify_is_always_a_valid_slug_and_idempotent(name: str) -> None:
    slug = topics.slugify(name)
    assert SLUG.match(slug)
    assert topics.slugify(slug) == slug


def test_meter_slug_falls_back_to_the_serial() -> None:
    assert topics.meter_slug("Main", "21170A0100042") == "main"
    assert topics.meter_slug(None, "21170A0100042") == "21170a0100042"
    assert topics.meter_slug("", "21170A0100042") == "21170a0100042"
    assert topics.meter_slug("???", "21170A0100042") == "21170a0100042"


def test_ids_derive_from_the_serial() -> None:
    assert node_id("21170A0100042") == "countis_21170A0100042"
    assert unique_id("21170A0100042", "power") == "countis_21170A0100042_power"


def test_topic_builders() -> None:
    assert topics.bridge_availability("countis") == "countis/bridge/availability"
    assert topics.meter_availability("countis", "main") == "countis/main/availability"
    assert topics.state("site/countis", "main") == "site/countis/main/state"
    assert topics.value("countis", "main", "power_l1") == "countis/main/power_l1"
    assert topics.command("countis", "main", "tariff") == "countis/main/set/tariff"
    assert topics.command_filter("countis") == "countis/+/set/+"
    assert topics.response("countis", "main") == "countis/main/response"
    assert topics.ha_status("homeassistant") == "homeassistant/status"
    assert (
        topics.device_discovery("homeassistant", "21170A0100042")
        == "homeassistant/device/countis_21170A0100042/config"
    )
    assert (
        topics.entity_discovery("ha", "sensor", "21170A0100042", "power")
        == "ha/sensor/countis_21170A0100042/power/config"
    )


@pytest.mark.parametrize(
    ("topic", "parsed"),
    [
        ("countis/main/set/tariff", ("main", "tariff")),
        ("countis/main/set/bogus", ("main", "bogus")),
        ("countis/main/state", None),
        ("countis/main/set/tariff/extra", None),
        ("countis//set/tariff", None),
        ("countis/main/set/", None),
        ("other/main/set/tariff", None),
        ("countisx/main/set/tariff", None),
        ("countis/main/get/tariff", None),
    ],
)
def test_parse_command_topic(topic: str, parsed: tuple[str, str] | None) -> None:
    assert topics.parse_command_topic("countis", topic) == parsed


def test_parse_command_topic_with_a_multi_level_base() -> None:
    assert topics.parse_command_topic("site/countis", "site/countis/pv/set/partial") == (
        "pv",
        "partial",
    )


def test_bridge_is_a_reserved_slug() -> None:
    assert "bridge" in topics.RESERVED_SLUGS
