"""Settings of the MQTT bridge: YAML file, environment and command line (pydantic-settings).

The only module that reads configuration files and the environment. Library classes take
plain arguments; the daemon turns a :class:`Settings` into them.

Public API (stable):

- ``load_settings(path: Path | None, cli_overrides: Mapping[str, Any] | None = None)
  -> Settings``: precedence CLI overrides > environment > YAML file > defaults. Any problem
  (missing/unreadable file, bad YAML, unknown field, bad value, duplicate meter) raises
  :class:`countis.errors.ConfigError` with one line naming the field and the problem.
- ``settings_overrides_from_args(args) -> dict``: nested overrides from the ``run`` /
  ``discovery`` flags (``--mqtt-host``, ``--mqtt-port``, ...); unset flags are left out.
- ``Settings`` (frozen): ``mqtt: MqttSettings``, ``meters: tuple[MeterConfig, ...]``
  (:class:`countis.config.MeterConfig`, the library's one model of a meter, validated
  here as it is), ``offline_after: int`` (every meter's default), ``data_dir: Path``,
  ``log_level: str``.
- ``MqttSettings`` (frozen): host, port, username, password (``SecretStr | None``),
  client_id, keepalive, qos, tls (``TlsSettings``: enabled, ca_file, cert_file, key_file,
  insecure), base_topic, discovery_prefix, discovery_mode (``"device"|"entity"``),
  per_value_topics.
- A meter's ``name`` also makes its topic slug (:func:`countis_bridge.topics.slugify`;
  ``None`` = topics use the serial): it must have letters or digits and not be ``bridge``.

Validation is complete before anything starts: MQTT limits (keepalive <= 65535, every
string and the longest topic the bridge will build <= 65535 bytes of valid UTF-8, without
NUL or control characters), host names, finite numbers in range. The YAML file is screened
before it is loaded (:mod:`countis_bridge.config_file`). Whether ``data_dir`` is usable is
checked by the daemon before it connects (:func:`countis_bridge.service.prepare_data_dir`).

Environment variables use the ``COUNTIS_`` prefix and ``__`` for nesting
(``COUNTIS_MQTT__HOST``, ``COUNTIS_MQTT__TLS__ENABLED``); lists are JSON
(``COUNTIS_METERS='[{"name": "Main", "host": "192.168.0.4"}]'``). Relative paths are
relative to the working directory.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import unicodedata
import zoneinfo
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from countis.catalogue import VALUE_KEYS
from countis.config import DEFAULT_OFFLINE_AFTER, MAX_OFFLINE_AFTER, MeterConfig, check_host
from countis.errors import ConfigError
from countis.tariff_plan_parse import parse_plan
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from countis_bridge import topics
from countis_bridge.config_file import read_config_file, shorten
from countis_bridge.discovery import command_platforms
from countis_bridge.ports import MQTT_PORT
from countis_bridge.topics import RESERVED_SLUGS, slugify

ENV_PREFIX = "COUNTIS_"
#: MQTT strings (topics, client id, user name, password) are at most this many bytes.
MQTT_MAX_BYTES = 65_535
MQTT_MAX_KEEPALIVE = 65_535  # a 16-bit field of CONNECT
#: The longest serial number a meter can report (its slug and discovery topics use it).
_SERIAL_PLACEHOLDER = "X" * 32

_FROZEN = ConfigDict(frozen=True, extra="forbid")
# The YAML file's data for the settings source below; a context variable because
# pydantic-settings builds sources in a classmethod that cannot take arguments.
_FILE_DATA: ContextVar[Mapping[str, Any]] = ContextVar(
    "countis_settings_file", default=MappingProxyType({})
)


def _text(value: Any) -> Any:
    """YAML reads ``password: 1234`` as a number; such fields are text."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _mqtt_text(value: str, *, binary: bool = False) -> str:
    """An MQTT string: valid UTF-8 of at most 65535 bytes; no NUL or control characters.

    Brokers drop a client that sends a control character or a non-character in a topic,
    client id or user name (MQTT 3.1.1 section 1.5.3); a password is binary (length only).
    """
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"{shorten(value)} is not valid UTF-8 text (a lone surrogate)") from None
    if size > MQTT_MAX_BYTES:
        raise ValueError(f"{size} bytes long; MQTT allows at most {MQTT_MAX_BYTES}")
    if not binary and (bad := next((c for c in value if _forbidden(c)), None)) is not None:
        raise ValueError(f"{shorten(value)} contains the character U+{ord(bad):04X}")
    return value


