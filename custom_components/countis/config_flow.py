"""Config flow: find a COUNTIS E27/E28 on the network by host, port and Modbus address."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import (
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlow,
)
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import callback
from homeassistant.helpers import selector

from countis.client import MeterClient
from countis.config import (
    DEFAULT_ENERGY_INTERVAL,
    DEFAULT_PORT,
    DEFAULT_REALTIME_INTERVAL,
    DEFAULT_UNIT,
)
from countis.errors import (
    MeterConnectionError,
    MeterError,
    MeterTimeoutError,
    ModbusExceptionError,
    NotACountisError,
    ProtocolError,
)
from countis.models import MeterIdentity

from . import const
from .const import (
    CONF_COMMANDS,
    CONF_ENERGY_INTERVAL,
    CONF_REALTIME_INTERVAL,
    CONF_UNIT,
    DEFAULT_COMMANDS,
    DOMAIN,
    LOGGER,
    MAX_INTERVAL,
    MIN_INTERVAL,
)

DEFAULT_OPTIONS: dict[str, Any] = {
    CONF_REALTIME_INTERVAL: DEFAULT_REALTIME_INTERVAL,
    CONF_ENERGY_INTERVAL: DEFAULT_ENERGY_INTERVAL,
    CONF_COMMANDS: DEFAULT_COMMANDS,
}

_PORT = vol.All(
    selector.NumberSelector(
        selector.NumberSelectorConfig(min=1, max=65535, mode=selector.NumberSelectorMode.BOX)
    ),
    vol.Coerce(int),
)
# 0 is the broadcast address (writes only, no reply); 248-255 are reserved by Modbus.
_UNIT = vol.All(
    selector.NumberSelector(
        selector.NumberSelectorConfig(min=1, max=247, mode=selector.NumberSelectorMode.BOX)
    ),
    vol.Coerce(int),
)
_INTERVAL = selector.NumberSelector(
    selector.NumberSelectorConfig(
        min=MIN_INTERVAL,
        max=MAX_INTERVAL,
        step=0.5,
        unit_of_measurement="s",
        mode=selector.NumberSelectorMode.BOX,
    )
)


def _connection_schema(defaults: Mapping[str, Any]) -> vol.Schema:
    return vol.Schema(
        {
            vol.Required(CONF_HOST, default=defaults.get(CONF_HOST, vol.UNDEFINED)): (
                selector.TextSelector(selector.TextSelectorConfig(autocomplete="off"))
            ),
            vol.Required(CONF_PORT, default=defaults.get(CONF_PORT, DEFAULT_PORT)): _PORT,
            vol.Required(CONF_UNIT, default=defaults.get(CONF_UNIT, DEFAULT_UNIT)): _UNIT,
        }
    )


async def _identify(data: Mapping[str, Any]) -> MeterIdentity:
    async with MeterClient(
        data[CONF_HOST], port=data[CONF_PORT], unit=data[CONF_UNIT], timeout=const.TIMEOUT
    ) as client:
        return await client.identify()


async def _try_identify(data: Mapping[str, Any]) -> tuple[MeterIdentity | None, dict[str, str]]:
    """Identify the meter; on failure return field-level errors for the form."""
    try:
        return await _identify(data), {}
    except MeterTimeoutError:
        # A COUNTIS answers its own unit id only: silence usually means a wrong address.
        return None, {CONF_UNIT: "timeout"}
    except (NotACountisError, ModbusExceptionError, ProtocolError):
        # It speaks Modbus, but the identification block is not a COUNTIS E2x one.
        return None, {CONF_HOST: "not_countis"}
    except MeterConnectionError:
        return None, {CONF_HOST: "cannot_connect"}
    except MeterError:
        LOGGER.exception("Unexpected meter error during identification")
        return None, {"base": "unknown"}


def title_of(identity: MeterIdentity) -> str:
    """Entry title and device name: the model plus the serial number."""
    return f"{identity.name} {identity.serial_number}"


class CountisConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up a COUNTIS meter."""

    VERSION = 1

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for host, port and Modbus address, then identify the meter."""
        errors: dict[str, str] = {}
        if user_input is not None:
            identity, errors = await _try_identify(user_input)
            if identity is not None:
                await self.async_set_unique_id(identity.serial_number)
                self._abort_if_unique_id_configured()
                return self.async_create_entry(
                    title=title_of(identity), data=user_input, options=DEFAULT_OPTIONS
                )
        return self.async_show_form(
            step_id="user", data_schema=_connection_schema(user_input or {}), errors=errors
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change host, port or Modbus address of a configured meter (same serial only)."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            identity, errors = await _try_identify(user_input)
            if identity is not None:
                await self.async_set_unique_id(identity.serial_number)
                self._abort_if_unique_id_mismatch()
                return self.async_update_reload_and_abort(entry, data_updates=user_input)
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=_connection_schema(user_input or entry.data),
            errors=errors,
        )

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> CountisOptionsFlow:
        """The options flow: poll intervals and commands."""
        return CountisOptionsFlow()


class CountisOptionsFlow(OptionsFlow):
    """Poll intervals and whether Home Assistant may send commands to the meter."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Show the options form; saving reloads the entry (see the update listener)."""
        if user_input is not None:
            return self.async_create_entry(data=user_input)
        current = {**DEFAULT_OPTIONS, **self.config_entry.options}
        schema = vol.Schema(
            {
                vol.Required(CONF_REALTIME_INTERVAL): _INTERVAL,
                vol.Required(CONF_ENERGY_INTERVAL): _INTERVAL,
                vol.Required(CONF_COMMANDS): selector.BooleanSelector(),
            }
        )
        return self.async_show_form(
            step_id="init", data_schema=self.add_suggested_values_to_schema(schema, current)
        )
