"""The add-on's files against the Home Assistant add-on configuration rules.

The rules are those of the developer documentation ("Add-on configuration") as the
Supervisor enforces them (its config, build and translation schemas and its option
validator): required keys, allowed values, schema element grammar, nesting depth, options
that validate against their own schema, translations for every option. Also the Dockerfile
(builds this repository's package, starts the add-on entrypoint) and the images.
"""

from __future__ import annotations

import json
import re
import shlex
import struct
import tomllib
import zlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from countis.config import DEFAULT_ENERGY_INTERVAL, DEFAULT_REALTIME_INTERVAL

from countis_bridge.app import Broker, settings_document
from countis_bridge.settings import MqttSettings

ROOT = Path(__file__).resolve().parents[2]
ADDON = ROOT / "addon"

# --- the rules (Home Assistant developer docs, add-ons/configuration) ---------------------

REQUIRED_KEYS = ("name", "version", "slug", "description", "arch")
ARCHES = {"armhf", "armv7", "aarch64", "amd64", "i386"}
STARTUP = {"initialize", "system", "services", "application", "once"}
BOOT = {"auto", "manual", "manual_only"}
RE_SLUG = re.compile(r"^[-_.A-Za-z0-9]+$")
RE_SERVICE = re.compile(r"^(?P<service>mqtt|mysql):(?P<rights>provide|want|need)$")
RE_WATCHDOG = re.compile(r"^(?:https?|\[PROTO:\w+\]|tcp):\/\/\[HOST\]:(\[PORT:\d+\]|\d+).*$")
RE_IMAGE = re.compile(r"^([a-zA-Z\-\.:\d{}]+/)*?([\-\w{}]+)/([\-\w{}]+)(:[\.\-\w{}]+)?$")
# The option schema grammar: str, bool, int, float (with ranges), email, url, password,
# port, match(REGEX), list(a|b), device; a trailing ? makes an option optional.
RE_SCHEMA_ELEMENT = re.compile(
    r"^(?:"
    r"|bool"
    r"|email"
    r"|url"
    r"|port"
    r"|device(?:\((?P<filter>subsystem=[a-z]+)\))?"
    r"|str(?:\((?P<s_min>\d+)?,(?P<s_max>\d+)?\))?"
    r"|password(?:\((?P<p_min>\d+)?,(?P<p_max>\d+)?\))?"
    r"|int(?:\((?P<i_min>\d+)?,(?P<i_max>\d+)?\))?"
    r"|float(?:\((?P<f_min>[\d\.]+)?,(?P<f_max>[\d\.]+)?\))?"
    r"|match\((?P<match>.*)\)"
    r"|list\((?P<list>.+)\)"
    r")\??$"
)
BOOLEAN_KEYS = {"init", "advanced", "ingress", "host_network", "hassio_api", "homeassistant_api"}


