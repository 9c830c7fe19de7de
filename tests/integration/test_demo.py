"""`wellsense demo` runs end to end on its own services and says what it stored."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import scratch_dir
from wellsense_cli import localservices as ls

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def test_demo_runs_a_compressed_day_and_reports_per_participant() -> None:
    work = scratch_dir("demo")
    services = work / "services"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WELLSENSE_SIM")}
    env["PYTHONPATH"] = str(REPO)
    try:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "wellsense_cli.main",
                "demo",
                "--participants",
                "2",
                "--seconds",
                "120",  # x720: 1,440 notifications/s; strap off 10:00-14:00 (10 s polling)
                "--dir",
                str(work / "demo"),
                "--services-dir",
                str(services),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            cwd=REPO,
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
        out = run.stdout
        for step in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"):
            assert step in out
        assert "Every participant has raw samples and HRV features." in out
        assert "0 sequence numbers missing" in out
        assert "adherence-low-wear" in out  # p-0002 took the strap off, and put it back on
        table = out.split("[5/5]", 1)[1]
        rows = [line.split() for line in table.splitlines() if line.startswith("  p-000")]
        assert [r[0] for r in rows[:2]] == ["p-0001", "p-0002"]
        assert all(int(r[1].replace(",", "")) > 100 for r in rows[:2])  # HR samples stored
        assert "the services are still running" in out
        assert "Alert delivery (two workers, one rules runner):" in out
        assert "Staff dashboard: http://127.0.0.1:" in out and "one-time password" in out
        # Its own services folder: the hints name it, not `make services-down`.
        assert f"wellsense services down --dir {services.resolve()}" in out
    finally:
        pid_file = work / "demo" / "dashboard.pid"
        if pid_file.exists():  # the demo leaves the dashboard running, like the services
            ls.stop_pid(int(pid_file.read_text()), sys.executable)
        state = ls.load_state(services)
        if state:
            for name in ("mosquitto", "influxd"):
                ls.stop_pid(int(state[name]["pid"]), str(state[name]["exe"]))
