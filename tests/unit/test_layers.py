"""Layering of the two distributions and the integration, checked on their import graphs.

Every module of the library (``countis``) and of the daemon (``countis_bridge``) has a tier:
data -> pure -> adapters -> composition. A module imports only its own tier and lower
ones; the daemon may use the whole library, the library never the daemon. Third-party
imports are confined: the library uses the standard library only; aiomqtt and paho live in
the daemon's MQTT adapter, pymodbus in the emulator. The Home Assistant integration imports
only the library and Home Assistant.

Imports are found with ``ast`` (including those inside functions).
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "lib" / "countis"
DAEMON = ROOT / "countis_bridge"
INTEGRATION = ROOT / "custom_components" / "countis"

TIERS = ("data", "pure", "adapters", "composition")
LAYERS: dict[str, dict[str, str]] = {
    "countis": {
        "errors": "data",
        "registers": "data",
        "models": "data",
        "catalogue": "data",
        "presentation": "data",
        "config": "pure",
        "codec": "pure",
        "plan": "pure",
        "values": "pure",
        "guard": "pure",
        "partial": "pure",
        "schedule": "pure",
        "tariff_plan": "pure",
        "tariff_plan_parse": "pure",
        "tariff_master": "pure",
        "clock": "pure",
        "modbus_tcp": "adapters",
        "client": "adapters",
        "session": "composition",
    },
    "countis_bridge": {
        "topics": "pure",
        "discovery": "pure",
        "commands": "pure",
        "durable": "adapters",
        "ports": "adapters",
        "retained": "adapters",
        "partial_store": "adapters",
        "mqtt": "adapters",
        "settings": "adapters",
        "config_file": "adapters",
        "emulator": "adapters",
        "poller": "composition",
        "service": "composition",
        "daemon": "composition",
        "demo": "composition",
        "readcmd": "composition",
        "cli": "composition",
        "app": "composition",
    },
}
#: Third-party packages and the only modules that may import them.
CONFINED: dict[str, Callable[[str], bool]] = {
    "pymodbus": lambda m: m.startswith("countis_bridge.emulator"),
    "aiomqtt": lambda m: m == "countis_bridge.mqtt",
    "paho": lambda m: m in {"countis_bridge.mqtt", "countis_bridge.app"},
    "pydantic": lambda m: m == "countis_bridge.settings",
    "pydantic_settings": lambda m: m == "countis_bridge.settings",
    "pydantic_core": lambda m: m == "countis_bridge.settings",
    "yaml": lambda m: m == "countis_bridge.config_file",
    "amqtt": lambda m: m == "countis_bridge.demo",
    "uvloop": lambda m: m.startswith(("countis_bridge.daemon", "countis_bridge.emulator")),
    "orjson": lambda m: m == "countis_bridge.mqtt",
}
INTEGRATION_ALLOWED = {"countis", "homeassistant", "probatio", "voluptuous"}
#: The module of an ``import x`` or ``from x import y`` statement (relative ones excluded).
IMPORT_LINE = re.compile(
    r"^\s*(?:from\s+([A-Za-z_][\w.]*)\s+import|import\s+([A-Za-z_][\w.]*))", re.M
)


def module_name(path: Path, root: Path) -> str:
    """Dotted name of a source file below ``root`` (the directory holding the package)."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Absolute names of every module imported anywhere in ``source``."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            # "from countis import codec" imports the submodule countis.codec.
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def tier(module: str) -> tuple[str, int] | None:
    """(distribution, tier index) of a first-party module; None for a package root."""
    parts = module.split(".")
    layers = LAYERS.get(parts[0])
    if layers is None or len(parts) < 2:
        return None
    if parts[1] == "__main__":
        return parts[0], TIERS.index("composition")
    layer = layers.get(parts[1])  # None: a name of the package root (its version)
    return (parts[0], TIERS.index(layer)) if layer else None


