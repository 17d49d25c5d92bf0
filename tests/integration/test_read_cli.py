"""``countis-bridge read`` as a real process against ``countis-bridge emulate`` and others."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator

import pymodbus.datastore as datastore
import pytest
from countis.catalogue import VALUE_KEYS
from pymodbus.server import ModbusTcpServer

from countis_bridge.ports import free_port, port_open

HOST = "127.0.0.1"
IDENTITY_KEYS = {
    "vendor",
    "product_name",
    "extended_name",
    "model",
    "serial_number",
    "firmware_version",
    "table_version",
    "mid",
}


async def run_cli(*args: str, within: float = 20.0) -> tuple[int, str, str]:
    """Run ``countis-bridge ARGS`` without blocking the event loop (servers may run in it)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "countis_bridge",
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), within)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture(scope="module")
def emulate_process() -> Iterator[int]:
    """``countis-bridge emulate`` in its own process on a free port."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "countis_bridge", "emulate", "--port", str(port), "--unit", "5",
         "--model", "E28", "--serial", "21170A0100042", "--profile", "constant", "--seed", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while not port_open(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                _, err = proc.communicate()
                pytest.fail(f"emulator did not start: {err.decode()}")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def assert_one_line_error(code: int, out: str, err: str, expected_code: int) -> None:
    assert code == expected_code, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("countis-bridge read: error: ")


async def test_read_json_prints_the_contract(emulate_process: int) -> None:
    code, out, err = await run_cli("read", f"{HOST}:{emulate_process}", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc) == {"identity", "values"}
    assert set(doc["identity"]) == IDENTITY_KEYS
    assert doc["identity"]["serial_number"] == "21170A0100042"
    assert doc["identity"]["model"] == "E28"
    assert doc["identity"]["mid"] is True
    values = doc["values"]
    assert set(values) == set(VALUE_KEYS)
    for key, value in values.items():
        if key == "phase_sequence":
            assert value in {"123", "132", "unknown"}
        else:
            assert isinstance(value, int | float), key
            assert not isinstance(value, bool), key
    assert values["tariff"] in {1, 2}
    assert 200 < values["voltage_l1"] < 260
    assert 49 < values["frequency"] < 51


async def test_read_table(emulate_process: int) -> None:
    code, out, err = await run_cli("read", f"{HOST}:{emulate_process}", "--unit", "5")
    assert code == 0, err
    assert out.startswith("COUNTIS E28  serial 21170A0100042")
    for header in ("rt - Realtime", "tot - Total", "Tar.1 - Tariff 1", "Tar.2 - Tariff 2",
                   "Par.b - Partial & balance", "Info - Meter information"):  # fmt: skip
        assert f"\n{header}\n" in out
    assert " V\n" in out
    assert " kWh\n" in out


async def test_read_closed_port_fails_in_one_line() -> None:
    code, out, err = await run_cli("read", f"{HOST}:{free_port()}", "--timeout", "1")
    assert_one_line_error(code, out, err, 1)
    assert "cannot connect" in err


async def test_read_wrong_unit_fails_in_one_line(emulate_process: int) -> None:
    code, out, err = await run_cli(
        "read", f"{HOST}:{emulate_process}", "--unit", "9", "--timeout", "0.5"
    )
    assert_one_line_error(code, out, err, 1)
    assert "no answer" in err


@pytest.fixture
async def zero_server() -> AsyncIterator[int]:
    """A plain pymodbus server (not a COUNTIS) answering zeros everywhere, any unit id."""
    # pymodbus renamed the device context class; take whichever this version has.
    context_class = getattr(datastore, "ModbusDeviceContext", None) or datastore.ModbusSlaveContext
    block = datastore.ModbusSequentialDataBlock(1, [0] * 0xFFFF)  # wire addresses 0..0xFFFE
    context = datastore.ModbusServerContext(context_class(hr=block), True)
    port = free_port()
    server = ModbusTcpServer(context, address=(HOST, port))
    await server.serve_forever(background=True)
    try:
        deadline = time.monotonic() + 5
        while not port_open(port):
            assert time.monotonic() < deadline, "pymodbus server did not start"
            await asyncio.sleep(0.02)
        yield port
    finally:
        await server.shutdown()


async def test_read_non_countis_fails_in_one_line(zero_server: int) -> None:
    code, out, err = await run_cli("read", f"{HOST}:{zero_server}", "--timeout", "2")
    assert_one_line_error(code, out, err, 3)
    assert "Socomec" in err


async def test_read_bad_target_is_a_usage_error() -> None:
    code, out, err = await run_cli("read", "[::1:502")
    assert_one_line_error(code, out, err, 2)
