"""Enrolment and erasure end to end: shipped broker, real InfluxDB, a real collector.

Two participants share one enrolled gateway (the collector runs with the
bundle `wellsense enroll` wrote, against the emulated BlueZ). Erasing one
must stop their sensors at once, clear their retained broker messages and
delete every one of their points in every bucket, and leave the other
participant's data and collection untouched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from collector.config import load as load_collector_config
from processing import tombstones
from processing.admin import broker as broker_admin
from processing.admin import enroll, influxsetup, participant
from processing.admin.influxapi import InfluxApi
from tests.integration.harness import REPO, Emulator, wait_until
from tests.integration.security_stack import (
    IDENTITY_CANARIES,
    SECRETS,
    STUDY,
    Client,
    ShippedBroker,
    scratch,
    write_admin_toml,
)
from wellsense_cli.localservices import Influxd

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ORG, BUCKET = "sec-erase", "erase"
ROOT = f"wellsense/v1/{STUDY}"
MEASUREMENTS = {
    "hr": "device=d hr_bpm=61i,seq=1i",
    "rr": "device=d rr_ms=950.5,seq=1i",
    "activity": "device=d steps=3i,seq=1i",
    "device_status": "device=d,event=battery battery_pct=80i,seq=1i",
    "hrv_window": "window=300s rmssd_ms=31.5",
    "daily": "tz=UTC hr_mean=60.5",
    "alert": 'rule=no_data,severity=warning message="no data",value=1',
}


@pytest.fixture(scope="module")
def stack(influxd: Influxd) -> Iterator[dict[str, Any]]:
    d = scratch("erase")
    server = ShippedBroker(d).start(influx_url=influxd.url, org=ORG, bucket=BUCKET)
    setup = influxsetup.setup(server.config(), influxd.token, d / "secrets")
    SECRETS.update(p.read_text().strip() for p in setup.token_files.values())
    write_admin_toml(
        d,
        port=server.port,
        influx_url=influxd.url,
        org=ORG,
        bucket=BUCKET,
        token_file=setup.token_files["erasure"],
    )
    config = server.config()
    # The study team's own key, kept outside WellSense: nothing may ever read it.
    (d / "study-team-key.csv").write_text(
        "pseudonym,name,email,phone\n" + ",".join(["(filled in by hand)", *IDENTITY_CANARIES])
    )
    first = enroll.enroll(config, sensor_line='address = "C0:FF:EE:00:00:01"')
    second = enroll.enroll(
        config, gateway=first.gateway, sensor_line='address = "C0:FF:EE:00:00:02"'
    )
    server.reload()
    bundle = first.bundle
    SECRETS.add((bundle / "mqtt-password").read_text().strip())
    # The bundle as the installer lays it out, with this test's paths.
    text = (bundle / "collector.toml").read_text().replace("/etc/wellsense", str(bundle))
    text = text.replace('"/var/lib/wellsense"', f'"{d / "gateway-data"}"')
    text += "\n[batch]\nmax_interval_s = 0.5\n[ble]\nreconnect_min_s = 0.2\nreconnect_max_s = 2\n"
    (d / "collector.toml").write_text(text)
    load_collector_config(d / "collector.toml")  # the bundle is a valid collector config
    emulator = Emulator(d, participants=2).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WELLSENSE_")}
    log = d / "collector.log"
    collector = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wellsense_cli.main",
            "collect",
            "--config",
            str(d / "collector.toml"),
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        cwd=REPO,
        env={**env, **emulator.env, "PYTHONPATH": str(REPO)},
    )
    processing = Client(server, "wellsense-processing-w1", server.secret("processing-w1"))
    assert processing.connect()
    processing.subscribe(f"{ROOT}/+/+")
    try:
        yield {
            "server": server,
            "config": config,
            "p1": first.participant,
            "p2": second.participant,
            "gateway": first.gateway,
            "processing": processing,
            "data_dir": d / "gateway-data",
            "log": log,
            "influxd": influxd,
        }
    finally:
        processing.close()
        collector.terminate()
        collector.wait(30)
        emulator.stop()
        server.stop()


def _counts(influxd: Influxd, bucket: str, who: str) -> dict[str, int]:
    return participant.count_points(InfluxApi(influxd.url, influxd.token), ORG, bucket, who)


def test_enrolment_makes_pseudonyms_credentials_acl_and_a_private_bundle(
    stack: dict[str, Any],
) -> None:
    config, gw = stack["config"], stack["gateway"]
    for p in (stack["p1"], stack["p2"]):
        assert p.startswith("p-") and len(p) == 10
    assert broker_admin.acl_participants(config.broker.acl_file, gw) == {stack["p1"], stack["p2"]}
    assert gw in config.broker.password_file.read_text()
    bundle = config.bundles_dir / gw
    assert (bundle / "mqtt-password").stat().st_mode & 0o077 == 0
    assert sorted(f.name for f in bundle.iterdir()) == ["ca.crt", "collector.toml", "mqtt-password"]
    registry = json.loads(config.registry.read_text())
    assert config.registry.stat().st_mode & 0o077 == 0
    assert set(registry["participants"]) == {stack["p1"], stack["p2"]}
    assert set(registry["participants"][stack["p1"]]) == {
        "gateway",
        "enrolled",
        "status",
        "changed",
        "sensor",
        "sensor_key",
        "device",
    }


def test_erase_removes_one_participant_everywhere_and_leaves_the_other(
    stack: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    p1, p2, processing, influxd = stack["p1"], stack["p2"], stack["processing"], stack["influxd"]
    wait_until(
        lambda: {f"{ROOT}/{p1}/hr", f"{ROOT}/{p2}/hr"} <= processing.topics(),
        60,
        "both participants' heart rate through the enrolled gateway",
    )
    # What processing would have stored and retained for both participants.
    now = time.time_ns() // 10**9 * 10**9
    lines = [
        f"{m},study={STUDY},participant={p},{tags_fields.split(' ')[0]} "
        f"{tags_fields.split(' ', 1)[1]} {now - i * 10**9}"
        for p in (p1, p2)
        for m, tags_fields in MEASUREMENTS.items()
        for i in range(3)
    ]
    operator = InfluxApi(influxd.url, influxd.token)
    operator.write(ORG, BUCKET, "\n".join(lines))
    operator.write(
        ORG,
        f"{BUCKET}_1h",
        "\n".join(f"hr_1h,study={STUDY},participant={p} hr_bpm_mean=60 {now}" for p in (p1, p2)),
    )
    for p in (p1, p2):
        processing.publish(f"{ROOT}/_alerts/{p}/state", b'{"alerts": {}}', retain=True)
    before_p2 = _counts(influxd, BUCKET, p2)
    assert set(_counts(influxd, BUCKET, p1)) == set(MEASUREMENTS)

    server = stack["server"]
    # --dry-run reports and changes nothing.
    registry_before = stack["config"].registry.read_text()
    assert (
        participant.main(
            ["erase", p1, "--config", str(server.admin_toml), "--dry-run"],
            prog="wellsense participant",
        )
        == 0
    )
    dry = capsys.readouterr().out
    assert "dry run" in dry and "would remove" in dry and "hr " in dry
    assert stack["config"].registry.read_text() == registry_before
    assert not stack["config"].erasure.tombstones_file.exists()
    assert set(_counts(influxd, BUCKET, p1)) == set(MEASUREMENTS)
    outbox_files = [stack["data_dir"] / "outbox.sqlite3", stack["data_dir"] / "outbox.sqlite3-wal"]
    assert any(p1.encode() in f.read_bytes() for f in outbox_files if f.exists())

    receipt_file = server.directory / "receipt.json"
    rc = participant.main(
        [
            "erase",
            p1,
            "--config",
            str(server.admin_toml),
            "--reload-command",
            f"kill -HUP {server.proc.pid}",
            "--receipt-json",
            str(receipt_file),
        ],
        prog="wellsense participant",
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    receipt = json.loads(receipt_file.read_text())
    raw = receipt["influx"][BUCKET]
    assert set(raw) == set(MEASUREMENTS)
    assert all(c["before"] > 0 and c["after"] == 0 for c in raw.values()), raw
    assert receipt["influx"][f"{BUCKET}_1h"] == {"hr_1h": {"before": 1, "after": 0}}
    assert receipt["gateway_ack"] is not None and p1 in receipt["gateway_ack"]["withdrawn"]
    assert receipt["retained_cleared"] == [f"{ROOT}/_alerts/{p1}/state"]
    assert "hr " in out and "-> 0" in out and p1 in out
    assert receipt["tombstoned"] is True
    assert tombstones.digest(STUDY, p1) in stack["config"].erasure.tombstones_file.read_text()
    assert {"tombstone", "gateway outbox", "broker retained", "dead letters", "exports"} <= set(
        receipt["stores"]
    )
    assert "file and WAL overwritten: True" in receipt["stores"]["gateway outbox"]
    # The gateway's outbox file and its WAL no longer hold a byte of p1's.
    for f in outbox_files:
        if f.exists():
            assert p1.encode() not in f.read_bytes(), f

    # 0 points remain for p1 in every measurement of every bucket; p2 untouched.
    for bucket in (BUCKET, f"{BUCKET}_1h"):
        assert _counts(influxd, bucket, p1) == {}
    assert _counts(influxd, BUCKET, p2) == before_p2 or all(
        _counts(influxd, BUCKET, p2)[m] >= n for m, n in before_p2.items()
    )
    # The gateway's persistent flag, and collection stopped for p1 only.
    flags = json.loads((stack["data_dir"] / "withdrawn.json").read_text())
    assert set(flags["participants"]) == {p1} and flags["participants"][p1]["erase"] is True
    cleared = Client(server, "wellsense-admin", server.secret("admin"))
    assert cleared.connect()
    cleared.subscribe(f"{ROOT}/_alerts/+/state")
    time.sleep(1)
    assert cleared.topics() == {f"{ROOT}/_alerts/{p2}/state"}
    cleared.close()
    processing.messages.clear()
    time.sleep(3)
    assert f"{ROOT}/{p2}/hr" in processing.topics()
    assert not any(t.startswith(f"{ROOT}/{p1}/") for t in processing.topics())
    assert stack["config"].registry.read_text().count('"erased"') == 1
    assert p1 not in broker_admin.acl_participants(
        stack["config"].broker.acl_file, stack["gateway"]
    )
    assert "participant withdrawn" in stack["log"].read_text()
