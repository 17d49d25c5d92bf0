"""The emulated meter over real TCP on loopback, driven by a plain pymodbus client."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import struct
import time

import pytest
from countis.codec import decode
from countis.registers import BLOCKS, BY_NAME
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException

from countis_bridge.emulator import EmulatedMeter, EmulatorServer, ManualClock

HOST = "127.0.0.1"
HOUR = 3600.0
# The unit-id keyword was renamed in pymodbus 3.9 (slave -> device_id).
UNIT = (
    "device_id"
    if "device_id" in inspect.signature(AsyncModbusTcpClient.read_holding_registers).parameters
    else "slave"
)
ENERGY_BLOCKS = [
    b for b in BLOCKS if b.start < 0x9000 or b.start in (0xC650, 0xC6A0, 0xC700, 0xC800)
]


def meter(serial="21170A0100042", **kwargs):
    options = {"serial": serial, "profile": "constant", "clock": ManualClock(), "seed": 1}
    options.update(kwargs)
    return EmulatedMeter(**options)


@contextlib.asynccontextmanager
async def client(port, wait=1.0):
    modbus = AsyncModbusTcpClient(HOST, port=port, timeout=wait, retries=0)
    assert await modbus.connect()
    try:
        yield modbus
    finally:
        modbus.close()


async def read(modbus, address, count, unit=5):
    return await modbus.read_holding_registers(address, count=count, **{UNIT: unit})


async def value(modbus, name):
    reg = BY_NAME[name]
    answer = await read(modbus, reg.address, reg.words)
    assert not answer.isError(), answer
    return decode(reg.dtype, answer.registers)


async def raw_exchange(port, unit, pdu, wait=0.3):
    """Send one raw request; the answer's PDU, or None when nothing comes back."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(struct.pack(">HHHB", 9, 0, len(pdu) + 1, unit) + pdu)
        try:
            head = await asyncio.wait_for(reader.readexactly(7), wait)
        except TimeoutError:
            return None
        return await reader.readexactly(int.from_bytes(head[4:6], "big") - 1)
    finally:
        writer.close()


@pytest.fixture
async def served():
    """One meter (constant load, manual clock) on a free port: (meter, port)."""
    the_meter = meter()
    async with EmulatorServer([the_meter], host=HOST, port=0) as server:
        yield the_meter, server.ports[0]


async def test_every_block_reads_over_tcp(served):
    _, port = served
    async with client(port) as modbus:
        for block in BLOCKS:
            for start in range(block.start, block.end, 125):
                count = min(125, block.end - start)
                answer = await read(modbus, start, count)
                assert not answer.isError(), (block.name, answer)
                assert len(answer.registers) == count
        assert await value(modbus, "soco_signature") == "SOCO"
        assert await value(modbus, "extended_name") == "COUNTIS E28"
        assert await value(modbus, "serial_order") == 42
        assert await value(modbus, "phase1_voltage") == 23000


@pytest.mark.parametrize(
    ("address", "count", "code"),
    [
        (0x0000, 2, 2),  # outside every block
        (0xC34F, 2, 2),  # just before the identification block
        (0x6700, 34, 2),  # spans two adjacent blocks
        (0xC58C, 4, 2),  # runs past the end of its block
    ],
)
async def test_read_exceptions(served, address, count, code):
    _, port = served
    async with client(port) as modbus:
        answer = await read(modbus, address, count)
        assert answer.isError()
        assert answer.exception_code == code
        assert not (await read(modbus, 0xC558, 2)).isError()  # the connection stays usable


async def test_reads_over_125_words_and_empty_reads(served):
    """pymodbus clients refuse to send these: raw frames."""
    _, port = served
    for count in (126, 0):
        answer = await raw_exchange(port, 5, struct.pack(">BHH", 3, 0x4F00, count))
        assert answer == bytes([0x83, 3])


async def test_fc4_is_not_supported(served):
    _, port = served
    async with client(port) as modbus:
        answer = await modbus.read_input_registers(0xC558, count=2, **{UNIT: 5})
        assert answer.isError()
        assert answer.exception_code == 1


