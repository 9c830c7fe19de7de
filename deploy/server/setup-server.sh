#!/usr/bin/env bash
# WellSense server set-up (Debian 12): broker access control, InfluxDB, services.
#
#   sudo deploy/server/setup-server.sh --config /etc/wellsense/admin.toml \
#        --operator-token-file /root/influx-operator-token [--rotate-tokens]
#
# Before: install mosquitto and InfluxDB 2.x, onboard InfluxDB (its operator
# token goes in a 0600 file), put the broker's certificate and key where
# admin.toml says, and copy deploy/server/admin.sample.toml to
# /etc/wellsense/admin.toml and edit it. Re-running is safe: it keeps every
# existing token (the guard and processing keep working) unless
# --rotate-tokens is given; whenever the guard's tokens changed, the guard and
# the processing workers are restarted so that they read the new ones.
set -euo pipefail
CONFIG="" OPERATOR="" ROTATE=""
USAGE="usage: $0 --config admin.toml --operator-token-file FILE [--rotate-tokens]"
while [ $# -gt 0 ]; do
  case "$1" in
    --config) CONFIG="$2"; shift 2 ;;
    --operator-token-file) OPERATOR="$2"; shift 2 ;;
    --rotate-tokens) ROTATE="--rotate-tokens"; shift ;;
    *) echo "$USAGE" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
[ -n "$CONFIG" ] && [ -n "$OPERATOR" ] || { echo "$USAGE" >&2; exit 2; }
SRC="$(cd "$(dirname "$0")/../.." && pwd)"
WS=/opt/wellsense/venv/bin/wellsense

id wellsense >/dev/null 2>&1 || useradd --system --user-group --no-create-home --shell /usr/sbin/nologin wellsense
id wellsense-guard >/dev/null 2>&1 || useradd --system --user-group --no-create-home --shell /usr/sbin/nologin wellsense-guard
install -d -m 0755 /opt/wellsense
[ -x /opt/wellsense/venv/bin/python ] || python3 -m venv /opt/wellsense/venv
# Pinned versions; the package carries deploy/ (templates) and rules/ itself.
/opt/wellsense/venv/bin/python -m pip install -q -c "$SRC/constraints.txt" "$SRC[server]"

install -d -m 0750 -o root -g wellsense /etc/wellsense
install -d -m 0750 -o root -g mosquitto /etc/mosquitto/wellsense
"$WS" broker init --config "$CONFIG" --secrets-dir /etc/wellsense
chgrp mosquitto /etc/mosquitto/wellsense/passwd /etc/mosquitto/wellsense/acl
# The guard's files: its InfluxDB token is readable by the guard only. The
# processing token is kept where the guard reads it, so a re-run finds it.
install -d -m 0750 -o root -g wellsense-guard /etc/wellsense/guard
guard_state() { cat /etc/wellsense/guard/* 2>/dev/null | sha256sum; }
BEFORE="$(guard_state)"
"$WS" influx setup --config "$CONFIG" --operator-token-file "$OPERATOR" --secrets-dir /etc/wellsense \
  --processing-token-file /etc/wellsense/guard/influx-processing-token $ROTATE
rm -f /etc/wellsense/influx-processing-token   # left by set-ups before this one
install -m 0400 -o wellsense-guard /etc/wellsense/influx-guard-client-token /etc/wellsense/guard/
chown wellsense-guard /etc/wellsense/guard/influx-processing-token
chmod 0400 /etc/wellsense/guard/influx-processing-token
# Processing's copy of its guard credential and its broker passwords (one
# account per worker in [broker] processing_workers, one for the alerts).
chown wellsense /etc/wellsense/influx-guard-client-token /etc/wellsense/processing-*-mqtt-password

install -m 0644 "$SRC"/deploy/server/*.service /etc/systemd/system/
systemctl daemon-reload
systemctl restart mosquitto
systemctl enable --now wellsense-influx-guard
if [ "$BEFORE" != "$(guard_state)" ]; then
  # New tokens: the running guard and workers hold the old (now deleted) ones.
  systemctl restart wellsense-influx-guard
  systemctl try-restart 'wellsense-processing@*.service'
fi
echo "Next: write /etc/wellsense/processing-w1.toml from deploy/server/processing.sample.toml"
echo "      ([influx] url = \"http://127.0.0.1:8087\", token_file = \"/etc/wellsense/influx-guard-client-token\","
echo "       [mqtt] username = \"wellsense-processing-w1\", password_file = \"/etc/wellsense/processing-w1-mqtt-password\","
echo "       [rules] mqtt_username = \"wellsense-processing-rules\", mqtt_password_file = \"/etc/wellsense/processing-rules-mqtt-password\")"
echo "      then: systemctl enable --now wellsense-processing@w1"
