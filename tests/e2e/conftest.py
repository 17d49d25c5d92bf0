"""The real-Home-Assistant end-to-end stack, started once per session.

Mosquitto on a free loopback port, a real Home Assistant core (``hass --skip-pip``, seeded
configuration with recorder and energy, MQTT pointed at the broker), the emulated meter
(``countis-bridge emulate`` with its control API) and the bridge, started through the
add-on's entrypoint (``python -m countis_bridge.app`` with an ``options.json`` that names the
broker), all as real processes. Run with the Home Assistant venv's Python::

    .venv-ha-2026.11/bin/python -m pytest -c tests/e2e/pytest.ini tests/e2e

The bridge and the emulator run on the project's main venv (``.venv``: the MQTT daemon's
dependencies are not part of the HA venv); ``COUNTIS_E2E_BRIDGE_PYTHON`` overrides that.
On any failure the tails of hass.log and of the bridge's and emulator's logs are attached
to the report.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from ha_harness import HomeAssistant, overlay_venv, seed_ha_config

from tests.control_api import EmulatorControl
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
SERIAL = "21170A0165001"  # the emulated meter's serial: unique ids are countis_<serial>_<key>
# The meter the custom integration reads (its own emulator: the bridge keeps the first).
NATIVE_SERIAL = "21170A0165002"
NATIVE_TITLE = f"COUNTIS E28 {NATIVE_SERIAL}"
METER_NAME = "Main"
SPEED = 10.0  # emulator time acceleration: counters move, yet far below the guard's limit
REALTIME_INTERVAL = 1.0
ENERGY_INTERVAL = 2.0
_LOGS: list[Path] = []


def bridge_python() -> str:
    """The interpreter that runs the bridge and the emulator (needs the daemon extra)."""
    python = os.environ.get("COUNTIS_E2E_BRIDGE_PYTHON") or str(ROOT / ".venv" / "bin" / "python")
    check = subprocess.run(
        [python, "-c", "import aiomqtt, pydantic_settings, yaml, countis_bridge.app"],
        capture_output=True,
        check=False,
        timeout=60,
    )
    if check.returncode != 0:
        pytest.fail(
            f"{python} cannot run the bridge (needs the project with the daemon extra; "
            f"scripts/bootstrap.sh makes .venv): {check.stderr.decode()[-500:]}",
            pytrace=False,
        )
    return python


@dataclass
class Stack:
    """The running stack and what the tests need to reach it."""

    workdir: Path
    ha: HomeAssistant
    control: EmulatorControl
    emulator: Process
    bridge: Process
    native: EmulatorControl  # the integration's meter
    overlay: Path  # the venv Home Assistant runs in (and installs requirements into)
    processes: list[Process] = field(default_factory=list)

    def unique_id(self, key: str) -> str:
        """The Home Assistant unique id of the meter's entity ``key``."""
        return f"countis_{SERIAL}_{key}"

    def registry(self) -> dict[str, dict[str, Any]]:
        """The meter's entity registry entries by unique id (MQTT platform only)."""
        (entries,) = self.ha.ws({"type": "config/entity_registry/list"})
        prefix = f"countis_{SERIAL}_"
        return {
            e["unique_id"]: e
            for e in entries
            if e.get("platform") == "mqtt" and str(e.get("unique_id", "")).startswith(prefix)
        }

    def entity_id(self, key: str) -> str:
        """The entity id Home Assistant gave the meter's entity ``key``."""
        return str(self.registry()[self.unique_id(key)]["entity_id"])


def emulator_process(
    python: str, workdir: Path, port: int, control_port: int, serial: str = SERIAL
) -> Process:
    """An emulated meter (same port, serial and state file on every start)."""
    command = [
        python, "-m", "countis_bridge", "emulate", "--host", HOST, "--port", str(port),
        "--control-port", str(control_port), "--serial", serial, "--model", "E28",
        "--profile", "constant", "--speed", str(SPEED), "--seed", "1",
        "--state-file", str(workdir / f"emulator-{serial}.json"),
    ]  # fmt: skip
    name = "emulator" if serial == SERIAL else f"emulator {serial}"
    return Process(name, command, workdir / f"{name.replace(' ', '-')}.log")


def fresh_wheels(workdir: Path) -> Path:
    """A folder with only the freshly built wheels (scripts/build-dists.sh builds them)."""
    wheels = workdir / "wheels"
    wheels.mkdir()
    built = sorted((ROOT / "dist").glob("countis*-py3-none-any.whl"))
    if not any(w.name.startswith("countis-") for w in built):
        pytest.fail("no countis wheel in dist/: run scripts/build-dists.sh", pytrace=False)
    for wheel in built:
        shutil.copy2(wheel, wheels)
    return wheels


def native_entry(meter_port: int) -> dict[str, Any]:
    """The custom integration's config entry for the second emulated meter."""
    return {
        "domain": "countis",
        "title": NATIVE_TITLE,
        "unique_id": NATIVE_SERIAL,
        "data": {"host": HOST, "port": meter_port, "unit": 5},
        "options": {"realtime_interval": 1.0, "energy_interval": 2.0, "commands": True,
                    "tariff_mode": "none"},
    }  # fmt: skip


