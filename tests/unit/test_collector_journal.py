"""Open batches are journaled: a SIGKILL loses no journaled sample and duplicates none."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from collector import wire
from collector.batcher import Batcher, Route
from collector.outbox import Outbox

T0 = 1_764_000_000 * 10**9
ROUTE = Route("p-1", "dev-a")

_CHILD = """
import os, signal
from collector import wire
from collector.batcher import Batcher, Route
from collector.outbox import Outbox

box = Outbox({path!r})
b = Batcher(box, "s1", "gw-1", lambda: wire.ClockQuality(True, "ntp", 1.0),
            wall_ns=lambda: {t0}, max_samples=4, max_interval_s=3600)
route = Route("p-1", "dev-a")
for i in range({n}):
    b.add(route, "hr", wire.HrSample({t0} + i * 10**9, 60 + i, True, None, (1000.0,)))
    if i < {journaled}:
        b.journal_flush()
os.kill(os.getpid(), signal.SIGKILL)
"""


def _kill_after(path: Path, n: int, journaled: int) -> None:
    code = textwrap.dedent(_CHILD).format(path=str(path), t0=T0, n=n, journaled=journaled)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def _batcher(box: Outbox) -> Batcher:
    return Batcher(
        box,
        "s1",
        "gw-1",
        lambda: wire.ClockQuality(True, "ntp", 1.0),
        wall_ns=lambda: T0,
        max_samples=4,
        max_interval_s=3600,
    )


def _hr(box: Outbox) -> list[int]:
    return [
        s.hr_bpm  # type: ignore[union-attr]
        for m in box.peek(1000)
        for s in wire.decode(m.payload, topic=m.topic).samples
    ]


def test_sigkill_mid_batch_loses_no_journaled_sample(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    # 10 samples, batches of 4: two committed, 2 journaled in the open batch.
    _kill_after(path, n=10, journaled=10)
    with Outbox(path) as box:
        assert len(box.journal()) == 2
        batcher = _batcher(box)
        assert batcher.recover() == 2
        batcher.add(ROUTE, "hr", wire.HrSample(T0 + 10 * 10**9, 70, True, None, ()))
        batcher.flush_all()
        assert _hr(box) == list(range(60, 71)), "every sample once, in order"
        assert box.journal() == []
        messages = [wire.decode(m.payload) for m in box.peek(10)]
        assert [m.seq for m in messages] == [0, 1, 2]
        assert {m.epoch for m in messages} == {box.epoch}


def test_a_crash_right_after_a_commit_re_adds_nothing(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    _kill_after(path, n=8, journaled=8)  # exactly two full batches
    with Outbox(path) as box:
        assert box.journal() == []
        assert _batcher(box).recover() == 0
        assert _hr(box) == list(range(60, 68))


def test_samples_not_yet_flushed_are_the_only_ones_a_crash_can_lose(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    _kill_after(path, n=7, journaled=5)  # samples 6 and 7 never reached journal_flush
    with Outbox(path) as box:
        batcher = _batcher(box)
        assert batcher.recover() == 1
        batcher.flush_all()
        assert _hr(box) == list(range(60, 65))


def test_withdrawal_drops_journaled_samples_too(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.sqlite3") as box:
        batcher = _batcher(box)
        batcher.add(ROUTE, "hr", wire.HrSample(T0, 60, True, None, ()))
        batcher.add(Route("p-2", "dev-b"), "hr", wire.HrSample(T0, 61, True, None, ()))
        batcher.journal_flush()
        assert batcher.discard(frozenset({"p-1"})) == 1
        assert [r.device for r in box.journal()] == ["dev-b"]


def test_journaled_samples_keep_their_v1_1_beat_fields(tmp_path: Path) -> None:
    """The beat clock's placement survives a restart (the journal holds v1.1 samples)."""
    sample = wire.HrSample(T0, 61, True, None, (980.0, 1010.0), beat_ns=T0 - 5_000_000,
                           rr_break=True)
    with Outbox(tmp_path / "outbox.sqlite3") as box:
        first = _batcher(box)
        first.add(ROUTE, "hr", sample)
        first.journal_flush()
        again = _batcher(box)
        assert again.recover() == 1
        again.flush_all()
        (message,) = [wire.decode(m.payload, topic=m.topic) for m in box.peek(10)]
    assert message.samples == (sample,)


def test_samples_with_beat_clock_fields_are_recovered_not_dropped(tmp_path: Path) -> None:
    """v1.1 ``beat_ns``/``rr_break`` (the beat clock's) must survive the journal.

    Found by bench/faults.py: every such sample was "unreadable" at recovery,
    so each collector SIGKILL lost the open batches' HR samples with RR values.
    """
    with Outbox(tmp_path / "outbox.sqlite3") as box:
        batcher = _batcher(box)
        for i in range(3):
            ts = T0 + i * 10**9
            batcher.add(ROUTE, "hr", wire.HrSample(ts, 60 + i, True, None, (1000.0,), ts, i == 0))
        batcher.journal_flush()
    with Outbox(tmp_path / "outbox.sqlite3") as box:
        batcher = _batcher(box)
        assert batcher.recover() == 3
        batcher.flush_all()
        samples = [s for m in box.peek(10) for s in wire.decode(m.payload).samples]
        assert [s.beat_ns for s in samples] == [T0, T0 + 10**9, T0 + 2 * 10**9]  # type: ignore[union-attr]
        assert [s.rr_break for s in samples] == [True, False, False]  # type: ignore[union-attr]
