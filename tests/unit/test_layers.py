"""Layering: the core depends on the standard library and pymodbus only, never upwards.

Walks every bridge module's imports (including imports inside functions) with ``ast``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "bridge"
CORE = {
    "errors",
    "registers",
    "codec",
    "plan",
    "models",
    "entities",
    "values",
    "partial",
    "guard",
    "client",
    "modbus_tcp",
}
HIGHER = {
    "mqtt",
    "service",
    "settings",
    "daemon",
    "cli",
    "topics",
    "discovery",
    "commands",
    "readcmd",
    "addon",
    "poller",
    "demo",
}
FORBIDDEN_IN_CORE = {"aiomqtt", "paho", "pydantic", "pydantic_settings", "yaml"}
ONLY_IN = {
    "pymodbus": lambda module: module == "bridge.client" or module.startswith("bridge.emulator."),
    "aiomqtt": lambda module: module == "bridge.mqtt",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
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
            # "from bridge import mqtt" imports the submodule bridge.mqtt.
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def is_core(module: str) -> bool:
    name = module.removeprefix("bridge.")
    return name in CORE or module == "bridge.emulator" or module.startswith("bridge.emulator.")


def violations(module: str, imported: set[str]) -> list[str]:
    """Layering rules broken by ``module`` importing ``imported``."""
    problems: list[str] = []
    for name in sorted(imported):
        top = name.split(".")[0]
        if top in ONLY_IN and not ONLY_IN[top](module):
            problems.append(f"{module} imports {name}")
        if not is_core(module):
            continue
        if top in FORBIDDEN_IN_CORE:
            problems.append(f"core module {module} imports {name}")
        elif top == "bridge":
            parts = name.split(".")
            if len(parts) > 1 and parts[1] in HIGHER:
                problems.append(f"core module {module} imports higher layer {name}")
        elif top not in sys.stdlib_module_names and top not in {"pymodbus", "__future__"}:
            problems.append(f"core module {module} depends on {name}")
    return problems


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_the_walk_finds_the_core() -> None:
    names = {module_name(p) for p in MODULES}
    assert {"bridge.client", "bridge.codec", "bridge.registers", "bridge.values"} <= names


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_layers(path: Path) -> None:
    module = module_name(path)
    imported = imports_of(
        path.read_text(encoding="utf-8"), module, is_package=path.name == "__init__.py"
    )
    assert violations(module, imported) == []


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("bridge.codec", "import aiomqtt", "core module bridge.codec imports aiomqtt"),
        ("bridge.values", "from bridge import settings", "higher layer bridge.settings"),
        ("bridge.plan", "from .mqtt import Mqtt", "higher layer bridge.mqtt"),
        ("bridge.guard", "def f():\n    import yaml\n", "core module bridge.guard imports yaml"),
        ("bridge.emulator.server", "from ..cli import main", "higher layer bridge.cli"),
        ("bridge.entities", "import numpy", "depends on numpy"),
        ("bridge.service", "from pymodbus.client import X", "bridge.service imports pymodbus"),
        ("bridge.service", "import aiomqtt", "bridge.service imports aiomqtt"),
    ],
)
def test_the_checker_catches_violations(module: str, source: str, expected: str) -> None:
    found = violations(module, imports_of(source, module))
    assert any(expected in problem for problem in found), found


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("bridge.client", "from pymodbus.client import AsyncModbusTcpClient"),
        ("bridge.emulator.server", "from pymodbus.server import ModbusTcpServer"),
        ("bridge.mqtt", "import aiomqtt"),
        ("bridge.service", "from bridge import client, mqtt, settings"),
        ("bridge.values", "from bridge.entities import SENSORS\nimport math"),
    ],
)
def test_the_checker_allows_the_design(module: str, source: str) -> None:
    assert violations(module, imports_of(source, module)) == []


def test_every_module_has_a_layer() -> None:
    """A new module must be placed in CORE or HIGHER, so the layer rules cover it."""
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert modules - CORE - HIGHER == set()
