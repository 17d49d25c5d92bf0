"""The fleet benchmark still runs end to end: 20 emulated meters, a real broker, the bridge.

Not a speed test: it asserts that the benchmark produces sane figures and that no poll
deadline was missed at this small size.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
METERS = 20
NUMBERS = (
    "duration_s",
    "polls_due",
    "polls_done",
    "polls_missed",
    "requests_per_poll",
    "bridge_cpu_ms_per_meter_poll",
    "bridge_cpu_pct",
    "bridge_rss_mb",
    "bridge_rss_mb_per_meter",
    "state_msgs_per_s",
    "latency_p50_ms",
    "latency_p99_ms",
    "latency_max_ms",
    "emulator_cpu_pct",
    "broker_cpu_pct",
    "floor_cpu_ms_per_meter_poll",
    "floor_ratio",
)


def test_fleet_benchmark_produces_figures_without_missed_polls():
    argv = [sys.executable, str(ROOT / "bench" / "fleet.py"), "--meters", str(METERS)]
    argv += ["--duration", "4", "--warmup", "1", "--floor"]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=90, cwd=ROOT, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.strip().splitlines()
    assert any(line.startswith("bridge CPU ms per meter-poll") for line in lines)  # the table
    figures = json.loads(lines[-1])

    for key in NUMBERS:
        value = figures[key]
        assert isinstance(value, int | float), key
        assert math.isfinite(value), key
        assert value >= 0, key
    assert figures["meters"] == METERS
    assert figures["polls_due"] == METERS * 4
    assert figures["polls_missed"] == 0
    # Every meter polled about once a second (a poll may fall either side of each edge).
    assert abs(figures["polls_done"] - figures["polls_due"]) <= METERS
    assert figures["requests_per_poll"] >= 2
    assert figures["bridge_cpu_ms_per_meter_poll"] > 0
    assert 0 < figures["bridge_rss_mb"] < 1000
    assert figures["state_msgs_per_s"] > METERS / 2
    assert figures["latency_p50_ms"] <= figures["latency_p99_ms"] <= figures["latency_max_ms"]
    assert figures["floor_ratio"] > 0
    assert figures["bridge_exit_code"] == 0
