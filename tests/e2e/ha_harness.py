"""Helpers of the real-Home-Assistant end-to-end test (no pytest fixtures here).

Processes run in their own sessions and are stopped by PID (process group), never by name.
Every wait has a deadline. Home Assistant is seeded as in the project's HA testing notes:
no onboarding, the MQTT integration pointed at the test broker by a config entry, and an
admin user with a long-lived token.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.processes import HOST

# --- Home Assistant -------------------------------------------------------------------------

# Storage files the seed writes: (version, minor_version) of each, as Home Assistant
# 2025.10 .. 2026.11 read them (their loaders and fields are the same in both). Home Assistant
# migrates older versions but refuses newer ones, so a release that bumps one of these must
# be checked here first: check_storage_versions() fails then instead of a silent mis-seed.
STORAGE_VERSIONS = {"core.config_entries": (1, 5), "auth": (1, 1), "onboarding": (4, 1)}
# The MQTT config entry: 1.2 up to 2026.1-ish, 2.1 since (the same data and options; only the
# version moved). The seed uses the installed release's own version if it is one of these.
MQTT_ENTRY_VERSIONS = {(1, 2), (2, 1)}


_VERSIONS_PROBE = """
import json
from homeassistant import config_entries
from homeassistant.auth import auth_store
from homeassistant.components import onboarding
from homeassistant.components.mqtt import const
print(json.dumps({
    "core.config_entries": [config_entries.STORAGE_VERSION, config_entries.STORAGE_VERSION_MINOR],
    "auth": [auth_store.STORAGE_VERSION, 1],
    "onboarding": [onboarding.STORAGE_VERSION, 1],
    "mqtt entry": [const.CONFIG_ENTRY_VERSION, const.CONFIG_ENTRY_MINOR_VERSION],
}))
"""


def installed_storage_versions(python: str = sys.executable) -> dict[str, tuple[int, int]]:
    """The storage versions ``python``'s Home Assistant writes (see STORAGE_VERSIONS).

    Read in a child interpreter: importing homeassistant here would alias httpx (2026.11+)
    in the test process, which other plugins may have imported already.
    """
    out = subprocess.run(
        [python, "-c", _VERSIONS_PROBE], capture_output=True, check=True, timeout=120, text=True
    ).stdout
    return {key: (value[0], value[1]) for key, value in json.loads(out).items()}


def mqtt_entry_version(installed: Mapping[str, tuple[int, int]]) -> tuple[int, int]:
    """The MQTT config entry version of the installed Home Assistant (a known one)."""
    version = installed["mqtt entry"]
    if version not in MQTT_ENTRY_VERSIONS:
        raise AssertionError(
            f"Home Assistant's MQTT config entry is version {version}, the seed knows "
            f"{sorted(MQTT_ENTRY_VERSIONS)}: check its data/options format "
            "(homeassistant/components/mqtt/__init__.py async_migrate_entry) and add it"
        )
    return version


def check_storage_versions(installed: Mapping[str, tuple[int, int]]) -> None:
    """Fail clearly when the installed Home Assistant stores these files differently."""
    changed = {k: (v, installed[k]) for k, v in STORAGE_VERSIONS.items() if installed[k] != v}
    if changed:
        raise AssertionError(
            f"storage versions changed (seeded, installed): {changed}; check the formats in "
            "Home Assistant's source and update seed_ha_config"
        )


def seed_ha_config(
    config: Path,
    *,
    http_port: int,
    mqtt_port: int,
    entries: Sequence[Mapping[str, Any]] = (),
) -> str:
    """Write a configuration Home Assistant starts from without onboarding; returns a token.

    ``entries``: more config entries (domain, data, options, unique_id, title) besides MQTT's.
    """
    import jwt  # noqa: PLC0415 - from the HA venv (PyJWT comes with homeassistant)

    installed = installed_storage_versions()
    check_storage_versions(installed)
    mqtt_version, mqtt_minor = mqtt_entry_version(installed)
    storage = config / ".storage"
    storage.mkdir(parents=True)
    now = datetime.now(UTC).isoformat()
    (config / "configuration.yaml").write_text(
        "homeassistant:\n  name: CI\n  latitude: 52.5\n  longitude: 13.4\n  elevation: 0\n"
        "  unit_system: metric\n  time_zone: UTC\n  currency: EUR\n  country: DE\n"
        f"http:\n  server_host: 127.0.0.1\n  server_port: {http_port}\n"
        "api:\n"
        # MQTT debug shows every topic and discovery payload; the template renders (one
        # line with the whole state message per entity and message) would flood the log.
        "logger:\n  default: warning\n  logs:\n    homeassistant.components.mqtt: debug\n"
        "    homeassistant.components.mqtt.models: info\n"
        # Home Assistant installing an integration's requirement says so at info.
        "    homeassistant.util.package: info\n"
        "recorder:\nenergy:\n"
    )

    def store(key: str, data: Any, version: int = 1, minor: int = 1) -> None:
        body = {"version": version, "minor_version": minor, "key": key, "data": data}
        (storage / key).write_text(json.dumps(body, indent=1))

    user_id, token_id, jwt_key = uuid.uuid4().hex, uuid.uuid4().hex, secrets.token_hex(64)
    store(
        "auth",
        {
            "users": [
                {"id": user_id, "group_ids": ["system-admin"], "is_owner": True,
                 "is_active": True, "name": "ci", "system_generated": False,
                 "local_only": False},
            ],
            "groups": [
                {"id": "system-admin", "name": "Administrators"},
                {"id": "system-users", "name": "Users"},
                {"id": "system-read-only", "name": "Read Only"},
            ],
            "credentials": [],
            "refresh_tokens": [
                {"id": token_id, "user_id": user_id, "client_id": None, "client_name": "ci",
                 "client_icon": None, "token_type": "long_lived_access_token",
                 "created_at": now, "access_token_expiration": 315360000.0,
                 "token": secrets.token_hex(64), "jwt_key": jwt_key, "last_used_at": None,
                 "last_used_ip": None, "expire_at": None, "credential_id": None,
                 "version": None},
            ],
        },
        *STORAGE_VERSIONS["auth"],
    )  # fmt: skip
    store(
        "onboarding",
        {"done": ["user", "core_config", "analytics", "integration"]},
        *STORAGE_VERSIONS["onboarding"],
    )
    store(
        "core.config_entries",
        {
            "entries": [
                # protocol 5: else 2026.x probes the broker for MQTT 5 at every start
                {"created_at": now, "modified_at": now,
                 "data": {"broker": HOST, "port": mqtt_port, "protocol": "5"},
                 "disabled_by": None, "discovery_keys": {}, "domain": "mqtt",
                 "entry_id": uuid.uuid4().hex,
                 "minor_version": mqtt_minor, "version": mqtt_version,
                 "options": {"discovery": True, "discovery_prefix": "homeassistant"},
                 "pref_disable_new_entities": False, "pref_disable_polling": False,
                 "source": "user", "subentries": [], "title": HOST, "unique_id": None},
                *(
                    {"created_at": now, "modified_at": now, "disabled_by": None,
                     "discovery_keys": {}, "entry_id": uuid.uuid4().hex, "minor_version": 1,
                     "version": 1, "pref_disable_new_entities": False,
                     "pref_disable_polling": False, "source": "user", "subentries": [],
                     **entry}
                    for entry in entries
                ),
            ]
        },
        *STORAGE_VERSIONS["core.config_entries"],
    )  # fmt: skip
    issued = int(time.time())
    claims = {"iss": token_id, "iat": issued, "exp": issued + 315360000}
    return str(jwt.encode(claims, jwt_key, algorithm="HS256"))


class HomeAssistant:
    """REST and websocket access to a running Home Assistant with a bearer token."""

    def __init__(self, port: int, token: str) -> None:
        """Where it listens and how to authenticate."""
        self.url = f"http://{HOST}:{port}"
        self.token = token

    def request(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        """One REST call; returns the decoded JSON answer (HTTP errors raise)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read()
        return json.loads(text) if text else None

    def state(self, entity_id: str) -> dict[str, Any] | None:
        """The state object of one entity, None while it does not exist."""
        try:
            return dict(self.request("GET", f"/api/states/{entity_id}"))
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
            raise

    def states(self) -> dict[str, dict[str, Any]]:
        """Every state by entity id."""
        return {s["entity_id"]: s for s in self.request("GET", "/api/states")}

    def call_service(self, domain: str, service: str, data: Mapping[str, Any]) -> None:
        """Call a service through the REST API."""
        self.request("POST", f"/api/services/{domain}/{service}", dict(data))

    def running_with_mqtt(self) -> bool:
        """Core RUNNING, the mqtt integration set up and its config entry loaded.

        ("mqtt" in the components is not enough: it is there even when the entry failed.)
        """
        config = self.request("GET", "/api/config", timeout=3)
        if config.get("state") != "RUNNING" or "mqtt" not in config.get("components", []):
            return False
        entries = self.request("GET", "/api/config/config_entries/entry?domain=mqtt", timeout=3)
        states = [e.get("state") for e in entries]
        if states and all(s in {"setup_error", "migration_error", "failed_unload"} for s in states):
            raise AssertionError(f"the MQTT config entry did not load: {entries}")
        return "loaded" in states

    def ws(self, *messages: Mapping[str, Any], timeout: float = 20.0) -> list[Any]:
        """Send websocket commands (ids added here); returns each command's ``result``."""
        return asyncio.run(asyncio.wait_for(self._ws(messages), timeout))

    async def _ws(self, messages: Sequence[Mapping[str, Any]]) -> list[Any]:
        import aiohttp  # noqa: PLC0415 - from the HA venv

        results = []
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{self.url}/api/websocket") as ws,
        ):
            assert (await ws.receive_json())["type"] == "auth_required"
            await ws.send_json({"type": "auth", "access_token": self.token})
            auth = await ws.receive_json()
            assert auth["type"] == "auth_ok", auth
            for number, message in enumerate(messages, start=1):
                await ws.send_json({**message, "id": number})
                while True:
                    answer = await ws.receive_json()
                    if answer.get("id") == number and answer.get("type") == "result":
                        break
                assert answer["success"], answer
                results.append(answer["result"])
        return results


def overlay_venv(path: Path, python: str = sys.executable) -> Path:
    """A venv that sees the Home Assistant venv's packages (a .pth line), nothing of its own.

    Home Assistant installs missing requirements into the venv it runs in: this one, so the
    cached Home Assistant venv stays as its lock says. Only a plain path line: the .pth
    files of the Home Assistant venv (editable installs) are not processed. Returns its
    python.
    """
    subprocess.run([python, "-m", "venv", "--without-pip", str(path)], check=True)
    probe = (
        "import site, sysconfig; print(site.getsitepackages()[0], sysconfig.get_path('purelib'))"
    )
    found = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True)
    ha_site = found.stdout.split()[0]
    overlay = subprocess.run(
        [
            str(path / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(overlay) / "home-assistant-venv.pth").write_text(ha_site + "\n")
    return path / "bin" / "python"


# --- the emulator's control API -------------------------------------------------------------