async def test_writes_fc6_fc16_and_their_exceptions(served):
    the_meter, port = served
    async with client(port) as modbus:
        assert not (await modbus.write_register(0x9E21, 2, **{UNIT: 5})).isError()
        assert await value(modbus, "tariff_in_progress") == 2
        assert await value(modbus, "tariff_in_progress_c800") == 2
        assert not (await modbus.write_registers(0x9E21, [1], **{UNIT: 5})).isError()
        assert await value(modbus, "tariff_in_progress") == 1
        bad = await modbus.write_register(0x9E21, 3, **{UNIT: 5})
        assert bad.exception_code == 3
        read_only = await modbus.write_register(0xC558, 1, **{UNIT: 5})
        assert read_only.exception_code == 2
        locked = await modbus.write_register(0xE000, 9, **{UNIT: 5})
        assert locked.exception_code == 2
        mixed = await modbus.write_registers(0x9E20, [0, 2], **{UNIT: 5})
        assert mixed.exception_code == 2
        assert the_meter.tariff == 1  # nothing of a refused write is applied
        the_meter.clock.advance(HOUR)
        assert await value(modbus, "partial_ea_plus_10wh") == 621
        assert not (await modbus.write_register(0x9E40, 0x20, **{UNIT: 5})).isError()
        assert await value(modbus, "partial_ea_plus_10wh") == 0
        assert await value(modbus, "total_ea_plus_10wh") == 621
        the_meter.clock.advance(HOUR)
        assert not (await modbus.write_register(0xE222, 0x0008, **{UNIT: 5})).isError()
        assert await value(modbus, "partial_ea_plus_10wh") == 621  # only Ea- was reset


async def test_other_units_get_no_answer_and_broadcast_sets_the_tariff(served):
    the_meter, port = served
    read_pdu = struct.pack(">BHH", 3, 0xC558, 2)
    assert await raw_exchange(port, 7, read_pdu) is None
    assert await raw_exchange(port, 5, read_pdu) == bytes.fromhex("0304000059d8")
    tariff_2 = struct.pack(">BHH", 6, 0x9E21, 2)
    assert await raw_exchange(port, 0, tariff_2) is None  # broadcast: applied, no answer
    assert the_meter.tariff == 2
    reset = struct.pack(">BHH", 6, 0x9E40, 0x20)
    the_meter.clock.advance(HOUR)
    assert await raw_exchange(port, 0, reset) is None
    assert the_meter.values()["partial_energy_import"] == 6.21  # only the tariff broadcasts
    assert await raw_exchange(port, 5, struct.pack(">BHH", 1, 0, 8)) == bytes([0x81, 1])


async def test_exception_fault_answers_the_code_until_cleared(served):
    the_meter, port = served
    async with client(port) as modbus:
        the_meter.faults.exception(6)
        answer = await read(modbus, 0xC558, 2)
        assert answer.exception_code == 6
        assert (await modbus.write_register(0x9E21, 2, **{UNIT: 5})).exception_code == 6
        assert the_meter.tariff == 1
        the_meter.faults.exception(4)
        assert (await read(modbus, 0xC558, 2)).exception_code == 4
        the_meter.faults.clear()
        assert (await read(modbus, 0xC558, 2)).registers == [0, 23000]


async def test_no_answer_and_delay_faults(served):
    the_meter, port = served
    async with client(port, wait=0.3) as modbus:
        the_meter.faults.no_answer(True)
        with pytest.raises(ModbusIOException):
            await read(modbus, 0xC558, 2)
        the_meter.faults.clear()
    async with client(port, wait=2.0) as modbus:
        assert not (await read(modbus, 0xC558, 2)).isError()
        the_meter.faults.delay(0.4)
        started = time.monotonic()
        assert (await read(modbus, 0xC558, 2)).registers == [0, 23000]
        assert time.monotonic() - started >= 0.4
        the_meter.faults.delay(None)
        started = time.monotonic()
        assert not (await read(modbus, 0xC558, 2)).isError()
        assert time.monotonic() - started < 0.4


