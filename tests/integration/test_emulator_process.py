"""``countis-bridge emulate`` as a real process: control API, faults, SIGTERM, restart."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from countis_bridge.ports import free_port
from tests.control_api import EmulatorControl

HOST = "127.0.0.1"


class Emulator:
    """One ``countis-bridge emulate`` process with its control API."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.control = free_port()
        self.log = tmp_path / f"emulate-{self.control}.log"
        argv = [sys.executable, "-m", "countis_bridge", "emulate", "--port", "0"]
        argv += ["--control-port", str(self.control), *args]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            try:
                self.meters = EmulatorControl(self.control).meters()
                break
            except (urllib.error.URLError, ConnectionError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"emulator did not start: {self.log.read_text()}")
                time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                pytest.fail("emulator ignored the signal")
        return self.proc.returncode


def read_words(port, address, count, unit=5):
    """A raw FC3 exchange: the words, or the exception code as a negative number."""
    with socket.create_connection((HOST, port), timeout=2) as sock:
        sock.sendall(bytes.fromhex("000100000006") + bytes([unit, 3]) + address.to_bytes(2, "big")
                     + count.to_bytes(2, "big"))  # fmt: skip
        answer = b""
        while len(answer) < 9 or len(answer) < 6 + int.from_bytes(answer[4:6], "big"):
            chunk = sock.recv(512)
            if not chunk:
                break
            answer += chunk
    if answer[7] & 0x80:
        return -answer[8]
    return [int.from_bytes(answer[9 + 2 * i : 11 + 2 * i], "big") for i in range(count)]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_process_serves_fleet_faults_and_saves_on_signal(tmp_path, sig):
    state = tmp_path / "state.json"
    emulator = Emulator(
        tmp_path, "--meters", "2", "--profile", "constant", "--speed", "3600",
        "--state-file", str(state), "--serial", "21170A0100100",
    )  # fmt: skip
    try:
        ports = [m["port"] for m in emulator.meters]
        assert [m["serial"] for m in emulator.meters] == ["21170A0100100", "21170A0100101"]
        assert read_words(ports[1], 0xC35A, 1) == [101]  # serial order part
        assert read_words(ports[0], 0xC568, 2) == [0, 621]  # 6210 W
        answer = EmulatorControl(emulator.control, 0).faults(exception=6)
        assert answer["faults"]["exception"] == 6
        assert read_words(ports[0], 0xC568, 2) == -6
        assert read_words(ports[1], 0xC568, 2) == [0, 621]  # faults are per meter
        EmulatorControl(emulator.control, 0).faults(clear=True)
        assert read_words(ports[0], 0xC568, 2) == [0, 621]
        assert EmulatorControl(emulator.control, 1).tariff(2) == {"tariff": 2}
        assert read_words(ports[1], 0xC6A1, 1) == [2]
        time.sleep(0.5)  # 30 simulated minutes at --speed 3600
        values = EmulatorControl(emulator.control, 1).values()
        saved, saved_t2 = values["energy_import"], values["energy_import_t2"]
        assert saved_t2 > 0
    finally:
        code = emulator.stop(sig)
    assert code == 0, emulator.log.read_text()
    files = sorted(p.name for p in tmp_path.glob("state-*.json"))
    assert files == ["state-21170A0100100.json", "state-21170A0100101.json"]
    data = json.loads((tmp_path / files[1]).read_text())
    assert data["tariff"] == 2
    assert data["counters"]["sum.ea_plus"] >= saved * 1000

    again = Emulator(
        tmp_path, "--meters", "2", "--profile", "constant", "--speed", "3600",
        "--state-file", str(state), "--serial", "21170A0100100",
    )  # fmt: skip
    try:
        meter = again.meters[1]
        assert meter["tariff"] == 2
        assert meter["values"]["energy_import"] >= saved
        assert meter["values"]["energy_import_t2"] >= saved_t2
    finally:
        assert again.stop() == 0


def test_process_refuses_bad_options(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "countis_bridge", "emulate", "--serial", "xyz"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "serial" in result.stderr
