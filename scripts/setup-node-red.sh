#!/usr/bin/env bash
# Install the Node-RED that the test tier (tests/nodered) runs, exactly as pinned by
# tests/nodered/package-lock.json, into a cache directory outside the checkout, and print
# that directory on stdout (the only line on stdout). Idempotent: a complete install of the
# same package.json + package-lock.json is reused; a new lock installs next to the old one.
# Non-interactive (CI=true, no stdin). Installs Debian's nodejs/npm if node is missing.
#
#   scripts/setup-node-red.sh
#   COUNTIS_NODE_RED_HOME=$(scripts/setup-node-red.sh) .venv/bin/python -m pytest tests/nodered
#
# Environment: NODE_RED_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/countis-bridge): the
#   install lands in $NODE_RED_CACHE/node-red-<version>-<hash of package.json + lock>.
#   npm's own download cache (npm_config_cache, default ~/.npm) makes a reinstall fast.
set -euo pipefail
exec </dev/null
export CI=true

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC=$ROOT/tests/nodered
NEED_NODE=18.5  # Node-RED 4.1's "engines"; Node-RED 5 needs 22.9

log() { printf '[setup-node-red] %s\n' "$*" >&2; }
die() { printf '[setup-node-red] ERROR: %s\n' "$*" >&2; exit 1; }

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 ||
    die "node and npm are needed (Node.js >= $NEED_NODE); install them and re-run"
  "$ROOT/scripts/apt-install.sh" nodejs npm
fi
node -e '
  const [major, minor] = process.versions.node.split(".").map(Number);
  const [needMajor, needMinor] = process.argv[1].split(".").map(Number);
  process.exit(major > needMajor || (major === needMajor && minor >= needMinor) ? 0 : 1);
' "$NEED_NODE" || die "Node.js $(node --version) is too old: Node-RED 4.1 needs >= $NEED_NODE"

version=$(node -p 'require(process.argv[1]).packages["node_modules/node-red"].version' \
  "$SRC/package-lock.json")
hash=$(cat "$SRC/package.json" "$SRC/package-lock.json" | sha256sum | cut -c1-12)
cache=${NODE_RED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/countis-bridge}
dest=$cache/node-red-$version-$hash

installed() {
  [[ -f $1/.complete && -f $1/node_modules/node-red/red.js ]] &&
    [[ $(node -p 'require(process.argv[1]).version' "$1/node_modules/node-red/package.json") == "$version" ]]
}

if installed "$dest"; then
  log "node-red $version is installed in $dest"
  echo "$dest"
  exit 0
fi

mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.node-red-$version-$hash.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
cp "$SRC/package.json" "$SRC/package-lock.json" "$tmp/"
log "installing node-red $version with npm ci (node $(node --version), npm $(npm --version)) into $dest"
# --omit=optional: no native bcrypt (Node-RED falls back to bcryptjs); no package in the
# lock needs an install script. --prefer-offline: what npm's cache holds is used without
# asking the registry again (the lock pins every version and its integrity hash).
(cd "$tmp" && npm ci --prefer-offline --omit=optional --ignore-scripts --no-audit --no-fund \
  --loglevel=error >&2)
touch "$tmp/.complete"
installed "$tmp" || die "npm ci did not install node-red $version"
if ! mv -T "$tmp" "$dest" 2>/dev/null; then
  # Another run finished first (keep its copy) or an incomplete copy is in the way.
  if ! installed "$dest"; then
    rm -rf "$dest"
    mv -T "$tmp" "$dest"
  fi
fi
log "node-red $version installed in $dest"
echo "$dest"
