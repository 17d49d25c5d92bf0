"""``countis-bridge demo``: emulated meters, an embedded broker and the bridge in one go.

Works on a machine with no broker and no meter: the meters are the project's emulator
(in this process, free ports, accelerated time, one PV meter so export shows), the broker
is Mosquitto when installed (a child process with a generated configuration) or amqtt in
this process otherwise, and the bridge is the real service. A compact live view refreshes
every second; SIGINT/SIGTERM (Ctrl-C) stop everything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TextIO

from countis.clock import ScaledClock
from countis.config import MeterConfig
from countis.errors import CountisError, MissingDependencyError

from countis_bridge.discovery import DiscoveryOptions
from countis_bridge.emulator import EmulatedMeter, EmulatorServer
from countis_bridge.mqtt import BrokerOptions
from countis_bridge.poller import MeterPoller
from countis_bridge.ports import free_port
from countis_bridge.service import Bridge, BridgeConfig

HOST = "127.0.0.1"
BASE_TOPIC = "countis"
FIRST_SERIAL = 42  # demo serials 21170A0100042, 21170A0100043, ...
AMQTT_STOP_S = 3.0  # the embedded amqtt broker's shutdown, bounded
_LOG = logging.getLogger("countis_bridge.demo")


async def _wait_port(port: int, proc: subprocess.Popen[bytes], within: float = 10.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline and proc.poll() is None:
        try:
            _, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
    return False


def mosquitto_path() -> str | None:
    """Mosquitto's executable (Debian installs it in /usr/sbin, often not on PATH)."""
    found = shutil.which("mosquitto")
    if found is None and Path("/usr/sbin/mosquitto").is_file():
        found = "/usr/sbin/mosquitto"
    return found