def hass_environment(wheels: Path) -> dict[str, str]:
    """Home Assistant's environment: its requirement installs see the fresh wheels only.

    No index at all: uv (which Home Assistant installs requirements with) finds the
    integration's pinned library in ``wheels`` or nowhere.
    """
    return {**os.environ, "UV_NO_INDEX": "1", "UV_FIND_LINKS": str(wheels), "UV_OFFLINE": "1"}


def bridge_process(python: str, workdir: Path, mqtt_port: int, meter_port: int) -> Process:
    """The bridge, started by the add-on's entrypoint from an options.json."""
    options = {
        "meters": [{"name": METER_NAME, "host": HOST, "port": meter_port, "unit": 5}],
        "realtime_interval": REALTIME_INTERVAL,
        "energy_interval": ENERGY_INTERVAL,
        "discovery_prefix": "homeassistant",
        "base_topic": "countis",
        "discovery_mode": "device",
        "per_value_topics": False,
        "mqtt": {"host": HOST, "port": mqtt_port},
        "log_level": "info",
        "emulate": False,
    }
    (workdir / "options.json").write_text(json.dumps(options))
    env = {
        **os.environ,
        "COUNTIS_ADDON_OPTIONS": str(workdir / "options.json"),
        "COUNTIS_ADDON_DATA": str(workdir / "addon-data"),
        "COUNTIS_ADDON_RUN_DIR": str(workdir / "addon-run"),
    }
    return Process("bridge", [python, "-m", "countis_bridge.app"], workdir / "bridge.log", env)


def _http_failed(workdir: Path) -> bool:
    """False unless Home Assistant could not open its HTTP port (then: a failure)."""
    log = workdir / "ha" / "hass.log"
    if log.exists() and "Failed to create HTTP server" in log.read_text(errors="replace"):
        pytest.fail(f"Home Assistant has no HTTP server:\n{tail(log, 20)}", pytrace=False)
    return False


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Everything running, Home Assistant up with MQTT; stopped (by PID) afterwards."""
    workdir = tmp_path_factory.mktemp("e2e")
    python = bridge_python()
    processes: list[Process] = []
    _LOGS[:] = [workdir / "ha" / "hass.log", workdir / "bridge.log", workdir / "emulator.log"]
    try:
        broker, mqtt_port = start_mosquitto(mosquitto_binary(), workdir)
        processes.append(broker)
        http_port, meter_port, control_port, native_port, native_control = free_ports(5)
        token = seed_ha_config(
            workdir / "ha",
            http_port=http_port,
            mqtt_port=mqtt_port,
            entries=[native_entry(native_port)],
        )
        # The custom integration as a HACS user has it: in the configuration directory,
        # with its requirement (countis==X.Y.Z) not installed. Home Assistant runs without
        # --skip-pip and installs it itself, from the fresh wheels only.
        shutil.copytree(
            ROOT / "custom_components" / "countis",
            workdir / "ha" / "custom_components" / "countis",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        overlay = workdir / "hass-venv"
        hass_python = overlay_venv(overlay)
        hass = Process(
            "hass",
            [str(hass_python), "-m", "homeassistant", "-c", str(workdir / "ha"),
             "--log-file", str(workdir / "ha" / "hass.log")],
            workdir / "hass.out",
            hass_environment(fresh_wheels(workdir)),
        ).start()  # fmt: skip
        processes.append(hass)
        native = emulator_process(python, workdir, native_port, native_control, NATIVE_SERIAL)
        processes.append(native.start())

        # Meter and bridge start while Home Assistant boots: discovery and state are
        # retained, so Home Assistant's MQTT integration finds them when it subscribes.
        emulator = emulator_process(python, workdir, meter_port, control_port).start()
        processes.append(emulator)
        wait_until(
            lambda: (port_open(meter_port) and port_open(control_port)) or emulator.check_running(),
            within=30,
            what="the emulated meter and its control API",
        )
        bridge = bridge_process(python, workdir, mqtt_port, meter_port).start()
        processes.append(bridge)

        ha = HomeAssistant(http_port, token)
        started = time.monotonic()
        wait_until(
            lambda: _http_failed(workdir) or hass.check_running() or ha.running_with_mqtt(),
            within=120,
            every=0.2,
            what="Home Assistant RUNNING with mqtt",
        )
        print(f"\nHome Assistant running with mqtt after {time.monotonic() - started:.1f} s")
        yield Stack(
            workdir=workdir,
            ha=ha,
            control=EmulatorControl(control_port),
            emulator=emulator,
            bridge=bridge,
            native=EmulatorControl(native_control),
            overlay=overlay,
            processes=processes,
        )
    finally:
        # Reverse start order: bridge, emulator, hass, mosquitto (each by its PID group).
        for process in reversed(processes):
            process.stop(timeout=20 if process.name == "hass" else 10)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Attach the tails of Home Assistant's, the bridge's and the emulator's logs on failure."""
    report = yield
    if report.failed:
        hass_log = _LOGS[0]
        if hass_log.exists():
            # The MQTT debug lines bury Home Assistant's own complaints: show those first.
            lines = hass_log.read_text(errors="replace").splitlines()
            problems = [line for line in lines if " WARNING " in line or " ERROR " in line]
            report.sections.append(("hass.log warnings and errors", "\n".join(problems[-40:])))
        for log in _LOGS:
            report.sections.append((f"{log.name} (tail)", tail(log, 60)))
    return report
