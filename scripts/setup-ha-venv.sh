#!/usr/bin/env bash
# Build or refresh the venv of one Home Assistant test tier: the pinned HA test stack from
# ha/<tier>/lock.txt on the Python that ha/<tier>/python-version names, plus this checkout
# installed editable (--no-deps; not the lib/ library, see below). Idempotent. Runs
# non-interactively (CI=true, no stdin).
#
#   scripts/setup-ha-venv.sh 2026.11           (re)build .venv-ha-2026.11 if it is missing,
#                                              broken or built from another lock; else no-op
#   scripts/setup-ha-venv.sh --relock 2026.11  re-resolve ha/2026.11/requirements.txt with
#                                              -c package_constraints.txt (and --override
#                                              overrides.txt if present); rewrite lock.txt
#   scripts/setup-ha-venv.sh --list            the tiers (directories under ha/)
# Without a tier: the newest one.
#
# Tier files: requirements.txt (top-level pins), package_constraints.txt (verbatim copy of
#   homeassistant/package_constraints.txt from that HA wheel), lock.txt (generated),
#   python-version (minimum X.Y.Z), overrides.txt (optional, uv --override).
# Environment: HA_PYTHON (a Python to prefer if it fits: find-python.sh's FIND_PYTHON),
#   HA_VENV (default <repo>/.venv-ha-<tier>), UV (a uv binary to use), UV_SPEC (uv to
#   bootstrap if none, default uv==0.13.9), UV_CACHE_DIR (default
#   ${XDG_CACHE_HOME:-$HOME/.cache}/uv).
# The venv is not relocatable: cache/restore it at the same absolute path.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
UV_SPEC=${UV_SPEC:-uv==0.13.9}
CACHE_HOME=${XDG_CACHE_HOME:-$HOME/.cache}
export UV_CACHE_DIR=${UV_CACHE_DIR:-$CACHE_HOME/uv}
export UV_NO_PROGRESS=1
RELOCK=0
TIER=

log() { printf '[setup-ha-venv] %s\n' "$*" >&2; }
die() { printf '[setup-ha-venv] ERROR: %s\n' "$*" >&2; exit 1; }

