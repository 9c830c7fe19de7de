"""Gateway cost of accelerometer streams, and what leaves the home, as JSON.

For 1, 3 and 7 sensors streaming ACC at 50 Hz, each run in its own child
process (so peak RSS is that configuration's own):

* **WellSense**: delta-compressed PMD frames as a Polar H10 sends them
  (frame type 1, milli-g, 36 samples a frame; encoded by
  ``wellsense_sim.pmd_frames``), decoded by ``collector.gatt.parse_pmd_frame``
  and reduced by ``collector.accel_epochs.AccEpochReducer`` to 30/60-s epochs
  (ENMO, MAD, counts, z-angle) and 15-min non-wear records;
* **peer**: ``agcounts.extract.get_counts`` (ActiGraph's implementation of the
  same counts), run in one batch on the same samples already decoded to g,
  30-s epochs: counts only, no parsing, no other features.

CPU share of a core = CPU seconds (user + system) / seconds of data streamed,
with the data pushed as fast as the process can take it; peak RSS from
``getrusage``, next to the RSS after imports (NumPy + SciPy's ``signal``
module are most of it) and after the test data is built.

Bytes per participant-day (one sensor) for a synthetic day of 8 h lying still
(2 mg noise) and 16 h of alternating walking and standing: the PMD frames as
received (raw), and the epoch and non-wear records as compact JSON (what the
gateway would send instead).

Run: ``.venv/bin/python bench/gateway_acc.py [--seconds 600]``. The signal is
synthetic (no raw H10 recording is available to this project); frame size and
compression depend on it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# bench/collector.py would shadow the collector package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FS = 50
PER_FRAME = 36
NS = 1_000_000_000
SENSOR_T0 = 599_616_023_171_427_290
GATEWAY_T0 = 1_780_000_020 * NS


def _signal(seconds: float, seed: int, still: bool = False) -> np.ndarray:
    """Milli-g (n, 3) ints: walking/standing bouts, or lying still."""
    rng = np.random.default_rng(seed)
    n = round(seconds * FS)
    if still:
        acc = np.tile([0.0, 0.98, 0.2], (n, 1)) + 0.002 * rng.standard_normal((n, 3))
    else:
        t = np.arange(n) / FS
        walking = np.sin(2 * np.pi * 0.01 * t + seed) > 0
        acc = np.column_stack(
            [
                0.3 * np.sin(2 * np.pi * 1.8 * t) * walking,
                0.05 * np.sin(2 * np.pi * 0.25 * t),
                1 + 0.5 * np.sin(2 * np.pi * 1.8 * t + 0.3) * walking,
            ]
        ) + 0.01 * rng.standard_normal((n, 3))
    return np.round(acc * 1000).astype(np.int64)


def _frames(mg: np.ndarray) -> list[tuple[bytes, int]]:
    """(frame, gateway receive ns) pairs, 30 ms after each frame's last sample."""
    from wellsense_sim.pmd_frames import encode_delta_frame

    out = []
    for i in range(0, mg.shape[0], PER_FRAME):
        chunk = mg[i : i + PER_FRAME]
        last = i + chunk.shape[0] - 1
        frame = encode_delta_frame(SENSOR_T0 + last * NS // FS, chunk.tolist())
        out.append((frame, GATEWAY_T0 + last * NS // FS + 30_000_000))
    return out


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def child(kind: str, sensors: int, seconds: float) -> dict[str, float]:
    """One measured configuration, in this (child) process."""
    if kind == "wellsense":
        from collector.accel_epochs import AccEpochReducer
        from collector.gatt import parse_pmd_frame

        rss_imports = _rss_kib()
        streams = [_frames(_signal(seconds, seed=s)) for s in range(sensors)]
        reducer = AccEpochReducer()
        for s in range(sensors):
            reducer.start(f"s{s}", fs_hz=FS, factor=1.0)
        rss_ready = _rss_kib()
        records = 0
        t0 = time.process_time()
        for k in range(len(streams[0])):  # interleaved, as notifications arrive
            for s in range(sensors):
                data, rx_ns = streams[s][k]
                records += len(reducer.add_frame(f"s{s}", parse_pmd_frame(data), rx_ns))
        for s in range(sensors):
            records += len(reducer.close(f"s{s}"))
        cpu = time.process_time() - t0
    else:
        from agcounts.extract import get_counts

        rss_imports = _rss_kib()
        data_g = [_signal(seconds, seed=s) / 1000.0 for s in range(sensors)]
        rss_ready = _rss_kib()
        t0 = time.process_time()
        records = sum(len(get_counts(a, freq=FS, epoch=30)) for a in data_g)
        cpu = time.process_time() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "cpu_s": round(cpu, 3),
        "cpu_share_of_core": round(cpu / seconds, 5),
        "peak_rss_mib": round(peak / 1024, 1),
        "rss_after_imports_mib": round(rss_imports / 1024, 1),
        "rss_after_setup_mib": round(rss_ready / 1024, 1),
        "records": records,
    }


def bytes_per_day(minutes_each: float = 10.0) -> dict[str, float]:
    """Raw PMD frame bytes and epoch JSON bytes for one sensor-day, scaled from
    ``minutes_each`` minutes of each regime (8 h still, 16 h active)."""
    from collector.accel_epochs import AccEpochReducer, EpochRecord
    from collector.gatt import parse_pmd_frame

    seconds = minutes_each * 60
    raw = {}
    for regime, hours in (("still", 8), ("active", 16)):
        frames = _frames(_signal(seconds, seed=1, still=regime == "still"))
        raw[regime] = sum(len(f) for f, _ in frames) * hours * 3600 / seconds
    reducer = AccEpochReducer()
    reducer.start("p01-h10", fs_hz=FS, factor=1.0)
    # one JSON line per record; mean sizes from an hour, times the records of a day
    sizes: dict[object, list[int]] = {30: [], 60: [], "nonwear": []}
    for data, rx_ns in _frames(_signal(3600, seed=2)):
        for rec in reducer.add_frame("p01-h10", parse_pmd_frame(data), rx_ns):
            key = rec.epoch_s if isinstance(rec, EpochRecord) else "nonwear"
            sizes[key].append(len(rec.to_json()) + 1)
    per_day = {30: 2880, 60: 1440, "nonwear": 96}
    epochs_day = sum(float(np.mean(sizes[k])) * n for k, n in per_day.items())
    raw_day = raw["still"] + raw["active"]
    samples_day = FS * 86400
    return {
        "raw_pmd_frames_bytes": round(raw_day),
        "raw_bytes_per_sample": round(raw_day / samples_day, 3),
        "epochs_json_bytes": round(epochs_day),
        "with_raw_bytes": round(raw_day + epochs_day),
        "without_raw_bytes": round(epochs_day),
        "reduction_factor": round((raw_day + epochs_day) / epochs_day, 1),
        "uncompressed_int16_bytes_for_comparison": samples_day * 6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="data streamed per sensor")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "SENSORS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.seconds)))
        return 0
    runs: dict[str, dict[str, dict[str, float]]] = {"wellsense": {}, "peer_agcounts": {}}
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    for kind, key in (("wellsense", "wellsense"), ("agcounts", "peer_agcounts")):
        for n in (1, 3, 7):
            cmd = [
                sys.executable,
                __file__,
                "--seconds",
                str(args.seconds),
                "--child",
                kind,
                str(n),
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
            runs[key][f"{n}_sensors"] = json.loads(out.stdout.strip().splitlines()[-1])
    result = {
        "what": "ACC 50 Hz per sensor: PMD delta frames -> parse -> epochs + non-wear",
        "peer": "agcounts.extract.get_counts (ActiGraph), counts only, batch, same samples",
        "seconds_streamed_per_sensor": args.seconds,
        "frame_samples": PER_FRAME,
        "machine": f"{platform.machine()} {platform.python_implementation()} "
        f"{platform.python_version()}",
        "cpu_and_memory": runs,
        "bytes_per_participant_day": bytes_per_day(),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
