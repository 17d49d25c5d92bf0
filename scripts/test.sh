#!/usr/bin/env bash
# The whole test suite: set-up included, from a fresh machine to a verdict.
#   1. lint + types (ruff, mypy --strict)
#   2. unit + integration tests on Python 3.11+ with the newest pymodbus 3.x
#      (emulator over TCP on loopback, a real Mosquitto broker per test on a free port)
#   3. the Node-RED tier: every flow of examples/node-red in a real Node-RED (the version
#      tests/nodered/package-lock.json pins, installed outside the checkout by
#      scripts/setup-node-red.sh) against Mosquitto, the bridge and the emulated meter
#   4. the Home Assistant tiers (ha/<tier>/, one venv each): the custom integration under
#      pytest-homeassistant-custom-component on the newest release (2026.11, Python 3.14) and
#      on the oldest supported one (2025.10, Python 3.13), mypy against the newest, and an
#      end-to-end run against a real Home Assistant core of the newest release.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONDONTWRITEBYTECODE=  # compiled bytecode halves the HA tier's import time

scripts/ensure-mosquitto.sh
scripts/lint.sh  # sets up .venv first

echo "==> build both distributions (sdist + wheel, twine check) and the offline wheelhouse"
scripts/build-dists.sh

echo "==> unit and integration tests (Python $(.venv/bin/python -c 'import sys; print(sys.version.split()[0])'), pymodbus $(.venv/bin/python -c 'import pymodbus; print(pymodbus.__version__)'))"
.venv/bin/python -m pytest tests/unit tests/integration "$@"

echo "==> Node-RED tier: the example flows in a real Node-RED against the bridge"
node_red_home=$(scripts/setup-node-red.sh)
COUNTIS_NODE_RED_HOME=$node_red_home .venv/bin/python -m pytest tests/nodered

# Home Assistant tiers (scripts/setup-ha-venv.sh; ha/<tier>/): the newest release and the
# oldest the project supports. Each venv is built once and reused while its lock is unchanged.
HA_NEWEST=2026.11
HA_MINIMUM=2025.10
for tier in "$HA_NEWEST" "$HA_MINIMUM"; do
    echo "==> Home Assistant tier $tier: setting up .venv-ha-$tier"
    scripts/setup-ha-venv.sh "$tier"
done
echo "==> mypy --strict on the integration against homeassistant $(.venv-ha-$HA_NEWEST/bin/hass --version)"
MYPYPATH=lib .venv/bin/mypy --strict --python-executable ".venv-ha-$HA_NEWEST/bin/python" \
    --python-version "$(.venv-ha-$HA_NEWEST/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
    custom_components/countis
for tier in "$HA_NEWEST" "$HA_MINIMUM"; do
    echo "==> custom integration on homeassistant $(.venv-ha-$tier/bin/hass --version) (pytest-homeassistant-custom-component)"
    ".venv-ha-$tier/bin/python" -m pytest -c tests/components/pytest.ini tests/components -p no:sugar
done
echo "==> end to end: real Home Assistant $(.venv-ha-$HA_NEWEST/bin/hass --version) + Mosquitto + bridge + emulated meter"
".venv-ha-$HA_NEWEST/bin/python" -m pytest -c tests/e2e/pytest.ini tests/e2e -p no:sugar
