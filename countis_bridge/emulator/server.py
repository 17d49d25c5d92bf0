"""Serve emulated meters over Modbus TCP with pymodbus's server, one port per meter.

pymodbus does the TCP listening, the MBAP framing and the connection bookkeeping. The
meter semantics (``modbus.py``) and the faults live in our own request PDUs, registered
with a request decoder (``DecodePDU.register``, what the ``custom_pdu`` option does) for
every function code: FC3/6/16 answer from the meter, every other code answers exception 1.
Each PDU hands the request to the server's datastore context, which is ours
(``_Context``): it knows the meter. Both are set as the server's ``decoder`` and
``context`` attributes, which the request handler of every connection reads; the decoder
is shared by all servers of the process (a fleet of 1,000 meters otherwise carries
150,000 extra objects for the garbage collector to walk).

Version handling (pymodbus 3.8.3 ... 3.16+), all in this module:

* the PDUs implement both datastore hooks: ``update_datastore(context)`` (3.8) and
  ``datastore_update(context, device_id)`` (3.9+);
* the context answers both lookups: ``context[unit]`` + ``slaves()`` (3.8) and
  ``device_ids()`` (3.9+);
* 3.8 takes any context object; newer versions accept only their own simulator types
  in the constructor, so the server gets a placeholder ``SimDevice`` and then our
  context;
* the unit-id keywords differ (``ignore_missing_slaves`` / ``ignore_missing_devices``),
  as does the "no such unit" exception the request handler swallows silently: both are
  looked up from the installed pymodbus.

Faults: ``no_answer`` raises that "no such unit" exception, so pymodbus sends nothing;
``delay`` awaits inside the PDU before answering (requests of other connections keep
being served); ``exception`` answers with the code; ``drop_connections`` closes the
server's active connections (the listener stays, new connections are accepted). No
extra asyncio layer is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import struct
from collections.abc import Sequence
from types import TracebackType
from typing import Any, cast

import pymodbus
from countis.errors import ConfigError
from pymodbus.pdu import DecodePDU, ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.server import requesthandler as _handler

from countis_bridge.durable import write_json_durably
from countis_bridge.emulator import modbus
from countis_bridge.emulator.meter import EmulatedMeter

_LOG = logging.getLogger(__name__)
# The "no such unit" exception the request handler swallows (renamed in 3.9).
_NoSuchUnit = cast(
    "type[Exception]",
    getattr(_handler, "NoSuchIdException", None)
    or getattr(_handler, "NoSuchSlaveException", Exception),
)
_SERVER_PARAMS = inspect.signature(ModbusTcpServer.__init__).parameters
_IGNORE_MISSING = (
    "ignore_missing_devices"
    if "ignore_missing_devices" in _SERVER_PARAMS
    else "ignore_missing_slaves"
)
_HH = struct.Struct(">HH")
_HHB = struct.Struct(">HHB")


class _Silence(logging.Filter):
    """Drop pymodbus errors that are the emulator's faults working as intended.

    pymodbus 3.8 logs an error for every request it swallows (``no_answer``), and every
    version logs one when a delayed answer finds its connection dropped.
    """

    EXPECTED = ("does not exist", "Cancel send, because not connected")

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every other record."""
        message = record.getMessage()
        return not any(text in message for text in self.EXPECTED)


logging.getLogger("pymodbus.logging").addFilter(_Silence())


class _Reply(ModbusPDU):
    """A ready answer: function code (| 0x80 for exceptions) and the payload bytes."""

    def __init__(self, function_code: int, payload: bytes) -> None:
        super().__init__()
        self.function_code = function_code
        self.payload = payload

    def encode(self) -> bytes:
        """The payload, as built."""
        return self.payload


def _exception(function_code: int, code: int) -> _Reply:
    return _Reply(function_code | 0x80, bytes((code,)))