tiers() { for d in ha/*/; do [[ -f $d/requirements.txt ]] && basename "$d"; done | sort -V; }

for arg in "$@"; do
  case $arg in
    --relock) RELOCK=1 ;;
    --list) tiers; exit 0 ;;
    -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
    -*) die "unknown option: $arg" ;;
    *) [[ -z $TIER ]] || die "one tier at a time"; TIER=$arg ;;
  esac
done
TIER=${TIER:-$(tiers | tail -n1)}
DIR=ha/$TIER
[[ -n $TIER && -f $DIR/requirements.txt ]] || die "no tier '$TIER' (tiers: $(tiers | tr '\n' ' '))"
VENV=${HA_VENV:-$ROOT/.venv-ha-$TIER}
LOCK=$DIR/lock.txt
REQS=$DIR/requirements.txt
CONSTRAINTS=$DIR/package_constraints.txt
OVERRIDES=()
[[ -f $DIR/overrides.txt ]] && OVERRIDES=(--override "$DIR/overrides.txt")
[[ -f $CONSTRAINTS ]] || die "$CONSTRAINTS is missing"
WANT_PY=$(tr -d '[:space:]' <"$DIR/python-version" 2>/dev/null) || die "$DIR/python-version is missing"
[[ $WANT_PY =~ ^3\.([0-9]+)\.([0-9]+)$ ]] || die "$DIR/python-version: not X.Y.Z: $WANT_PY"
PY_MINOR=${BASH_REMATCH[1]}
PY_PATCH=${BASH_REMATCH[2]}

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

# --- Python ---------------------------------------------------------------------------
# The tier's Python line with at least its patch level (HA's Requires-Python).
py_fits() {
  "$1" -c "import sys; v = sys.version_info
sys.exit(not (v[:2] == (3, $PY_MINOR) and v.micro >= $PY_PATCH))" >/dev/null 2>&1 </dev/null
}

find_python() {
  # HA_PYTHON if it fits, else python3.X on PATH or in pyenv if recent enough, else a
  # private build (cached after the first time): see scripts/find-python.sh.
  PY=$(FIND_PYTHON=${HA_PYTHON:-} "$ROOT/scripts/find-python.sh" "3.$PY_MINOR" "$PY_PATCH" </dev/null) \
    || die "no Python >= $WANT_PY (scripts/find-python.sh 3.$PY_MINOR $PY_PATCH failed)"
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

# What the venv was built from: the lock, the overrides and the interpreter it runs on.
stamp() {
  {
    cat "$LOCK" "$DIR/overrides.txt" 2>/dev/null || true
    readlink -f "$1"
  } | sha256sum | cut -d' ' -f1
}

venv_current() {
  [[ -x $VENV/bin/python && -f $LOCK ]] && py_fits "$VENV/bin/python" \
    && [[ $(cat "$VENV/.lock" 2>/dev/null || true) == "$(stamp "$VENV/bin/python")" ]]
}

pin_of() { sed -n "s/^$1==\([^ ;]*\).*/\1/Ip" "$LOCK" | head -n1; }

# --- main -----------------------------------------------------------------------------
ensure_uv
log "tier $TIER; uv: $UV ($("$UV" --version)); UV_CACHE_DIR=$UV_CACHE_DIR"

if ((RELOCK)); then
  find_python
  log "python: $PY; resolving $REQS with -c $CONSTRAINTS ${OVERRIDES[*]}"
  new_venv
  "$UV" pip install -p "$VENV/bin/python" --compile-bytecode -c "$CONSTRAINTS" "${OVERRIDES[@]}" \
    -r "$REQS" </dev/null
  {
    echo "# Generated by scripts/setup-ha-venv.sh --relock $TIER from requirements.txt with"
    echo "# -c package_constraints.txt${OVERRIDES:+ --override overrides.txt} (uv pip freeze; Python $("$VENV/bin/python" -c 'import platform; print(platform.python_version())'))."
    "$UV" pip freeze -p "$VENV/bin/python" --exclude-editable </dev/null
  } >"$LOCK.tmp"
  mv "$LOCK.tmp" "$LOCK"
  stamp "$VENV/bin/python" >"$VENV/.lock"
  log "wrote $LOCK ($(grep -vc '^#' "$LOCK") packages)"
elif venv_current; then
  log "$VENV is up to date with $LOCK"
else
  [[ -f $LOCK ]] || die "$LOCK is missing: run $0 --relock $TIER"
  find_python
  log "building $VENV with $PY ($("$PY" -c 'import platform; print(platform.python_version())' </dev/null)) from $LOCK"
  new_venv
  uv_install --compile-bytecode "${OVERRIDES[@]}" -r "$LOCK"
  stamp "$VENV/bin/python" >"$VENV/.lock"
fi

# The daemon package (the emulated meter the component tests serve), editable, without
# dependencies. Not the library: Home Assistant must find countis missing, as on a user's
# machine, so that the install test sees it install the pinned wheel itself; the component
# tests import it from lib/ (pytest.ini: pythonpath), mypy through MYPYPATH.
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ $(cat "$VENV/.project" 2>/dev/null || true) != "$want" ]]; then
  log "installing the checkout (editable, --no-deps): ."
  # A venv of an older layout may hold the library: Home Assistant must not find it.
  "$UV" pip uninstall -p "$VENV/bin/python" countis </dev/null >/dev/null 2>&1 || true
  uv_install --no-deps -e .
  echo "$want" >"$VENV/.project"
fi

# Smoke check: the stack imports and the versions are the locked ones.
want_pymodbus=$(pin_of pymodbus)
want_ha=$(pin_of homeassistant)
got=$("$VENV/bin/python" -c 'import sys, homeassistant, hass_frontend, pytest_homeassistant_custom_component, pymodbus
print(sys.version.split()[0], pymodbus.__version__)' </dev/null) || die "smoke import failed in $VENV"
got_hass=$("$VENV/bin/hass" --version </dev/null) || die "'hass --version' failed"
read -r got_py got_pymodbus <<<"$got"
[[ $got_pymodbus == "$want_pymodbus" ]] || die "pymodbus is $got_pymodbus, lock pins $want_pymodbus"
[[ $got_hass == "$want_ha" ]] || die "hass --version is $got_hass, lock pins $want_ha"
log "OK: python $got_py, homeassistant $got_hass, pymodbus $got_pymodbus ($VENV)"
