"""The integration's quality-scale self-assessment covers Home Assistant's current rules."""

from __future__ import annotations

from pathlib import Path

import yaml

FILE = Path(__file__).resolve().parents[2] / "custom_components" / "countis" / "quality_scale.yaml"
# Home Assistant's rules (script/hassfest/quality_scale.py, 2026.11): docs-conditions and
# docs-triggers are the newest.
RULES = {
    "bronze": [
        "action-setup", "appropriate-polling", "brands", "common-modules", "config-flow",
        "config-flow-test-coverage", "dependency-transparency", "docs-actions",
        "docs-conditions", "docs-high-level-description", "docs-installation-instructions",
        "docs-removal-instructions", "docs-triggers", "entity-event-setup", "entity-unique-id",
        "has-entity-name", "runtime-data", "test-before-configure", "test-before-setup",
        "unique-config-entry",
    ],
    "silver": [
        "action-exceptions", "config-entry-unloading", "docs-configuration-parameters",
        "docs-installation-parameters", "entity-unavailable", "integration-owner",
        "log-when-unavailable", "parallel-updates", "reauthentication-flow", "test-coverage",
    ],
    "gold": [
        "devices", "diagnostics", "discovery", "discovery-update-info", "docs-data-update",
        "docs-examples", "docs-known-limitations", "docs-supported-devices",
        "docs-supported-functions", "docs-troubleshooting", "docs-use-cases",
        "dynamic-devices", "entity-category", "entity-device-class",
        "entity-disabled-by-default", "entity-translations", "exception-translations",
        "icon-translations", "reconfiguration-flow", "repair-issues", "stale-devices",
    ],
    "platinum": ["async-dependency", "inject-websession", "strict-typing"],
}  # fmt: skip


def load() -> dict[str, object]:
    rules = yaml.safe_load(FILE.read_text(encoding="utf-8"))["rules"]
    return {name: v if isinstance(v, str) else v["status"] for name, v in rules.items()}


def test_every_current_rule_is_assessed_and_no_other() -> None:
    assert set(load()) == {rule for tier in RULES.values() for rule in tier}


def test_statuses_and_reasons() -> None:
    statuses = load()
    rules = yaml.safe_load(FILE.read_text(encoding="utf-8"))["rules"]
    assert set(statuses.values()) <= {"done", "todo", "exempt"}
    for name, status in statuses.items():
        if status != "done":
            assert isinstance(rules[name], dict), f"{name}: say why it is {status}"
            assert rules[name].get("comment"), f"{name}: say why it is {status}"
    # Bronze and silver are met in full; gold bar discovery (nothing to discover by).
    assert [r for r in RULES["bronze"] + RULES["silver"] if statuses[r] == "todo"] == []
    assert [r for r in RULES["gold"] if statuses[r] == "todo"] == ["discovery"]


def test_brand_images_exist() -> None:
    brand = FILE.parent / "brand"
    for name in ("icon.png", "icon@2x.png", "logo.png", "logo@2x.png"):
        data = (brand / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
    width, height = png_size(brand / "icon.png")
    assert (width, height) == (256, 256)
    assert png_size(brand / "icon@2x.png") == (512, 512)
    assert png_size(brand / "logo.png")[1] == 128


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    data = path.read_bytes()
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
