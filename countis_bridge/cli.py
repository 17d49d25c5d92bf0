"""Command line: ``countis-bridge run | emulate | demo | read | discovery``.

The CLI is thin: it parses arguments, calls one function per command, and maps the
project's exceptions to one-line messages and exit codes (see ``EXIT_CODES``).
Commands import their modules lazily so ``read`` and ``emulate`` need only the core.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from countis.config import DEFAULT_PORT, DEFAULT_TIMEOUT, DEFAULT_UNIT
from countis.errors import (
    ConfigError,
    CountisError,
    MeterConnectionError,
    MeterTimeoutError,
    MissingDependencyError,
    NotACountisError,
)

from countis_bridge import __version__

#: Exit codes: 1 = runtime failure, 2 = bad usage, configuration or installation,
#: 3 = not a COUNTIS.
EXIT_CODES: tuple[tuple[type[CountisError], int, str], ...] = (
    (ConfigError, 2, "check the configuration file and options"),
    (MissingDependencyError, 2, ""),  # the message names the package and the pip command
    (NotACountisError, 3, "is this a Socomec COUNTIS E27/E28, and is the unit id right?"),
    (
        MeterTimeoutError,
        1,
        f"check the unit id (default {DEFAULT_UNIT}) and that the meter is powered",
    ),
    (MeterConnectionError, 1, "check the address and port, and that Modbus TCP is reachable"),
    (CountisError, 1, ""),
)


def _add_read(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("read", help="identify and read a meter once")
    p.add_argument(
        "target", metavar="HOST[:PORT]", help=f"meter address (port default {DEFAULT_PORT})"
    )
    p.add_argument(
        "--unit", type=int, default=DEFAULT_UNIT, help=f"Modbus unit id (default {DEFAULT_UNIT})"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per request")


_EMULATE_EPILOG = """\
profiles: constant (10 A per phase, PF 0.9 inductive, 230 V, 50 Hz), daily (household
  day, inductive by day, capacitive at night), random_walk, pv (midday export, P < 0).
fleet: --meters N serves ports PORT..PORT+N-1 (--port 0: free ports), serials counted up
  from --serial (default 21170A0100001); --state-file s.json keeps each meter's counters
  in s-<serial>.json (a single meter: s.json itself), saved every minute and on
  SIGINT/SIGTERM (exit code 0).
control API (--control-port P, on 127.0.0.1 only; JSON in and out; i = meter index 0..N-1):
  GET  /meters                 every meter: serial, port, unit, tariff, faults, values
  GET  /meters/i/values        one meter's values by value key
  POST /meters/i/faults        {"delay": s|null, "no_answer": bool, "exception": code|null,
                                "freeze": bool, "zero_counters": bool,
                                "lower_counters": bool, "drop": true, "clear": true}
  POST /meters/i/partial       {"action": "start" | "stop" | "reset"}
  POST /meters/i/tariff        {"tariff": 1 | 2}
  e.g. curl -d '{"no_answer": true}' http://127.0.0.1:P/meters/0/faults
