"""Diagnostics: identity, options, raw values, guard figures, the tariff plan (host redacted)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_HOST
from homeassistant.core import HomeAssistant

from countis.tariff_plan_parse import plan_to_dict

from .coordinator import CountisConfigEntry

TO_REDACT = {CONF_HOST}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: CountisConfigEntry
) -> dict[str, Any]:
    """Everything needed to understand a report, without the meter's address."""
    coordinator = entry.runtime_data.coordinator
    session = coordinator.session
    data = coordinator.data
    guard = session.guard
    return {
        "entry": {
            "data": async_redact_data(dict(entry.data), TO_REDACT),
            "options": dict(entry.options),
        },
        "identity": asdict(session.identity) if session.identity else None,
        "poll": {
            "last_update_success": coordinator.last_update_success,
            # The exception type only: its message names the meter's address.
            "last_exception": type(coordinator.last_exception).__name__
            if coordinator.last_exception
            else None,
            "update_interval": coordinator.update_interval.total_seconds()
            if coordinator.update_interval
            else None,
        },
        "raw_values": dict(data.raw) if data else None,
        "published_values": dict(data.values) if data else None,
        "partial": session.partial.to_dict(),
        "guard": {
            "rejections": dict(guard.rejections),
            "rebases": dict(guard.rebases),
        },
        "stats": session.stats.as_dict(),
        "tariff_plan": plan_to_dict(session.tariff.plan) if session.tariff else None,
        "tariff": dict(data.plan) if data else None,
        "tariff_switches": [asdict(s) for s in session.tariff.history] if session.tariff else [],
    }
