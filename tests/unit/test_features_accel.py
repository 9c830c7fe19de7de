"""Epoch features from raw acceleration (processing/features/accel.py).

Counts are compared with the ``agcounts`` package (ActiGraph's own Python
implementation of Brønd et al. 2017, a dev dependency) on the same input.
The ActiLife reference counts in agcounts' repository (data/ActiLifeCounts)
need that repository's raw input files, which the installed package does
not ship, so they are not compared here; agcounts' own tests assert that
its counts equal them.
"""

from __future__ import annotations

import numpy as np
import pytest

from processing.features.accel import (
    ACC_EPOCH_KEYS,
    CountsStream,
    activity_counts,
    angle_z_deg,
    enmo_mg,
    epoch_features,
    mad_mg,
    nonwear_blocks,
    vector_magnitude_g,
)


def _walk_and_rest(fs_hz: float, minutes: float, seed: int = 1) -> np.ndarray:
    """Alternating ~25-s bouts of 1.8-Hz gait-like motion and quiet standing, with 20 mg noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(fs_hz * 60 * minutes)) / fs_hz
    walking = np.sin(2 * np.pi * 0.02 * t) > 0
    noise = 0.02 * rng.standard_normal((t.size, 3))
    x = 0.3 * np.sin(2 * np.pi * 1.8 * t) * walking
    y = 0.2 * np.sin(2 * np.pi * 0.9 * t + 1) * walking
    z = 1 + 0.5 * np.sin(2 * np.pi * 1.8 * t + 0.3) * walking
    return np.column_stack([x, y, z]) + noise


# -- ENMO and MAD: hand-computed values -------------------------------------------------


def test_enmo_and_mad_by_hand() -> None:
    # |a| alternates 1.5 g and 0.5 g: ENMO = mean(0.5, 0) = 250 mg; MAD = mean(0.5, 0.5) = 500 mg.
    acc = np.tile([[0.0, 0.0, 1.5], [0.0, 0.5, 0.0]], (50, 1))  # 100 samples = 2 s at 50 Hz
    assert enmo_mg(acc, 50, 1) == pytest.approx([250.0, 250.0])
    assert mad_mg(acc, 50, 1) == pytest.approx([500.0, 500.0])
    still = np.tile([0.6, 0.0, 0.8], (1500, 1))  # 1 g, any orientation
    assert enmo_mg(still, 50, 30) == pytest.approx([0.0], abs=1e-9)
    assert mad_mg(still, 50, 30) == pytest.approx([0.0], abs=1e-9)


def test_enmo_matches_definition_on_random_data() -> None:
    acc = np.random.default_rng(3).normal(0, 0.7, (3000, 3))
    r = np.sqrt((acc**2).sum(axis=1))
    expected = [1000 * np.maximum(r[i : i + 1500] - 1, 0).mean() for i in (0, 1500)]
    assert enmo_mg(acc, 50, 30) == pytest.approx(expected, rel=1e-12)
    assert vector_magnitude_g(acc) == pytest.approx(r, rel=1e-12)


def test_partial_epoch_dropped_and_bad_shapes() -> None:
    acc = _walk_and_rest(50, 1.5)  # 90 s -> one 60-s epoch, three 30-s epochs
    assert len(enmo_mg(acc, 50, 60)) == 1 and len(mad_mg(acc, 50, 30)) == 3
    assert len(enmo_mg(acc[:10], 50, 30)) == 0
    with pytest.raises(ValueError, match="shape"):
        enmo_mg(acc[:, :2], 50, 30)
    with pytest.raises(ValueError, match="whole number"):
        enmo_mg(acc, 52.5, 0.1)


# -- counts: agcounts on the same input --------------------------------------------------

agcounts_extract = pytest.importorskip(
    "agcounts.extract", reason="agcounts (dev extra) not installed"
)


@pytest.mark.parametrize("fs_hz", [30, 40, 50, 60, 70, 80, 90, 100])
@pytest.mark.parametrize("epoch_s", [30, 60])
def test_counts_equal_agcounts(fs_hz: int, epoch_s: int) -> None:
    acc = _walk_and_rest(fs_hz, 20, seed=fs_hz)
    ours = activity_counts(acc, fs_hz, epoch_s)
    ref = agcounts_extract.get_counts(acc, freq=fs_hz, epoch=epoch_s)
    assert ours.shape == ref.shape == (20 * 60 // epoch_s, 3)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)
    assert ours.sum() > 0


def test_counts_equal_agcounts_on_white_noise() -> None:
    # Broadband input exercises the trim limits (4 and 128) and the LPF.
    acc = np.random.default_rng(11).normal([0, 0, 1], 0.8, (50 * 600, 3))
    ref = agcounts_extract.get_counts(acc, freq=50, epoch=30)
    np.testing.assert_allclose(activity_counts(acc, 50, 30), ref, rtol=0, atol=1e-6)


def test_counts_other_rates_close_to_legacy() -> None:
    # 52 Hz (Verity Sense) has no ActiGraph resampler: resample_poly instead.
    # Same motion sampled at 50 and 52 Hz: day totals within 1 % per axis.
    acc50 = _walk_and_rest(50, 60)
    t52 = np.arange(52 * 3600) / 52
    t50 = np.arange(acc50.shape[0]) / 50
    acc52 = np.column_stack([np.interp(t52, t50, acc50[:, i]) for i in range(3)])
    c50 = activity_counts(acc50, 50, 60).sum(axis=0)
    c52 = activity_counts(acc52, 52, 60).sum(axis=0)
    assert np.all(np.abs(c52 - c50) / c50 < 0.01)


@pytest.mark.parametrize("fs_hz", [25, 52, 200])
def test_counts_other_rates_close_to_agcounts_mne(fs_hz: int) -> None:
    # Rates without an ActiGraph resampler: we use resample_poly, agcounts
    # (use_mne=True) MNE's FFT resampling. Totals per axis within 1 %
    # (measured 0.05-0.18 %); single 60-s epochs within 2 %.
    acc = _walk_and_rest(fs_hz, 20, seed=3)
    ref = agcounts_extract.get_counts(acc, freq=fs_hz, epoch=60, use_mne=True)
    ours = activity_counts(acc, fs_hz, 60)
    assert ours.shape == ref.shape
    assert np.all(np.abs(ours.sum(axis=0) - ref.sum(axis=0)) < 0.01 * ref.sum(axis=0))
    busy = ref > 500
    assert np.all(np.abs(ours - ref)[busy] < 0.02 * ref[busy])


def test_counts_power_of_two_rates_differ_from_actigraph_pow2_path() -> None:
    # agcounts has ActiGraph's own filters for 32/64/128/256 Hz; we resample
    # with resample_poly: totals 0.2-1.7 % apart (documented in docs/devices.md).
    acc = _walk_and_rest(64, 20, seed=3)
    ref = agcounts_extract.get_counts(acc, freq=64, epoch=60)
    ours = activity_counts(acc, 64, 60)
    rel = np.abs(ours.sum(axis=0) - ref.sum(axis=0)) / ref.sum(axis=0)
    assert np.all(rel < 0.025)


def test_still_device_gives_zero_counts() -> None:
    still = np.tile([0.0, 0.0, 1.0], (50 * 120, 1))
    assert activity_counts(still, 50, 60).sum() == 0


# -- non-wear -------------------------------------------------------------------------------


def test_nonwear_table_then_worn() -> None:
    fs = 25
    rng = np.random.default_rng(2)
    table = np.tile([0.0, 0.0, 1.0], (fs * 7200, 1)) + 0.001 * rng.standard_normal((fs * 7200, 3))
    worn = _walk_and_rest(fs, 120, seed=4)
    flags = nonwear_blocks(np.vstack([table, worn]), fs)
    assert flags.shape == (16,)
    # Each 15-min block is judged on the centred 60-min window, which reaches
    # 22.5 min past the block: blocks 6 and 7 (90-120 min) already see worn data.
    assert flags[:6].all() and not flags[6:].any()


def test_nonwear_thresholds_are_parameters() -> None:
    fs = 25
    noise = 0.005 * np.random.default_rng(1).standard_normal((fs * 3600, 3)) + [0, 0, 1]
    assert nonwear_blocks(noise, fs).all()  # SD 5 mg < 13 mg (GGIR default)
    assert not nonwear_blocks(noise, fs, sd_max_g=0.003).any()  # 2011 paper's 3.0 mg


# -- z-angle ----------------------------------------------------------------------------------


def test_angle_z() -> None:
    up = np.tile([0.0, 0.0, 1.0], (1500, 1))
    side = np.tile([1.0, 0.0, 0.0], (1500, 1))
    tilted = np.tile([0.5, 0.0, 0.5], (1500, 1))
    assert angle_z_deg(up, 50, 30) == pytest.approx([90.0])
    assert angle_z_deg(side, 50, 30) == pytest.approx([0.0])
    assert angle_z_deg(tilted, 50, 30) == pytest.approx([45.0])
    spikes = up.copy()
    spikes[50::100] = [1.0, 0.0, 0.0]  # single-sample glitches vanish in the 5-s median
    assert angle_z_deg(spikes, 50, 30) == pytest.approx([90.0])


def test_epoch_features_all_keys() -> None:
    ep = epoch_features(_walk_and_rest(50, 5), 50, 30)
    assert tuple(ep.features) == ACC_EPOCH_KEYS and len(ep) == 10
    assert all(len(v) == 10 for v in ep.features.values())
    assert np.isfinite(np.column_stack(list(ep.features.values()))).all()


# -- streaming counts ---------------------------------------------------------------------


@pytest.mark.parametrize("fs_hz", [30, 50, 60, 100])
def test_counts_stream_equals_batch(fs_hz: int) -> None:
    acc = _walk_and_rest(fs_hz, 10, seed=7)
    stream = CountsStream(fs_hz, 30)
    n = stream.samples_per_epoch
    pushed = np.array([stream.push(acc[i : i + n]) for i in range(0, acc.shape[0], n)])
    np.testing.assert_allclose(pushed, activity_counts(acc, fs_hz, 30), rtol=0, atol=1e-6)


def test_counts_stream_other_rate_close_to_batch() -> None:
    acc = _walk_and_rest(52, 10, seed=8)
    stream = CountsStream(52, 30)
    n = stream.samples_per_epoch
    pushed = np.array([stream.push(acc[i : i + n]) for i in range(0, acc.shape[0], n)])
    batch = activity_counts(acc, 52, 30)
    assert np.abs(pushed.sum(axis=0) - batch.sum(axis=0)).max() / batch.sum() < 0.01
    with pytest.raises(ValueError, match="expected"):
        stream.push(acc[:10])
