"""Async client of one COUNTIS E2x meter over Modbus TCP: identify, read, commands.

Every request, read or write, goes through one connection of :mod:`countis.modbus_tcp`
(hand-framed FC3/FC6; at 1,000 meters a general-purpose Modbus client was most of the
bridge's CPU, see bench/README.md), which raises only :mod:`countis.errors`. Each call runs
under one lock per meter and each request under one timeout. After any failure other than
an exception response the connection is dropped and the next call opens a fresh one.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from functools import lru_cache
from types import TracebackType
from typing import Self

from countis import codec
from countis.catalogue import VALUE_KEYS
from countis.config import DEFAULT_PORT, DEFAULT_TIMEOUT, DEFAULT_UNIT, MeterConfig, host_port
from countis.errors import CommandError, ModbusExceptionError, NotACountisError
from countis.modbus_tcp import BROADCAST_UNIT, ModbusTcpConnection
from countis.models import MeterIdentity, MeterReading
from countis.plan import plan_reads
from countis.registers import BLOCK_BY_NAME, BY_NAME
from countis.values import Conversion, compile_values, registers_for

# Nobody confirms a broadcast: the meters get this long to act on it before the next
# request (Modbus practice; it also keeps the broadcast and the read-back in separate
# TCP segments for gateways that take one frame per segment).
BROADCAST_TURNAROUND = 0.1  # seconds
#: Opens a connection: (host, port, seconds, where) -> connection. Tests inject their own.
Connector = Callable[[str, int, float, str], Awaitable[ModbusTcpConnection]]
_IDENT = BLOCK_BY_NAME["product_identification"]
_MID = BY_NAME["mid_status"]
_SET_TARIFF = BY_NAME["set_tariff_number"]
_TARIFF = BY_NAME["tariff_in_progress"]
_RESET_PARTIAL = BY_NAME["reset_partial_energies_cmd"]
RESET_PARTIAL_ALL = 0x20
MODELS = ("E27", "E28", "E23", "E24")


# struct codes of the table's numeric types, high word first (as countis.codec decodes
# them); an 8-bit value is the low byte of its word.
_STRUCT_CODES = {"U8": "xB", "U8_HEX": "xB", "U16": "H", "U16_HEX": "H", "S16": "h",
                 "U32": "I", "S32": "i", "U64_HEX": "Q"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Step:
    """One FC3 request, where each register sits in its answer, and how to unpack it."""

    address: int
    count: int
    fields: tuple[tuple[str, str, int, int], ...]  # name, type, first word, end word
    layout: struct.Struct  # the answer's data bytes -> one integer per field


@dataclass(frozen=True, slots=True)
class _Reader:
    """A key set's requests and the compiled conversion of their unpacked integers."""

    steps: tuple[_Step, ...]
    convert: Conversion


def _layout(count: int, fields: tuple[tuple[str, str, int, int], ...]) -> struct.Struct:
    """One struct for a whole answer: the fields' codes, unused words skipped."""
    parts, word = [">"], 0
    for name, dtype, start, end in fields:
        code = _STRUCT_CODES.get(dtype)
        if code is None or start < word:
            msg = f"register {name} ({dtype}) cannot be unpacked from a read plan"
            raise ValueError(msg)
        parts.append(f"{2 * (start - word)}x{code}" if start > word else code)
        word = end
    parts.append(f"{2 * (count - word)}x" if count > word else "")
    return struct.Struct("".join(parts))


@lru_cache(maxsize=64)
def _plan(keys: tuple[str, ...]) -> tuple[_Step, ...]:
    """The requests for a key set; cached because pollers ask for the same sets forever."""
    try:
        registers = registers_for(keys)
    except KeyError as err:
        msg = f"unknown value key {err.args[0]!r}"
        raise ValueError(msg) from err
    steps = []
    for req in plan_reads(registers):
        fields = tuple(
            (r.name, r.dtype, r.address - req.address, r.address - req.address + r.words)
            for r in req.registers
        )
        steps.append(_Step(req.address, req.count, fields, _layout(req.count, fields)))
    return tuple(steps)


@lru_cache(maxsize=64)
def _reader(keys: tuple[str, ...]) -> _Reader:
    """Requests and conversion of a key set, compiled once (struct layouts, value steps)."""
    steps = _plan(keys)
    order = tuple(name for step in steps for name, *_ in step.fields)
    return _Reader(steps, compile_values(keys, order))


def _decode_identity(words: list[int]) -> MeterIdentity:
    """Identity from the words of the identification block; NotACountisError if foreign."""

    def field(name: str) -> codec.Value:
        reg = BY_NAME[name]
        start = reg.address - _IDENT.start
        return codec.decode(reg.dtype, words[start : start + reg.words])

    signature = field("soco_signature")
    if signature != "SOCO":
        msg = f"no Socomec signature at 0x{_IDENT.start:04X} (read {signature!r})"
        raise NotACountisError(msg)
    extended = str(field("extended_name"))
    upper = extended.upper()
    model = next((m for m in MODELS if upper.startswith(f"COUNTIS {m}")), None)
    if model is None:
        msg = f"Socomec product {extended!r} is not a COUNTIS E2x"
        raise NotACountisError(msg)
    serial = f"{field('serial_aa_ss'):04X}{field('serial_sst_l'):04X}{field('serial_order'):05d}"
    if reserve := field("serial_reserve"):
        serial += f"-{reserve}"
    return MeterIdentity(
        vendor=str(field("vendor_name")),
        product_name=str(field("product_name")),
        extended_name=extended,
        model=model,
        serial_number=serial,
        firmware_version=f"{int(field('product_software_version')) / 100:.2f}",
        table_version=f"{int(field('jbus_table_version')) / 100:.2f}",
        mid=False,
    )


