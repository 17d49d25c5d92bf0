"""One DataUpdateCoordinator per meter: realtime values every tick, energies when due.

Why one coordinator and not one per poll group: a meter is one Modbus connection, and it
is either reachable or not. With one coordinator every entity goes unavailable and comes
back together, the outage is logged once when it starts and once when it ends (the
coordinator's own "Error fetching" / "recovered" lines), and a command can refresh
everything in one call. The energy group is read on the tick where its interval has
elapsed (and always after a failure or a command), so the meter sees the same requests as
with two timers.

Each energy reading goes through the partial-meter state machine (start/stop run here, not
in the meter) and then through the counter guard, so no implausible counter value ever
reaches the state machine of Home Assistant (and so the recorder).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.storage import Store
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed
from homeassistant.util import dt as dt_util

from countis.catalogue import Group, keys_for_groups
from countis.client import MeterClient
from countis.errors import (
    CommandError,
    MeterConnectionError,
    MeterError,
    MeterTimeoutError,
    ModbusExceptionError,
    NotACountisError,
)
from countis.guard import CounterGuard
from countis.models import MeterIdentity, MeterReading, PartialAction, ValueType
from countis.partial import PartialMeter

from .const import (
    CONF_COMMANDS,
    CONF_ENERGY_INTERVAL,
    CONF_REALTIME_INTERVAL,
    DEFAULT_COMMANDS,
    DEFAULT_ENERGY_INTERVAL,
    DEFAULT_REALTIME_INTERVAL,
    DOMAIN,
    LOGGER,
)

REALTIME_KEYS = keys_for_groups({Group.REALTIME})
ENERGY_KEYS = keys_for_groups({Group.ENERGY})
ALL_KEYS = REALTIME_KEYS + ENERGY_KEYS
# Persist the partial state (its last raw values) about this often between commands;
# Home Assistant's Store also writes pending data when it shuts down.
PARTIAL_SAVE_INTERVAL = timedelta(seconds=60)

type CountisConfigEntry = ConfigEntry[CountisRuntimeData]
type PartialStore = Store[dict[str, Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class CountisData:
    """What the entities show: published values plus the raw reading behind them."""

    values: Mapping[str, ValueType]  # after partial start/stop and the counter guard
    raw: Mapping[str, ValueType]  # as read from the meter (diagnostics)
    timestamp: float  # of the newest reading

    def __post_init__(self) -> None:
        """Freeze the mappings."""
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))
        object.__setattr__(self, "raw", MappingProxyType(dict(self.raw)))


@dataclass(slots=True, kw_only=True)
class CountisRuntimeData:
    """Everything a loaded entry holds (``entry.runtime_data``)."""

    client: MeterClient
    identity: MeterIdentity
    coordinator: CountisCoordinator
    options: Mapping[str, Any]  # as loaded; the update listener reloads when they change


def option(entry: ConfigEntry, key: str) -> Any:
    """An option of the entry, or its default."""
    defaults = {
        CONF_REALTIME_INTERVAL: DEFAULT_REALTIME_INTERVAL,
        CONF_ENERGY_INTERVAL: DEFAULT_ENERGY_INTERVAL,
        CONF_COMMANDS: DEFAULT_COMMANDS,
    }
    return entry.options.get(key, defaults[key])


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
    elif isinstance(err, NotACountisError):
        key = "not_countis"
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


class CountisCoordinator(DataUpdateCoordinator[CountisData]):
    """Polls one meter; runs the partial-meter state machine and the counter guard."""

    config_entry: CountisConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: CountisConfigEntry,
        *,
        client: MeterClient,
        identity: MeterIdentity,
        store: PartialStore,
        partial: PartialMeter,
    ) -> None:
        """Intervals come from the entry's options (a change reloads the entry)."""
        realtime = float(option(entry, CONF_REALTIME_INTERVAL))
        energy = float(option(entry, CONF_ENERGY_INTERVAL))
        tick = min(realtime, energy)
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"COUNTIS {identity.serial_number}",
            update_interval=timedelta(seconds=tick),
        )
        self.client = client
        self.identity = identity
        self.partial = partial
        self.guard = CounterGuard()
        self._store = store
        # Ticks jitter by a fraction of a second: read energies on the tick nearest the
        # interval, not one tick late.
        self._energy_interval = timedelta(seconds=energy - tick / 2)
        self._energy_at: datetime | None = None
        self._energy_due = True
        self._raw: dict[str, ValueType] = {}
        self._values: dict[str, ValueType] = {}
        self._save_at: datetime | None = None

    def _energy_wanted(self, now: datetime) -> bool:
        return (
            self._energy_due
            or self._energy_at is None
            or not self.last_update_success
            or now - self._energy_at >= self._energy_interval
        )

    async def _read(self, keys: tuple[str, ...]) -> MeterReading:
        try:
            return await self.client.read(keys)
        except MeterError as err:
            self._energy_due = True  # read everything again once the meter is back
            raise translate_error(UpdateFailed, err, self.config_entry) from err

    async def _async_update_data(self) -> CountisData:
        """Read the meter: realtime always, energies when due; check every counter."""
        now = dt_util.utcnow()
        with_energy = self._energy_wanted(now)
        reading = await self._read(ALL_KEYS if with_energy else REALTIME_KEYS)
        if not with_energy:
            return self._merge(reading, dict(reading.values))
        published, held = self._checked(reading)
        if held:
            # The guard holds a counter's first value until a second reading confirms it
            # (start-up, or a new key): confirm at once rather than one energy poll later.
            energy = await self._read(ENERGY_KEYS)
            checked, _ = self._checked(energy)
            published = {k: v for k, v in published.items() if k not in energy.values}
            published.update(checked)
            reading = MeterReading(
                timestamp=energy.timestamp, values={**reading.values, **energy.values}
            )
        self._energy_at, self._energy_due = now, False
        self._schedule_save(now)
        return self._merge(reading, published)

    def _schedule_save(self, now: datetime) -> None:
        """Keep one write of the partial state pending, due at most an interval from now.

        Store.async_delay_save restarts its timer on every call: aim every call at the
        same moment so polls more frequent than the interval do not postpone it forever.
        """
        if self._save_at is None:
            self._save_at = now + PARTIAL_SAVE_INTERVAL
        delay = (self._save_at - now).total_seconds()
        if delay <= 0:
            delay, self._save_at = 0.0, now + PARTIAL_SAVE_INTERVAL
        self._store.async_delay_save(self.partial.to_dict, delay)

    def _checked(self, reading: MeterReading) -> tuple[dict[str, ValueType], bool]:
        """Screening, partial start/stop, then the guard: values to publish, any held."""
        # A corrupt reading (a lifetime counter went down) keeps its partial and balance
        # values away from the partial meters; their entities go unavailable meanwhile.
        screened = self.guard.screen(reading.values)
        if screened.suspect:
            LOGGER.debug("%s: corrupt reading, withheld %s", self.name, sorted(screened.withheld))
        values = self.partial.apply(screened.values)
        if self.partial.meter_reset_detected:
            # Reset on the front panel (or while Home Assistant was away).
            self.guard.note_partial_reset()
        result = self.guard.check(values, reading.timestamp)
        if result.rejected:
            LOGGER.debug("%s: counter values rejected: %s", self.name, dict(result.rejected))
        return dict(result.values), bool(result.held)

    def _merge(self, reading: MeterReading, published: dict[str, ValueType]) -> CountisData:
        """New values replace old ones; a read key without a value to publish is dropped."""
        self._raw.update(reading.values)
        for key in reading.values:
            if key in published:
                self._values[key] = published[key]
            else:
                # Rejected by the guard or withheld by the partial meter: the entity goes
                # unavailable rather than show a stale or wrong counter.
                self._values.pop(key, None)
        return CountisData(values=self._values, raw=self._raw, timestamp=reading.timestamp)

    async def async_refresh_all(self) -> None:
        """Refresh now, energies included (after a command)."""
        self._energy_due = True
        await self.async_refresh()

    def _check_commands(self) -> None:
        if not option(self.config_entry, CONF_COMMANDS):
            raise HomeAssistantError(translation_domain=DOMAIN, translation_key="read_only")

    async def _command(self, command: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run a meter command; errors become translated HomeAssistantErrors."""
        self._check_commands()
        try:
            await command()
        except MeterError as err:
            raise translate_error(HomeAssistantError, err, self.config_entry) from err

    async def async_set_tariff(self, tariff: int) -> None:
        """Switch the meter to tariff 1 or 2 (confirmed by read-back) and refresh."""
        await self._command(lambda: self.client.set_tariff(tariff))
        await self.async_refresh_all()

    async def async_partial(self, action: PartialAction) -> None:
        """Start, stop (in Home Assistant) or reset (in the meter) the partial meters."""
        if action is PartialAction.RESET:
            await self._command(self.client.reset_partial)
            self.partial.reset()
            self.guard.note_partial_reset()
        else:
            self._check_commands()
            # Start and stop act on the last reading: make it a fresh one.
            await self.async_refresh_all()
            if not self.last_update_success:
                raise HomeAssistantError(
                    translation_domain=DOMAIN,
                    translation_key="communication_error",
                    translation_placeholders={"error": str(self.last_exception)},
                )
            if action is PartialAction.START:
                self.partial.start()
            else:
                self.partial.stop()
        await self._store.async_save(self.partial.to_dict())
        await self.async_refresh_all()

    async def async_save_partial(self) -> None:
        """Write the partial state now (unload)."""
        await self._store.async_save(self.partial.to_dict())
