"""``countis-bridge read HOST[:PORT]``: identify and read one meter once, print the values.

The table follows the meter's own display menus (rt, tot, Tar.1, Tar.2, Par.b) so values
are found where the front panel shows them; ``--json`` prints the value-key contract.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
from collections.abc import Mapping

from countis.catalogue import VALUE_BY_KEY, VALUE_KEYS, Group, Kind
from countis.client import MeterClient
from countis.config import DEFAULT_PORT
from countis.errors import ConfigError
from countis.models import MeterIdentity, MeterReading, ValueType
from countis.presentation import SENSOR_BY_KEY

#: Menus of the meter's display, in display order: (menu code, title).
MENUS: tuple[tuple[str, str], ...] = (
    ("rt", "Realtime"),
    ("tot", "Total"),
    ("Tar.1", "Tariff 1"),
    ("Tar.2", "Tariff 2"),
    ("Par.b", "Partial & balance"),
    ("Info", "Meter information"),
)


def parse_target(target: str) -> tuple[str, int]:
    """Split ``HOST[:PORT]``; IPv6 literals go in brackets (``[::1]:5020``)."""
    host, port = target, str(DEFAULT_PORT)
    if target.startswith("["):
        end = target.find("]")
        rest = target[end + 1 :] if end > 0 else "?"
        if end < 0 or (rest and not rest.startswith(":")):
            msg = f"bad address {target!r}: use [IPv6]:PORT"
            raise ConfigError(msg)
        host, port = target[1:end], rest[1:] or port
    elif target.count(":") == 1:
        host, port = target.split(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        msg = f"bad address {target!r}: expected HOST[:PORT] with a port from 1 to 65535"
        raise ConfigError(msg)
    return host, int(port)


def menu_of(key: str) -> str:
    """The display menu a value key belongs to."""
    value = VALUE_BY_KEY[key]
    if value.kind in (Kind.PARTIAL_COUNTER, Kind.BALANCE):
        return "Par.b"
    if value.tariff:
        return f"Tar.{value.tariff.removeprefix('t')}"
    if value.kind is Kind.TARIFF:
        return "Info"
    if value.group is Group.REALTIME or value.kind is Kind.STATUS:
        return "rt"
    return "tot"


def _format(value: ValueType) -> str:
    # Values come rounded to the register resolution already: print them as they are.
    return str(value)


def render_table(identity: MeterIdentity, values: Mapping[str, ValueType]) -> str:
    """The human-readable report, one section per display menu."""
    rows: dict[str, list[tuple[str, str, str]]] = {code: [] for code, _ in MENUS}
    info = rows["Info"]
    info += [
        ("Vendor", identity.vendor, ""),
        ("Product", identity.extended_name or identity.name, ""),
        ("Model", identity.model, ""),
        ("Serial number", identity.serial_number, ""),
        ("Firmware", identity.firmware_version, ""),
        ("Modbus table", identity.table_version, ""),
        ("MID", "yes" if identity.mid else "no", ""),
    ]
    for key, value in values.items():
        spec = SENSOR_BY_KEY[key]
        rows[menu_of(key)].append((spec.name, _format(value), spec.unit or ""))
    width = max(len(name) for section in rows.values() for name, _, _ in section)
    lines = [
        f"{identity.name}  serial {identity.serial_number}  firmware {identity.firmware_version}"
    ]
    for code, title in MENUS:
        if not rows[code]:
            continue
        lines += ["", f"{code} - {title}"]
        lines += [
            f"  {name:<{width}}  {text:>14} {unit}".rstrip() for name, text, unit in rows[code]
        ]
    return "\n".join(lines)


def render_json(identity: MeterIdentity, reading: MeterReading) -> str:
    """``{"identity": {...}, "values": {...}}`` with numbers as numbers."""
    return json.dumps({"identity": dataclasses.asdict(identity), "values": dict(reading.values)})


async def read_once(
    host: str, port: int, unit: int, request_timeout: float
) -> tuple[MeterIdentity, MeterReading]:
    """Identify the meter, then read every value."""
    async with MeterClient(host, port, unit=unit, timeout=request_timeout) as client:
        identity = await client.identify()
        reading = await client.read(VALUE_KEYS)
    return identity, reading


def main(args: argparse.Namespace) -> int:
    """Run ``read``; CountisError subclasses propagate to the CLI's error map."""
    host, port = parse_target(args.target)
    if not 1 <= args.unit <= 247:
        msg = f"unit id {args.unit} out of range 1..247"
        raise ConfigError(msg)
    if not args.timeout > 0:
        msg = f"timeout must be positive, not {args.timeout}"
        raise ConfigError(msg)
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # pymodbus logs every failure itself; the CLI prints one line per error instead.
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    identity, reading = asyncio.run(read_once(host, port, args.unit, args.timeout))
    print(render_json(identity, reading) if args.json else render_table(identity, reading.values))
    return 0
