"""Config flow: find a COUNTIS E27/E28 on the network by host, port and Modbus address."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

try:  # Home Assistant 2026.x validates flow forms with probatio (voluptuous's successor)
    import probatio as vol
except ImportError:  # older releases: voluptuous, whose API probatio keeps
    import voluptuous as vol  # type: ignore[no-redef]
from homeassistant.config_entries import (
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlowWithReload,
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
from countis.tariff_plan import Schedule, TariffPlan, TariffPlanError
from countis.tariff_plan_parse import (
    parse_plan,
    plan_to_dict,
    rules_from_text,
    rules_to_text,
    tariff_name,
)

from . import const
from .const import (
    CONF_COMMANDS,
    CONF_ENERGY_INTERVAL,
    CONF_REALTIME_INTERVAL,
    CONF_TARIFF_MODE,
    CONF_TARIFF_PLAN,
    CONF_UNIT,
    DEFAULT_COMMANDS,
    DOMAIN,
    LOGGER,
    MAX_INTERVAL,
    MIN_INTERVAL,
    TARIFF_MODES,
)

DEFAULT_OPTIONS: dict[str, Any] = {
    CONF_REALTIME_INTERVAL: DEFAULT_REALTIME_INTERVAL,
    CONF_ENERGY_INTERVAL: DEFAULT_ENERGY_INTERVAL,
    CONF_COMMANDS: DEFAULT_COMMANDS,
    CONF_TARIFF_MODE: "none",
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


class CountisOptionsFlow(OptionsFlowWithReload):
    """Poll intervals, commands and the tariff plan; saving reloads the entry."""

    def __init__(self) -> None:
        """Options are collected over the steps."""
        self._options: dict[str, Any] = {}

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Intervals, commands and who switches the tariff."""
        current = {**DEFAULT_OPTIONS, **self.config_entry.options}
        errors: dict[str, str] = {}
        mode = user_input[CONF_TARIFF_MODE] if user_input is not None else "none"
        if user_input is not None and mode != "none" and not user_input[CONF_COMMANDS]:
            errors["base"] = "read_only_plan"  # a plan switches tariffs: it needs commands
        elif user_input is not None:
            self._options = {**current, **user_input}
            if mode == "schedule":
                return await self.async_step_schedule()
            if mode == "entity":
                return await self.async_step_entity()
            self._options.pop(CONF_TARIFF_PLAN, None)
            return self.async_create_entry(data=self._options)
        schema = vol.Schema(
            {
                vol.Required(CONF_REALTIME_INTERVAL): _INTERVAL,
                vol.Required(CONF_ENERGY_INTERVAL): _INTERVAL,
                vol.Required(CONF_COMMANDS): selector.BooleanSelector(),
                vol.Required(CONF_TARIFF_MODE): selector.SelectSelector(
                    selector.SelectSelectorConfig(
                        options=list(TARIFF_MODES), translation_key=CONF_TARIFF_MODE
                    )
                ),
            }
        )
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(schema, user_input or current),
            errors=errors,
        )

    async def async_step_schedule(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """A weekly schedule: time zone, rules, default and holidays."""
        saved = self._options.get(CONF_TARIFF_PLAN)
        suggested = schedule_form(saved, str(self.hass.config.time_zone))
        return self._plan_step("schedule", _SCHEDULE_SCHEMA, schedule_from_form, suggested,
                               user_input)  # fmt: skip

    async def async_step_entity(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Follow the state of an entity."""
        suggested = signal_form(self._options.get(CONF_TARIFF_PLAN))
        return self._plan_step("entity", _ENTITY_SCHEMA, signal_from_form, suggested, user_input)

    def _plan_step(
        self,
        step_id: str,
        schema: vol.Schema,
        from_form: Callable[[Mapping[str, Any]], dict[str, Any]],
        suggested: Mapping[str, Any],
        user_input: dict[str, Any] | None,
    ) -> ConfigFlowResult:
        """A plan's form: saved once the plan parser accepts it, else shown with its error."""
        errors: dict[str, str] = {}
        placeholders = {"error": ""}
        if user_input is not None:
            try:
                plan = parse_plan(from_form(user_input), where="plan")
            except TariffPlanError as err:
                errors["base"], placeholders["error"] = "invalid_plan", str(err)
            else:
                return self._save(plan)
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(schema, suggested),
            errors=errors,
            description_placeholders=placeholders,
        )

    def _save(self, plan: TariffPlan) -> ConfigFlowResult:
        self._options[CONF_TARIFF_PLAN] = plan_to_dict(plan)
        return self.async_create_entry(data=self._options)


# -- the tariff plan's forms -------------------------------------------------------------

_TARIFF = selector.SelectSelector(selector.SelectSelectorConfig(options=["T1", "T2"]))
_SCHEDULE_SCHEMA = vol.Schema(
    {
        vol.Required("time_zone"): selector.TextSelector(),
        vol.Required("default"): _TARIFF,
        vol.Required("rules"): selector.TextSelector(selector.TextSelectorConfig(multiline=True)),
        vol.Optional("holidays", default=""): selector.TextSelector(
            selector.TextSelectorConfig(multiline=True)
        ),
        vol.Required("holiday_tariff"): selector.SelectSelector(
            selector.SelectSelectorConfig(
                options=["default", "T1", "T2"], translation_key="holiday_tariff"
            )
        ),
    }
)
_ENTITY_SCHEMA = vol.Schema(
    {
        vol.Required("entity_id"): selector.EntitySelector(),
        vol.Required("mapping"): selector.TextSelector(selector.TextSelectorConfig(multiline=True)),
    }
)


def schedule_from_form(form: Mapping[str, Any]) -> dict[str, Any]:
    """The schedule form as the plan parser takes it (the parser checks every field)."""
    holidays = str(form.get("holidays", "")).replace(",", "\n").split()
    plan: dict[str, Any] = {
        "mode": "schedule",
        "time_zone": str(form["time_zone"]).strip(),
        "default": form["default"],
        "rules": rules_from_text(str(form["rules"]), where="plan.rules"),
        "holidays": holidays,
    }
    if form.get("holiday_tariff", "default") != "default":
        plan["holiday_tariff"] = form["holiday_tariff"]
    return plan


def schedule_form(saved: Mapping[str, Any] | None, time_zone: str) -> dict[str, Any]:
    """The schedule form's values: the saved schedule, else an empty one in HA's zone."""
    if saved is None or saved.get("mode") != "schedule":
        return {"time_zone": time_zone, "default": "T1", "rules": "", "holidays": "",
                "holiday_tariff": "default"}  # fmt: skip
    plan = parse_plan(saved)
    assert isinstance(plan, Schedule)
    holiday = plan.holiday_tariff
    return {
        "time_zone": plan.time_zone,
        "default": tariff_name(plan.default),
        "rules": rules_to_text(plan.rules),
        "holidays": "\n".join(day.isoformat() for day in sorted(plan.holidays)),
        "holiday_tariff": "default" if holiday is None else tariff_name(holiday),
    }


def signal_from_form(form: Mapping[str, Any]) -> dict[str, Any]:
    """The entity form as the plan parser takes it: ``state=T2`` lines become the mapping."""
    mapping: dict[str, str] = {}
    for line in str(form["mapping"]).replace(",", "\n").splitlines():
        state, _, tariff = line.partition("=")
        if state.strip() or tariff.strip():
            mapping[state.strip()] = tariff.strip()
    return {"mode": "signal", "topic": form["entity_id"], "mapping": mapping}


def signal_form(saved: Mapping[str, Any] | None) -> dict[str, Any]:
    """The entity form's values: the saved ones, else none."""
    if saved is None or saved.get("mode") != "signal":
        return {}
    lines = [f"{state}={tariff}" for state, tariff in saved["mapping"].items()]
    return {"entity_id": saved["topic"], "mapping": "\n".join(lines)}
