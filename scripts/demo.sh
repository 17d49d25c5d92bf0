#!/usr/bin/env bash
# Try countis-bridge without hardware: emulated meters + an embedded MQTT broker + the bridge,
# with live values in the terminal. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/countis-bridge demo "$@"
