"""Child processes of the out-of-process test tiers (Home Assistant, Node-RED): no fixtures.

Every process runs in its own session and is stopped by its process group id, never by
name. Every wait has a deadline. The standard library and the bridge's own port helpers
only, so every tier's interpreter (the bridge's venv, the Home Assistant venvs) imports it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

from countis_bridge.ports import LOOPBACK as HOST
from countis_bridge.ports import port_open

T = TypeVar("T")

__all__ = [
    "HOST",
    "Process",
    "free_ports",
    "mosquitto_binary",
    "port_open",
    "start_mosquitto",
    "tail",
    "wait_until",
]


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago (held open together)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def wait_until(probe: Callable[[], T | None], *, within: float, every: float = 0.1, what: str) -> T:
    """Call ``probe`` until it returns something other than None/False; fail at the deadline."""
    deadline = time.monotonic() + within
    last_error: Exception | None = None
    while True:
        try:
            result = probe()
        except (OSError, ValueError, KeyError) as err:  # not up yet, half-written, ...
            last_error, result = err, None
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"timed out after {within:.0f} s waiting for {what}{detail}")
        time.sleep(every)


def tail(path: Path, lines: int = 60) -> str:
    """The last lines of a log file (for failure reports)."""
    if not path.exists():
        return f"({path.name} does not exist)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class Process:
    """A child process in its own session, stopped by process group id."""

    def __init__(
        self, name: str, command: Sequence[str], log: Path, env: Mapping[str, str] | None = None
    ) -> None:
        """Remember how to start it; nothing runs yet."""
        self.name = name
        self.command = list(command)
        self.log = log
        self.env = dict(os.environ if env is None else env)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        """Start (appending to the log)."""
        assert not self.running, f"{self.name} already runs"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )
        return self

    @property
    def running(self) -> bool:
        """Whether the main process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def check_running(self) -> bool:
        """False while it runs; an AssertionError with its log once it has exited."""
        if self.running:
            return False
        raise AssertionError(f"{self.name} exited:\n{tail(self.log, 30)}")

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the process group, then SIGKILL it after ``timeout``; returns the status."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            status = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            status = proc.wait(timeout=5)
        # Whatever else is left in the group (children of children) goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return status


def mosquitto_binary() -> str:
    """Path of the mosquitto executable, or a failure (never a skip) telling how to install it."""
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if found is None:
        pytest.fail(
            "mosquitto is not installed: the tests need a real broker "
            "(Debian/Ubuntu: apt-get install mosquitto; or run scripts/ensure-mosquitto.sh)",
            pytrace=False,
        )
    return found


def start_mosquitto(binary: str, workdir: Path) -> tuple[Process, int]:
    """A private anonymous broker on a free loopback port (no persistence)."""
    (port,) = free_ports(1)
    config = workdir / "mosquitto.conf"
    config.write_text(f"listener {port} {HOST}\nallow_anonymous true\npersistence false\n")
    broker = Process("mosquitto", [binary, "-c", str(config)], workdir / "mosquitto.log").start()
    wait_until(
        lambda: broker.check_running() or port_open(port), within=10, every=0.05, what="mosquitto"
    )
    return broker, port
