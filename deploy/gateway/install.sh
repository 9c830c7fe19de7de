#!/usr/bin/env bash
# WellSense gateway installer for Raspberry Pi OS 64-bit (Debian 12 "bookworm").
#
#   sudo deploy/gateway/install.sh --bundle /media/usb/gw-5d2e81
#
# The bundle is the folder 'wellsense participant enroll' wrote on the server
# (collector.toml, ca.crt, mqtt-password). The installer:
#   1. installs Debian packages: python3-venv, bluez (unless --no-apt);
#   2. creates the system user 'wellsense' (no login, no home) in group 'bluetooth';
#   3. creates /opt/wellsense/venv with WellSense's 'gateway' extra (bleak, paho-mqtt)
#      at the versions pinned in the source tree's constraints.txt;
#   4. puts the bundle in /etc/wellsense (0750 root:wellsense; the password 0400,
#      readable by the service user only) and makes /var/lib/wellsense (0700);
#   5. installs and starts the hardened systemd unit wellsense-collector.service;
#   6. runs 'wellsense doctor' and prints what to fix, in plain words.
#
# Options:
#   --bundle DIR     the enrolment bundle (required)
#   --source DIR     WellSense source tree to install (default: this checkout)
#   --constraints F  pinned versions (default: constraints.txt of the source tree)
#   --root DIR       install into DIR instead of / (a scratch root or a chroot
#                    being prepared); implies --no-start
#   --no-apt         do not install Debian packages
#   --no-start       do not enable/start the service or run doctor
#   --pip-args ARGS  extra arguments for pip (e.g. "--no-index --find-links /media/usb/wheels")
# Re-running is safe: it updates the package and config and restarts the service.
set -euo pipefail

BUNDLE="" ROOT="/" NO_APT=0 NO_START=0 PIP_ARGS="" CONSTRAINTS=""
SOURCE="$(cd "$(dirname "$0")/../.." && pwd)"
SERVICE_USER=wellsense

die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "== $*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --bundle) BUNDLE="$2"; shift 2 ;;
    --source) SOURCE="$2"; shift 2 ;;
    --root) ROOT="$2"; NO_START=1; shift 2 ;;
    --no-apt) NO_APT=1; shift ;;
    --no-start) NO_START=1; shift ;;
    --pip-args) PIP_ARGS="$2"; shift 2 ;;
    --constraints) CONSTRAINTS="$2"; shift 2 ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

[ "$(id -u)" = 0 ] || die "run me as root: sudo $0 $*"
[ -n "$BUNDLE" ] || die "--bundle DIR is required (the folder 'wellsense participant enroll' made)"
for f in collector.toml ca.crt mqtt-password; do
  [ -f "$BUNDLE/$f" ] || die "the bundle $BUNDLE has no $f; copy the whole folder from the server"
done
[ -f "$SOURCE/pyproject.toml" ] || die "$SOURCE is not a WellSense source tree (use --source)"
CONSTRAINTS="${CONSTRAINTS:-$SOURCE/constraints.txt}"
[ -f "$CONSTRAINTS" ] || die "no constraints file $CONSTRAINTS (pinned versions; use --constraints)"
ROOT="${ROOT%/}"
ETC="$ROOT/etc/wellsense" VAR="$ROOT/var/lib/wellsense" OPT="$ROOT/opt/wellsense"

python3 - <<'EOF' || die "Python 3.11 or newer is needed (Raspberry Pi OS 12 has 3.11)"
import sys; sys.exit(sys.version_info < (3, 11))
EOF

if [ "$NO_APT" = 0 ]; then
  say "installing Debian packages: python3-venv bluez"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv bluez </dev/null
fi

# Users and groups live in $ROOT/etc, so resolve ids there, not through this host's NSS.
id_in_root() { awk -F: -v n="$2" '$1 == n { print $3 }' "$ROOT/etc/$1"; }
if [ -z "$(id_in_root group bluetooth)" ]; then
  say "creating group bluetooth"
  groupadd --root "$ROOT" --system bluetooth
fi
if [ -z "$(id_in_root passwd "$SERVICE_USER")" ]; then
  say "creating system user $SERVICE_USER"
  useradd --root "$ROOT" --system --user-group --groups bluetooth --no-create-home \
    --home-dir /var/lib/wellsense --shell /usr/sbin/nologin "$SERVICE_USER"
else
  usermod --root "$ROOT" --append --groups bluetooth "$SERVICE_USER"
fi
UID_W="$(id_in_root passwd "$SERVICE_USER")" GID_W="$(id_in_root group "$SERVICE_USER")"

say "installing WellSense (gateway extra) into /opt/wellsense/venv"
install -d -m 0755 "$OPT"
[ -x "$OPT/venv/bin/python" ] || python3 -m venv "$OPT/venv"
# shellcheck disable=SC2086  # PIP_ARGS is a list of words on purpose
"$OPT/venv/bin/python" -m pip install -q --disable-pip-version-check $PIP_ARGS \
  -c "$CONSTRAINTS" "$SOURCE[gateway]"
if [ -d "$SOURCE/docs" ]; then install -d "$OPT/docs" && cp -r "$SOURCE/docs/." "$OPT/docs/"; fi

say "installing the configuration in /etc/wellsense"
install -d -m 0750 -o 0 -g "$GID_W" "$ETC"
install -m 0640 -o 0 -g "$GID_W" "$BUNDLE/collector.toml" "$ETC/collector.toml"
install -m 0644 -o 0 -g 0 "$BUNDLE/ca.crt" "$ETC/ca.crt"
# Read by the service user only; the collector refuses a secret file others can read.
install -m 0400 -o "$UID_W" -g "$GID_W" "$BUNDLE/mqtt-password" "$ETC/mqtt-password"
install -d -m 0700 -o "$UID_W" -g "$GID_W" "$VAR"

say "installing the systemd unit"
install -D -m 0644 "$SOURCE/deploy/gateway/wellsense-collector.service" \
  "$ROOT/etc/systemd/system/wellsense-collector.service"

if [ "$NO_START" = 1 ]; then
  say "installed into $ROOT (not started)"
  exit 0
fi
systemctl daemon-reload
systemctl enable wellsense-collector.service
systemctl restart wellsense-collector.service
say "checking the gateway (wellsense doctor)"
if runuser -u "$SERVICE_USER" -- "$OPT/venv/bin/wellsense" doctor --config "$ETC/collector.toml"; then
  say "done: the collector runs; follow it with: journalctl -u wellsense-collector -f"
else
  echo "The collector is installed, but doctor found problems (above). Fix them, then run:"
  echo "  sudo -u $SERVICE_USER $OPT/venv/bin/wellsense doctor --config $ETC/collector.toml"
  exit 1
fi
