"""strings.json, translations/en.json and icons.json agree with each other and the specs."""

from __future__ import annotations

import json
import re
import string
import tomllib
from pathlib import Path
from typing import Any

import pytest

from countis.presentation import BUTTONS, PLAN_SENSORS, SENSORS, TARIFF_SELECT
from countis_bridge import SUPPORT_URL
from custom_components.countis.const import DOMAIN

COMPONENT = Path(__file__).parents[2] / "custom_components" / DOMAIN

ALL_SENSORS = (*SENSORS, *PLAN_SENSORS)


def countis_version() -> str:
    """The library's version in this checkout (lib/pyproject.toml)."""
    data = tomllib.loads((COMPONENT.parents[1] / "lib" / "pyproject.toml").read_text())
    return str(data["project"]["version"])


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((COMPONENT / name).read_text(encoding="utf-8"))
    return data


def placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field}


def test_english_translation_equals_strings() -> None:
    assert load("translations/en.json") == load("strings.json")


def test_every_sensor_name_renders_the_spec_name() -> None:
    """Entity names come from translations: with the placeholders, they read as the specs."""
    names = load("strings.json")["entity"]["sensor"]
    for spec in ALL_SENSORS:
        template = names[spec.translation_key]["name"]
        assert placeholders(template) == {k for k, _ in spec.placeholders}, spec.key
        assert template.format(**dict(spec.placeholders)) == spec.name, spec.key
    assert set(names) == {spec.translation_key for spec in ALL_SENSORS}


def test_buttons_select_and_states_are_translated() -> None:
    entity = load("strings.json")["entity"]
    assert {b.translation_key: entity["button"][b.translation_key]["name"] for b in BUTTONS} == {
        b.translation_key: b.name for b in BUTTONS
    }
    assert entity["select"][TARIFF_SELECT.translation_key]["name"] == TARIFF_SELECT.name
    for spec in ALL_SENSORS:
        if spec.options:
            assert set(entity["sensor"][spec.translation_key]["state"]) == set(spec.options)


def test_icons_follow_the_specs() -> None:
    icons = load("icons.json")["entity"]
    assert icons["button"] == {b.translation_key: {"default": b.icon} for b in BUTTONS}
    assert icons["select"] == {TARIFF_SELECT.translation_key: {"default": TARIFF_SELECT.icon}}
    expected = {s.translation_key: {"default": s.icon} for s in ALL_SENSORS if s.icon}
    assert icons["sensor"] == expected


@pytest.mark.parametrize(
    ("section", "keys"),
    [
        ("error", {"cannot_connect", "not_countis", "timeout", "unknown"}),
        ("abort", {"already_configured", "reconfigure_successful", "unique_id_mismatch"}),
    ],
)
def test_config_flow_messages(section: str, keys: set[str]) -> None:
    assert set(load("strings.json")["config"][section]) == keys


def test_manifest() -> None:
    manifest = load("manifest.json")
    assert manifest["domain"] == DOMAIN
    assert manifest["config_flow"] is True
    assert manifest["integration_type"] == "device"
    assert manifest["iot_class"] == "local_polling"
    # The library only, pinned exactly: the release this checkout builds.
    assert manifest["requirements"] == [f"countis=={countis_version()}"]
    assert manifest["loggers"] == ["countis"]
    assert manifest["documentation"] == SUPPORT_URL
    assert manifest["issue_tracker"] == f"{SUPPORT_URL}/issues"


def test_every_exception_key_is_translated_and_used() -> None:
    source = "\n".join(p.read_text(encoding="utf-8") for p in COMPONENT.glob("*.py"))
    strings = load("strings.json")
    used = set(re.findall(r'translation_key="(\w+)"', source))
    used |= set(re.findall(r'\bkey = "(\w+)"', source))
    used -= set(strings["selector"])  # selector option lists, not exceptions
    assert used == set(strings["exceptions"])
