"""Child processes of the benchmarks and their own CPU/memory accounting (Linux /proc).

Children start in their own session (a terminal Ctrl-C reaches only the benchmark, which
then stops them by PID) and get SIGTERM from the kernel if the benchmark dies abruptly.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the benchmark process dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass(frozen=True, slots=True, kw_only=True)
class CpuSample:
    """CPU seconds (user + system) a process has used, and when it was read."""

    wall: float
    cpu_s: float


def cpu_sample(pid: int) -> CpuSample:
    """utime + stime of ``pid`` (all its threads) from /proc/<pid>/stat."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    # Field 2 (comm) may contain spaces: split after its closing parenthesis.
    fields = raw[raw.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return CpuSample(wall=time.monotonic(), cpu_s=(utime + stime) / CLK_TCK)


def memory_mb(pid: int) -> dict[str, float]:
    """VmHWM (peak RSS) and VmRSS of ``pid`` in MiB."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in {"VmHWM", "VmRSS"}:
            out[key] = int(value.split()[0]) / 1024
    return out


class Children:
    """The benchmark's child processes; ``stop_all`` ends them by PID (TERM, then KILL)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> int:
        """Start ``argv`` with stdout/stderr in ``<log_dir>/<name>.log``; return its PID."""
        log = (self.log_dir / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - started before any thread exists
        )
        log.close()
        self.procs[name] = proc
        return proc.pid

    def alive(self, name: str) -> bool:
        """Whether the named child is still running."""
        return self.procs[name].poll() is None

    def log_tail(self, name: str, lines: int = 20) -> str:
        """The last lines of a child's log (for error messages)."""
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, name: str, timeout: float = 10.0) -> int | None:
        """SIGTERM the named child, SIGKILL it after ``timeout``; return its exit code."""
        proc = self.procs.pop(name, None)
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        return proc.returncode

    def stop_all(self) -> None:
        """Stop every child, most recently started first."""
        for name in reversed(list(self.procs)):
            self.stop(name)


def port_free(port: int) -> bool:
    """Whether a loopback TCP port can be bound (as a server would, with SO_REUSEADDR)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_range(count: int, low: int = 12000) -> int:
    """First port of ``count`` contiguous free loopback ports below the ephemeral range.

    Below the ephemeral range so the bridge's own outgoing connections cannot take them;
    the search starts at a random port so concurrent benchmarks rarely pick the same range.
    """
    try:
        eph_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError):
        eph_low = 32768
    if low + count > eph_low:
        msg = f"no room for {count} ports in {low}..{eph_low}"
        raise RuntimeError(msg)
    start = random.randrange(low, eph_low - count)
    for first in (start, low):
        base = first
        while base + count <= eph_low:
            bad = next((p for p in range(base, base + count) if not port_free(p)), None)
            if bad is None:
                return base
            base = bad + 1
    msg = f"no {count} contiguous free ports in {low}..{eph_low}"
    raise RuntimeError(msg)


def wait_port(port: int, timeout: float, alive: Callable[[], bool] | None = None) -> None:
    """Wait until something accepts TCP connections on ``127.0.0.1:port``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            if alive is not None and not alive():
                msg = f"process died before listening on port {port}"
                raise RuntimeError(msg) from None
            if time.monotonic() > deadline:
                msg = f"nothing listens on port {port} after {timeout:.0f} s"
                raise TimeoutError(msg) from None
            time.sleep(0.1)
