#!/usr/bin/env bash
# The whole test suite: set-up included, from a fresh machine to a verdict.
#   1. lint + types (ruff, mypy --strict)
#   2. unit + integration tests on Python 3.11+ with the newest pymodbus 3.x
#      (emulator over TCP on loopback, a real Mosquitto broker per test on a free port)
#   3. the Node-RED tier: every flow of examples/node-red in a real Node-RED (the version
#      tests/nodered/package-lock.json pins, installed outside the checkout by
#      scripts/setup-node-red.sh) against Mosquitto, the bridge and the emulated meter
#   4. the Home Assistant tier on Python 3.13 with homeassistant 2025.4.4 and pymodbus 3.8.3:
#      the client tests again (the pymodbus version HA pins), the custom integration under
#      pytest-homeassistant-custom-component, and an end-to-end run against a real HA core.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONDONTWRITEBYTECODE=  # compiled bytecode halves the HA tier's import time

scripts/ensure-mosquitto.sh
scripts/bootstrap.sh

echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "==> mypy --strict"
.venv/bin/mypy lib/countis countis_bridge

echo "==> build both distributions (sdist + wheel, twine check) and the offline wheelhouse"
scripts/build-dists.sh

echo "==> unit and integration tests (Python $(.venv/bin/python -c 'import sys; print(sys.version.split()[0])'), pymodbus $(.venv/bin/python -c 'import pymodbus; print(pymodbus.__version__)'))"
.venv/bin/python -m pytest tests/unit tests/integration "$@"

echo "==> Node-RED tier: the example flows in a real Node-RED against the bridge"
node_red_home=$(scripts/setup-node-red.sh)
COUNTIS_NODE_RED_HOME=$node_red_home .venv/bin/python -m pytest tests/nodered

echo "==> Home Assistant tier (Python 3.13, homeassistant 2025.4.4, pymodbus 3.8.3)"
scripts/setup-ha-venv.sh
.venv/bin/mypy --strict --python-executable .venv-ha/bin/python --python-version 3.13 \
    custom_components/countis
echo "==> client and emulator again with pymodbus $(.venv-ha/bin/python -c 'import pymodbus; print(pymodbus.__version__)')"
.venv-ha/bin/python -m pytest -c tests/compat.ini tests/integration/test_client.py \
    tests/integration/test_read_cli.py tests/integration/test_emulator_*.py \
    tests/integration/test_modbus_tcp.py
echo "==> custom integration (pytest-homeassistant-custom-component)"
.venv-ha/bin/python -m pytest -c tests/components/pytest.ini tests/components -p no:sugar
echo "==> end to end: real Home Assistant core + Mosquitto + bridge + emulated meter"
.venv-ha/bin/python -m pytest -c tests/e2e/pytest.ini tests/e2e -p no:sugar
