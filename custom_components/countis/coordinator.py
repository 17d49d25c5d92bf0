"""One DataUpdateCoordinator per meter: fetch through the meter session, translate errors.

The session (countis.session.MeterSession, the same one the MQTT daemon drives) decides
what a poll reads (realtime values every tick, energies when their interval is due),
identifies the meter on every new connection, runs each reading through the partial meters
and the counter guard, and keeps the last accepted value of every key: no implausible
counter value ever reaches Home Assistant's state machine (and so the recorder).

Why one coordinator and not one per poll group: a meter is one Modbus connection, and it
is either reachable or not. With one coordinator every entity goes unavailable and comes
back together, and the outage is logged once when it starts and once when it ends (the
coordinator's own "Error fetching" / "recovered" lines).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.storage import Store
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed
from homeassistant.util import dt as dt_util

from countis.config import DEFAULT_ENERGY_INTERVAL, DEFAULT_REALTIME_INTERVAL, MeterConfig
from countis.errors import (
    CommandError,
    MeterConnectionError,
    MeterError,
    MeterTimeoutError,
    ModbusExceptionError,
    NotACountisError,
    ReadOnlyError,
    WrongMeterError,
)
from countis.models import MeterIdentity, PartialAction, ValueType
from countis.session import MeterSession
from countis.tariff_plan_parse import parse_plan

from . import const
from .const import (
    CONF_COMMANDS,
    CONF_ENERGY_INTERVAL,
    CONF_REALTIME_INTERVAL,
    CONF_TARIFF_PLAN,
    CONF_UNIT,
    DEFAULT_COMMANDS,
    DOMAIN,
    LOGGER,
    STORAGE_VERSION,
    storage_key,
)

# Persist the partial state (its last raw values) about this often between commands;
# Home Assistant's Store also writes pending data when it shuts down.
PARTIAL_SAVE_INTERVAL = timedelta(seconds=60)

type CountisConfigEntry = ConfigEntry[CountisRuntimeData]


@dataclass(frozen=True, slots=True, kw_only=True)
class CountisData:
    """What the entities show: accepted values plus the raw reading behind them."""

    values: Mapping[str, ValueType]  # after partial start/stop and the counter guard
    raw: Mapping[str, ValueType]  # as read from the meter (diagnostics)
    timestamp: float | None  # of the newest reading
    plan: Mapping[str, Any]  # the tariff master's view (empty without a plan)

    def __post_init__(self) -> None:
        """Freeze the mappings."""
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))
        object.__setattr__(self, "raw", MappingProxyType(dict(self.raw)))
        object.__setattr__(self, "plan", MappingProxyType(dict(self.plan)))


@dataclass(slots=True, kw_only=True)
class CountisRuntimeData:
    """Everything a loaded entry holds (``entry.runtime_data``)."""

    coordinator: CountisCoordinator
    store: PartialStore


def option(entry: ConfigEntry, key: str) -> Any:
    """An option of the entry, or its default."""
    defaults = {
        CONF_REALTIME_INTERVAL: DEFAULT_REALTIME_INTERVAL,
        CONF_ENERGY_INTERVAL: DEFAULT_ENERGY_INTERVAL,
        CONF_COMMANDS: DEFAULT_COMMANDS,
    }
    return entry.options.get(key, defaults[key])


def meter_config(entry: ConfigEntry) -> MeterConfig:
    """The entry as the library's meter configuration (the serial is the entry's own)."""
    saved_plan = entry.options.get(CONF_TARIFF_PLAN)
    return MeterConfig(
        host=entry.data[CONF_HOST],
        port=entry.data[CONF_PORT],
        unit=entry.data[CONF_UNIT],
        serial=entry.unique_id,
        name=entry.title,
        timeout=const.TIMEOUT,
        realtime_interval=float(option(entry, CONF_REALTIME_INTERVAL)),
        energy_interval=float(option(entry, CONF_ENERGY_INTERVAL)),
        read_only=not option(entry, CONF_COMMANDS),
        # Home Assistant marks entities unavailable at the first failed update.
        offline_after=1,
        tariff_plan=parse_plan(saved_plan) if saved_plan else None,
    )


def where(entry: ConfigEntry) -> dict[str, str]:
    """Translation placeholders naming the meter's address."""
    return {"host": str(entry.data[CONF_HOST]), "port": str(entry.data[CONF_PORT])}


def translate_error[E: HomeAssistantError](kind: type[E], err: MeterError, entry: ConfigEntry) -> E:
    """A translated Home Assistant error of type ``kind`` for a meter error."""
    placeholders = {**where(entry), "error": str(err)}
    if isinstance(err, MeterTimeoutError):
        key = "timeout"
    elif isinstance(err, MeterConnectionError):
        key = "cannot_connect"
    elif isinstance(err, WrongMeterError):
        key = "wrong_meter"
        placeholders |= {"found": err.found, "expected": err.expected}
    elif isinstance(err, NotACountisError):
        key = "not_countis"
    elif isinstance(err, ReadOnlyError):
        key = "read_only"
    elif isinstance(err, CommandError):
        key = "command_failed"
    elif isinstance(err, ModbusExceptionError):
        key = "modbus_exception"
        placeholders["code"] = str(err.code)
    else:
        key = "communication_error"
    return kind(
        translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders
    )


