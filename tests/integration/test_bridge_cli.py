"""The daemon's command line as a user runs it: config errors, discovery, demo."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from countis.catalogue import VALUE_KEYS

from countis_bridge import cli

CONFIG_ERRORS = {
    "missing file": (None, "configuration file not found"),
    "bad YAML": ("mqtt: {host: [\n", "invalid YAML"),
    "unknown field": ("mqtt: {host: 127.0.0.1, colour: blue}\n", "mqtt.colour: unknown field"),
    "bad port": (
        "meters:\n  - {name: Main, host: 127.0.0.1, port: 70000}\n",
        "meters[0].port",
    ),
}


@pytest.mark.parametrize("case", CONFIG_ERRORS, ids=list(CONFIG_ERRORS))
@pytest.mark.parametrize("command", ["run", "discovery"])
def test_config_errors_are_one_clear_line_and_exit_2(case, command, tmp_path, countis_bridge_argv):
    text, expected = CONFIG_ERRORS[case]
    path = tmp_path / "countis-bridge.yaml"
    if text is not None:
        path.write_text(text)
    result = subprocess.run(
        [*countis_bridge_argv, command, "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert lines[0].startswith(f"countis-bridge {command}: error:")
    assert result.stdout == ""


async def test_discovery_command_prints_every_payload(
    bridge_harness, make_meter, emulator, countis_bridge_argv
):
    meter = make_meter()
    (port,) = await emulator(meter)
    missing = bridge_harness.free_port()
    path = bridge_harness.config(
        [bridge_harness.meter("Main", port), bridge_harness.meter("Gone", missing)],
        mqtt={"discovery_mode": "entity"},
    )
    proc = await asyncio.create_subprocess_exec(
        *countis_bridge_argv,
        "discovery",
        "--config",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1  # one meter could not be identified
    assert "Gone" in err.decode()
    lines = out.decode().splitlines()
    topics = {}
    for line in lines:
        topic, _, payload = line.partition(" ")
        topics[topic] = json.loads(payload) if payload else None
    voltage = topics[f"homeassistant/sensor/countis_{meter.serial}/voltage/config"]
    assert voltage["unique_id"] == f"countis_{meter.serial}_voltage"
    sensors = [t for t in topics if t.startswith("homeassistant/sensor/")]
    assert len(sensors) == len(VALUE_KEYS)


async def wait_header(log: Path, proc: asyncio.subprocess.Process, within: float) -> None:
    """Wait for the demo's header: its broker is up (no bare TCP probe, which a broker logs)."""
    deadline = time.monotonic() + within
    while "  watch:" not in log.read_text(errors="replace"):  # noqa: ASYNC240 - a tiny file
        assert proc.returncode is None, "demo exited early"
        assert time.monotonic() < deadline, "demo broker did not come up"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("broker", ["auto", "amqtt"])
async def test_demo_shows_live_values_and_stops_on_sigint(
    broker, tmp_path, countis_bridge_argv, bridge_harness, make_recorder
):
    port = bridge_harness.free_port()
    log = (tmp_path / "demo.log").open("wb")
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *countis_bridge_argv,
        "demo",
        "--mqtt-port",
        str(port),
        "--broker",
        broker,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        await wait_header(tmp_path / "demo.log", proc, within=10)
        recorder = make_recorder("127.0.0.1", port, ("countis/#",))
        # Every value, counters included, although the meters run 60x faster than the clock.
        every = ("power", "energy_export", "energy_balance", "apparent_energy")
        state = await recorder.wait_for(
            "countis/demo_1/state", lambda m: all(k in m.json() for k in every), within=10
        )
        assert time.monotonic() - started < 10
        assert state.json()["voltage_l1"] > 200
        await recorder.wait_for("countis/demo_1/availability", lambda m: m.payload == b"online")
        await asyncio.sleep(2.5)  # a table or two on stdout
        proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), 15)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()
    output = (tmp_path / "demo.log").read_text(errors="replace")
    assert code == 0, output
    assert f"mosquitto_sub -h 127.0.0.1 -p {port} -t 'countis/#' -v" in output
    assert "Traceback" not in output
    assert " ERROR " not in output
    assert ("broker amqtt" in output) == (broker == "amqtt")
    # Piped, not a terminal: each table keeps its column header.
    tables = [line for line in output.splitlines() if line.split()[:2] == ["meter", "status"]]
    assert len(tables) >= 2
    assert "guard_rejections': 0" in output  # the stop's totals: no counter was refused


def test_a_missing_optional_package_is_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "amqtt.broker", None)  # import fails as if not installed
    assert cli.main(["demo", "--broker", "amqtt", "--duration", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("countis-bridge demo: error: the demo needs an MQTT broker")
    assert "pip install 'countis-bridge[demo]'" in err[-1]
    assert not [line for line in err if "Traceback" in line]
