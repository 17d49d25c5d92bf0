"""Configuration is validated completely before anything starts (issue 11).

Everything here runs what ``countis-bridge run --config FILE`` runs before it connects,
in process: :func:`countis_bridge.daemon.run_settings` (load, validate, data_dir probe)
and, for a refusal, :func:`countis_bridge.cli.report` (the one stderr line and the exit
code). ``tests/integration/test_config_cli.py`` runs a sample as real processes.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from countis.errors import ConfigError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from countis_bridge.daemon import bridge_config
from countis_bridge.service import Bridge
from countis_bridge.settings import Settings, longest_topic
from countis_bridge.topics import slugify
from tests.config_check import clear_countis_env, run_check
from tests.fuzz import base_configs, mutated_config, render


@pytest.fixture(autouse=True)
def clean_env_and_logging(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No COUNTIS_* variable leaks in; relative data_dirs land in a temporary directory."""
    clear_countis_env(monkeypatch)
    monkeypatch.chdir(tmp_path)
    level = logging.getLogger().level
    yield
    logging.getLogger().setLevel(level)  # run_settings applies the configured log level


def assert_refused_in_one_line(code: int, stderr: str) -> str:
    assert code == 2, stderr
    assert stderr.endswith("\n")
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("countis-bridge run: error: ")
    assert lines[0].isprintable(), lines[0]  # no control characters, no lone surrogates
    assert "Traceback" not in stderr
    return lines[0]


def assert_usable(settings: Settings) -> None:
    """A configuration that was accepted can be run: nothing in it can break the bridge."""
    mqtt = settings.mqtt
    assert 1 <= mqtt.keepalive <= 65535
    secret = mqtt.password.get_secret_value() if mqtt.password is not None else None
    for text in (mqtt.client_id, mqtt.username, secret, mqtt.base_topic, mqtt.discovery_prefix):
        assert text is None or len(text.encode("utf-8")) <= 65535
    slugs = [slugify(m.name) for m in settings.meters if m.name is not None]
    assert len(longest_topic(mqtt.base_topic, mqtt.discovery_prefix, slugs).encode()) <= 65535
    for host in (mqtt.host, *(m.host for m in settings.meters)):
        assert_resolvable_form(host)
    for meter in settings.meters:
        numbers = (meter.timeout, meter.realtime_interval, meter.energy_interval, meter.retry_cap)
        assert all(math.isfinite(n) and n > 0 for n in numbers)
        assert meter.name is None or meter.name.isprintable()
    assert settings.data_dir.is_dir()
    Bridge(bridge_config(settings))  # builds every poller, loads the registry


def assert_resolvable_form(host: str) -> None:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        host.encode("idna")  # what the resolver will be given


@pytest.fixture
def bases(tmp_path: Path) -> list[dict[str, object]]:
    return base_configs(broker_port=1, meter_port=1, data_dir=str(tmp_path / "data"))


def test_the_base_configurations_are_valid(tmp_path: Path, bases: list[dict[str, object]]):
    rng = random.Random(0)
    for i, base in enumerate(bases):
        path = tmp_path / f"base-{i}.yaml"
        path.write_text(render(base, rng), encoding="utf-8")
        code, stderr, loaded = run_check(path)
        assert (code, stderr) == (0, ""), stderr
        assert loaded is not None
        assert_usable(loaded)


def test_mutated_configurations_are_valid_or_one_line_and_exit_2(
    tmp_path: Path, bases: list[dict[str, object]]
) -> None:
    outcomes = {"valid": 0, "refused": 0}
    path = tmp_path / "mutated.yaml"

    @settings(max_examples=260, deadline=None, suppress_health_check=list(HealthCheck))
    @given(rng=st.randoms(use_true_random=False))
    def one(rng: random.Random) -> None:
        data, what = mutated_config(rng, bases)
        path.write_bytes(data)
        code, stderr, loaded = run_check(path)
        if loaded is None:
            assert_refused_in_one_line(code, stderr)
            outcomes["refused"] += 1
        else:
            assert (code, stderr) == (0, ""), what
            assert_usable(loaded)
            outcomes["valid"] += 1

    one()
    # At least 200 documents, and both outcomes well represented (not a vacuous run).
    assert sum(outcomes.values()) >= 200, outcomes
    assert outcomes["refused"] >= 100, outcomes
    assert outcomes["valid"] >= 10, outcomes


