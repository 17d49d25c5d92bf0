"""Minimal MQTT 3.1.1 over asyncio streams, hand-written for the benchmarks.

No MQTT library on purpose: the fleet benchmark's subscriber must cost little next to the
bridge it measures, and the floor benchmark (``floor.py``) needs the cheapest possible
publish path to compare the bridge against. Only what the benchmarks use is here:
CONNECT, PUBLISH (QoS 0/1, retain), SUBSCRIBE and a packet reader.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable

CONNACK = 0x20
PUBLISH = 0x30
PUBACK = 0x40
SUBACK = 0x90


def remaining_length(n: int) -> bytes:
    """MQTT variable-length encoding of a remaining length."""
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: bytes) -> bytes:
    return struct.pack(">H", len(s)) + s


def connect_packet(client_id: str, keepalive: int = 0) -> bytes:
    """CONNECT with a clean session; keepalive 0 = no PINGREQ needed."""
    body = _str(b"MQTT") + bytes((4, 0x02)) + struct.pack(">H", keepalive)
    body += _str(client_id.encode())
    return bytes((0x10,)) + remaining_length(len(body)) + body


def publish_header(topic: bytes, payload_len: int, qos: int, retain: bool, packet_id: int) -> bytes:
    """Fixed + variable header of a PUBLISH; the payload follows it on the wire."""
    flags = PUBLISH | (qos << 1) | (1 if retain else 0)
    var = _str(topic) + (struct.pack(">H", packet_id) if qos else b"")
    return bytes((flags,)) + remaining_length(len(var) + payload_len) + var


def subscribe_packet(packet_id: int, topic_filter: str, qos: int = 0) -> bytes:
    """SUBSCRIBE to one filter."""
    body = struct.pack(">H", packet_id) + _str(topic_filter.encode()) + bytes((qos,))
    return bytes((0x82,)) + remaining_length(len(body)) + body


def parse_publish(first: int, body: bytes) -> tuple[bytes, bytes, bool]:
    """``(topic, payload, retain)`` of a PUBLISH packet's body."""
    (tlen,) = struct.unpack_from(">H", body)
    topic = body[2 : 2 + tlen]
    start = 2 + tlen + (2 if first & 0x06 else 0)
    return topic, body[start:], bool(first & 0x01)


class PacketBuffer:
    """Splits a byte stream into ``(first byte, body)`` packets."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add received bytes; return every complete packet."""
        buf = self._buf
        buf += data
        packets: list[tuple[int, bytes]] = []
        pos = 0
        while True:
            # Decode the remaining length (1-4 bytes after the first byte).
            length, mult, i = 0, 1, pos + 1
            while i < len(buf):
                byte = buf[i]
                length += (byte & 0x7F) * mult
                mult *= 128
                i += 1
                if not byte & 0x80:
                    break
            else:
                break
            if i + length > len(buf):
                break
            packets.append((buf[pos], bytes(buf[i : i + length])))
            pos = i + length
        del buf[:pos]
        return packets


async def open_mqtt(
    host: str, port: int, client_id: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect, send CONNECT with TCP_NODELAY set, and wait for a good CONNACK."""
    async with asyncio.timeout(10.0):
        reader, writer = await asyncio.open_connection(host, port)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        writer.write(connect_packet(client_id))
        head = await reader.readexactly(4)
    if head[0] != CONNACK or head[3] != 0:
        writer.close()
        msg = f"MQTT CONNACK refused: {head!r}"
        raise ConnectionError(msg)
    return reader, writer


async def subscribe_loop(
    host: str,
    port: int,
    topic_filter: str,
    on_message: Callable[[bytes, bytes, bool], None],
    ready: asyncio.Event,
) -> None:
    """Subscribe (QoS 0) and call ``on_message(topic, payload, retain)`` until cancelled."""
    reader, writer = await open_mqtt(host, port, "bench-subscriber")
    try:
        writer.write(subscribe_packet(1, topic_filter))
        packets = PacketBuffer()
        while True:
            data = await reader.read(1 << 18)
            if not data:
                msg = "broker closed the subscriber connection"
                raise ConnectionError(msg)
            for first, body in packets.feed(data):
                kind = first & 0xF0
                if kind == PUBLISH:
                    on_message(*parse_publish(first, body))
                elif kind == SUBACK:
                    ready.set()
    finally:
        writer.close()
