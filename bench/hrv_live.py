"""Benchmark: HRV from live strap notifications vs HRV from the true beat times.

Usage: ``.venv/bin/python bench/hrv_live.py [--per-set 3] [--hours 2] [--offset-hours 1]``

Real RR recordings (``$WELLSENSE_SHARED_DATA/rr``: nsr2db, chf2db,
healthy-irurzun; a segment of each) are sent through the strap model of
``wellsense_sim.strap`` as a real chest strap sends them: its own 1 s cadence
on a clock drifting +50 ppm, RR in 1/1024 s ticks, BLE latency uniform in
0..{0, 20, 50} ms, {0, 1, 5} % of notifications lost. The gateway side places
the received beats two ways:

* ``beat_clock``: ``collector.beats.BeatClock`` (what the collector does);
* ``pinned`` (the named peer, the placement before it): the last RR of each
  notification ends at the notification's arrival
  (``collector.wire.rr_beat_times_ns(received_ns, rr)``).

Truth is the same received RR values at the true times of their beats (beats
of lost notifications are missing from both). For each setting it reports,
per placement:

* ``successive_kept``: of the pairs of received beats that are truly
  successive (``|dt_true - RR| <= 10 ms``, processing's test), the fraction
  the placement keeps successive; ``falsely_successive``: pairs it calls
  successive that are not;
* ``worst_placement_error_ms``: the largest ``|placed - true|`` after removing
  a constant offset (the median, per recording);
* windows (5 min, epoch-aligned, ``processing.features.hrv.hrv_windows`` on
  each placement's times): ``windows_agreeing``, the fraction of windows whose
  truth has every feature defined where the placement also has every feature
  defined and RMSSD within 2 %; ``window_error`` per feature, p95 and worst
  relative error over windows defined in both (pNN50: absolute, in points).

Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collector.beats import BeatClock
from collector.wire import rr_beat_times_ns
from processing.features.hrv import HRV_KEYS, hrv_windows
from processing.features.io import read_rr
from wellsense_sim.strap import NS_PER_S, StrapParams, beats_from_rr, notify_beats

T0_NS = 1_764_000_000 * NS_PER_S
WINDOW_S = 300
TOLERANCE_MS = 10.0
RMSSD_AGREEMENT = 0.02
PLACEMENTS = ("beat_clock", "pinned")
SETS = (
    ("nsr2db", "*.txt.gz", "s", True),
    ("chf2db", "*.txt.gz", "s", True),
    ("healthy-irurzun", "*.txt", "ms", False),
)


def data_root() -> Path:
    env = os.environ.get("WELLSENSE_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def load_segments(
    root: Path, per_set: int, hours: float, offset_hours: float
) -> list[tuple[str, np.ndarray]]:
    """(name, RR in ms) of a ``hours`` segment starting ``offset_hours`` into each record."""
    out = []
    for folder, pattern, unit, skip in SETS:
        for path in sorted((root / "rr" / folder).glob(pattern))[:per_set]:
            rr = read_rr(path, unit=unit, skip_first=skip).rr_ms
            rr = rr[np.isfinite(rr) & (rr > 0)]
            t_h = np.cumsum(rr) / 3.6e6
            seg = rr[(t_h > offset_hours) & (t_h <= offset_hours + hours)]
            out.append((f"{folder}/{path.name}", seg))
    return out


@dataclass(frozen=True, slots=True)
class Received:
    """The received beats of one recording: RR, true times, and each placement."""

    rr_ms: np.ndarray
    true_ns: np.ndarray
    placed_ns: dict[str, np.ndarray]


def send(rr_ms: Sequence[float], params: StrapParams, start_ns: int = T0_NS) -> Received:
    """Send a recording through the strap model; place what arrives both ways."""
    notes = notify_beats(beats_from_rr(rr_ms, start_ns=start_ns), params, start_ns=start_ns)
    clock = BeatClock()
    rr: list[float] = []
    true: list[int] = []
    ours: list[int] = []
    pinned: list[int] = []
    for n in notes:
        if n.lost:
            continue
        ours += clock.add(n.received_ns, n.rr_ms)
        pinned += rr_beat_times_ns(n.received_ns, n.rr_ms)
        rr += n.rr_ms
        true += n.beat_ns
    return Received(
        rr_ms=np.asarray(rr),
        true_ns=np.asarray(true, dtype=np.int64),
        placed_ns={
            "beat_clock": np.asarray(ours, dtype=np.int64),
            "pinned": np.asarray(pinned, dtype=np.int64),
        },
    )


def _successive(t_ns: np.ndarray, rr_ms: np.ndarray) -> np.ndarray:
    """Processing's time test for each pair (k-1, k)."""
    dt_ms = np.diff(t_ns).astype(np.float64) / 1e6
    return np.abs(dt_ms - rr_ms[1:]) <= TOLERANCE_MS


