"""``countis-bridge emulate``: run emulated meters until SIGINT/SIGTERM (state saved)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
from dataclasses import dataclass
from pathlib import Path

from countis.config import MAX_UNIT
from countis.errors import ConfigError

from countis_bridge.emulator.control import ControlServer
from countis_bridge.emulator.identity import DEFAULT_SERIAL, Serial
from countis_bridge.emulator.meter import DEFAULT_OVERFLOW_KWH, EmulatedMeter
from countis_bridge.emulator.server import PYMODBUS_VERSION, EmulatorServer

_LOG = logging.getLogger("countis_bridge.emulator")


@dataclass(frozen=True, slots=True, kw_only=True)
class EmulateOptions:
    """The checked options of one ``emulate`` run."""

    host: str
    port: int
    meters: tuple[EmulatedMeter, ...]
    control_port: int | None
    gateway: bool = False  # every meter behind one port, by unit id


def state_file_for(path: str | None, serial: Serial, count: int) -> Path | None:
    """The state file of one meter: ``path`` itself, or ``<stem>-<serial><suffix>`` in a fleet."""
    if path is None:
        return None
    base = Path(path)
    return base if count == 1 else base.with_name(f"{base.stem}-{serial}{base.suffix}")


def build_options(args: argparse.Namespace) -> EmulateOptions:
    """Check the arguments and build the meters (ConfigError on bad values)."""
    count = int(args.meters)
    if count < 1:
        msg = f"--meters must be at least 1, not {count}"
        raise ConfigError(msg)
    port = int(args.port)
    if not (port == 0 or 1 <= port <= 65536 - count):
        msg = f"--port {port}: the {count} meter(s) need ports {port}..{port + count - 1}"
        raise ConfigError(msg)
    control_port = getattr(args, "control_port", None)
    if control_port is not None and not 0 <= control_port <= 65535:
        msg = f"--control-port must be 0..65535, not {control_port}"
        raise ConfigError(msg)
    gateway = bool(getattr(args, "gateway", False))
    if gateway and not 1 <= args.unit <= MAX_UNIT + 1 - count:
        msg = f"--gateway: the {count} meter(s) need unit ids {args.unit}..{args.unit + count - 1}"
        raise ConfigError(msg)
    first = Serial.parse(args.serial or DEFAULT_SERIAL)
    overflow = getattr(args, "overflow_kwh", None) or DEFAULT_OVERFLOW_KWH
    meters = []
    for index in range(count):
        serial = first.plus(index)
        meters.append(
            EmulatedMeter(
                model=args.model,
                serial=str(serial),
                unit_id=args.unit + index if gateway else args.unit,
                profile=args.profile,
                speed=args.speed,
                state_file=state_file_for(args.state_file, serial, count),
                seed=None if args.seed is None else args.seed + index,
                overflow_kwh=overflow,
            )
        )
    return EmulateOptions(
        host=args.host,
        port=port,
        meters=tuple(meters),
        control_port=control_port,
        gateway=gateway,
    )


def _raise_file_limit(needed: int) -> None:
    """A fleet needs two descriptors per meter (listener + connection) and some spare."""
    try:
        import resource  # noqa: PLC0415 - Unix only
    except ImportError:  # pragma: no cover - Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def serve(options: EmulateOptions, stop: asyncio.Event) -> None:
    """Serve the meters (and the control API) until ``stop`` is set; state saved on exit."""
    async with contextlib.AsyncExitStack() as stack:
        control = None
        if options.control_port is not None:  # first: its port is not free for long
            control = await stack.enter_async_context(
                ControlServer(options.meters, None, port=options.control_port)
            )
        server = await stack.enter_async_context(
            EmulatorServer(
                list(options.meters),
                host=options.host,
                port=options.port,
                gateway=options.gateway,
            )
        )
        if control is not None:
            control.serving(server.ports)
        # Everything built so far lives until the end: keep it out of the collector's
        # full passes (a fleet holds a few hundred thousand objects).
        gc.collect()
        gc.freeze()
        _LOG.info(
            "%d meter(s) ready (pymodbus %s); Ctrl-C or SIGTERM stops and saves the state",
            len(options.meters),
            PYMODBUS_VERSION,
        )
        await stop.wait()
    _LOG.info("stopped; state saved")


async def _main(options: EmulateOptions) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await serve(options, stop)
    return 0


def main(args: argparse.Namespace) -> int:
    """Run ``emulate``; returns the exit code (0 after SIGINT/SIGTERM)."""
    options = build_options(args)
    _raise_file_limit(2 * len(options.meters) + 256)
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # pymodbus logs "Server listening." per meter at INFO; one line of ours is enough.
        logging.getLogger("pymodbus").setLevel(logging.WARNING)
    return asyncio.run(_main(options))
