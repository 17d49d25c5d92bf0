"""The shared table of scripted readings through the daemon's poller.

tests/components/test_scripted.py runs the same table through the Home Assistant
coordinator: both must publish exactly the values the table expects.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from countis.config import MeterConfig
from countis.models import MeterIdentity

from countis_bridge.partial_store import FilePartialStore
from countis_bridge.poller import MeterPoller
from tests.scripted import ENERGY_S, REALTIME_S, STEPS, ManualClock, ScriptedMeter, replay


class RecordingSink:
    """The service's side of a poller: remembers every retained message."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes | str]] = []

    def publish(self, topic: str, payload: bytes | str) -> bool:
        self.messages.append((topic, payload))
        return True

    def identified(self, poller: MeterPoller, previous: MeterIdentity | None) -> None:
        self.messages.append(
            ("identified", poller.identity.serial_number if poller.identity else "")
        )

    def last(self, topic: str) -> Any:
        payload = next(p for t, p in reversed(self.messages) if t == topic)
        return json.loads(payload)


async def test_the_scripted_table_through_the_poller(tmp_path: Path) -> None:
    meter, clock, sink = ScriptedMeter(), ManualClock(), RecordingSink()
    config = MeterConfig(
        host="127.0.0.1", name="Main", realtime_interval=REALTIME_S, energy_interval=ENERGY_S
    )
    poller = MeterPoller(
        config,
        sink=sink,
        store=FilePartialStore(tmp_path),
        base_topic="countis",
        link=meter,
        clock=clock,
    )
    poller.session.anchor(clock.now)
    for step in STEPS:
        replay(meter, clock, step)
        published = len(sink.messages)
        await poller.poll_once()
        state = sink.last("countis/main/state")
        assert {k: state[k] for k in step.expect} == dict(step.expect), step.note
        if step.fault is not None:  # nothing but availability for a meter that failed
            assert all(t != "countis/main/state" for t, _ in sink.messages[published:])
        else:
            assert state["timestamp"] == clock.now, step.note
    assert ("identified", "21170A0100042") in sink.messages
