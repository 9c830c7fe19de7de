"""The strap notification model: cadence, drift, RR resolution, latency, loss."""

from __future__ import annotations

import itertools

import pytest

from wellsense_sim.strap import (
    NS_PER_S,
    StrapCadence,
    StrapParams,
    beats_from_rr,
    notify_beats,
)

T0 = 1_700_000_000 * NS_PER_S


def _beats(n: int, rr_ms: float = 830.0) -> list[int]:
    return beats_from_rr([rr_ms + 40.0 * ((i % 7) - 3) for i in range(n)], start_ns=T0)


def test_notifications_follow_the_sensor_clock_not_the_beats() -> None:
    params = StrapParams(period_s=1.0, drift_ppm=50.0, latency_ms=(0.0, 0.0))
    notes = notify_beats(_beats(600), params, start_ns=T0)
    sent = [n.sent_ns for n in notes]
    periods = {b - a for a, b in itertools.pairwise(sent)}
    # 1 s of a clock running 50 ppm fast is 999.95 ms of true time (+-1 ns rounding)
    assert all(abs(p - 999_950_002) <= 2 for p in periods)
    counts = {len(n.rr_ms) for n in notes}
    assert counts >= {1, 2}  # beats do not line up with notifications


def test_rr_values_sum_to_elapsed_sensor_ticks_without_accumulating_rounding() -> None:
    beats = _beats(5000)
    notes = notify_beats(beats, StrapParams(drift_ppm=0.0), start_ns=T0)
    rr = [r for n in notes for r in n.rr_ms]
    assert len(rr) == len(beats) - 1  # the first beat has no interval
    assert all((r * 1024 / 1000).is_integer() for r in rr)
    true_span_ms = (beats[-1] - beats[0]) / 1e6
    assert abs(sum(rr) - true_span_ms) < 1000 / 1024  # one tick, not 5000 roundings


def test_drift_scales_measured_intervals() -> None:
    beats = _beats(3000)
    notes = notify_beats(beats, StrapParams(drift_ppm=-50.0), start_ns=T0)
    measured = sum(r for n in notes for r in n.rr_ms)
    true_ms = (beats[-1] - beats[0]) / 1e6
    assert measured / true_ms == pytest.approx(1 - 50e-6, abs=2e-6)


def test_latency_is_bounded_and_arrivals_stay_in_order() -> None:
    params = StrapParams(latency_ms=(0.0, 50.0), seed=3)
    notes = notify_beats(_beats(2000), params, start_ns=T0)
    lat = [n.received_ns - n.sent_ns for n in notes]
    assert min(lat) >= 0 and max(lat) <= 50_000_000
    assert max(lat) > 30_000_000  # the range is used, not a constant
    arrivals = [n.received_ns for n in notes]
    assert arrivals == sorted(arrivals)


def test_lost_notifications_take_their_rr_values_with_them() -> None:
    params = StrapParams(loss=0.05, seed=11)
    notes = notify_beats(_beats(20_000), params, start_ns=T0)
    lost = [n for n in notes if n.lost]
    assert 0.03 < len(lost) / len(notes) < 0.07
    assert sum(len(n.rr_ms) for n in notes) == 20_000 - 1


def test_fifo_caps_values_per_notification() -> None:
    params = StrapParams(max_rr=2, latency_ms=(0.0, 0.0))
    notes = notify_beats(_beats(300, rr_ms=300.0), params, start_ns=T0)
    assert max(len(n.rr_ms) for n in notes) == 2
    assert sum(len(n.rr_ms) for n in notes) == 299


def test_missed_beat_gives_no_interval_for_the_next_one() -> None:
    cadence = StrapCadence(StrapParams(), start_ns=T0)
    beats = _beats(4)
    cadence.detect(beats[:2])
    cadence.miss()
    cadence.detect(beats[3:])
    note = cadence.send()
    assert note.beat_ns == (beats[1],)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"period_s": 0},
        {"latency_ms": (10.0, 5.0)},
        {"loss": 1.0},
        {"max_rr": 0},
        {"drift_ppm": float("nan")},
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        StrapParams(**kwargs)  # type: ignore[arg-type]
