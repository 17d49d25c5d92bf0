"""Small helpers shared by the integration tests."""

from __future__ import annotations

from datetime import timedelta

from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from countis.catalogue import VALUE_BY_KEY, WithResidual
from countis.presentation import SensorSpec
from countis.registers import BY_NAME
from custom_components.countis.const import DOMAIN

from .conftest import SERIAL


def entity_id(hass: HomeAssistant, platform: str, key: str) -> str:
    """The entity id of a value key (looked up by unique id, as the bridge derives it)."""
    found = er.async_get(hass).async_get_entity_id(platform, DOMAIN, f"countis_{SERIAL}_{key}")
    assert found is not None, f"no {platform} entity for {key}"
    return found


def state_of(hass: HomeAssistant, platform: str, key: str) -> str:
    """The state string of a value key's entity."""
    state = hass.states.get(entity_id(hass, platform, key))
    assert state is not None, key
    return state.state


def number(hass: HomeAssistant, key: str) -> float:
    """The numeric state of a sensor."""
    return float(state_of(hass, "sensor", key))


def resolution(spec: SensorSpec) -> float:
    """Smallest step of a numeric value, in its published unit."""
    source = VALUE_BY_KEY[spec.key].source
    if isinstance(source, WithResidual):
        scale = BY_NAME[source.residual].scale
    else:
        scale = BY_NAME[source.register].scale
    return (scale or 1.0) / getattr(source, "divisor", 1.0)


async def poll(hass: HomeAssistant, seconds: float = 2.0) -> None:
    """Let the coordinator's poll timer fire as if ``seconds`` had passed, and wait for it."""
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=seconds))
    await hass.async_block_till_done(wait_background_tasks=True)