DATA = "data_dir: ./data\n"
ISSUE_CASES = {
    "YAML nested 600 deep": ("meters: " + "[" * 600 + "]" * 600 + "\n", "nested deeper than 50"),
    "nested flow mappings": ("log_level: " + "{a: " * 500 + "1" + "}" * 500, "nested deeper"),
    "a 5000-digit integer": ("offline_after: " + "9" * 5000 + "\n", "integer of more than 30"),
    "a tagged 40-digit integer": ("offline_after: !!int '" + "1" * 40 + "'\n", "more than 30"),
    "alias bomb": (
        "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
        + "".join(
            f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n"
            for p, n in zip("abcdef", "bcdefg", strict=True)
        ),
        "more than 100000 values",
    ),
    "a self-referencing alias": ("meters: &m [*m]\n", "meters"),
    "an impossible date": ("meters: [{host: 1.2.3.4, name: 2024-13-45}]\n", "cannot convert"),
    "keepalive over 65535": ("mqtt: {keepalive: 65536}\n", "mqtt.keepalive"),
    "70,000-character client_id": ("mqtt: {client_id: " + "a" * 70000 + "}\n", "client_id"),
    "70,000-character username": ("mqtt: {username: " + "a" * 70000 + "}\n", "mqtt.username"),
    "a password over 65535 bytes": ("mqtt: {password: " + "ü" * 40000 + "}\n", "mqtt.password"),
    "70,000-character base_topic": ("mqtt: {base_topic: " + "a" * 70000 + "}\n", "base_topic"),
    "discovery topics over 65535 bytes": (
        "mqtt: {discovery_prefix: " + "a" * 65500 + "}\n",
        "mqtt.discovery_prefix: topics such as",
    ),
    "state topics over 65535 bytes": (
        "mqtt: {base_topic: " + "a" * 65510 + "}\n",
        "mqtt.base_topic: topics such as",
    ),
    "an over-long meter name": ("meters: [{host: 1.2.3.4, name: " + "n" * 101 + "}]\n", "name"),
    "a lone surrogate in a name": ('meters: [{host: 1.2.3.4, name: "M\\uD800"}]\n', "name"),
    "a lone surrogate in client_id": ('mqtt: {client_id: "c\\uDFFF"}\n', "lone surrogate"),
    "a lone surrogate in base_topic": ('mqtt: {base_topic: "b\\uD800"}\n', "base_topic"),
    "a lone surrogate in a password": ('mqtt: {password: "\\uD800"}\n', "mqtt.password"),
    "a control character in a topic": ('mqtt: {base_topic: "a\\x01b"}\n', "U+0001"),
    "a non-character in a client id": ('mqtt: {client_id: "a\\uFFFE"}\n', "U+FFFE"),
    "an empty host label": ("meters: [{host: 'a..b'}]\n", "meters[0].host"),
    "a 64-character host label": ("meters: [{host: " + "a" * 64 + ".lan}]\n", "meters[0].host"),
    "a NUL in a host": ('meters: [{host: "a\\0b"}]\n', "meters[0].host"),
    "a NUL in the broker host": ('mqtt: {host: "a\\0b"}\n', "mqtt.host"),
    "an empty broker host label": ("mqtt: {host: 'a..b'}\n", "mqtt.host"),
    "energy_interval .inf": ("meters: [{host: 1.2.3.4, energy_interval: .inf}]\n", "energy_int"),
    "timeout .nan": ("meters: [{host: 1.2.3.4, timeout: .nan}]\n", "meters[0].timeout"),
    "retry_max -.inf": ("meters: [{host: 1.2.3.4, retry_max: -.inf}]\n", "meters[0].retry_max"),
    "a NUL in data_dir": ('data_dir: "d\\0x"\n', "data_dir"),
    "a lone surrogate in data_dir": ('data_dir: "d\\uD800"\n', "data_dir"),
    "data_dir is a file": ("data_dir: ./file\n", "is not a writable directory"),
    "data_dir under /proc": ("data_dir: /proc/countis\n", "is not a writable directory"),
    "data_dir under /dev/null": ("data_dir: /dev/null/x\n", "is not a writable directory"),
    "a newline in a quoted path": ('mqtt: {tls: {ca_file: "a\\nb"}}\n', "file not found: 'a\\nb'"),
    "a file name too long": ("mqtt: {tls: {ca_file: " + "c" * 300 + "}}\n", "File name too long"),
    "a file over 1 MiB": ("# " + "x" * (1 << 20) + "\n", "larger than 1024 KiB"),
}


