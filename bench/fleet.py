"""Fleet benchmark: N emulated meters -> the bridge -> Mosquitto -> a subscriber.

    python bench/fleet.py --meters N --duration SECONDS [--warmup S] [--realtime 1]
                          [--energy 10] [--floor] [--keep-logs]

Starts the emulator (one process, one port per meter), a private Mosquitto and the bridge
(``countis-bridge run``) as separate processes on 127.0.0.1, waits until every meter has
published and the warm-up has passed, then measures for ``--duration`` seconds. Prints a
table and, as the last line, one JSON object (see bench/README.md for the fields).
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import fleetstats as fs
from procs import Children, cpu_sample, free_port_range, memory_mb, wait_port
from rawmqtt import subscribe_loop

from countis_bridge.emulator import EmulatedMeter, ManualClock
from countis_bridge.emulator.cli import state_file_for
from countis_bridge.emulator.identity import DEFAULT_SERIAL, Serial

MAX_METERS = 5000
MAX_DURATION = 600.0
BASE_TOPIC = "bench"
HERE = Path(__file__).resolve().parent


@dataclass(slots=True)
class Received:
    """What the subscriber saw, per meter slug: poll start stamps and arrival times."""

    base: bytes
    stamps: dict[str, list[float]] = field(default_factory=dict)
    arrivals: dict[str, list[float]] = field(default_factory=dict)
    sizes: list[int] = field(default_factory=list)
    energy: dict[str, list[float]] = field(default_factory=dict)
    last_energy: dict[str, bytes] = field(default_factory=dict)
    retained: int = 0
    unparsable: int = 0
    sample: bytes = b""

    def on_message(self, topic: bytes, payload: bytes, retain: bool) -> None:
        """Record one state message (retained replays of old polls are only counted)."""
        arrival = time.time()
        if retain:
            self.retained += 1
            return
        stamp = fs.poll_timestamp(payload)
        if stamp is None:
            self.unparsable += 1
            return
        slug = topic[len(self.base) + 1 : -len(b"/state")].decode()
        self.stamps.setdefault(slug, []).append(stamp)
        self.arrivals.setdefault(slug, []).append(arrival)
        # An energy poll shows as a new lifetime counter value (see energy_polls_seen).
        energy = fs.energy_counter(payload)
        if energy is not None and energy != self.last_energy.get(slug):
            self.energy.setdefault(slug, []).append(stamp)
            self.last_energy[slug] = energy
        if len(self.sizes) < 100_000:
            self.sizes.append(len(payload))
        self.sample = payload


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line of the benchmark (bounded so a typo cannot take the machine down)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--meters", type=int, required=True, help=f"emulated meters (1..{MAX_METERS})")
    p.add_argument("--duration", type=float, required=True, help="measured seconds (<= 600)")
    p.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds after every meter published (default: energy interval + 2 s, so the"
        " counter guard has confirmed the counters and states are full size)",
    )
    p.add_argument("--realtime", type=float, default=1.0, help="realtime interval (s)")
    p.add_argument("--energy", type=float, default=10.0, help="energy interval (s)")
    p.add_argument("--floor", action="store_true", help="also run bench/floor.py, same run")
    p.add_argument("--keep-logs", action="store_true", help="keep the temp dir with logs")
    p.add_argument("--bridge-arg", action="append", default=[], help="extra args for `run`")
    args = p.parse_args(argv)
    if not 1 <= args.meters <= MAX_METERS:
        p.error(f"--meters must be 1..{MAX_METERS}")
    if not 0 < args.duration <= MAX_DURATION:
        p.error(f"--duration must be in (0, {MAX_DURATION:.0f}]")
    if args.warmup is None:
        args.warmup = args.energy + 2.0
    if args.warmup < 0 or args.realtime <= 0 or args.energy <= 0:
        p.error("--warmup must be >= 0 and the intervals > 0")
    return args


def _mosquitto() -> str:
    found = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(found).exists():
        sys.exit("fleet: mosquitto not found (apt-get install mosquitto)")
    return found


def broker_config(port: int, log: Path) -> str:
    """Mosquitto config: loopback only, no persistence, Nagle off, deep queues."""
    return (
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "persistence false\n"
        "set_tcp_nodelay true\n"
        "max_queued_messages 1000000\n"
        "max_inflight_messages 0\n"
        f"log_dest file {log}\n"
        "log_type error\nlog_type warning\nlog_type notice\n"
    )


def bridge_config(
    args: argparse.Namespace, mqtt_port: int, first_port: int, data: Path
) -> dict[str, object]:
    """The bridge's YAML config (JSON is YAML): one meter per emulator port."""
    width = len(str(args.meters))
    return {
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "base_topic": BASE_TOPIC},
        "meters": [
            {
                "name": f"m{i:0{width}d}",
                "host": "127.0.0.1",
                "port": first_port + i,
                "unit": 5,
                "realtime_interval": args.realtime,
                "energy_interval": args.energy,
            }
            for i in range(args.meters)
        ],
        "data_dir": str(data),
        "log_level": "INFO",
    }


