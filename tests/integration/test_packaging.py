"""The two distributions as users install them: wheels into fresh virtual environments.

``scripts/build-dists.sh`` (run by the test script) builds the sdists and wheels into
``dist/``, checks them with twine, and fills a wheelhouse with the daemon's dependencies,
so these tests install offline (``--no-index``): what a wheel declares is what it gets.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIST = Path(os.environ.get("COUNTIS_DIST", ROOT / "dist"))
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
WHEELHOUSE = Path(os.environ.get("COUNTIS_WHEELHOUSE", CACHE / "countis-bridge" / "wheelhouse"))
FORBIDDEN = ("aiomqtt", "paho", "pydantic", "pydantic_settings", "yaml", "pymodbus")


def wheel(name: str) -> Path:
    """The built wheel of a distribution (built by scripts/build-dists.sh)."""
    found = sorted(DIST.glob(f"{name}-*-py3-none-any.whl"))
    assert found, f"no {name} wheel in {DIST}: run scripts/build-dists.sh first"
    return found[-1]


def fresh_venv(path: Path) -> Path:
    """A new virtual environment without the project; its python."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    return path / "bin" / "python"


def pip_install(python: Path, *args: str) -> None:
    """pip install offline: the wheels of dist/ and the wheelhouse only."""
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-index", "--find-links", str(DIST), "--find-links", str(WHEELHOUSE), *args],
        check=True,
        env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
    )  # fmt: skip


def test_each_wheel_holds_only_its_own_package() -> None:
    with zipfile.ZipFile(wheel("countis")) as library:
        tops = {name.split("/")[0] for name in library.namelist()}
        metadata = library.read(next(n for n in library.namelist() if n.endswith("METADATA")))
    assert "countis" in tops
    assert "countis_bridge" not in tops
    assert b"Requires-Dist" not in metadata  # the standard library only
    with zipfile.ZipFile(wheel("countis_bridge")) as daemon:
        tops = {name.split("/")[0] for name in daemon.namelist()}
        metadata = daemon.read(next(n for n in daemon.namelist() if n.endswith("METADATA")))
    assert "countis_bridge" in tops
    assert "countis" not in tops
    assert b"Requires-Dist: countis==" in metadata  # pinned: one release of each, together


def test_the_library_alone_installs_nothing_else(tmp_path: Path) -> None:
    python = fresh_venv(tmp_path / "venv")
    pip_install(python, str(wheel("countis")))
    probe = (
        "import importlib.util, json, countis, countis.session, countis.client;"
        f"print(json.dumps([m for m in {FORBIDDEN!r} if importlib.util.find_spec(m)]))"
    )
    found = subprocess.run([str(python), "-c", probe], check=True, capture_output=True, text=True)
    assert json.loads(found.stdout) == []
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
        check=True,
        capture_output=True,
        text=True,
    )
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert names - {"pip", "setuptools", "wheel"} == {"countis"}


async def test_both_wheels_read_an_emulated_meter(tmp_path: Path, emulator, make_meter) -> None:
    python = await asyncio.to_thread(fresh_venv, tmp_path / "venv")
    await asyncio.to_thread(pip_install, python, "countis-bridge")
    meter = make_meter()
    (port,) = await emulator(meter)
    proc = await asyncio.create_subprocess_exec(
        str(python.parent / "countis-bridge"), "read", f"127.0.0.1:{port}", "--json",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    report = json.loads(out)
    assert report["identity"]["serial_number"] == str(meter.serial)
    assert report["values"]["voltage_l1"] > 200


@pytest.mark.parametrize("name", ["countis", "countis_bridge"])
def test_sdists_were_built_and_checked(name: str) -> None:
    assert list(DIST.glob(f"{name}-*.tar.gz")), f"no {name} sdist: run scripts/build-dists.sh"
