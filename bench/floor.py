"""The Python floor: the bridge's Modbus reads and MQTT publishes, hand-written, no library.

    python bench/floor.py --meters N --port FIRST_PORT --mqtt-port PORT --duration S
                          [--warmup S] [--realtime 1] [--energy 10] [--qos 1]
                          [--sample STATE.json]

Against a running emulator (meter i on FIRST_PORT + i, unit 5) and broker, one asyncio
loop polls every meter on the bridge's schedule with the bridge's read plan (same
addresses and counts: ``countis.plan`` over every value key of the group), framing MBAP by
hand over one long-lived stream per meter, unpacks the words with ``struct``, serialises
a state of the same keys (``--sample``: a state JSON the bridge published) and publishes
it retained with the bridge's QoS over one raw MQTT connection. Nothing else: no value
computation, no guard, no error handling. Its CPU per meter-poll is the lower bound a
Python bridge is compared against (``floor_ratio`` in fleet.py).

Prints a table and, as the last line, JSON with ``floor_cpu_ms_per_meter_poll``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from countis.catalogue import VALUE_KEYS
from fleetstats import percentile, tick_plan
from rawmqtt import PUBACK, PacketBuffer, open_mqtt, publish_header

try:  # the bridge serialises with orjson when its "fast" extra is installed: same here
    import orjson

    dumps: Callable[[object], bytes] = orjson.dumps
except ImportError:  # pragma: no cover

    def dumps(obj: object) -> bytes:
        """Compact JSON bytes."""
        return json.dumps(obj, separators=(",", ":")).encode()


MBAP = struct.Struct(">HHHBBHH")  # tid, protocol 0, length 6, unit, fc 3, address, count
HEAD = struct.Struct(">HHHBBB")  # tid, protocol, length, unit, fc, byte count


@dataclass(slots=True)
class Counters:
    """What the loop did inside the measured window."""

    polls: int = 0
    energy_polls: int = 0
    requests: int = 0
    publishes: int = 0
    missed: int = 0
    acked: int = 0
    tick_ms: dict[bool, list[float]] = field(default_factory=lambda: {False: [], True: []})


class Publisher:
    """One raw MQTT connection: PUBLISH without waiting, PUBACKs drained by a task."""

    def __init__(self, writer: asyncio.StreamWriter, qos: int) -> None:
        self.writer = writer
        self.qos = qos
        self.ids = itertools.cycle(range(1, 65536))
        self.sent = 0
        self.acked = 0

    def publish(self, topic: bytes, payload: bytes) -> None:
        """Queue one retained PUBLISH on the socket."""
        packet_id = next(self.ids) if self.qos else 0
        self.writer.write(publish_header(topic, len(payload), self.qos, True, packet_id) + payload)
        self.sent += 1

    async def drain_acks(self, reader: asyncio.StreamReader) -> None:
        """Count PUBACKs until the connection ends."""
        packets = PacketBuffer()
        while data := await reader.read(1 << 16):
            self.acked += sum(1 for first, _ in packets.feed(data) if first & 0xF0 == PUBACK)


class Meter:
    """One long-lived Modbus TCP stream and its hand-framed FC3 exchange."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, unit: int):
        self.reader = reader
        self.writer = writer
        self.unit = unit
        self.tid = 0

    async def read(self, address: int, count: int) -> tuple[int, ...]:
        """FC3 read of ``count`` holding registers at ``address``."""
        self.tid = (self.tid + 1) & 0xFFFF
        self.writer.write(MBAP.pack(self.tid, 0, 6, self.unit, 3, address, count))
        tid, _, _, _, fc, nbytes = HEAD.unpack(await self.reader.readexactly(9))
        if fc != 3 or tid != self.tid or nbytes != 2 * count:
            msg = f"bad answer fc={fc} tid={tid} bytes={nbytes}"
            raise ConnectionError(msg)
        return struct.unpack(f">{count}H", await self.reader.readexactly(nbytes))


def template(sample: Path | None) -> dict[str, object]:
    """The state object to publish: the bridge's own sample, else every value key."""
    if sample is not None and sample.stat().st_size:
        return dict(json.loads(sample.read_bytes()))
    state: dict[str, object] = dict.fromkeys(VALUE_KEYS, 0.0)
    state["timestamp"] = 0.0
    return state


