"""How to reach and poll one meter: the one model every front end maps its settings onto.

The daemon's YAML/environment settings, the app's options and the Home Assistant config
entry all end up as a :class:`MeterConfig`; defaults and limits live here only. Invalid
values raise :class:`~countis.errors.ConfigError` (a ``ValueError``) naming the field, so
a settings library that validates dataclasses reports them as its own field errors.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass

from countis.errors import ConfigError
from countis.tariff_plan import Schedule, TariffPlan, validate_schedule

DEFAULT_PORT = 502
DEFAULT_UNIT = 5  # the E27/E28 factory Modbus address (manual: "Modbus address 5")
DEFAULT_TIMEOUT = 3.0  # one request's round trip; a meter on the LAN answers in milliseconds
DEFAULT_REALTIME_INTERVAL = 2.0
DEFAULT_ENERGY_INTERVAL = 10.0
DEFAULT_OFFLINE_AFTER = 3  # failed polls in a row before a meter is reported offline
#: While a meter fails, retries wait at most this many realtime intervals (jitter aside), so
#: a meter that answers again is back within two poll intervals.
RETRY_MAX_FACTOR = 1.5
MIN_INTERVAL = 0.1
MAX_INTERVAL = 86_400.0
MAX_TIMEOUT = 60.0
MAX_OFFLINE_AFTER = 1_000
MAX_UNIT = 247  # 0 is the broadcast address (writes only), 248-255 are reserved
MAX_NAME = 100

_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")


def check_host(host: object) -> str:
    """``host`` if it is an IP address or a valid DNS name (IDNA rules); else ConfigError."""
    if not isinstance(host, str) or not host.strip():
        raise ConfigError("host: must not be empty")
    host = host.strip()
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        return host.strip("[]")
    if any(ord(c) < 0x20 or c in " /\\@:" for c in host):
        raise ConfigError(f"host: {host!r} is not a host name or IP address")
    try:
        ascii_name = host.encode("idna").decode("ascii")
    except UnicodeError as err:
        raise ConfigError(f"host: {host!r} is not a valid host name ({err})") from None
    labels = ascii_name.removesuffix(".").split(".")
    if len(ascii_name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ConfigError(f"host: {host!r} is not a valid host name")
    return host


def host_port(host: str, port: int) -> str:
    """``host:port`` as log lines and errors name an address (IPv6 in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _number(field: str, value: float, low: float, high: float) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or not low <= value <= high:
        raise ConfigError(f"{field}: must be a number from {low:g} to {high:g} (got {value!r})")


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterConfig:
    """One meter: where it is, how often to read it, what it may be asked to do."""

    host: str
    port: int = DEFAULT_PORT
    unit: int = DEFAULT_UNIT
    name: str | None = None  # display name (the daemon's topic slug comes from it)
    serial: str | None = None  # the expected serial number: another meter there is refused
    timeout: float = DEFAULT_TIMEOUT
    realtime_interval: float = DEFAULT_REALTIME_INTERVAL
    energy_interval: float = DEFAULT_ENERGY_INTERVAL
    offline_after: int = DEFAULT_OFFLINE_AFTER
    retry_max: float | None = None  # longest wait between retries; None: 1.5 x realtime
    read_only: bool = False  # refuse tariff and partial-meter commands
    tariff_broadcast: bool = False  # tariff writes go to unit 0: every meter at this address
    tariff_plan: TariffPlan | None = None  # the bridge switches T1/T2 by this plan

    def __post_init__(self) -> None:
        """Validate every field (ConfigError naming the first bad one)."""
        object.__setattr__(self, "host", check_host(self.host))
        _number("port", self.port, 1, 65535)
        _number("unit", self.unit, 1, MAX_UNIT)
        _number("timeout", self.timeout, 0.01, MAX_TIMEOUT)
        _number("realtime_interval", self.realtime_interval, MIN_INTERVAL, MAX_INTERVAL)
        _number("energy_interval", self.energy_interval, MIN_INTERVAL, MAX_INTERVAL)
        _number("offline_after", self.offline_after, 1, MAX_OFFLINE_AFTER)
        if self.retry_max is not None:
            _number("retry_max", self.retry_max, MIN_INTERVAL, MAX_INTERVAL)
        if self.name is not None:
            name = self.name.strip()
            if not name or len(name) > MAX_NAME or not name.isprintable():
                msg = f"name: must be 1 to {MAX_NAME} printable characters (got {self.name!r})"
                raise ConfigError(msg)
            object.__setattr__(self, "name", name)
        if self.serial is not None and not re.fullmatch(r"[0-9A-Za-z-]{1,32}", self.serial):
            raise ConfigError(f"serial: {self.serial!r} is not a COUNTIS serial number")
        if self.tariff_plan is not None:
            if self.read_only:
                raise ConfigError("tariff_plan: a read-only meter cannot follow a tariff plan")
            if isinstance(self.tariff_plan, Schedule):
                validate_schedule(self.tariff_plan)

    @property
    def retry_cap(self) -> float:
        """The longest wait between two attempts while the meter fails."""
        return self.retry_max or RETRY_MAX_FACTOR * self.realtime_interval

    @property
    def label(self) -> str:
        """How log lines name the meter."""
        return self.name or f"{self.where} unit {self.unit}"

    @property
    def address(self) -> tuple[str, int]:
        """The TCP endpoint, as meters are compared (host names are case-insensitive).

        Meters of one address sit behind one gateway: a tariff broadcast reaches them all.
        """
        return self.host.casefold(), self.port

    @property
    def where(self) -> str:
        """``host:port`` (IPv6 in brackets)."""
        return host_port(self.host, self.port)
