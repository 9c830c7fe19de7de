"""Issue 13 end to end: an emulated Polar H10, Verity Sense and PineTime
through bleak (``wellsense collect`` with device profiles), Mosquitto, the
processing service and InfluxDB.

The simulated clock runs 22:40-23:40 UTC at x40: the wearers of the H10 and
the Verity Sense go to bed at 23:00 (the physiology model: lying still from
about 23:15), the PineTime's wearer lives ten time zones east and is out
walking. Checked:

* H10 and Verity Sense: ``accel_epoch`` points (30 and 60 s) and
  ``accel_nonwear`` verdicts stored; the z-angle of the 30-s epochs moves
  while awake and is still (|angle| ~ 83 deg, lying) after 23:20;
* Verity Sense: PPI intervals stored as ``rr`` (the HR service carries none);
* PineTime: steps stored in ``activity``;
* data minimisation: no message on the broker carries raw acceleration
  (every message decodes under the wire contract, which has no raw-ACC
  stream, and the accel traffic is a small fraction of the raw sample
  bytes), and no measurement other than the documented ones is stored.

The daily sleep and rhythm fields from stored epochs (HDCZA nights,
``counts_*_7d``) need a week of data: tests/integration/test_processing_daily.py
checks them through InfluxDB from wire ``accel`` messages.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from collector import wire
from tests.conftest import scratch_dir
from tests.integration.harness import Collector, Emulator, Subscriber, wait_until
from tests.integration.processing_fixture import Pipeline, pipeline

__all__ = ["pipeline"]
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

NS = 1_000_000_000
START_NS = 1_764_110_400 * NS  # 2025-11-25T22:40:00Z
END_NS = START_NS + 60 * 60 * NS
SCALE = 40.0
H10, VERITY, PINE = "C0:FF:EE:00:01:10", "C0:FF:EE:00:01:20", "C0:FF:EE:00:01:30"
SIM_TOML = f"""
[[wearable]]
address = "{H10}"
name = "Polar H10 1A2B3C4D"
device = "polar_h10"
seed = 1
rsc = false
[wearable.profile]
contact_losses_per_hour = 0.0

[[wearable]]
address = "{VERITY}"
name = "Polar Sense 5E6F7A8B"
device = "polar_verity"
seed = 2
rsc = false
[wearable.profile]
contact_losses_per_hour = 0.0

