"""Durable writes: a writer killed at any point leaves the old content or the new one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from countis_bridge.durable import write_durably

OLD = '{"counter": 1}\n' * 2000
NEW = '{"counter": 2}\n' * 4000  # longer than OLD: a torn write would show as a mix

# The child writes NEW over OLD and stops for good at one point of write_durably: the
# hook prints "paused" and sleeps until the test kills it with SIGKILL (no cleanup runs).
_CHILD = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from countis_bridge import durable

    target, point = Path(sys.argv[1]), sys.argv[2]

    def pause(*args, **kwargs):
        print("paused", flush=True)
        time.sleep(60)

    def half_written(fd):
        # the temporary file holds only part of the text when the writer dies
        os.ftruncate(fd, os.fstat(fd).st_size // 2)
        pause()

    hooks = {
        "mid-write": ("fsync", half_written),
        "before-rename": ("replace", pause),
    }
    if point == "after-rename":
        durable._sync_directory = pause
    else:
        name, hook = hooks[point]
        setattr(os, name, hook)
    durable.write_durably(target, sys.stdin.read())
    """
)


def _kill_writer_at(point: str, target: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(target), point],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    child.stdin.write(NEW)
    child.stdin.close()
    try:
        assert child.stdout.readline().strip() == "paused"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=10)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL


@pytest.mark.parametrize(
    ("point", "expected"),
    [("mid-write", OLD), ("before-rename", OLD), ("after-rename", NEW)],
)
def test_killed_writer_leaves_old_or_new(tmp_path: Path, point: str, expected: str) -> None:
    target = tmp_path / "state.json"
    write_durably(target, OLD)
    _kill_writer_at(point, target)
    assert target.read_text(encoding="utf-8") == expected
    # what the dead writer left behind is never mistaken for the file, and the next
    # write succeeds beside it
    write_durably(target, NEW)
    assert target.read_text(encoding="utf-8") == NEW


def test_first_write_killed_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    _kill_writer_at("before-rename", target)
    assert not target.exists()


def test_failed_write_keeps_old_content_and_removes_its_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "state.json"
    write_durably(target, OLD)

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        write_durably(target, NEW)
    assert target.read_text(encoding="utf-8") == OLD
    assert [entry.name for entry in tmp_path.iterdir()] == ["state.json"]


def test_creates_missing_directories(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "state.json"
    write_durably(target, NEW)
    assert target.read_text(encoding="utf-8") == NEW
