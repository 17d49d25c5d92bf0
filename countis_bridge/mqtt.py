"""The MQTT connection: the only module that imports aiomqtt (and, through it, paho).

One :class:`MqttConnection` is one session with the broker: it connects with the bridge's
last will (``<base>/bridge/availability`` = ``offline``, retained), publishes the birth
message (``online``) once connected, and on a clean exit publishes ``offline`` itself
(the broker only sends the will when the connection dies). Reconnection is the caller's
business (the service retries with backoff and opens a new connection).

Every aiomqtt error is translated into :class:`BrokerConnectionError` at this boundary.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import aiomqtt
import paho.mqtt.client as paho
from countis.errors import CountisError

from countis_bridge.ports import MQTT_PORT

ONLINE = b"online"
OFFLINE = b"offline"
#: Longest wait of each step of a clean exit (the offline publish, then the disconnect).
STOP_TIMEOUT_S = 2.0


class BrokerConnectionError(CountisError):
    """The MQTT broker cannot be reached, refused us, or the connection was lost."""


def _mapping_default(obj: object) -> object:
    """Serialise read-only mappings (``MeterReading.values`` is a MappingProxyType)."""
    if isinstance(obj, Mapping):
        return dict(obj)
    msg = f"cannot serialise {type(obj).__name__} to JSON"
    raise TypeError(msg)


def _dump_stdlib(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=_mapping_default).encode()


try:  # orjson is the "fast" extra: several times faster, and bytes out directly
    import orjson
except ImportError:  # pragma: no cover - exercised only without the extra
    dump_json = _dump_stdlib
else:

    def dump_json(obj: object) -> bytes:
        """Compact JSON bytes; numbers stay numbers (orjson when installed, else json).

        Copied to an exact-size object: orjson hands back its whole 64 KiB working buffer,
        which a retained state (one per meter, another in flight until the broker's PUBACK)
        would keep alive; at 1,000 meters that was some 60 MB of RSS.
        """
        return bytes(memoryview(orjson.dumps(obj, default=_mapping_default)))


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsOptions:
    """TLS to the broker; ``insecure`` skips certificate and host name checks."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerOptions:
    """Where and how to connect (plain values: settings are parsed at the edge)."""

    host: str = "127.0.0.1"
    port: int = MQTT_PORT
    username: str | None = None
    password: str | None = None
    client_id: str | None = None
    keepalive: int = 60
    qos: int = 1
    tls: TlsOptions | None = None
    timeout: float = 10.0
    # QoS 1 messages on the wire awaiting PUBACK; more are queued by paho. A wide window
    # keeps a fleet's state bursts flowing instead of waiting for each acknowledgement.
    max_inflight: int = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class Incoming:
    """A message received on a subscribed topic."""

    topic: str
    payload: bytes
    retain: bool


async def _end(requests: set[asyncio.Task[object]]) -> None:
    """Cancel ``requests`` and wait for them (their outcome no longer matters)."""
    for request in requests:
        request.cancel()
    await asyncio.gather(*requests, return_exceptions=True)


def tls_context(tls: TlsOptions) -> ssl.SSLContext:
    """An SSL context for the broker (reads certificate files: call once per connect)."""
    try:
        context = ssl.create_default_context(cafile=tls.ca_file)
        if tls.cert_file:
            context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as err:
        msg = f"MQTT TLS files: {err}"
        raise BrokerConnectionError(msg) from err
    if tls.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class MqttConnection:
    """One broker session with LWT and birth; an async context manager.

    ``availability_topic`` carries ``online`` while connected and ``offline`` otherwise
    (retained; the will covers a crash).
    """

    def __init__(self, options: BrokerOptions, *, availability_topic: str) -> None:
        """Keep the options; nothing happens before ``async with``."""
        self.options = options
        self.availability_topic = availability_topic
        self._client: aiomqtt.Client | None = None
        self._subscribing: set[asyncio.Task[object]] = set()  # see subscribe()

    @property
    def client(self) -> aiomqtt.Client:
        """The connected aiomqtt client (only inside ``async with``)."""
        if self._client is None:
            msg = "not connected to the MQTT broker"
            raise BrokerConnectionError(msg)
        return self._client

    def _make_client(self) -> aiomqtt.Client:
        opts = self.options
        tls = tls_context(opts.tls) if opts.tls is not None else None
        client = aiomqtt.Client(
            opts.host,
            opts.port,
            username=opts.username,
            password=opts.password,
            identifier=opts.client_id,
            keepalive=opts.keepalive,
            timeout=opts.timeout,
            will=aiomqtt.Will(self.availability_topic, OFFLINE, qos=opts.qos, retain=True),
            tls_context=tls,
            tls_insecure=opts.tls.insecure if opts.tls is not None else None,
            max_inflight_messages=opts.max_inflight,
            # Neither paho nor aiomqtt disables Nagle: without this every small state
            # message waits for the previous one's ACK (p99 latency tens of ms, not 1-2 ms).
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
        )
        # aiomqtt warns on more than 10 outstanding calls; a fleet has one per meter.
        client.pending_calls_threshold = 1 << 30
        return client

    async def __aenter__(self) -> Self:
        """Connect, then publish the birth message."""
        client = self._make_client()
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as err:
            msg = f"cannot connect to MQTT broker {self.options.host}:{self.options.port}: {err}"
            raise BrokerConnectionError(msg) from err
        self._client = client
        await self.publish(self.availability_topic, ONLINE)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Say ``offline`` when leaving on purpose, then disconnect (each step bounded).

        When ``offline`` is not acknowledged in time (a broker that stopped answering, or
        the message still queued behind the QoS 1 in-flight window), no DISCONNECT is
        sent: the will stays armed and the broker publishes it when the socket closes.
        """
        client, self._client = self._client, None
        if client is None:
            return
        # aiomqtt waits ``client.timeout`` for its disconnect: a stop must not hang there.
        client.timeout = min(self.options.timeout, STOP_TIMEOUT_S)
        try:
            if exc_type is None or not issubclass(exc_type, BrokerConnectionError):
                await client.publish(
                    self.availability_topic,
                    OFFLINE,
                    qos=self.options.qos,
                    retain=True,
                    timeout=client.timeout,
                )
            await client.__aexit__(exc_type, exc, tb)
        except aiomqtt.MqttError:
            pass  # the connection is gone or stuck: the broker publishes the will
        finally:
            await _end(self._subscribing)  # no SUBACK can come any more

    @property
    def tcp_nodelay(self) -> bool:
        """Whether Nagle's algorithm is off on the broker socket (for tests/diagnostics)."""
        sock = self._paho.socket()
        if not isinstance(sock, socket.socket):
            return False
        return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    @property
    def _paho(self) -> paho.Client:
        # aiomqtt does not expose its paho client; pinned aiomqtt<3 keeps it at ``_client``.
        return self.client._client

    async def publish(
        self, topic: str, payload: bytes | str, *, retain: bool = True, qos: int | None = None
    ) -> None:
        """Publish and wait until the broker has it (PUBACK for QoS 1)."""
        try:
            await self.client.publish(
                topic, payload, qos=self.options.qos if qos is None else qos, retain=retain
            )
        except aiomqtt.MqttError as err:
            msg = f"MQTT publish to {topic} failed: {err}"
            raise BrokerConnectionError(msg) from err

    def publish_nowait(
        self, topic: str, payload: bytes | str, *, retain: bool = True, qos: int | None = None
    ) -> None:
        """Hand a message to the in-flight window and return without awaiting its ACK.

        The poll loops use this so a slow broker never stalls a meter's schedule; paho
        sends, acknowledges and (within this session) retries QoS 1 messages itself.
        """
        info = self._paho.publish(topic, payload, self.options.qos if qos is None else qos, retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            msg = f"MQTT publish to {topic} failed: {paho.error_string(info.rc)}"
            raise BrokerConnectionError(msg)

    async def publish_json(self, topic: str, obj: object, *, retain: bool = True) -> None:
        """Publish ``obj`` as compact JSON."""
        await self.publish(topic, dump_json(obj), retain=retain)

    async def clear(self, topics: Iterable[str]) -> None:
        """Remove retained messages (an empty retained payload deletes them)."""
        for topic in topics:
            await self.publish(topic, b"", retain=True)

    async def subscribe(self, *topics: str) -> None:
        """Subscribe to ``topics`` with the configured QoS."""
        if not topics:
            return
        request = asyncio.ensure_future(
            self.client.subscribe([(topic, self.options.qos) for topic in topics])
        )
        # Cancelled before the broker's SUBACK (a stop right after connecting), aiomqtt
        # would forget the request and log the SUBACK that still arrives as an error. So
        # the request waits on, shielded, for its SUBACK or the disconnect (__aexit__
        # collects every request of the connection: one per broker session).
        self._subscribing.add(request)
        try:
            await asyncio.shield(request)
        except aiomqtt.MqttError as err:
            msg = f"MQTT subscribe failed: {err}"
            raise BrokerConnectionError(msg) from err

    async def messages(self) -> AsyncIterator[Incoming]:
        """Incoming messages until the connection drops (then BrokerConnectionError)."""
        try:
            async for message in self.client.messages:
                payload = message.payload
                yield Incoming(
                    topic=message.topic.value,
                    payload=payload if isinstance(payload, bytes) else str(payload).encode(),
                    retain=message.retain,
                )
        except aiomqtt.MqttError as err:
            msg = f"lost the MQTT broker: {err}"
            raise BrokerConnectionError(msg) from err
        # The iterator only ends by disconnection.
        msg = "lost the MQTT broker"
        raise BrokerConnectionError(msg)