def _forbidden(char: str) -> bool:
    """Control characters and Unicode non-characters (U+FDD0..U+FDEF, U+xxFFFE/F)."""
    code = ord(char)
    noncharacter = 0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE
    return noncharacter or unicodedata.category(char) == "Cc"


def _check_topic(value: str) -> str:
    """MQTT topic prefixes: no wildcards, no empty levels, no leading/trailing slash."""
    if not value:
        raise ValueError("must not be empty")
    _mqtt_text(value)
    if "+" in value or "#" in value:
        raise ValueError(f"{shorten(value)} must not contain the MQTT wildcards + or #")
    if value.startswith("/") or value.endswith("/") or "//" in value:
        raise ValueError(f"{shorten(value)} must not start or end with / or contain empty levels")
    return value


def longest_topic(base: str, prefix: str, slugs: Iterable[str]) -> str:
    """The longest topic the bridge builds for meters of these ``slugs`` (by UTF-8 bytes).

    A meter without a name uses its serial's slug: the longest serial stands in for it.
    """
    serial = _SERIAL_PLACEHOLDER
    key = max((*VALUE_KEYS, *command_platforms()), key=len)
    platform = max(("sensor", *command_platforms().values()), key=len)
    found = [
        topics.bridge_availability(base),
        topics.ha_status(prefix),
        topics.device_discovery(prefix, serial),
        topics.entity_discovery(prefix, platform, serial, key),
    ]
    for slug in (*slugs, slugify(serial)):
        found += [
            topics.meter_availability(base, slug),
            topics.response(base, slug),
            topics.command(base, slug, "partial"),
            topics.value(base, slug, key),
        ]
    return max(found, key=lambda topic: len(topic.encode("utf-8")))


