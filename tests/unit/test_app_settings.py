"""The app entrypoint's pure part: options and Supervisor answers -> bridge settings."""

from __future__ import annotations

import json
import re
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from countis.errors import ConfigError

from countis_bridge import app
from countis_bridge.app import (
    EMULATED_METER_NAME,
    Broker,
    mqtt_override,
    parse_mqtt_service,
    settings_document,
    validate,
    write_settings,
)
from countis_bridge.settings import load_settings, settings_from_mapping

SERVICE = {
    "result": "ok",
    "data": {
        "addon": "core_mosquitto",
        "host": "core-mosquitto",
        "port": 1883,
        "ssl": False,
        "protocol": "3.1.1",
        "username": "addons",
        "password": "Eingang1234",
    },
}


FULL = {
    "meters": [
        {"name": " Main ", "host": "192.168.0.4", "port": 1502, "unit": 7, "read_only": True},
        {"name": "Heat pump", "host": "meter2.lan", "port": None, "unit": None},
    ],
    "realtime_interval": 1,
    "energy_interval": 30.5,
    "discovery_prefix": "ha",
    "base_topic": "site/countis",
    "discovery_mode": "entity",
    "per_value_topics": True,
    "mqtt": {"host": "broker.lan", "port": 8883, "username": "u", "password": 1234},
    "log_level": "debug",
    "emulate": True,
}


def test_a_full_configuration_maps_onto_the_bridge_settings() -> None:
    document = settings_document(FULL, Broker(host="b"), data_dir=Path("/data"), emulator_port=9)
    validate(document)
    assert document["meters"] == [
        {"name": " Main ", "host": "192.168.0.4", "port": 1502, "unit": 7, "read_only": True,
         "realtime_interval": 1, "energy_interval": 30.5},
        {"name": "Heat pump", "host": "meter2.lan", "realtime_interval": 1,
         "energy_interval": 30.5},
        {"name": EMULATED_METER_NAME, "host": "127.0.0.1", "port": 9, "realtime_interval": 1,
         "energy_interval": 30.5},
    ]  # fmt: skip
    assert document["mqtt"]["base_topic"] == "site/countis"
    assert document["mqtt"]["discovery_mode"] == "entity"
    assert document["log_level"] == "DEBUG"
    assert mqtt_override(FULL) == Broker(
        host="broker.lan", port=8883, username="u", password="1234"
    )


def test_an_empty_mqtt_override_means_the_supervisor_broker() -> None:
    assert mqtt_override({"mqtt": {}}) is None
    assert mqtt_override({"mqtt": {"host": "", "username": "u"}}) is None
    assert mqtt_override({}) is None
    assert mqtt_override({"mqtt": {"host": "b"}}) == Broker(host="b")


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"meters": "Main"}, "meters[0]: Input should be a dictionary"),
        ({"meters": ["Main"]}, "meters[0]: Input should be a dictionary"),
        ({"meters": [{"name": "Main"}]}, "meters[0].host: required field is missing"),
        ({"meters": [{"name": "M", "host": "h", "port": 0}]}, "meters[0].port: must be a number"),
        ({"meters": [{"name": "M", "host": "h", "unit": "x"}]}, "meters[0].unit"),
        ({"meters": [{"name": "M", "host": "a..b"}]}, "meters[0].host: 'a..b' is not a valid"),
        ({"realtime_interval": "fast"}, "meters[0].realtime_interval"),
        ({"per_value_topics": "maybe"}, "mqtt.per_value_topics"),
        ({"log_level": "trace"}, "log_level"),
        ({"base_topic": "a/#"}, "mqtt.base_topic"),
    ],
)
def test_bad_options_name_the_option(options: dict[str, Any], problem: str) -> None:
    full = {"meters": [{"name": "Main", "host": "h"}], **options}
    document = settings_document(full, Broker(host="h"), data_dir=Path("/data"))
    with pytest.raises(ConfigError, match=r"^invalid app option " + re.escape(problem)):
        validate(document)