def aged_state_files(workdir: Path, n: int, years: float = 1.0) -> Path:
    """State files giving every meter a year of counters (realistic state sizes).

    One meter's model runs a year on a manual clock; its state is then copied for each
    serial the emulator derives (``--serial`` default, counted up), as the emulator's own
    ``--state-file`` fleet naming expects.
    """
    path = workdir / "meters.json"
    first = Serial.parse(DEFAULT_SERIAL)
    clock = ManualClock(0.0)
    meter = EmulatedMeter(serial=str(first), profile="constant", clock=clock, seed=1)
    clock.advance(years * 365 * 86400)
    state = meter.state()
    for i in range(n):
        serial = first.plus(i)
        target = state_file_for(str(path), serial, n)
        assert target is not None
        target.write_text(json.dumps(state | {"serial": str(serial)}))
    return path


def source_version() -> str | None:
    """The checkout's commit (``-dirty`` with local changes): figures depend on it."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _clean_env() -> dict[str, str]:
    # The bridge reads COUNTIS_* settings from the environment: keep the config file in charge.
    return {k: v for k, v in os.environ.items() if not k.startswith("COUNTIS_")}


class Fleet:
    """The running benchmark: its children, ports and what was measured."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.children = Children(workdir)
        self.python = sys.executable
        self.received = Received(base=BASE_TOPIC.encode())
        self.mqtt_port = 0
        self.first_port = 0
        self.pids: dict[str, int] = {}

    def start_broker(self) -> None:
        """Mosquitto on a free loopback port."""
        port = free_port_range(1)
        self.mqtt_port = port
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(broker_config(port, self.workdir / "mosquitto.log"))
        self.pids["broker"] = self.children.start("broker", [_mosquitto(), "-c", str(conf)])
        wait_port(port, 10.0, lambda: self.children.alive("broker"))

    def start_emulator(self) -> None:
        """The emulated fleet: one process, ports first_port .. first_port + N - 1."""
        n = self.args.meters
        self.first_port = free_port_range(n, low=12000)
        argv = [self.python, "-m", "countis_bridge", "emulate", "--meters", str(n)]
        argv += ["--port", str(self.first_port), "--profile", "constant", "--seed", "1"]
        argv += ["--state-file", str(aged_state_files(self.workdir, n))]
        self.pids["emulator"] = self.children.start("emulator", argv)
        alive = lambda: self.children.alive("emulator")  # noqa: E731
        for port in range(self.first_port, self.first_port + n):
            wait_port(port, 30.0 + n * 0.02, alive)

    def start_bridge(self) -> None:
        """``countis-bridge run`` with a config for the N meters."""
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        conf = self.workdir / "bridge.yaml"
        cfg = bridge_config(self.args, self.mqtt_port, self.first_port, data)
        conf.write_text(json.dumps(cfg, indent=1))
        argv = [
            self.python,
            "-m",
            "countis_bridge",
            "run",
            "--config",
            str(conf),
            *self.args.bridge_arg,
        ]
        self.pids["bridge"] = self.children.start("bridge", argv, env=_clean_env())

    async def wait_all_published(self) -> None:
        """Until every meter has published one state (the bridge is up and polling)."""
        deadline = time.monotonic() + 30.0 + self.args.meters * 0.05
        while len(self.received.stamps) < self.args.meters:
            if not self.children.alive("bridge"):
                tail = self.children.log_tail("bridge")
                msg = f"the bridge exited early:\n{tail}"
                raise RuntimeError(msg)
            if time.monotonic() > deadline:
                msg = (
                    f"only {len(self.received.stamps)} of {self.args.meters} meters published;"
                    f" bridge log:\n{self.children.log_tail('bridge')}"
                )
                raise TimeoutError(msg)
            await asyncio.sleep(0.2)

    def cpu(self) -> dict[str, float]:
        """CPU seconds of bridge, emulator, broker and this process, now."""
        out = {name: cpu_sample(pid).cpu_s for name, pid in self.pids.items()}
        out["bench"] = time.process_time()
        return out


