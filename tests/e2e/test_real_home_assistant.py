"""A real Home Assistant core sees the meter through the bridge, and controls it.

Runs in file order on one stack (see conftest): entities and values, the energy dashboard
validation, the partial reset button, the tariff select, then a meter outage.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
from conftest import ENERGY_INTERVAL, SPEED, Stack
from countis.catalogue import VALUE_BY_KEY, Enumerated, WithResidual
from countis.presentation import BUTTONS, SENSORS, TARIFF_SELECT, SensorSpec
from countis.registers import BY_NAME

from tests.ha_energy import grid_sources, unified_grid
from tests.processes import wait_until

ENERGY_UNITS = {"kWh", "kvarh", "kVAh"}
# From the emulator's value to Home Assistant's state: one energy poll, the MQTT hops and
# Home Assistant's processing, with room for a slow shared machine.
WINDOW_S = ENERGY_INTERVAL + 4.0
GONE = {"unavailable", "unknown"}

ENABLED = [s for s in SENSORS if s.enabled_by_default]


def resolution(spec: SensorSpec) -> float:
    """The step of a value in its published unit (the meter's register resolution)."""
    source = VALUE_BY_KEY[spec.key].source
    if isinstance(source, Enumerated):
        return 0.0
    if isinstance(source, WithResidual):
        return 0.01  # whole k-units + 0.1 Wh residual, moving in the meter's 10 Wh steps
    scale = BY_NAME[source.register].scale or 1.0
    return scale / source.divisor


def motion(spec: SensorSpec, values: dict[str, Any], seconds: float) -> float:
    """How far a counter can move in ``seconds`` of wall time (apparent power bounds all)."""
    if spec.unit not in ENERGY_UNITS:
        return 0.0
    apparent_kva = abs(float(values["apparent_power"])) / 1000.0
    return apparent_kva * SPEED * seconds / 3600.0


def check_value(spec: SensorSpec, state: str, values: dict[str, Any]) -> str | None:
    """A problem with Home Assistant's ``state`` against the emulator's ``values``, or None."""
    expected = values[spec.key]
    if isinstance(VALUE_BY_KEY[spec.key].source, Enumerated):
        return None if state == str(expected) else f"{state!r} != {expected!r}"
    try:
        got = float(state)
    except ValueError:
        return f"{state!r} is not a number"
    want = float(expected)
    step = resolution(spec) + 1e-9 * max(1.0, abs(want))
    drift = motion(spec, values, WINDOW_S)
    if spec.state_class == "total_increasing":
        # Read after Home Assistant's state: a counter can only have moved up since.
        ok = want - drift - step <= got <= want + step
    else:
        ok = abs(got - want) <= drift + step
    return None if ok else f"{got} vs emulator {want} (step {step:g}, motion {drift:.4f})"


def numeric_states(stack: Stack, entity_ids: dict[str, str]) -> dict[str, dict[str, Any]] | None:
    """States of ``entity_ids`` (key -> id) once none is unknown/unavailable, else None."""
    states = stack.ha.states()
    found = {key: states.get(entity_id) for key, entity_id in entity_ids.items()}
    if any(s is None or s["state"] in GONE for s in found.values()):
        return None
    return {key: s for key, s in found.items() if s is not None}


def test_home_assistant_set_up_every_integration(stack: Stack) -> None:
    """No integration failed at start: a requirement missing from the venv (no index to fetch it
    from) shows up as
    "Setup failed for '<domain>'" (releases add default integrations; pre-install their
    requirements in ha/<tier>/requirements.txt)."""
    log = stack.workdir / "ha" / "hass.log"
    failed = [
        line for line in log.read_text(errors="replace").splitlines() if "Setup failed for" in line
    ]
    assert not failed, "\n".join(failed)


@pytest.fixture(scope="module")
def registry(stack: Stack) -> dict[str, dict[str, Any]]:
    """The meter's registry entries, once every entity exists and every enabled sensor has
    a value (so each test also runs on its own)."""
    started = time.monotonic()
    keys = [s.key for s in SENSORS] + [b.key for b in BUTTONS] + [TARIFF_SELECT.key]
    wanted = {stack.unique_id(key) for key in keys}

    def complete() -> dict[str, dict[str, Any]] | None:
        found = stack.registry()
        return found if wanted <= set(found) else None

    entries = wait_until(
        complete,
        within=90,
        every=0.5,
        what=f"{len(wanted)} entities of the meter in the entity registry",
    )
    print(f"\ndiscovery: {len(entries)} registry entries after {time.monotonic() - started:.1f} s")
    sensor_ids = {s.key: entries[stack.unique_id(s.key)]["entity_id"] for s in ENABLED}
    wait_until(
        lambda: numeric_states(stack, sensor_ids),
        within=60,
        every=0.5,
        what="a value for every enabled sensor",
    )
    return entries


def test_every_enabled_entity_shows_the_emulator_value(
    stack: Stack, registry: dict[str, dict[str, Any]]
) -> None:
    for spec in SENSORS:
        entry = registry[stack.unique_id(spec.key)]
        assert entry["entity_id"].startswith("sensor."), entry
        expected = None if spec.enabled_by_default else "integration"
        assert entry["disabled_by"] == expected, (spec.key, entry["disabled_by"])

    sensor_ids = {s.key: registry[stack.unique_id(s.key)]["entity_id"] for s in ENABLED}
    states = wait_until(
        lambda: numeric_states(stack, sensor_ids),
        within=30,
        every=0.5,
        what="a value for every enabled sensor",
    )
    values = stack.control.values()  # after HA's states: counters can only be ahead
    problems = []
    for spec in ENABLED:
        state = states[spec.key]
        attributes = state["attributes"]
        for attribute, want in (
            ("unit_of_measurement", spec.unit),
            # Device classes Home Assistant 2025.4 does not know are announced without one.
            ("device_class", spec.device_class),
            ("state_class", spec.state_class),
        ):
            if attributes.get(attribute) != want:
                problems.append(
                    f"{spec.key}: {attribute} {attributes.get(attribute)!r} != {want!r}"
                )
        if spec.device_class == "enum":
            assert set(attributes["options"]) == set(spec.options), spec.key
        if (problem := check_value(spec, state["state"], values)) is not None:
            problems.append(f"{spec.key}: {problem}")
    assert not problems, "\n".join(problems)

    for button in BUTTONS:
        entity = registry[stack.unique_id(button.key)]
        assert entity["entity_id"].startswith("button.")
        assert entity["disabled_by"] is None
        assert stack.ha.state(entity["entity_id"])["state"] not in {"unavailable"}  # type: ignore[index]
    select = stack.ha.state(registry[stack.unique_id(TARIFF_SELECT.key)]["entity_id"])
    assert select is not None
    assert select["attributes"]["options"] == list(TARIFF_SELECT.options)
    assert select["state"] == f"T{values['tariff']}"


@pytest.mark.usefixtures("registry")
def test_energy_dashboard_accepts_the_tariff_counters_as_grid_sources(stack: Stack) -> None:
    imports = [stack.entity_id(k) for k in ("energy_import_t1", "energy_import_t2")]
    exports = [stack.entity_id(k) for k in ("energy_export_t1", "energy_export_t2")]
    version = stack.ha.request("GET", "/api/config")["version"]
    unified = unified_grid(version)
    # 2026.3+: two grid connections (T1, T2), the signed power sensor on the first.
    power = stack.entity_id("power") if unified else None
    sources = grid_sources(imports, exports, power, unified=unified)
    _, prefs, validation = stack.ha.ws(
        {"type": "energy/save_prefs", "energy_sources": sources},
        {"type": "energy/get_prefs"},
        {"type": "energy/validate"},
    )
    assert len(prefs["energy_sources"]) == len(sources)
    # One list of issues per source; right after the start the only acceptable issue is
    # that no long-term statistics exist yet (they are compiled every 5 minutes).
    assert len(validation["energy_sources"]) == len(sources)
    issues = [issue for source in validation["energy_sources"] for issue in source]
    unexpected = [i for i in issues if i["type"] != "statistics_not_defined"]
    assert not unexpected, unexpected
    affected = {entity for issue in issues for entity, _ in issue["affected_entities"]}
    assert affected <= {*imports, *exports, *([power] if power else [])}, affected
    assert validation["device_consumption"] == []


@pytest.mark.usefixtures("registry")
def test_partial_reset_button_zeroes_the_meter_partial_counters(stack: Stack) -> None:
    partial = next(s for s in SENSORS if s.key == "partial_energy_import")
    before = wait_until(
        lambda: (
            v if float((v := stack.control.values())["partial_energy_import"]) >= 0.05 else None
        ),
        within=30,
        what="the emulator's partial counter to count",
    )
    sensor = stack.entity_id("partial_energy_import")
    wait_until(
        lambda: (s := stack.ha.state(sensor)) and s["state"] not in GONE and float(s["state"]) > 0,
        within=20,
        what="a non-zero partial counter in Home Assistant",
    )
    pressed = time.monotonic()
    stack.ha.call_service("button", "press", {"entity_id": stack.entity_id("partial_reset")})
    after = wait_until(
        lambda: (
            v
            if float((v := stack.control.values())["partial_energy_import"])
            < float(before["partial_energy_import"])
            else None
        ),
        within=15,
        every=0.1,
        what="the emulator's partial counters to drop after the button press",
    )
    grown = motion(partial, after, time.monotonic() - pressed) + resolution(partial)
    for key in ("partial_energy_import", "partial_energy_export"):
        assert float(after[key]) <= grown + 1e-9, (key, after[key], grown)
    wait_until(
        lambda: (
            (s := stack.ha.state(sensor))
            and s["state"] not in GONE
            and float(s["state"]) < float(before["partial_energy_import"])
        ),
        within=20,
        what="Home Assistant's partial counter to drop",
    )


@pytest.mark.usefixtures("registry")
def test_selecting_t2_in_home_assistant_switches_the_meter(stack: Stack) -> None:
    select = stack.entity_id(TARIFF_SELECT.key)
    tariff_sensor = stack.entity_id("tariff")
    assert stack.control.values()["tariff"] == 1
    stack.ha.call_service("select", "select_option", {"entity_id": select, "option": "T2"})
    wait_until(
        lambda: stack.control.values()["tariff"] == 2,
        within=15,
        every=0.1,
        what="the emulator's tariff to become 2",
    )
    wait_until(
        lambda: (
            stack.ha.state(select)["state"] == "T2"  # type: ignore[index]
            and math.isclose(float(stack.ha.state(tariff_sensor)["state"]), 2.0)
        ),  # type: ignore[index]
        within=20,
        what="Home Assistant's select and tariff sensor to show T2",
    )


@pytest.mark.usefixtures("registry")
def test_entities_go_unavailable_without_the_meter_and_come_back(stack: Stack) -> None:
    registry = stack.registry()
    entity_ids = [e["entity_id"] for e in registry.values() if e["disabled_by"] is None]
    assert len(entity_ids) == len(ENABLED) + len(BUTTONS) + 1

    def all_states(predicate: Any) -> bool:
        states = stack.ha.states()
        return all(predicate(states.get(e, {}).get("state")) for e in entity_ids)

    stopped = time.monotonic()
    stack.emulator.stop()
    wait_until(
        lambda: all_states(lambda s: s == "unavailable"),
        within=45,
        every=0.5,
        what="every entity of the meter to become unavailable",
    )
    print(f"\nunavailable {time.monotonic() - stopped:.1f} s after the meter stopped")

    restarted = time.monotonic()
    stack.emulator.start()
    wait_until(
        lambda: all_states(lambda s: s is not None and s != "unavailable"),
        within=60,
        every=0.5,
        what="every entity of the meter to come back",
    )
    print(f"available again {time.monotonic() - restarted:.1f} s after the meter restarted")
    # The meter kept its counters (state file): the import counter continues, not from 0.
    energy = stack.ha.state(stack.entity_id("energy_import"))
    assert energy is not None
    assert float(energy["state"]) > 0
