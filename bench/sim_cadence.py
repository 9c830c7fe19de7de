"""How fast can simulated straps notify at 1 s of sim time each, and how true are arrival times?

For each time compression and number of straps: the emulator runs as its
own process (``python -m wellsense_sim run``) on a private D-Bus, each strap
replaying a real recording (nsr2db nsr001 from hour 1, so always worn) on
its own 1 s cadence with 0-50 ms BLE latency; in this process bleak's
real BlueZ backend (the collector's :class:`collector.ble.DeviceManager`)
receives the notifications and timestamps them on the shared sim clock,
as the gateway does. The emulator's truth log gives, per notification, the
true arrival time the model intended.

Printed (JSON): notifications per real second offered and received,
whether the received RR values are those sent, in order, and the error of
the gateway's arrival timestamps against the true arrival times, in sim
ms (median, p99, max) and real ms. The peer is the strap model itself: BLE
latency is 0-50 ms, so an arrival error well below 50 ms sim adds nothing
a real gateway would not see; a larger one is transport delay multiplied
by the time compression, which the gateway's beat clock must treat as
latency.

    python bench/sim_cadence.py --seconds 10 --scales 1,60,180,360,720 --straps 1,3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from collector.ble import (  # noqa: E402
    HEART_RATE_MEASUREMENT,
    DeviceManager,
    ManagerOptions,
    SensorSpec,
    sim_clock_ns,
)
from collector.ble_events import RawNotification  # noqa: E402
from collector.gatt import parse_heart_rate_measurement  # noqa: E402
from wellsense_sim import private_bus  # noqa: E402


def _recording() -> Path:
    base = Path(os.environ.get("WELLSENSE_SHARED_DATA", REPO.parent / "shared" / "data"))
    path = base / "rr" / "nsr2db" / "nsr001_rr_secs.txt.gz"
    if not path.exists():
        sys.exit(f"real data not available: {path} (set WELLSENSE_SHARED_DATA)")
    return path


async def _receive(env: dict[str, str], straps: int, seconds: float) -> list[RawNotification]:
    clock = sim_clock_ns(int(env["WELLSENSE_SIM_EPOCH_NS"]),
                         float(env["WELLSENSE_SIM_TIME_SCALE"]),
                         int(env["WELLSENSE_SIM_ANCHOR_NS"]))
    sensors = [SensorSpec(f"s{i}", address=f"C0:FF:EE:00:00:{i:02X}")
               for i in range(1, straps + 1)]
    options = ManagerOptions(scan_timeout_s=5.0, battery_interval_s=3600.0,
                             queue_maxsize=1_000_000)
    out: list[RawNotification] = []
    async with DeviceManager(sensors, clock_ns=clock, options=options) as manager:
        deadline = time.monotonic() + seconds + 10.0  # connecting takes a moment
        while time.monotonic() < deadline:
            try:
                async with asyncio.timeout(deadline - time.monotonic()):
                    item = await manager.queue.get()
            except TimeoutError:
                break
            if isinstance(item, RawNotification) and item.char_uuid == HEART_RATE_MEASUREMENT:
                out.append(item)
    return out


def decode_rr_ms(data: bytes) -> list[float]:
    """RR values of a Heart Rate Measurement, decoded as the collector does."""
    return list(parse_heart_rate_measurement(data).rr_ms)


def run_one(scale: float, straps: int, seconds: float, directory: Path) -> dict[str, Any]:
    truth_path = directory / f"truth-{scale:g}-{straps}.jsonl"
    rec = _recording()
    with private_bus() as bus:
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = bus
        env_file = directory / "sim.env"
        env_file.unlink(missing_ok=True)
        wearables = [a for i in range(1, straps + 1) for a in (
            "--wearable", f"C0:FF:EE:00:00:{i:02X},seed={i},rsc=false,replay={rec},"
                          f"replay_offset_s={3600 + 600 * i}")]
        proc = subprocess.Popen(
            [sys.executable, "-m", "wellsense_sim", "run", "--bus", bus, "--time-scale",
             str(scale), "--truth-log", str(truth_path), "--env-file", str(env_file),
             *wearables],
            stdout=subprocess.DEVNULL, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        try:
            while not env_file.exists():
                time.sleep(0.05)
            time.sleep(0.1)
            env = dict(line.split("=", 1) for line in env_file.read_text().splitlines()
                       if "=" in line)
            received = asyncio.run(_receive(env, straps, seconds))
        finally:
            proc.terminate()
            proc.wait(30)
    truth = [json.loads(line) for line in truth_path.read_text().splitlines()]
    delivered = [r for r in truth if r["fate"] == "delivered"]
    by_device: dict[str, list[tuple[int, list[float]]]] = {}
    for r in sorted(delivered, key=lambda r: (r["connection"], r["index"])):
        by_device.setdefault(r["address"][-2:], []).append((r["received_ns"], r["rr_ms"]))
    seen: dict[str, list[tuple[int, list[float]]]] = {}
    for item in received:
        seen.setdefault(f"{int(item.sensor_key[1:]):02X}", []).append(
            (item.received_ns, decode_rr_ms(item.data)))
    errors_ms: list[float] = []
    in_order = True
    for key, sent in by_device.items():
        got = seen.get(key, [])
        # the receiver stops first: what it got must be the start of what was delivered
        in_order &= [rr for _, rr in got] == [rr for _, rr in sent[: len(got)]]
        errors_ms += [(g - t) / 1e6 for (g, _), (t, _) in zip(got, sent, strict=False)]
    span_s = (max(r["delivered_ns"] for r in delivered) - min(r["delivered_ns"] for r in delivered)
              ) / 1e9 / scale if delivered else 0.0
    errors_ms.sort()
    q = (lambda p: errors_ms[min(len(errors_ms) - 1, int(p * len(errors_ms)))]) if errors_ms \
        else (lambda p: float("nan"))
    return {
        "time_scale": scale,
        "straps": straps,
        "notifications_delivered": len(delivered),
        "notifications_received": len(received),
        "received_in_order_with_the_sent_rr": in_order,
        "offered_per_real_s": round(straps * scale, 1),
        "received_per_real_s": round(len(received) / span_s, 1) if span_s else None,
        "arrival_error_sim_ms": {"median": round(statistics.median(errors_ms), 2) if errors_ms
                                 else None, "p99": round(q(0.99), 2), "max": round(q(1.0), 2)},
        "arrival_error_real_ms": {"median": round(statistics.median(errors_ms) / scale, 3)
                                  if errors_ms else None, "p99": round(q(0.99) / scale, 3),
                                  "max": round(q(1.0) / scale, 3)},
        "emulator_late_deliveries": sum(
            1 for r in delivered if r["delivered_ns"] - r["received_ns"] > 50e6),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="real seconds per run")
    parser.add_argument("--scales", default="1,60,180,360,720")
    parser.add_argument("--straps", default="1,3")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="wellsense-bench-") as tmp:
        for straps in (int(s) for s in args.straps.split(",")):
            for scale in (float(s) for s in args.scales.split(",")):
                results.append(run_one(scale, straps, args.seconds, Path(tmp)))
                print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"bench": "sim_cadence", "seconds_per_run": args.seconds,
                      "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