def _windows(t_ns: np.ndarray, rr_ms: np.ndarray, origin_ns: int) -> dict[int, dict[str, float]]:
    """Features by window start (s since origin), windows aligned to ``origin_ns``."""
    t_s = (t_ns - origin_ns).astype(np.float64) / 1e9
    order = np.argsort(t_s, kind="stable")
    win = hrv_windows(t_s[order], rr_ms[order], window_s=WINDOW_S, origin_s=0.0)
    out = {}
    for row in win.rows():
        if row["n_beats"]:
            out[round(row["start_s"])] = {k: float(row[k]) for k in HRV_KEYS}
    return out


@dataclass(slots=True)
class Tally:
    """Counts of one placement over recordings."""

    truly: int = 0
    kept: int = 0
    false: int = 0
    pairs: int = 0
    worst_ns: int = 0
    windows: int = 0
    agreeing: int = 0
    errors: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in HRV_KEYS})


def compare(rec: Received, tallies: dict[str, Tally]) -> None:
    """Add one recording's comparison of each placement with the truth."""
    truth_succ = _successive(rec.true_ns, rec.rr_ms)
    origin = int(rec.true_ns[0]) - int(rec.true_ns[0]) % (WINDOW_S * NS_PER_S)
    truth = _windows(rec.true_ns, rec.rr_ms, origin)
    complete = {s: f for s, f in truth.items() if all(np.isfinite(v) for v in f.values())}
    for name, placed in rec.placed_ns.items():
        tally = tallies[name]
        succ = _successive(placed, rec.rr_ms)
        tally.pairs += truth_succ.size
        tally.truly += int(np.count_nonzero(truth_succ))
        tally.kept += int(np.count_nonzero(truth_succ & succ))
        tally.false += int(np.count_nonzero(succ & ~truth_succ))
        err = placed - rec.true_ns
        err = err - int(np.median(err))
        tally.worst_ns = max(tally.worst_ns, int(np.max(np.abs(err))))
        ours = _windows(placed, rec.rr_ms, origin)
        for start, want in complete.items():
            got = ours.get(start)
            tally.windows += 1
            if got is None:
                continue
            rmssd_err = abs(got["rmssd_ms"] / want["rmssd_ms"] - 1.0)
            if all(np.isfinite(v) for v in got.values()) and rmssd_err <= RMSSD_AGREEMENT:
                tally.agreeing += 1
            for key in HRV_KEYS:
                if np.isfinite(got[key]):
                    diff = abs(got[key] - want[key])
                    rel = diff if key == "pnn50_pct" else diff / max(abs(want[key]), 1e-12)
                    tally.errors[key].append(rel)


def summary(tally: Tally) -> dict[str, object]:
    def stats(values: list[float]) -> dict[str, float | None]:
        if not values:
            return {"p95": None, "worst": None}
        a = np.asarray(values)
        return {"p95": round(float(np.percentile(a, 95)), 6), "worst": round(float(a.max()), 6)}

    return {
        "successive_kept": round(tally.kept / tally.truly, 5) if tally.truly else None,
        "falsely_successive": tally.false,
        "pairs": tally.pairs,
        "worst_placement_error_ms": round(tally.worst_ns / 1e6, 3),
        "windows": tally.windows,
        "windows_agreeing": round(tally.agreeing / tally.windows, 4) if tally.windows else None,
        "window_error": {k: stats(v) for k, v in tally.errors.items()},
    }


def run_setting(
    segments: Sequence[tuple[str, np.ndarray]], latency_ms: float, loss: float, seed: int = 0
) -> dict[str, dict[str, object]]:
    """Both placements over every segment for one latency and loss."""
    tallies = {name: Tally() for name in PLACEMENTS}
    for i, (_, rr) in enumerate(segments):
        params = StrapParams(
            period_s=1.0,
            drift_ppm=50.0,
            latency_ms=(0.0, latency_ms),
            loss=loss,
            seed=f"{seed}:{i}",
        )
        compare(send(rr, params), tallies)
    return {name: summary(t) for name, t in tallies.items()}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-set", type=int, default=4, help="records per data set (default 4)")
    p.add_argument("--hours", type=float, default=4.0, help="segment length in h (default 4)")
    p.add_argument("--offset-hours", type=float, default=1.0, help="segment start (default 1 h)")
    args = p.parse_args(argv)
    root = data_root()
    if not (root / "rr").exists():
        print(f"real data not available: {root / 'rr'}", file=sys.stderr)
        return 2
    segments = load_segments(root, args.per_set, args.hours, args.offset_hours)
    started = time.perf_counter()
    results = []
    for latency_ms in (0.0, 20.0, 50.0):
        for loss in (0.0, 0.01, 0.05):
            results.append(
                {
                    "latency_ms_max": latency_ms,
                    "lost_notifications": loss,
                    **run_setting(segments, latency_ms, loss),
                }
            )
    out = {
        "strap": {"period_s": 1.0, "drift_ppm": 50.0, "rr_resolution_ms": 1000 / 1024},
        "records": [name for name, _ in segments],
        "segment_hours": args.hours,
        "beats": int(sum(rr.size for _, rr in segments)),
        "window_s": WINDOW_S,
        "peer": "pinned: last RR of a notification ends at its arrival (placement before v1.1)",
        "results": results,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
