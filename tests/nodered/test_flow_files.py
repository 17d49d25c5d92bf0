"""The example flows as files: importable, one explained tab each, core nodes only.

Nothing runs here; ``test_examples.py`` runs the same flows in Node-RED.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.nodered.conftest import EXAMPLES, ROOT, example_flows
from tests.nodered.harness import merge_flows

EXPECTED_FILES = {
    "live-values.json",
    "tariff.json",
    "partial-meter.json",
    "request-response.json",
    "availability.json",
}
# Nodes that come with Node-RED itself (no palette install needed).
CORE_TYPES = {
    "tab", "comment", "mqtt in", "mqtt out", "mqtt-broker", "inject", "function", "change",
    "switch", "debug", "json", "rbe", "status", "catch", "complete", "link in", "link out",
    "delay", "trigger", "template", "split", "join",
}  # fmt: skip
CONFIG_TYPES = {"mqtt-broker"}
BROKER_ID = "countis_broker"
FLOWS = example_flows()


def nodes_of(name: str, *types: str) -> list[dict[str, Any]]:
    return [n for n in FLOWS[name] if n["type"] in types]


def test_every_example_file_is_there() -> None:
    assert {p.name for p in EXAMPLES.glob("*.json")} == EXPECTED_FILES


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_one_tab_every_node_placed_on_it(name: str) -> None:
    nodes = FLOWS[name]
    ids = [n["id"] for n in nodes]
    assert len(ids) == len(set(ids)), "node ids repeat"
    (tab,) = nodes_of(name, "tab")
    assert tab["label"].startswith("COUNTIS: ")
    for node in nodes:
        assert node["type"] in CORE_TYPES, f"{node['id']}: {node['type']} is not a core node"
        if node["type"] == "tab":
            continue
        if node["type"] in CONFIG_TYPES:
            assert "z" not in node, f"{node['id']}: a config node shared by every tab"
            continue
        assert node["z"] == tab["id"], f"{node['id']} is not on the tab"
        assert isinstance(node["x"], int | float), node["id"]
        assert isinstance(node["y"], int | float), node["id"]
        wires = node["wires"]
        assert isinstance(wires, list), node["id"]
        assert all(isinstance(w, list) for w in wires), f"{node['id']}: wires are lists of ids"
        assert len(wires) == int(node.get("outputs", len(wires))), f"{node['id']}: outputs"
        for target in (t for port in wires for t in port):
            assert target in ids, f"{node['id']} is wired to a missing node {target}"
            assert target != node["id"]


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_a_comment_explains_the_tab(name: str) -> None:
    comments = nodes_of(name, "comment")
    assert comments, "no comment node"
    assert all(c["name"].strip() and c["info"].strip() for c in comments)


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_one_broker_config_node_on_loopback(name: str) -> None:
    (broker,) = nodes_of(name, "mqtt-broker")
    assert broker["id"] == BROKER_ID
    assert (broker["broker"], broker["port"]) == ("127.0.0.1", "1883")
    for node in nodes_of(name, "mqtt in", "mqtt out"):
        assert node["broker"] == BROKER_ID


def test_the_files_share_one_broker_node_and_nothing_else() -> None:
    # merge_flows fails on nodes that share an id but differ.
    merge_flows(FLOWS.values(), broker_host="127.0.0.1", broker_port=1883)
    owners: dict[str, str] = {}
    for name, nodes in FLOWS.items():
        for node in nodes:
            if node["id"] != BROKER_ID:
                assert node["id"] not in owners, f"{node['id']} in {name} and {owners[node['id']]}"
                owners[node["id"]] = name


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_subscriptions_cope_with_empty_payloads(name: str) -> None:
    """No "a parsed JSON object" output; state and availability go through an empty check."""
    by_id = {n["id"]: n for n in FLOWS[name]}
    for node in nodes_of(name, "mqtt in"):
        assert node["datatype"] in ("auto-detect", "auto", "utf8", "buffer"), node["id"]
        if node["topic"].endswith(("/state", "/availability")):
            targets = [by_id[t] for port in node["wires"] for t in port]
            assert targets
            for target in targets:
                checks = target["type"] == "switch" and any(
                    r["t"] in ("empty", "nempty") for r in target["rules"]
                )
                handles = target["type"] == "function" and '=== ""' in target["func"]
                assert checks or handles, f"{node['id']} -> {target['id']}: empty payloads"


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_commands_are_never_retained(name: str) -> None:
    for node in nodes_of(name, "mqtt out"):
        assert node["retain"] in ("false", False), node["id"]


def test_readme_links_every_example_and_names_the_pinned_node_red() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in EXPECTED_FILES:
        assert f"(examples/node-red/{name})" in readme
    lock = json.loads((ROOT / "tests" / "nodered" / "package-lock.json").read_text())
    version = lock["packages"]["node_modules/node-red"]["version"]
    assert f"Node-RED {version}" in readme
