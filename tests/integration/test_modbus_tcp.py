"""The lean FC3 read path (countis.modbus_tcp) over real TCP on 127.0.0.1.

Against the emulator for what a meter does (answers, exceptions, delays, drops), and
against a scripted peer for what the emulator never does on the wire: answers split into
pieces, several frames in one segment, stray transaction or unit ids, garbage.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from countis.client import MeterClient
from countis.errors import (
    MeterConnectionError,
    MeterTimeoutError,
    ModbusExceptionError,
    ProtocolError,
)
from countis.modbus_tcp import ModbusTcpConnection

HOST = "127.0.0.1"
UNIT = 5
Start = Callable[..., Any]

REQUEST = struct.Struct(">HHHBBHH")


def frame(tid: int, pdu: bytes, unit: int = UNIT, protocol: int = 0) -> bytes:
    """An MBAP frame around ``pdu``."""
    return struct.pack(">HHHB", tid, protocol, len(pdu) + 1, unit) + pdu


def fc3_answer(tid: int, words: list[int], unit: int = UNIT) -> bytes:
    """A normal FC3 answer carrying ``words``."""
    return frame(tid, bytes([3, 2 * len(words)]) + struct.pack(f">{len(words)}H", *words), unit)


def words_for(address: int, count: int) -> list[int]:
    """What the scripted peer's registers hold: their own address (low 16 bits)."""
    return [(address + i) & 0xFFFF for i in range(count)]


Request = tuple[int, int, int, int]  # tid, unit, address, count
Script = Callable[[Request, asyncio.StreamWriter], Awaitable[None]]


