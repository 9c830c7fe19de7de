"""The rule language: grammar, checks, and hostile rule files (rejected, nothing runs)."""

from __future__ import annotations

import builtins
import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processing.rules import nodes
from processing.rules.engine import RuleEngine, Subject
from processing.rules.errors import (
    RuleError,
    RuleLimitError,
    RuleSetError,
    RuleSyntaxError,
    RuleTypeError,
)
from processing.rules.evaluate import evaluate
from processing.rules.loader import load_rules, load_rules_text, parse_duration
from processing.rules.parser import parse

REPO = Path(__file__).resolve().parents[2]


def rule_text(condition: str, scope: str = "participant", **extra: str) -> str:
    lines = [
        "[[rule]]",
        'id = "r1"',
        'description = "a screening signal for the study team, not a diagnosis"',
        f'scope = "{scope}"',
        f"condition = {condition!r}" if '"' in condition else f'condition = "{condition}"',
        'severity = "info"',
        'cooldown = "1h"',
        'notify = ["study-team"]',
    ]
    lines += [f"{k} = {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def errors_of(text: str, path: Path = Path("rules/x.toml")) -> list[RuleError]:
    with pytest.raises(RuleSetError) as info:
        load_rules_text(text, path)
    return info.value.errors


# --------------------------------------------------------------------------- grammar


@pytest.mark.parametrize(
    ("text", "canonical", "days"),
    [
        ("wear_hours_24h < 10", "wear_hours_24h < 10", None),
        ("rmssd_ms_z < -2 on 3 consecutive days", "rmssd_ms_z < -2", 3),
        ("a < 1 or b > 2 and c == 3", "a < 1 or b > 2 and c == 3", None),
        ("(a < 1 or b > 2) and c == 3", "(a < 1 or b > 2) and c == 3", None),
        ("not a < 1", "not a < 1", None),
        ("not (a < 1 or b)", "not (a < 1 or b)", None),
        ("-(a - b) * 2 < a - (b - c)", "-(a - b) * 2 < a - (b - c)", None),
        ("1 - 2 - 3 > x", "1 - 2 - 3 > x", None),
        ("2 * (3 + x) >= max(a, -b)", "2 * (3 + x) >= max(a, -b)", None),
        ("abs(x_z)>=2", "abs(x_z) >= 2", None),
    ],
)
def test_parse(text: str, canonical: str, days: int | None) -> None:
    cond = parse(text)
    assert nodes.unparse(cond.expr) == canonical
    assert cond.days == days
    # canonical text parses to the same tree shape
    assert nodes.unparse(parse(canonical).expr) == canonical


@pytest.mark.parametrize(
    ("text", "token", "offset"),
    [
        ("", " ", 0),
        ("a <", " ", 3),
        ("a < b < c", "<", 6),
        ("a = 1", "=", 2),
        ("a && b", "&&", 2),
        ("(a < 1", " ", 6),
        ("a < 1 on 3 days", "days", 11),
        ("a < 1 on 0 consecutive days", "0", 9),
        ("a < 1 on 61 consecutive days", "61", 9),
        ("a < 1 on 2.5 consecutive days", "2.5", 9),
        ("on 3 consecutive days", "on", 0),
        ("a < 1 b", "b", 6),
        ("a < 1e", "1e", 4),
        ("a < 12abc", "12abc", 4),
        ("True", "True", 0),
        ("a < 1 AND b", "AND", 6),
    ],
)
def test_syntax_errors_point_at_the_token(text: str, token: str, offset: int) -> None:
    with pytest.raises(RuleSyntaxError) as info:
        parse(text)
    assert (info.value.token, info.value.offset) == (token, offset)


def test_evaluate_three_valued() -> None:
    env = {"a": 1.0, "b": None, "c": float("nan")}

    def ev(text: str) -> object:
        return evaluate(parse(text).expr, env)

    assert ev("a < 2") is True
    assert ev("b < 2") is None and ev("c < 2") is None  # missing and NaN are unknown
    assert ev("a > 2 and b < 2") is False  # false dominates and
    assert ev("a < 2 or b < 2") is True  # true dominates or
    assert ev("a < 2 and b < 2") is None
    assert ev("not b < 2") is None
    assert ev("a / 0 > 1") is None  # never raises
    assert ev("max(a, 3) - abs(-2) == 1") is True


# --------------------------------------------------------------------------- hostile files


HOSTILE = [
    ("__import__('os').system('id') > 0", "names may not start with '_'", "__import__"),
    ("wear_hours_24h.__class__ > 0", "attribute access", "."),
    ("wear_hours_24h.real > 0", "attribute access", "."),
    ("().__class__.__bases__", "attribute access", "."),
    ("__class__ > 1", "names may not start", "__class__"),
    ("wear_hours__24h > 1", "contain '__'", "wear_hours__24h"),
    ('eval("1") > 0', "strings are not part", '"'),
    ("exec('x')", "strings are not part", "'"),
    ("open(1) > 0", "unknown function 'open'", "open"),
    ("getattr(a, b) > 0", "unknown function 'getattr'", "getattr"),
    ("system(1) > 0", "unknown function 'system'", "system"),
    ("lambda: 1", "':' is not part", ":"),
    ("[x for x in y]", "indexing", "["),
    ("a[0] > 1", "indexing", "["),
    ("wear_hours_24h < 10; import os", "';' is not allowed", ";"),
    ("wear_hours_24h < 10 # comment", "comments belong", "#"),
    ("wear_hours_24h ** 99999 > 1", "'**' (power)", "**"),
    ("os > 1", "unknown feature or variable 'os'", "os"),
    ("f'{x}' > 1", "strings are not part", "'"),
    ("`id` > 1", "'`' is not part", "`"),
    ("$HOME > 1", "'$' is not part", "$"),
]


@pytest.mark.parametrize(("condition", "message", "token"), HOSTILE)
def test_hostile_conditions_are_rejected(condition: str, message: str, token: str) -> None:
    errs = errors_of(rule_text(condition))
    assert any(message in e.message and e.token == token for e in errs), [str(e) for e in errs]
    err = next(e for e in errs if message in e.message)
    assert err.location.path == Path("rules/x.toml")
    assert err.location.line == 5  # the condition line
    # the column points at the token inside the quoted string
    line = err.location.source_line
    assert line[err.location.column - 1 :].startswith(token)


def test_huge_and_deep_expressions_are_rejected() -> None:
    long = " or ".join(["wear_hours_24h < 10"] * 40)  # > 500 characters
    assert "characters long" in errors_of(rule_text(long))[0].message
    many = "1" + "+1" * 80 + " > wear_hours_24h"  # < 500 characters, > 120 tokens
    assert "more than 120 tokens" in errors_of(rule_text(many))[0].message
    deep = "(" * 30 + "wear_hours_24h" + ")" * 30 + " < 1"
    err = errors_of(rule_text(deep))[0]
    assert isinstance(err, RuleLimitError) and "nested deeper" in err.message
    assert isinstance(errors_of(rule_text("-" * 40 + "1 < wear_hours_24h"))[0], RuleLimitError)
    assert isinstance(errors_of(rule_text("not " * 40 + "true"))[0], RuleLimitError)
    big = "9" * 40
    assert "too long" in errors_of(rule_text(f"wear_hours_24h < {big}"))[0].message


def test_huge_files_and_too_many_rules_are_rejected(tmp_path: Path) -> None:
    huge = tmp_path / "huge.toml"
    huge.write_text(rule_text("wear_hours_24h < 10") + "#" * (300 * 1024) + "\n")
    with pytest.raises(RuleSetError, match="larger than"):
        load_rules(huge)
    many = "".join(rule_text("wear_hours_24h < 10").replace('"r1"', f'"r{i}"') for i in range(101))
    assert "limit is 100" in errors_of(many)[0].message


def test_nothing_runs_when_any_rule_is_bad(tmp_path: Path) -> None:
    (tmp_path / "good.toml").write_text(rule_text("wear_hours_24h < 10"))
    (tmp_path / "bad.toml").write_text(
        rule_text("__import__('os').system('touch /tmp/pwned') > 0").replace("r1", "r2")
    )
    with pytest.raises(RuleSetError) as info:
        load_rules(tmp_path)
    assert len(info.value.errors) == 1 and "bad.toml:5:" in str(info.value)


def test_no_eval_exec_or_compile_anywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("eval/exec/compile must never be called")

    for name in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, name, forbidden)
    rules = load_rules(REPO / "rules")
    engine = RuleEngine(rules, study="s", clock=lambda: 10**18)
    engine.on_status(Subject.of_participant("p-1"), {"last_sample_ns": 1, "wear_hours_24h": 1})
    engine.on_daily_features("p-1", __import__("datetime").date(2025, 1, 1), {"rmssd_ms_z": -3})
    assert engine.counters.evaluations > 0


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=600))
def test_any_text_either_parses_or_raises_a_rule_error(text: str) -> None:
    with contextlib.suppress(RuleError):
        parse(text)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from([*"()-+*/<>=! ", "not ", "and ", "or ", "a", "1", "x_z", "on 3 "]),
        max_size=120,
    ).map("".join)
)
def test_operator_soup_never_crashes(text: str) -> None:
    with contextlib.suppress(RuleError):
        parse(text)