class HomeAssistantClock:
    """The session's clock in Home Assistant: its idea of now, for stamps and schedule alike.

    The coordinator's own timer runs on Home Assistant's time; the session decides on the
    same time whether energies are due (and tests that move Home Assistant's time move it).
    """

    def time(self) -> float:
        """Unix time, as Home Assistant sees it."""
        return dt_util.utcnow().timestamp()

    def monotonic(self) -> float:
        """The same seconds (the schedule only compares them)."""
        return self.time()


class PartialStore:
    """The partial-meter state in Home Assistant's storage, one Store per meter serial."""

    def __init__(self, hass: HomeAssistant) -> None:
        """No Store is opened before the session asks for one."""
        self._hass = hass
        self._stores: dict[str, Store[dict[str, Any]]] = {}
        self._latest: dict[str, dict[str, Any]] = {}
        self._save_at: datetime | None = None

    def _store(self, serial: str) -> Store[dict[str, Any]]:
        if serial not in self._stores:
            self._stores[serial] = Store(self._hass, STORAGE_VERSION, storage_key(serial))
        return self._stores[serial]

    async def load(self, serial: str) -> Mapping[str, Any] | None:
        """The saved state of a meter, or None."""
        return await self._store(serial).async_load()

    def save(self, serial: str, state: Mapping[str, Any], *, urgent: bool) -> None:
        """Write a command's change soon; routine ones at most every minute.

        Store.async_delay_save restarts its timer on every call: aim every routine call at
        the same moment so polls more frequent than the interval do not postpone it forever.
        """
        now = dt_util.utcnow()
        if urgent or self._save_at is None:
            self._save_at = now if urgent else now + PARTIAL_SAVE_INTERVAL
        delay = max(0.0, (self._save_at - now).total_seconds())
        if delay == 0:
            self._save_at = None
        data = self._latest[serial] = dict(state)
        self._store(serial).async_delay_save(lambda: data, delay)

    async def async_flush(self) -> None:
        """Write the latest state of every meter now (unload)."""
        for serial, data in self._latest.items():
            await self._store(serial).async_save(data)


class CountisCoordinator(DataUpdateCoordinator[CountisData]):
    """Polls one meter through its session."""

    config_entry: CountisConfigEntry

    def __init__(
        self, hass: HomeAssistant, entry: CountisConfigEntry, session: MeterSession
    ) -> None:
        """Tick at the shorter interval; the session reads energies when they are due."""
        config = session.config
        tick = min(config.realtime_interval, config.energy_interval)
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"COUNTIS {entry.unique_id}",
            update_interval=timedelta(seconds=tick),
        )
        self.session = session
        # Ticks jitter by a fraction of a second: read energies on the tick nearest their
        # interval, not one tick late.
        self._early = tick / 2

    @property
    def identity(self) -> MeterIdentity:
        """The meter's identity (known once the first refresh succeeded)."""
        identity = self.session.identity
        assert identity is not None, "read before the first refresh"
        return identity

    async def _async_update_data(self) -> CountisData:
        """Read the meter through the session: realtime always, energies when due."""
        try:
            await self.session.poll(early=self._early, force=True)
        except WrongMeterError as err:
            self._wrong_meter(err)
            raise translate_error(UpdateFailed, err, self.config_entry) from err
        except MeterError as err:
            raise translate_error(UpdateFailed, err, self.config_entry) from err
        ir.async_delete_issue(self.hass, DOMAIN, self._issue_id)
        return self._data()

    def _data(self) -> CountisData:
        session = self.session
        return CountisData(
            values=session.values,
            raw=session.raw,
            timestamp=session.timestamp,
            plan=session.tariff_state(),
        )

    def tariff_signal(self, state: str) -> None:
        """The followed entity changed: switch at once when its state asks for it."""
        if self.session.tariff_signal(state):
            # Not the debounced request: a switch is due now, not after a cooldown.
            self.hass.async_create_task(self.async_refresh())

    @property
    def _issue_id(self) -> str:
        return f"wrong_meter_{self.config_entry.entry_id}"

    def _wrong_meter(self, err: WrongMeterError) -> None:
        """Another meter answers at the address: tell the user (a repair issue)."""
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            self._issue_id,
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key="wrong_meter",
            translation_placeholders={
                **where(self.config_entry),
                "found": err.found,
                "expected": err.expected,
                "title": self.config_entry.title,
            },
        )

    async def _command(self, command: Callable[[], Awaitable[object]]) -> None:
        """Run a meter command; errors become translated HomeAssistantErrors."""
        try:
            await command()
        except MeterError as err:
            raise translate_error(HomeAssistantError, err, self.config_entry) from err
        self.async_set_updated_data(self._data())

    async def async_set_tariff(self, tariff: int) -> None:
        """Switch the meter to tariff 1 or 2 (confirmed by read-back)."""
        await self._command(lambda: self.session.set_tariff(tariff))

    async def async_partial(self, action: PartialAction) -> None:
        """Start, stop (in Home Assistant) or reset (in the meter) the partial meters."""
        await self._command(lambda: self.session.partial_command(action))
