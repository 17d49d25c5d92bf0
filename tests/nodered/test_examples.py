"""Every example flow, running in a real Node-RED, does what its comment says.

The stack (conftest.py) is shared: the tests run in file order and each leaves the meter as
it found it (tariff T1, partial meter running, online), except the last one, which removes
the meter from the bridge's configuration.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.nodered.conftest import CANARY_ID, NOTES, TIMINGS, Stack, example_flows
from tests.processes import wait_until

LIVE_KEYS = (
    "power",
    "energy_import",
    "energy_export",
    "energy_import_t1",
    "energy_import_t2",
    "energy_export_t1",
    "energy_export_t2",
    "tariff",
    "timestamp",
)
ENERGY_KEYS = [k for k in LIVE_KEYS if k.startswith("energy_")]


def test_every_flow_is_deployed_on_its_tab(stack: Stack) -> None:
    deployed = {n["id"]: n for n in stack.node_red.flows()}
    for name, nodes in example_flows().items():
        for node in nodes:
            assert node["id"] in deployed, f"{name}: {node['id']} is not deployed"
            if "z" in node:
                assert deployed[node["id"]]["z"] == node["z"]


def _note_first_states(stack: Stack) -> None:
    """Timings: the bridge's first state, and the first one carrying the energy counters."""
    started = TIMINGS["_bridge_started_at"]
    states = [m for m in stack.mqtt.on(stack.topic("state")) if m.payload]
    first = states[0]
    with_energy = next(m for m in states if set(ENERGY_KEYS) <= json.loads(m.payload).keys())
    TIMINGS["first state on MQTT (after the bridge started)"] = first.at - started
    TIMINGS["first state with every energy key (after the bridge started)"] = (
        with_energy.at - started
    )
    NOTES.append(f"{states.index(with_energy)} state message(s) before the energy keys appeared")


def test_live_values_show_power_and_energies_per_tariff(stack: Stack) -> None:
    comms = stack.comms
    # The energy counters arrive once a second reading confirmed them: allow for that.
    values = comms.wait_debug(
        "countis_values_debug", lambda v: set(LIVE_KEYS) <= v.keys(), within=30
    )
    _note_first_states(stack)
    meter = stack.control.meter()["values"]
    assert values["power"] == pytest.approx(meter["power"], rel=0.01)  # constant load
    for key in ENERGY_KEYS:
        assert isinstance(values[key], int | float), key
        assert values[key] >= 0, key
    assert values["tariff"] in (1, 2)
    # The debug node's status: a one-line summary.
    summary = comms.wait_status(
        "countis_values_debug",
        lambda s: " W, import " in str(s.get("text")) and "kWh, T" in s["text"],
    )
    assert summary["text"].startswith(f"{values['power']} W")


def test_readme_flow_shows_the_power_and_switches_to_t2(stack: Stack) -> None:
    power = stack.control.meter()["values"]["power"]
    value = stack.comms.wait_debug("countis_min_debug", lambda v: isinstance(v, int | float))
    assert value == pytest.approx(power, rel=0.01)
    assert stack.control.meter()["tariff"] == 1
    since = time.monotonic()
    stack.node_red.inject("countis_min_t2")
    wait_until(lambda: stack.control.meter()["tariff"] == 2, within=10, what="meter on T2")
    stack.wait_state(lambda s: s.get("tariff") == 2, after=since)
    since = time.monotonic()
    stack.control.tariff(1)  # back, and published, for the next test
    stack.wait_state(lambda s: s.get("tariff") == 1, after=since)


@pytest.mark.parametrize(("button", "tariff"), [("countis_tariff_t2", 2), ("countis_tariff_t1", 1)])
def test_tariff_buttons_switch_the_meters_tariff(stack: Stack, button: str, tariff: int) -> None:
    comms = stack.comms
    mark = comms.mark()
    stack.node_red.inject(button)
    wait_until(
        lambda: stack.control.meter()["tariff"] == tariff,
        within=10,
        what=f"the emulated meter on T{tariff}",
    )
    answer = {"command": "tariff", "status": "ok", "value": tariff}
    comms.wait_debug("countis_tariff_response_debug", lambda v: v == answer, after=mark)
    comms.wait_debug("countis_tariff_debug", lambda v: v == f"T{tariff}", after=mark)
    comms.wait_status("countis_tariff_debug", lambda s: s.get("text") == f"T{tariff}")


def _partial(stack: Stack, button: str, action: str) -> int:
    mark = stack.comms.mark()
    stack.node_red.inject(button)
    answer = {"command": "partial", "status": "ok", "value": action}
    stack.comms.wait_debug("countis_partial_response_debug", lambda v: v == answer, after=mark)
    return mark


def test_partial_meter_buttons_stop_reset_and_start(stack: Stack) -> None:
    comms = stack.comms
    mark = _partial(stack, "countis_partial_stop", "stop")
    stopped = comms.wait_debug("countis_partial_debug", lambda v: v["running"] is False, after=mark)
    frozen = stopped["partial_energy_import"]
    meter_before = stack.control.meter()["values"]["partial_energy_import"]
    later = comms.mark()
    wait_until(
        lambda: (
            stack.control.meter()["values"]["partial_energy_import"] > meter_before
            and len(comms.debug("countis_partial_debug", later)) >= 2
        ),
        within=10,
        what="the meter counting on while the partial meter is stopped",
    )
    assert all(
        v["partial_energy_import"] == frozen for v in comms.debug("countis_partial_debug", later)
    )

    mark = _partial(stack, "countis_partial_reset", "reset")
    comms.wait_debug(
        "countis_partial_debug",
        lambda v: v["running"] is False and v["partial_energy_import"] == 0,
        after=mark,
    )
    assert stack.control.meter()["values"]["partial_energy_import"] < meter_before + 0.5

    mark = _partial(stack, "countis_partial_start", "start")
    comms.wait_debug(
        "countis_partial_debug",
        lambda v: v["running"] is True and v["partial_energy_import"] > 0,
        after=mark,
    )
    comms.wait_status("countis_partial_debug", lambda s: str(s.get("text")).startswith("running, "))


