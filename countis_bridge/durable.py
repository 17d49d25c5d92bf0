"""Durable file writes: a power cut leaves the old content or the new one, never half.

The one way the daemon writes state (partial-meter offsets, the published-meter registry,
the emulator's counters): a temporary file in the same directory, fsync it, rename it over
the target, fsync the directory so the rename itself is on disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path


def write_durably(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically and durably."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _sync_directory(path.parent)


def write_json_durably(path: Path, data: object) -> None:
    """Replace ``path`` with ``data`` as JSON (indented, keys sorted: readable, diffable)."""
    write_durably(path, json.dumps(data, indent=1, sort_keys=True))


def _sync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (not possible everywhere: then best effort)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # some file systems refuse fsync on directories
            os.fsync(fd)
    finally:
        os.close(fd)
