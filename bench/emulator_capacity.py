"""How many Modbus requests per second the emulator process sustains, and its CPU cost.

Starts ``countis-bridge emulate --meters N`` as its own process, learns the meters' ports
from its control API, then drives them from this process with a minimal hand-written
asyncio Modbus TCP FC3 client (one connection per meter), for a bounded time:

* ``--mode schedule`` (default): the fleet schedule of issue 6 — per meter one realtime
  read (0xC550, 62 words) per second plus ``--energy-rate`` energy reads per second
  (cycling through the energy blocks) — and reports whether the emulator keeps up
  (requests due vs done, latency) and what it costs. ``--pattern spread`` spaces the
  energy reads evenly (every request finds a new model tick: the emulator's worst case);
  ``--pattern burst`` reads them back to back every 10 s, as the bridge's energy poll does;
* ``--mode saturate``: every connection asks again as soon as it has an answer: the
  emulator's maximum rate.

The emulator's CPU is read from /proc/<pid>/stat over the measured window (after a
warm-up). The last line of output is one JSON object.

    python bench/emulator_capacity.py --meters 1000 --duration 20
    python bench/emulator_capacity.py --meters 50 --mode saturate
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import struct
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field

from countis_bridge.ports import free_port

HOST = "127.0.0.1"
REALTIME = (0xC550, 62)
ENERGY = ((0x6580, 66), (0xC800, 50), (0x8000, 48), (0x8100, 6), (0x9000, 11), (0xC700, 65))
_MBAP = struct.Struct(">HHHBBHH")
_CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK


@dataclass
class Stats:
    due: int = 0
    done: int = 0
    late: int = 0  # started after its slot had passed
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    measuring: bool = False


class RawClient:
    """One Modbus TCP connection: FC3 only, one request in flight."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.tid = reader, writer, 0

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer)

    async def read(self, address: int, count: int, unit: int = 5) -> bytes:
        self.tid = (self.tid + 1) & 0xFFFF
        self.writer.write(_MBAP.pack(self.tid, 0, 6, unit, 3, address, count))
        head = await self.reader.readexactly(7)
        body = await self.reader.readexactly(int.from_bytes(head[4:6], "big") - 1)
        if body[0] != 3 or int.from_bytes(head[0:2], "big") != self.tid:
            raise RuntimeError(f"bad answer {body[:2].hex()}")
        return body

    def close(self) -> None:
        self.writer.close()


async def timed_read(client: RawClient, block: tuple[int, int], slot: float, stats: Stats) -> bool:
    """One read due at ``slot``, counted while measuring; False if the connection failed."""
    measuring = stats.measuring
    t0 = time.monotonic()
    if measuring:
        stats.due += 1
        stats.late += t0 - slot > 0.5
    try:
        await client.read(*block)
    except (OSError, asyncio.IncompleteReadError, RuntimeError):
        stats.errors += 1
        return False
    if measuring:
        stats.done += 1
        stats.latencies.append(time.monotonic() - t0)
    return True


async def scheduled(client: RawClient, stats: Stats, stop: float, energy_rate: float) -> None:
    """1 realtime read per second + ``energy_rate`` energy reads per second, on schedule."""
    slots = [(0.0, REALTIME)]
    n_energy = round(energy_rate)
    slots += [((k + 1) / (n_energy + 1), None) for k in range(n_energy)]
    start = time.monotonic() + random.random()  # spread the fleet over the second
    cycle, energy_index = 0, random.randrange(len(ENERGY))
    while True:
        for offset, fixed in slots:
            slot = start + cycle + offset
            if slot >= stop:
                return
            delay = slot - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            block = fixed or ENERGY[energy_index % len(ENERGY)]
            energy_index += fixed is None
            if not await timed_read(client, block, slot, stats):
                return
        cycle += 1


async def bursts(client: RawClient, stats: Stats, stop: float, energy_rate: float) -> None:
    """1 realtime read per second; every 10 s an energy poll of 10 x ``energy_rate`` reads."""
    start = time.monotonic() + random.random()
    per_poll, offset = round(10 * energy_rate), random.randrange(10)
    cycle, energy_index = 0, random.randrange(len(ENERGY))
    while True:
        slot = start + cycle
        if slot >= stop:
            return
        delay = slot - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        blocks = [REALTIME]
        if cycle % 10 == offset:
            blocks += [ENERGY[(energy_index + k) % len(ENERGY)] for k in range(per_poll)]
            energy_index += per_poll
        for block in blocks:
            if not await timed_read(client, block, slot, stats):
                return
        cycle += 1


