"""A Modbus TCP proxy that injects faults between the bridge and an emulated meter.

It forwards whole MBAP frames both ways and, while a fault mode is set, spoils them the
way a network, a gateway or a meter can: connection resets, connections refused (reset
at once), black holes (requests swallowed, the connection kept), answers late (beyond the
client's timeout) or slow (within it), duplicated answers, answers with a wrong
transaction id, truncated frames (kept open, or followed by a close), Modbus exception
responses and bytes that are no Modbus frame at all. Outside those modes a background
``drizzle`` can duplicate a share of the answers, precede them with a stray copy under
another transaction id, or delay them a little (faults a client must take in its stride).
Every spoiled frame or connection is counted in :attr:`FaultProxy.injected` by kind.

Standard library only; it runs in the test's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections import Counter

HOST = "127.0.0.1"
_MBAP = struct.Struct(">HHHB")  # transaction id, protocol id, length, unit id
MODES = (
    "pass", "refuse", "black_hole", "late", "slow", "duplicate", "wrong_tid", "truncate",
    "truncate_close", "exception", "garbage",
)  # fmt: skip


def port_seed(port: int) -> int:
    """A seed per proxied meter (reproducible within one run)."""
    return port * 7919


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    """One MBAP frame (header and PDU); IncompleteReadError at the end of the stream."""
    header = await reader.readexactly(_MBAP.size)
    _, _, length, _ = _MBAP.unpack(header)
    return header + await reader.readexactly(max(length - 1, 0))


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), not a clean FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


class FaultProxy:
    """Listens on a free loopback port and forwards to ``target_port`` (``async with``)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.mode = "pass"
        self.late_s = 0.6  # "late": beyond the bridge's timeout
        self.slow_s = 0.05  # "slow": within it
        self.exception_code = 4
        #: Background faults while the mode is "pass": shares of the answers that are
        #: duplicated, preceded by a stray (another transaction id), slowed.
        self.drizzle = (0.0, 0.0, 0.0)
        self._random = random.Random(port_seed(target_port))
        self.injected: Counter[str] = Counter()
        self.attempts: list[float] = []  # loop time of each connection accepted
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, HOST, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._clients):
            reset(writer)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def set(self, mode: str) -> None:
        """Switch the fault mode (``pass``: none) for every frame from now on."""
        assert mode in MODES, mode
        self.mode = mode

    def reset_all(self) -> int:
        """Reset every open client connection now; returns how many."""
        count = len(self._clients)
        for writer in list(self._clients):
            reset(writer)
        self.injected["reset"] += count
        return count

    @property
    def total(self) -> int:
        """Faults injected so far, of every kind."""
        return sum(self.injected.values())

    def _background(self) -> str:
        roll = self._random.random()
        for kind, share in zip(("duplicate", "stray", "slow"), self.drizzle, strict=True):
            if roll < share:
                return kind
            roll -= share
        return "pass"

        # -- one client connection -----------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.attempts.append(asyncio.get_running_loop().time())
        if self.mode == "refuse":
            self.injected["refuse"] += 1
            reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.target_port)
        except OSError:
            reset(writer)
            return
        self._clients.add(writer)
        pumps = [
            asyncio.create_task(self._requests(reader, up_writer, writer)),
            asyncio.create_task(self._answers(up_reader, writer)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._tasks.difference_update(pumps)
            self._clients.discard(writer)
            up_writer.close()
            writer.close()

    async def _requests(
        self,
        reader: asyncio.StreamReader,
        upstream: asyncio.StreamWriter,
        client: asyncio.StreamWriter,
    ) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                frame = await read_frame(reader)
                if self.mode == "black_hole":
                    self.injected["black_hole"] += 1
                    continue  # swallowed: the client waits for its timeout
                if self.mode == "refuse":
                    self.injected["reset"] += 1
                    reset(client)
                    return
                upstream.write(frame)
                await upstream.drain()

    async def _answers(self, upstream: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                frame = await read_frame(upstream)
                if not await self._answer(frame, client):
                    return
                await client.drain()

    async def _answer(self, frame: bytes, client: asyncio.StreamWriter) -> bool:
        """Send ``frame`` to the client, spoiled by the current mode; False: connection over."""
        mode = self.mode
        if mode == "pass":
            mode = self._background()
        if mode in ("pass", "black_hole", "refuse"):  # requests already passed the gate
            client.write(frame)
            return True
        self.injected[mode] += 1
        tid, protocol, _, unit = _MBAP.unpack_from(frame)
        if mode in ("late", "slow"):
            await asyncio.sleep(self.late_s if mode == "late" else self.slow_s)
            client.write(frame)
        elif mode == "duplicate":
            client.write(frame + frame)
        elif mode in ("wrong_tid", "stray"):
            other = _MBAP.pack((tid + 0x100) & 0xFFFF, protocol, len(frame) - 6, unit)
            client.write(other + frame[_MBAP.size :])
            if mode == "stray":  # the real answer follows the stray
                client.write(frame)
        elif mode in ("truncate", "truncate_close"):
            client.write(frame[: max(_MBAP.size + 1, len(frame) // 2)])
            if mode == "truncate_close":
                await client.drain()
                client.close()
                return False
        elif mode == "exception":
            function = frame[_MBAP.size] | 0x80
            client.write(_MBAP.pack(tid, 0, 3, unit) + bytes((function, self.exception_code)))
        else:  # garbage: a header no Modbus TCP frame has (protocol id 0xBEEF)
            client.write(_MBAP.pack(tid, 0xBEEF, 5, unit) + b"\xde\xad\xbe\xef")
        return True