def load(name: str) -> Any:
    return yaml.safe_load((ADDON / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return load("config.yaml")


@pytest.fixture(scope="module")
def translations() -> dict[str, Any]:
    return load("translations/en.yaml")


def check_element(typ: str, value: Any) -> None:
    """Validate one option value like the Supervisor's option validator does."""
    match = RE_SCHEMA_ELEMENT.match(typ)
    assert match, f"unknown schema type {typ!r}"
    base = typ.rstrip("?")

    def bounds(lo: str, hi: str) -> tuple[float | None, float | None]:
        return (
            float(match[lo]) if match[lo] else None,
            float(match[hi]) if match[hi] else None,
        )

    def in_range(number: float, lo: float | None, hi: float | None) -> None:
        assert lo is None or number >= lo, f"{number} < {lo} ({typ})"
        assert hi is None or number <= hi, f"{number} > {hi} ({typ})"

    if base.startswith(("str", "password")):
        assert isinstance(value, str), f"{value!r} is not text ({typ})"
    elif base.startswith("int"):
        assert isinstance(value, int), f"{value!r} ({typ})"
        assert not isinstance(value, bool), f"{value!r} ({typ})"
        in_range(value, *bounds("i_min", "i_max"))
    elif base.startswith("float"):
        assert isinstance(value, int | float), value
        assert not isinstance(value, bool), value
        in_range(float(value), *bounds("f_min", "f_max"))
    elif base == "bool":
        assert isinstance(value, bool), f"{value!r} is not a bool ({typ})"
    elif base == "port":
        assert isinstance(value, int), value
        assert 1 <= value <= 65535, value
    elif base.startswith("match"):
        assert re.match(match["match"], str(value)), f"{value!r} does not match {typ}"
    elif base.startswith("list"):
        assert str(value) in match["list"].split("|"), f"{value!r} not in {typ}"
    elif base == "url":
        assert re.match(r"^https?://\S+$", str(value)), value
    elif base == "email":
        assert re.match(r"^[^@\s]+@[^@\s]+$", str(value)), value
    else:  # pragma: no cover - the add-on uses no devices
        pytest.fail(f"unexpected type {typ}")


def optional(schema: Any) -> bool:
    """Whether a missing option is fine (``?`` types; a list decides by its element)."""
    if isinstance(schema, list) and schema:
        schema = schema[0]
    return isinstance(schema, str) and schema.endswith("?")


def check_options(schema: dict[str, Any], options: dict[str, Any], where: str = "") -> None:
    """The Supervisor's option validation (nested lists and dicts, missing options)."""
    for key, value in options.items():
        assert key in schema, f"option {where}{key} has no schema"
        typ = schema[key]
        if isinstance(typ, list):
            assert isinstance(value, list), f"{where}{key} must be a list"
            for item in value:
                if isinstance(typ[0], dict):
                    check_options(typ[0], item, f"{where}{key}[].")
                else:
                    check_element(typ[0], item)
        elif isinstance(typ, dict):
            assert isinstance(value, dict), f"{where}{key} must be a mapping"
            check_options(typ, value, f"{where}{key}.")
        else:
            check_element(typ, value)
    missing = [k for k in set(schema) - set(options) if not optional(schema[k])]
    assert not missing, f"required options without a value in {where or 'options'}: {missing}"


def schema_depth(schema: Any) -> int:
    if isinstance(schema, list):
        return schema_depth(schema[0])
    if isinstance(schema, dict):
        return 1 + max((schema_depth(v) for v in schema.values()), default=0)
    return 0


def check_schema(schema: Any, *, in_list: bool = False) -> None:
    """Schema elements: types of the grammar, lists of one element, no list in a list."""
    if isinstance(schema, dict):
        for value in schema.values():
            check_schema(value)
    elif isinstance(schema, list):
        assert not in_list, "a list may not directly contain another list"
        assert len(schema) == 1, "a list schema has exactly one element"
        check_schema(schema[0], in_list=True)
    else:
        assert isinstance(schema, str), schema
        assert RE_SCHEMA_ELEMENT.match(schema), f"unknown schema type {schema!r}"


# --- config.yaml ----------------------------------------------------------------------------


def test_required_keys(config: dict[str, Any]) -> None:
    for key in REQUIRED_KEYS:
        assert config.get(key), f"config.yaml lacks {key}"
    assert all(isinstance(config[k], str) for k in ("name", "version", "slug", "description"))
    assert RE_SLUG.match(config["slug"])
    assert config["slug"] == "countis_bridge"


def test_version_is_the_package_version(config: dict[str, Any]) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert config["version"] == project["project"]["version"]


def test_values_are_allowed(config: dict[str, Any]) -> None:
    assert set(config["arch"]) == {"aarch64", "amd64"}
    assert set(config["arch"]) <= ARCHES
    assert set(config["arch"]) == {"aarch64", "amd64"}  # what the Supervisor supports
    assert config["startup"] == "services"
    assert config["startup"] in STARTUP
    assert config["boot"] in BOOT
    assert config["services"] == ["mqtt:need"]
    assert all(RE_SERVICE.match(s) for s in config["services"])
    assert re.match(r"^https?://\S+$", config["url"])
    assert RE_IMAGE.match(config["image"]), config["image"]
    # One multi-arch image (a manifest list), not one name per architecture.
    assert "{arch}" not in config["image"]
    for key in BOOLEAN_KEYS & set(config):
        assert isinstance(config[key], bool), key
    if "watchdog" in config:
        assert RE_WATCHDOG.match(config["watchdog"])


def test_s6_overlay_base_images_need_init_false(config: dict[str, Any]) -> None:
    # The base images run s6-overlay v3, which must be PID 1 (developer docs, init key).
    assert config["init"] is False


def test_schema_grammar(config: dict[str, Any]) -> None:
    check_schema(config["schema"])
    assert schema_depth(config["schema"]) <= 2, "nesting deeper than two levels"


def test_default_options_validate_against_the_schema(config: dict[str, Any]) -> None:
    check_options(config["schema"], config["options"])
    assert set(config["options"]) == set(config["schema"]), "every option has a default"


def test_schema_covers_the_documented_options(config: dict[str, Any]) -> None:
    schema = config["schema"]
    meter = {"name", "host", "port", "unit", "read_only", "follow_tariff_plan"}
    assert set(schema["meters"][0]) == meter
    assert set(schema["mqtt"]) == {"host", "port", "username", "password"}
    assert schema["mqtt"]["password"] == "password?"
    assert schema["discovery_mode"] == "list(device|entity)"
    assert schema["log_level"].startswith("list(")
    assert schema["emulate"] == "bool"
    assert schema["meters"][0]["port"].rstrip("?") == "port"


def user_options(**changes: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "meters": [
            {"name": "Main", "host": "192.168.0.4", "port": 502, "unit": 5, "read_only": False},
            {"name": "Heat pump", "host": "192.168.0.5"},
        ],
        "realtime_interval": 1.5,
        "energy_interval": 30,
        "discovery_prefix": "homeassistant",
        "base_topic": "site/countis",
        "discovery_mode": "entity",
        "per_value_topics": True,
        "mqtt": {"host": "broker.lan", "port": 8883, "username": "u", "password": "p"},
        "log_level": "debug",
        "emulate": True,
        "tariff_mode": "schedule",
        "tariff_time_zone": "Europe/Paris",
        "tariff_default": "T1",
        "tariff_rules": [{"days": "mon-sun", "from": "22:00", "to": "06:00", "tariff": "T2"}],
        "tariff_holidays": ["2026-12-25"],
        "tariff_holiday_tariff": "T2",
        "tariff_signal_topic": "",
        "tariff_signal_mapping": [],
    }
    options.update(changes)
    return options


def test_a_full_user_configuration_validates(config: dict[str, Any]) -> None:
    check_options(config["schema"], user_options())


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"base_topic": "countis/#"}, "does not match"),
        ({"discovery_prefix": "/homeassistant"}, "does not match"),
        ({"discovery_mode": "both"}, "not in"),
        ({"log_level": "trace"}, "not in"),
        ({"realtime_interval": 0.1}, "<"),
        ({"meters": [{"name": "Main", "host": "h", "unit": 300}]}, ">"),
        ({"meters": [{"host": "h"}]}, "required options"),
        ({"mqtt": {"port": 70000}}, "70000"),
    ],
)
def test_the_schema_rejects_bad_values(
    config: dict[str, Any], change: dict[str, Any], problem: str
) -> None:
    with pytest.raises(AssertionError, match=re.escape(problem)):
        check_options(config["schema"], user_options(**change))


