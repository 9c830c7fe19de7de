"""When feature units become due, and local-day boundaries."""

from __future__ import annotations

from processing.windows import NS, DayCalendar, DirtyUnits, Unit

T0 = 1_764_115_200 * NS  # 2025-11-26T00:00:00Z


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def units(settle_s: float = 30, idle_s: float = 60) -> tuple[DirtyUnits, Clock]:
    clock = Clock()
    d = DirtyUnits(
        window_s=300, settle_s=settle_s, idle_s=idle_s, calendar=DayCalendar("UTC"), monotonic=clock
    )
    return d, clock


def test_window_due_once_data_passes_end_plus_settle() -> None:
    d, _ = units()
    d.mark("p", [T0 + 10 * NS], [T0 + 10 * NS])
    assert d.due() == []
    d.mark("p", [T0 + 320 * NS], [])
    assert d.due() == []  # 320 s < 300 + 30
    d.mark("p", [T0 + 331 * NS], [])
    assert d.due() == [Unit("hrv", "p", T0, T0 + 300 * NS)]
    assert d.due() == []


def test_idle_units_become_due_and_late_data_marks_again() -> None:
    d, clock = units()
    d.mark("p", [T0 + 5 * NS], [T0 + 5 * NS])
    clock.now += 61
    due = d.due()
    assert [u.kind for u in due] == ["hrv", "daily"]  # a day reads its windows
    d.mark("p", [T0 + 6 * NS], [])  # late beat for the same window
    clock.now += 61
    assert d.due() == [Unit("hrv", "p", T0, T0 + 300 * NS)]


def test_participants_are_independent() -> None:
    d, _ = units(settle_s=0)
    d.mark("a", [T0], [])
    d.mark("b", [T0 + 400 * NS], [])
    assert [u.participant for u in d.due()] == []  # b's data time does not complete a's window
    d.mark("a", [T0 + 300 * NS], [])
    assert [(u.participant, u.start_ns) for u in d.due()] == [("a", T0)]


def test_local_days_follow_the_time_zone_and_dst() -> None:
    cal = DayCalendar("Europe/Amsterdam")
    start, end = cal.day_of(T0)  # 01:00 local on 26 Nov
    assert (start, end) == (T0 - 3600 * NS, T0 + 23 * 3600 * NS)
    spring = 1_743_300_000 * NS  # 2025-03-30, clocks go forward
    s, e = cal.day_of(spring)
    assert e - s == 23 * 3600 * NS
