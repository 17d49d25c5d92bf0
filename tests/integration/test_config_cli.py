"""Mutated configurations through the real ``countis-bridge run`` process (issue 11).

A sample of what ``tests/unit/test_config_validation.py`` checks in process: a refused
document ends the process with exit code 2 and the very line the in-process check
printed, before anything connects (the broker and the meters of every document are a
listener that counts connections); an accepted one runs against a real broker and stops
cleanly on SIGTERM, without a traceback.
"""

from __future__ import annotations

import asyncio
import random
import signal
from pathlib import Path

import pytest

from countis_bridge.settings import Settings
from tests.config_check import clear_countis_env, run_check
from tests.fuzz import base_configs, mutated_config

HOST = "127.0.0.1"
REFUSED_SAMPLE = 20
ACCEPTED_SAMPLE = 3


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No COUNTIS_* variable of the machine leaks in; relative paths land in tmp_path."""
    clear_countis_env(monkeypatch)
    monkeypatch.chdir(tmp_path)


def in_process(path: Path) -> tuple[str, Settings | None]:
    """The stderr line (if refused) and settings of ``run --config path``, in process."""
    code, stderr, settings = run_check(path)
    assert code == (0 if settings is not None else 2)
    return stderr.rstrip("\n"), settings


def sample(
    tmp_path: Path,
    bases: list[dict[str, object]],
    *,
    refused: bool,
    count: int,
    broker_port: int = 0,
):
    """The first ``count`` mutated documents (fixed seeds) that are refused / accepted.

    Accepted ones must still point at the test broker (``broker_port``), without TLS.
    """
    found: list[tuple[Path, str, Settings | None]] = []
    for seed in range(10_000):
        data, _ = mutated_config(random.Random(seed), bases)
        path = tmp_path / f"{'refused' if refused else 'accepted'}-{seed}.yaml"
        path.write_bytes(data)
        line, settings = in_process(path)
        if refused:
            keep = settings is None
        else:
            mqtt = settings.mqtt if settings is not None else None
            keep = mqtt is not None and (mqtt.host, mqtt.port, mqtt.tls.enabled) == (
                HOST,
                broker_port,
                False,
            )
        if not keep:
            path.unlink()
            continue
        found.append((path, line, settings))
        if len(found) == count:
            return found
    pytest.fail("the generator made too few documents of that outcome")


async def run_cli(argv: list[str], path: Path, limit: asyncio.Semaphore) -> tuple[int, str]:
    async with limit:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            "run",
            "--config",
            str(path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert out == b""
    return int(proc.returncode or 0), err.decode("utf-8", "backslashreplace")


async def test_refused_configurations_exit_2_with_one_line_before_connecting(
    tmp_path: Path, countis_bridge_argv: list[str]
) -> None:
    connections = 0

    def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    server = await asyncio.start_server(count, HOST, 0)
    port = int(server.sockets[0].getsockname()[1])
    bases = base_configs(broker_port=port, meter_port=port, data_dir=str(tmp_path / "data"))
    documents = sample(tmp_path, bases, refused=True, count=REFUSED_SAMPLE)
    limit = asyncio.Semaphore(4)
    async with server:
        results = await asyncio.gather(
            *(run_cli(countis_bridge_argv, path, limit) for path, _, _ in documents)
        )
    for (path, expected, _), (code, stderr) in zip(documents, results, strict=True):
        assert code == 2, (path.name, stderr)
        assert "Traceback" not in stderr
        assert stderr.splitlines() == [expected], path.name  # the in-process line, alone
    assert connections == 0  # refused before the broker or any meter was contacted


async def test_accepted_configurations_run_and_stop_cleanly(
    tmp_path: Path, countis_bridge_argv: list[str], mosquitto, make_recorder
) -> None:
    meter_port = 1  # nothing listens there: the meters are simply offline
    bases = base_configs(
        broker_port=mosquitto.port, meter_port=meter_port, data_dir=str(tmp_path / "data")
    )
    documents = sample(
        tmp_path, bases, refused=False, count=ACCEPTED_SAMPLE, broker_port=mosquitto.port
    )
    recorder = make_recorder(HOST, mosquitto.port)
    for path, _, settings in documents:  # one at a time: they may share topics
        assert settings is not None
        mark = recorder.mark()
        proc = await asyncio.create_subprocess_exec(
            *countis_bridge_argv,
            "run",
            "--config",
            str(path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            topic = f"{settings.mqtt.base_topic}/bridge/availability"
            await recorder.wait_for(topic, lambda m: m.payload == b"online", after=mark, within=20)
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 20)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, err.decode(errors="replace")
        assert b"Traceback" not in err