async def measure(fleet: Fleet) -> dict[str, object]:
    """Run the whole benchmark; return the figures."""
    args = fleet.args
    fleet.start_broker()
    fleet.start_emulator()
    ready = asyncio.Event()
    sub = asyncio.create_task(
        subscribe_loop(
            "127.0.0.1", fleet.mqtt_port, f"{BASE_TOPIC}/+/state", fleet.received.on_message, ready
        )
    )
    try:
        await asyncio.wait_for(ready.wait(), 10.0)
        fleet.start_bridge()
        started = time.monotonic()
        await fleet.wait_all_published()
        startup_s = time.monotonic() - started
        await asyncio.sleep(args.warmup)

        fleet.received.sizes.clear()
        t0, cpu0, m0 = time.time(), fleet.cpu(), time.monotonic()
        await asyncio.sleep(args.duration)
        t1, cpu1, m1 = time.time(), fleet.cpu(), time.monotonic()
        mem = memory_mb(fleet.pids["bridge"])
        # Polls started before t1 may still be on their way.
        await asyncio.sleep(min(5.0, max(1.0, 2 * args.realtime)))
    finally:
        sub.cancel()
        await asyncio.gather(sub, return_exceptions=True)
    stopping = time.monotonic()
    bridge_exit = fleet.children.stop("bridge", timeout=30.0)
    bridge_stop_s = time.monotonic() - stopping
    (fleet.workdir / "state-sample.json").write_bytes(fleet.received.sample)
    wall = m1 - m0
    used = {name: cpu1[name] - cpu0[name] for name in cpu0}
    figures = summarize(fleet, t0, t1, wall, used, mem)
    figures["bridge_startup_s"] = round(startup_s, 2)
    figures["bridge_exit_code"] = bridge_exit
    figures["bridge_stop_s"] = round(bridge_stop_s, 2)
    figures["bridge_totals"] = bridge_totals(fleet.workdir / "bridge.log")
    if args.floor:
        figures.update(run_floor(fleet, figures))
    return figures


