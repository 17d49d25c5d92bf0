#!/usr/bin/env bash
# Lint and types of the library and the daemon: ruff (check + format) and mypy --strict.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "==> mypy --strict"
.venv/bin/mypy lib/countis countis_bridge