class _Request(ModbusPDU):
    """Base of our request PDUs: pymodbus calls a datastore hook, we answer."""

    function_code = 0

    def decode(self, data: bytes) -> None:
        """Keep nothing (unsupported function codes)."""

    def answer(self, meter: EmulatedMeter, broadcast: bool) -> _Reply | None:
        """The answer (None for broadcasts): here, exception 1."""
        if broadcast:
            return None
        return _exception(self.function_code, modbus.ExceptionCode.ILLEGAL_FUNCTION)

    # Typed Any: the hooks' declared types differ between pymodbus versions.
    async def update_datastore(self, context: Any) -> Any:
        """Answer the request (the hook of pymodbus 3.8)."""
        return await context.handle(self)

    async def datastore_update(self, context: Any, device_id: int) -> Any:
        """Answer the request (the hook of pymodbus 3.9+)."""
        return await context.handle(self)


class _ReadHolding(_Request):
    """FC3: the hot path (request -> bytes of the cached block)."""

    function_code = modbus.READ_HOLDING

    def decode(self, data: bytes) -> None:
        """Address and count, unchecked (the meter answers bad counts itself)."""
        self.address, self.count = _HH.unpack_from(data)

    def answer(self, meter: EmulatedMeter, broadcast: bool) -> _Reply | None:
        """Register bytes, or exception 3 (count) / 2 (address)."""
        if broadcast:
            return None
        code = modbus.check_read(self.count)
        if code is not None:
            return _exception(3, code)
        data = meter.frame().read(self.address, self.count)
        if data is None:
            return _exception(3, modbus.ExceptionCode.ILLEGAL_ADDRESS)
        return _Reply(3, bytes((len(data),)) + data)


class _Write(_Request):
    """Common part of FC6 and FC16."""

    values: Sequence[int] = ()

    def _reply(self) -> bytes:
        raise NotImplementedError

    def answer(self, meter: EmulatedMeter, broadcast: bool) -> _Reply | None:
        """Apply the write (checked as a whole first) and echo it."""
        if broadcast:
            if modbus.broadcast_applies(self.address, self.values):
                meter.apply_write(self.address, self.values)
            return None
        code = modbus.check_write(self.address, self.values)
        if code is not None:
            return _exception(self.function_code, code)
        meter.apply_write(self.address, self.values)
        return _Reply(self.function_code, self._reply())


class _WriteSingle(_Write):
    """FC6: one register."""

    function_code = modbus.WRITE_SINGLE

    def decode(self, data: bytes) -> None:
        """Address and value."""
        self.address, value = _HH.unpack_from(data)
        self.values = (value,)

    def _reply(self) -> bytes:
        return _HH.pack(self.address, self.values[0])


class _WriteMultiple(_Write):
    """FC16: several registers (a count/byte-count mismatch writes nothing: exception 3)."""

    function_code = modbus.WRITE_MULTIPLE

    def decode(self, data: bytes) -> None:
        """Address, count and the values."""
        self.address, count, size = _HHB.unpack_from(data)
        payload = data[5 : 5 + size]
        self.values = struct.unpack(f">{len(payload) // 2}H", payload)
        if size != 2 * count or len(self.values) != count:
            self.values = ()  # checked as "no words" -> exception 3

    def _reply(self) -> bytes:
        return _HH.pack(self.address, len(self.values))


def _unsupported(code: int) -> type[_Request]:
    return type(f"_Unsupported{code:02X}", (_Request,), {"function_code": code})


_PDUS: tuple[type[ModbusPDU], ...] = (
    _ReadHolding,
    _WriteSingle,
    _WriteMultiple,
    *(_unsupported(fc) for fc in range(1, 0x80) if fc not in modbus.SUPPORTED_FUNCTIONS),
)


