"""Gateway reduction of PMD ACC frames to epochs (collector/accel_epochs.py).

Frames are encoded as a Polar H10 sends them (delta-compressed type 1,
milli-g, factor 1.0; wellsense_sim.pmd_frames), decoded by the real parser,
and the reducer's records are compared with the batch feature functions on
the same samples.
"""

from __future__ import annotations

import numpy as np
import pytest

from collector.accel_epochs import AccEpochReducer, EpochRecord, NonwearRecord
from collector.gatt import parse_pmd_frame
from processing.features.accel import (
    activity_counts,
    angle_z_deg,
    enmo_mg,
    mad_mg,
    nonwear_blocks,
)
from wellsense_sim.pmd_frames import encode_delta_frame

FS = 50
NS = 1_000_000_000
GATEWAY_T0 = 1_780_000_020 * NS  # on a 60-s boundary
SENSOR_T0 = 599_616_023_171_427_290  # arbitrary sensor clock
PER_FRAME = 36


def _signal(minutes_table: float, minutes_worn: float) -> np.ndarray:
    rng = np.random.default_rng(5)
    n_table = round(FS * 60 * minutes_table)
    table = np.tile([0.0, 0.0, 1.0], (n_table, 1)) + 0.001 * rng.standard_normal((n_table, 3))
    t = np.arange(round(FS * 60 * minutes_worn)) / FS
    walking = np.sin(2 * np.pi * 0.01 * t) > 0
    worn = np.column_stack(
        [
            0.3 * np.sin(2 * np.pi * 1.8 * t) * walking,
            0.1 * np.sin(2 * np.pi * 0.25 * t),  # breathing-like sway
            1 + 0.5 * np.sin(2 * np.pi * 1.8 * t + 0.3) * walking,
        ]
    ) + 0.02 * rng.standard_normal((t.size, 3))
    return np.round(np.vstack([table, worn]) * 1000) / 1000  # what milli-g frames carry


def _feed(
    reducer: AccEpochReducer, acc_g: np.ndarray, *, skip: range = range(0), latency_ms: int = 30
) -> list[EpochRecord | NonwearRecord]:
    return _feed_open(reducer, acc_g, skip=skip, latency_ms=latency_ms) + reducer.close("p01-h10")


