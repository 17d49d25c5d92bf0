#!/usr/bin/env bash
# Print the path of a CPython <major.minor> (>= <major.minor>.<min_patch>) to build venvs with.
#
#   scripts/find-python.sh 3.14 2     a Python 3.14.x, x >= 2 (Home Assistant 2026.3+)
#   scripts/find-python.sh 3.13 2     a Python 3.13.x, x >= 2 (Home Assistant 2025.5 .. 2026.2)
#   scripts/find-python.sh --refresh 3.14 2   build again from the suite's current packages
#
# Order: 1. $FIND_PYTHON (if set, it must fit), 2. python<major.minor> on PATH,
# 3. pyenv-installed <major.minor>.x, 4. a private build from Debian's binary packages
# (below), already cached or built now. A Python fits if it has ssl, sqlite3, ctypes, lzma,
# decimal, zlib, bz2, uuid and its C headers (Python.h). Only the path goes to stdout;
# progress goes to stderr.
#
# The private build: Debian's python<major.minor> packages and the libraries they depend on
# (resolved at run time from the suite's signed Packages.xz index: nothing is pinned by file
# name) are unpacked with `dpkg -x` into a private root, never into /. The suite's stdlib
# extension modules need a newer glibc than the host's, so the interpreter gets the private
# root's dynamic loader and an RPATH to its libraries (patchelf); nothing else on the machine
# is affected. It is cached outside the checkout, keyed by suite, package version and
# architecture, under ${XDG_CACHE_HOME:-$HOME/.cache}/countis-bridge/python/; a second run
# finds it there without any network. It is not relocatable: keep that absolute path.
# Needs dpkg, curl or wget, xz, patchelf and gpgv (apt-get installs the missing ones; with
# sudo only when not root). Runs non-interactively (CI=true, no stdin).
#
# Environment: FIND_PYTHON (a Python to prefer), FIND_PYTHON_SUITE (Debian suite; default
#   sid for 3.14+, trixie for 3.13), DEBIAN_MIRROR (the Debian archive to use; default: the
#   first Debian archive URI in apt's sources), XDG_CACHE_HOME.
set -euo pipefail

log() { printf '[find-python] %s\n' "$*" >&2; }
die() { printf '[find-python] ERROR: %s\n' "$*" >&2; exit 1; }

REFRESH=0
args=()
for arg in "$@"; do
  case $arg in
    --refresh) REFRESH=1 ;;
    -h | --help) sed -n '2,27p' "$0"; exit 0 ;;
    -*) die "unknown option: $arg" ;;
    *) args+=("$arg") ;;
  esac
