"""Settings: YAML file, environment, CLI overrides, validation messages."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import Any

import pytest
from countis.config import MeterConfig
from countis.errors import ConfigError
from pydantic import SecretStr, ValidationError

from countis_bridge.cli import build_parser
from countis_bridge.settings import (
    MqttSettings,
    Settings,
    load_settings,
    settings_overrides_from_args,
)
from countis_bridge.topics import slugify
from tests.config_check import clear_countis_env

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = """\
mqtt: {host: 127.0.0.1, port: 1883, base_topic: countis, discovery_prefix: homeassistant}
meters:
  - {name: Main, host: 192.168.0.4, port: 502, unit: 5}
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No COUNTIS_* variable of the machine running the tests leaks in."""
    clear_countis_env(monkeypatch)


def write(tmp_path: Path, text: str, name: str = "countis-bridge.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path | None, overrides: dict[str, Any] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(path, overrides)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_the_minimal_file_of_the_issue_loads(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL))
    assert settings.mqtt.host == "127.0.0.1"
    assert settings.mqtt.port == 1883
    assert settings.mqtt.base_topic == "countis"
    assert settings.mqtt.discovery_prefix == "homeassistant"
    (meter,) = settings.meters
    assert meter == MeterConfig(name="Main", host="192.168.0.4", port=502, unit=5)
    assert slugify(meter.name or "") == "main"
    assert (meter.realtime_interval, meter.energy_interval, meter.timeout) == (2.0, 10.0, 3.0)
    assert not meter.read_only
    assert not meter.tariff_broadcast


def test_defaults_without_a_file() -> None:
    settings = load_settings(None)
    assert settings.mqtt == MqttSettings()
    assert settings.mqtt.host == "127.0.0.1"
    assert settings.mqtt.port == 1883
    assert settings.mqtt.username is None
    assert settings.mqtt.password is None
    assert settings.mqtt.client_id is None
    assert settings.mqtt.keepalive == 60
    assert settings.mqtt.qos == 1
    assert not settings.mqtt.tls.enabled
    assert settings.mqtt.discovery_mode == "device"
    assert not settings.mqtt.per_value_topics
    assert settings.meters == ()
    assert settings.offline_after == 3
    assert settings.data_dir == Path("countis-data")
    assert settings.log_level == "INFO"


def test_the_example_file_loads_and_shows_the_defaults() -> None:
    settings = load_settings(ROOT / "countis-bridge.example.yaml")
    defaults = load_settings(None)
    assert settings.mqtt == defaults.mqtt
    assert [m.name for m in settings.meters] == ["Main", "Heat pump"]
    assert settings.meters[0] == MeterConfig(name="Main", host="192.168.0.4")
    assert slugify(settings.meters[1].name or "") == "heat_pump"
    assert (settings.offline_after, settings.data_dir) == (3, defaults.data_dir)


def test_an_empty_file_means_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "# nothing yet\n")) == load_settings(None)


def test_full_file(tmp_path: Path) -> None:
    ca = write(tmp_path, "ca", "ca.pem")
    cert = write(tmp_path, "cert", "cert.pem")
    key = write(tmp_path, "key", "key.pem")
    text = f"""
mqtt:
  host: broker.lan
  port: 8883
  username: bridge
  password: 1234
  client_id: countis-1
  keepalive: 30
  qos: 0
  tls: {{enabled: true, ca_file: {ca}, cert_file: {cert}, key_file: {key}, insecure: true}}
  base_topic: site/countis
  discovery_prefix: ha
  discovery_mode: entity
  per_value_topics: true
meters:
  - name: 2024
    host: 10.0.0.1
    unit: 1
    realtime_interval: 0.5
    energy_interval: 60
    timeout: 1
    read_only: true
    tariff_broadcast: true
  - host: 10.0.0.2