@contextlib.asynccontextmanager
async def mosquitto(binary: str, port: int, workdir: Path) -> AsyncIterator[str]:
    """A private Mosquitto on ``127.0.0.1:port`` (no persistence, TCP_NODELAY on)."""
    config = workdir / "mosquitto.conf"
    log = workdir / "mosquitto.log"
    config.write_text(
        f"listener {port} {HOST}\nallow_anonymous true\npersistence false\n"
        "set_tcp_nodelay true\nlog_dest stderr\nlog_type error\nlog_type warning\n"
    )
    with log.open("wb") as out:
        # Popen returns at once (the wait is async); the binary is Mosquitto's, found above.
        proc = subprocess.Popen(  # noqa: ASYNC220, S603
            [binary, "-c", str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        if not await _wait_port(port, proc):
            text = log.read_text(errors="replace").strip().splitlines()
            msg = f"mosquitto did not start on port {port}: {text[-1] if text else 'no output'}"
            raise CountisError(msg)
        yield f"mosquitto ({binary})"
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                await asyncio.to_thread(proc.wait, 5)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)


@contextlib.asynccontextmanager
async def amqtt_broker(port: int) -> AsyncIterator[str]:
    """The pure-Python amqtt broker in this process (when Mosquitto is not installed)."""
    try:
        from amqtt.broker import Broker  # noqa: PLC0415 - optional (the "demo" extra)
    except ImportError as err:
        msg = (
            "the demo needs an MQTT broker: amqtt is not installed"
            " (pip install 'countis-bridge[demo]', or install Mosquitto)"
        )
        raise MissingDependencyError(msg) from err
    for name in ("amqtt", "transitions"):  # chatty at INFO: one line per client event
        logging.getLogger(name).setLevel(logging.WARNING)
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"{HOST}:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    await broker.start()
    try:
        yield "amqtt (in process)"
    finally:
        # amqtt's shutdown sometimes waits for ever on a client it lost track of (it logs
        # "PUBACK for unknown pending message" first): the demo stops anyway, and what is
        # left of the broker (its tasks, cancelled as the process ends) is not reported.
        try:
            async with asyncio.timeout(AMQTT_STOP_S):
                await broker.shutdown()
        except TimeoutError:
            _LOG.warning("the amqtt broker did not stop within %g s; leaving it", AMQTT_STOP_S)
            logging.getLogger("amqtt").setLevel(logging.CRITICAL + 1)


@contextlib.asynccontextmanager
async def embedded_broker(kind: str, port: int, workdir: Path) -> AsyncIterator[str]:
    """Mosquitto if installed (or asked for), else amqtt; yields a description."""
    binary = mosquitto_path() if kind in ("auto", "mosquitto") else None
    if kind == "mosquitto" and binary is None:
        msg = "mosquitto is not installed (apt-get install mosquitto)"
        raise CountisError(msg)
    if binary is not None:
        async with mosquitto(binary, port, workdir) as description:
            yield description
    else:
        async with amqtt_broker(port) as description:
            yield description


def demo_meters(count: int, speed: float) -> list[EmulatedMeter]:
    """``count`` emulated E28 meters; the first has a PV plant (midday export)."""
    if count < 1:
        msg = "--meters must be at least 1"
        raise CountisError(msg)
    return [
        EmulatedMeter(
            model="E28",
            serial=f"21170A01{FIRST_SERIAL + i:05d}",
            profile="pv" if i == 0 else "daily",
            speed=speed,
        )
        for i in range(count)
    ]


# -- the live view ----------------------------------------------------------------------

_COLUMNS = (  # value key (or meter/status), header, width
    ("meter", "meter", 10),
    ("status", "status", 8),
    ("power", "power W", 9),
    ("voltage", "volt V", 8),
    ("current", "curr A", 8),
    ("energy_import", "import kWh", 11),
    ("energy_export", "export kWh", 11),
    ("tariff", "tariff", 6),
)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return "-" if value is None else str(value)


def render(pollers: list[MeterPoller]) -> list[str]:
    """The live table: a header and one line per meter."""
    widths = [max(width, len(header)) for _, header, width in _COLUMNS]
    lines = ["  ".join(f"{h:>{w}}" for (_, h, _), w in zip(_COLUMNS, widths, strict=True))]
    for poller in pollers:
        status = {True: "online", False: "OFFLINE", None: "..."}[poller.online]
        values = poller.session.values
        cells = [poller.slug or "?", status] + [_cell(values.get(k)) for k, _, _ in _COLUMNS[2:-1]]
        cells.append(f"T{values['tariff']}" if "tariff" in values else "-")
        lines.append("  ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)))
    return lines


async def live_view(header: list[str], pollers: list[MeterPoller], out: TextIO) -> None:
    """Refresh the table every second (in place on a terminal, appended otherwise)."""
    tty = out.isatty()
    while True:
        lines = render(pollers)
        if tty:
            out.write("\x1b[H\x1b[2J" + "\n".join([*header, "", *lines]) + "\n")
        else:  # a log, not a screen: each table whole, with its column header
            out.write("\n".join(["", *lines]) + "\n")
        out.flush()
        await asyncio.sleep(1.0 if tty else 2.0)


async def demo(args: argparse.Namespace, out: TextIO = sys.stdout) -> None:
    """Run the demo until cancelled."""
    port = args.mqtt_port or free_port()
    meters = demo_meters(args.meters, args.speed)
    if out.isatty() and getattr(args, "log_level", None) is None:
        logging.getLogger().setLevel(logging.WARNING)  # log lines would tear the live view
    with tempfile.TemporaryDirectory(prefix="countis-demo-") as tmp:
        workdir = Path(tmp)
        async with (
            embedded_broker(args.broker, port, workdir) as broker,
            EmulatorServer(meters, host=HOST, port=0) as server,
        ):
            config = BridgeConfig(
                broker=BrokerOptions(host=HOST, port=port),
                meters=[
                    MeterConfig(
                        name=f"Demo {i + 1}",
                        host=HOST,
                        port=meter_port,
                        realtime_interval=1.0,
                        energy_interval=2.0,
                    )
                    for i, meter_port in enumerate(server.ports)
                ],
                data_dir=workdir / "data",
                discovery=DiscoveryOptions(base_topic=BASE_TOPIC),
                broker_backoff_cap=2.0,
                # The meters live at the emulator's speed: judge their counters by it.
                clock=ScaledClock(args.speed),
            )
            bridge = Bridge(config)
            header = [
                f"countis-bridge demo: {len(meters)} emulated meter(s) at {args.speed:g}x speed,"
                f" broker {broker} on {HOST}:{port}",
                f"  watch:  mosquitto_sub -h {HOST} -p {port} -t '{BASE_TOPIC}/#' -v",
                f"  tariff: mosquitto_pub -h {HOST} -p {port} -t '{BASE_TOPIC}/demo_1/set/tariff'"
                " -m T2",
                "  meters: " + ", ".join(f"countis-bridge read {HOST}:{p}" for p in server.ports),
                "  Ctrl-C stops everything.",
            ]
            if not out.isatty():
                out.write("\n".join(header) + "\n")
                out.flush()
            async with asyncio.TaskGroup() as group:
                group.create_task(bridge.run(), name="bridge")
                group.create_task(live_view(header, bridge.pollers, out), name="live view")
