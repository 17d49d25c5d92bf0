"""The daemon's partial-meter store: one JSON file per meter serial in the data directory.

Changes a command or a detected reset makes are written at once, durably; the raw values
the session notes after every energy poll are kept in memory and written when the poller
stops, so a clean restart can still detect a reset done while the bridge was down.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from countis_bridge import topics
from countis_bridge.durable import write_json_durably

_LOG = logging.getLogger(__name__)


class FilePartialStore:
    """``<data_dir>/partial-<serial>.json`` per meter (a countis.session.PartialStore)."""

    def __init__(self, data_dir: Path) -> None:
        """Files live in ``data_dir`` (created when the first one is written)."""
        self.data_dir = data_dir
        self._pending: dict[str, Mapping[str, Any]] = {}

    def path(self, serial: str) -> Path:
        """The file of one meter."""
        return self.data_dir / f"partial-{topics.slugify(serial) or 'meter'}.json"

    async def load(self, serial: str) -> Mapping[str, Any] | None:
        """The saved state, or None (a damaged file is logged and ignored)."""
        path = self.path(serial)
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            _LOG.warning("ignoring partial-meter state %s: %s", path, err)
            return None
        if not isinstance(data, dict):
            _LOG.warning("ignoring partial-meter state %s: not a JSON object", path)
            return None
        return data

    def save(self, serial: str, state: Mapping[str, Any], *, urgent: bool) -> None:
        """Write an urgent change now; keep a routine one for :meth:`flush`."""
        self._pending[serial] = state
        if urgent:
            self._write(serial)

    def flush(self) -> None:
        """Write what is pending (the poller stops)."""
        for serial in list(self._pending):
            self._write(serial)

    def _write(self, serial: str) -> None:
        state = self._pending.pop(serial)
        path = self.path(serial)
        try:
            write_json_durably(path, state)
        except OSError as err:
            _LOG.warning("cannot save partial-meter state %s: %s", path, err)
