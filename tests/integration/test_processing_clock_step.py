"""A gateway clock set back: processing's HRV windows do not mix the two timelines."""

from __future__ import annotations

import math

import pytest

from collector import wire
from tests.integration.processing_fixture import (
    T0_NS,
    Pipeline,
    pipeline,
    publish_messages,
    wait_until,
)

__all__ = ["pipeline"]
pytestmark = pytest.mark.integration
WINDOW_NS = 300 * 10**9
START_NS = T0_NS // WINDOW_NS * WINDOW_NS
S = 10**9


def _beats(start_ns: int, n: int) -> list[tuple[int, float]]:
    """(time, RR) of ``n`` successive beats after ``start_ns``, RR 960-1040 ms."""
    out, t = [], start_ns
    for k in range(n):
        rr = 1000.0 + 40.0 * math.sin(k * 0.7)
        t += round(rr * 1e6)
        out.append((t, rr))
    return out


def _messages(study: str, beats: list[tuple[int, float]]) -> list[wire.Message]:
    """One HR sample per beat (its RR ends at the sample time), 10 a message, seq in order."""
    out = []
    for seq, i in enumerate(range(0, len(beats), 10)):
        samples = tuple(
            wire.HrSample(ts_ns=t, hr_bpm=60, contact=True, energy_kj=None, rr_ms=(rr,))
            for t, rr in beats[i : i + 10]
        )
        out.append(
            wire.Message(
                stream="hr",
                study=study,
                participant="p-1",
                device="d-1",
                gateway="gw-test",
                seq=seq,
                sent_ns=samples[-1].ts_ns,
                clock=wire.ClockQuality(True, "sim", 5.0),
                samples=samples,
            )
        )
    return out


def test_a_clock_set_back_flags_the_repeated_windows_and_keeps_the_others(
    pipeline: Pipeline,
) -> None:
    # 20 minutes of beats, then the gateway clock goes back 10 minutes and the
    # next 10 minutes of beats land on [10, 20) min again.
    before = _beats(START_NS, 1190)
    after = _beats(START_NS + 600 * S, 590)
    service = pipeline.start()
    publish_messages(pipeline.broker, _messages(pipeline.study, before + after))

    def windows() -> dict[int, str]:
        rows = pipeline.flux(
            '|> filter(fn: (r) => r._measurement == "hrv_window" and r._field == "quality")'
        )
        return {int(r["_time"].timestamp()) - START_NS // S: r["_value"] or "" for r in rows}

    def settled() -> bool:
        w = windows()
        return len(w) == 4 and "clock_step" in w.get(600, "") and "clock_step" in w.get(900, "")

    wait_until(settled, 90, "the four windows, the repeated two flagged")
    assert service.metrics.clock_steps == 1
    w = windows()
    assert "clock_step" not in w[0] and "clock_step" not in w[300]
    rmssd = pipeline.flux(
        '|> filter(fn: (r) => r._measurement == "hrv_window" and r._field == "rmssd_ms")'
    )
    # The clean windows have features; the mixed ones have none.
    assert sorted(int(r["_time"].timestamp()) - START_NS // S for r in rmssd) == [0, 300]
    (step,) = pipeline.flux(
        '|> filter(fn: (r) => r._measurement == "clock_step" and r._field == "until_ns")'
    )
    assert step["_value"] == before[-1][0]
    assert pipeline.stop(service) == 0
