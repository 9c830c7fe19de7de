"""`wellsense collect scan` through bleak's BlueZ backend against the emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import scratch_dir
from tests.integration.harness import Emulator

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_scan_lists_sensors_as_table_and_json() -> None:
    emulator = Emulator(scratch_dir("scan"), participants=2).start()
    try:
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": emulator.bus, "PYTHONPATH": str(REPO)}
        cmd = [sys.executable, "-m", "wellsense_cli.main", "collect", "scan", "--timeout", "3"]
        table = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
        assert table.returncode == 0, table.stderr
        assert "C0:FF:EE:00:00:01" in table.stdout and "WellSense HR P01" in table.stdout
        as_json = subprocess.run(
            [*cmd, "--format", "json"], capture_output=True, text=True, env=env, timeout=60
        )
        rows = json.loads(as_json.stdout)
        assert {r["address"] for r in rows} == {"C0:FF:EE:00:00:01", "C0:FF:EE:00:00:02"}
        assert all(r["rssi_dbm"] < 0 and "180d" in r["services"] for r in rows)
    finally:
        emulator.stop()
