"""Entry points of ``countis-bridge run | discovery | demo`` (composition only).

Settings are parsed here, at the edge, and mapped onto the plain configuration objects of
the service; the event loop (uvloop when installed) runs until SIGINT/SIGTERM, which stop
everything cleanly with exit code 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TextIO

from countis.client import MeterClient
from countis.config import MeterConfig
from countis.errors import CountisError
from countis.models import MeterIdentity

from countis_bridge.discovery import DiscoveryMeter, DiscoveryOptions, discovery_messages
from countis_bridge.mqtt import BrokerOptions, TlsOptions
from countis_bridge.service import Bridge, BridgeConfig, prepare_data_dir
from countis_bridge.settings import (
    Settings,
    load_settings,
    settings_overrides_from_args,
)
from countis_bridge.topics import meter_slug

_LOG = logging.getLogger("countis_bridge")


def broker_options(settings: Settings) -> BrokerOptions:
    """The MQTT connection options of the settings."""
    mqtt = settings.mqtt
    tls = None
    if mqtt.tls.enabled:
        tls = TlsOptions(
            ca_file=str(mqtt.tls.ca_file) if mqtt.tls.ca_file else None,
            cert_file=str(mqtt.tls.cert_file) if mqtt.tls.cert_file else None,
            key_file=str(mqtt.tls.key_file) if mqtt.tls.key_file else None,
            insecure=mqtt.tls.insecure,
        )
    return BrokerOptions(
        host=mqtt.host,
        port=mqtt.port,
        username=mqtt.username,
        password=mqtt.password.get_secret_value() if mqtt.password is not None else None,
        client_id=mqtt.client_id,
        keepalive=mqtt.keepalive,
        qos=mqtt.qos,
        tls=tls,
    )


def discovery_options(settings: Settings) -> DiscoveryOptions:
    """The topic layout and discovery flavour of the settings."""
    mqtt = settings.mqtt
    return DiscoveryOptions(
        base_topic=mqtt.base_topic,
        discovery_prefix=mqtt.discovery_prefix,
        qos=mqtt.qos,
        mode=mqtt.discovery_mode,
    )


def bridge_config(settings: Settings) -> BridgeConfig:
    """The whole bridge's configuration."""
    return BridgeConfig(
        broker=broker_options(settings),
        meters=settings.meters,
        data_dir=settings.data_dir,
        discovery=discovery_options(settings),
        per_value_topics=settings.mqtt.per_value_topics,
    )


def _settings(args: argparse.Namespace) -> Settings:
    path = Path(args.config) if getattr(args, "config", None) else None
    settings = load_settings(path, settings_overrides_from_args(args))
    quiet_libraries(settings.log_level)
    return settings


def quiet_libraries(level: str) -> None:
    """Apply the log level; pymodbus only at DEBUG (it logs every failed connect).

    The bridge itself logs one line per state change of a meter; pymodbus's per-attempt
    warnings would repeat it at the retry cadence.
    """
    logging.getLogger().setLevel(level)
    logging.getLogger("pymodbus").setLevel(logging.DEBUG if level == "DEBUG" else logging.ERROR)


def run_until_stopped(
    main: Callable[[], Coroutine[Any, Any, object]], *, duration: float | None = None
) -> int:
    """Run ``main()`` until it returns, SIGINT/SIGTERM arrive or ``duration`` passes; 0."""

    async def supervise() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        task = asyncio.create_task(main(), name="main")
        waiter = asyncio.create_task(stop.wait(), name="signals")
        try:
            await asyncio.wait({task, waiter}, timeout=duration, return_when="FIRST_COMPLETED")
        finally:
            waiter.cancel()
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(supervise())
    return 0


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The uvloop event loop when the ``fast`` extra is installed (faster I/O and timers)."""
    try:
        import uvloop  # noqa: PLC0415 - optional
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run_settings(args: argparse.Namespace) -> Settings:
    """The settings of ``run``, checked completely (data_dir included) before any I/O.

    ConfigError names the first problem; nothing has been logged or connected yet.
    """
    settings = _settings(args)
    prepare_data_dir(settings.data_dir)
    return settings


def run_main(args: argparse.Namespace) -> int:
    """``countis-bridge run``: the MQTT bridge until SIGINT/SIGTERM."""
    settings = run_settings(args)
    if not settings.meters:
        _LOG.warning("no meters configured: only the bridge's availability is published")
    bridge = Bridge(bridge_config(settings))
    mqtt = settings.mqtt
    _LOG.info(
        "countis-bridge: %d meter(s), broker %s:%d, base topic %r",
        len(settings.meters),
        mqtt.host,
        mqtt.port,
        mqtt.base_topic,
    )
    return run_until_stopped(bridge.run)


async def _identify(meter: MeterConfig) -> MeterIdentity:
    async with MeterClient.for_meter(meter) as client:
        return await client.identify()


def print_discovery(
    settings: Settings,
    identities: list[MeterIdentity | BaseException],
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Print ``topic payload`` per discovery message; errors per meter; the exit code."""
    options = discovery_options(settings)
    code = 0
    for meter, identity in zip(settings.meters, identities, strict=True):
        label = meter.name or f"{meter.host}:{meter.port} unit {meter.unit}"
        if isinstance(identity, BaseException):
            print(f"# {label}: cannot identify: {identity}", file=err)
            code = 1
            continue
        dmeter = DiscoveryMeter.from_identity(
            identity,
            slug=meter_slug(meter.name, identity.serial_number),
            name=meter.name,
            host=meter.host,
            read_only=meter.read_only,
            tariff_plan=meter.tariff_plan is not None,
        )
        for topic, payload in discovery_messages(dmeter, options):
            print(f"{topic} {payload}", file=out)
    return code


def discovery_main(args: argparse.Namespace) -> int:
    """``countis-bridge discovery``: identify the meters, print what would be announced."""
    settings = _settings(args)

    async def identify_all() -> list[MeterIdentity | BaseException]:
        jobs: list[Awaitable[MeterIdentity]] = [_identify(m) for m in settings.meters]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, CountisError):
                raise result
        return list(results)

    identities = asyncio.run(identify_all())
    return print_discovery(settings, identities)


def demo_main(args: argparse.Namespace) -> int:
    """``countis-bridge demo``: emulated meters + embedded broker + bridge, live values."""
    from countis_bridge.demo import demo  # noqa: PLC0415 - the emulator is needed only here

    quiet_libraries(args.log_level or "INFO")
    return run_until_stopped(lambda: demo(args), duration=args.duration)
