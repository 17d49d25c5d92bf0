"""The state file: the counters the real meter keeps in FRAM, as JSON.

Written durably (:mod:`countis_bridge.durable`): a crash leaves either the old or the new
file, never half of one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from countis.errors import ConfigError

FORMAT = 1


def read_state(path: Path) -> dict[str, Any] | None:
    """The saved state, or None when the file does not exist yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as err:
        msg = f"state file {path}: {err.strerror}"
        raise ConfigError(msg) from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        msg = f"state file {path} is not valid JSON ({err.msg} at line {err.lineno})"
        raise ConfigError(msg) from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        msg = f"state file {path} is not a countis-bridge emulator state (format {FORMAT})"
        raise ConfigError(msg)
    return data
