#!/usr/bin/env bash
# Tests start their own Mosquitto broker on a free loopback port: make sure it is installed.
set -euo pipefail
if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then
    exit 0
fi
echo "==> installing mosquitto (Debian package)"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends mosquitto mosquitto-clients >/dev/null
# The Debian package may start a system broker on 1883; the tests never use it.