async def poll_meter(
    args: argparse.Namespace,
    index: int,
    meter: Meter,
    pub: Publisher,
    state: dict[str, object],
    window: tuple[float, float],
    counts: Counters,
) -> None:
    """Poll one meter on the schedule until the window closes."""
    realtime = [(r.address, r.count) for r in tick_plan(energy=False)]
    energy = [(r.address, r.count) for r in tick_plan(energy=True)]
    every = max(1, round(args.energy / args.realtime))
    topic = f"floor/m{index}/state".encode()
    loop = asyncio.get_running_loop()
    start = loop.time() + args.realtime * index / args.meters  # spread over the interval
    deadline = loop.time() + (window[1] - time.time())
    for tick in itertools.count():
        due = start + tick * args.realtime
        if due >= deadline:
            return
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -args.realtime / 2:  # more than half an interval late: missed
            counts.missed += window[0] <= time.time() < window[1]
            continue
        stamp = time.time()
        # Energy polls are staggered too, so any window holds its share of them.
        plan = energy if (tick + index) % every == 0 else realtime
        words: list[tuple[int, ...]] = [await meter.read(a, c) for a, c in plan]
        state["timestamp"] = stamp
        pub.publish(topic, dumps(state))
        if window[0] <= stamp < window[1]:
            counts.tick_ms[plan is energy].append(1000 * (time.time() - stamp))
            counts.polls += 1
            counts.energy_polls += plan is energy
            counts.requests += len(words)
            counts.publishes += 1


async def run(args: argparse.Namespace) -> dict[str, object]:
    """Connect everything, run warm-up + window, return the figures."""
    mqtt_reader, mqtt_writer = await open_mqtt(args.mqtt_host, args.mqtt_port, "bench-floor")
    pub = Publisher(mqtt_writer, args.qos)
    acks = asyncio.create_task(pub.drain_acks(mqtt_reader))
    meters: list[Meter] = []
    for i in range(args.meters):
        reader, writer = await asyncio.open_connection(args.host, args.port + i)
        meters.append(Meter(reader, writer, args.unit))
    states = [template(args.sample) for _ in meters]
    t0 = time.time() + args.warmup
    window = (t0, t0 + args.duration)
    counts = Counters()
    tasks = [
        asyncio.create_task(poll_meter(args, i, m, pub, states[i], window, counts))
        for i, m in enumerate(meters)
    ]
    await asyncio.sleep(max(0.0, t0 - time.time()))
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.sleep(max(0.0, window[1] - time.time()))
    cpu1, wall1 = time.process_time(), time.monotonic()
    await asyncio.gather(*tasks)
    for _ in range(50):  # let the last acknowledgements arrive
        if pub.acked >= pub.sent or not args.qos:
            break
        await asyncio.sleep(0.1)
    acks.cancel()
    for m in meters:
        m.writer.close()
    mqtt_writer.close()
    cpu_ms = 1000 * (cpu1 - cpu0)
    polls = counts.polls
    return {
        "meters": args.meters,
        "duration_s": round(wall1 - wall0, 3),
        "polls_done": polls,
        "energy_polls_done": counts.energy_polls,
        "polls_missed": counts.missed,
        "requests_per_poll": round(counts.requests / polls, 3) if polls else None,
        "payload_bytes": len(dumps(states[0])),
        "qos": args.qos,
        "floor_cpu_ms_per_meter_poll": round(cpu_ms / polls, 4) if polls else math.nan,
        "floor_cpu_pct": round(100 * (cpu1 - cpu0) / (wall1 - wall0), 2),
        "unacked": pub.sent - pub.acked if args.qos else 0,
    } | tick_figures(counts.tick_ms)


def tick_figures(tick_ms: dict[bool, list[float]]) -> dict[str, object]:
    """Poll start -> publish written, per kind of tick (p50 / p99 / max, ms)."""
    out: dict[str, object] = {}
    for energy, name in ((False, "realtime"), (True, "energy")):
        values = sorted(tick_ms[energy])
        for q in (50, 99):
            out[f"{name}_tick_p{q}_ms"] = round(percentile(values, q), 3) if values else None
        out[f"{name}_tick_max_ms"] = round(values[-1], 3) if values else None
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line of the floor benchmark."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--meters", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="port of meter 0 (meter i: +i)")
    p.add_argument("--unit", type=int, default=5)
    p.add_argument("--mqtt-host", default="127.0.0.1")
    p.add_argument("--mqtt-port", type=int, required=True)
    p.add_argument("--qos", type=int, choices=(0, 1), default=1)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--realtime", type=float, default=1.0)
    p.add_argument("--energy", type=float, default=10.0)
    p.add_argument("--sample", type=Path, default=None, help="a state JSON of the bridge")
    args = p.parse_args(argv)
    if not 1 <= args.meters <= 5000 or not 0 < args.duration <= 600:
        p.error("--meters must be 1..5000 and --duration in (0, 600]")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run and print the figures (JSON last)."""
    args = parse_args(argv)
    figures = asyncio.run(run(args))
    for key, value in figures.items():
        print(f"{key:<30} {value}")
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
