"""Done-when check of the beat clock on real recordings sent as a strap sends them.

Real RR recordings (nsr2db, chf2db, healthy-irurzun) go through the strap model
at 1 s cadence, +50 ppm drift, 0-50 ms latency, 1 % of notifications lost; HRV
windows from the beat clock's times must agree with those from the true beat
times (RMSSD within 2 % with every feature defined) on >= 95 % of windows, and
no beat may be placed more than 1.5 s from its true time (up to a constant
offset). The old placement (pinned to arrival) is run alongside to show the
check tells them apart. Uses bench/hrv_live.py's code; skips without the data.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from tests.unit.features_data import require

BENCH = Path(__file__).resolve().parents[2] / "bench" / "hrv_live.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_hrv_live", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_beat_clock_windows_agree_with_true_beat_times_on_real_recordings() -> None:
    root = require("rr").parent
    bench = _bench()
    segments = bench.load_segments(root, per_set=2, hours=1.5, offset_hours=1.0)
    assert len(segments) == 6 and all(rr.size > 3000 for _, rr in segments)
    result = bench.run_setting(segments, latency_ms=50.0, loss=0.01)
    ours, pinned = result["beat_clock"], result["pinned"]
    assert ours["windows"] >= 100
    assert ours["windows_agreeing"] >= 0.95
    assert ours["worst_placement_error_ms"] <= 1500.0
    assert ours["falsely_successive"] == 0
    assert ours["successive_kept"] > 0.95
    # the check can fail: the old placement fails it
    assert pinned["windows_agreeing"] < 0.5 and pinned["successive_kept"] < 0.5
