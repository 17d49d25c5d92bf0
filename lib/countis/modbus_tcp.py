"""A lean Modbus TCP connection, framed by hand on an asyncio protocol: FC3 and FC6.

Why not pymodbus: at 1,000 meters its client cost about three times a hand-written
exchange per request (framer and PDU objects, debug strings built with logging off, its
own timeout nested in ours), and most of the bridge's CPU went there. A COUNTIS needs
two functions, each one small frame each way: read holding registers (FC3) and write a
single register (FC6: its command registers are one word each). Unit id 0 is the
broadcast address: a write to it goes to every meter behind a gateway and nobody
answers, so it is sent and not awaited.

One request is in flight at a time (the caller serialises them under its lock), each with
its own transaction id and a deadline. Failures are :mod:`countis.errors`: an exception
response is :class:`ModbusExceptionError` (the connection stays usable), a malformed frame
:class:`ProtocolError`, a lost connection :class:`MeterConnectionError` at once (not at
the timeout), no answer in time :class:`MeterTimeoutError`. After a malformed frame or a
timeout the connection is closed, so a late answer can never be taken for the next
request's; answers with another transaction or unit id are ignored as strays.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Self, cast

from countis.errors import (
    MeterConnectionError,
    MeterError,
    MeterTimeoutError,
    ModbusExceptionError,
    ProtocolError,
)

READ_HOLDING_REGISTERS = 3
WRITE_SINGLE_REGISTER = 6
BROADCAST_UNIT = 0
MAX_READ_WORDS = 125  # the largest FC3 answer that fits a PDU (250 data bytes)
EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    6: "server device busy",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
# MBAP header (transaction id, protocol 0, length 6, unit) + an FC3 or FC6 PDU (function,
# address, count or value): one pack per request.
_REQUEST = struct.Struct(">HHHBBHH")
_HEADER = struct.Struct(">HHHB")  # an answer's MBAP header: tid, protocol, length, unit
_HEADER_SIZE = _HEADER.size
_MAX_LENGTH = 254  # MBAP length field: unit id + the largest PDU (253 bytes)


def exception_message(where: str, unit: int, code: int, address: int) -> str:
    """The one-line text of a Modbus exception response (shared with the write path)."""
    name = EXCEPTION_NAMES.get(code, "unknown")
    return f"{where} unit {unit}: exception {code} ({name}) at 0x{address:04X}"


class ModbusTcpConnection(asyncio.Protocol):
    """One Modbus TCP connection; open with :meth:`open`, read with :meth:`read_registers`."""

    # A bridge holds one per meter for its whole life: no per-instance dict.
    __slots__ = ("_deadline", "_loop", "_pending", "_tid", "_timer", "_transport", "_unit",
                 "_waiter", "seconds", "where")  # fmt: skip

    def __init__(self, where: str, seconds: float) -> None:
        """Inert until the transport calls :meth:`connection_made`."""
        self.where = where  # "host:port", for messages
        self.seconds = seconds  # how long a request may wait for its answer
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._pending = b""  # the start of a frame split across segments
        self._tid = 0
        self._unit = 0
        self._waiter: asyncio.Future[bytes] | None = None
        self._deadline = 0.0  # loop time by which the request in flight must be answered
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    async def open(cls, host: str, port: int, *, seconds: float, where: str) -> Self:
        """Connect; ``seconds`` bounds the connect and then each request's answer.

        MeterConnectionError if the connection cannot be made.
        """
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(seconds):
                _, connection = await loop.create_connection(
                    lambda: cls(where, seconds), host, port
                )
        except TimeoutError as err:
            msg = f"{where}: connection timed out after {seconds:g} s"
            raise MeterConnectionError(msg) from err
        except (OSError, ValueError) as err:
            # ValueError/UnicodeError: a host name that cannot be encoded (NUL, an empty or
            # over-long label) is this meter's problem, reported like an unreachable one.
            msg = f"cannot connect to {where}: {err}"
            raise MeterConnectionError(msg) from err
        return connection

    @property
    def connected(self) -> bool:
        """Whether the connection is open (not closing, not lost)."""
        return self._transport is not None and not self._transport.is_closing()

    def close(self) -> None:
        """Close the connection; a request in flight fails with MeterConnectionError."""
        transport = self._transport
        if transport is not None:
            transport.close()  # stops reading at once: nothing more reaches data_received
        self._disarm()
        self._fail(MeterConnectionError(f"{self.where}: connection closed"))

    async def read_registers(self, unit: int, address: int, count: int) -> bytes:
        """FC3: the ``2 * count`` data bytes of ``count`` holding registers at ``address``."""
        if not 1 <= count <= MAX_READ_WORDS:
            msg = f"an FC3 read takes 1 to {MAX_READ_WORDS} words, not {count}"
            raise ValueError(msg)
        tid = self._next_tid(unit)
        pdu = await self._exchange(
            _REQUEST.pack(tid, 0, 6, unit, READ_HOLDING_REGISTERS, address, count), address
        )
        size = 2 * count
        if pdu[0] == READ_HOLDING_REGISTERS and len(pdu) == size + 2 and pdu[1] == size:
            return pdu[2:]
        raise self._bad_answer(pdu, f"FC3 0x{address:04X} x {count}")

    async def write_register(self, unit: int, address: int, value: int) -> None:
        """FC6: write one register; unit 0 broadcasts (sent, never answered)."""
        if not 0 <= value <= 0xFFFF:
            msg = f"a register holds 0 to 65535, not {value}"
            raise ValueError(msg)
        tid = self._next_tid(unit)
        frame = _REQUEST.pack(tid, 0, 6, unit, WRITE_SINGLE_REGISTER, address, value)
        if unit == BROADCAST_UNIT:
            self._send(frame)
            return
        pdu = await self._exchange(frame, address)
        if pdu != frame[_HEADER_SIZE:]:  # the answer echoes the request
            raise self._bad_answer(pdu, f"FC6 0x{address:04X}")

    def _next_tid(self, unit: int) -> int:
        self._tid = tid = (self._tid + 1) & 0xFFFF
        self._unit = unit
        return tid

    def _send(self, frame: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            msg = f"{self.where}: connection lost"
            raise MeterConnectionError(msg)
        transport.write(frame)

    async def _exchange(self, frame: bytes, address: int) -> bytes:
        """Send a request and wait for its answer PDU (an exception response raises)."""
        waiter: asyncio.Future[bytes] = self._loop.create_future()
        self._send(frame)
        self._waiter = waiter
        # A deadline, not a timer per request: scheduling and cancelling a timer (or a
        # timeout context) for each of thousands of requests a second kept the loop's
        # timer heap busy. One lazy timer per connection checks the deadline instead.
        self._deadline = self._loop.time() + self.seconds
        if self._timer is None:
            self._timer = self._loop.call_at(self._deadline, self._check_deadline)
        try:
            pdu = await waiter
        finally:
            self._waiter = None
        if len(pdu) == 2 and pdu[0] & 0x80 and pdu[0] & 0x7F == frame[_HEADER_SIZE]:
            code = pdu[1]
            raise ModbusExceptionError(
                code, exception_message(self.where, self._unit, code, address)
            )
        return pdu

    def _bad_answer(self, pdu: bytes, what: str) -> ProtocolError:
        """Close the connection (the stream cannot be trusted any more); the error to raise."""
        self.close()
        msg = f"{self.where}: bad answer to {what}: function {pdu[0]}, {len(pdu) - 1} bytes"
        return ProtocolError(msg)

    # ------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport; send each small request at once (no Nagle delay)."""
        # A stream transport (uvloop's is not an asyncio.Transport subclass, so no isinstance).
        self._transport = cast("asyncio.Transport", transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # asyncio sets it already; uvloop and other loops may not.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail a request in flight now instead of letting it wait for its timeout."""
        self._transport = None
        self._disarm()
        self._fail(MeterConnectionError(f"{self.where}: connection lost"))

    def data_received(self, data: bytes) -> None:
        """Split the byte stream into MBAP frames and hand over the awaited one."""
        if self._pending:
            data = self._pending + data
        offset, end = 0, len(data)
        while end - offset >= _HEADER_SIZE:
            tid, protocol, length, unit = _HEADER.unpack_from(data, offset)
            if protocol != 0 or not 2 <= length <= _MAX_LENGTH:
                msg = f"{self.where}: not a Modbus TCP frame (protocol {protocol}, length {length})"
                self._fail(ProtocolError(msg))
                self._pending = b""
                self.close()
                return
            stop = offset + 6 + length
            if stop > end:
                break
            waiter = self._waiter
            if waiter is not None and tid == self._tid and unit == self._unit and not waiter.done():
                waiter.set_result(data[offset + _HEADER_SIZE : stop])
            # Anything else is a stray (a duplicate or another unit's answer): skip it.
            offset = stop
        self._pending = data[offset:] if offset < end else b""

    # ------------------------------------------------------------ internals
    def _check_deadline(self) -> None:
        """The lazy timer: expire the request in flight, or wait for its deadline.

        Idle, the timer is not re-armed (the next request arms it): a connection polled
        every second with a 3 s timeout schedules a timer every 3 s, not per request.
        """
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._loop.time() < self._deadline:  # a later request than the one armed for
            self._timer = self._loop.call_at(self._deadline, self._check_deadline)
            return
        msg = f"{self.where} unit {self._unit}: no answer within {self.seconds:g} s"
        waiter.set_exception(MeterTimeoutError(msg))
        self.close()  # a late answer must not be taken for the next request's

    def _disarm(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _fail(self, error: MeterError) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
