"""De-duplication and gap detection by (device, seq) in bounded memory."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from processing.dedup import SeqTracker, Verdict


def test_duplicate_gap_late_and_too_old() -> None:
    t = SeqTracker(window=10)
    assert t.see("d", 5).verdict is Verdict.NEW
    assert t.see("d", 5).is_duplicate
    jump = t.see("d", 9)
    assert (jump.verdict, jump.gap) == (Verdict.NEW, 3)
    assert t.see("d", 7).verdict is Verdict.LATE  # fills part of the gap
    assert t.see("d", 7).is_duplicate
    assert t.see("d", 6).verdict is Verdict.LATE
    t.see("d", 40)
    assert t.see("d", 20).verdict is Verdict.TOO_OLD
    assert t.see("other", 5).verdict is Verdict.NEW  # devices are independent


def test_memory_is_bounded_per_device_and_in_devices() -> None:
    t = SeqTracker(window=100, max_devices=50)
    for seq in range(10_000):
        t.see("d", seq)
    assert len(t._devices["d"].recent) <= 200
    for i in range(500):
        t.see(f"dev-{i}", 0)
    assert len(t) == 50


@given(st.lists(st.integers(0, 300), max_size=400))
def test_within_the_window_every_repeat_is_a_duplicate_and_nothing_else(seqs: list[int]) -> None:
    t = SeqTracker(window=1000)
    seen: set[int] = set()
    for seq in seqs:
        verdict = t.see("d", seq).verdict
        assert (verdict is Verdict.DUPLICATE) == (seq in seen)
        seen.add(seq)


@given(st.permutations(list(range(50))))
def test_gaps_reported_equal_numbers_skipped_ahead(order: list[int]) -> None:
    t = SeqTracker()
    skipped = sum(t.see("d", seq).gap for seq in order)
    hwm = -1
    expected = 0
    for seq in order:
        if seq > hwm:
            expected += seq - hwm - 1 if hwm >= 0 else 0
            hwm = seq
    assert skipped == expected


def test_a_replaced_outbox_restarting_at_seq_0_is_new_under_its_new_epoch() -> None:
    """The reported case: high-water mark 19,999, then a new outbox sends 0..19,999."""
    old, new = "a" * 32, "b" * 32
    legacy, tracked = SeqTracker(), SeqTracker()
    for seq in range(20_000):
        legacy.see("dev", seq)
        tracked.see("dev", seq, old)
    dropped_without_epoch = sum(legacy.see("dev", seq).is_duplicate for seq in range(20_000))
    assert dropped_without_epoch == 7_709  # the reported loss before the epoch existed
    verdicts = [tracked.see("dev", seq, new) for seq in range(20_000)]
    assert sum(v.is_duplicate for v in verdicts) == 0
    assert sum(v.gap for v in verdicts) == 0
    # Repeats inside each epoch are still caught.
    assert tracked.see("dev", 19_999, new).is_duplicate
    assert tracked.see("dev", 19_999, old).is_duplicate
    assert tracked.peek("dev", 19_990, new) and not tracked.peek("dev", 19_990)