[[wearable]]
address = "{PINE}"
name = "InfiniTime"
device = "pinetime"
seed = 7
rsc = false
[wearable.profile]
utc_offset_h = 10.0
activity_bouts_per_day = 40.0
nonwear_bouts_per_day = 0.0
"""
MEASUREMENTS = {
    "hr",
    "rr",
    "clock",  # the clock quality of each message (docs/storage.md)
    "clock_step",
    "activity",
    "device_status",
    "gateway_health",
    "gateway_sensor",
    "gateway_state",
    "daily",
    "accel_epoch",
    "accel_nonwear",
    "hrv_window",
    "wellsense_self",
}


@pytest.fixture
def workdir() -> Path:
    return scratch_dir("wearables-e2e")


def _collector_config(path: Path, p: Pipeline, data_dir: Path) -> Path:
    sensors = "".join(
        f'\n[[sensor]]\nkey = "{key}"\nparticipant = "{participant}"\n'
        f'address = "{address}"\nprofile = "{profile}"\n'
        for key, participant, address, profile in (
            ("chest", "p-h10", H10, "polar_h10"),
            ("arm", "p-verity", VERITY, "auto"),
            ("wrist", "p-pine", PINE, "pinetime"),
        )
    )
    b = p.broker
    path.write_text(
        f'[gateway]\nstudy = "{p.study}"\nid = "gw-test"\ndata_dir = "{data_dir}"\n'
        f'[mqtt]\nurl = "{b.url}"\nusername = "{b.username}"\nca_file = "{b.ca_file}"\n'
        "[batch]\nmax_interval_s = 1.0\nmax_samples = 50\n"
        "[ble]\nreconnect_min_s = 0.2\nreconnect_max_s = 2\nscan_timeout_s = 5\n"
        f"[health]\ninterval_s = 5\n{sensors}"
    )
    return path


def _sim_now(emulator: Emulator) -> int:
    return int(json.loads(emulator.ctl("clock"))["now_ns"])


def _series(
    p: Pipeline, participant: str, measurement: str, field: str, extra: str = ""
) -> list[tuple[int, float]]:
    rows = p.flux(
        f'|> filter(fn: (r) => r._measurement == "{measurement}" and r._field == "{field}"'
        f' and r.participant == "{participant}"{extra})'
    )
    return sorted((int(r["_time"].timestamp() * NS), float(r["_value"])) for r in rows)


@pytest.mark.usefixtures("pipeline")
def test_h10_verity_and_pinetime_streams_arrive_as_epochs_steps_and_rr(
    workdir: Path, pipeline: Pipeline
) -> None:
    p = pipeline
    sim_toml = workdir / "sim.toml"
    sim_toml.write_text(SIM_TOML)
    emulator = Emulator(
        workdir,
        participants=0,
        time_scale=SCALE,
        extra_args=("--epoch", str(START_NS), "--config", str(sim_toml)),
    )
    config = _collector_config(workdir / "collector.toml", p, workdir / "gw")
    p.start()
    sub = Subscriber(p.broker, f"wellsense/v1/{p.study}/#", client_id=f"sub-{p.study}")
    emulator.start()
    collector = Collector(config, p.broker, emulator, workdir / "collector.log").start()
    started = time.monotonic()
    try:
        wait_until(
            lambda: _sim_now(emulator) >= END_NS,
            (END_NS - START_NS) / NS / SCALE + 90,
            "23:40 simulated",
        )
        stats = {s["address"]: s for s in emulator.stats()}
        assert collector.stop() == 0
        emulator.stop()
        wait_until(
            lambda: p.count("accel_epoch", "angle_z_deg") > 150,
            120,
            "accelerometer epochs in InfluxDB",
        )
        time.sleep(3)  # the last batches
        real_s = time.monotonic() - started
        for participant in ("p-h10", "p-verity"):
            angle = _series(p, participant, "accel_epoch", "angle_z_deg", ' and r.epoch == "30"')
            counts = _series(p, participant, "accel_epoch", "counts_vm", ' and r.epoch == "60"')
            assert len(angle) > 60 and len(counts) > 30, participant
            awake = [a for t, a in angle if t < START_NS + 18 * 60 * NS]
            lying = [a for t, a in angle if t > START_NS + 40 * 60 * NS]
            assert awake and lying
            assert max(awake) - min(awake) > 10  # swaying while up
            assert all(75 < abs(a) < 90 for a in lying)  # lying still
            for side in ([a for a in lying if a > 0], [a for a in lying if a < 0]):
                assert not side or max(side) - min(side) < 3  # still on each side
            assert _series(p, participant, "accel_nonwear", "nonwear")  # verdicts stored
        rr = _series(p, "p-verity", "rr", "rr_ms")
        assert len(rr) > 500 and all(300 <= v <= 2000 for _, v in rr)
        steps = _series(p, "p-pine", "activity", "steps")
        assert sum(v for _, v in steps) > 1000
        measurements = {
            r["_value"]
            for r in p.flux(
                '|> keep(columns: ["_measurement"]) |> group() |> distinct(column: "_measurement")'
            )
        }
        assert measurements <= MEASUREMENTS, measurements - MEASUREMENTS
        # data minimisation on the broker: epochs only, never the raw samples
        assert not sub.invalid
        with sub.lock:
            accel_bytes = sum(len(wire.encode(m)) for m in sub.messages if m.stream == "accel")
            streams = {m.stream for m in sub.messages}
        acc_frames = stats[H10]["acc_frames"] + stats[VERITY]["acc_frames"]
        raw_bytes = acc_frames * 36 * 3 * 2  # int16 x 3 axes, uncompressed
        assert streams <= {"hr", "activity", "status", "accel", "health"}
        assert acc_frames > 5000 and accel_bytes < raw_bytes / 20
        summary = {
            "sim_minutes": 60,
            "time_scale": SCALE,
            "real_s": round(real_s, 1),
            "acc_frames": acc_frames,
            "ppi_frames": stats[VERITY]["ppi_frames"],
            "raw_acc_bytes": raw_bytes,
            "accel_wire_bytes": accel_bytes,
            "epochs_stored": p.count("accel_epoch", "angle_z_deg"),
            "rr_verity": len(rr),
            "steps_pinetime": sum(v for _, v in steps),
        }
        print("wearables-e2e " + json.dumps(summary))
    finally:
        collector.stop()
        emulator.stop()
        sub.close()