def _feed_open(
    reducer: AccEpochReducer, acc_g: np.ndarray, *, skip: range = range(0), latency_ms: int = 30
) -> list[EpochRecord | NonwearRecord]:
    rng = np.random.default_rng(1)
    mg = np.round(acc_g * 1000).astype(int)
    out: list[EpochRecord | NonwearRecord] = []
    reducer.start("p01-h10", fs_hz=FS, factor=1.0)
    for f, i in enumerate(range(0, mg.shape[0], PER_FRAME)):
        chunk = mg[i : i + PER_FRAME]
        last = i + chunk.shape[0] - 1
        sensor_ts = SENSOR_T0 + last * NS // FS
        if f in skip:
            continue
        frame = parse_pmd_frame(encode_delta_frame(sensor_ts, chunk.tolist()))
        # gateway receives it 0..latency_ms after its last sample; one frame early on is on time
        delay = 0 if f == 0 else int(rng.integers(0, latency_ms)) * 1_000_000
        out += reducer.add_frame("p01-h10", frame, GATEWAY_T0 + last * NS // FS + delay)
    return out


def test_epochs_equal_batch_features() -> None:
    acc = _signal(0, 12)
    records = _feed(AccEpochReducer(), acc)
    e30 = [r for r in records if isinstance(r, EpochRecord) and r.epoch_s == 30]
    e60 = [r for r in records if isinstance(r, EpochRecord) and r.epoch_s == 60]
    assert len(e30) == 24 and len(e60) == 12
    # gateway time = sensor time + the smallest recent latency (0-30 ms here)
    late_ns = np.array([r.start_ns - (GATEWAY_T0 + k * 30 * NS) for k, r in enumerate(e30)])
    assert (late_ns >= 0).all() and (late_ns < 30_000_000).all()
    assert [r.start_ns for r in e60] == [r.start_ns for r in e30[::2]]
    for size, recs in ((30, e30), (60, e60)):
        got = {k: np.array([r.features[k] for r in recs]) for k in recs[0].features}
        np.testing.assert_allclose(got["enmo_mg"], enmo_mg(acc, FS, size), rtol=1e-9)
        np.testing.assert_allclose(got["mad_mg"], mad_mg(acc, FS, size), rtol=1e-9)
        counts = activity_counts(acc, FS, size)
        for i, axis in enumerate("xyz"):
            np.testing.assert_allclose(got[f"counts_{axis}"], counts[:, i], rtol=0, atol=1e-6)
        # the 5-s medians of the z-angle are taken within each epoch
        per_epoch = [angle_z_deg(acc[k * size * FS : (k + 1) * size * FS], FS, size)[0]
                     for k in range(len(recs))]  # fmt: skip
        np.testing.assert_allclose(got["angle_z_deg"], per_epoch, rtol=1e-9)
        assert got["counts_x"].sum() > 0
    assert set(e30[0].features) == {
        "enmo_mg", "mad_mg", "counts_x", "counts_y", "counts_z", "counts_vm", "angle_z_deg",
    }  # fmt: skip


def test_nonwear_equals_batch() -> None:
    acc = _signal(120, 120)
    records = _feed(AccEpochReducer(), acc)
    blocks = [r for r in records if isinstance(r, NonwearRecord)]
    expected = nonwear_blocks(acc, FS)
    assert [b.nonwear for b in blocks] == expected.tolist()
    assert expected[:6].all() and not expected[6:].any()
    late_ns = np.array([b.start_ns - (GATEWAY_T0 + k * 900 * NS) for k, b in enumerate(blocks)])
    assert len(blocks) == 16 and (late_ns >= 0).all() and (late_ns < 30_000_000).all()
    # the last blocks were judged at close, on a clipped window
    assert [b.window_complete for b in blocks] == [False] * 2 + [True] * 12 + [False] * 2


def test_gap_starts_a_new_aligned_segment() -> None:
    acc = _signal(0, 5)
    # lose ~10 s of frames in the second minute
    records = _feed(AccEpochReducer(), acc, skip=range(100, 114))
    e30 = [r for r in records if isinstance(r, EpochRecord) and r.epoch_s == 30]
    starts = [round((r.start_ns - GATEWAY_T0) / NS) for r in e30]
    # epochs 0-1 before the gap; the one with the gap is dropped; the new segment
    # starts at the next 30-s boundary after the gap (90 s)
    assert starts[:2] == [0.0, 30.0]
    assert 60.0 not in starts
    assert starts[2:] == [90.0 + 30 * k for k in range(len(starts) - 2)]
    assert all(r.n_samples == 30 * FS for r in e30)


def test_clock_offset_is_minimum_latency() -> None:
    acc = _signal(0, 2)
    reducer = AccEpochReducer()
    reducer.start("s", fs_hz=FS, factor=1.0)
    mg = np.round(acc * 1000).astype(int)
    recs: list[EpochRecord | NonwearRecord] = []
    for i in range(0, mg.shape[0], PER_FRAME):
        last = i + min(PER_FRAME, mg.shape[0] - i) - 1
        frame = parse_pmd_frame(
            encode_delta_frame(SENSOR_T0 + last * NS // FS, mg[i : i + PER_FRAME].tolist())
        )
        recs += reducer.add_frame("s", frame, GATEWAY_T0 + last * NS // FS + 45_000_000)  # 45 ms
    first = next(r for r in recs if isinstance(r, EpochRecord))
    # constant 45-ms latency: gateway times are late by 45 ms, and the first
    # sample kept is the first one at or after the 30-s boundary
    assert 0 <= first.start_ns - (GATEWAY_T0 + 30 * NS) < NS // FS + 45_000_000


def test_rejects_other_measurements_and_rates() -> None:
    reducer = AccEpochReducer()
    with pytest.raises(ValueError, match="whole"):
        reducer.start("s", fs_hz=52.55, factor=1.0)
    reducer.start("s", fs_hz=FS, factor=1.0)
    ppi = parse_pmd_frame(b"\x03" + bytes(9) + bytes.fromhex("50 2003 1400 06"))
    with pytest.raises(ValueError, match="not ACC"):
        reducer.add_frame("s", ppi, GATEWAY_T0)
    assert reducer.close("unknown") == []


def test_memory_is_bounded() -> None:
    # After 100 min, at most a 60-min window of per-epoch sums and two epochs of raw samples remain.
    reducer = AccEpochReducer()
    records = _feed_open(reducer, _signal(0, 100))
    seg = reducer._sensors["p01-h10"].segment
    assert seg is not None and len(seg.stats) <= 8 * 15
    assert seg.buffered < 30 * FS
    assert sum(isinstance(r, NonwearRecord) for r in records) == 5


def test_records_as_json() -> None:
    import json

    rec = EpochRecord("p01-h10", 5, 30, 1500, {"enmo_mg": 12.34567, "counts_x": 140.0})
    assert json.loads(rec.to_json()) == {
        "sensor": "p01-h10", "start_ns": 5, "epoch_s": 30, "enmo_mg": 12.346, "counts_x": 140,
    }  # fmt: skip
    block = NonwearRecord("p01-h10", 5, 900, nonwear=True, window_complete=False)
    assert json.loads(block.to_json())["nonwear"] is True