# --------------------------------------------------------------------------- checks


@pytest.mark.parametrize(
    ("condition", "scope", "message"),
    [
        ("battery_pct < -5", "device", "never true"),
        ("battery_pct > 100", "device", "never true"),
        ("battery_pct >= 101", "device", "never true"),
        ("-5 > battery_pct", "device", "never true"),
        ("wear_hours_24h > 24", "participant", "never true"),
        ("kept_fraction > 1 on 2 consecutive days", "participant", "never true"),
        ("minutes_since_last_sample < 0", "participant", "never true"),
        ("wear_hourz_24h < 10", "participant", "did you mean 'wear_hours_24h'"),
        ("battery_pct < 15", "participant", "is a device variable"),
        ("wear_hours_24h < 10", "gateway", "is a participant variable"),
        ("missing_cause == 1", "participant", "not a number"),
        ("gateway_online == 1", "gateway", "compares a bool with a number"),
        ("gateway_online < 1", "gateway", "orders numbers"),
        ("wear_hours_24h + gateway_online > 1", "participant", "is a gateway variable"),
        ("wear_hours_24h", "participant", "must be true or false"),
        ("wear_hours_24h < 1 and 3", "participant", "combines true/false"),
        ("wear_hours_24h / 0 > 1", "participant", "division by zero"),
        ("max(wear_hours_24h) > 1", "participant", "takes 2 to 8 arguments"),
        ("minutes_since_worn > 60 on 3 consecutive days", "participant", "needs daily"),
        ("rmssd_ms_z < -2 and minutes_since_worn > 60", "participant", "not both"),
        ("1 < 2", "participant", "reads no feature"),
    ],
)
def test_type_and_threshold_errors(condition: str, scope: str, message: str) -> None:
    errs = errors_of(rule_text(condition, scope))
    assert any(message in e.message for e in errs), [e.message for e in errs]
    assert all(e.location.line >= 1 for e in errs)


