"""The Node-RED tier: a real Node-RED running every example flow against the real bridge.

Started once per session, everything on 127.0.0.1 and free ports: Mosquitto, the emulated
meter (``countis-bridge emulate`` with its control API), the bridge (``countis-bridge run``,
meter "Main", so topics are ``countis/main/...``) and Node-RED (the version pinned in
``tests/nodered/package-lock.json``, installed outside the checkout by
``scripts/setup-node-red.sh``) with a temporary user directory and a settings file that
keeps it on loopback (no projects, no telemetry, no palette installs). The flows of
``examples/node-red/`` and the README's inline flow are deployed through the admin API
with their broker configuration pointed at the test broker. Run::

    .venv/bin/python -m pytest tests/nodered

``COUNTIS_NODE_RED_HOME`` names an installed copy (what ``scripts/setup-node-red.sh``
prints); without it the fixture runs that script itself. On a failure the tails of the
Node-RED, bridge, emulator and broker logs are attached to the report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.control_api import EmulatorControl
from tests.nodered.harness import (
    Comms,
    MqttObserver,
    NodeRed,
    load_flow,
    merge_flows,
    readme_flow,
)
from tests.processes import (
    HOST,
    Process,
    free_ports,
    mosquitto_binary,
    port_open,
    start_mosquitto,
    tail,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "node-red"
SERIAL = "21170A0142001"  # the emulated meter
BASE = "countis"
METER = "main"  # the topic slug of the meter named "Main"
# Short intervals: the meter is declared offline after 2 failed polls of at most 0.5 s each.
METER_SETTINGS = {"realtime_interval": 0.5, "energy_interval": 1.0, "timeout": 0.5}
OFFLINE_AFTER = 2
SPEED = 10.0  # emulator time acceleration: the counters move within a second

# A test-only tab: an "mqtt in" with the output "a parsed JSON object" (the README's old
# advice). It must log "Failed to parse JSON string" when the meter is removed: that proves
# the empty retained payloads reached Node-RED while the examples stayed silent.
CANARY_ID = "test_canary_json"
CANARY = [
    {"id": "test_canary", "type": "tab", "label": "test: canary", "disabled": False, "info": ""},
    {
        "id": CANARY_ID, "type": "mqtt in", "z": "test_canary",
        "name": "canary: a parsed JSON object", "topic": f"{BASE}/{METER}/state", "qos": "1",
        "datatype": "json", "broker": "countis_broker", "nl": False, "rap": True, "rh": 0,
        "inputs": 0, "x": 200, "y": 80, "wires": [[]],
    },
]  # fmt: skip

TIMINGS: dict[str, float] = {}  # seconds, printed at the end of the run
NOTES: list[str] = []  # other observations, printed with them
_LOGS: list[Path] = []


def node_red_home() -> Path:
    """The installed Node-RED: ``COUNTIS_NODE_RED_HOME``, else what the setup script prints."""
    given = os.environ.get("COUNTIS_NODE_RED_HOME")
    if not given:
        started = time.monotonic()
        done = subprocess.run(
            [str(ROOT / "scripts" / "setup-node-red.sh")],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            check=False,
            timeout=900,
        )
        if done.returncode != 0:
            pytest.fail("scripts/setup-node-red.sh failed (see its output above)", pytrace=False)
        given = done.stdout.decode().strip().splitlines()[-1]
        TIMINGS["setup-node-red.sh"] = time.monotonic() - started
    home = Path(given)
    if not (home / "node_modules" / "node-red" / "red.js").is_file():
        pytest.fail(f"no Node-RED installed in {home} (scripts/setup-node-red.sh)", pytrace=False)
    return home


def bridge_command() -> list[str]:
    """This environment's ``countis-bridge`` script."""
    script = Path(sys.executable).with_name("countis-bridge")
    if not script.exists():
        pytest.fail(f"no {script}: run scripts/bootstrap.sh", pytrace=False)
    return [str(script)]


def example_flows() -> dict[str, list[dict[str, Any]]]:
    """Every flow of examples/node-red by file name, and the README's as ``README.md``."""
    flows = {path.name: load_flow(path) for path in sorted(EXAMPLES.glob("*.json"))}
    flows["README.md"] = readme_flow(ROOT / "README.md")
    return flows


@dataclass
class Stack:
    """The running processes and what the tests reach them with."""

    workdir: Path
    node_red: NodeRed
    comms: Comms
    control: EmulatorControl
    mqtt: MqttObserver
    mqtt_port: int
    meter_port: int
    bridge: Process
    deployed: list[dict[str, Any]] = field(default_factory=list)

    @staticmethod
    def topic(leaf: str) -> str:
        """``countis/main/<leaf>``."""
        return f"{BASE}/{METER}/{leaf}"

    def wait_state(self, predicate: Callable[[dict[str, Any]], bool], *, after: float) -> None:
        """Wait until the bridge publishes a state (after a monotonic time) matching it."""
        wait_until(
            lambda: any(
                predicate(json.loads(m.payload))
                for m in self.mqtt.on(self.topic("state"), after)
                if m.payload
            ),
            within=10,
            what="a matching state message",
        )

    def retained(self, topic_filter: str) -> dict[str, bytes]:
        """What the broker retains under ``topic_filter`` now (a fresh subscription's view)."""
        probe = MqttObserver(self.mqtt_port, topic_filter, client_id="nodered-tier-probe")
        try:
            time.sleep(0.3)
            return {m.topic: m.payload for m in probe.messages if m.retain}
        finally:
            probe.stop()

    def restart_bridge(self, *, with_meter: bool) -> None:
        """Stop the bridge (SIGTERM: it says offline) and start it with a new configuration."""
        self.bridge.stop()
        write_bridge_config(self.workdir, self.mqtt_port, self.meter_port, with_meter=with_meter)
        self.bridge.start()


