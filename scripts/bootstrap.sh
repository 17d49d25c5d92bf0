#!/usr/bin/env bash
# Create or refresh the project's virtual environment (.venv) with every extra installed.
# Idempotent: it reinstalls only when pyproject.toml or lib/pyproject.toml changed since the
# last run.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
    for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "error: Python >= 3.11 is required (set PYTHON=/path/to/python3.11)" >&2
    return 1
}

PY=$(find_python)
if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv with $PY"
    "$PY" -m venv .venv
fi
stamp=.venv/.countis-installed
want=$(cat pyproject.toml lib/pyproject.toml | sha256sum | cut -d" " -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "==> installing countis-bridge and its development tools into .venv"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e lib -e ".[dev]"
    echo "$want" >"$stamp"
fi