async def test_drop_closes_connections_and_accepts_new_ones(served):
    the_meter, port = served
    async with client(port) as modbus:
        assert not (await read(modbus, 0xC558, 2)).isError()
        assert the_meter.faults.drop_connections() == 1
        await asyncio.sleep(0.1)
        with pytest.raises((ConnectionException, ModbusIOException)):
            await read(modbus, 0xC558, 2)
    async with client(port) as modbus:
        assert not (await read(modbus, 0xC558, 2)).isError()


async def test_value_faults_over_tcp(served):
    the_meter, port = served
    clock = the_meter.clock
    async with client(port) as modbus:
        clock.advance(HOUR)
        the_meter.faults.freeze(True)
        clock.advance(HOUR)
        assert await value(modbus, "total_ea_plus_10wh") == 621
        the_meter.faults.freeze(False)
        assert await value(modbus, "total_ea_plus_10wh") == 1242
        the_meter.faults.zero_counters(True)
        assert await value(modbus, "total_ea_plus_10wh") == 0
        assert await value(modbus, "sum_ea_plus") == 0
        the_meter.faults.zero_counters(False)
        the_meter.faults.lower_counters(True)
        assert 0 < await value(modbus, "total_ea_plus_10wh") < 1242
        the_meter.faults.clear()
        assert await value(modbus, "total_ea_plus_10wh") == 1242


async def test_fleet_of_three_meters_on_distinct_ports():
    meters = [meter(serial=f"21170A01000{n}") for n in (11, 12, 13)]
    meters[1].set_tariff(2)
    async with EmulatorServer(meters, host=HOST, port=0) as server:
        assert len(set(server.ports)) == 3
        seen = []
        for port in server.ports:
            async with client(port) as modbus:
                seen.append(
                    (await value(modbus, "serial_order"), await value(modbus, "tariff_in_progress"))
                )
        assert seen == [(11, 1), (12, 2), (13, 1)]


async def _energy_image(port):
    """Every word of every energy block, as served."""
    image = {}
    async with client(port) as modbus:
        for block in ENERGY_BLOCKS:
            for start in range(block.start, block.end, 125):
                answer = await read(modbus, start, min(125, block.end - start))
                image[start] = answer.registers
    return image


async def test_restart_with_the_state_file_keeps_every_counter(tmp_path):
    path = tmp_path / "state.json"
    first = meter(profile="pv", state_file=path)
    async with EmulatorServer([first], host=HOST, port=0) as server:
        first.clock.advance(8 * HOUR)
        async with client(server.ports[0]) as modbus:
            await modbus.write_register(0x9E21, 2, **{UNIT: 5})
        first.clock.advance(8 * HOUR)  # into the PV export around midday
        first.partial_stop()
        before = await _energy_image(server.ports[0])
    assert path.exists()  # saved on exit
    assert first.values()["energy_export"] > 0
    again = meter(profile="pv", state_file=path)
    assert again.tariff == 2
    assert not again.partial_running
    async with EmulatorServer([again], host=HOST, port=0) as server:
        after = await _energy_image(server.ports[0])
    assert after == before
    assert any(any(words) for words in after.values())


async def test_server_exit_cancels_answers_asleep_in_a_delay():
    the_meter = meter()
    the_meter.faults.delay(30.0)
    async with EmulatorServer([the_meter], host=HOST, port=0) as server:
        reader, writer = await asyncio.open_connection(HOST, server.ports[0])
        writer.write(struct.pack(">HHHBBHH", 1, 0, 6, 5, 3, 0xC558, 2))
        await writer.drain()
        await asyncio.sleep(0.1)
        before = set(asyncio.all_tasks())
        assert len(before) > 1  # the handler's answer is asleep
    await asyncio.sleep(0)
    assert not [t for t in before if not t.done() and t is not asyncio.current_task()]
    assert await reader.read() == b""  # closed without an answer
    writer.close()