async def saturating(client: RawClient, stats: Stats, stop: float) -> None:
    """Ask again as soon as the answer is there."""
    index = 0
    while time.monotonic() < stop:
        block = REALTIME if index % 3 == 0 else ENERGY[index % len(ENERGY)]
        index += 1
        t0 = time.monotonic()
        try:
            await client.read(*block)
        except (OSError, asyncio.IncompleteReadError, RuntimeError):
            stats.errors += 1
            return
        if stats.measuring:
            stats.done += 1
            stats.latencies.append(time.monotonic() - t0)


def start_emulator(meters: int, control: int, extra: list[str]) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "countis_bridge", "--log-level", "WARNING", "emulate"]
    cmd += ["--meters", str(meters), "--port", "0", "--control-port", str(control)]
    return subprocess.Popen([*cmd, *extra])


def meter_ports(control: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{control}/meters", timeout=60) as resp:
                return [m["port"] for m in json.load(resp)]
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


async def run(args: argparse.Namespace, pid: int, ports: list[int]) -> dict[str, object]:
    clients = [await RawClient.connect(port) for port in ports]
    stats = Stats()
    loop_start = time.monotonic()
    stop = loop_start + args.warmup + args.duration
    if args.mode == "schedule":
        pattern = scheduled if args.pattern == "spread" else bursts
        tasks = [pattern(c, stats, stop, args.energy_rate) for c in clients]
    else:
        tasks = [saturating(c, stats, stop) for c in clients]
    runner = asyncio.gather(*tasks)
    await asyncio.sleep(args.warmup)
    stats.measuring = True
    cpu0, wall0, own0 = cpu_seconds(pid), time.monotonic(), time.process_time()
    await asyncio.sleep(args.duration)
    stats.measuring = False
    cpu1, wall1, own1 = cpu_seconds(pid), time.monotonic(), time.process_time()
    await runner
    for client in clients:
        client.close()
    wall, cpu = wall1 - wall0, cpu1 - cpu0
    lat = sorted(stats.latencies) or [0.0]
    return {
        "mode": args.mode,
        "pattern": args.pattern if args.mode == "schedule" else None,
        "meters": len(ports),
        "duration_s": round(wall, 2),
        "requests_due": stats.due,
        "requests_done": stats.done,
        "requests_late": stats.late,
        "errors": stats.errors,
        "requests_per_s": round(stats.done / wall, 1),
        "emulator_cpu_pct": round(100 * cpu / wall, 1),
        "emulator_cpu_us_per_request": round(1e6 * cpu / max(1, stats.done), 1),
        "client_cpu_pct": round(100 * (own1 - own0) / wall, 1),
        "latency_p50_ms": round(1000 * statistics.median(lat), 2),
        "latency_p99_ms": round(1000 * lat[int(0.99 * (len(lat) - 1))], 2),
        "latency_max_ms": round(1000 * lat[-1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meters", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--mode", choices=("schedule", "saturate"), default="schedule")
    parser.add_argument("--energy-rate", type=float, default=2.0, help="energy reads/s/meter")
    parser.add_argument("--pattern", choices=("spread", "burst"), default="spread")
    parser.add_argument("--profile", default="daily")
    args = parser.parse_args()
    control = free_port()
    emulator = start_emulator(args.meters, control, ["--profile", args.profile])
    try:
        ports = meter_ports(control, timeout=120)
        result = asyncio.run(run(args, emulator.pid, ports))
    finally:
        emulator.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            emulator.wait(timeout=30)
    print(
        f"{result['meters']} meters, {result['mode']} {result['pattern'] or ''}: "
        f"{result['requests_per_s']} requests/s, "
        f"emulator CPU {result['emulator_cpu_pct']} % of a core, "
        f"{result['emulator_cpu_us_per_request']} us per request, latency p50 "
        f"{result['latency_p50_ms']} ms p99 {result['latency_p99_ms']} ms, "
        f"due {result['requests_due']} done {result['requests_done']} late "
        f"{result['requests_late']} errors {result['errors']}"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
