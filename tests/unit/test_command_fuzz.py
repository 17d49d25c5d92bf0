"""Every command message gets exactly one response, whatever its payload (issue 11).

The messages go through the service's own path, :meth:`Bridge._dispatch` -> ``_command``
(parse, execute on the meter's session, build and encode the response); only the broker
is left out: this bridge records what it would publish. The meter is an in-memory link,
so valid commands succeed and must echo their correlation id exactly.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from countis.config import MeterConfig
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from countis_bridge.discovery import DiscoveryOptions
from countis_bridge.mqtt import BrokerOptions, Incoming
from countis_bridge.service import Bridge, BridgeConfig
from tests.fuzz import NO_ID, Probe, nested, probes, valid_probe
from tests.scripted import IDENTITY, ScriptedMeter


class RecordingBridge(Bridge):
    """The real bridge, publishing into a list instead of a broker."""

    def __init__(self, config: BridgeConfig) -> None:
        super().__init__(config)
        self.sent: list[tuple[str, bytes | str]] = []

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = True) -> bool:
        self.sent.append((topic, payload))
        return True


class Harness:
    """One bridge with meter ``main`` (identified, in-memory link) on its own event loop."""

    def __init__(self, data_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        config = BridgeConfig(
            broker=BrokerOptions(),
            meters=[MeterConfig(name="Main", host="192.0.2.1")],
            data_dir=data_dir,
            discovery=DiscoveryOptions(base_topic="countis"),
        )
        self.bridge = RecordingBridge(config)
        self.link = ScriptedMeter()
        session = self.bridge.pollers[0].session
        session.link = self.link
        session.identity = IDENTITY
        self.probes = 0

    def send(self, slug: str, probe: Probe) -> list[Any]:
        """Dispatch ``probe`` as a message; the responses published for it, decoded."""
        bridge = self.bridge
        bridge.sent.clear()
        topic = f"countis/{slug}/set/{probe.name}"
        message = Incoming(topic=topic, payload=probe.payload, retain=False)
        self.loop.run_until_complete(self._deliver(message))
        self.probes += 1
        response_topic = f"countis/{slug}/response"
        answers = [payload for topic, payload in bridge.sent if topic == response_topic]
        for topic, _ in bridge.sent:
            assert len(topic.encode("utf-8")) <= 65535
        return [json.loads(as_bytes(a).decode("utf-8")) for a in answers]

    async def _deliver(self, message: Incoming) -> None:
        """As the broker task does: dispatch, then wait for the jobs it started."""
        self.bridge._dispatch(message)
        while self.bridge._tasks:
            await asyncio.gather(*self.bridge._tasks, return_exceptions=True)


def as_bytes(payload: bytes | str) -> bytes:
    """What goes on the wire: a str payload must encode to UTF-8 (paho does it strictly)."""
    return payload if isinstance(payload, bytes) else payload.encode("utf-8")


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    harness = Harness(tmp_path_factory.mktemp("command-fuzz"))
    logging.getLogger("countis_bridge").setLevel(logging.CRITICAL)  # thousands of warnings
    try:
        yield harness
    finally:
        logging.getLogger("countis_bridge").setLevel(logging.NOTSET)
        harness.loop.close()


def check_one_answer(harness: Harness, slug: str, probe: Probe) -> dict[str, Any]:
    answers = harness.send(slug, probe)
    assert len(answers) == 1, (probe, answers)
    (answer,) = answers
    assert answer["command"] == probe.name
    assert answer["status"] in ("ok", "error")
    assert (answer["status"] == "error") == ("reason" in answer)
    if probe.cid is not NO_ID:
        assert answer.get("correlation_id") == probe.cid, (probe, answer)
        if slug == "main":
            assert answer["status"] == "ok", answer  # valid commands to a reachable meter
    return answer


def test_every_command_message_gets_exactly_one_response(harness: Harness) -> None:
    runs = 0

    @settings(
        max_examples=2200,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(probe=probes(), slug=st.sampled_from(("main", "main", "main", "nosuch")))
    def one(probe: Probe, slug: str) -> None:
        nonlocal runs
        runs += 1
        check_one_answer(harness, slug, probe)

    one()
    assert runs >= 2000  # the issue asks for at least 2,000 payloads


@pytest.mark.parametrize(
    "probe",
    [
        Probe("tariff", nested(1000, opener="[", closed=False)),  # 1 KiB: RecursionError
        Probe("partial", nested(400, opener='{"a":', closed=True)),
        Probe("tariff", nested(8, opener="[", closed=True)),  # the deepest still decoded
        Probe("tariff", b"T2" * (1 << 19)),
        Probe("tariff", b"\xed\xa0\x80"),  # a surrogate's UTF-8 form: not UTF-8
        valid_probe("tariff", "T2", "\ud800", as_json=True, ascii_only=True, kind="surrogate"),
        valid_probe("partial", "stop", "a\udfffb", as_json=True, ascii_only=True, kind="s"),
        valid_probe("tariff", 2, 10**300, as_json=True, ascii_only=True, kind="huge id"),
    ],
    ids=lambda p: p.kind or repr(p.payload[:12]),
)
def test_the_payloads_of_the_issue(harness: Harness, probe: Probe) -> None:
    answer = check_one_answer(harness, "main", probe)
    if probe.cid is NO_ID:
        assert answer["status"] == "error"


def test_a_lone_surrogate_id_is_echoed_as_an_escape(harness: Harness) -> None:
    before = harness.link.values["tariff"]
    probe = valid_probe("tariff", "T2" if before == 1 else "T1", "id-\ud800", as_json=True,
                        ascii_only=True, kind="s")  # fmt: skip
    answer = check_one_answer(harness, "main", probe)
    assert answer == {
        "command": "tariff",
        "status": "ok",
        "value": 3 - before,
        "correlation_id": "id-\ud800",
    }
    assert harness.link.values["tariff"] == 3 - before  # the meter switched, and it was answered
    raw = next(p for t, p in harness.bridge.sent if t.endswith("/response"))
    assert b"\\ud800" in as_bytes(raw)


def test_a_crash_inside_a_handler_is_answered_and_logged(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    poller = harness.bridge.pollers[0]

    async def broken(command: Any) -> Any:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(poller, "execute", broken)
    caplog.set_level(logging.ERROR, logger="countis_bridge.service")
    logging.getLogger("countis_bridge").setLevel(logging.NOTSET)
    try:
        probe = valid_probe("partial", "reset", "r-1", as_json=True, ascii_only=True, kind="")
        answer = only_answer(harness, probe)
    finally:
        logging.getLogger("countis_bridge").setLevel(logging.CRITICAL)
    assert answer == {
        "command": "partial",
        "status": "error",
        "reason": "internal error",
        "correlation_id": "r-1",
    }
    assert "command crashed" in caplog.text
    assert "RecursionError" in caplog.text


def only_answer(harness: Harness, probe: Probe) -> dict[str, Any]:
    answers = harness.send("main", probe)
    assert len(answers) == 1, answers
    return dict(answers[0])
