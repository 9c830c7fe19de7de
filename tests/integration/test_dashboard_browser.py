"""The staff dashboard in headless Chromium, against a real uvicorn server and InfluxDB.

A synthetic study (processing.research.synthetic, with its HRV windows and
daily features computed by the research recompute code) is stored in its own
bucket, with one open and one resolved alert. ``wellsense dashboard`` runs
as a real process on a free port with a READ-ONLY token; users are added
with ``wellsense dashboard user add``. Chromium (Debian's, driven by
Playwright) signs in, reads the overview, opens a participant page with its
plots, acknowledges the open alert, and is refused the pages above its role.
Screenshots are kept in ``.artifacts/dashboard/`` (printed at the end).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from influxdb_client import InfluxDBClient

from processing import schema
from processing.admin.registry import Registry
from processing.notify.leader import delivery_line
from processing.notify.outbox import Delivery
from processing.research import recompute
from processing.research.settings import Connection
from processing.research.store import Store
from processing.research.synthetic import SyntheticStudy
from processing.writer import InfluxWriter
from tests.integration.processing_fixture import wait_until
from tests.unit.notify_servers import free_port
from wellsense_cli import localservices as ls

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / ".artifacts" / "dashboard"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
NS = 1_000_000_000
PASSWORDS = {"sam": "staff password 1", "rita": "researcher pass 2", "ada": "admin password 3"}
ROLES = {"sam": "staff", "rita": "researcher", "ada": "admin"}
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _read_token(influx: ls.Influxd, bucket_id: str, org_id: str) -> str:
    from influxdb_client import Permission, PermissionResource

    with InfluxDBClient(url=influx.url, token=influx.token, org=influx.org) as client:
        auth = client.authorizations_api().create_authorization(
            org_id=org_id,
            permissions=[
                Permission(
                    action="read",
                    resource=PermissionResource(type="buckets", id=bucket_id, org_id=org_id),
                )
            ],
        )
    return str(auth.token)


@pytest.fixture(scope="module")
def dashboard(
    influxd: ls.Influxd, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    pytest.importorskip("playwright")
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium")
    tmp = tmp_path_factory.mktemp("dashboard")
    run = uuid.uuid4().hex[:8]
    synth = SyntheticStudy(study=f"d{run}", participants=("p-alpha", "p-bravo"), days=10)
    with InfluxDBClient(url=influxd.url, token=influxd.token, org=influxd.org) as client:
        bucket = client.buckets_api().create_bucket(bucket_name=f"dash-{run}", org=influxd.org)
    writer = InfluxWriter(url=influxd.url, org=influxd.org, bucket=bucket.name, token=influxd.token)
    lines = list(synth.raw_lines())
    for k in range(0, len(lines), 10_000):
        writer.write(lines[k : k + 10_000])
    conn = Connection(
        influxd.url, influxd.org, bucket.name, influxd.token, synth.study, synth.timezone
    )
    with Store(conn) as store:
        hr, rr, act = (store.frame(m) for m in ("hr", "rr", "activity"))
    writer.write(recompute.feature_lines("hrv_window", recompute.hrv_window_frame(rr), synth.study))
    daily = recompute.daily_frame(hr, rr, act, timezone=synth.timezone)
    writer.write(recompute.feature_lines("daily", daily, synth.study))
    end = synth.local_ns(synth.day(synth.days - 1), 23 * 60)  # the study's "now"
    fired = end - 8 * 3600 * NS
    alert_tags = {
        "study": synth.study,
        "participant": "p-bravo",
        "rule": "adherence-no-data",
        "severity": "warning",
    }
    resolved_tags = {
        **alert_tags,
        "participant": "p-alpha",
        "rule": "adherence-low-wear",
        "severity": "info",
    }
    writer.write(
        [
            schema.line(
                "alert",
                alert_tags,
                {"state": "firing", "message": "No data for 6 hours", "value": 420.0},
                fired,
            )
            or "",
            schema.line(
                "alert",
                resolved_tags,
                {"state": "firing", "message": "Worn 4 h", "value": 4.0},
                fired - 3600 * NS,
            )
            or "",
            schema.line(
                "alert",
                resolved_tags,
                {"state": "resolved", "message": "worn again"},
                fired - 1800 * NS,
            )
            or "",
            *(
                delivery_line(  # what the rules runner's dispatcher writes
                    Delivery(
                        0,
                        synth.study,
                        "adherence-no-data",
                        "p-bravo",
                        "firing",
                        fired,
                        rcpt,
                        "0123456789ab",
                        {"participant": "p-bravo"},
                        False,
                        status,
                        1,
                        "",
                    ),
                    status,
                    "",
                )
                for rcpt, status in (("study-team", "sent"), ("technical-support", "failed"))
            ),
        ]
    )
    writer.close()

    writer2 = InfluxWriter(
        url=influxd.url, org=influxd.org, bucket=bucket.name, token=influxd.token
    )
    writer2.write(
        [
            schema.gateway_state_line(synth.study, "gw-a", "online", end - 600 * NS),
            schema.gateway_state_line(synth.study, "gw-b", "offline", end - 300 * NS),
        ]
    )
    writer2.close()
    registry = Registry(tmp / "registry.json", synth.study)  # as `wellsense enroll` keeps it
    registry.add("p-alpha", "gw-a")
    registry.add("p-bravo", "gw-b")
    registry.add("p-charlie", "gw-c")  # enrolled, never sent anything
    registry.add("p-delta", "gw-c")
    registry.participants["p-delta"].status = "withdrawn"
    registry.save()
    token_file = tmp / "read.token"
    token_file.write_text(_read_token(influxd, bucket.id, bucket.org_id))
    token_file.chmod(0o600)
    port = free_port()
    cfg = tmp / "dashboard.toml"
    cfg.write_text(
        f'[dashboard]\nstudy = "{synth.study}"\nlisten = "127.0.0.1:{port}"\n'
        f'state_dir = "{tmp / "state"}"\ntimezone = "{synth.timezone}"\nsecure_cookies = false\n'
        f'registry = "{tmp / "registry.json"}"\n'
        f'[influx]\nurl = "{influxd.url}"\norg = "{influxd.org}"\nbucket = "{bucket.name}"\n'
        f'token_file = "{token_file}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("WELLSENSE_")}
    env |= {
        "PYTHONPATH": str(REPO),
        "WELLSENSE_SIM_EPOCH_NS": str(end),
        "WELLSENSE_SIM_ANCHOR_NS": str(time.time_ns()),
    }
    cli = [sys.executable, "-m", "wellsense_cli.main", "dashboard", "--config", str(cfg)]
    for name, password in PASSWORDS.items():
        done = subprocess.run(
            [*cli, "user", "add", name, "--role", ROLES[name], "--password-stdin"],
            input=password + "\n",
            text=True,
            env=env,
            capture_output=True,
        )
        assert done.returncode == 0, done.stderr
    listed = subprocess.run([*cli, "user", "list"], text=True, env=env, capture_output=True)
    assert listed.stdout.split() == ["ada", "admin", "rita", "researcher", "sam", "staff"]
    log = (tmp / "dashboard.log").open("wb")
    proc = subprocess.Popen(cli, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        with contextlib.suppress(OSError):
            return urllib.request.urlopen(f"{base}/healthz", timeout=2).status == 200
        return False

    try:
        wait_until(up, 60, "the dashboard to listen")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        yield {
            "base": base,
            "study": synth.study,
            "state": tmp / "state",
            "token": token_file,
            "influx": influxd,
            "bucket": bucket.name,
        }
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
        print(f"\ndashboard screenshots: {ARTIFACTS}")
        with (
            contextlib.suppress(Exception),
            InfluxDBClient(url=influxd.url, token=influxd.token, org=influxd.org) as client,
        ):
            client.buckets_api().delete_bucket(bucket)


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield b
        finally:
            b.close()


def sign_in(browser: Any, base: str, name: str) -> Any:
    page = browser.new_context().new_page()
    page.goto(f"{base}/")
    assert page.url.endswith("/login")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(PASSWORDS[name])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/")
    return page


def test_the_token_is_read_only(dashboard: dict[str, Any]) -> None:
    d = dashboard
    writer = InfluxWriter(
        url=d["influx"].url, org=d["influx"].org, bucket=d["bucket"], token=d["token"].read_text()
    )
    try:
        with pytest.raises(Exception, match=r"40[13]"):
            writer.write([f"hr,study={d['study']},participant=p-x,device=x hr_bpm=1i 1"])
    finally:
        writer.close()


def test_staff_sign_in_overview_participant_acknowledge(
    dashboard: dict[str, Any], browser: Any
) -> None:
    base = dashboard["base"]
    page = sign_in(browser, base, "sam")
    # keyboard: the first Tab reaches the skip link, and it is visibly focused
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to the main content"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
    rows = page.locator("#participants tbody tr")
    assert rows.count() == 3  # p-delta withdrew
    names = [rows.nth(i).locator("th").inner_text() for i in range(3)]
    assert names == ["p-charlie", "p-bravo", "p-alpha"]  # never sent data; an open alert
    charlie, bravo, alpha = (rows.nth(i).inner_text() for i in range(3))
    assert "no data in 35 days" in charlie and "0 of 14" in charlie
    assert "adherence-no-data" in bravo and "9 of 14" in bravo and "gw-b: offline" in bravo
    assert "none" in alpha and "10 of 14" in alpha and "gw-a: online" in alpha
    page.screenshot(path=str(ARTIFACTS / "1-overview.png"), full_page=True)

    page.get_by_role("link", name="p-bravo").click()
    page.wait_for_url(f"{base}/participant/p-bravo")
    for plot in ("hr", "rr", "hrv", "activity", "wear", "daily"):
        svg = page.locator(f"#plot-{plot} svg")
        assert svg.count() == 1 and svg.get_attribute("role") == "img"
        assert page.locator(f"#plot-{plot} svg path").count() >= 1, plot  # a line was drawn
    assert page.locator("#export").count() == 0  # staff do not export
    notified = page.locator(".delivery").inner_text()
    assert notified == ("Notified: alert to study-team (sent); alert to technical-support (failed)")
    page.screenshot(path=str(ARTIFACTS / "2-participant.png"), full_page=True)

    before = time.time_ns()
    page.get_by_label("What was done").fill("Called; the strap was charging.")
    page.get_by_role("button", name="Mark as handled").click()
    page.wait_for_url("**/participant/p-bravo?acked=1*")
    handled = page.locator(".ack").inner_text()
    assert handled.startswith("Handled by sam on ") and "the strap was charging" in handled
    page.screenshot(path=str(ARTIFACTS / "3-acknowledged.png"), full_page=True)
    with sqlite3.connect(dashboard["state"] / "accounts.sqlite") as db:
        [(user, note, ts, rule)] = db.execute("SELECT user, note, ts_ns, rule FROM ack").fetchall()
    assert (user, rule) == ("sam", "adherence-no-data") and before <= ts <= time.time_ns()
    assert note == "Called; the strap was charging."

    page.goto(f"{base}/participant/p-charlie")  # enrolled, silent: a page with empty plots
    assert "No alerts in the last 35 days." in page.inner_text("#alerts")
    assert page.goto(f"{base}/participant/p-nobody").status == 404

    # above the staff role
    response = page.goto(f"{base}/audit")
    assert response.status == 403
    assert "Your role (staff) cannot open the audit log" in page.inner_text("main")
    page.screenshot(path=str(ARTIFACTS / "4-refused.png"), full_page=True)
    response = page.goto(f"{base}/participant/p-bravo/export.csv?measurement=daily")
    assert response.status == 403


def test_researcher_exports_and_admin_reads_the_audit_log(
    dashboard: dict[str, Any], browser: Any
) -> None:
    base = dashboard["base"]
    page = sign_in(browser, base, "rita")
    page.goto(f"{base}/participant/p-alpha")
    page.get_by_label("Data to export as CSV").select_option("daily")
    with page.expect_download() as info:
        page.get_by_role("button", name="Download CSV").click()
    path = info.value.path()
    header, *rows = Path(path).read_text().splitlines()
    assert "wear_min" in header and len(rows) >= 9
    assert page.goto(f"{base}/audit").status == 403

    admin = sign_in(browser, base, "ada")
    admin.goto(f"{base}/audit")
    text = admin.inner_text("#audit")
    for who, what in (("sam", "acknowledged"), ("sam", "refused"), ("rita", "exported")):
        assert any(who in line and what in line for line in text.splitlines()), (who, what)
    admin.screenshot(path=str(ARTIFACTS / "5-audit.png"), full_page=True)