@pytest.mark.parametrize("case", ISSUE_CASES, ids=list(ISSUE_CASES))
def test_the_configurations_of_the_issue_are_one_line_and_exit_2(case: str, tmp_path: Path):
    text, expected = ISSUE_CASES[case]
    (tmp_path / "file").write_text("not a directory")
    path = tmp_path / "countis-bridge.yaml"
    path.write_text(text if "data_dir" in text else text + DATA, "utf-8", "surrogatepass")
    line = assert_refused_in_one_line(*run_check(path)[:2])
    assert expected in line, line


def test_the_longest_accepted_topics_fit(tmp_path: Path) -> None:
    """The limit is exact: the longest base_topic accepted builds topics of 65535 bytes."""
    # "<base>/<serial slug>/<longest key>": what a long base_topic adds to.
    fits = 65535 - (len(longest_topic("a" * 1000, "p", ["x" * 32])) - 1000)
    path = tmp_path / "countis-bridge.yaml"
    path.write_text("mqtt: {base_topic: " + "a" * fits + "}\n" + DATA)
    code, stderr, loaded = run_check(path)
    assert (code, stderr) == (0, "")
    assert loaded is not None
    assert_usable(loaded)
    path.write_text("mqtt: {base_topic: " + "a" * (fits + 1) + "}\n" + DATA)
    assert "would be 65536 bytes long" in assert_refused_in_one_line(*run_check(path)[:2])


def test_data_dir_is_created_and_probed_before_anything_else(tmp_path: Path) -> None:
    path = tmp_path / "countis-bridge.yaml"
    path.write_text("data_dir: ./deep/new/dir\n")
    code, stderr, loaded = run_check(path)
    assert (code, stderr) == (0, "")
    assert loaded is not None
    assert (tmp_path / "deep" / "new" / "dir").is_dir()
    assert list((tmp_path / "deep" / "new" / "dir").iterdir()) == []  # the probe is gone


def test_the_meter_config_model_refuses_what_the_issue_found() -> None:
    """countis.config.MeterConfig is the one model: the checks hold without the daemon too."""
    from countis.config import MeterConfig  # noqa: PLC0415

    bad = [
        {"host": "a..b"},
        {"host": "a" * 64 + ".lan"},
        {"host": "a\x00b"},
        {"host": "x\ud800"},
        {"host": "1.2.3.4", "energy_interval": math.inf},
        {"host": "1.2.3.4", "realtime_interval": math.nan},
        {"host": "1.2.3.4", "retry_max": 0.01},
        {"host": "1.2.3.4", "name": "a\ud800"},
    ]
    for fields in bad:
        with pytest.raises(ConfigError):
            MeterConfig(**fields)  # type: ignore[arg-type]


def test_retry_max_comes_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "countis-bridge.yaml"
    path.write_text(
        "meters:\n  - {host: 10.0.0.1, retry_max: 4}\n"
        "  - {host: 10.0.0.2, realtime_interval: 0.5}\n" + DATA
    )
    code, stderr, loaded = run_check(path)
    assert (code, stderr) == (0, "")
    assert loaded is not None
    capped, default = loaded.meters
    assert (capped.retry_max, capped.retry_cap) == (4.0, 4.0)
    assert (default.retry_max, default.retry_cap) == (None, 0.75)  # 1.5 x realtime
