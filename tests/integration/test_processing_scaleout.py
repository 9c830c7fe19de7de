"""Scale-out: two workers on a shared subscription store exactly what one worker stores.

Raw points are idempotent by construction; feature units are recomputed from
the database by whichever worker marks them, so the features must agree too.
The input has realistic beats (RR intervals that add up to the time between
notifications), out-of-order messages and duplicates.
"""

from __future__ import annotations

import random
import time

import pytest

from collector import wire
from processing.service import Service
from tests.integration.processing_fixture import (
    T0_NS,
    Pipeline,
    pipeline,
    publish_messages,
    wait_until,
)

__all__ = ["pipeline"]
pytestmark = pytest.mark.integration
MINUTES = 12
NS = 1_000_000_000


def beat_messages(study: str, participant: str, device: str, seed: int) -> list[wire.Message]:
    """One notification per second carrying the beats of that second; 10 per message."""
    rng = random.Random(seed)
    beats = []
    t = T0_NS + rng.randrange(NS)
    while t < T0_NS + MINUTES * 60 * NS:
        beats.append(t)
        t += int((780 + 60 * rng.random() + (150 if rng.random() < 0.01 else 0)) * 1e6)
    samples = []
    for second in range(MINUTES * 60):
        lo, hi = T0_NS + second * NS, T0_NS + (second + 1) * NS
        idx = [i for i, b in enumerate(beats) if lo <= b < hi and i > 0]
        if not idx:
            continue
        rr = tuple((beats[i] - beats[i - 1]) / 1e6 for i in idx)
        hr = round(60_000 / (sum(rr) / len(rr)))
        samples.append(wire.HrSample(beats[idx[-1]], hr, True, None, rr))
    out = []
    for seq, k in enumerate(range(0, len(samples), 10)):
        chunk = tuple(samples[k : k + 10])
        out.append(
            wire.Message(
                "hr",
                study,
                participant,
                device,
                "gw-1",
                seq,
                chunk[-1].ts_ns,
                wire.ClockQuality(True, "sim", 5.0),
                chunk,
            )
        )
    return out


def traffic(study: str) -> list[wire.Message]:
    per = [beat_messages(study, f"p-{i}", f"d-{i}", seed=i) for i in range(3)]
    mixed = [m for group in zip(*per, strict=True) for m in group]
    rng = random.Random(42)
    for _ in range(10):  # out of order: a message arrives a few places late
        i = rng.randrange(len(mixed) - 5)
        mixed.insert(i + rng.randrange(2, 5), mixed.pop(i))
    mixed += rng.sample(mixed, 8)  # redeliveries
    return mixed


def run_until_settled(p: Pipeline, workers: list[Service], messages: list[wire.Message]) -> None:
    expected = {(m.device, m.seq) for m in messages}
    publish_messages(p.broker, messages)
    wait_until(lambda: set(p.seq_counts()) == expected, 60, "all raw data stored")

    def settled() -> bool:
        return all(len(w.dirty) == 0 for w in workers)

    wait_until(settled, 60, "feature units computed")
    time.sleep(2.5)  # one more idle period: nothing is re-marked
    wait_until(settled, 60, "feature units computed")
    for w in workers:
        assert p.stop(w) == 0


def test_two_workers_on_a_shared_subscription_store_what_one_worker_stores(
    pipeline: Pipeline,
) -> None:
    messages = traffic(pipeline.study)
    one = pipeline.start("one")
    run_until_settled(pipeline, [one], messages)
    single = pipeline.dump()

    pipeline.bucket = pipeline.new_bucket(pipeline.bucket + "-shared")
    shared = {"shared_group": "proc"}
    workers = [pipeline.start("s1", service=shared), pipeline.start("s2", service=shared)]
    run_until_settled(pipeline, workers, messages)
    double = pipeline.dump()

    assert all(w.metrics.received > 50 for w in workers), "the broker did not share the load"
    assert sum(w.metrics.received for w in workers) == len(messages)
    hrv = [r for r in single if r[0] == "hrv_window" and r[3] == "rmssd_ms"]
    windows = [r for r in single if r[0] == "hrv_window" and r[3] == "n_beats"]
    assert len(windows) == 9  # 3 participants x 3 windows (0-5, 5-10, 10-12 min)
    # The 2-minute window is below the coverage rule: stored with its flags, no rmssd.
    assert len(hrv) == 6 and all(isinstance(r[4], float) and 5 < r[4] < 200 for r in hrv)
    assert any(r[0] == "daily" for r in single)
    assert double == single
