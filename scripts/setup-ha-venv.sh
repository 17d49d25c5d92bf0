#!/usr/bin/env bash
# Build or refresh .venv-ha: Python 3.13 with the pinned Home Assistant test stack from
# ha/ha.lock, plus this checkout installed editable (--no-deps). Idempotent. Runs
# non-interactively (CI=true, no stdin).
#
#   scripts/setup-ha-venv.sh           (re)build .venv-ha if it is missing, broken or its
#                                      .venv-ha/.lock differs from ha/ha.lock; else no-op
#   scripts/setup-ha-venv.sh --relock  re-resolve ha/requirements-ha.txt with
#                                      -c ha/package_constraints.txt and rewrite ha/ha.lock
#
# Environment: HA_PYTHON (a Python 3.13 to use), HA_VENV (default <repo>/.venv-ha),
#   UV (a uv binary to use), UV_SPEC (uv to bootstrap if none, default uv==0.13.9),
#   UV_CACHE_DIR (default ${XDG_CACHE_HOME:-$HOME/.cache}/uv).
# The venv is not relocatable: cache/restore it at the same absolute path.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV=${HA_VENV:-$ROOT/.venv-ha}
LOCK=ha/ha.lock
REQS=ha/requirements-ha.txt
CONSTRAINTS=ha/package_constraints.txt
UV_SPEC=${UV_SPEC:-uv==0.13.9}
CACHE_HOME=${XDG_CACHE_HOME:-$HOME/.cache}
export UV_CACHE_DIR=${UV_CACHE_DIR:-$CACHE_HOME/uv}
export UV_NO_PROGRESS=1
RELOCK=0

log() { printf '[setup-ha-venv] %s\n' "$*" >&2; }
die() { printf '[setup-ha-venv] ERROR: %s\n' "$*" >&2; exit 1; }

for arg in "$@"; do
  case $arg in
    --relock) RELOCK=1 ;;
    -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
    *) die "unknown argument: $arg" ;;
  esac
done

# --- uv -----------------------------------------------------------------------------
uv_ok() { [[ -n $1 ]] && "$1" --version >/dev/null 2>&1 </dev/null; }

ensure_uv() {
  local boot=$CACHE_HOME/countis-bridge/uv-bootstrap
  if [[ -n ${UV:-} ]]; then
    uv_ok "$UV" || die "UV=$UV does not run"
    return
  fi
  for UV in "$(command -v uv || true)" "$ROOT/.venv/bin/uv" "$boot/bin/uv"; do
    uv_ok "$UV" && return
  done
  # Prefer the project's main venv (if it has a working pip), else a small bootstrap venv.
  if [[ -x $ROOT/.venv/bin/python ]] && "$ROOT/.venv/bin/python" -m pip --version >/dev/null 2>&1; then
    log "installing $UV_SPEC into .venv"
    if "$ROOT/.venv/bin/python" -m pip install -q "$UV_SPEC" </dev/null && uv_ok "$ROOT/.venv/bin/uv"; then
      UV=$ROOT/.venv/bin/uv
      return
    fi
    log "pip install into .venv failed; using a bootstrap venv instead"
  fi
  command -v python3 >/dev/null || die "no uv and no python3 to install it with"
  log "installing $UV_SPEC into $boot"
  rm -rf "$boot"
  python3 -m venv "$boot" </dev/null
  "$boot/bin/python" -m pip install -q "$UV_SPEC" </dev/null
  UV=$boot/bin/uv
  uv_ok "$UV" || die "bootstrapped uv does not run: $UV"
}

# --- Python 3.13 ----------------------------------------------------------------------
is_py313() {
  "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1 </dev/null
}

find_python() {
  local c root
  if [[ -n ${HA_PYTHON:-} ]]; then
    is_py313 "$HA_PYTHON" || die "HA_PYTHON=$HA_PYTHON is not a working Python 3.13"
    PY=$HA_PYTHON
    return
  fi
  # 1. python3.13 on PATH (a pyenv shim exists but fails unless 3.13 is selected: test it runs)
  if command -v python3.13 >/dev/null && is_py313 python3.13; then
    PY=$(python3.13 -c 'import sys; print(sys.executable)' </dev/null)
    return
  fi
  # 2. pyenv-installed 3.13.x, newest first
  root=$(pyenv root 2>/dev/null || true)
  [[ -n $root ]] || root=${PYENV_ROOT:-$HOME/.pyenv}
  while IFS= read -r c; do
    if [[ -n $c ]] && is_py313 "$c"; then PY=$c; return; fi
  done < <(ls -d "$root"/versions/3.13*/bin/python3.13 2>/dev/null | sort -V -r)
  # 3. a uv-managed CPython: already installed, else download (last resort: the download host
  #    is not PyPI and may be unreachable from CI)
  if c=$("$UV" python find --python-preference only-managed 3.13 2>/dev/null </dev/null) && is_py313 "$c"; then
    PY=$c
    return
  fi
  log "no Python 3.13 found on PATH or in pyenv; trying 'uv python install 3.13'"
  if "$UV" python install 3.13 </dev/null \
    && c=$("$UV" python find --python-preference only-managed 3.13 </dev/null) && is_py313 "$c"; then
    PY=$c
    return
  fi
  die "no Python 3.13 found. Install one (e.g. 'pyenv install 3.13' or a distro python3.13 package) \
and re-run, or point HA_PYTHON at it."
}