def summarize(
    fleet: Fleet,
    t0: float,
    t1: float,
    wall: float,
    used: dict[str, float],
    mem: dict[str, float],
) -> dict[str, object]:
    """All figures of the measured window."""
    args, rec = fleet.args, fleet.received
    n, duration = args.meters, t1 - t0
    latencies: list[float] = []
    energy_lat: list[float] = []
    lateness: list[float] = []
    done = missed = energy_seen = 0
    arrived = 0
    width = len(str(n))
    for i in range(n):
        slug = f"m{i:0{width}d}"
        stamps = rec.stamps.get(slug, [])
        arrivals = rec.arrivals.get(slug, [])
        order = sorted(range(len(stamps)), key=stamps.__getitem__)
        inside = [k for k in order if t0 <= stamps[k] < t1]
        done += len(inside)
        latencies += [arrivals[k] - stamps[k] for k in inside]
        energy_stamps = set(rec.energy.get(slug, ()))
        energy_lat += [arrivals[k] - stamps[k] for k in inside if stamps[k] in energy_stamps]
        arrived += sum(1 for a in arrivals if t0 <= a < t1)
        energy_seen += sum(1 for stamp in rec.energy.get(slug, ()) if t0 <= stamp < t1)
        missed += fs.missed_polls([stamps[k] for k in order], t0, t1, args.realtime)
        lateness += fs.start_lateness([stamps[k] for k in inside], args.realtime)
    latencies.sort()
    energy_lat.sort()
    lateness.sort()
    late_limit = 0.1 * args.realtime
    polls_due = round(n * duration / args.realtime)
    bridge_cpu = used["bridge"]
    return fs.rounded(
        [
            ("meters", n),
            ("duration_s", duration),
            ("realtime_interval_s", args.realtime),
            ("energy_interval_s", args.energy),
            ("polls_due", polls_due),
            ("polls_done", done),
            ("polls_missed", missed),
            ("polls_late", sum(1 for x in lateness if x > late_limit)),
            ("start_late_p99_ms", 1000 * fs.percentile(lateness, 99)),
            ("start_late_max_ms", 1000 * lateness[-1] if lateness else float("nan")),
            ("energy_polls_due", round(n * duration / args.energy)),
            ("energy_polls_seen", energy_seen),
            ("requests_per_poll", fs.requests_per_poll(args.realtime, args.energy)),
            ("requests_per_realtime_poll", len(fs.tick_plan(energy=False))),
            ("requests_per_energy_poll", len(fs.tick_plan(energy=True))),
            ("requests_source", "planner"),
            ("bridge_cpu_s", bridge_cpu),
            ("bridge_cpu_ms_per_meter_poll", 1000 * bridge_cpu / done if done else float("nan")),
            ("bridge_cpu_pct", fs.cpu_pct(bridge_cpu, wall)),
            ("bridge_rss_mb", mem.get("VmHWM", float("nan"))),
            ("bridge_rss_mb_per_meter", mem.get("VmHWM", float("nan")) / n),
            ("state_msgs_per_s", arrived / duration),
            ("state_bytes_median", statistics.median(rec.sizes) if rec.sizes else 0),
            ("latency_p50_ms", 1000 * fs.percentile(latencies, 50)),
            ("latency_p99_ms", 1000 * fs.percentile(latencies, 99)),
            ("latency_max_ms", 1000 * latencies[-1] if latencies else float("nan")),
            ("latency_energy_p50_ms", 1000 * fs.percentile(energy_lat, 50)),
            ("latency_energy_max_ms", 1000 * energy_lat[-1] if energy_lat else float("nan")),
            ("emulator_cpu_pct", fs.cpu_pct(used["emulator"], wall)),
            ("broker_cpu_pct", fs.cpu_pct(used["broker"], wall)),
            ("bench_cpu_pct", fs.cpu_pct(used["bench"], wall)),
            ("unparsable_msgs", rec.unparsable),
            ("load_avg_1m", os.getloadavg()[0]),
            ("cpus", os.cpu_count()),
            ("source", source_version()),
        ]
    )


def bridge_totals(log: Path) -> dict[str, object] | None:
    """The bridge's own counters for its whole run (its "stopped; totals: {...}" line)."""
    marker = "stopped; totals: "
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if marker in line]
    except OSError:
        return None
    if not lines:
        return None
    try:
        totals = ast.literal_eval(lines[-1].split(marker, 1)[1])
    except (ValueError, SyntaxError):
        return None
    return totals if isinstance(totals, dict) else None


