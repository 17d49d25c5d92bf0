"""Async client of one COUNTIS E2x meter over Modbus TCP: identify, read, commands.

Reads (polls, identification) go through the lean hand-framed FC3 path of
:mod:`countis.modbus_tcp`: at 1,000 meters pymodbus's client was most of the bridge's CPU
(see bench/README.md). Writes (tariff, partial reset, broadcasts) are rare and go through
pymodbus: this is the only module that imports the pymodbus client, and every pymodbus
error and every Modbus exception response is translated into :mod:`countis.errors` here.
Each call runs under one lock per meter and each request under one timeout. After any
failure other than an exception response the connection is dropped and the next call
opens a fresh one.
"""

from __future__ import annotations

import asyncio
import inspect
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import lru_cache, partial
from types import TracebackType
from typing import Any, Self

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException

from countis import codec
from countis.catalogue import VALUE_KEYS
from countis.errors import (
    CommandError,
    MeterConnectionError,
    MeterTimeoutError,
    ModbusExceptionError,
    NotACountisError,
    ProtocolError,
)
from countis.modbus_tcp import ModbusTcpConnection, exception_message
from countis.models import MeterIdentity, MeterReading
from countis.plan import plan_reads
from countis.registers import BLOCK_BY_NAME, BY_NAME
from countis.values import Conversion, compile_values, registers_for

# pymodbus renamed the unit-id keyword ("slave" up to 3.8, "device_id" later): ask the
# signature once instead of comparing version strings.
_UNIT_KEYWORD = (
    "device_id"
    if "device_id" in inspect.signature(AsyncModbusTcpClient.read_holding_registers).parameters
    else "slave"
)
BROADCAST_UNIT = 0
BROADCAST_TURNAROUND = 0.1  # seconds
_BROADCAST_KW: dict[str, Any] = {_UNIT_KEYWORD: BROADCAST_UNIT}
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
    __slots__ = ("_conn", "_lock", "_unit_kw", "_where", "_writing", "host", "port", "timeout",
                 "unit")  # fmt: skip

    def __init__(self, host: str, port: int = 502, unit: int = 5, timeout: float = 3.0) -> None:
        """Store the address only; the connection opens on the first call."""
        self.host = host
        self.port = port
        self.unit = unit
        self.timeout = timeout
        self._where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._unit_kw: dict[str, Any] = {_UNIT_KEYWORD: unit}
        self._lock = asyncio.Lock()
        self._conn: ModbusTcpConnection | None = None  # the read path's connection
        self._writing = False  # a pymodbus write is waiting for its answer

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
            if broadcast:
                # Nobody confirms a broadcast: give the meters a turnaround delay to act on
                # it (Modbus practice) before asking this one.
                await asyncio.sleep(BROADCAST_TURNAROUND)
            active = (await self._words(_TARIFF.address, 1))[0] & 0xFF
        if active != tariff:
            msg = f"{self._where}: tariff {tariff} written but the meter reports {active}"
            raise CommandError(msg)

    async def reset_partial(self) -> None:
        """Reset the meter's partial energy counters."""
        async with self._lock:
            await self._write(_RESET_PARTIAL.address, RESET_PARTIAL_ALL)

    # ------------------------------------------------------------ read path (lean)
    async def _fc3(self, address: int, count: int) -> bytes:
        """The data bytes of one FC3 read, on the read connection (opened if need be).

        Any failure but an exception response (a valid answer: the stream is still in
        step) drops the connection.
        """
        conn = self._conn
        if conn is None or not conn.connected:
            self.close()
            conn = self._conn = await ModbusTcpConnection.open(
                self.host, self.port, seconds=self.timeout, where=self._where
            )
        try:
            return await conn.read_registers(self.unit, address, count)
        except ModbusExceptionError:
            raise
        except BaseException:
            self.close()  # timed out, bad frame, lost or cancelled mid-request
            raise

    async def _words(self, address: int, count: int) -> list[int]:
        return list(struct.unpack(f">{count}H", await self._fc3(address, count)))

    # ------------------------------------------------------------ write path (pymodbus)
    async def _write(self, address: int, value: int, *, broadcast: bool = False) -> None:
        """One FC6 write on a pymodbus connection of its own, closed afterwards.

        Commands are rare; the read connection is closed first (the next read reopens it)
        so a meter never sees more than one connection of ours: many accept only a few.
        """
        self.close()
        client = AsyncModbusTcpClient(
            self.host,
            port=self.port,
            # retries=0 and reconnect_delay=0: our own timeout and reconnect decide.
            # pymodbus's timeout is longer than ours so that ours always fires first.
            timeout=self.timeout + 1.0,
            retries=0,
            reconnect_delay=0,
            trace_connect=lambda connected: self._on_write_link(client, connected),
        )
        try:
            await self._connect(client)
            if broadcast:
                # Unit 0 is a broadcast: the meter acts but never answers, so don't wait.
                call = partial(
                    client.write_register,
                    address,
                    value,
                    no_response_expected=True,
                    **_BROADCAST_KW,
                )
            else:
                call = partial(client.write_register, address, value, **self._unit_kw)
            await self._execute(call, address)
        finally:
            client.close()

    async def _connect(self, client: AsyncModbusTcpClient) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                ok = await client.connect()
        except TimeoutError as err:
            msg = f"{self._where}: connection timed out after {self.timeout:g} s"
            raise MeterConnectionError(msg) from err
        except OSError as err:
            msg = f"cannot connect to {self._where}: {err}"
            raise MeterConnectionError(msg) from err
        if not ok or not client.connected:
            msg = f"cannot connect to {self._where}"
            raise MeterConnectionError(msg)

    def _on_write_link(self, client: AsyncModbusTcpClient, connected: bool) -> None:
        """Connection callback: a drop during a write fails it at once, not at the timeout."""
        future = getattr(getattr(client, "ctx", None), "response_future", None)
        if (
            not connected
            and self._writing
            and isinstance(future, asyncio.Future)
            and not future.done()
        ):
            future.set_exception(ConnectionException("connection lost"))

    async def _execute(self, call: partial[Any], address: int) -> Any:
        """Run one pymodbus request under the timeout; translate every failure."""
        self._writing = True
        try:
            async with asyncio.timeout(self.timeout):
                response = await call()
        except TimeoutError as err:
            msg = f"{self._where} unit {self.unit}: no answer within {self.timeout:g} s"
            raise MeterTimeoutError(msg) from err
        except (ConnectionException, OSError) as err:
            msg = f"{self._where}: connection lost"
            raise MeterConnectionError(msg) from err
        except ModbusException as err:
            msg = f"{self._where}: bad answer ({err})"
            raise ProtocolError(msg) from err
        finally:
            self._writing = False
        if response is not None and response.isError():
            code = int(getattr(response, "exception_code", 0))
            raise ModbusExceptionError(
                code, exception_message(self._where, self.unit, code, address)
            )
        return response
