"""Imported by pytest before any plugin (``-p tests.components.ha_preload`` in pytest.ini).

Home Assistant 2026.11's package ``__init__`` aliases ``httpx`` to ``httpx2`` (and
``voluptuous`` to ``probatio``) and refuses to when ``httpx`` is already imported.
pytest-homeassistant-custom-component 0.13.375 (made for 2026.10.4; no release pins 2026.11
yet) imports ``respx``, and so ``httpx``, before ``homeassistant``: every run then fails with
"httpx was already imported; call `alias_httpx()` before any `import httpx`". Importing
``homeassistant`` first restores the order Home Assistant expects; on older releases it is a
plain early import.
"""

import homeassistant  # noqa: F401

# --- pytest-homeassistant-custom-component made for an older Home Assistant ---------------
# Only while no plugin release pins the installed Home Assistant (see ha/2026.11/overrides.txt):
# names the plugin imports from where they were before 2026.11.
from homeassistant.components import logger as _logger

if not hasattr(_logger, "_clear_logger_overwrites"):
    from homeassistant.components.logger.helpers import _clear_logger_overwrites

    _logger._clear_logger_overwrites = _clear_logger_overwrites  # type: ignore[attr-defined]