class _Context:
    """The datastore context pymodbus sees: the meters behind one port, by unit id.

    One meter per port, or several (a gateway: distinct unit ids on one port, where a
    broadcast, unit 0, reaches every meter and nobody answers).
    """

    def __init__(self, meters: Sequence[EmulatedMeter]) -> None:
        self.units = {meter.unit_id: meter for meter in meters}
        self.delayed: set[asyncio.Task[Any]] = set()  # answers asleep in a delay fault
        self._broadcast: _Request | None = None  # the last broadcast request applied

    def slaves(self) -> list[int]:
        """Unit ids served (pymodbus 3.8; broadcasts go to these)."""
        return list(self.units)

    def device_ids(self) -> list[int]:
        """Unit ids served (pymodbus 3.9+)."""
        return list(self.units)

    def __getitem__(self, unit: int) -> _Context:
        """The unit's context (pymodbus 3.8 looks it up); other unit ids get no answer."""
        if unit not in self.units and unit != modbus.BROADCAST:
            raise _NoSuchUnit(f"unit {unit}")
        return self

    async def handle(self, request: _Request) -> _Reply | None:
        """Route to the unit's meter (every meter for a broadcast), then answer."""
        if request.dev_id == modbus.BROADCAST:
            # pymodbus hands a broadcast over once per unit id served: apply it once.
            if request is not self._broadcast:
                self._broadcast = request
                for each in self.units.values():
                    await self._answer(each, request, broadcast=True)
            return None  # nobody answers a broadcast
        unit = self.units.get(request.dev_id)
        if unit is None:
            raise _NoSuchUnit(f"unit {request.dev_id}")  # no answer (3.9+ path)
        return await self._answer(unit, request, broadcast=False)

    async def _answer(
        self, meter: EmulatedMeter, request: _Request, *, broadcast: bool
    ) -> _Reply | None:
        """Apply the meter's communication faults, then its answer."""
        faults = meter.faults
        if faults.active:
            if faults.silent:
                if broadcast:
                    return None
                raise _NoSuchUnit("no_answer fault")  # pymodbus drops it silently
            if faults.delay_seconds:
                await self._sleep(faults.delay_seconds)
            if code := faults.exception_code:
                return None if broadcast else _exception(request.function_code, code)
        return request.answer(meter, broadcast)

    async def _sleep(self, seconds: float) -> None:
        """Sleep in the handler's task, known to the server so that its exit can cancel it."""
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - pymodbus always runs handlers in tasks
            await asyncio.sleep(seconds)
            return
        self.delayed.add(task)
        try:
            await asyncio.sleep(seconds)
        finally:
            self.delayed.discard(task)

    async def cancel_delayed(self) -> None:
        """Cancel the answers still asleep (server exit: nothing is left running)."""
        tasks = list(self.delayed)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


_DECODER: Any = None


def _decoder() -> Any:
    """One request decoder with our PDUs, shared by every server of the process.

    Passing ``custom_pdu`` would give each server its own copy of the function-code
    table (about 150 objects per meter, which a fleet's garbage collector then walks).
    """
    global _DECODER  # noqa: PLW0603 - built once, on first use
    if _DECODER is None:
        _DECODER = DecodePDU(True)
        for pdu in _PDUS:
            _DECODER.register(pdu)
    return _DECODER


def _placeholder(unit: int) -> Any:
    """The constructor's context: ours for 3.8, a simulator device for newer versions."""
    try:
        from pymodbus.simulator import DataType, SimData, SimDevice  # noqa: PLC0415
    except ImportError:
        return None
    return SimDevice(id=unit, simdata=[SimData(0, values=0, datatype=DataType.REGISTERS)])