def test_the_app_defaults_are_the_bridge_defaults(config: dict[str, Any]) -> None:
    defaults = config["options"]
    assert defaults["realtime_interval"] == DEFAULT_REALTIME_INTERVAL
    assert defaults["energy_interval"] == DEFAULT_ENERGY_INTERVAL
    mqtt = MqttSettings()
    for option in ("base_topic", "discovery_prefix", "discovery_mode", "per_value_topics"):
        assert defaults[option] == getattr(mqtt, option), option
    document = settings_document(
        {**defaults, "meters": [{"name": "M", "host": "h"}]}, Broker(host="b"), data_dir=Path("/d")
    )
    assert document["log_level"] == "INFO"


# --- translations/en.yaml -------------------------------------------------------------------


def check_translation(entry: Any, where: str) -> None:
    assert isinstance(entry, dict), where
    for key in ("name", "description"):
        assert isinstance(entry.get(key), str), f"{where}: {key}"
        assert entry[key].strip(), f"{where}: empty {key}"
    assert set(entry) <= {"name", "description", "fields"}, where


def test_every_option_is_translated(config: dict[str, Any], translations: dict[str, Any]) -> None:
    assert set(translations) <= {"configuration", "network"}
    configuration = translations["configuration"]
    assert set(configuration) == set(config["schema"]), "translated keys = schema keys"
    for key, schema in config["schema"].items():
        check_translation(configuration[key], key)
        nested = schema[0] if isinstance(schema, list) else schema
        if isinstance(nested, dict):
            fields = configuration[key].get("fields")
            assert isinstance(fields, dict), f"{key}: nested fields need translations"
            assert set(fields) == set(nested), f"{key}: translated fields = schema fields"
            for name in nested:
                check_translation(fields[name], f"{key}.{name}")
        else:
            assert "fields" not in configuration[key], key


