#!/usr/bin/env bash
# `make test-arm64`: the wheel's gateway and minimise extras in a 64-bit Arm
# Debian 12 root under QEMU user emulation, and the collector's unit tests there.
#
#   sudo tests/arm64/run.sh [WHEEL]    (builds the wheel when none is given;
#                                       $PYTHON -m pip builds it, default python3)
#
# Needs root, debootstrap and qemu-user-static (the Makefile target installs
# both). The root is cached in $WELLSENSE_CACHE/arm64-root (default
# ~/.cache/wellsense/arm64-root): the first run bootstraps it (slow: every
# package is unpacked by emulated dpkg); later runs only reinstall the wheel
# and run the tests. Dependencies come from the package index as binary wheels
# only (--only-binary=:all:), pinned by constraints.txt: nothing is compiled.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${WELLSENSE_CACHE:-$HOME/.cache/wellsense}"
# ARM64_SUITE=trixie tries Debian 13 (CPython 3.13) in its own cached root.
SUITE="${ARM64_SUITE:-bookworm}"
ROOT="$CACHE/arm64-root"
[ "$SUITE" = bookworm ] || ROOT="$CACHE/arm64-root-$SUITE"
cd "$REPO"
# The collector's tests; none of them needs InfluxDB or a broker.
TESTS=(tests/unit/test_collector_*.py tests/unit/test_gatt.py tests/unit/test_wire.py
       tests/unit/test_outbox.py)

say() { echo "== $*" >&2; }
die() { echo "arm64: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run me as root (debootstrap and chroot)"
command -v debootstrap >/dev/null || die "install debootstrap"
[ -x /usr/bin/qemu-aarch64-static ] || die "install qemu-user-static"

# The kernel must hand aarch64 binaries to QEMU, with the interpreter opened
# at registration ("F" flag) so it works inside the chroot.
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  update-binfmts --enable qemu-aarch64 || die "cannot register qemu-aarch64 with binfmt_misc"
fi
grep -q '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
  || die "qemu-aarch64 is registered without the F flag; reinstall qemu-user-static"

if [ ! -f "$ROOT/.wellsense-root-ok" ]; then
  say "bootstrapping Debian $SUITE arm64 in $ROOT (once; emulated, slow)"
  if findmnt -rno TARGET | grep -q "^$ROOT/"; then
    die "something is still mounted under $ROOT (an interrupted run?); unmount it first"
  fi
  rm -rf --one-file-system "$ROOT"
  mkdir -p "$ROOT"
  debootstrap --arch=arm64 --foreign --variant=minbase \
    --include=python3-venv,python3-pip,ca-certificates "$SUITE" "$ROOT" >&2
  chroot "$ROOT" /debootstrap/debootstrap --second-stage >&2
  touch "$ROOT/.wellsense-root-ok"
fi
[ "$(chroot "$ROOT" uname -m)" = aarch64 ] || die "the root does not run as aarch64"

WHEEL="${1:-}"
if [ -z "$WHEEL" ]; then
  say "building the wheel (from a copy of the sources, so no stale build/ leaks in)"
  rm -rf "$CACHE/arm64-wheel" && mkdir -p "$CACHE/arm64-wheel/src"
  tar -C "$REPO" --exclude=.git --exclude=.venv --exclude=build --exclude=dist \
    --exclude='*.egg-info' --exclude=__pycache__ --exclude=.make --exclude=.services \
    --exclude=.demo -cf - . | tar -C "$CACHE/arm64-wheel/src" -xf -
  "${PYTHON:-python3}" -m pip wheel -q --no-deps --disable-pip-version-check \
    -w "$CACHE/arm64-wheel" "$CACHE/arm64-wheel/src" >&2
  WHEEL="$(ls "$CACHE"/arm64-wheel/wellsense-*.whl)"
fi

WORK="$ROOT/opt/wellsense-test"
rm -rf "$WORK/src" && mkdir -p "$WORK/src" "$WORK/dist"
rm -f "$WORK"/dist/*.whl
cp "$WHEEL" "$WORK/dist/"
cp "$REPO/constraints.txt" "$REPO/pyproject.toml" "$WORK/src/"
# The tests (and the benchmark one of them loads), not the sources nor deploy/:
# they import the installed wheel.
cp -r "$REPO/tests" "$REPO/bench" "$WORK/src/"
find "$WORK/src" -name __pycache__ -prune -exec rm -rf {} +
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# pip in the root trusts what the host's pip trusts (a site's own CA included)
# and uses the same index and proxy settings.
cp "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" "$ROOT/etc/ssl/host-ca-bundle.crt"
pass_env=(PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 PIP_CERT=/etc/ssl/host-ca-bundle.crt)
for var in PIP_INDEX_URL PIP_EXTRA_INDEX_URL HTTPS_PROXY https_proxy HTTP_PROXY http_proxy \
           NO_PROXY no_proxy; do
  if [ -n "${!var:-}" ]; then pass_env+=("$var=${!var}"); fi
done

mounted=()
cleanup() { for ((i=${#mounted[@]}-1; i>=0; i--)); do umount -R "${mounted[$i]}" || true; done; }
trap cleanup EXIT
for fs in proc sys dev; do
  if ! mountpoint -q "$ROOT/$fs"; then
    mount --rbind "/$fs" "$ROOT/$fs" && mount --make-rslave "$ROOT/$fs" && mounted+=("$ROOT/$fs")
  fi
done

# The public recordings the GATT and beat-clock tests read, read-only, if present.
if [ -d "${WELLSENSE_SHARED_DATA:-}" ]; then
  mkdir -p "$WORK/shared-data"
  if ! mountpoint -q "$WORK/shared-data"; then
    mount --bind "$WELLSENSE_SHARED_DATA" "$WORK/shared-data" && mounted+=("$WORK/shared-data")
    mount -o remount,bind,ro "$WORK/shared-data"
  fi
  pass_env+=(WELLSENSE_SHARED_DATA=/opt/wellsense-test/shared-data)
fi

say "installing $(basename "$WHEEL")[gateway,minimise] (binary wheels only) under emulation"
start=$(date +%s)
chroot "$ROOT" /usr/bin/env -i "${pass_env[@]}" /bin/bash -euc '
  cd /opt/wellsense-test
  [ -x venv/bin/python ] || python3 -m venv venv
  whl=$(ls dist/wellsense-*.whl)
  venv/bin/python -m pip install -q --disable-pip-version-check --only-binary=:all: \
    -c src/constraints.txt --force-reinstall --no-deps "$whl"
  venv/bin/python -m pip install -q --disable-pip-version-check --only-binary=:all: \
    -c src/constraints.txt "wellsense[gateway,minimise] @ file:///opt/wellsense-test/$whl" \
    pytest pytest-timeout hypothesis
  venv/bin/python -c "import platform, sys, numpy, scipy, bleak; print(platform.machine(), sys.version.split()[0], \"numpy\", numpy.__version__, \"scipy\", scipy.__version__)"
' >&2
say "installed in $(( $(date +%s) - start )) s; running the collector tests"
start=$(date +%s)
set +e
chroot "$ROOT" /usr/bin/env -i "${pass_env[@]}" /bin/bash -euc '
  cd /opt/wellsense-test/src
  ../venv/bin/python -c "import collector, sys; assert \"/venv/\" in collector.__file__, collector.__file__"
  exec ../venv/bin/python -m pytest -q -p no:cacheprovider '"${TESTS[*]}"'
'
rc=$?
set -e
say "tests finished in $(( $(date +%s) - start )) s (exit $rc)"
exit $rc
