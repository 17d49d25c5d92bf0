"""HTTP JSON for the tests: one request helper, and the emulator's control API with it.

The standard library only, so every tier's interpreter (the bridge's venv, the Home
Assistant venvs) imports it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from countis_bridge.ports import LOOPBACK


def http(
    method: str, url: str, body: Any = None, headers: Mapping[str, str] | None = None
) -> bytes:
    """One HTTP request with a JSON body; the answer's body (HTTP errors raise)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as err:
        detail = err.read().decode(errors="replace")[:500]
        msg = f"{method} {url}: HTTP {err.code}: {detail}"
        raise AssertionError(msg) from None


def http_json(
    method: str, url: str, body: Any = None, headers: Mapping[str, str] | None = None
) -> Any:
    """One HTTP request with a JSON body; the decoded JSON answer (None when empty)."""
    text = http(method, url, body, headers)
    return json.loads(text) if text.strip() else None


class EmulatorControl:
    """The control API of ``countis-bridge emulate --control-port``, for one meter.

    Each call returns the API's answer (a JSON object).
    """

    def __init__(self, port: int, meter: int = 0) -> None:
        """The API's port and the meter's index."""
        self.root = f"http://{LOOPBACK}:{port}"
        self.url = f"{self.root}/meters/{meter}"

    def meters(self) -> list[dict[str, Any]]:
        """Every meter as ``GET /meters`` lists them (serial, port, tariff, ...)."""
        return list(http_json("GET", f"{self.root}/meters"))

    def meter(self) -> dict[str, Any]:
        """Serial, tariff, partial_running, faults and values of the meter."""
        return dict(http_json("GET", self.url))

    def values(self) -> dict[str, Any]:
        """The meter's values by value key, quantized as its registers carry them."""
        return dict(http_json("GET", self.url + "/values"))

    def faults(self, **faults: Any) -> dict[str, Any]:
        """Set faults, e.g. ``faults(no_answer=True)``, ``faults(clear=True)``."""
        return dict(http_json("POST", self.url + "/faults", faults))

    def tariff(self, tariff: int) -> dict[str, Any]:
        """Switch the meter's tariff from its front panel."""
        return dict(http_json("POST", self.url + "/tariff", {"tariff": tariff}))