async def _start(
    meters: Sequence[EmulatedMeter], host: str, port: int
) -> tuple[Any, _Context, int]:
    context = _Context(meters)
    placeholder = _placeholder(meters[0].unit_id)
    server_class: Any = ModbusTcpServer  # its parameter names and types vary by version
    server = server_class(
        placeholder if placeholder is not None else context,
        address=(host, port),
        broadcast_enable=True,
        **{_IGNORE_MISSING: True},
    )
    # The request handler of each new connection reads both attributes.
    server.context = context
    server.decoder = _decoder()
    try:
        await server.serve_forever(background=True)
    except RuntimeError as err:  # 3.9+: "Could not start listen"
        msg = f"cannot listen on {host}:{port} ({err})"
        raise ConfigError(msg) from err
    if not server.transport:  # 3.8 returns without listening
        msg = f"cannot listen on {host}:{port} (address in use?)"
        raise ConfigError(msg)
    bound = int(server.transport.sockets[0].getsockname()[1])
    return server, context, bound


def _dropper(server: Any) -> Any:
    def drop() -> int:
        connections = list(server.active_connections.values())
        for connection in connections:
            connection.close()
        return len(connections)

    return drop


class EmulatorServer:
    """Serve meters on ``host``: ports ``port, port+1, ...`` (``port=0``: free ports).

    ``gateway``: all meters behind one port instead, by unit id (as behind a Modbus
    gateway; their unit ids must differ). Saves every meter's state every
    ``save_interval`` seconds and on exit.
    """

    def __init__(
        self,
        meters: Sequence[EmulatedMeter],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        save_interval: float = 60.0,
        gateway: bool = False,
    ) -> None:
        """Remember what to serve; nothing starts before ``async with``."""
        self.meters = list(meters)
        self.gateway = gateway
        if gateway and len({m.unit_id for m in self.meters}) != len(self.meters):
            msg = "meters behind one gateway need distinct unit ids"
            raise ConfigError(msg)
        self.host = host
        self.port = port
        self.save_interval = save_interval
        self.ports: list[int] = []
        self._servers: list[Any] = []
        self._contexts: list[_Context] = []
        self._undrop: list[Any] = []
        self._saver: asyncio.Task[None] | None = None

    async def __aenter__(self) -> EmulatorServer:
        """Start one pymodbus server per meter and log where each listens."""
        groups = [self.meters] if self.gateway else [[m] for m in self.meters]
        try:
            for index, group in enumerate(groups):
                port = self.port + index if self.port else 0
                server, context, bound = await _start(group, self.host, port)
                self._servers.append(server)
                self._contexts.append(context)
                self._undrop += [m.faults.add_dropper(_dropper(server)) for m in group]
                self.ports += [bound] * len(group)
            for index, (meter, bound) in enumerate(zip(self.meters, self.ports, strict=True)):
                _LOG.info(
                    "meter %d/%d COUNTIS %s serial %s unit %d listening on %s:%d",
                    index + 1,
                    len(self.meters),
                    meter.model,
                    meter.serial,
                    meter.unit_id,
                    self.host,
                    bound,
                )
        except BaseException:
            await self._stop_servers()
            raise
        if any(m.state_file is not None for m in self.meters):
            self._saver = asyncio.create_task(self._save_loop(), name="emulator state saver")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop serving and save every meter's state."""
        if self._saver is not None:
            self._saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._saver
        await self._stop_servers()
        for meter in self.meters:
            meter.save_state()

    async def _stop_servers(self) -> None:
        for undo in self._undrop:
            undo()
        self._undrop.clear()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.shutdown()
        for context in self._contexts:
            await context.cancel_delayed()
        self._servers.clear()
        self._contexts.clear()

    async def _save_loop(self) -> None:
        while True:
            await asyncio.sleep(self.save_interval)
            for meter in self.meters:
                if meter.state_file is not None:
                    state = meter.state()
                    await asyncio.to_thread(_write, meter, state)


def _write(meter: EmulatedMeter, state: dict[str, Any]) -> None:
    assert meter.state_file is not None
    try:
        write_json_durably(meter.state_file, state)
    except OSError as err:
        _LOG.warning("cannot save the state of %s to %s: %s", meter, meter.state_file, err)


PYMODBUS_VERSION: str = pymodbus.__version__
