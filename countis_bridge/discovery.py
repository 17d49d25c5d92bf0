"""Home Assistant MQTT discovery payloads for one meter (pure).

Rendered from :mod:`countis.presentation` (the same table the custom integration uses),
so MQTT and native entities share keys, names and unique ids.

Public API (stable):

- ``DiscoveryMeter`` (frozen): serial, model (``COUNTIS E28``), firmware, slug (topic slug),
  name (HA device name), host (meter web server, ``None`` = no configuration_url),
  read_only; ``DiscoveryMeter.from_identity(identity, slug=, name=, host=, read_only=)``.
- ``DiscoveryOptions`` (frozen): base_topic, discovery_prefix, qos, mode
  (``"device"|"entity"``).
- ``components(meter, options) -> dict[key, config]``: one component per entity
  (``p`` = platform); read-only meters get ``{"p": platform}`` stubs for the command
  entities, which makes Home Assistant remove them if they existed.
- ``device_config(meter, options) -> dict``: the device-based discovery payload.
- ``entity_configs(meter, options) -> list[(topic, dict | None)]``: per-entity mode
  (``None`` = remove: command entities of read-only meters).
- ``discovery_messages(meter, options) -> list[(topic, payload)]``: what to publish
  (retained) in ``options.mode``; payload is JSON text, ``""`` for a removal.

Which retained topics a meter owns, and their removal: :mod:`countis_bridge.retained`.

Home Assistant notes (checked against its MQTT schemas): the entity id comes from
``default_entity_id`` (``object_id`` was removed in 2026.4); ``reactive_energy`` is a sensor
device class since 2025.6. Every component repeats the device-level ``qos``. Value templates
use ``default``/``is defined`` so a state message without a key leaves the entity unchanged
instead of logging template warnings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from countis.models import MeterIdentity
from countis.presentation import (
    BUTTONS,
    PLAN_SENSORS,
    SENSORS,
    TARIFF_SELECT,
    SensorSpec,
    node_id,
    unique_id,
)

from countis_bridge import SUPPORT_URL, __version__, topics

MANUFACTURER = "Socomec"
ORIGIN_NAME = "countis-bridge"
# Sensor device classes whose state is not a number (HA's NON_NUMERIC_DEVICE_CLASSES).
_NON_NUMERIC = frozenset({"date", "enum", "timestamp"})

Config = dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscoveryMeter:
    """What discovery needs to know about one meter."""

    serial: str
    model: str
    firmware: str
    slug: str
    name: str
    host: str | None = None
    read_only: bool = False
    tariff_plan: bool = False  # the bridge follows a tariff plan: its sensors too

    @classmethod
    def from_identity(
        cls,
        identity: MeterIdentity,
        *,
        slug: str,
        name: str | None = None,
        host: str | None = None,
        read_only: bool = False,
        tariff_plan: bool = False,
    ) -> DiscoveryMeter:
        """From the meter's identity; ``name`` defaults to ``COUNTIS E28 <serial>``."""
        return cls(
            serial=identity.serial_number,
            model=identity.name,
            firmware=identity.firmware_version,
            slug=slug,
            name=name or f"{identity.name} {identity.serial_number}",
            host=host,
            read_only=read_only,
            tariff_plan=tariff_plan,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscoveryOptions:
    """Topic layout and discovery flavour (from the MQTT settings)."""

    base_topic: str = "countis"
    discovery_prefix: str = "homeassistant"
    qos: int = 1
    mode: Literal["device", "entity"] = "device"


def _configuration_url(host: str) -> str:
    return f"http://[{host}]/" if ":" in host else f"http://{host}/"


def device_info(meter: DiscoveryMeter) -> Config:
    """The ``dev`` block: one Home Assistant device per meter, identified by its serial."""
    info: Config = {
        "identifiers": [node_id(meter.serial)],
        "name": meter.name,
        "manufacturer": MANUFACTURER,
        "model": meter.model,
        "serial_number": meter.serial,
        "sw_version": meter.firmware,
    }
    if meter.host:
        info["configuration_url"] = _configuration_url(meter.host)
    return info


def origin() -> Config:
    """The ``o`` block: who published the discovery message."""
    return {"name": ORIGIN_NAME, "sw_version": __version__, "support_url": SUPPORT_URL}


def availability(meter: DiscoveryMeter, options: DiscoveryOptions) -> Config:
    """Two-level availability: the bridge and the meter must both be online."""
    return {
        "availability": [
            {"topic": topics.bridge_availability(options.base_topic)},
            {"topic": topics.meter_availability(options.base_topic, meter.slug)},
        ],
        "availability_mode": "all",
    }


def _entity(meter: DiscoveryMeter, options: DiscoveryOptions, platform: str, key: str) -> Config:
    return {
        "p": platform,
        "unique_id": unique_id(meter.serial, key),
        "default_entity_id": f"{platform}.{meter.slug}_{key}",
        "qos": options.qos,
    }


def _numeric(spec: SensorSpec) -> bool:
    """Whether Home Assistant expects a number (then an empty state is ignored)."""
    if spec.device_class in _NON_NUMERIC:
        return False
    return bool(spec.device_class or spec.state_class or spec.unit or spec.precision is not None)


def _value_template(spec: SensorSpec) -> str:
    key = spec.key
    if _numeric(spec):
        return f"{{{{ value_json.{key} | default('') }}}}"
    return f"{{{{ value_json.{key} if value_json.{key} is defined else this.state }}}}"


def _sensor(meter: DiscoveryMeter, options: DiscoveryOptions, spec: SensorSpec) -> Config:
    config = _entity(meter, options, "sensor", spec.key)
    config["name"] = spec.name
    config["value_template"] = _value_template(spec)
    optional: dict[str, Any] = {
        "device_class": spec.device_class,
        "state_class": spec.state_class,
        "unit_of_measurement": spec.unit,
        "suggested_display_precision": spec.precision,
        "entity_category": spec.entity_category,
        "icon": spec.icon,
        "options": list(spec.options) or None,
    }
    config.update({k: v for k, v in optional.items() if v is not None})
    config["enabled_by_default"] = spec.enabled_by_default
    return config


def _commands(meter: DiscoveryMeter, options: DiscoveryOptions) -> dict[str, Config]:
    """The partial-meter buttons and the tariff select."""
    base, slug = options.base_topic, meter.slug
    out: dict[str, Config] = {}
    for button in BUTTONS:
        config = _entity(meter, options, "button", button.key)
        config.update(
            name=button.name,
            icon=button.icon,
            command_topic=topics.command(base, slug, "partial"),
            payload_press=str(button.action),
        )
        out[button.key] = config
    select = TARIFF_SELECT
    value = select.value_key
    config = _entity(meter, options, "select", select.key)
    config.update(
        name=select.name,
        icon=select.icon,
        command_topic=topics.command(base, slug, "tariff"),
        options=list(select.options),
        value_template=(
            f"{{{{ 'T' ~ value_json.{value} if value_json.{value} is defined else this.state }}}}"
        ),
    )
    out[select.key] = config
    return out


def command_platforms() -> dict[str, str]:
    """Key -> platform of the command entities (absent on read-only meters)."""
    return {**{b.key: "button" for b in BUTTONS}, TARIFF_SELECT.key: "select"}


def components(meter: DiscoveryMeter, options: DiscoveryOptions) -> dict[str, Config]:
    """Every component of the meter, by entity key (sensors, then buttons and select)."""
    out = {spec.key: _sensor(meter, options, spec) for spec in SENSORS}
    if meter.tariff_plan:
        out.update({spec.key: _sensor(meter, options, spec) for spec in PLAN_SENSORS})
    if meter.read_only:
        out.update({key: {"p": platform} for key, platform in command_platforms().items()})
    else:
        out.update(_commands(meter, options))
    return out


def device_config(meter: DiscoveryMeter, options: DiscoveryOptions) -> Config:
    """The device-based discovery payload (``<prefix>/device/countis_<serial>/config``)."""
    return {
        "dev": device_info(meter),
        "o": origin(),
        "state_topic": topics.state(options.base_topic, meter.slug),
        **availability(meter, options),
        "qos": options.qos,
        "cmps": components(meter, options),
    }


def entity_configs(
    meter: DiscoveryMeter, options: DiscoveryOptions
) -> list[tuple[str, Config | None]]:
    """Per-entity discovery: ``(topic, config)``; ``None`` removes the entity."""
    state_topic = topics.state(options.base_topic, meter.slug)
    out: list[tuple[str, Config | None]] = []
    for key, component in components(meter, options).items():
        platform = component.pop("p")
        topic = topics.entity_discovery(options.discovery_prefix, platform, meter.serial, key)
        if not component:
            out.append((topic, None))
            continue
        config: Config = {"device": device_info(meter), "o": origin(), **component}
        if platform != "button":
            config["state_topic"] = state_topic
        config.update(availability(meter, options))
        out.append((topic, config))
    return out


def _json(config: Config) -> str:
    return json.dumps(config, separators=(",", ":"), ensure_ascii=False)


def discovery_messages(meter: DiscoveryMeter, options: DiscoveryOptions) -> list[tuple[str, str]]:
    """Retained ``(topic, payload)`` messages announcing the meter in ``options.mode``."""
    if options.mode == "device":
        topic = topics.device_discovery(options.discovery_prefix, meter.serial)
        return [(topic, _json(device_config(meter, options)))]
    return [(t, _json(c) if c is not None else "") for t, c in entity_configs(meter, options)]