def test_always_true_is_a_warning_not_an_error() -> None:
    rules = load_rules_text(rule_text("battery_pct <= 100", "device"))
    assert len(rules) == 1 and "always true" in rules.warnings[0].message


def test_file_level_errors() -> None:
    text = rule_text("wear_hours_24h < 10") + rule_text("wear_hours_24h < 5")
    assert "duplicate rule id 'r1'" in errors_of(text)[0].message
    bad = rule_text("wear_hours_24h < 10").replace('severity = "info"', 'severity = "loud"')
    bad = bad.replace('cooldown = "1h"', 'cooldown = "1 week"') + 'colour = "red"\n'
    messages = [(e.location.line, e.message) for e in errors_of(bad)]
    assert [line for line, _ in messages] == sorted(line for line, _ in messages) or messages
    joined = " | ".join(m for _, m in messages)
    assert "severity 'loud'" in joined and "'30m', '6h' or '7d'" in joined
    assert "unknown key 'colour'" in joined
    missing = "[[rule]]\nid = 'x'\n"
    assert any("no 'condition'" in e.message for e in errors_of(missing))
    not_toml = errors_of('[[rule]]\nid = "x\n')[0]
    assert "not valid TOML" in not_toml.message and not_toml.location.line == 2


def test_multiline_condition_positions() -> None:
    text = rule_text("x").replace(
        'condition = "x"', 'condition = """\n  rmssd_ms_z < -2 and\n  system(1) > 0"""'
    )
    err = errors_of(text)[0]
    assert (err.location.line, err.location.column, err.token) == (7, 3, "system")
    assert "^^^^^^" in err.render()


def test_durations() -> None:
    assert [parse_duration(t) for t in ("0s", "30m", "6h", "7d", "90min")] == [
        0,
        1800,
        21600,
        604800,
        5400,
    ]
    for bad in ("", "6", "h", "-1h", "1.5h", "1w"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_default_rules_are_clean_and_say_screening_not_diagnosis() -> None:
    rules = load_rules(REPO / "rules")
    assert not rules.warnings
    assert {r.id for r in rules} == {
        "adherence-no-data",
        "adherence-low-wear",
        "adherence-battery-low",
        "adherence-gateway-offline",
        "quality-hrv-low",
        "baseline-resting-hr-high",
        "baseline-rmssd-low",
        "baseline-activity-low",
    }
    for rule in rules:
        text = rule.description.lower()
        assert "screening signal for the study team" in text and "not a diagnosis" in text


def test_type_error_class() -> None:
    errs = errors_of(rule_text("nope(1) > 0"))
    assert isinstance(errs[0], RuleTypeError)
