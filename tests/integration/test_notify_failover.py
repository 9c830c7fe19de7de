"""Alert delivery with two real processing workers: one rules runner, SIGKILL, no repeat.

Two ``wellsense process`` processes (real Mosquitto, real InfluxDB) share a
``[notify]`` state folder. One takes the lease and runs the rules: the
stored data raise two alerts, each emailed once to a real local SMTP server
(aiosmtpd) and posted once to a real local webhook receiver. The leader is
then killed with SIGKILL; the other worker takes over once the lease has
expired, resolves an alert when new data arrive, and delivers the resolution
once. Nothing is delivered twice.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from processing import schema
from processing.writer import InfluxWriter
from tests.integration.processing_fixture import Pipeline, pipeline, wait_until
from tests.unit.notify_servers import SmtpServer, WebhookServer, smtp_server, webhook_server

__all__ = ["pipeline", "smtp_server", "webhook_server"]

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NS = 1_000_000_000
HOUR = 3600 * NS
NOW = 1_764_118_800 * NS  # 2025-11-26T01:00:00Z on the workers' simulation clock
LEASE_S = 6

RULES = """
[[rule]]
id = "no-data"
description = "No heart-rate data for 6 hours."
scope = "participant"
condition = "minutes_since_last_sample > 360"
severity = "warning"
cooldown = "24h"
notify = ["study-team", "tech"]

[[rule]]
id = "battery-low"
description = "Sensor battery below 15 %."
scope = "device"
condition = "battery_pct < 15"
severity = "info"
cooldown = "24h"
notify = ["study-team", "tech"]
"""


def write(p: Pipeline, lines: list[str | None]) -> None:
    writer = InfluxWriter(url=p.influx.url, org=p.influx.org, bucket=p.bucket, token=p.influx.token)
    try:
        writer.write([line for line in lines if line])
    finally:
        writer.close()


def leader_log(p: Pipeline, worker: str) -> bool:
    return "rules lease acquired" in p.log_text(worker)


def test_two_workers_one_runner_sigkill_takeover_no_repeat(
    pipeline: Pipeline, tmp_path: Path, smtp_server: SmtpServer, webhook_server: WebhookServer
) -> None:
    p = pipeline
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "test.toml").write_text(RULES)
    urls = {}
    for name, url in (("study-team", smtp_server.url()), ("tech", webhook_server.url())):
        urls[name] = tmp_path / f"{name}.urls"
        urls[name].write_text(url + "\n")
        urls[name].chmod(0o600)
    state = tmp_path / "notify"
    tags = {"study": p.study, "participant": "p-1", "device": "strap-1"}
    write(p, [
        schema.line("hr", tags, {"hr_bpm": 70, "contact": True, "seq": 1}, NOW - 7 * HOUR),
        schema.line("device_status", {**tags, "event": "battery"}, {"battery_pct": 9, "seq": 2},
                    NOW - 6 * HOUR),
    ])  # fmt: skip
    anchor = time.time_ns()
    env = {"WELLSENSE_SIM_EPOCH_NS": str(NOW), "WELLSENSE_SIM_ANCHOR_NS": str(anchor)}
    sections = {
        "rules": {"enabled": True, "directory": str(rules), "interval_s": 1},
        "notify": {"state_dir": str(state), "lease_s": LEASE_S, "backoff_s": 1},
        "notify.recipients.study-team": {"urls_file": str(urls["study-team"])},
        "notify.recipients.tech": {"urls_file": str(urls["tech"])},
    }
    workers = {w: p.spawn(w, extra_env=env, **sections) for w in ("w1", "w2")}

    wait_until(lambda: len(smtp_server.messages) >= 2 and len(webhook_server.received) >= 2,
               60, "two emails and two webhook calls")  # fmt: skip
    leaders = [w for w in workers if leader_log(p, w)]
    assert len(leaders) == 1, leaders
    leader = leaders[0]
    other = "w2" if leader == "w1" else "w1"
    subjects = sorted(m["Subject"] for m in smtp_server.messages)
    assert subjects == [
        f"[WellSense {p.study}] Alert: battery-low for participant p-1 (device strap-1)",
        f"[WellSense {p.study}] Alert: no-data for participant p-1",
    ]
    assert sorted(h["title"] for h in webhook_server.received) == subjects

    killed_at = time.monotonic()
    os.kill(workers[leader].pid, signal.SIGKILL)
    workers[leader].wait(10)
    wait_until(lambda: leader_log(p, other), 10 * LEASE_S, "the other worker to take over")
    takeover_s = time.monotonic() - killed_at
    print(f"takeover after SIGKILL: {takeover_s:.1f} s (lease {LEASE_S} s)")

    # new data resolve no-data: the new leader delivers the resolution, once
    sim_now = NOW + (time.time_ns() - anchor)
    write(p, [schema.line("hr", tags, {"hr_bpm": 72, "contact": True, "seq": 3}, sim_now)])
    wait_until(lambda: len(smtp_server.messages) >= 3 and len(webhook_server.received) >= 3,
               60, "the resolution by email and webhook")  # fmt: skip
    resolved = f"[WellSense {p.study}] Resolved: no-data for participant p-1"
    assert smtp_server.messages[-1]["Subject"] == resolved
    assert webhook_server.received[-1]["title"] == resolved
    time.sleep(3 * LEASE_S / 3 + 2)  # a few more evaluations and dispatches: nothing repeats
    assert len(smtp_server.messages) == 3 and len(webhook_server.received) == 3

    with sqlite3.connect(state / "notify.sqlite") as db:
        rows = db.execute("SELECT rule, state, recipient, status FROM delivery").fetchall()
        epoch = db.execute("SELECT epoch FROM lease").fetchone()[0]
    assert sorted(rows) == sorted(
        (rule, st, rcpt, "sent")
        for rule, st in (("no-data", "firing"), ("battery-low", "firing"), ("no-data", "resolved"))
        for rcpt in ("study-team", "tech")
    )
    assert epoch == 2
    wait_until(lambda: p.count("alert_delivery", "status") >= 6, 30, "alert_delivery points")
    statuses = p.flux('|> filter(fn: (r) => r._measurement == "alert_delivery" '
                      'and r._field == "status")')  # fmt: skip
    assert {(r["rule"], r["recipient"], r["_value"]) for r in statuses} == {
        (rule, rcpt, "sent")
        for rule in ("no-data", "battery-low")
        for rcpt in ("study-team", "tech")
    }
