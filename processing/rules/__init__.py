"""Declarative alert rules for the study team (docs/rules.md).

    from processing.rules import RuleEngine, Subject, load_rules

    engine = RuleEngine(load_rules(Path("rules")), study="pilot",
                        publish=..., write=..., clock=time.time_ns)
    engine.on_daily_features("p-0001", day, {"rmssd_ms": 41.2, "wear_min": 820})
    engine.on_status(Subject.of_device("p-0001", "strap-1"), {"battery_pct": 12})
    engine.tick()

Rule files are data: a small grammar (:mod:`processing.rules.parser`), a
checker against the feature catalogue (:mod:`processing.rules.checker`) and a
tree-walking evaluator (:mod:`processing.rules.evaluate`); nothing is ever
passed to ``eval``/``exec``.
"""

from processing.rules.engine import AlertEvent, RuleEngine, Subject
from processing.rules.errors import RuleError, RuleSetError
from processing.rules.loader import Rule, RuleSet, load_rules, load_rules_text

__all__ = [
    "AlertEvent",
    "Rule",
    "RuleEngine",
    "RuleError",
    "RuleSet",
    "RuleSetError",
    "Subject",
    "load_rules",
    "load_rules_text",
]
