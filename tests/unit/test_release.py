"""One version everywhere a user or a package manager reads one, and a release that ships it."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def pyproject(path: Path) -> dict[str, object]:
    return tomllib.loads(path.read_text(encoding="utf-8"))["project"]


def test_the_library_the_daemon_the_integration_and_the_app_share_one_version() -> None:
    library = pyproject(ROOT / "lib" / "pyproject.toml")
    daemon = pyproject(ROOT / "pyproject.toml")
    manifest = json.loads((ROOT / "custom_components" / "countis" / "manifest.json").read_text())
    app = yaml.safe_load((ROOT / "addon" / "config.yaml").read_text())
    version = library["version"]
    assert daemon["version"] == version
    assert manifest["version"] == version
    assert app["version"] == version
    # Pinned exactly: the integration and the daemon run the library they were tested with.
    assert manifest["requirements"] == [f"countis=={version}"]
    assert f"countis=={version}" in daemon["dependencies"]
    assert library["dependencies"] == []  # the standard library only
    assert f"## {version}\n" in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")


def test_the_declared_minimum_home_assistant_is_the_oldest_tested_one() -> None:
    tiers = sorted(
        (tuple(int(n) for n in d.name.split(".")) for d in (ROOT / "ha").iterdir() if d.is_dir()),
    )
    oldest = ".".join(str(n) for n in tiers[0])
    hacs = json.loads((ROOT / "hacs.json").read_text())
    assert hacs["homeassistant"] == f"{oldest}.0"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"Home Assistant **{oldest}** or newer" in readme
    pins = (ROOT / "ha" / oldest / "requirements.txt").read_text()
    assert re.search(rf"^homeassistant=={re.escape(oldest)}\.\d+$", pins, re.M)


def test_one_release_workflow_ships_everything() -> None:
    workflows = ROOT / ".github" / "workflows"
    assert [p.name for p in workflows.iterdir()] == ["release.yml"]
    release = yaml.safe_load((workflows / "release.yml").read_text())
    jobs = release["jobs"]
    assert set(jobs) == {"dists", "pypi", "app-image", "github-release"}
    dists = " ".join(str(s.get("run", "")) for s in jobs["dists"]["steps"])
    assert "build --sdist --wheel --outdir dist lib" in dists
    assert "build --sdist --wheel --outdir dist ." in dists
    assert "twine check --strict" in dists
    assert jobs["pypi"]["permissions"] == {"id-token": "write"}  # trusted publishing
    uses = [s.get("uses", "") for s in jobs["pypi"]["steps"]]
    assert any(u.startswith("pypa/gh-action-pypi-publish") for u in uses)
    build = next(s for s in jobs["app-image"]["steps"] if "build-push-action" in s.get("uses", ""))
    assert build["with"]["platforms"] == "linux/amd64,linux/arm64"
    assert build["with"]["file"] == "addon/Dockerfile"
    notes = " ".join(str(s.get("run", "")) for s in jobs["github-release"]["steps"])
    assert "CHANGELOG.md" in notes
    assert "gh release create" in notes