# --- Dockerfile -----------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (ADDON / "Dockerfile").read_text(encoding="utf-8")
    logical: list[str] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    pairs = []
    for entry in logical:
        instruction, _, args = entry.partition(" ")
        pairs.append((instruction.upper(), args.strip()))
    return pairs


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"use the exec form: {args}"
    return value


# The official multi-arch Python images of home-assistant/docker-base: one tag for every
# architecture (the per-arch "{arch}-base-python" names and build.yaml are the old way).
BASE_IMAGE = re.compile(r"^ghcr\.io/home-assistant/base-python:3\.(\d+)-alpine3\.(\d+)$")


def test_the_base_image_is_the_multi_arch_python_image() -> None:
    assert not (ADDON / "build.yaml").exists(), "the Dockerfile's BUILD_FROM names the base"
    steps = dockerfile_instructions()
    kind, first_arg = steps[0]
    assert kind == "ARG"
    assert first_arg.startswith("BUILD_FROM=")
    match = BASE_IMAGE.match(first_arg.removeprefix("BUILD_FROM="))
    assert match, first_arg
    assert int(match.group(1)) >= 13  # a Python the daemon supports, as Home Assistant's
    assert int(match.group(2)) >= 22  # an Alpine release the images are still built on
    assert next(a for k, a in steps if k == "FROM") == "${BUILD_FROM}"


def test_the_image_is_labelled_an_app() -> None:
    labels = dict(
        re.findall(
            r'([\w.]+)="([^"]*)"', " ".join(a for k, a in dockerfile_instructions() if k == "LABEL")
        )
    )
    assert labels["io.hass.type"] == "app"  # "addon" is the legacy value
    assert labels["io.hass.name"] == "COUNTIS Bridge"
    assert labels["io.hass.version"] == "${BUILD_VERSION}"


def test_dockerfile_builds_the_package_from_the_repository() -> None:
    steps = dockerfile_instructions()
    kinds = [kind for kind, _ in steps]

    copies = [shlex.split(a) for k, a in steps if k == "COPY"]
    sources = {src for copy in copies for src in copy[:-1]}
    assert {"pyproject.toml", "README.md", "lib", "countis_bridge"} <= sources
    runs = " ".join(a for k, a in steps if k == "RUN")
    assert "pip install ./lib ." in runs, runs
    # Installed at build time, checked at build time: no network when the add-on runs.
    assert kinds.index("RUN") > max(i for i, k in enumerate(kinds) if k == "COPY")
    ignore = (ADDON / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
    assert ignore[ignore.index("*") :][:1] == ["*"]
    assert {"!pyproject.toml", "!README.md", "!lib/", "!countis_bridge/"} <= set(ignore)


def test_dockerfile_starts_the_app_entrypoint() -> None:
    steps = dockerfile_instructions()
    assert not [a for k, a in steps if k == "ENTRYPOINT"], "the base image's /init stays PID 1"
    cmd = exec_form(next(a for k, a in steps if k == "CMD"))
    # The same entrypoint the integration test runs: python -m countis_bridge.app
    assert cmd == ["python3", "-m", "countis_bridge.app"]
    health = next(a for k, a in steps if k == "HEALTHCHECK")
    options, _, command = health.partition(" CMD ")
    assert "--start-period=" in options
    assert exec_form(command) == [*cmd, "health"]


# --- images and repository ------------------------------------------------------------------


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name}: not a PNG"
    offset, idat = 8, b""
    size = (0, 0)
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc, f"{path.name}: bad CRC in {kind!r}"
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            size = (width, height)
            assert (depth, colour) == (8, 6), "8-bit RGBA"
        idat += body if kind == b"IDAT" else b""
        offset += 12 + length
    assert kind == b"IEND"
    assert len(zlib.decompress(idat)) == size[1] * (1 + 4 * size[0])
    return size


def test_icon_and_logo() -> None:
    assert png_size(ADDON / "icon.png") == (128, 128)
    width, height = png_size(ADDON / "logo.png")
    assert 200 <= width <= 300
    assert 80 <= height <= 120


def test_docs_and_changelog_exist(config: dict[str, Any]) -> None:
    docs = (ADDON / "DOCS.md").read_text(encoding="utf-8")
    for option in config["schema"]:
        assert f"`{option}`" in docs, f"DOCS.md does not explain {option}"
    changelog = (ADDON / "CHANGELOG.md").read_text(encoding="utf-8")
    assert config["version"] in changelog


def test_repository_yaml() -> None:
    repository = yaml.safe_load((ROOT / "repository.yaml").read_text(encoding="utf-8"))
    assert repository["name"]
    assert repository["url"].startswith("https://")