def violations(module: str, imported: set[str]) -> list[str]:
    """Layering rules broken by ``module`` importing ``imported``."""
    problems: list[str] = []
    mine = tier(module)
    for name in sorted(imported):
        top = name.split(".")[0]
        if top in CONFINED and not CONFINED[top](module):
            problems.append(f"{module} imports {name}")
        elif top in LAYERS:
            theirs = tier(name)
            if module.startswith("countis.") and top == "countis_bridge":
                problems.append(f"library module {module} imports the daemon ({name})")
            elif mine and theirs and mine[0] == theirs[0] and theirs[1] > mine[1]:
                problems.append(f"{module} ({TIERS[mine[1]]}) imports higher tier {name}")
        elif top not in sys.stdlib_module_names and top != "__future__" and top not in CONFINED:
            problems.append(f"{module} depends on undeclared {name}")
    return problems


def _sources() -> list[tuple[Path, str]]:
    return [(p, module_name(p, LIBRARY.parent)) for p in sorted(LIBRARY.rglob("*.py"))] + [
        (p, module_name(p, DAEMON.parent)) for p in sorted(DAEMON.rglob("*.py"))
    ]


SOURCES = _sources()


def _imports(path: Path, module: str) -> set[str]:
    text = path.read_text(encoding="utf-8")
    return imports_of(text, module, is_package=path.name == "__init__.py")


def test_the_walk_finds_both_distributions() -> None:
    names = {name for _, name in SOURCES}
    assert {"countis.client", "countis.session", "countis_bridge.poller"} <= names
    assert "countis_bridge.emulator.server" in names


@pytest.mark.parametrize(("path", "module"), SOURCES, ids=[m for _, m in SOURCES])
def test_layers(path: Path, module: str) -> None:
    assert violations(module, _imports(path, module)) == []


def test_every_module_has_a_tier() -> None:
    """A new module must be placed in a tier, so the rules cover it."""
    for package, root in (("countis", LIBRARY), ("countis_bridge", DAEMON)):
        found = {p.stem for p in root.glob("*.py")} - {"__init__", "__main__"}
        found |= {p.name for p in root.iterdir() if (p / "__init__.py").exists()}
        assert found - LAYERS[package].keys() == set(), package
        assert LAYERS[package].keys() - found == set(), f"{package}: stale tier entries"


@pytest.mark.parametrize(
    "path", sorted(INTEGRATION.glob("*.py")), ids=lambda p: f"custom_components.countis.{p.stem}"
)
def test_the_integration_imports_only_the_library_and_home_assistant(path: Path) -> None:
    # Read line by line: the integration uses syntax newer than this interpreter may parse.
    imported = set(IMPORT_LINE.findall(path.read_text(encoding="utf-8")))
    outside = {
        name
        for name in (a or b for a, b in imported)
        if name.split(".")[0] not in INTEGRATION_ALLOWED | {"__future__"}
        and name.split(".")[0] not in sys.stdlib_module_names
    }
    assert outside == set()


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("countis.codec", "import aiomqtt", "countis.codec imports aiomqtt"),
        ("countis.guard", "def f():\n    import yaml\n", "countis.guard imports yaml"),
        ("countis.client", "import pymodbus", "countis.client imports pymodbus"),
        ("countis.values", "from countis_bridge import settings", "imports the daemon"),
        ("countis.plan", "from .session import MeterSession", "higher tier countis.session"),
        ("countis.catalogue", "import numpy", "depends on undeclared numpy"),
        ("countis_bridge.topics", "from . import mqtt", "higher tier countis_bridge.mqtt"),
        ("countis_bridge.service", "import aiomqtt", "countis_bridge.service imports aiomqtt"),
        ("countis_bridge.poller", "from pymodbus import x", "imports pymodbus"),
    ],
)
def test_the_checker_catches_violations(module: str, source: str, expected: str) -> None:
    found = violations(module, imports_of(source, module))
    assert any(expected in problem for problem in found), found


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("countis_bridge.emulator.server", "from pymodbus.server import ModbusTcpServer"),
        ("countis_bridge.mqtt", "import aiomqtt"),
        ("countis_bridge.service", "from countis_bridge import mqtt, settings"),
        ("countis_bridge.poller", "from countis.session import MeterSession"),
        ("countis.session", "from countis.client import MeterClient"),
        ("countis.values", "from countis.catalogue import VALUES\nimport math"),
    ],
)
def test_the_checker_allows_the_design(module: str, source: str) -> None:
    assert violations(module, imports_of(source, module)) == []