class TlsSettings(BaseModel):
    """TLS towards the MQTT broker."""

    model_config = _FROZEN

    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False  # skip hostname verification (self-signed test brokers)

    @field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _exists(cls, value: Path | None) -> Path | None:
        if value is None:
            return value
        try:
            found = value.is_file()
        except OSError as err:  # is_file() raises for some errors: a name too long
            raise ValueError(f"cannot use {shorten(str(value))}: {err.strerror}") from None
        if not found:
            raise ValueError(f"file not found: {shorten(str(value))}")
        return value

    @field_validator("key_file")
    @classmethod
    def _key_needs_cert(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None and info.data.get("cert_file") is None:
            raise ValueError("key_file needs cert_file")
        return value


class MqttSettings(BaseModel):
    """The MQTT broker and the topic layout."""

    model_config = _FROZEN

    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=MQTT_PORT, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    client_id: str | None = None
    keepalive: int = Field(default=60, gt=0, le=MQTT_MAX_KEEPALIVE)
    qos: Literal[0, 1, 2] = 1
    tls: TlsSettings = TlsSettings()
    base_topic: str = "countis"
    discovery_prefix: str = "homeassistant"
    discovery_mode: Literal["device", "entity"] = "device"
    per_value_topics: bool = False

    @field_validator("username", "password", "client_id", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return _text(value)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        try:
            return check_host(value)
        except ConfigError as err:
            raise ValueError(str(err).removeprefix("host: ")) from None

    @field_validator("username", "client_id")
    @classmethod
    def _mqtt_string(cls, value: str | None) -> str | None:
        return None if value is None else _mqtt_text(value)

    @field_validator("password")
    @classmethod
    def _mqtt_password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                _mqtt_text(value.get_secret_value(), binary=True)
            except ValueError:
                raise ValueError("must be valid UTF-8 of at most 65535 bytes") from None
        return value

    @field_validator("base_topic", "discovery_prefix")
    @classmethod
    def _topic(cls, value: str) -> str:
        return _check_topic(value)


def _check_broadcast_plans(meters: tuple[MeterConfig, ...]) -> None:
    """Meters that broadcast tariffs to one address must follow one plan (or none).

    A broadcast switches every meter behind the address: two plans there would fight.
    """
    first: dict[tuple[str, int], int] = {}
    for i, meter in enumerate(meters):
        if not meter.tariff_broadcast:
            continue
        j = first.setdefault(meter.address, i)
        if meters[j].tariff_plan != meter.tariff_plan:
            msg = (
                f"meters[{i}].tariff_plan: meters[{j}] broadcasts tariffs to the same address"
                " with another plan; meters sharing a broadcast must share one plan"
            )
            raise ValueError(msg)


def _with_plan(index: int, meter: Any, plans: Mapping[str, Any]) -> Any:
    """A meter entry whose ``tariff_plan`` (a plan's name, or one inline) is parsed."""
    if not isinstance(meter, Mapping) or meter.get("tariff_plan") is None:
        return meter
    where = f"meters[{index}].tariff_plan"
    plan = meter["tariff_plan"]
    if isinstance(plan, str):
        if not isinstance(plans, Mapping) or plan not in plans:
            known = ", ".join(sorted(plans)) if isinstance(plans, Mapping) else ""
            raise ValueError(f"{where}: no tariff plan named {plan!r} (tariff_plans: {known})")
        where, plan = f"tariff_plans.{plan}", plans[plan]
    if not isinstance(plan, Mapping):
        msg = f"{where}: expected a plan (a mapping) or the name of one"
        raise ValueError(msg)  # noqa: TRY004 - pydantic reports ValueErrors as field errors
    # Friendly defaults: a plan with a topic follows a signal; a schedule runs in local time.
    plan = {"mode": "signal" if "topic" in plan else "schedule", **plan}
    if plan["mode"] == "schedule" and "time_zone" not in plan:
        plan["time_zone"] = local_time_zone()
    return {**meter, "tariff_plan": parse_plan(plan, where=where)}


def local_time_zone() -> str:
    """The system's IANA time zone: ``TZ``, else the target of /etc/localtime, else UTC.

    In the Home Assistant app, the Supervisor sets ``TZ`` to Home Assistant's time zone.
    """
    candidates = [os.environ.get("TZ", "").removeprefix(":")]
    with contextlib.suppress(OSError):
        target = os.path.realpath("/etc/localtime")
        candidates.append(target.partition("zoneinfo/")[2])
    for name in candidates:
        if name:
            with contextlib.suppress(ValueError, OSError):
                zoneinfo.ZoneInfo(name)
                return name
    return "UTC"


def _check_name(index: int, name: str) -> None:
    """A meter name must make a usable topic slug that is not the bridge's own."""
    slug = slugify(name)
    if not slug:
        msg = f"meters[{index}].name: {name!r} has no letters or digits to make a topic slug from"
        raise ValueError(msg)
    if slug in RESERVED_SLUGS:
        msg = (
            f"meters[{index}].name: {name!r} is reserved (topic slug {slug!r} is the bridge's own)"
        )
        raise ValueError(msg)


class _FileSource(PydanticBaseSettingsSource):
    """The YAML file's data (lowest priority above the defaults)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Unused: ``__call__`` returns the whole file at once."""
        return None, field_name, False  # pragma: no cover - not called by pydantic-settings

    def __call__(self) -> dict[str, Any]:
        """The file's settings as a (nested) dict."""
        return dict(_FILE_DATA.get())


class Settings(BaseSettings):
    """Everything the bridge daemon is configured with."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    mqtt: MqttSettings = MqttSettings()
    meters: tuple[MeterConfig, ...] = ()
    # Failed polls before a meter goes offline: every meter's default (a meter may set its own).
    offline_after: int = Field(default=DEFAULT_OFFLINE_AFTER, ge=1, le=MAX_OFFLINE_AFTER)
    data_dir: Path = Path("./countis-data")  # partial-meter start/stop state
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Named tariff plans meters refer to (``meters[].tariff_plan: <name>``); a meter may
    # also carry its plan inline.
    tariff_plans: dict[str, dict[str, Any]] = {}

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="before")
    @classmethod
    def _meter_defaults(cls, data: Any) -> Any:
        """Top-level ``offline_after`` is every meter's default; tariff plans are resolved."""
        if not isinstance(data, Mapping) or not isinstance(data.get("meters"), list | tuple):
            return data
        meters = list(data["meters"])
        if "offline_after" in data:
            default = {"offline_after": data["offline_after"]}
            meters = [{**default, **m} if isinstance(m, Mapping) else m for m in meters]
        plans = data.get("tariff_plans") or {}
        meters = [_with_plan(i, m, plans) for i, m in enumerate(meters)]
        return {**data, "meters": meters}

    @field_validator("meters", mode="before")
    @classmethod
    def _meter_text(cls, meters: Any) -> Any:
        """YAML reads ``name: 2024`` or ``host: 1234`` as numbers: such fields are text."""
        if not isinstance(meters, list | tuple):
            return meters
        texts = ("name", "host", "serial")
        return [
            {k: _text(v) if k in texts else v for k, v in m.items()}
            if isinstance(m, Mapping)
            else m
            for m in meters
        ]

    @field_validator("meters")
    @classmethod
    def _unique(cls, meters: tuple[MeterConfig, ...]) -> tuple[MeterConfig, ...]:
        names: dict[str, int] = {}
        slugs: dict[str, int] = {}
        targets: dict[tuple[tuple[str, int], int], int] = {}
        for i, meter in enumerate(meters):
            if meter.name is not None:
                _check_name(i, meter.name)
                if (first := names.setdefault(meter.name.casefold(), i)) != i:
                    msg = f"meters[{i}].name: duplicate meter name {meter.name!r} (meters[{first}])"
                    raise ValueError(msg)
                slug = slugify(meter.name)
                if (first := slugs.setdefault(slug, i)) != i:
                    msg = (
                        f"meters[{i}].name: {meter.name!r} has the same topic slug {slug!r}"
                        f" as meters[{first}]"
                    )
                    raise ValueError(msg)
            target = (meter.address, meter.unit)
            if (first := targets.setdefault(target, i)) != i:
                msg = f"meters[{i}]: same host, port and unit as meters[{first}]"
                raise ValueError(msg)
        _check_broadcast_plans(meters)
        return meters

    @field_validator("data_dir")
    @classmethod
    def _path(cls, value: Path) -> Path:
        """A path the operating system can take (whether it is usable: at start-up)."""
        text = str(value)
        if "\0" in text:
            raise ValueError(f"{shorten(text)} contains a NUL character")
        try:
            os.fsencode(text)
        except UnicodeEncodeError:
            raise ValueError(f"{shorten(text)} cannot be a file name here") from None
        return value

    @model_validator(mode="after")
    def _topic_lengths(self) -> Settings:
        """Every topic the bridge will build fits MQTT's 65535 bytes."""
        mqtt = self.mqtt
        slugs = [slugify(m.name) for m in self.meters if m.name is not None]
        topic = longest_topic(mqtt.base_topic, mqtt.discovery_prefix, slugs)
        size = len(topic.encode("utf-8"))
        if size > MQTT_MAX_BYTES:
            field = "base_topic" if topic.startswith(mqtt.base_topic) else "discovery_prefix"
            msg = (
                f"mqtt.{field}: topics such as {shorten(topic, 40)} would be {size} bytes long;"
                f" MQTT allows at most {MQTT_MAX_BYTES}"
            )
            raise ValueError(msg)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """CLI overrides (init kwargs) > environment > YAML file; no dotenv, no secrets dir."""
        return init_settings, env_settings, _FileSource(settings_cls)


_FIELD_PROBLEM = re.compile(r"^([a-z_]+): (.+)$", re.S)


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(error: ErrorDetails) -> str:
    """One error as ``field: problem`` (inputs shown for scalars, never for passwords)."""
    where = _location(error["loc"])
    kind = error["type"]
    problem = error["msg"].removeprefix("Value error, ")
    if kind == "value_error" and (named := _FIELD_PROBLEM.match(problem)):
        # A library model names its own field ("port: must be ..."): join it to the place.
        where, problem = f"{where}.{named.group(1)}", named.group(2)
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        problem = "unknown field"
    elif kind == "missing":
        problem = "required field is missing"
    else:
        value = error.get("input")
        secret = "password" in where
        # Already quoted by the message (e.g. "file not found: <path>")?
        shown = isinstance(value, str) and (value in problem or shorten(value) in problem)
        if isinstance(value, int | float | str) and not secret and not shown:
            problem += f" (got {shorten(value) if isinstance(value, str) else repr(value)})"
    if problem.startswith(("meters[", "mqtt.")) and where == "meters":
        return problem  # the validator already named the exact field
    return f"{where}: {problem}" if where else problem


def load_settings(path: Path | None, cli_overrides: Mapping[str, Any] | None = None) -> Settings:
    """Settings from the YAML file ``path`` (optional), the environment and CLI overrides."""
    return settings_from_mapping(read_config_file(path) if path is not None else {}, cli_overrides)


def settings_from_mapping(
    data: Mapping[str, Any], cli_overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Settings from a document (as a YAML file holds), the environment and CLI overrides."""
    token = _FILE_DATA.set(data)
    try:
        return Settings(**dict(cli_overrides or {}))
    except ValidationError as err:
        errors = err.errors()
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ConfigError(f"invalid setting {_describe(errors[0])}{more}") from err
    except SettingsError as err:  # e.g. COUNTIS_METERS that is not valid JSON
        field = re.search(r'field "(\w+)"', str(err))
        name = f"{ENV_PREFIX}{field.group(1).upper()}" if field else f"{ENV_PREFIX}*"
        raise ConfigError(f"invalid environment variable {name}: not valid JSON") from err
    except (ValueError, TypeError, OverflowError, RecursionError) as err:
        # Not a field error: e.g. JSON nested too deep in a COUNTIS_* variable.
        raise ConfigError(f"invalid settings: {shorten(str(err))}") from None
    finally:
        _FILE_DATA.reset(token)


#: argparse destination -> nested settings path, for the ``run`` / ``discovery`` flags.
CLI_FLAGS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("mqtt_host", ("mqtt", "host")),
    ("mqtt_port", ("mqtt", "port")),
    ("mqtt_username", ("mqtt", "username")),
    ("mqtt_client_id", ("mqtt", "client_id")),
    ("base_topic", ("mqtt", "base_topic")),
    ("discovery_prefix", ("mqtt", "discovery_prefix")),
    ("discovery_mode", ("mqtt", "discovery_mode")),
    ("data_dir", ("data_dir",)),
    ("offline_after", ("offline_after",)),
)


def settings_overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Nested CLI overrides for :func:`load_settings` from parsed ``run``/``discovery`` args.

    Flags left unset (``None``) are omitted so the environment and the file still apply;
    that includes the global ``--log-level``.
    """
    overrides: dict[str, Any] = {}
    for dest, path in CLI_FLAGS:
        value = getattr(args, dest, None)
        if value is None:
            continue
        node = overrides
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    log_level = getattr(args, "log_level", None)
    if log_level is not None:
        overrides["log_level"] = log_level
    return overrides
