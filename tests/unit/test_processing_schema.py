"""The storage schema: golden messages give exact line protocol; escaping; docs agree."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector import wire
from processing import schema
from tests.golden import valid_messages

REPO = Path(__file__).resolve().parents[2]
TAGS = "device=d-1a2b3c,participant=p-7f3a9c,study=pilot"


def lines_of(name: str) -> list[str]:
    return schema.message_lines(wire.decode(valid_messages()[name]))


def test_golden_hr_lines() -> None:
    assert lines_of("hr") == [
        "clock,device=d-1a2b3c,participant=p-7f3a9c,stream=hr,study=pilot "
        'synced=true,source="ntp",max_error_ms=12.5,seq=42i 1764115200000000000',
        f"hr,{TAGS} hr_bpm=62i,contact=true,seq=42i 1764115198000000000",
        f"rr,{TAGS} rr_ms=968.75,seq=42i 1764115197015625000",
        f"rr,{TAGS} rr_ms=984.375,seq=42i 1764115198000000000",
        f"hr,{TAGS} hr_bpm=63i,contact=true,seq=42i 1764115199000000000",
        f"rr,{TAGS} rr_ms=951.171875,seq=42i 1764115199000000000",
        f"hr,{TAGS} hr_bpm=0i,contact=false,seq=42i 1764115199900000000",
    ]


def test_clock_quality_is_stored_per_message_of_the_sensor_streams() -> None:
    message = wire.decode(valid_messages()["activity"])
    unsynced = dataclasses.replace(message, clock=wire.ClockQuality(False, "rtc", None))
    first = schema.message_lines(unsynced)[0]
    assert first.startswith("clock,device=d-1a2b3c,participant=p-7f3a9c,stream=activity,")
    assert ' synced=false,source="rtc",seq=' in first  # unknown error: absent
    assert first.endswith(f" {message.sent_ns}")
    assert not any(ln.startswith("clock,") for ln in lines_of("selfreport"))
    assert not any(ln.startswith("clock,") for ln in lines_of("health"))


def test_golden_accel_lines() -> None:
    tags = "device=d-1a2b3c,epoch=30,participant=p-7f3a9c,study=pilot"
    got = lines_of("accel")
    assert got[0] == (
        f"accel_epoch,{tags} enmo_mg=12.5,mad_mg=8.25,counts_x=10.0,counts_y=0.0,counts_z=31.0,"
        "counts_vm=32.573,angle_z_deg=-61.2,n_samples=1500i,seq=44i 1764115200004000000"
    )
    assert got[1].startswith("accel_epoch,device=d-1a2b3c,epoch=60,")  # its own series
    assert got[2] == (
        f"accel_nonwear,{TAGS} nonwear=false,window_complete=true,block_s=900i,seq=44i "
        "1764114300000000000"
    )
    assert wire.encode(wire.decode(valid_messages()["accel"])) == valid_messages()["accel"]


def test_golden_activity_status_health_lines() -> None:
    assert lines_of("activity")[1] == (
        f"activity,{TAGS} cadence_spm=104.0,speed_mps=1.25,steps=104i,seq=7i 1764115200000000000"
    )
    assert lines_of("status")[1:] == [
        "device_status,device=d-1a2b3c,event=disconnected,participant=p-7f3a9c,study=pilot "
        'detail="link lost",seq=3i 1764115290000000000',
        "device_status,device=d-1a2b3c,event=connected,participant=p-7f3a9c,study=pilot "
        'rssi_dbm=-71i,detail="",seq=3i 1764115295000000000',
        "device_status,device=d-1a2b3c,event=battery,participant=p-7f3a9c,study=pilot "
        'battery_pct=83i,detail="",seq=3i 1764115296000000000',
    ]
    assert lines_of("health") == [
        "gateway_health,gateway=gw-01,study=pilot uptime_s=86400.5,outbox_depth=0i,"
        "outbox_evicted=0i,sensors_connected=1i,seq=120i 1764115400000000000",
        "gateway_sensor,gateway=gw-01,sensor=chest,study=pilot "
        "last_sample_age_s=0.8,battery_pct=83i 1764115400000000000",
    ]


def test_golden_features_become_a_gateway_hrv_window_point() -> None:
    _, text = lines_of("features")  # after the clock point
    assert text.startswith(
        "hrv_window,device=d-1a2b3c,participant=p-7f3a9c,source=gateway,study=pilot,window=300s "
    )
    fields = dict(kv.split("=", 1) for kv in text.split(" ")[1].split(","))
    assert fields["rmssd_ms"] == "32.75" and fields["n_beats"] == "371i"
    assert fields["quality"] == '"dfa_undefined"' and fields["seq"] == "43i"
    assert "dfa_alpha1" not in fields  # null on the wire = undefined = absent
    assert text.endswith(" 1764114900000000000")  # the window start


def test_golden_selfreport_becomes_self_report_points_of_floats() -> None:
    tags = "participant=p-7f3a9c,study=pilot"
    phq9 = "q1=1.0,q2=0.0,q3=2.0,q4=1.0,q5=0.0,q6=0.0,q7=1.0,q8=0.0,q9=0.0"
    assert lines_of("selfreport") == [
        f"self_report,instrument=mood,{tags} energy=4.5,mood=6.0 1764144000000000000",
        f"self_report,instrument=phq9,{tags} {phq9} 1764144000000000000",
        f"self_report,instrument=sleep_diary,{tags} sleep_hours=7.5 1764142200000000000",
    ]


def test_self_report_lines_merge_one_instrument_and_time_and_later_answers_win() -> None:
    a = schema.SelfReportAnswer
    lines = schema.self_report_lines(
        [
            a("p-1", 5, "mood", "mood", 3),
            a("p-1", 5, "mood", "energy", 2.5),
            a("p-1", 5, "mood", "mood", 4),
        ],
        "pilot",
    )
    assert lines == [
        "self_report,instrument=mood,participant=p-1,study=pilot energy=2.5,mood=4.0 5"
    ]


def test_escaping_and_omitted_values() -> None:
    text = schema.line(
        "my meas,x",
        {"k y": "a,b=c d", "empty": ""},
        {"s": 'say "hi" \\ now\nnext', "n": None, "nan": float("nan"), "i": 3, "b": False},
        5,
    )
    assert text == 'my\\ meas\\,x,k\\ y=a\\,b\\=c\\ d s="say \\"hi\\" \\\\ now next",i=3i,b=false 5'
    assert schema.line("m", {}, {"only": float("inf")}, 1) is None


@given(st.lists(st.floats(1.0, 65535.0, allow_nan=False), min_size=1, max_size=50))
def test_rr_beat_times_end_at_the_notification_and_step_by_each_interval(rr: list[float]) -> None:
    ts = 1_764_115_200_000_000_000
    times = schema.rr_beat_times_ns(ts, rr)
    assert times[-1] == ts
    for i in range(1, len(rr)):
        assert times[i] - times[i - 1] == round(rr[i] * 1e6)


def test_rewriting_a_message_gives_identical_lines() -> None:
    payload = valid_messages()["hr"]
    assert schema.message_lines(wire.decode(payload)) == schema.message_lines(wire.decode(payload))


def test_docs_storage_table_lists_every_measurement_with_its_tags() -> None:
    text = (REPO / "docs" / "storage.md").read_text()
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^\| `(\w+)` \| ([^|]*) \|", text, flags=re.MULTILINE)
    }
    assert set(rows) == set(schema.MEASUREMENTS)
    for measurement, (tags, _) in schema.MEASUREMENTS.items():
        assert re.findall(r"`(\w+)`", rows[measurement]) == list(tags), measurement


@pytest.mark.parametrize("name", sorted(valid_messages()))
def test_every_line_is_bounded_in_tags(name: str) -> None:
    for text in lines_of(name):
        measurement = text.split(",", 1)[0]
        tag_keys = [kv.split("=")[0] for kv in text.split(" ", 1)[0].split(",")[1:]]
        assert tag_keys == sorted(schema.MEASUREMENTS[measurement][0])
