# WellSense: `make demo` and `make test` set up everything they need on a
# fresh Debian machine (as root or with sudo) and are idempotent: the second
# run only checks stamps.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMPS := .make
export WELLSENSE_CACHE ?= $(HOME)/.cache/wellsense
INFLUXD_VERSION := v2.7.12
INFLUXD := $(WELLSENSE_CACHE)/influxd-$(INFLUXD_VERSION)/influxd
export WELLSENSE_INFLUXD_VERSION := $(INFLUXD_VERSION)

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# mosquitto: broker; dbus-daemon: private bus for the emulated BlueZ;
# openssl: throwaway test CA; python3-venv: the virtualenv; chromium: the report
# test renders the HTML report headless.
DEB_PACKAGES := mosquitto dbus-daemon openssl python3-venv ca-certificates chromium

.PHONY: help setup deps venv influxd test test-fast test-arm64 lint demo services-up services-down services-purge services-env bench constraints clean

help:
	@echo "make demo           end-to-end demo on simulated wearables and local services"
	@echo "make test           the whole test suite (unit, property, integration, fault)"
	@echo "make services-up    start local Mosquitto + InfluxDB 2.x, print their settings"
	@echo "make services-down  stop exactly the services that services-up started (keeps data)"
	@echo "make services-purge stop them and delete .services (data, logs, settings)"
	@echo "make bench          run the benchmarks (JSON on stdout)"
	@echo "make lint           ruff + mypy"
	@echo "make constraints    re-pin constraints.txt to the dev venv (after changing the extras)"
	@echo "make test-arm64     the wheel's gateway extras and collector tests on arm64 under QEMU"

setup: deps venv influxd

deps: $(STAMPS)/deb.stamp
$(STAMPS)/deb.stamp: Makefile
	@mkdir -p $(STAMPS)
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "== installing Debian packages: $$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing </dev/null; \
	fi
	@# A Debian mosquitto starts a system-wide broker on port 1883; ours run on their own ports.
	@touch $@

venv: $(STAMPS)/venv.stamp
# Every package at the version pinned in constraints.txt.
$(STAMPS)/venv.stamp: pyproject.toml constraints.txt $(STAMPS)/deb.stamp
	@mkdir -p $(STAMPS)
	@[ -x $(BIN)/python ] || { echo "== creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "== installing wellsense[dev] into $(VENV) (versions from constraints.txt)"
	@$(BIN)/python -m pip install -q --upgrade pip </dev/null
	@$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]' </dev/null
	@touch $@

# Re-pin: install what the extras now ask for (new packages resolve freely,
# installed ones stay), then write the exact versions of their closure.
constraints: $(STAMPS)/deb.stamp
	@[ -x $(BIN)/python ] || { echo "== creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@$(BIN)/python -m pip install -q -e '.[dev]' </dev/null
	@$(BIN)/python tools/constraints.py > constraints.txt.new
	@mv constraints.txt.new constraints.txt
	@echo "== constraints.txt: $$(grep -c '==' constraints.txt) pins; review with git diff constraints.txt"

influxd: $(INFLUXD)
$(INFLUXD):
	@echo "== InfluxDB $(INFLUXD_VERSION): first run builds it from source and caches it in $(WELLSENSE_CACHE)"
	@deploy/influxdb/ensure-influxd.sh >/dev/null

test: setup
	$(BIN)/ruff check .
	WELLSENSE_INFLUXD=$(INFLUXD) $(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: venv
	$(BIN)/python -m pytest -m "not integration and not slow" $(PYTEST_ARGS)

# Not part of `make test`: the first run bootstraps an arm64 Debian root under
# emulation (cached in $(WELLSENSE_CACHE)/arm64-root), later runs reuse it.
# ARM64_SUITE=trixie uses Debian 13 (CPython 3.13) instead of 12 (3.11).
test-arm64: venv $(STAMPS)/arm64-deb.stamp
	$(SUDO) env WELLSENSE_CACHE=$(WELLSENSE_CACHE) PYTHON=$(abspath $(BIN))/python \
	  ARM64_SUITE=$(ARM64_SUITE) \
	  WELLSENSE_SHARED_DATA=$${WELLSENSE_SHARED_DATA:-$(abspath ..)/shared/data} tests/arm64/run.sh

$(STAMPS)/arm64-deb.stamp:
	@mkdir -p $(STAMPS)
	@dpkg-query -W -f='$${Status}\n' qemu-user-static debootstrap binfmt-support 2>/dev/null \
	  | grep -c 'install ok installed' | grep -qx 3 || { \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    qemu-user-static debootstrap binfmt-support </dev/null; }
	@touch $@

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

demo: setup
	WELLSENSE_INFLUXD=$(INFLUXD) $(BIN)/wellsense demo $(DEMO_ARGS)

services-up: setup
	@WELLSENSE_INFLUXD=$(INFLUXD) $(BIN)/wellsense services up --dir .services

services-down:
	@if [ -x $(BIN)/wellsense ]; then $(BIN)/wellsense services down --dir .services; else echo "nothing to stop"; fi

services-purge:
	@if [ -x $(BIN)/wellsense ]; then $(BIN)/wellsense services down --purge --dir .services; else rm -rf .services; fi

services-env:
	@$(BIN)/wellsense services env --dir .services

# Each benchmark prints JSON on stdout, next to a named peer measured in the same run.
bench: setup
	@failed=""; for b in bench/*.py; do echo "== $$b" >&2; \
	  WELLSENSE_INFLUXD=$(INFLUXD) $(BIN)/python $$b || failed="$$failed $$b"; done; \
	  if [ -n "$$failed" ]; then echo "benchmarks that failed:$$failed" >&2; exit 1; fi

clean: services-down
	rm -rf $(STAMPS) .services .demo .pytest_cache .ruff_cache .mypy_cache
