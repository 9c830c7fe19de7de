"""StepDetector: a newer message whose beats go back is a gateway clock step."""

from __future__ import annotations

from processing.clocksteps import TOLERANCE_NS, Step, StepDetector

S = 10**9


def test_a_step_back_is_found_once_and_the_new_timeline_followed() -> None:
    d = StepDetector()
    assert d.see("d-1", None, 0, [10 * S, 11 * S, 12 * S]) == []
    assert d.see("d-1", None, 1, [13 * S, 5 * S, 6 * S]) == [Step(5 * S, 13 * S)]
    assert d.see("d-1", None, 2, [7 * S, 8 * S]) == []  # the new timeline goes on


def test_jitter_late_messages_and_other_devices_are_not_steps() -> None:
    d = StepDetector()
    d.see("d-1", None, 5, [100 * S])
    assert d.see("d-1", None, 6, [100 * S - TOLERANCE_NS + 1]) == []  # within tolerance
    assert d.see("d-1", None, 3, [1 * S]) == []  # a late (older) message
    assert d.see("d-2", None, 0, [1 * S]) == []  # another device
    assert d.see("d-1", "0123456789abcdef", 0, [1 * S]) == []  # a new outbox: new numbers
