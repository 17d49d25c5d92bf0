#!/usr/bin/env bash
# Tests start their own Mosquitto broker on a free loopback port: make sure it is installed.
set -euo pipefail
if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then
    exit 0
fi
echo "==> installing mosquitto (Debian package)"
"$(dirname "$0")/apt-install.sh" mosquitto mosquitto-clients
# The Debian package may start a system broker on 1883; the tests never use it.