def test_parse_mqtt_service() -> None:
    assert parse_mqtt_service(SERVICE) == Broker(
        host="core-mosquitto", port=1883, username="addons", password="Eingang1234"
    )
    tls = {"result": "ok", "data": {"host": "h", "port": "8883", "ssl": True}}
    assert parse_mqtt_service(tls) == Broker(host="h", port=8883, tls=True)


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({"result": "error", "message": "No mqtt service"}, "No mqtt service"),
        ({"result": "ok", "data": {}}, "no broker host"),
        ({"result": "ok", "data": {"host": "h", "port": "x"}}, "bad port"),
        ([1, 2], "not a JSON object"),
    ],
)
def test_parse_mqtt_service_errors(payload: Any, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_mqtt_service(payload)


def test_the_password_is_not_in_the_repr() -> None:
    assert "Eingang1234" not in repr(parse_mqtt_service(SERVICE))


def test_settings_round_trip_through_the_bridge_settings(tmp_path: Path) -> None:
    options = {
        "meters": [{"name": "Main", "host": "192.168.0.4", "unit": 7, "read_only": True}],
        "realtime_interval": 1.5,
        "energy_interval": 20,
        "base_topic": "site/countis",
        "discovery_mode": "entity",
        "per_value_topics": True,
        "log_level": "warning",
    }
    broker = Broker(host="core-mosquitto", port=1884, username="addons", password="1234", tls=True)
    data = settings_document(options, broker, data_dir=tmp_path / "data", emulator_port=5999)
    path = write_settings(data, tmp_path / "run")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # the broker password is inside
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700

    settings = load_settings(path)
    mqtt = settings.mqtt
    assert (mqtt.host, mqtt.port, mqtt.username) == ("core-mosquitto", 1884, "addons")
    assert mqtt.password is not None
    assert mqtt.password.get_secret_value() == "1234"
    assert mqtt.tls.enabled
    assert (mqtt.base_topic, mqtt.discovery_prefix) == ("site/countis", "homeassistant")
    assert mqtt.discovery_mode == "entity"
    assert mqtt.per_value_topics
    assert settings.log_level == "WARNING"
    assert settings.data_dir == tmp_path / "data" / "countis-bridge"
    main, emulated = settings.meters
    assert (main.name, main.host, main.port, main.unit) == ("Main", "192.168.0.4", 502, 7)
    assert main.read_only
    assert (main.realtime_interval, main.energy_interval) == (1.5, 20.0)
    assert (emulated.name, emulated.host, emulated.port) == (EMULATED_METER_NAME, "127.0.0.1", 5999)
    assert not emulated.read_only


def test_no_meters_is_an_error() -> None:
    with pytest.raises(ConfigError, match="no meters"):
        settings_document({}, Broker(host="h"), data_dir=Path("/data"))


def test_the_emulated_meter_name_is_taken() -> None:
    options = {"meters": [{"name": "emulated METER", "host": "h"}]}
    document = settings_document(options, Broker(host="h"), data_dir=Path("/data"), emulator_port=1)
    with pytest.raises(ConfigError, match="duplicate meter name 'Emulated meter'"):
        validate(document)


def test_without_token_or_override_there_is_no_broker() -> None:
    with pytest.raises(ConfigError, match="SUPERVISOR_TOKEN is not set"):
        app.resolve_broker({}, {})


def test_prepare_with_an_mqtt_override(tmp_path: Path) -> None:
    options_file = tmp_path / "options.json"
    options_file.write_text(
        json.dumps(
            {
                "meters": [{"name": "Main", "host": "192.168.0.4"}],
                "mqtt": {"host": "broker.lan", "username": "u", "password": "p"},
                "log_level": "debug",
                "emulate": False,
            }
        )
    )
    env = {
        app.OPTIONS_ENV: str(options_file),
        app.DATA_ENV: str(tmp_path / "data"),
        app.RUN_DIR_ENV: str(tmp_path / "run"),
        app.SUPERVISOR_URL_ENV: "http://127.0.0.1:9",  # never asked: the override wins
        "PATH": "/usr/bin",
    }
    command, child_env = app.prepare(env)
    settings_file = tmp_path / "run" / app.SETTINGS_FILE
    assert command == [
        sys.executable, "-m", "countis_bridge", "--log-level", "DEBUG",
        "run", "--config", str(settings_file),
    ]  # fmt: skip
    assert child_env == {"PATH": "/usr/bin"}  # our own variables never reach the bridge
    settings = load_settings(settings_file)
    assert settings.mqtt.host == "broker.lan"
    assert [m.name for m in settings.meters] == ["Main"]


def test_main_rejects_unknown_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert app.main(["jump"]) == 2
    assert "usage" in capsys.readouterr().err


def test_main_reports_config_errors_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(app.OPTIONS_ENV, str(tmp_path / "missing.json"))
    assert app.main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("countis-bridge app: error: app options not found")


def test_health_without_settings_is_unhealthy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(app.RUN_DIR_ENV, str(tmp_path))
    assert app.main(["health"]) == 1  # Docker: 1 = unhealthy (2 is reserved)
    assert "unhealthy" in capsys.readouterr().err


SCHEDULE = {
    "tariff_mode": "schedule",
    "tariff_time_zone": "Europe/Paris",
    "tariff_default": "T1",
    "tariff_rules": [{"days": "mon-sun", "from": "22:00", "to": "06:00", "tariff": "T2"}],
    "tariff_holidays": ["2026-12-25"],
    "tariff_holiday_tariff": "T2",
}


def test_the_tariff_options_become_one_shared_plan() -> None:
    options = {
        "meters": [
            {"name": "Main", "host": "h1"},
            {"name": "Sub", "host": "h2", "read_only": True, "follow_tariff_plan": False},
        ],
        **SCHEDULE,
    }
    document = settings_document(options, Broker(host="b"), data_dir=Path("/d"), emulator_port=9)
    validate(document)
    settings = settings_from_mapping(document)
    main, sub, emulated = settings.meters
    assert main.tariff_plan == emulated.tariff_plan is not None
    assert main.tariff_plan.time_zone == "Europe/Paris"
    assert main.tariff_plan.holiday_tariff == 2
    assert sub.tariff_plan is None


def test_a_signal_plan_from_the_options() -> None:
    options = {
        "meters": [{"name": "Main", "host": "h1"}],
        "tariff_mode": "signal",
        "tariff_signal_topic": "homeassistant/schedule/hc/state",
        "tariff_signal_mapping": [
            {"payload": "on", "tariff": "T2"},
            {"payload": "off", "tariff": "T1"},
        ],
    }
    document = settings_document(options, Broker(host="b"), data_dir=Path("/d"))
    plan = settings_from_mapping(document).meters[0].tariff_plan
    assert plan.topic == "homeassistant/schedule/hc/state"
    assert dict(plan.mapping) == {"on": 2, "off": 1}


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"meters": [{"name": "M", "host": "h", "read_only": True}], **SCHEDULE},
         "a read-only meter cannot follow a tariff plan"),
        ({"meters": [{"name": "M", "host": "h"}], **SCHEDULE, "tariff_time_zone": "Mars/Base"},
         "'Mars/Base' is not an IANA time zone"),
        ({"meters": [{"name": "M", "host": "h"}], **SCHEDULE, "tariff_rules": [
            {"days": "mon", "from": "08:00", "to": "12:00", "tariff": "T2"},
            {"days": "mon-fri", "from": "11:00", "to": "13:00", "tariff": "T2"}]},
         "tariff_plans.app.rules[1]: overlaps tariff_plans.app.rules[0] on mon 11:00-12:00"),
        ({"meters": [{"name": "M", "host": "h"}], "tariff_mode": "signal",
          "tariff_signal_topic": "t", "tariff_signal_mapping": []},
         "tariff_plans.app.mapping"),
    ],
)  # fmt: skip
def test_bad_tariff_options_are_one_clear_line(options: dict[str, Any], problem: str) -> None:
    document = settings_document(options, Broker(host="b"), data_dir=Path("/d"))
    with pytest.raises(ConfigError, match=r"^invalid app option .*" + re.escape(problem)):
        validate(document)
