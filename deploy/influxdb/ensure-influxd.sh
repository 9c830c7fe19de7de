#!/usr/bin/env bash
# Print the path of an InfluxDB 2.x `influxd`, building it once if needed.
#
# Order: an influxd 2.x already on PATH; else the cached build under
# ${WELLSENSE_CACHE:-~/.cache/wellsense}/influxd-<version>/; else build it from
# its Go module with this machine's Go and Rust toolchains and cache it.
# Debian ships only InfluxDB 1.x, which lacks the /api/v2 endpoints.
#
# Progress goes to stderr; stdout carries only the binary's path.
set -euo pipefail

version="${WELLSENSE_INFLUXD_VERSION:-v2.7.12}"
cache_root="${WELLSENSE_CACHE:-${HOME}/.cache/wellsense}"
target_dir="${cache_root}/influxd-${version}"
target="${target_dir}/influxd"

log() { printf 'ensure-influxd: %s\n' "$*" >&2; }

is_v2() { "$1" version 2>/dev/null | grep -qE '^InfluxDB v?2\.'; }

if existing=$(command -v influxd 2>/dev/null) && is_v2 "$existing"; then
  echo "$existing"; exit 0
fi
if [ -x "$target" ] && is_v2 "$target"; then
  echo "$target"; exit 0
fi

for tool in go cargo; do
  command -v "$tool" >/dev/null || { log "missing '$tool': InfluxDB 2.x is built from source and needs Go and Rust"; exit 1; }
done

log "building influxd ${version} from its Go module (first run only; about 15-30 minutes on 2 cores)"
work=$(mktemp -d "${TMPDIR:-/tmp}/wellsense-influxd.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
export GOPATH="${GOPATH:-$(go env GOPATH)}"
export GOFLAGS="-mod=mod"
export CGO_ENABLED=1
# flux pins an old Rust in rust-toolchain.toml that cannot be fetched here;
# use the installed stable one and keep its newer lints from failing the build.
export RUSTUP_TOOLCHAIN="${RUSTUP_TOOLCHAIN:-stable}"
# RUSTFLAGS would not reach the host-side build of flux-core (a build dependency
# when cargo gets --target), so cap lints through a rustc wrapper instead.
export RUSTC_WRAPPER="$work/bin/rustc-cap-lints"

cd "$work"
# influxdb/v2's go.mod has a replace directive, so `go install mod@version` refuses it:
# build from a small wrapper module that requires it and repeats the replace.
cat > go.mod <<MOD
module wellsense.local/influxd-build

go 1.23

replace github.com/nats-io/nats-streaming-server v0.11.2 => github.com/influxdata/nats-streaming-server v0.11.3-0.20201112040610-c277f7560803
MOD
log "resolving modules"
go get "github.com/influxdata/influxdb/v2/cmd/influxd@${version}" >&2
pkgconfig_version=$(go list -m -f '{{.Version}}' github.com/influxdata/pkg-config)
go get "github.com/influxdata/pkg-config@${pkgconfig_version}" >&2

# Flux's Rust part (libflux) is built by influxdata's pkg-config wrapper,
# which must come first on PATH while cgo asks for the flux library.
mkdir -p bin
cat > bin/rustc-cap-lints <<'WRAP'
#!/bin/sh
# cargo calls: rustc-cap-lints <rustc> <args...>; keep cargo's own --cap-lints.
rustc="$1"; shift
case " $* " in *" --cap-lints"*) exec "$rustc" "$@" ;; esac
exec "$rustc" "$@" --cap-lints=warn
WRAP
chmod +x bin/rustc-cap-lints
log "building the pkg-config wrapper ${pkgconfig_version}"
go build -o bin/pkg-config github.com/influxdata/pkg-config
export PATH="$work/bin:$PATH"

log "building influxd (Go + libflux in Rust)"
go build -tags sqlite_foreign_keys,sqlite_json \
  -ldflags "-X main.version=${version#v} -X main.commit=module-${version}" \
  -o bin/influxd github.com/influxdata/influxdb/v2/cmd/influxd >&2

mkdir -p "$target_dir"
install -m 0755 bin/influxd "$target.tmp"
mv "$target.tmp" "$target"
is_v2 "$target" || { log "built binary does not report InfluxDB 2.x"; exit 1; }
log "cached $target ($("$target" version))"
echo "$target"
