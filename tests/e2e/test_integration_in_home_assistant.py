"""The custom integration in a real Home Assistant: installed as Home Assistant installs it.

The configuration directory holds custom_components/countis, and the venv Home Assistant
runs in lacks its requirement (countis==X.Y.Z). Home Assistant runs without --skip-pip,
its requirement installs pointed at a folder holding only the freshly built wheels (no
index): it installs the library itself, then sets the entry up against the second
emulated meter. Then: a tariff plan set through the options flow switches that meter,
and Home Assistant's log has nothing to say about us.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import NATIVE_SERIAL, NATIVE_TITLE, Stack
from countis.config import DEFAULT_ENERGY_INTERVAL

from tests.processes import wait_until

DOMAIN = "countis"
OPTIONS_FLOW = "/api/config/config_entries/options/flow"


def native_entry(stack: Stack) -> dict[str, Any]:
    """The integration's config entry as Home Assistant reports it."""
    (entry,) = stack.ha.request("GET", f"/api/config/config_entries/entry?domain={DOMAIN}")
    return dict(entry)


def native_entity(stack: Stack, key: str) -> str:
    """The entity id of the integration's entity ``key`` (registry lookup by unique id)."""
    (entries,) = stack.ha.ws({"type": "config/entity_registry/list"})
    unique_id = f"countis_{NATIVE_SERIAL}_{key}"
    return next(
        str(e["entity_id"])
        for e in entries
        if e.get("platform") == DOMAIN and e.get("unique_id") == unique_id
    )


@pytest.fixture(scope="module")
def loaded(stack: Stack) -> dict[str, Any]:
    """The integration's entry, once loaded."""
    return wait_until(
        lambda: (entry := native_entry(stack))["state"] == "loaded" and entry,
        within=60,
        what="the countis config entry loaded",
    )


def test_home_assistant_installed_the_library_from_the_wheels(
    stack: Stack, loaded: dict[str, Any]
) -> None:
    assert loaded["title"] == NATIVE_TITLE
    installed = sorted(p.name for p in stack.overlay.rglob("countis-*.dist-info"))
    version = re.search(r"countis==([\w.]+)", open_manifest())
    assert version is not None
    assert installed == [f"countis-{version.group(1)}.dist-info"]
    log = (stack.workdir / "ha" / "hass.log").read_text(errors="replace")
    assert f"Attempting install of countis=={version.group(1)}" in log
    power = native_entity(stack, "power")
    truth = stack.native.values()["power"]
    state = wait_until(lambda: stack.ha.state(power), within=30, what=power)
    assert abs(float(state["state"]) - truth) <= max(50.0, abs(truth) * 0.05)


def open_manifest() -> str:
    from conftest import ROOT  # noqa: PLC0415

    return (ROOT / "custom_components" / DOMAIN / "manifest.json").read_text()


def test_a_plan_set_in_the_options_flow_switches_the_meter(
    stack: Stack, loaded: dict[str, Any]
) -> None:
    entry_id = loaded["entry_id"]
    flow = stack.ha.request(
        "POST", "/api/config/config_entries/options/flow", {"handler": entry_id}
    )
    assert flow["step_id"] == "init"
    init = {"realtime_interval": 1.0, "energy_interval": DEFAULT_ENERGY_INTERVAL, "commands": True,
            "tariff_mode": "schedule"}  # fmt: skip
    step = stack.ha.request(
        "POST", f"/api/config/config_entries/options/flow/{flow['flow_id']}", init
    )
    assert step["step_id"] == "schedule", step
    schedule = {"time_zone": "UTC", "default": "T1", "rules": "mon-sun 00:00-24:00 T2",
                "holidays": "", "holiday_tariff": "default"}  # fmt: skip
    done = stack.ha.request("POST", f"{OPTIONS_FLOW}/{flow['flow_id']}", schedule)
    assert done["type"] == "create_entry", done
    wait_until(
        lambda: stack.native.values().get("tariff") == 2,
        within=30,
        what="the integration's meter switched to T2 by the plan",
    )
    planned = native_entity(stack, "tariff_planned")
    assert wait_until(lambda: stack.ha.state(planned), within=20, what=planned)["state"] == "2"
    change = native_entity(stack, "next_tariff_change")
    state = wait_until(lambda: stack.ha.state(change), within=20, what=change)
    assert state["attributes"]["device_class"] == "timestamp"
    # An all-day rule every day never changes: no next change.
    assert state["state"] == "unknown"
    source = native_entity(stack, "tariff_source")
    assert stack.ha.state(source)["state"] == "schedule"


# A record about us: its message names the integration, the library or our MQTT discovery
# (a deprecation raised by our code names the custom integration), or its traceback runs
# through our code. (Not any path holding "countis": the test machine's caches do.)
_OURS_MESSAGE = re.compile(r"\bcountis\b|homeassistant/device/countis_", re.IGNORECASE)
_OURS_FRAME = re.compile(r'File ".*/(custom_components/countis|countis(_bridge)?)/\w+\.py"')
# Home Assistant says this of every custom integration it loads; nothing we can change.
_CUSTOM_NOTICE = "We found a custom integration countis which has not been tested"


def test_home_assistant_logs_no_warning_or_error_about_us(
    stack: Stack, loaded: dict[str, Any]
) -> None:
    """No WARNING or ERROR naming countis, its integration or its MQTT discovery (a
    deprecation our code raises names it too)."""
    del loaded
    log = (stack.workdir / "ha" / "hass.log").read_text(errors="replace")
    records = re.split(r"\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", log)
    ours = [
        record
        for record in records
        if re.match(r"\S+ \S+ (WARNING|ERROR|CRITICAL) ", record)
        and (_OURS_MESSAGE.search(record.partition("\n")[0]) or _OURS_FRAME.search(record))
        and _CUSTOM_NOTICE not in record
    ]
    assert not ours, "\n".join(ours)


def test_the_options_flow_reloads_without_an_update_listener_warning(
    stack: Stack, loaded: dict[str, Any]
) -> None:
    entry_id = loaded["entry_id"]
    flow = stack.ha.request(
        "POST", "/api/config/config_entries/options/flow", {"handler": entry_id}
    )
    options = {"realtime_interval": 2.0, "energy_interval": DEFAULT_ENERGY_INTERVAL,
               "commands": True, "tariff_mode": "none"}  # fmt: skip
    done = stack.ha.request("POST", f"{OPTIONS_FLOW}/{flow['flow_id']}", options)
    assert done["type"] == "create_entry", done
    wait_until(
        lambda: (
            native_entry(stack)["state"] == "loaded"
            and stack.ha.state(native_entity(stack, "power"))
        ),
        within=30,
        what="the entry reloaded with the new options",
    )
    log = (stack.workdir / "ha" / "hass.log").read_text(errors="replace")
    assert "update listener" not in log
    # No plan any more: its sensors are gone (registry and state), not left unavailable.
    with pytest.raises(StopIteration):
        native_entity(stack, "tariff_planned")
