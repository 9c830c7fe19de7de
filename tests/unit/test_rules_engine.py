"""The default rule set on synthetic histories: each rule fires, respects its cooldown, resolves."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from processing.rules.engine import NS, AlertEvent, RuleEngine, Subject
from processing.rules.loader import RuleSet, load_rules, load_rules_text

REPO = Path(__file__).resolve().parents[2]
T0 = 1_764_115_200 * NS  # 2025-11-26T00:00:00Z
MIN = 60 * NS
HOUR = 60 * MIN
DAY = 24 * HOUR


class Clock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture(scope="module")
def default_rules() -> RuleSet:
    return load_rules(REPO / "rules")


class Harness:
    def __init__(self, rules: RuleSet) -> None:
        self.clock = Clock()
        self.published: list[tuple[AlertEvent, dict[str, Any]]] = []
        self.written: list[AlertEvent] = []
        self.engine = RuleEngine(
            rules,
            study="s1",
            publish=lambda e, state: self.published.append((e, state)),
            write=self.written.append,
            clock=self.clock,
        )

    def events(self, rule: str) -> list[tuple[str, int]]:
        """(state, minutes after T0) of ``rule``'s events, in order."""
        return [(e.state, (e.ts_ns - T0) // MIN) for e in self.written if e.rule == rule]


@pytest.fixture
def h(default_rules: RuleSet) -> Harness:
    return Harness(default_rules)


def at(h: Harness, ns: int) -> None:
    h.clock.now = ns


# --------------------------------------------------------------------------- status rules


def test_no_data_fires_after_6h_dedups_resolves_and_respects_cooldown(h: Harness) -> None:
    p = Subject.of_participant("p-0001")
    h.engine.on_status(p, {"last_sample_ns": T0})
    for minutes in range(0, 8 * 60, 15):  # a tick every 15 min, no data
        h.engine.tick(T0 + minutes * MIN)
    assert h.events("adherence-no-data") == [("firing", 6 * 60 + 15)]  # > 360 min, not ==
    at(h, T0 + 8 * HOUR)
    h.engine.on_status(p, {"last_sample_ns": T0 + 8 * HOUR})  # data again
    assert h.events("adherence-no-data")[-1] == ("resolved", 8 * 60)
    # a second gap inside the 24 h cooldown stays quiet ...
    for minutes in range(8 * 60, 30 * 60 + 15, 15):
        h.engine.tick(T0 + minutes * MIN)
    assert len(h.events("adherence-no-data")) == 2
    # ... and fires once the cooldown since the first firing (6:15) is over
    h.engine.tick(T0 + 30 * HOUR + 15 * MIN)
    assert h.events("adherence-no-data")[-1] == ("firing", 30 * 60 + 15)
    assert h.engine.counters.suppressed > 0


def test_low_wear_fires_when_not_worn_and_resolves_when_worn_again(h: Harness) -> None:
    p = Subject.of_participant("p-0002")
    h.engine.on_status(p, {"last_worn_ns": T0, "last_sample_ns": T0, "wear_hours_24h": 4.0})
    h.engine.tick(T0 + 60 * MIN)
    assert h.events("adherence-low-wear") == []  # exactly 60 min: not > 60
    h.engine.tick(T0 + 61 * MIN)
    assert h.events("adherence-low-wear") == [("firing", 61)]
    fired = h.written[-1]
    assert fired.value == pytest.approx(4.0)  # `value = "wear_hours_24h"`
    h.engine.tick(T0 + 90 * MIN)
    assert len(h.events("adherence-low-wear")) == 1  # de-duplicated
    at(h, T0 + 2 * HOUR)
    h.engine.on_status(p, {"last_worn_ns": T0 + 2 * HOUR})  # strap back on
    assert h.events("adherence-low-wear")[-1] == ("resolved", 120)
    # off again 3 h later: inside the 12 h cooldown, nothing
    h.engine.tick(T0 + 5 * HOUR)
    assert len(h.events("adherence-low-wear")) == 2
    h.engine.tick(T0 + 13 * HOUR)  # 12 h after 2 h: still inside the cooldown from 1:01
    assert len(h.events("adherence-low-wear")) == 2
    h.engine.tick(T0 + 13 * HOUR + 5 * MIN)
    assert h.events("adherence-low-wear")[-1] == ("firing", 13 * 60 + 5)


def test_low_wear_needs_both_parts(h: Harness) -> None:
    p = Subject.of_participant("p-0003")
    h.engine.on_status(p, {"last_worn_ns": T0, "wear_hours_24h": 14.0})
    h.engine.tick(T0 + 5 * HOUR)  # off for 5 h but 14 h worn in the last day: fine
    assert h.events("adherence-low-wear") == []


def test_battery_low_fires_dedups_resolves_cooldown(h: Harness) -> None:
    d = Subject.of_device("p-0001", "strap-1")
    for minutes, pct in [
        (0, 40),
        (10, 14),
        (20, 12),
        (30, 80),
        (40, 10),
        (24 * 60 + 5, 9),
        (24 * 60 + 15, 8),
    ]:
        at(h, T0 + minutes * MIN)
        h.engine.on_status(d, {"battery_pct": pct})
    assert h.events("adherence-battery-low") == [
        ("firing", 10),
        ("resolved", 30),
        ("firing", 24 * 60 + 15),  # 40 min and 24:05 were inside the 24 h cooldown
    ]
    # the retained state is the participant's, listing the device alert
    _event, state = h.published[-1]
    assert state["participant"] == "p-0001"
    assert state["alerts"]["adherence-battery-low/strap-1"]["device"] == "strap-1"


def test_gateway_offline(h: Harness) -> None:
    g = Subject.of_gateway("gw-1")
    h.engine.on_status(g, {"gateway_seen_ns": T0, "gateway_online": False})
    h.engine.tick(T0 + 30 * MIN)
    h.engine.tick(T0 + 31 * MIN)
    at(h, T0 + 40 * MIN)
    h.engine.on_status(g, {"gateway_seen_ns": T0 + 40 * MIN, "gateway_online": True})
    h.engine.tick(T0 + 2 * HOUR)  # goes quiet again: inside the 12 h cooldown
    h.engine.tick(T0 + 13 * HOUR)
    assert h.events("adherence-gateway-offline") == [
        ("firing", 31),
        ("resolved", 40),
        ("firing", 13 * 60),
    ]
    _, state = h.published[-1]
    assert state["gateway"] == "gw-1" and "adherence-gateway-offline" in state["alerts"]


def test_unknown_neither_fires_nor_resolves(h: Harness) -> None:
    p = Subject.of_participant("p-0009")
    h.engine.tick(T0 + DAY)  # nothing known about anyone: nothing happens
    h.engine.on_status(p, {"wear_hours_24h": 2.0})  # last_worn unknown -> unknown
    h.engine.tick(T0 + DAY)
    assert h.events("adherence-low-wear") == []


# --------------------------------------------------------------------------- daily rules


def day(k: int) -> dt.date:
    return dt.date(2025, 11, 1) + dt.timedelta(days=k)


def feed(h: Harness, participant: str, k: int, features: dict[str, float | None]) -> None:
    at(h, T0 + k * DAY)
    h.engine.on_daily_features(participant, day(k), features)


def daily_events(h: Harness, rule: str) -> list[tuple[str, int]]:
    return [(s, minutes // (24 * 60)) for s, minutes in h.events(rule)]


def run_daily(h: Harness, feature: str, values: list[float | None], **extra: float) -> None:
    for k, v in enumerate(values):
        feed(h, "p-0001", k, {feature: v, **extra})


def baseline(mean: float, sd: float, n: int = 28, seed: int = 1) -> list[float | None]:
    rng = np.random.default_rng(seed)
    return [float(x) for x in rng.normal(mean, sd, n)]


BASELINE_RULES = [
    ("baseline-resting-hr-high", "resting_hr_bpm", 60.0, 2.0, +8.0, 3),
    ("baseline-rmssd-low", "ln_rmssd_night", 3.8, 0.1, -0.5, 3),
    ("baseline-activity-low", "steps_mean_per_min", 30.0, 4.0, -16.0, 5),
]


@pytest.mark.parametrize(("rule", "feature", "mean", "sd", "shift", "days"), BASELINE_RULES)
def test_baseline_rule_fires_from_raw_features_and_resolves(
    h: Harness, rule: str, feature: str, mean: float, sd: float, shift: float, days: int
) -> None:
    base = baseline(mean, sd)
    n0 = len(base)
    run_daily(h, feature, [*base, *[mean + shift] * days, mean])
    # the engine derives <feature>_z with the catalogue's baseline (previous 28 days)
    assert daily_events(h, rule) == [("firing", n0 + days - 1), ("resolved", n0 + days)]
    assert h.written[0].value is not None and abs(h.written[0].value) > 2


@pytest.mark.parametrize(("rule", "feature", "mean", "sd", "shift", "days"), BASELINE_RULES)
def test_baseline_rule_cooldown(
    h: Harness, rule: str, feature: str, mean: float, sd: float, shift: float, days: int
) -> None:
    z = 3.0 if shift > 0 else -3.0
    name = f"{feature}_z"
    # days-1 deviant days and a normal one (no alert), then `days` deviant days: fires;
    # a normal day resolves; a new run completes inside the 7-day cooldown and stays
    # quiet until the cooldown is over, then fires; a normal day resolves
    seq = [z] * (days - 1) + [0.0] + [z] * days + [0.0] + [z] * 8 + [0.0]
    for k, value in enumerate(seq):
        feed(h, "p-0001", k, {name: value})
    fire1 = 2 * days - 1
    assert fire1 + 1 + days - fire1 < 7  # the second run completes inside the cooldown
    assert daily_events(h, rule) == [
        ("firing", fire1),
        ("resolved", fire1 + 1),
        ("firing", fire1 + 7),
        ("resolved", len(seq) - 1),
    ]


def test_baseline_needs_seven_days(h: Harness) -> None:
    run_daily(h, "ln_rmssd_night", [3.8, 3.9, 3.7, 2.3, 2.3, 2.3])  # no baseline yet
    assert daily_events(h, "baseline-rmssd-low") == []


def test_supplied_z_scores_are_used_as_given(h: Harness) -> None:
    for k, z in enumerate([-2.5, -2.5, -2.5, 0.0]):
        feed(h, "p-0002", k, {"ln_rmssd_night_z": z})
    assert daily_events(h, "baseline-rmssd-low") == [("firing", 2), ("resolved", 3)]


def test_hrv_quality_low(h: Harness) -> None:
    good = {"hrv_night_windows": 72.0, "hrv_night_usable_fraction": 0.9}
    bad = {"hrv_night_windows": 72.0, "hrv_night_usable_fraction": 0.3}
    sparse = {"hrv_night_windows": 3.0, "hrv_night_usable_fraction": 0.0}  # too little to judge
    seq = [good, bad, bad, sparse, bad, bad, bad, bad, good, bad, bad, bad, good]
    seq += [good] * 2 + [bad] * 3
    for k, f in enumerate(seq):
        feed(h, "p-0001", k, f)
    assert daily_events(h, "quality-hrv-low") == [
        ("firing", 6),  # days 4-6; the sparse day 3 broke the first run
        ("resolved", 8),
        # days 9-11 are bad again but inside the 3-day cooldown from day 6 ... day 11 is not
        ("firing", 11),
        ("resolved", 12),
        ("firing", 17),
    ]


def test_a_missing_day_holds_the_state(h: Harness) -> None:
    for k in range(3):
        feed(h, "p-0001", k, {"ln_rmssd_night_z": -3.0})
    feed(h, "p-0001", 4, {"ln_rmssd_night_z": -3.0})  # day 3 missing: unknown, still firing
    assert daily_events(h, "baseline-rmssd-low") == [("firing", 2)]
    assert ("baseline-rmssd-low", Subject.of_participant("p-0001")) in h.engine.open_alerts()


def test_recomputed_day_replaces_the_old_values(h: Harness) -> None:
    for k in range(3):
        feed(h, "p-0001", k, {"ln_rmssd_night_z": -3.0})
    feed(h, "p-0001", 2, {"ln_rmssd_night_z": 0.5})  # day 2 recomputed with late data
    assert daily_events(h, "baseline-rmssd-low") == [("firing", 2), ("resolved", 2)]


# --------------------------------------------------------------------------- mechanics


RULE = """
[[rule]]
id = "t"
description = "test rule: a screening signal, not a diagnosis"
scope = "device"
condition = "battery_pct < 20"
severity = "critical"
cooldown = "0s"
notify = ["a", "b"]
"""


def test_event_payload_and_restore() -> None:
    h = Harness(load_rules_text(RULE))
    d = Subject.of_device("p-0001", "dev-a")
    h.engine.on_status(d, {"battery_pct": 5})
    payload = h.written[0].to_json()
    assert payload == {
        "schema": "wellsense.alert.v1",
        "study": "s1",
        "rule": "t",
        "state": "firing",
        "severity": "critical",
        "scope": "device",
        "participant": "p-0001",
        "device": "dev-a",
        "ts_ns": T0,
        "since_ns": T0,
        "value": 5.0,
        "message": "t: battery_pct < 20 (value 5)",
        "notify": ["a", "b"],
        "description": "test rule: a screening signal, not a diagnosis",
    }
    # a restarted engine that restored the state does not fire again
    h2 = Harness(load_rules_text(RULE))
    h2.engine.restore("t", d, firing=True, fired_ns=T0)
    h2.engine.on_status(d, {"battery_pct": 5})
    assert h2.written == []
    h2.engine.on_status(d, {"battery_pct": 50})
    assert [e.state for e in h2.written] == ["resolved"]


def test_a_failing_sink_does_not_stop_evaluation() -> None:
    def boom(event: AlertEvent) -> None:
        raise OSError("database down")

    engine = RuleEngine(load_rules_text(RULE), study="s1", write=boom, clock=Clock())
    events = engine.on_status(Subject.of_device("p-1", "d"), {"battery_pct": 1})
    assert [e.state for e in events] == ["firing"]
    assert engine.counters.sink_errors == 1


def test_unknown_status_input_is_refused() -> None:
    engine = RuleEngine(load_rules_text(RULE), study="s1", clock=Clock())
    with pytest.raises(ValueError, match="battery"):
        engine.on_status(Subject.of_participant("p-1"), {"battery_pct": 3})


def test_an_erased_participant_is_forgotten_and_no_alert_fires_for_them(
    h: Harness, tmp_path: Path
) -> None:
    """Erasure (tombstones): the runner forgets the participant; no no-data alert 6 h later."""
    from processing import tombstones
    from processing.rules.influx_source import StatusSnapshot
    from processing.rules.runner import Runner

    class Source:  # what InfluxDB would return: nothing new for anyone
        def status(self, now_ns: int) -> StatusSnapshot:
            return StatusSnapshot()

        def daily(self, now_ns: int, rules: list[Any]) -> dict[str, Any]:
            return {}

    gone, kept = Subject.of_participant("p-gone"), Subject.of_participant("p-kept")
    for p in (gone, kept):
        h.engine.on_status(p, {"last_sample_ns": T0})
        h.engine.on_status(Subject.of_device(p.participant, "d1"), {"battery_pct": 5.0})
    erased = tombstones.Tombstones(tmp_path / "erased.txt", "s1")
    runner = Runner(
        engine=h.engine,
        source=Source(),
        interval_s=60,
        stop=None,
        erased=erased,  # type: ignore[arg-type]
    )
    runner.cycle()
    assert "p-gone" in h.engine.known_participants()
    tombstones.add(tmp_path / "erased.txt", "s1", "p-gone")
    at(h, T0 + 7 * HOUR)
    runner.cycle()
    assert "p-gone" not in h.engine.known_participants()
    assert all(s.participant != "p-gone" for s in h.engine.subjects())
    for minutes in range(7 * 60, 12 * 60, 15):
        h.engine.tick(T0 + minutes * MIN)
    fired = {e.subject.participant for e in h.written if e.rule == "adherence-no-data"}
    assert fired == {"p-kept"}
    # Nor a day later.
    before = len([e for e in h.written if e.subject.participant == "p-gone"])
    h.engine.tick(T0 + 40 * HOUR)
    assert len([e for e in h.written if e.subject.participant == "p-gone"]) == before
