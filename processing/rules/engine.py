"""The rule engine: pure state machine, I/O injected.

Feed it daily features (:meth:`RuleEngine.on_daily_features`), status updates
(:meth:`RuleEngine.on_status`) and clock ticks (:meth:`RuleEngine.tick`); it
evaluates the rules that depend on what changed and returns (and hands to the
``publish`` and ``write`` callbacks) an :class:`AlertEvent` for every
transition:

* **fires** when the condition becomes true, unless the same rule fired for
  the same subject less than ``cooldown`` ago (then it stays quiet and fires
  on a later evaluation if the condition still holds after the cooldown);
* **stays firing** without repeating itself while the condition is true
  (de-duplication);
* **resolves** when the condition is false again;
* does nothing while the condition is *unknown* (missing data neither fires
  nor resolves an alert).

The clock is injected (``clock() -> ns``), so the same engine runs in the
processing service, in the standalone runner and over a recorded history.
Nothing here does I/O or logs anything but pseudonyms and rule ids.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from processing.features.baseline import MIN_DAYS, WINDOW_DAYS, rolling_baseline
from processing.rules import nodes as n
from processing.rules.evaluate import Value, evaluate, kleene_all, known
from processing.rules.loader import Rule, RuleSet
from processing.rules.vocabulary import TIMESTAMP_INPUTS, base_feature

log = logging.getLogger("wellsense.rules")

NS: Final = 1_000_000_000
FIRING: Final = "firing"
RESOLVED: Final = "resolved"
ALERT_SCHEMA: Final = "wellsense.alert.v1"
STATE_SCHEMA: Final = "wellsense.alert-state.v1"
#: status inputs each scope accepts (timestamps become minutes_since_* variables)
STATUS_INPUTS: Final[dict[str, frozenset[str]]] = {
    "participant": frozenset({"last_sample_ns", "last_worn_ns", "wear_hours_24h"}),
    "device": frozenset({"battery_pct"}),
    "gateway": frozenset({"gateway_online", "gateway_seen_ns"}),
}


@dataclass(frozen=True, slots=True, order=True)
class Subject:
    """Who an alert is about: a participant, one of their devices, or a gateway."""

    scope: str
    participant: str = ""
    device: str = ""
    gateway: str = ""

    @classmethod
    def of_participant(cls, participant: str) -> Subject:
        return cls("participant", participant=participant)

    @classmethod
    def of_device(cls, participant: str, device: str) -> Subject:
        return cls("device", participant=participant, device=device)

    @classmethod
    def of_gateway(cls, gateway: str) -> Subject:
        return cls("gateway", gateway=gateway)

    @property
    def key(self) -> str:
        """Stable text key: ``p-0001``, ``p-0001/dev-1`` or ``_gateways/gw-1``."""
        if self.scope == "gateway":
            return f"_gateways/{self.gateway}"
        if self.scope == "device":
            return f"{self.participant}/{self.device}"
        return self.participant

    @property
    def owner(self) -> Subject:
        """Whose retained alert state this subject's alerts belong to."""
        if self.scope == "device":
            return Subject.of_participant(self.participant)
        return self


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One transition of one rule for one subject."""

    study: str
    rule: str
    state: str  # "firing" or "resolved"
    severity: str
    subject: Subject
    ts_ns: int
    since_ns: int  # when the episode started (== ts_ns for "firing")
    value: float | None
    message: str
    notify: tuple[str, ...] = ()
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        """The payload published on ``wellsense/v1/<study>/_alerts`` (docs/rules.md)."""
        s = self.subject
        out: dict[str, Any] = {
            "schema": ALERT_SCHEMA,
            "study": self.study,
            "rule": self.rule,
            "state": self.state,
            "severity": self.severity,
            "scope": s.scope,
        }
        if s.participant:
            out["participant"] = s.participant
        if s.device:
            out["device"] = s.device
        if s.gateway:
            out["gateway"] = s.gateway
        out.update(
            ts_ns=self.ts_ns,
            since_ns=self.since_ns,
            value=self.value,
            message=self.message,
            notify=list(self.notify),
            description=self.description,
        )
        return out


@dataclass(slots=True)
class _State:
    firing: bool = False
    fired_ns: int | None = None  # last time it fired (cooldown reference)
    value: float | None = None
    message: str = ""
    suppressed: int = 0


Publish = Callable[[AlertEvent, dict[str, Any]], None]
Write = Callable[[AlertEvent], None]


@dataclass(slots=True)
class EngineCounters:
    evaluations: int = 0
    fired: int = 0
    resolved: int = 0
    suppressed: int = 0
    unknown: int = 0
    sink_errors: int = 0


@dataclass(slots=True)
class _Participant:
    days: dict[dt.date, dict[str, Value]] = field(default_factory=dict)


class RuleEngine:
    """Evaluates a rule set; one instance per study (per worker partition).

    Args:
        rules: a checked :class:`RuleSet` (or rules) from :func:`load_rules`.
        study: the study id (alert payloads and tags).
        publish: called with each event and the subject's current retained state
            (see :meth:`retained_state`); the MQTT side.
        write: called with each event; the InfluxDB side.
        clock: ns since the Unix epoch; injected so tests and history replays
            control time.
        baseline_days, baseline_min_days: the personal baseline used for
            ``<feature>_z`` and ``<feature>_robust_z`` when the caller does not
            supply them (defaults of :mod:`processing.features.baseline`).
    """

    def __init__(
        self,
        rules: RuleSet | Iterable[Rule],
        *,
        study: str,
        publish: Publish | None = None,
        write: Write | None = None,
        clock: Callable[[], int] = time.time_ns,
        baseline_days: int = WINDOW_DAYS,
        baseline_min_days: int = MIN_DAYS,
    ) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.study = study
        self.publish = publish
        self.write = write
        self.clock = clock
        self.baseline_days = baseline_days
        self.baseline_min_days = baseline_min_days
        self.counters = EngineCounters()
        self._by_id = {r.id: r for r in self.rules}
        self._daily_rules = [r for r in self.rules if r.kind == "daily"]
        self._status_rules = [r for r in self.rules if r.kind == "status"]
        longest = max((r.condition.days or 1 for r in self._daily_rules), default=1)
        self._keep_days = baseline_days + longest + 1
        self._participants: dict[str, _Participant] = {}
        self._status: dict[Subject, dict[str, Value]] = {}
        self._states: dict[tuple[str, Subject], _State] = {}
        self._z_names = {
            name
            for r in self._daily_rules
            for name in n.names(r.condition.expr)
            | (n.names(r.value) if r.value is not None else set())
            if base_feature(name) is not None
        }

    # -- inputs --------------------------------------------------------------------

    def on_daily_features(
        self, participant: str, day: dt.date, features: Mapping[str, object]
    ) -> list[AlertEvent]:
        """A participant's features of one (complete) day; evaluates the daily rules.

        A day given again replaces the earlier values (a recomputation). Rules
        are evaluated at the participant's newest day.
        """
        self.load_daily(participant, {day: features})
        return self.evaluate_daily(participant)

    def load_daily(self, participant: str, days: Mapping[dt.date, Mapping[str, object]]) -> None:
        """Store daily features without evaluating (warm start from stored history)."""
        p = self._participants.setdefault(participant, _Participant())
        for day, features in days.items():
            p.days[day] = {k: known(v) for k, v in features.items()}
        if p.days:
            newest = max(p.days)
            cutoff = newest - dt.timedelta(days=self._keep_days)
            for old in [d for d in p.days if d < cutoff]:
                del p.days[old]

    def on_status(self, subject: Subject, values: Mapping[str, object]) -> list[AlertEvent]:
        """New status values of a subject (partial updates merge); evaluates its status rules.

        Accepted inputs per scope are :data:`STATUS_INPUTS`; timestamps
        (``*_ns``) are turned into ``minutes_since_*`` at evaluation time.
        """
        allowed = STATUS_INPUTS[subject.scope]
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise ValueError(
                f"status input {unknown[0]!r} is not one of {sorted(allowed)} "
                f"for scope {subject.scope}"
            )
        current = self._status.setdefault(subject, {})
        for key, value in values.items():
            current[key] = value if key.endswith("_ns") and isinstance(value, int) else known(value)
        return self._evaluate_status(subject, self.clock())

    def forget(self, subject: Subject) -> None:
        """Drop a subject's status (for example after erasure or withdrawal)."""
        self._status.pop(subject, None)
        if subject.scope == "participant":
            self._participants.pop(subject.participant, None)

    def forget_participant(self, participant: str) -> int:
        """Drop everything about an erased participant (status, days, alert states).

        Afterwards no rule can fire for them (not even a no-data rule, whose
        input would otherwise keep ageing). Returns the subjects forgotten.
        """
        gone = {s for s in self._status if s.participant == participant}
        gone |= {s for _r, s in self._states if s.participant == participant}
        for subject in gone:
            self._status.pop(subject, None)
        for key in [k for k in self._states if k[1].participant == participant]:
            del self._states[key]
        had_days = self._participants.pop(participant, None) is not None
        return len(gone) + (1 if had_days and not gone else 0)

    def known_participants(self) -> set[str]:
        """Participants the engine holds anything about."""
        return (
            {s.participant for s in self._status if s.participant}
            | {s.participant for _r, s in self._states if s.participant}
            | set(self._participants)
        )

    def tick(self, now_ns: int | None = None) -> list[AlertEvent]:
        """Scheduled evaluation of every status rule (time-based variables advance)."""
        now = self.clock() if now_ns is None else now_ns
        events: list[AlertEvent] = []
        for subject in sorted(self._status):
            events.extend(self._evaluate_status(subject, now))
        return events

    def restore(
        self, rule_id: str, subject: Subject, *, firing: bool, fired_ns: int | None
    ) -> None:
        """Set a rule's state for a subject, e.g. from stored alerts after a restart."""
        st = self._states.setdefault((rule_id, subject), _State())
        st.firing = firing
        st.fired_ns = fired_ns

    # -- evaluation ----------------------------------------------------------------

    def evaluate_daily(self, participant: str) -> list[AlertEvent]:
        """Evaluate the daily rules of one participant at their newest day."""
        p = self._participants.get(participant)
        if p is None or not p.days or not self._daily_rules:
            return []
        newest = max(p.days)
        subject = Subject.of_participant(participant)
        now = self.clock()
        events = []
        for rule in self._daily_rules:
            span = rule.condition.days or 1
            days = [newest - dt.timedelta(days=k) for k in range(span - 1, -1, -1)]
            envs = [self._day_env(p, d) for d in days]
            result = kleene_all([evaluate(rule.condition.expr, env) for env in envs])
            node = rule.value_node
            value = evaluate(node, envs[-1]) if node is not None else None
            event = self._transition(rule, subject, result, value, now)
            if event is not None:
                events.append(event)
        return events

    def _day_env(self, p: _Participant, day: dt.date) -> dict[str, Value]:
        env = dict(p.days.get(day, {}))
        for name in self._z_names:
            if env.get(name) is None:
                env[name] = self._z(p, day, name)
        return env

    def _z(self, p: _Participant, day: dt.date, name: str) -> Value:
        base = base_feature(name)
        if base is None or day not in p.days:
            return None
        feature, kind = base
        days = sorted(d for d in p.days if d <= day and day - d <= dt.timedelta(self.baseline_days))
        values = np.array([_num(p.days[d].get(feature)) for d in days], dtype=np.float64)
        if not np.isfinite(values[-1]):
            return None
        b = rolling_baseline(
            np.array(days, dtype="datetime64[D]"),
            values,
            window_days=self.baseline_days,
            min_days=self.baseline_min_days,
        )
        z = b.z[-1] if kind == "z" else b.robust_z[-1]
        return known(float(z))

    def _status_env(self, subject: Subject, now: int) -> dict[str, Value]:
        env: dict[str, Value] = {}
        for key, value in self._status.get(subject, {}).items():
            if key in TIMESTAMP_INPUTS:
                if isinstance(value, int) and not isinstance(value, bool):
                    env[TIMESTAMP_INPUTS[key]] = max(0, now - value) / (60 * NS)
            else:
                env[key] = value
        return env

    def _evaluate_status(self, subject: Subject, now: int) -> list[AlertEvent]:
        env = self._status_env(subject, now)
        events = []
        for rule in self._status_rules:
            if rule.scope != subject.scope:
                continue
            result = evaluate(rule.condition.expr, env)
            node = rule.value_node
            value = evaluate(node, env) if node is not None else None
            event = self._transition(rule, subject, result, value, now)
            if event is not None:
                events.append(event)
        return events

    def _transition(
        self, rule: Rule, subject: Subject, result: Value, value: Value, now: int
    ) -> AlertEvent | None:
        self.counters.evaluations += 1
        number = float(value) if value is not None else None
        st = self._states.setdefault((rule.id, subject), _State())
        if result is None:
            self.counters.unknown += 1
            return None
        if result and not st.firing:
            if st.fired_ns is not None and now - st.fired_ns < rule.cooldown_s * NS:
                st.suppressed += 1
                self.counters.suppressed += 1
                return None
            st.firing, st.fired_ns = True, now
            st.value, st.message = number, _message(rule, number, firing=True)
            self.counters.fired += 1
            return self._emit(rule, subject, FIRING, now, now, number, st.message)
        if not result and st.firing:
            st.firing = False
            since = st.fired_ns if st.fired_ns is not None else now
            self.counters.resolved += 1
            message = _message(rule, number, firing=False)
            return self._emit(rule, subject, RESOLVED, now, since, number, message)
        if st.firing:
            st.value = number
        return None

    def _emit(
        self,
        rule: Rule,
        subject: Subject,
        state: str,
        now: int,
        since: int,
        value: float | None,
        message: str,
    ) -> AlertEvent:
        event = AlertEvent(
            study=self.study,
            rule=rule.id,
            state=state,
            severity=rule.severity,
            subject=subject,
            ts_ns=now,
            since_ns=since,
            value=value,
            message=message,
            notify=rule.notify,
            description=rule.description,
        )
        log.info(
            "alert %s",
            state,
            extra={"fields": {"rule": rule.id, "subject": subject.key, "state": state}},
        )
        if self.write is not None:
            write = self.write
            self._call(lambda: write(event), event)
        if self.publish is not None:
            publish = self.publish
            retained = self.retained_state(subject.owner, now)
            self._call(lambda: publish(event, retained), event)
        return event

    def _call(self, fn: Callable[[], None], event: AlertEvent) -> None:
        try:
            fn()
        except Exception:  # a sink must never stop evaluation; the runner retries I/O
            self.counters.sink_errors += 1
            log.exception(
                "alert sink failed",
                extra={"fields": {"rule": event.rule, "subject": event.subject.key}},
            )

    # -- state ---------------------------------------------------------------------

    def open_alerts(self) -> list[tuple[str, Subject]]:
        """(rule id, subject) of every alert that is firing now."""
        return sorted((rid, s) for (rid, s), st in self._states.items() if st.firing)

    def retained_state(self, owner: Subject, now: int | None = None) -> dict[str, Any]:
        """The retained per-participant (or per-gateway) payload: every open alert."""
        alerts: dict[str, Any] = {}
        for (rule_id, subject), st in sorted(self._states.items()):
            if not st.firing or subject.owner != owner:
                continue
            key = rule_id if subject.scope != "device" else f"{rule_id}/{subject.device}"
            rule = self._by_id.get(rule_id)
            alerts[key] = {
                "rule": rule_id,
                "severity": rule.severity if rule else "",
                "since_ns": st.fired_ns,
                "value": st.value,
                "message": st.message,
                **({"device": subject.device} if subject.device else {}),
            }
        out: dict[str, Any] = {"schema": STATE_SCHEMA, "study": self.study, "scope": owner.scope}
        if owner.participant:
            out["participant"] = owner.participant
        if owner.gateway:
            out["gateway"] = owner.gateway
        out["updated_ns"] = self.clock() if now is None else now
        out["alerts"] = alerts
        return out

    def subjects(self) -> list[Subject]:
        return sorted(self._status)


def _num(value: Value) -> float:
    if value is None or isinstance(value, bool):
        return float("nan")
    return float(value)


def _message(rule: Rule, value: float | None, *, firing: bool) -> str:
    shown = f" (value {value:.4g})" if value is not None else ""
    if firing:
        return f"{rule.id}: {rule.condition_text}{shown}"
    return f"{rule.id} resolved: the condition no longer holds{shown}"
