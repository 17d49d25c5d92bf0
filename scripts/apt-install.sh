#!/usr/bin/env bash
# Install Debian packages: apt-get install PACKAGE... as root, else through sudo (which may
# ask for a password on a terminal, never without one). apt's output goes to stderr: callers
# print their results on stdout. A failed index update is reported and the install tried
# anyway; a failed install exits non-zero.
set -euo pipefail
(($#)) || { echo "usage: $0 PACKAGE..." >&2; exit 2; }
log() { printf '[apt-install] %s\n' "$*" >&2; }
command -v apt-get >/dev/null 2>&1 || { log "ERROR: no apt-get: install $* yourself"; exit 1; }
sudo=()
if ((EUID != 0)); then
  command -v sudo >/dev/null 2>&1 || { log "ERROR: need $* (not root and no sudo)"; exit 1; }
  sudo=(sudo)
  [[ -t 0 ]] || sudo=(sudo -n)
fi
export DEBIAN_FRONTEND=noninteractive
log "installing $*"
"${sudo[@]}" apt-get update -qq </dev/null >&2 || log "apt-get update failed; trying the install anyway"
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" </dev/null >&2 \
  || { log "ERROR: apt-get install $* failed"; exit 1; }