offline_after: 5
data_dir: /var/lib/countis
log_level: debug
"""
    settings = load_settings(write(tmp_path, text))
    mqtt = settings.mqtt
    assert (mqtt.host, mqtt.port, mqtt.username, mqtt.client_id) == (
        "broker.lan",
        8883,
        "bridge",
        "countis-1",
    )
    assert isinstance(mqtt.password, SecretStr)
    assert mqtt.password.get_secret_value() == "1234"  # a YAML number is still a password
    assert "1234" not in repr(settings)
    assert (mqtt.keepalive, mqtt.qos, mqtt.base_topic, mqtt.discovery_prefix) == (
        30,
        0,
        "site/countis",
        "ha",
    )
    assert mqtt.discovery_mode == "entity"
    assert mqtt.per_value_topics
    assert mqtt.tls.enabled
    assert mqtt.tls.insecure
    assert (mqtt.tls.ca_file, mqtt.tls.cert_file, mqtt.tls.key_file) == (ca, cert, key)
    first, second = settings.meters
    assert first.name == "2024"
    assert slugify(first.name or "") == "2024"
    assert (first.unit, first.realtime_interval, first.energy_interval) == (1, 0.5, 60.0)
    assert first.read_only
    assert first.tariff_broadcast
    assert second.name is None
    assert second.name is None
    assert second.port == 502
    assert settings.offline_after == 5
    assert settings.data_dir == Path("/var/lib/countis")
    assert settings.log_level == "DEBUG"


def test_precedence_cli_over_env_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, MINIMAL + "log_level: ERROR\noffline_after: 7\n")
    monkeypatch.setenv("COUNTIS_MQTT__HOST", "env-broker")
    monkeypatch.setenv("COUNTIS_MQTT__PORT", "1884")
    monkeypatch.setenv("COUNTIS_LOG_LEVEL", "warning")
    settings = load_settings(path, {"mqtt": {"port": 1885}})
    assert settings.mqtt.host == "env-broker"  # env beats the file
    assert settings.mqtt.port == 1885  # CLI beats env
    assert settings.mqtt.base_topic == "countis"  # nested merge keeps the file's other keys
    assert settings.log_level == "WARNING"
    assert settings.offline_after == 7  # the file beats the default
    assert settings.meters[0].name == "Main"


def test_env_nesting_and_json_lists(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COUNTIS_MQTT__TLS__ENABLED", "true")
    monkeypatch.setenv("COUNTIS_MQTT__PASSWORD", "s3cret")
    monkeypatch.setenv("countis_data_dir", str(tmp_path))
    monkeypatch.setenv("COUNTIS_METERS", '[{"name": "Env", "host": "10.1.1.1", "unit": 3}]')
    settings = load_settings(write(tmp_path, MINIMAL))
    assert settings.mqtt.tls.enabled
    assert settings.mqtt.password is not None
    assert settings.mqtt.password.get_secret_value() == "s3cret"
    assert settings.data_dir == tmp_path
    (meter,) = settings.meters  # a list from the environment replaces the file's list
    assert (meter.name, meter.host, meter.unit) == ("Env", "10.1.1.1", 3)


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL))
    with pytest.raises(FrozenInstanceError):
        settings.meters[0].port = 1  # type: ignore[misc]
    with pytest.raises(ValidationError):
        settings.mqtt.host = "x"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        settings.log_level = "DEBUG"  # type: ignore[misc]
    assert isinstance(settings.meters, tuple)


def test_missing_file(tmp_path: Path) -> None:
    message = config_error(tmp_path / "nope.yaml")
    assert message == f"configuration file not found: {tmp_path / 'nope.yaml'}"


def test_unreadable_file(tmp_path: Path) -> None:
    assert "cannot read configuration file" in config_error(tmp_path)  # a directory
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"mqtt: {host: \xe9}\n")
    assert config_error(path).endswith("not UTF-8 text")


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "mqtt:\n  host: [unclosed\nmeters: []\n")
    message = config_error(path)
    assert message.startswith(f"{path}: invalid YAML at line 3")


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, "- a\n- b\n"))
    assert message.endswith("the top level must be a mapping of settings, not a list")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mqtt: {hots: x}\n", "invalid setting mqtt.hots: unknown field"),
        ("colour: blue\n", "invalid setting colour: unknown field"),
        (
            "meters: [{host: h, interval: 2}]\n",
            "invalid setting meters[0].interval: unknown field",
        ),
        (
            "mqtt: {port: 70000}\n",
            "invalid setting mqtt.port: Input should be less than or equal to 65535 (got 70000)",
        ),
        (
            "mqtt: {port: 0}\n",
            "invalid setting mqtt.port: Input should be greater than or equal to 1 (got 0)",
        ),
        ("mqtt: {port: abc}\n", "invalid setting mqtt.port: Input should be a valid integer"),
        (
            "meters: [{host: h, port: -1}]\n",
            "invalid setting meters[0].port: must be a number from 1 to 65535 (got -1)",
        ),
        (
            "meters: [{host: h, unit: 0}]\n",
            "invalid setting meters[0].unit: must be a number from 1 to 247 (got 0)",
        ),
        (
            "meters: [{host: h, realtime_interval: 0}]\n",
            "invalid setting meters[0].realtime_interval: must be a number from 0.1 to 86400",
        ),
        (
            "meters: [{host: h, energy_interval: -5}]\n",
            "invalid setting meters[0].energy_interval: must be a number from 0.1",
        ),
        ("meters: [{host: h, timeout: 0}]\n", "invalid setting meters[0].timeout"),
        ("meters: [{name: x}]\n", "invalid setting meters[0].host: required field is missing"),
        ("meters: [{host: ''}]\n", "invalid setting meters[0].host: must not be empty"),
        ("meters: {host: h}\n", "invalid setting meters: Input should be a valid"),
        (
            "meters: [{name: Main, host: a}, {name: main, host: b}]\n",
            "invalid setting meters[1].name: duplicate meter name 'main' (meters[0])",
        ),
        (
            "meters: [{name: Heat pump, host: a}, {name: heat-pump, host: b}]\n",
            "invalid setting meters[1].name: 'heat-pump' has the same topic slug 'heat_pump'"
            " as meters[0]",
        ),
        (
            "meters: [{name: A, host: H}, {name: B, host: h}]\n",
            "invalid setting meters[1]: same host, port and unit as meters[0]",
        ),
        ("meters: [{name: '%%', host: h}]\n", "meters[0].name: '%%' has no letters or digits"),
        ("meters: [{name: Bridge, host: h}]\n", "meters[0].name: 'Bridge' is reserved"),
        ("mqtt: {qos: 3}\n", "invalid setting mqtt.qos: Input should be 0, 1 or 2"),
        ("mqtt: {keepalive: 0}\n", "invalid setting mqtt.keepalive"),
        ("mqtt: {discovery_mode: both}\n", "invalid setting mqtt.discovery_mode"),
        ("mqtt: {base_topic: 'a/+/b'}\n", "mqtt.base_topic: 'a/+/b' must not contain"),
        ("mqtt: {discovery_prefix: 'ha/#'}\n", "mqtt.discovery_prefix: 'ha/#' must not"),
        ("mqtt: {base_topic: '/countis'}\n", "must not start or end with /"),
        ("mqtt: {base_topic: 'a//b'}\n", "contain empty levels"),
        ("mqtt: {base_topic: ''}\n", "mqtt.base_topic: must not be empty"),
        ("offline_after: 0\n", "invalid setting offline_after"),
        ("log_level: trace\n", "invalid setting log_level: Input should be 'DEBUG'"),
        ("mqtt: {tls: {ca_file: /no/such/ca.pem}}\n", "mqtt.tls.ca_file: file not found"),
        ("mqtt: {tls: {verify: true}}\n", "invalid setting mqtt.tls.verify: unknown field"),
        (
            "mqtt: {port: 0, qos: 5}\nfoo: 1\n",
            "(and 2 more problem(s))",
        ),
    ],
)
def test_bad_values_give_one_line_naming_the_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert expected in config_error(write(tmp_path, text))


def test_key_file_needs_a_cert_file(tmp_path: Path) -> None:
    key = write(tmp_path, "key", "key.pem")
    message = config_error(None, {"mqtt": {"tls": {"key_file": str(key)}}})
    assert message.startswith("invalid setting mqtt.tls.key_file: key_file needs cert_file")


def test_passwords_never_appear_in_messages(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, "mqtt: {password: [hunter2]}\n"))
    assert "hunter2" not in message
    assert message.startswith("invalid setting mqtt.password")


def test_bad_env_values_are_config_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COUNTIS_MQTT__PORT", "99999")
    assert "mqtt.port: Input should be less than or equal to 65535" in config_error(None)
    monkeypatch.delenv("COUNTIS_MQTT__PORT")
    monkeypatch.setenv("COUNTIS_METERS", "[not json")
    assert config_error(None) == "invalid environment variable COUNTIS_METERS: not valid JSON"
    monkeypatch.delenv("COUNTIS_METERS")
    monkeypatch.setenv("COUNTIS_MQTT__HOTS", "x")
    assert config_error(None) == "invalid setting mqtt.hots: unknown field"


def test_bad_cli_overrides_are_config_errors() -> None:
    assert "mqtt.port" in config_error(None, {"mqtt": {"port": 0}})
    assert config_error(None, {"nonsense": 1}) == "invalid setting nonsense: unknown field"


def test_settings_built_directly_are_validated_the_same_way() -> None:
    settings = Settings(meters=[MeterConfig(name="A", host="h")])
    assert slugify(settings.meters[0].name or "") == "a"
    with pytest.raises(ValidationError):
        Settings(meters=[MeterConfig(name="A", host="h"), MeterConfig(name="a", host="i")])


def test_overrides_from_run_flags(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        [
            "--log-level",
            "debug",
            "run",
            "--config",
            "x.yaml",
            "--mqtt-host",
            "broker",
            "--mqtt-port",
            "1999",
            "--mqtt-username",
            "me",
            "--mqtt-client-id",
            "cid",
            "--base-topic",
            "site/c",
            "--discovery-prefix",
            "ha",
            "--discovery-mode",
            "entity",
            "--data-dir",
            str(tmp_path),
            "--offline-after",
            "4",
        ]
    )
    overrides = settings_overrides_from_args(args)
    assert overrides == {
        "mqtt": {
            "host": "broker",
            "port": 1999,
            "username": "me",
            "client_id": "cid",
            "base_topic": "site/c",
            "discovery_prefix": "ha",
            "discovery_mode": "entity",
        },
        "data_dir": str(tmp_path),
        "offline_after": 4,
        "log_level": "DEBUG",
    }
    settings = load_settings(None, overrides)
    assert settings.mqtt.port == 1999
    assert settings.data_dir == tmp_path


def test_unset_flags_leave_env_and_file_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = build_parser().parse_args(["discovery", "--mqtt-port", "1884"])
    overrides = settings_overrides_from_args(args)
    assert overrides == {"mqtt": {"port": 1884}}  # no --log-level: the file's level stands
    monkeypatch.setenv("COUNTIS_MQTT__HOST", "env-host")
    settings = load_settings(write(tmp_path, MINIMAL), overrides)
    assert (settings.mqtt.host, settings.mqtt.port) == ("env-host", 1884)
    assert settings_overrides_from_args(build_parser().parse_args(["demo"])) == {}
    explicit = build_parser().parse_args(["--log-level", "info", "run"])
    assert settings_overrides_from_args(explicit) == {"log_level": "INFO"}


def test_meter_names_are_trimmed_and_may_be_null(tmp_path: Path) -> None:
    text = "meters: [{name: '  Main  ', host: a}, {name: null, host: b}]\n"
    first, second = load_settings(write(tmp_path, text)).meters
    assert first.name == "Main"
    assert second.name is None
