"""Hostile command messages through a real broker to a running bridge (issue 11).

Hundreds of mixed payloads (valid commands with odd correlation ids, deep nesting, binary
garbage, payloads of up to 1 MiB, junk JSON, random text) are published to a bridge
polling an emulated meter. Every message must be answered exactly once on
``<base>/<meter>/response``: responses are matched to requests by correlation id where
the request carried a usable one, and counted overall for the rest.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter

from tests.fuzz import NO_ID, random_probe

BASE = "countis"
RESPONSE = f"{BASE}/main/response"
STATE = f"{BASE}/main/state"
MESSAGES = 300


async def test_every_message_through_the_broker_is_answered_exactly_once(
    bridge_harness, make_meter, emulator, mqtt_recorder
):
    meter = make_meter()
    (port,) = await emulator(meter)
    path = bridge_harness.config([bridge_harness.meter("Main", port, energy_interval=2)])
    rng = random.Random(2024)
    probes = [random_probe(rng, i) for i in range(MESSAGES)]
    expected_ids = [p.cid for p in probes if p.cid is not NO_ID]
    assert len(expected_ids) > MESSAGES // 4  # a fair share of the batch must echo ids
    async with bridge_harness.run(path):
        await mqtt_recorder.wait_for(STATE, lambda m: "tariff" in m.json(), within=10)
        mark = mqtt_recorder.mark()
        await mqtt_recorder.publish_all(
            [(f"{BASE}/main/set/{probe.name}", probe.payload) for probe in probes]
        )
        await mqtt_recorder.wait_count(RESPONSE, MESSAGES, after=mark, within=60)
        await asyncio.sleep(1.0)  # anything more than one answer each would arrive by now
        responses = mqtt_recorder.since(mark, RESPONSE)
        state = await mqtt_recorder.wait_for(STATE, after=mark)  # still polling

    answers = [r.json() for r in responses]
    assert len(answers) == MESSAGES, Counter(p.kind for p in probes)
    with_id = Counter(repr(a["correlation_id"]) for a in answers if "correlation_id" in a)
    # Each usable id answered exactly once, as sent (surrogates, huge integers, ...) ...
    assert with_id == Counter(repr(cid) for cid in expected_ids)
    by_id = {repr(a["correlation_id"]): a for a in answers if "correlation_id" in a}
    for probe in probes:
        if probe.cid is not NO_ID:
            answer = by_id[repr(probe.cid)]
            assert answer["status"] == "ok", (probe, answer)  # valid commands, online meter
            assert answer["command"] == probe.name
    # ... and the others answered with an error, once each.
    without_id = [a for a in answers if "correlation_id" not in a]
    assert len(without_id) == MESSAGES - len(expected_ids)
    assert all(a["status"] == "error" for a in without_id)
    assert "voltage" in state.json()
