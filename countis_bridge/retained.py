"""The retained topics a meter owns, and the registry of what was published.

The broker keeps retained messages until someone clears them (an empty retained payload).
This module is the one place that knows which retained topics belong to a meter:

- under its topic slug: state, availability and the per-value topics
  (:func:`slug_topics`);
- under its serial: the device discovery config and every per-entity config
  (:func:`discovery_topics`).

``<data_dir>/published.json`` (:class:`Registry`) remembers what was announced for each
configured meter (serial, slug, topic layout), so that a meter removed from the
configuration, a serial that changed, a renamed meter or a changed discovery mode gets its
old retained messages cleared (:func:`stale_topics`), even across restarts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from countis.catalogue import VALUE_KEYS
from countis.config import MeterConfig

from countis_bridge import topics
from countis_bridge.discovery import command_platforms
from countis_bridge.durable import write_durably

_LOG = logging.getLogger(__name__)
REGISTRY_FILE = "published.json"
REGISTRY_VERSION = 1


def meter_key(meter: MeterConfig) -> str:
    """A configured meter's registry key: its name's slug, else its Modbus address."""
    slug = topics.slugify(meter.name) if meter.name else ""
    return slug or f"{meter.host}:{meter.port}:{meter.unit}"


def slug_topics(base: str, slug: str, *, per_value: bool = True) -> list[str]:
    """The retained topics under one meter slug: state, availability, per-value topics."""
    out = [topics.state(base, slug), topics.meter_availability(base, slug)]
    return out + value_topics(base, slug) if per_value else out


def value_topics(base: str, slug: str) -> list[str]:
    """The per-value topics under one meter slug."""
    return [topics.value(base, slug, key) for key in VALUE_KEYS]


def discovery_topics(prefix: str, serial: str, keys: Iterable[str] | None = None) -> list[str]:
    """Discovery topics of a meter: the device config and every per-entity config.

    With ``keys``: only the per-entity configs of those entities (either discovery mode may
    have been used before, so both are cleared when a meter goes).
    """
    platforms = {**dict.fromkeys(VALUE_KEYS, "sensor"), **command_platforms()}
    chosen = platforms if keys is None else {key: platforms[key] for key in keys}
    out = [topics.entity_discovery(prefix, p, serial, key) for key, p in chosen.items()]
    return out if keys is not None else [topics.device_discovery(prefix, serial), *out]


@dataclass(frozen=True, slots=True, kw_only=True)
class Published:
    """What was announced for one configured meter (an entry of the registry file)."""

    serial: str
    slug: str
    base_topic: str
    discovery_prefix: str
    mode: Literal["device", "entity"]
    per_value: bool


def published_discovery(entry: Published) -> list[str]:
    """The discovery topics ``entry`` was announced on (its mode's, not both)."""
    if entry.mode == "device":
        return [topics.device_discovery(entry.discovery_prefix, entry.serial)]
    keys = [*VALUE_KEYS, *command_platforms()]
    return discovery_topics(entry.discovery_prefix, entry.serial, keys)


def published_slug(entry: Published) -> list[str]:
    """The topics under ``entry``'s slug (per-value ones only if they were published)."""
    return slug_topics(entry.base_topic, entry.slug, per_value=entry.per_value)


def removal_topics(entry: Published) -> list[str]:
    """Every retained topic of a meter that is gone: what it published, nothing more.

    Consumers subscribed to the meter's topics get one empty message per topic it had.
    """
    return [*published_discovery(entry), *published_slug(entry)]


def stale_topics(old: Published, new: Published | None) -> list[str]:
    """Retained topics of ``old`` that ``new`` does not overwrite (``None`` = meter gone)."""
    if new is None:
        return removal_topics(old)
    out: list[str] = []
    moved = old.serial != new.serial or old.discovery_prefix != new.discovery_prefix
    if moved or old.mode != new.mode:
        out += published_discovery(old)
    if old.slug != new.slug or old.base_topic != new.base_topic:
        out += published_slug(old)
    elif old.per_value and not new.per_value:
        out += value_topics(old.base_topic, old.slug)
    return out


class Registry:
    """The published-meters file in the data directory (written when it changed)."""

    def __init__(self, path: Path) -> None:
        """Load ``path`` if it exists (a damaged file is ignored with a warning)."""
        self.path = path
        self.entries: dict[str, Published] = {}
        self.dirty = False
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") == REGISTRY_VERSION:
                self.entries = {k: Published(**v) for k, v in data["meters"].items()}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
            _LOG.warning("ignoring %s: %s", path, err)

    def set(self, key: str, entry: Published | None) -> Published | None:
        """Record (or forget) a meter; returns the previous entry."""
        old = self.entries.pop(key, None) if entry is None else self.entries.get(key)
        if entry is not None:
            self.entries[key] = entry
        self.dirty = self.dirty or old != entry
        return old

    def save(self) -> None:
        """Write the file (durably) if anything changed."""
        if not self.dirty:
            return
        data = {
            "version": REGISTRY_VERSION,
            "meters": {k: asdict(v) for k, v in sorted(self.entries.items())},
        }
        try:
            write_durably(self.path, json.dumps(data, indent=1))
            self.dirty = False
        except OSError as err:
            _LOG.warning("cannot write %s: %s", self.path, err)