class MeterClient:
    """One Modbus TCP connection to one meter; use as ``async with MeterClient(...)``.

    ``timeout`` bounds each Modbus request (and the connect). Calls of one client run one
    at a time; a client may be used without ``async with`` if ``close()`` is called.
    """

    # A bridge keeps one per meter for its whole life: no per-instance dict.
    __slots__ = ("_conn", "_connect", "_lock", "_where", "generation", "host", "port", "timeout",
                 "unit")  # fmt: skip

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_PORT,
        unit: int = DEFAULT_UNIT,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        connect: Connector | None = None,
    ) -> None:
        """Store the address only; the connection opens on the first call."""
        self.host = host
        self.port = port
        self.unit = unit
        self.timeout = timeout
        self._where = host_port(host, port)
        self._lock = asyncio.Lock()
        self._conn: ModbusTcpConnection | None = None
        self._connect = connect or _open
        self.generation = 0  # connections opened so far: a new one may reach another device

    @classmethod
    def for_meter(cls, config: MeterConfig) -> Self:
        """The client of a configured meter (its address, unit and timeout)."""
        return cls(config.host, config.port, config.unit, config.timeout)

    async def __aenter__(self) -> Self:
        """Nothing to do: connecting happens on demand, so an offline meter is no error here."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the connection."""
        self.close()

    @property
    def connected(self) -> bool:
        """Whether a connection is open now."""
        return self._conn is not None and self._conn.connected

    def close(self) -> None:
        """Close the connection; the next call reconnects."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def identify(self) -> MeterIdentity:
        """Read the identification block and the MID flag; NotACountisError if foreign."""
        async with self._lock:
            try:
                words = await self._words(_IDENT.start, _IDENT.words)
            except ModbusExceptionError as err:
                if err.code != 2:
                    raise
                msg = f"{self._where} unit {self.unit} has no identification block"
                raise NotACountisError(msg) from err
            identity = _decode_identity(words)  # raises before probing a foreign device
            mid = (await self._words(_MID.address, 1))[0] & 0xFF
        return replace(identity, mid=mid == 1)

    async def read(self, keys: Iterable[str] | None = None) -> MeterReading:
        """Read the registers behind ``keys`` (value keys; None = all) and compute them."""
        wanted = VALUE_KEYS if keys is None else tuple(keys)
        reader = _reader(wanted)
        raw: list[int] = []
        async with self._lock:
            timestamp = time.time()
            for step in reader.steps:
                raw += step.layout.unpack(await self._fc3(step.address, step.count))
        return MeterReading(timestamp=timestamp, values=reader.convert(raw))

    async def read_registers(self, address: int, count: int) -> list[int]:
        """Raw FC3 read of ``count`` words at ``address`` (diagnostics)."""
        async with self._lock:
            return await self._words(address, count)

    async def set_tariff(self, tariff: int, *, broadcast: bool = False) -> None:
        """Select tariff 1 or 2 and confirm it by reading it back.

        ``broadcast`` writes unit 0 (every meter behind this address switches; nobody
        answers) and then confirms on this meter.
        """
        if tariff not in (1, 2):
            msg = f"tariff must be 1 or 2, not {tariff!r}"
            raise CommandError(msg)
        async with self._lock:
            await self._write(_SET_TARIFF.address, tariff, broadcast=broadcast)
            active = (await self._words(_TARIFF.address, 1))[0] & 0xFF
        if active != tariff:
            msg = f"{self._where}: tariff {tariff} written but the meter reports {active}"
            raise CommandError(msg)

    async def reset_partial(self) -> None:
        """Reset the meter's partial energy counters."""
        async with self._lock:
            await self._write(_RESET_PARTIAL.address, RESET_PARTIAL_ALL)

    # ------------------------------------------------------------ requests
    async def connect(self) -> int:
        """Open the connection unless it is open; the number of the connection in use."""
        async with self._lock:
            await self._connection()
        return self.generation

    async def _connection(self) -> ModbusTcpConnection:
        conn = self._conn
        if conn is None or not conn.connected:
            self.close()
            conn = self._conn = await self._connect(self.host, self.port, self.timeout, self._where)
            self.generation += 1
        return conn

    async def _fc3(self, address: int, count: int) -> bytes:
        """The data bytes of one FC3 read (the connection is opened if need be)."""
        conn = await self._connection()
        try:
            return await conn.read_registers(self.unit, address, count)
        except ModbusExceptionError:
            raise  # a valid answer: the stream is still in step
        except BaseException:
            self.close()  # timed out, bad frame, lost or cancelled mid-request
            raise

    async def _words(self, address: int, count: int) -> list[int]:
        return list(struct.unpack(f">{count}H", await self._fc3(address, count)))

    async def _write(self, address: int, value: int, *, broadcast: bool = False) -> None:
        """One FC6 write to this meter, or to unit 0 (every meter behind the address)."""
        conn = await self._connection()
        try:
            await conn.write_register(BROADCAST_UNIT if broadcast else self.unit, address, value)
        except ModbusExceptionError:
            raise
        except BaseException:
            self.close()
            raise
        if broadcast:
            await asyncio.sleep(BROADCAST_TURNAROUND)


async def _open(host: str, port: int, seconds: float, where: str) -> ModbusTcpConnection:
    return await ModbusTcpConnection.open(host, port, seconds=seconds, where=where)