@pytest.mark.parametrize(
    ("button", "command", "sent", "answer"),
    [
        ("countis_rr_t2", "tariff", "T2", {"status": "ok", "value": 2}),
        ("countis_rr_bad", "tariff", "T3", {"status": "error"}),
        ("countis_rr_reset", "partial", "reset", {"status": "ok", "value": "reset"}),
        ("countis_rr_t1", "tariff", "T1", {"status": "ok", "value": 1}),
    ],
)
def test_request_gets_its_correlated_response(
    stack: Stack, button: str, command: str, sent: str, answer: dict[str, Any]
) -> None:
    comms = stack.comms
    mark, since = comms.mark(), time.monotonic()
    stack.node_red.inject(button)
    status = comms.wait_status(
        "countis_rr_request", lambda s: s in comms.statuses("countis_rr_request", mark)
    )
    correlation_id = status["text"].removeprefix("sent ")
    # What went over MQTT: the command as JSON with the id.
    request = wait_until(
        lambda: stack.mqtt.on(stack.topic(f"set/{command}"), after=since),
        within=5,
        what="the request on MQTT",
    )[0]
    assert json.loads(request.payload) == {"value": sent, "correlation_id": correlation_id}
    matched = comms.wait_debug("countis_rr_debug", lambda _: True, after=mark)
    response = matched["payload"]
    assert response["correlation_id"] == correlation_id
    assert response["command"] == command
    assert answer.items() <= response.items()
    if answer["status"] == "error":
        assert "T3" in response["reason"]
    assert matched["request"]["value"] == sent
    assert matched["request"]["topic"] == stack.topic(f"set/{command}")
    assert 0 <= matched["elapsed_ms"] < 5000
    match_status = comms.wait_status(
        "countis_rr_match", lambda s: s["text"].startswith(answer["status"])
    )
    assert match_status["fill"] == ("green" if answer["status"] == "ok" else "red")
    if command == "tariff" and answer["status"] == "ok":
        assert stack.control.meter()["tariff"] == answer["value"]


def test_availability_status_shows_offline_while_the_meter_is_silent(stack: Stack) -> None:
    comms = stack.comms
    node = "countis_availability_status"
    comms.wait_status(node, lambda s: s.get("text") == "online")
    mark, silent_since = comms.mark(), time.monotonic()
    stack.control.faults(no_answer=True)
    try:
        status = comms.wait_status(node, lambda s: s.get("text") == "offline", within=15)
        TIMINGS["node status offline (after the meter fell silent)"] = (
            time.monotonic() - silent_since
        )
        assert status["fill"] == "red"
        comms.wait_debug("countis_availability_debug", lambda v: v == "offline", after=mark)
    finally:
        stack.control.faults(clear=True)
    comms.wait_status(node, lambda s: s.get("text") == "online", within=15)
    comms.wait_debug("countis_availability_debug", lambda v: v == "online", after=mark)


def test_meter_removal_is_handled_without_errors(stack: Stack) -> None:
    """Last: the bridge restarts without the meter and clears its topics (empty payloads)."""
    comms = stack.comms
    mark, since = comms.mark(), time.monotonic()
    stack.restart_bridge(with_meter=False)
    comms.wait_status(
        "countis_availability_status", lambda s: s.get("text") == "removed", within=20
    )
    statuses = [s.get("text") for s in comms.statuses("countis_availability_status", mark)]
    assert "offline (bridge offline)" in statuses  # while the bridge restarted
    removed = comms.wait_debug("countis_values_removed_debug", after=mark)
    assert "removed" in removed
    for leaf in ("state", "availability"):  # cleared: an empty payload, nothing retained
        assert any(m.payload == b"" for m in stack.mqtt.on(stack.topic(leaf), since)), leaf
    assert stack.retained(stack.topic("#")) == {}
    # The canary ("a parsed JSON object") choked on the empty state: the payload did reach
    # Node-RED. Nothing else may complain.
    wait_until(
        lambda: any(e.get("id") == CANARY_ID for e in comms.errors(mark)),
        within=10,
        what="the canary's JSON parse error",
    )
    time.sleep(0.5)  # let every flow finish with the removal messages
    others = [e for e in comms.errors() if e.get("id") != CANARY_ID]
    assert not others, f"nodes reported errors or warnings: {others}"
    errors = stack.node_red.log_lines("error")
    assert errors, "the canary's error is not in Node-RED's log"
    assert all("[mqtt in:canary" in line for line in errors), errors
    assert any("Failed to parse JSON string" in line for line in errors)
    node_warnings = [  # "[warn] [function:name] ...": a node's warning
        ln
        for ln in stack.node_red.log_lines("warn")
        if ln.split("[warn]", 1)[1].lstrip().startswith("[")
    ]
    assert not node_warnings, node_warnings
    assert comms.debug("countis_rr_timeout_debug") == []  # every request was answered
