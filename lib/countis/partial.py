"""Partial meters: start/stop in the bridge on top of the meter's partial counters (pure).

The meter's register map offers a reset of its partial counters but no start/stop (that
is a front-panel action). The bridge therefore keeps, per partial key
(:data:`countis.catalogue.PARTIAL_COUNTER_KEYS`), an offset: published = meter - offset.
While stopped the published values stay frozen; on start the offset absorbs what the meter
counted meanwhile, so the published values continue from the frozen ones.

Public API (stable):

- ``PartialMeter()``; ``.running``; ``.stop()``; ``.start()``; ``.reset()``;
  ``.apply(values) -> dict`` (every other key passes through unchanged);
  ``.meter_reset_detected`` (the last ``apply`` confirmed a reset done outside the bridge);
  ``.to_dict()`` / ``PartialMeter.from_dict(data)`` (JSON-ready, for Home Assistant's
  ``Store``) and ``.to_json()`` / ``PartialMeter.from_json(text)`` (the daemon's data_dir
  file). ``from_*`` raise :class:`PartialStateError` on bad data.

How the service uses it, per reading::

    values = partial.apply(reading.values)
    if partial.meter_reset_detected:
        guard.note_partial_reset()
    checked = guard.check(values, reading.timestamp)

and after a successful reset write to the meter: ``partial.reset()`` then
``guard.note_partial_reset()``; after every state change (start, stop, reset, detected
reset) persist ``to_json()``.

Timing: ``start`` and ``stop`` act on the last reading applied, so up to one energy poll
of consumption around the button press can land on either side of it.

A reset done outside the bridge (front panel, another Modbus client, or while the bridge
was down) shows as a partial counter dropping below its last reading or below its offset.
One low reading is withheld (the key is left out of ``apply``'s result); a second reading
that is still below the old value and not below the first confirms the reset: offsets of
that key are cleared (when stopped, its frozen value becomes 0). A reading back at or
above the old value was a glitch and is published normally.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from countis.catalogue import PARTIAL_COUNTER_KEYS
from countis.errors import CountisError
from countis.models import ValueType

STATE_VERSION = 1
_PLACES = 4  # 0.1 Wh in kWh: the finest resolution of any partial counter
_EPSILON = 1e-6  # float noise; every real step is at least 0.1 Wh = 1e-4 kWh


class PartialStateError(CountisError, ValueError):
    """Persisted partial-meter state is malformed."""


def _round(value: float) -> float:
    return max(0.0, round(value, _PLACES))


class PartialMeter:
    """Start/stop/reset state of one meter's partial counters."""

    def __init__(self) -> None:
        """A running partial meter without offsets (the meter's values published as-is)."""
        self._running = True
        self._offsets: dict[str, float] = {}  # published = raw - offset (while running)
        self._frozen: dict[str, float] = {}  # published values while stopped
        self._resume: dict[str, float] = {}  # started but no raw yet: continue from these
        self._last_raw: dict[str, float] = {}  # last meter value applied, per key
        self._pending: dict[str, float] = {}  # first low raw of an unconfirmed reset
        self._reset_detected = False

    @property
    def running(self) -> bool:
        """Whether the published partial values follow the meter."""
        return self._running

    @property
    def meter_reset_detected(self) -> bool:
        """The last :meth:`apply` confirmed a reset of the meter's partial counters."""
        return self._reset_detected

    def stop(self) -> None:
        """Freeze the published values at the last ones published (no-op if stopped)."""
        if not self._running:
            return
        self._running = False
        for key, raw in self._last_raw.items():
            self._frozen[key] = _round(raw - self._offsets.get(key, 0.0))
        for key, value in self._resume.items():  # started and stopped without a reading
            self._frozen.setdefault(key, value)
        self._resume.clear()

    def start(self) -> None:
        """Continue from the frozen values (no-op if running)."""
        if self._running:
            return
        self._running = True
        for key, value in self._frozen.items():
            if key in self._last_raw:
                self._offsets[key] = max(0.0, self._last_raw[key] - value)
            else:
                self._resume[key] = value
        self._frozen.clear()

    def reset(self) -> None:
        """The meter's partial counters were just reset: clear offsets (0 if stopped)."""
        self._offsets.clear()
        self._resume.clear()
        self._pending.clear()
        self._last_raw.clear()  # the next (near-zero) reading is not a drop
        if not self._running:
            self._frozen = dict.fromkeys(PARTIAL_COUNTER_KEYS, 0.0)

    def _meter_reset(self, key: str) -> None:
        self._offsets.pop(key, None)
        self._resume.pop(key, None)
        if not self._running:
            self._frozen[key] = 0.0
        self._reset_detected = True

    def _dropped(self, key: str, raw: float) -> bool:
        """Handle a reading below the last one; True if the key must be withheld."""
        pending = self._pending.get(key)
        if pending is not None and raw >= pending - _EPSILON:
            del self._pending[key]
            self._meter_reset(key)
            return False
        self._pending[key] = raw
        return True

    def _publish(self, key: str, raw: float) -> float:
        if not self._running:
            if key not in self._frozen:  # stopped before the first reading of this key
                self._frozen[key] = _round(raw - self._offsets.get(key, 0.0))
            return self._frozen[key]
        if key in self._resume:
            self._offsets[key] = max(0.0, raw - self._resume.pop(key))
        return _round(raw - self._offsets.get(key, 0.0))

    def apply(self, values: Mapping[str, ValueType]) -> dict[str, ValueType]:
        """Published values: partial counters adjusted, other keys unchanged."""
        self._reset_detected = False
        out: dict[str, ValueType] = {}
        for key, value in values.items():
            if key not in PARTIAL_COUNTER_KEYS or not isinstance(value, int | float):
                out[key] = value
                continue
            raw = float(value)
            # Below the last reading, or below the offset (a reset the last persisted
            # reading cannot show, e.g. while the bridge was down): the meter was reset.
            floor = max(self._last_raw.get(key, 0.0), self._offsets.get(key, 0.0))
            if raw < floor - _EPSILON:
                if self._dropped(key, raw):
                    continue
            else:
                self._pending.pop(key, None)  # back up: the low reading was a glitch
            self._last_raw[key] = raw
            out[key] = self._publish(key, raw)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state (unconfirmed resets are transient and not kept)."""
        return {
            "version": STATE_VERSION,
            "running": self._running,
            "offsets": dict(sorted(self._offsets.items())),
            "frozen": dict(sorted(self._frozen.items())),
            "resume": dict(sorted(self._resume.items())),
            "last_raw": dict(sorted(self._last_raw.items())),
        }

    def to_json(self) -> str:
        """State as JSON text."""
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any) -> PartialMeter:
        """State from :meth:`to_dict`'s output; unknown keys of other versions are ignored."""
        if not isinstance(data, dict):
            raise PartialStateError("partial-meter state must be a JSON object")
        if data.get("version") != STATE_VERSION:
            raise PartialStateError(
                f"unsupported partial-meter state version {data.get('version')!r}"
            )
        running = data.get("running")
        if not isinstance(running, bool):
            raise PartialStateError("partial-meter state: 'running' must be true or false")
        meter = cls()
        meter._running = running
        meter._offsets = _numbers(data, "offsets")
        meter._frozen = _numbers(data, "frozen")
        meter._resume = _numbers(data, "resume")
        meter._last_raw = _numbers(data, "last_raw")
        return meter

    @classmethod
    def from_json(cls, text: str | bytes) -> PartialMeter:
        """State from :meth:`to_json`'s output."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise PartialStateError(f"partial-meter state is not valid JSON: {err}") from err
        return cls.from_dict(data)


def _numbers(data: dict[str, Any], field: str) -> dict[str, float]:
    """A ``key -> number`` table of the persisted state (keys no longer known are dropped)."""
    table = data.get(field, {})
    if not isinstance(table, dict):
        raise PartialStateError(f"partial-meter state: {field!r} must be an object")
    out: dict[str, float] = {}
    for key, value in table.items():
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value < 0:
            raise PartialStateError(f"partial-meter state: {field}.{key} must be a number >= 0")
        if key in PARTIAL_COUNTER_KEYS:
            out[key] = float(value)
    return out