# --- helpers --------------------------------------------------------------------------
# uv pip install into the venv: from the cache only first, then from the index on a miss.
uv_install() {
  local err
  err=$(mktemp)
  if "$UV" pip install -p "$VENV/bin/python" --offline "$@" </dev/null 2>"$err"; then
    rm -f "$err"
    return
  fi
  log "offline install missed the uv cache ($(grep -m1 -iE 'error|because' "$err" | cut -c1-160 || true)); retrying online"
  rm -f "$err"
  "$UV" pip install -p "$VENV/bin/python" "$@" </dev/null
}

new_venv() {
  rm -rf "$VENV"
  "$UV" venv -q --python "$PY" "$VENV" </dev/null
}

venv_current() {
  [[ -x $VENV/bin/python ]] && is_py313 "$VENV/bin/python" && cmp -s "$LOCK" "$VENV/.lock"
}

pin_of() { sed -n "s/^$1==\([^ ;]*\).*/\1/Ip" "$LOCK" | head -n1; }

# --- main -----------------------------------------------------------------------------
ensure_uv
log "uv: $UV ($("$UV" --version)); UV_CACHE_DIR=$UV_CACHE_DIR"

if ((RELOCK)); then
  find_python
  log "python: $PY; resolving $REQS with -c $CONSTRAINTS"
  new_venv
  "$UV" pip install -p "$VENV/bin/python" --compile-bytecode -c "$CONSTRAINTS" -r "$REQS" </dev/null
  {
    echo "# Generated by scripts/setup-ha-venv.sh --relock from $REQS with -c $CONSTRAINTS"
    echo "# (uv pip freeze; Python $("$VENV/bin/python" -c 'import platform; print(platform.python_version())'))."
    "$UV" pip freeze -p "$VENV/bin/python" --exclude-editable </dev/null
  } >"$LOCK.tmp"
  mv "$LOCK.tmp" "$LOCK"
  cp "$LOCK" "$VENV/.lock"
  rm -f "$VENV/.project"
  log "wrote $LOCK ($(grep -vc '^#' "$LOCK") packages)"
elif venv_current; then
  log "$VENV is up to date with $LOCK"
else
  [[ -f $LOCK ]] || die "$LOCK is missing: run $0 --relock"
  find_python
  log "building $VENV with $PY from $LOCK"
  new_venv
  uv_install --compile-bytecode -r "$LOCK"
  cp "$LOCK" "$VENV/.lock"
fi

# The project itself, editable, without dependencies (they are all in the lock).
if [[ -f pyproject.toml ]]; then
  stamp=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [[ $(cat "$VENV/.project" 2>/dev/null || true) != "$stamp" ]]; then
    log "installing the checkout (editable, --no-deps)"
    uv_install --no-deps -e .
    echo "$stamp" >"$VENV/.project"
  fi
else
  log "WARNING: no pyproject.toml in $ROOT; the project itself is not installed"
fi

# Smoke check: the stack imports and the versions are the locked ones.
want_pymodbus=$(pin_of pymodbus)
want_ha=$(pin_of homeassistant)
got=$("$VENV/bin/python" -c 'import sys, homeassistant, pytest_homeassistant_custom_component, pymodbus
print(sys.version.split()[0], pymodbus.__version__)' </dev/null) || die "smoke import failed in $VENV"
got_hass=$("$VENV/bin/hass" --version </dev/null) || die "'hass --version' failed"
read -r got_py got_pymodbus <<<"$got"
[[ $got_pymodbus == "$want_pymodbus" ]] || die "pymodbus is $got_pymodbus, lock pins $want_pymodbus"
[[ $got_hass == "$want_ha" ]] || die "hass --version is $got_hass, lock pins $want_ha"
log "OK: python $got_py, homeassistant $got_hass, pymodbus $got_pymodbus ($VENV)"