done
((${#args[@]} >= 1 && ${#args[@]} <= 2)) || die "usage: $0 [--refresh] <major.minor> [min_patch]"
MM=${args[0]}
MIN_PATCH=${args[1]:-0}
[[ $MM =~ ^3\.[0-9]+$ ]] || die "not a major.minor: $MM"
[[ $MIN_PATCH =~ ^[0-9]+$ ]] || die "not a patch number: $MIN_PATCH"
MINOR=${MM#3.}
MODULES=(ssl sqlite3 ctypes lzma decimal zlib bz2 uuid)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/countis-bridge/python
export DEBIAN_FRONTEND=noninteractive

# --- 1-3: an interpreter that is already there --------------------------------------------
# fits PY: runs, is MM with patch >= MIN_PATCH, has the modules Home Assistant needs and its
# C headers.
fits() {
  "$1" - "$MINOR" "$MIN_PATCH" "${MODULES[@]}" >/dev/null 2>&1 </dev/null <<'EOF'
import importlib, sys
minor, patch, mods = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
v = sys.version_info
if (v.major, v.minor) != (3, minor) or v.micro < patch or v.releaselevel != "final":
    sys.exit(1)
for m in mods:
    importlib.import_module(m)
# the C headers too: building a venv may compile an sdist (Debian: pythonX.Y-dev)
import os, sysconfig
if not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")):
    sys.exit(1)
EOF
}

resolve() { "$1" -c 'import sys; print(sys.executable)' </dev/null; }

if [[ -n ${FIND_PYTHON:-} ]]; then
  fits "$FIND_PYTHON" || die "FIND_PYTHON=$FIND_PYTHON is no Python $MM.$MIN_PATCH+ with ${MODULES[*]}"
  resolve "$FIND_PYTHON"
  exit 0
fi
if ((!REFRESH)); then
  # (a pyenv shim named python3.X exists but fails unless that version is selected: fits runs it)
  if command -v "python$MM" >/dev/null && fits "python$MM"; then
    resolve "python$MM"
    exit 0
  fi
  pyenv_root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
  while IFS= read -r c; do
    if [[ -n $c ]] && fits "$c"; then echo "$c"; exit 0; fi
  done < <(ls -d "$pyenv_root"/versions/"$MM".*/bin/"python$MM" 2>/dev/null | sort -V -r)
  # 4a. a private build made earlier (newest first)
  while IFS= read -r c; do
    if [[ -n $c ]] && fits "$c"; then echo "$c"; exit 0; fi
  done < <(ls -d "$CACHE"/*-python"$MM"_*/root/usr/bin/"python$MM" 2>/dev/null | sort -V -r)
fi

# --- 4b: build one from Debian's binary packages ------------------------------------------
ARCH=$(dpkg --print-architecture 2>/dev/null) || die "dpkg is missing: the private build needs a Debian-like system"
case $ARCH in
  amd64) TRIPLET=x86_64-linux-gnu LOADER=usr/lib64/ld-linux-x86-64.so.2 ;;
  arm64) TRIPLET=aarch64-linux-gnu LOADER=usr/lib/ld-linux-aarch64.so.1 ;;
  *) die "no private build for architecture $ARCH: install python$MM (>= $MM.$MIN_PATCH)" ;;
esac
if ((MINOR >= 14)); then SUITE=${FIND_PYTHON_SUITE:-sid}; else SUITE=${FIND_PYTHON_SUITE:-trixie}; fi

need_tools() {
  local missing=() tool
  for tool in patchelf:patchelf xz:xz-utils gpgv:gpgv dpkg-deb:dpkg; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
  done
  command -v curl >/dev/null || command -v wget >/dev/null || missing+=(curl)
  ((${#missing[@]})) || return 0
  "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" "${missing[@]}" || die "cannot install ${missing[*]}"
}
need_tools

mirror() {
  local uri
  if [[ -n ${DEBIAN_MIRROR:-} ]]; then echo "${DEBIAN_MIRROR%/}"; return; fi
  # the first Debian archive URI in apt's sources (deb822 or one-line format), not -security
  uri=$(
    { sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | tr ' ' '\n'
      sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\).*/\2/p' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null
    } | grep -E '^https?://' | grep -v -- '-security' | grep -E '/debian/?$' | head -n1 || true
  )
  [[ -n $uri ]] || return 1
  echo "${uri%/}"
}
MIRROR=$(mirror) || die "no Debian archive in apt's sources: set DEBIAN_MIRROR to one"

get() {  # get URL FILE
  if command -v curl >/dev/null; then
    curl -fsSL --retry 3 --connect-timeout 30 -o "$2" "$1" </dev/null
  else
    wget -q --tries=3 --timeout=30 -O "$2" "$1" </dev/null
  fi
}

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock -w 1800 9 || die "another find-python build holds $CACHE/.lock"

WORK=$(mktemp -d "$CACHE/.work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# The suite's index, verified: InRelease signed by a key of Debian's archive keyring,
# Packages.xz matching the SHA256 that InRelease lists for it.
log "reading $MIRROR/dists/$SUITE (python$MM, $ARCH)"
get "$MIRROR/dists/$SUITE/InRelease" "$WORK/InRelease" || die "cannot download $MIRROR/dists/$SUITE/InRelease"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
[[ -f $KEYRING ]] || die "$KEYRING is missing (apt-get install debian-archive-keyring)"
gpgv --keyring "$KEYRING" --output "$WORK/Release" "$WORK/InRelease" </dev/null 2>"$WORK/gpgv.log" \
  || die "InRelease of $SUITE does not verify against $KEYRING: $(tail -n2 "$WORK/gpgv.log")"
want=$(awk -v f="main/binary-$ARCH/Packages.xz" '/^SHA256:/{s=1;next} /^[^ ]/{s=0} s && $3==f {print $1}' "$WORK/Release")
[[ -n $want ]] || die "InRelease of $SUITE lists no main/binary-$ARCH/Packages.xz"
get "$MIRROR/dists/$SUITE/main/binary-$ARCH/Packages.xz" "$WORK/Packages.xz" || die "cannot download Packages.xz"
[[ $(sha256sum "$WORK/Packages.xz" | cut -d' ' -f1) == "$want" ]] || die "Packages.xz of $SUITE does not match its InRelease"
# one line per package: name version filename sha256 depends(comma list, Pre-Depends first)
xz -dc "$WORK/Packages.xz" | awk '
  function flush() { if (p != "") print p "\t" v "\t" f "\t" s "\t" pd ", " d; p=v=f=s=d=pd="" }
  /^$/ { flush(); next }
  /^Package: / { p=$2 } /^Version: / { v=$2 } /^Filename: / { f=$2 } /^SHA256: / { s=$2 }
  /^Depends: / { d=substr($0, 10) } /^Pre-Depends: / { pd=substr($0, 14) }
  END { flush() }' >"$WORK/index.tsv"

field() { awk -F'\t' -v p="$1" -v n="$2" '$1==p {print $n; exit}' "$WORK/index.tsv"; }

PYVER=$(field "python$MM" 2)
[[ -n $PYVER ]] || die "$SUITE has no python$MM package"
upstream=${PYVER%%-*}; upstream=${upstream#*:}; upstream=${upstream%%[~+]*}
patch=${upstream#"$MM".}; patch=${patch%%[!0-9]*}
[[ -n $patch ]] && ((patch >= MIN_PATCH)) || die "$SUITE has python$MM $PYVER, older than $MM.$MIN_PATCH"

KEY="debian-$SUITE-python${MM}_${PYVER//[:~+]/_}-$ARCH"
DEST=$CACHE/$KEY
if [[ -f $DEST/.ok ]] && fits "$DEST/root/usr/bin/python$MM"; then
  log "already built: $DEST"
  echo "$DEST/root/usr/bin/python$MM"
  exit 0
fi

# Dependency closure of the interpreter (first alternative of each dependency). Packages
# the interpreter does not need at run time, or that the host provides, are left out.
# The C headers (libpython*-dev) come along: building a venv may compile an sdist.
SKIP=" media-types mime-support netbase tzdata debconf debconf-2.0 dpkg perl-base install-info "
SKIP+=" readline-common libc-bin libexpat1-dev zlib1g-dev "
declare -A seen=()
queue=("python$MM" "libpython$MM-stdlib" "python$MM-minimal" "libpython$MM-minimal" "libpython$MM"
  "libpython$MM-dev")
pkgs=()
while ((${#queue[@]})); do
  p=${queue[0]}
  queue=("${queue[@]:1}")
  [[ -z ${seen[$p]:-} && $SKIP != *" $p "* ]] || continue
  seen[$p]=1
  deps=$(field "$p" 5)
  [[ -n $(field "$p" 3) ]] || die "$SUITE has no package $p (needed by python$MM)"
  pkgs+=("$p")
  while IFS= read -r d; do
    d=${d%%|*}; d=${d%%(*}; d=${d%%:*}; d=${d//[[:space:]]/}
    [[ -n $d ]] && queue+=("$d")
  done < <(tr ',' '\n' <<<"$deps")
done
log "python$MM $PYVER from $SUITE: ${#pkgs[@]} packages (${pkgs[*]})"

mkdir -p "$WORK/debs" "$WORK/root"
for p in "${pkgs[@]}"; do
  file=$(field "$p" 3)
  sum=$(field "$p" 4)
  deb="$WORK/debs/${file##*/}"
  get "$MIRROR/$file" "$deb" || die "cannot download $MIRROR/$file"
  [[ $(sha256sum "$deb" | cut -d' ' -f1) == "$sum" ]] || die "${file##*/} does not match the index's SHA256"
  dpkg-deb -x "$deb" "$WORK/root"
done
rm -rf "$WORK/debs"
# Debian's include/pythonX.Y/pyconfig.h is a wrapper that includes <TRIPLET/pythonX.Y/pyconfig.h>
# from the system include path: put the real one in its place. Static libraries: not needed.
real_config=$WORK/root/usr/include/$TRIPLET/python$MM/pyconfig.h
if [[ -f $real_config ]]; then
  cp --remove-destination "$real_config" "$WORK/root/usr/include/python$MM/pyconfig.h"
fi
find "$WORK/root" -name '*.a' -delete

PY=$WORK/root/usr/bin/python$MM
[[ -e $WORK/root/$LOADER ]] || die "the unpacked libc6 has no $LOADER"
# The final paths (the root is moved to $DEST/root once it works).
FINAL=$DEST/root
LIBS="$FINAL/usr/lib/$TRIPLET:$FINAL/lib/$TRIPLET"
patchelf --set-interpreter "$FINAL/$LOADER" --force-rpath --set-rpath "$LIBS" "$PY"
rm -rf "$DEST"
mkdir -p "$DEST"
mv "$WORK/root" "$FINAL"
PY=$FINAL/usr/bin/python$MM
if ! fits "$PY"; then
  "$PY" -c "import sys; print(sys.version); [__import__(m) for m in sys.argv[1:]]" "${MODULES[@]}" >&2 </dev/null || true
  rm -rf "$DEST"
  die "the private python$MM does not import ${MODULES[*]}"
fi
printf 'suite=%s\nversion=%s\narch=%s\nmirror=%s\npackages=%s\n' \
  "$SUITE" "$PYVER" "$ARCH" "$MIRROR" "${pkgs[*]}" >"$DEST/.ok"
log "built $("$PY" -c 'import sys; print(sys.version.split()[0])' </dev/null) in $DEST ($(du -sh "$DEST" | cut -f1))"
echo "$PY"