"""


def _add_emulate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "emulate",
        help="run emulated COUNTIS meters (Modbus TCP servers)",
        epilog=_EMULATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    p.add_argument("--port", type=int, default=5020, help="first port (one port per meter)")
    p.add_argument("--unit", type=int, default=DEFAULT_UNIT, help="unit id the meters answer")
    p.add_argument("--model", choices=("E27", "E28"), default="E28")
    p.add_argument("--serial", default=None, help="serial number of the first meter")
    p.add_argument(
        "--profile",
        default="daily",
        choices=("constant", "daily", "random_walk", "pv"),
        help="load profile (default daily)",
    )
    p.add_argument("--speed", type=float, default=1.0, help="time acceleration factor")
    p.add_argument("--state-file", default=None, help="JSON file keeping the counters")
    p.add_argument("--meters", type=int, default=1, help="number of meters (one port each)")
    p.add_argument(
        "--gateway",
        action="store_true",
        help="all meters behind one port (unit ids UNIT, UNIT+1, ...), as behind a gateway",
    )
    p.add_argument("--seed", type=int, default=None, help="random seed (reproducible runs)")
    p.add_argument(
        "--control-port", type=int, default=None, help="HTTP control API port (default off)"
    )
    p.add_argument(
        "--overflow-kwh",
        type=int,
        default=1_000_000,
        help="value where the total counters wrap (default 1000000 kWh)",
    )


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", default=None, help="YAML configuration file")


def _add_bridge_options(p: argparse.ArgumentParser) -> None:
    """Overrides of the configuration (see ``settings.settings_overrides_from_args``)."""
    _add_config(p)
    g = p.add_argument_group("overrides (beat COUNTIS_* variables and the file)")
    g.add_argument("--mqtt-host", default=None, help="MQTT broker host")
    g.add_argument("--mqtt-port", type=int, default=None, help="MQTT broker port")
    g.add_argument("--mqtt-username", default=None, help="MQTT user name")
    g.add_argument("--mqtt-client-id", default=None, help="MQTT client id")
    g.add_argument("--base-topic", default=None, help="base topic (default countis)")
    g.add_argument("--discovery-prefix", default=None, help="default homeassistant")
    g.add_argument("--discovery-mode", choices=("device", "entity"), default=None)
    g.add_argument("--data-dir", default=None, help="directory for persisted state")
    g.add_argument("--offline-after", type=int, default=None, help="failed polls -> offline")


def _add_daemon(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _add_bridge_options(sub.add_parser("run", help="run the MQTT bridge"))
    _add_bridge_options(sub.add_parser("discovery", help="print the discovery payloads"))
    p = sub.add_parser("demo", help="emulated meter + embedded broker + bridge, live values")
    p.add_argument("--meters", type=int, default=1, help="number of emulated meters")
    p.add_argument("--speed", type=float, default=60.0, help="emulator time acceleration")
    p.add_argument("--mqtt-port", type=int, default=None, help="broker port (default: free)")
    p.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    p.add_argument(
        "--broker",
        choices=("auto", "mosquitto", "amqtt"),
        default="auto",
        help="embedded broker (default: mosquitto when installed, else amqtt)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="countis-bridge",
        description="Socomec COUNTIS E27/E28 meters in Home Assistant, MQTT and Node-RED.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level",
        default=None,  # None: the configuration file (or INFO) decides
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="logging level (default: the configuration's, else INFO)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_daemon(sub)
    _add_emulate(sub)
    _add_read(sub)
    return parser


def _handler(command: str) -> Callable[[argparse.Namespace], int]:
    if command == "read":
        from countis_bridge.readcmd import main as read_main  # noqa: PLC0415

        return read_main
    if command == "emulate":
        from countis_bridge.emulator.cli import main as emulate_main  # noqa: PLC0415

        return emulate_main
    from countis_bridge import daemon  # noqa: PLC0415

    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "run": daemon.run_main,
        "discovery": daemon.discovery_main,
        "demo": daemon.demo_main,
    }
    return handlers[command]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``countis-bridge`` script; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level or "INFO",
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return _handler(args.command)(args)
    except KeyboardInterrupt:
        return 130
    except CountisError as err:
        return report(args.command, err)


def report(command: str, err: CountisError) -> int:
    """Print ``err`` as one line on stderr; its exit code (``EXIT_CODES``)."""
    for kind, code, hint in EXIT_CODES:
        if isinstance(err, kind):
            suffix = f" ({hint})" if hint else ""
            print(f"countis-bridge {command}: error: {one_line(str(err))}{suffix}", file=sys.stderr)
            return code
    raise err  # pragma: no cover - CountisError is the last entry


def one_line(text: str) -> str:
    """``text`` with line breaks, other control characters and lone surrogates escaped.

    A message may quote a configured value; it must stay one printable line.
    """
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


if __name__ == "__main__":
    sys.exit(main())
