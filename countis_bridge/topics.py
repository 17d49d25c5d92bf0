"""Pure MQTT topic builders and the meter slug (the MQTT contract: see README).

Public API (stable; every function is pure):

- ``slugify(name) -> str``: readable topic slug of a display name (``"Main"`` -> ``"main"``,
  ``"Küche Süd-West"`` -> ``"kuche_sud_west"``); ``""`` when nothing usable is left.
- ``meter_slug(name, serial) -> str``: slug of the configured name, else of the serial.
- node and unique ids come from :mod:`countis.presentation` (shared with the integration).
- ``bridge_availability(base)``   -> ``<base>/bridge/availability`` (LWT, retained)
- ``meter_availability(base, m)`` -> ``<base>/<m>/availability`` (retained)
- ``state(base, m)``              -> ``<base>/<m>/state`` (retained JSON)
- ``value(base, m, key)``         -> ``<base>/<m>/<key>`` (optional per-value topics)
- ``command(base, m, cmd)``       -> ``<base>/<m>/set/<cmd>`` (``tariff``, ``partial``)
- ``command_filter(base)``        -> ``<base>/+/set/+`` (one subscription for all meters)
- ``parse_command_topic(base, topic) -> (meter slug, command) | None``
- ``response(base, m)``           -> ``<base>/<m>/response``
- ``ha_status(prefix)``           -> ``<prefix>/status`` (Home Assistant birth/last will)
- ``device_discovery(prefix, serial)`` -> ``<prefix>/device/countis_<serial>/config``
- ``entity_discovery(prefix, component, serial, key)``
  -> ``<prefix>/<component>/countis_<serial>/<key>/config``

``m`` is always the meter's slug. Slug rules: Unicode is folded to ASCII (accents dropped,
``ß`` -> ``ss``), lower-cased, every run of other characters becomes one ``_``, and leading
or trailing ``_`` are stripped, so a slug matches ``[a-z0-9]+(_[a-z0-9]+)*``. ``bridge`` is
reserved (it would collide with ``<base>/bridge/availability``); settings reject it.
"""

from __future__ import annotations

import re
import unicodedata

from countis.presentation import node_id

#: Slug that would collide with the bridge's own topics.
RESERVED_SLUGS: frozenset[str] = frozenset({"bridge"})

_NON_SLUG = re.compile(r"[^a-z0-9]+")
# Letters NFKD does not decompose into ASCII; folded by hand so German/Nordic names stay readable.
_FOLD = str.maketrans({"ß": "ss", "æ": "ae", "ø": "o", "œ": "oe", "đ": "d", "ł": "l", "þ": "th"})


def slugify(name: str) -> str:
    """Topic slug of a display name: ``[a-z0-9]`` words joined by ``_`` (may be empty)."""
    folded = unicodedata.normalize("NFKD", name.lower().translate(_FOLD))
    ascii_only = folded.encode("ascii", "ignore").decode("ascii")
    return _NON_SLUG.sub("_", ascii_only).strip("_")


def meter_slug(name: str | None, serial: str) -> str:
    """Slug of a meter: of its configured name, else of its serial number."""
    return (slugify(name) if name else "") or slugify(serial)


def bridge_availability(base: str) -> str:
    """The bridge's own availability topic (last will, retained)."""
    return f"{base}/bridge/availability"


def meter_availability(base: str, meter: str) -> str:
    """One meter's availability topic (retained, debounced by the service)."""
    return f"{base}/{meter}/availability"


def state(base: str, meter: str) -> str:
    """One meter's state topic: one retained JSON object keyed by value keys."""
    return f"{base}/{meter}/state"


def value(base: str, meter: str, key: str) -> str:
    """Per-value topic of one value key (optional)."""
    return f"{base}/{meter}/{key}"


def command(base: str, meter: str, name: str) -> str:
    """Command topic of a meter (``name`` is ``tariff`` or ``partial``)."""
    return f"{base}/{meter}/set/{name}"


def command_filter(base: str) -> str:
    """Subscription filter matching every command topic of every meter."""
    return f"{base}/+/set/+"


def parse_command_topic(base: str, topic: str) -> tuple[str, str] | None:
    """``(meter slug, command name)`` of a command topic, ``None`` if it is not one.

    The command name is returned as received (possibly unknown): the command parser
    answers unknown names with an error response.
    """
    prefix = f"{base}/"
    if not topic.startswith(prefix):
        return None
    parts = topic[len(prefix) :].split("/")
    if len(parts) != 3 or parts[1] != "set" or not parts[0] or not parts[2]:
        return None
    return parts[0], parts[2]


def response(base: str, meter: str) -> str:
    """Response topic of a meter: one message per command received."""
    return f"{base}/{meter}/response"


def ha_status(prefix: str) -> str:
    """Home Assistant's birth/last-will topic (``online`` means: republish discovery)."""
    return f"{prefix}/status"


def device_discovery(prefix: str, serial: str) -> str:
    """Device-based discovery topic of a meter."""
    return f"{prefix}/device/{node_id(serial)}/config"


def entity_discovery(prefix: str, component: str, serial: str, key: str) -> str:
    """Per-entity discovery topic of one entity (``component`` = sensor/button/select)."""
    return f"{prefix}/{component}/{node_id(serial)}/{key}/config"