def run_floor(fleet: Fleet, figures: dict[str, object]) -> dict[str, object]:
    """The floor benchmark against the same emulator and broker (bridge stopped)."""
    args = fleet.args
    sample = fleet.workdir / "state-sample.json"
    argv = [fleet.python, str(HERE / "floor.py")]
    argv += ["--meters", str(args.meters), "--port", str(fleet.first_port)]
    argv += ["--mqtt-port", str(fleet.mqtt_port), "--duration", str(args.duration)]
    argv += ["--warmup", str(min(args.warmup, 3.0)), "--realtime", str(args.realtime)]
    argv += ["--energy", str(args.energy), "--sample", str(sample)]
    out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=900)
    (fleet.workdir / "floor.log").write_text(out.stdout + out.stderr)
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        msg = f"floor.py failed ({out.returncode}):\n{out.stderr[-2000:]}"
        raise RuntimeError(msg)
    floor = json.loads(lines[-1])
    per_poll = floor["floor_cpu_ms_per_meter_poll"]
    bridge = figures["bridge_cpu_ms_per_meter_poll"]
    ratio = bridge / per_poll if isinstance(bridge, float) and per_poll else None
    return {
        "floor_cpu_ms_per_meter_poll": per_poll,
        "floor_cpu_pct": floor["floor_cpu_pct"],
        "floor_polls_missed": floor["polls_missed"],
        "floor_energy_tick_p50_ms": floor["energy_tick_p50_ms"],
        "floor_energy_tick_max_ms": floor["energy_tick_max_ms"],
        "floor_ratio": round(ratio, 2) if ratio else None,
    }


def table(figures: dict[str, object]) -> str:
    """A readable table of the figures."""
    rows = [
        ("meters", "meters"),
        ("schedule", None),
        ("measured (s)", "duration_s"),
        ("polls due / done / missed", None),
        ("polls started > 10% late", "polls_late"),
        ("poll start lateness p99 / max (ms)", None),
        ("energy polls due / seen", None),
        ("Modbus requests per meter-poll", "requests_per_poll"),
        ("bridge CPU ms per meter-poll", "bridge_cpu_ms_per_meter_poll"),
        ("bridge CPU % of one core", "bridge_cpu_pct"),
        ("bridge peak RSS (MB)", "bridge_rss_mb"),
        ("bridge RSS per meter (MB)", "bridge_rss_mb_per_meter"),
        ("state messages/s", "state_msgs_per_s"),
        ("latency p50 / p99 / max (ms)", None),
        ("  of energy polls p50 / max (ms)", None),
        ("emulator CPU %", "emulator_cpu_pct"),
        ("broker CPU %", "broker_cpu_pct"),
        ("bench (subscriber) CPU %", "bench_cpu_pct"),
        ("floor CPU ms per meter-poll", "floor_cpu_ms_per_meter_poll"),
        ("bridge / floor", "floor_ratio"),
    ]
    f = figures
    special = {
        "schedule": f"realtime {f['realtime_interval_s']} s, energy {f['energy_interval_s']} s",
        "polls due / done / missed": f"{f['polls_due']} / {f['polls_done']} / {f['polls_missed']}",
        "  of energy polls p50 / max (ms)": (
            f"{f['latency_energy_p50_ms']} / {f['latency_energy_max_ms']}"
        ),
        "poll start lateness p99 / max (ms)": (
            f"{f['start_late_p99_ms']} / {f['start_late_max_ms']}"
        ),
        "energy polls due / seen": f"{f['energy_polls_due']} / {f['energy_polls_seen']}",
        "latency p50 / p99 / max (ms)": (
            f"{f['latency_p50_ms']} / {f['latency_p99_ms']} / {f['latency_max_ms']}"
        ),
    }
    lines = []
    for label, key in rows:
        if key is None:
            lines.append(f"{label:<36} {special[label]}")
        elif key in f:
            lines.append(f"{label:<36} {f[key]}")
    return "\n".join(lines)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table and the JSON line."""
    args = parse_args(argv)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # ~2 sockets per meter
    # Also SIGINT: a shell starting us in the background leaves it ignored otherwise.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _raise_interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="countis-fleet-"))
    fleet = Fleet(args, workdir)
    keep = args.keep_logs
    try:
        figures = asyncio.run(measure(fleet))
    except KeyboardInterrupt:
        print("fleet: interrupted", file=sys.stderr)
        return 130
    except (RuntimeError, TimeoutError, OSError) as err:
        keep = True
        print(f"fleet: error: {err}\nlogs kept in {workdir}", file=sys.stderr)
        return 1
    finally:
        fleet.children.stop_all()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(table(figures))
    if args.keep_logs:
        print(f"logs: {workdir}")
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
