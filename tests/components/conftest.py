"""Fixtures: the project's emulated meter on a loopback port, and a config entry for it.

The meter runs on a ManualClock: nothing moves unless a test advances the clock, so entity
states can be compared with the emulator's own values exactly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from unittest.mock import PropertyMock, patch

import pytest
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from countis_bridge import ports
from countis_bridge.emulator import EmulatedMeter, EmulatorServer, ManualClock
from custom_components.countis import const
from custom_components.countis.config_flow import DEFAULT_OPTIONS
from custom_components.countis.const import CONF_UNIT, DOMAIN

HOST = "127.0.0.1"
SERIAL = "21170A0100042"
UNIT = 5
DAY = 86400.0


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load custom_components/countis."""


@pytest.fixture(autouse=True)
def loopback_sockets(socket_enabled: None) -> None:
    """Allow creating sockets: the emulator listens on loopback.

    Home Assistant's test plugin still refuses connections to anything but 127.0.0.1.
    """


@pytest.fixture(autouse=True)
def short_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A short Modbus timeout keeps the no-answer tests fast (the meter is on loopback)."""
    monkeypatch.setattr(const, "TIMEOUT", 0.5)


@pytest.fixture
def entity_registry_enabled_by_default() -> Iterator[None]:
    """Create every entity enabled, also those the integration disables by default."""
    with patch(
        "homeassistant.helpers.entity.Entity.entity_registry_enabled_default",
        return_value=True,
        new_callable=PropertyMock,
    ):
        yield


@pytest.fixture
def clock() -> ManualClock:
    """The emulator's clock: it only moves when a test says so."""
    return ManualClock(start=0.0)


@pytest.fixture
def meter(clock: ManualClock) -> EmulatedMeter:
    """An E28 with a day of history: counters in both tariffs, partials running."""
    meter = EmulatedMeter(
        model="E28", serial=SERIAL, unit_id=UNIT, profile="constant", seed=1, clock=clock
    )
    clock.advance(DAY / 2)
    meter.set_tariff(2)
    clock.advance(DAY / 4)
    meter.set_tariff(1)
    clock.advance(DAY / 4)
    return meter


@pytest.fixture
async def server(meter: EmulatedMeter) -> AsyncIterator[EmulatorServer]:
    """The emulator serving the meter on a free loopback port (stopped on teardown)."""
    async with EmulatorServer([meter], host=HOST, port=0) as server:
        yield server


@pytest.fixture
def port(server: EmulatorServer) -> int:
    """The emulated meter's port."""
    return server.ports[0]


@pytest.fixture
def free_port() -> int:
    """A loopback port nobody listens on (connection refused)."""
    return ports.free_port()


@pytest.fixture
def options() -> dict[str, object]:
    """Entry options; tests override this fixture through parametrisation if needed."""
    return dict(DEFAULT_OPTIONS)


@pytest.fixture
def mock_config_entry(port: int, options: dict[str, object]) -> MockConfigEntry:
    """A config entry for the emulated meter."""
    return MockConfigEntry(
        domain=DOMAIN,
        title=f"COUNTIS E28 {SERIAL}",
        unique_id=SERIAL,
        data={CONF_HOST: HOST, CONF_PORT: port, CONF_UNIT: UNIT},
        options=options,
    )


@pytest.fixture
async def init_integration(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> AsyncIterator[MockConfigEntry]:
    """The integration set up against the emulator; unloaded again (connection closed)."""
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    yield mock_config_entry
    if mock_config_entry.state.recoverable:
        await hass.config_entries.async_unload(mock_config_entry.entry_id)
        await hass.async_block_till_done()
