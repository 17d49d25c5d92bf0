"""Async client of one COUNTIS E2x meter over Modbus TCP: identify, read, commands.

This is the only module that imports the pymodbus client. Every pymodbus error and every
Modbus exception response is translated into :mod:`bridge.errors` here. Each call runs
under one lock per connection and its own timeout. pymodbus's background reconnect and
retries are disabled so failures surface at once; after any failure other than an
exception response the connection is dropped and the next call opens a fresh one.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import lru_cache, partial
from types import TracebackType
from typing import Any, Self

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException

from bridge import codec
from bridge.entities import VALUE_KEYS
from bridge.errors import (
    CommandError,
    MeterConnectionError,
    MeterTimeoutError,
    ModbusExceptionError,
    NotACountisError,
    ProtocolError,
)
from bridge.models import MeterIdentity, MeterReading
from bridge.plan import plan_reads
from bridge.registers import BLOCK_BY_NAME, BY_NAME
from bridge.values import compute_values, registers_for

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
_EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    6: "server device busy",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
_IDENT = BLOCK_BY_NAME["product_identification"]
_MID = BY_NAME["mid_status"]
_SET_TARIFF = BY_NAME["set_tariff_number"]
_TARIFF = BY_NAME["tariff_in_progress"]
_RESET_PARTIAL = BY_NAME["reset_partial_energies_cmd"]
RESET_PARTIAL_ALL = 0x20
MODELS = ("E27", "E28", "E23", "E24")


@dataclass(frozen=True, slots=True)
class _Step:
    """One FC3 request and where each register sits in its answer."""

    address: int
    count: int
    fields: tuple[tuple[str, str, int, int], ...]  # name, type, first word, end word


@lru_cache(maxsize=64)
def _plan(keys: tuple[str, ...]) -> tuple[_Step, ...]:
    """The requests for a key set; cached because pollers ask for the same sets forever."""
    try:
        registers = registers_for(keys)
    except KeyError as err:
        msg = f"unknown value key {err.args[0]!r}"
        raise ValueError(msg) from err
    return tuple(
        _Step(
            req.address,
            req.count,
            tuple(
                (r.name, r.dtype, r.address - req.address, r.address - req.address + r.words)
                for r in req.registers
            ),
        )
        for req in plan_reads(registers)
    )


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

    def __init__(self, host: str, port: int = 502, unit: int = 5, timeout: float = 3.0) -> None:
        """Store the address only; the connection opens on the first call."""
        self.host = host
        self.port = port
        self.unit = unit
        self.timeout = timeout
        self._where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._unit_kw: dict[str, Any] = {_UNIT_KEYWORD: unit}
        self._lock = asyncio.Lock()
        self._client: AsyncModbusTcpClient | None = None
        self._generation = 0  # tells callbacks of an old connection from the current one
        self._in_flight = False
        self._lost = False

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
        return self._client is not None and self._client.connected

    def close(self) -> None:
        """Close the connection; the next call reconnects."""
        client, self._client = self._client, None
        self._generation += 1
        if client is not None:
            client.close()

    async def identify(self) -> MeterIdentity:
        """Read the identification block and the MID flag; NotACountisError if foreign."""
        async with self._lock:
            try:
                words = await self._read(_IDENT.start, _IDENT.words)
            except ModbusExceptionError as err:
                if err.code != 2:
                    raise
                msg = f"{self._where} unit {self.unit} has no identification block"
                raise NotACountisError(msg) from err
            identity = _decode_identity(words)  # raises before probing a foreign device
            mid = (await self._read(_MID.address, 1))[0] & 0xFF
        return replace(identity, mid=mid == 1)

    async def read(self, keys: Iterable[str] | None = None) -> MeterReading:
        """Read the registers behind ``keys`` (value keys; None = all) and compute them."""
        wanted = VALUE_KEYS if keys is None else tuple(keys)
        steps = _plan(wanted)
        raw: dict[str, codec.Value] = {}
        async with self._lock:
            timestamp = time.time()
            for step in steps:
                words = await self._read(step.address, step.count)
                for name, dtype, start, end in step.fields:
                    raw[name] = codec.decode(dtype, words[start:end])
        return MeterReading(timestamp=timestamp, values=compute_values(wanted, raw))

    async def read_registers(self, address: int, count: int) -> list[int]:
        """Raw FC3 read of ``count`` words at ``address`` (diagnostics)."""
        async with self._lock:
            return await self._read(address, count)

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
                # it (Modbus practice) and keep the next frame out of the same TCP segment
                # (some servers handle one frame per segment).
                await asyncio.sleep(BROADCAST_TURNAROUND)
            active = (await self._read(_TARIFF.address, 1))[0] & 0xFF
        if active != tariff:
            msg = f"{self._where}: tariff {tariff} written but the meter reports {active}"
            raise CommandError(msg)

    async def reset_partial(self) -> None:
        """Reset the meter's partial energy counters."""
        async with self._lock:
            await self._write(_RESET_PARTIAL.address, RESET_PARTIAL_ALL)

    async def _read(self, address: int, count: int) -> list[int]:
        client = await self._connection()
        response = await self._execute(
            partial(client.read_holding_registers, address, count=count, **self._unit_kw),
            address,
        )
        registers: list[int] = response.registers
        if len(registers) != count:
            self.close()  # the stream may be out of step: start afresh
            msg = f"{self._where}: asked 0x{address:04X} for {count} words, got {len(registers)}"
            raise ProtocolError(msg)
        return registers

    async def _write(self, address: int, value: int, *, broadcast: bool = False) -> None:
        client = await self._connection()
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

    async def _connection(self) -> AsyncModbusTcpClient:
        """The open connection, opened now if there is none (reconnect after a failure)."""
        client = self._client
        if client is not None and client.connected:
            return client
        self.close()
        # retries=0 and reconnect_delay=0: our own timeout and reconnect decide. pymodbus's
        # timeout is longer than ours so that ours always fires first.
        client = AsyncModbusTcpClient(
            self.host,
            port=self.port,
            timeout=self.timeout + 1.0,
            retries=0,
            reconnect_delay=0,
            trace_connect=partial(self._on_connection, self._generation),
        )
        self._client = client
        try:
            async with asyncio.timeout(self.timeout):
                ok = await client.connect()
        except TimeoutError as err:
            self.close()
            msg = f"{self._where}: connection timed out after {self.timeout:g} s"
            raise MeterConnectionError(msg) from err
        except OSError as err:
            self.close()
            msg = f"cannot connect to {self._where}: {err}"
            raise MeterConnectionError(msg) from err
        if not ok or not client.connected:
            self.close()
            msg = f"cannot connect to {self._where}"
            raise MeterConnectionError(msg)
        return client

    def _on_connection(self, generation: int, connected: bool) -> None:
        """Connection callback: a drop during a request fails it at once, not at the timeout."""
        if connected or generation != self._generation:
            return
        self._lost = True
        ctx = getattr(self._client, "ctx", None)
        future = getattr(ctx, "response_future", None)
        if self._in_flight and isinstance(future, asyncio.Future) and not future.done():
            future.set_exception(ConnectionException("connection lost"))

    async def _execute(self, call: partial[Any], address: int) -> Any:
        """Run one request under the timeout; translate every failure."""
        self._in_flight, self._lost = True, False
        try:
            async with asyncio.timeout(self.timeout):
                response = await call()
        except TimeoutError as err:
            lost = self._lost
            self.close()  # a late answer must not be taken for the next request's
            if lost:
                msg = f"{self._where}: connection lost"
                raise MeterConnectionError(msg) from err
            msg = f"{self._where} unit {self.unit}: no answer within {self.timeout:g} s"
            raise MeterTimeoutError(msg) from err
        except (ConnectionException, OSError) as err:
            self.close()
            msg = f"{self._where}: connection lost"
            raise MeterConnectionError(msg) from err
        except ModbusException as err:
            self.close()
            msg = f"{self._where}: bad answer ({err})"
            raise ProtocolError(msg) from err
        except BaseException:
            self.close()  # cancelled mid-request: the connection state is unknown
            raise
        finally:
            self._in_flight = False
        if response is not None and response.isError():
            code = int(getattr(response, "exception_code", 0))
            name = _EXCEPTION_NAMES.get(code, "unknown")
            msg = f"{self._where} unit {self.unit}: exception {code} ({name}) at 0x{address:04X}"
            raise ModbusExceptionError(code, msg)
        return response
