"""The daemon's configuration as the tests check it: in process, environment cleaned."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest
from countis.errors import CountisError

from countis_bridge.cli import build_parser, report
from countis_bridge.daemon import run_settings
from countis_bridge.settings import Settings


def clear_countis_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No COUNTIS_* variable of the machine running the tests leaks in."""
    for name in list(os.environ):
        if name.upper().startswith("COUNTIS_"):
            monkeypatch.delenv(name)


def run_check(path: Path) -> tuple[int, str, Settings | None]:
    """Exit code, stderr and settings of ``run --config path`` up to the first connection."""
    args = build_parser().parse_args(["run", "--config", str(path)])
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            return 0, err.getvalue(), run_settings(args)
        except CountisError as error:
            return report("run", error), err.getvalue(), None
