#!/usr/bin/env bash
# Build both distributions (the countis library and the countis-bridge daemon) as sdists and
# wheels into dist/, check them with twine, and fill a wheelhouse with the daemon's
# dependencies (cached outside the checkout) so the packaging tests install offline.
#
#   scripts/build-dists.sh            dist/ + wheelhouse; prints nothing else on success
# Environment: COUNTIS_WHEELHOUSE (default ${XDG_CACHE_HOME:-$HOME/.cache}/countis-bridge/wheelhouse)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
PY=.venv/bin/python
WHEELHOUSE=${COUNTIS_WHEELHOUSE:-${XDG_CACHE_HOME:-$HOME/.cache}/countis-bridge/wheelhouse}

rm -rf dist
"$PY" -m build --sdist --wheel --outdir dist lib >/dev/null
"$PY" -m build --sdist --wheel --outdir dist . >/dev/null
"$PY" -m twine check --strict dist/*

# The daemon's dependencies as wheels (network only when the wheelhouse lacks one).
mkdir -p "$WHEELHOUSE"
"$PY" -m pip download --quiet --disable-pip-version-check --dest "$WHEELHOUSE" \
    --find-links dist --find-links "$WHEELHOUSE" --only-binary :all: \
    dist/countis_bridge-*.whl
# Our own wheels come from dist/ only: never a stale copy of the same version.
rm -f "$WHEELHOUSE"/countis-*.whl "$WHEELHOUSE"/countis_bridge-*.whl
