"""The lean read path again on uvloop: the bridge's event loop with its "fast" extra.

uvloop's transports are not asyncio's classes (a first version checked for
``asyncio.Transport`` and failed only there), so the wire scenarios of
``test_modbus_tcp`` and a client round trip against the emulator run on a uvloop loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import uvloop
from countis.catalogue import VALUE_KEYS
from countis.client import MeterClient
from countis.errors import MeterTimeoutError

from countis_bridge.emulator import EmulatorServer
from tests.integration import test_modbus_tcp as lean

SCENARIOS: list[Callable[[], Awaitable[None]]] = [
    lean.test_answer_in_pieces,
    lean.test_several_frames_in_one_segment,
    lean.test_wrong_transaction_id_is_not_taken_for_the_answer,
    lean.test_exception_answer_keeps_the_connection,
    lean.test_peer_closing_mid_answer_fails_at_once,
    lean.test_nodelay_is_set,
    lean.test_every_request_gets_its_full_timeout,
    lean.test_client_reconnects_after_a_garbled_answer,
    lean.test_client_cancelled_mid_request_starts_afresh,
]


def on_uvloop(scenario: Awaitable[None]) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert isinstance(runner.get_loop(), uvloop.Loop)
        runner.run(scenario)  # type: ignore[arg-type]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_wire_scenarios_on_uvloop(scenario: Callable[[], Awaitable[None]]) -> None:
    on_uvloop(scenario())


def test_client_against_the_emulator_on_uvloop(make_meter: Callable[..., Any]) -> None:
    meter = make_meter()

    async def scenario() -> None:
        async with EmulatorServer([meter], host=lean.HOST, port=0) as server:
            port = server.ports[0]
            async with MeterClient(lean.HOST, port, unit=5, timeout=0.5) as client:
                assert await client.identify() == meter.identity
                assert set((await client.read()).values) == set(VALUE_KEYS)
                await client.set_tariff(2)  # the pymodbus write path on uvloop too
                assert meter.tariff == 2
                meter.faults.delay(0.8)
                with pytest.raises(MeterTimeoutError):
                    await client.read(["voltage_l1"])
                meter.faults.clear()
                assert (await client.read(["tariff"])).values == {"tariff": 2}

    on_uvloop(scenario())