class Peer:
    """A TCP server that answers each FC3 request as a test scripts it."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.requests: list[Request] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                tid, _, _, unit, _, address, count = REQUEST.unpack(await reader.readexactly(12))
                self.requests.append((tid, unit, address, count))
                await self.script((tid, unit, address, count), writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[tuple[Peer, int]]:
    """A running :class:`Peer` and its port."""
    peer = Peer(script)
    server = await asyncio.start_server(peer.handle, HOST, 0)
    try:
        yield peer, server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def fine(request: Request, writer: asyncio.StreamWriter) -> None:
    """Answer correctly, in one piece."""
    tid, unit, address, count = request
    writer.write(fc3_answer(tid, words_for(address, count), unit))
    await writer.drain()


async def open_conn(port: int, seconds: float = 1.0) -> ModbusTcpConnection:
    return await ModbusTcpConnection.open(HOST, port, seconds=seconds, where=f"{HOST}:{port}")


def words(data: bytes) -> list[int]:
    return list(struct.unpack(f">{len(data) // 2}H", data))


def is_open(thing: ModbusTcpConnection | MeterClient) -> bool:
    """``connected``, read through a call (mypy would narrow the property for good)."""
    return thing.connected


# ------------------------------------------------------------------ framing
async def test_answer_in_pieces() -> None:
    async def byte_by_byte(request: Request, writer: asyncio.StreamWriter) -> None:
        tid, unit, address, count = request
        for byte in fc3_answer(tid, words_for(address, count), unit):
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.001)  # separate segments, separate data_received calls

    async with scripted(byte_by_byte) as (_, port):
        conn = await open_conn(port)
        try:
            for address, count in ((0xC552, 60), (0x9000, 11), (0, 1)):
                data = await conn.read_registers(UNIT, address, count)
                assert words(data) == words_for(address, count)
        finally:
            conn.close()


async def test_several_frames_in_one_segment() -> None:
    async def with_strays(request: Request, writer: asyncio.StreamWriter) -> None:
        tid, unit, address, count = request
        # A duplicate of an older answer and another unit's answer come first, and the
        # first half of a stray comes after: one write, so (on loopback) one segment.
        stray = fc3_answer(tid, [0xDEAD] * count, unit + 1)
        tail = fc3_answer((tid + 7) & 0xFFFF, [0xBEEF] * 3, unit)
        writer.write(
            fc3_answer((tid - 1) & 0xFFFF, [0xBAD] * count, unit)
            + stray
            + fc3_answer(tid, words_for(address, count), unit)
            + tail[:5]
        )
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(tail[5:])  # the rest of the stray, before the next answer
        await writer.drain()

    async with scripted(with_strays) as (peer, port):
        conn = await open_conn(port)
        try:
            for address in (100, 200, 300):
                assert words(await conn.read_registers(UNIT, address, 4)) == words_for(address, 4)
            assert peer.connections == 1
        finally:
            conn.close()


async def test_wrong_transaction_id_is_not_taken_for_the_answer() -> None:
    async def wrong_tid(request: Request, writer: asyncio.StreamWriter) -> None:
        tid, unit, address, count = request
        writer.write(fc3_answer((tid + 1) & 0xFFFF, words_for(address, count), unit))
        await writer.drain()

    async with scripted(wrong_tid) as (_, port):
        conn = await open_conn(port, seconds=0.3)
        with pytest.raises(MeterTimeoutError):
            await conn.read_registers(UNIT, 10, 2)
        assert not is_open(conn)  # dropped: a late answer cannot match the next request


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        (lambda tid: frame(tid, bytes([3, 4, 0, 1, 0, 2]), protocol=1), "not a Modbus TCP frame"),
        (lambda tid: struct.pack(">HHHB", tid, 0, 1, UNIT), "not a Modbus TCP frame"),
        (lambda tid: frame(tid, bytes([3, 4, 0, 1, 0])), "bad answer"),  # byte count says 4
        (lambda tid: frame(tid, bytes([3, 2, 0, 1])), "bad answer"),  # 1 word, 2 asked
        (lambda tid: frame(tid, bytes([4, 4, 0, 1, 0, 2])), "function 4"),
        (lambda tid: frame(tid, bytes([0x83])), "bad answer"),  # exception without a code
        (lambda tid: frame(tid, bytes([3])), "bad answer"),  # function code only
    ],
    ids=[
        "protocol-id",
        "short-length",
        "byte-count",
        "word-count",
        "function",
        "exception",
        "function-only",
    ],
)
async def test_garbled_answers_are_protocol_errors(
    answer: Callable[[int], bytes], match: str
) -> None:
    async def garbled(request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(answer(request[0]))
        await writer.drain()

    async with scripted(garbled) as (_, port):
        conn = await open_conn(port)
        start = time.monotonic()
        with pytest.raises(ProtocolError, match=match):
            await conn.read_registers(UNIT, 0, 2)
        assert time.monotonic() - start < 0.5  # at once, not at the timeout
        assert not is_open(conn)


async def test_exception_answer_keeps_the_connection() -> None:
    async def busy_then_fine(request: Request, writer: asyncio.StreamWriter) -> None:
        tid, unit, address, count = request
        if address == 0x9E20:
            writer.write(frame(tid, bytes([0x83, 6]), unit))
        else:
            writer.write(fc3_answer(tid, words_for(address, count), unit))
        await writer.drain()

    async with scripted(busy_then_fine) as (peer, port):
        conn = await open_conn(port)
        try:
            with pytest.raises(ModbusExceptionError, match="server device busy") as caught:
                await conn.read_registers(UNIT, 0x9E20, 2)
            assert caught.value.code == 6
            assert is_open(conn)
            assert words(await conn.read_registers(UNIT, 7, 1)) == [7]
            assert peer.connections == 1
        finally:
            conn.close()


async def test_peer_closing_mid_answer_fails_at_once() -> None:
    async def half_then_close(request: Request, writer: asyncio.StreamWriter) -> None:
        tid, unit, address, count = request
        writer.write(fc3_answer(tid, words_for(address, count), unit)[:10])
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()

    async with scripted(half_then_close) as (_, port):
        conn = await open_conn(port, seconds=3.0)
        start = time.monotonic()
        with pytest.raises(MeterConnectionError):
            await conn.read_registers(UNIT, 0, 10)
        assert time.monotonic() - start < 1.0
        assert not is_open(conn)
        with pytest.raises(MeterConnectionError):  # a lost connection refuses at once
            await conn.read_registers(UNIT, 0, 10)


async def test_nodelay_is_set() -> None:
    async with scripted(fine) as (_, port):
        conn = await open_conn(port)
        try:
            sock = conn._transport.get_extra_info("socket") if conn._transport else None
            assert sock is not None
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            conn.close()


async def test_connect_refused_and_bad_counts() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nobody listens
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
    with pytest.raises(MeterConnectionError, match="cannot connect"):
        await open_conn(port)
    async with scripted(fine) as (peer, port):
        conn = await open_conn(port)
        try:
            for count in (0, 126):
                with pytest.raises(ValueError, match="1 to 125"):
                    await conn.read_registers(UNIT, 0, count)
            assert peer.requests == []
            assert words(await conn.read_registers(UNIT, 0, 125)) == words_for(0, 125)
        finally:
            conn.close()


async def test_every_request_gets_its_full_timeout() -> None:
    async def delays(request: Request, writer: asyncio.StreamWriter) -> None:
        tid, unit, address, count = request
        if address == 99:
            return  # never answered
        await asyncio.sleep(address / 1000)  # the address says how many ms to wait
        writer.write(fc3_answer(tid, words_for(address, count), unit))
        await writer.drain()

    async with scripted(delays) as (_, port):
        conn = await open_conn(port, seconds=0.4)
        try:
            await conn.read_registers(UNIT, 0, 1)  # arms the connection's timer
            await asyncio.sleep(0.3)
            # Answered 0.55 s after the first request, within this one's own 0.4 s.
            assert words(await conn.read_registers(UNIT, 250, 1)) == [250]
            start = time.monotonic()
            with pytest.raises(MeterTimeoutError, match=r"no answer within 0\.4 s"):
                await conn.read_registers(UNIT, 99, 1)
            assert 0.39 <= time.monotonic() - start < 1.2
        finally:
            conn.close()


# ------------------------------------------------------------------ through MeterClient
async def test_client_reconnects_after_a_garbled_answer() -> None:
    answers = 0

    async def first_garbled(request: Request, writer: asyncio.StreamWriter) -> None:
        nonlocal answers
        answers += 1
        tid, unit, address, count = request
        if answers == 1:
            writer.write(frame(tid, bytes([3, 1, 0]), unit))
        else:
            writer.write(fc3_answer(tid, words_for(address, count), unit))
        await writer.drain()

    async with scripted(first_garbled) as (peer, port):
        async with MeterClient(HOST, port, unit=UNIT, timeout=1.0) as client:
            with pytest.raises(ProtocolError):
                await client.read_registers(0x100, 3)
            assert not is_open(client)
            assert await client.read_registers(0x100, 3) == [0x100, 0x101, 0x102]
            assert is_open(client)
        assert peer.connections == 2


async def test_client_cancelled_mid_request_starts_afresh() -> None:
    async def slow_first(request: Request, writer: asyncio.StreamWriter) -> None:
        tid, unit, address, count = request
        if address == 1:
            await asyncio.sleep(0.3)
        writer.write(fc3_answer(tid, words_for(address, count), unit))
        await writer.drain()

    async with scripted(slow_first) as (peer, port):
        async with MeterClient(HOST, port, unit=UNIT, timeout=2.0) as client:
            task = asyncio.create_task(client.read_registers(1, 2))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not is_open(client)
            assert await client.read_registers(2, 2) == [2, 3]
        assert peer.connections == 2


# ------------------------------------------------------------------ against the emulator
async def test_exception_drop_and_timeout_recovery(emulator: Start, make_meter: Start) -> None:
    meter = make_meter()
    (port,) = await emulator(meter)
    conn = await open_conn(port, seconds=0.3)
    try:
        assert words(await conn.read_registers(UNIT, 0xC350, 4)) == [0x53, 0x4F, 0x43, 0x4F]
        meter.faults.exception(2)
        with pytest.raises(ModbusExceptionError) as caught:
            await conn.read_registers(UNIT, 0xC350, 4)
        assert caught.value.code == 2
        assert is_open(conn)
        meter.faults.clear()
        meter.faults.delay(0.6)
        with pytest.raises(MeterTimeoutError):
            await conn.read_registers(UNIT, 0xC350, 4)
        assert not is_open(conn)
    finally:
        conn.close()
    meter.faults.clear()
    conn = await open_conn(port, seconds=2.0)
    try:
        assert words(await conn.read_registers(UNIT, 0xC350, 2)) == [0x53, 0x4F]
        meter.faults.delay(1.5)
        pending = asyncio.create_task(conn.read_registers(UNIT, 0xC350, 2))
        await asyncio.sleep(0.1)
        start = time.monotonic()
        assert meter.faults.drop_connections() == 1
        with pytest.raises(MeterConnectionError):
            await pending
        assert time.monotonic() - start < 1.0  # the drop is seen at once
    finally:
        conn.close()


async def test_commands_use_one_connection_at_a_time(emulator: Start, make_meter: Start) -> None:
    meter = make_meter()
    (port,) = await emulator(meter)
    async with MeterClient(HOST, port, unit=UNIT, timeout=2.0) as client:
        await client.read(["voltage_l1"])
        await client.set_tariff(2)  # written through pymodbus, read back on the lean path
        assert meter.tariff == 2
        await asyncio.sleep(0.1)  # let the emulator notice the write connection's close
        assert meter.faults.drop_connections() == 1
        await asyncio.sleep(0.05)
        assert not is_open(client)
        assert (await client.read(["tariff"])).values == {"tariff": 2}