def write_bridge_config(
    workdir: Path, mqtt_port: int, meter_port: int, *, with_meter: bool = True
) -> Path:
    """The bridge's configuration (JSON is YAML): meter Main on the emulator, or no meter."""
    meter = {"name": "Main", "host": HOST, "port": meter_port, "unit": 5, **METER_SETTINGS}
    config = {
        "mqtt": {"host": HOST, "port": mqtt_port, "base_topic": BASE},
        "meters": [meter] if with_meter else [],
        "offline_after": OFFLINE_AFTER,
        "data_dir": str(workdir / "bridge-data"),
        "log_level": "INFO",
    }
    path = workdir / "countis-bridge.yaml"
    path.write_text(json.dumps(config, indent=1))
    return path


def _mqtt_nodes_connected(comms: Comms, nodes: list[dict[str, Any]]) -> bool:
    ids = [n["id"] for n in nodes if n["type"] in ("mqtt in", "mqtt out")]
    statuses = {i: (comms.status(i) or {}).get("text") for i in ids}
    return all(text == "node-red:common.status.connected" for text in statuses.values())


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Everything running, the flows deployed and connected; stopped by PID afterwards."""
    home = node_red_home()
    workdir = tmp_path_factory.mktemp("nodered")
    processes: list[Process] = []
    observer: MqttObserver | None = None
    comms: Comms | None = None
    _LOGS[:] = [workdir / n for n in ("node-red.log", "bridge.log", "emulator.log")]
    _LOGS.append(workdir / "mosquitto.log")
    try:
        started = time.monotonic()
        broker, mqtt_port = start_mosquitto(mosquitto_binary(), workdir)
        processes.append(broker)
        observer = MqttObserver(mqtt_port, f"{BASE}/#")
        meter_port, control_port, red_port = free_ports(3)
        node_red = NodeRed(home, workdir, red_port).start()  # the slowest to start: first
        processes.append(node_red.process)
        emulator = Process(
            "emulator",
            [*bridge_command(), "emulate", "--host", HOST, "--port", str(meter_port),
             "--control-port", str(control_port), "--serial", SERIAL, "--model", "E28",
             "--profile", "constant", "--speed", str(SPEED), "--seed", "1"],
            workdir / "emulator.log",
        ).start()  # fmt: skip
        processes.append(emulator)
        wait_until(
            lambda: emulator.check_running() or (port_open(meter_port) and port_open(control_port)),
            within=30,
            what="the emulated meter and its control API",
        )
        config = write_bridge_config(workdir, mqtt_port, meter_port)
        bridge_cmd = [*bridge_command(), "run", "--config", str(config)]
        bridge = Process("bridge", bridge_cmd, workdir / "bridge.log").start()
        processes.append(bridge)
        TIMINGS["_bridge_started_at"] = time.monotonic()
        TIMINGS["bridge started (after the tier began)"] = time.monotonic() - started

        node_red.wait_ready()
        TIMINGS["Node-RED admin API up (after the tier began)"] = time.monotonic() - started
        comms = Comms(red_port)
        deployed = merge_flows(
            [*example_flows().values(), CANARY], broker_host=HOST, broker_port=mqtt_port
        )
        node_red.deploy(deployed)
        wait_until(
            lambda: node_red.process.check_running() or _mqtt_nodes_connected(comms, deployed),
            within=15,
            what="every mqtt node of the deployed flows connected",
        )
        TIMINGS["flows deployed, all connected (after the tier began)"] = time.monotonic() - started
        yield Stack(
            workdir=workdir,
            node_red=node_red,
            comms=comms,
            control=EmulatorControl(control_port),
            mqtt=observer,
            mqtt_port=mqtt_port,
            meter_port=meter_port,
            bridge=bridge,
            deployed=deployed,
        )
    finally:
        if comms is not None:
            comms.close()
        if observer is not None:
            observer.stop()
        for process in reversed(processes):  # bridge, emulator, Node-RED, mosquitto
            process.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Attach the tails of the Node-RED, bridge, emulator and broker logs on failure."""
    report = yield
    if report.failed:
        for log in _LOGS:
            report.sections.append((f"{log.name} (tail)", tail(log, 60)))
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the timings the tier measured (start-up, first values, energies)."""
    shown = {k: v for k, v in TIMINGS.items() if not k.startswith("_")}
    if shown or NOTES:
        terminalreporter.section("Node-RED tier timings")
        for name, seconds in shown.items():
            terminalreporter.write_line(f"{seconds:6.2f} s  {name}")
        for note in NOTES:
            terminalreporter.write_line(note)
