"""Rule files: TOML in, checked :class:`Rule` objects out (or every error at once).

A rule file holds one or more ``[[rule]]`` tables (docs/rules.md). Loading
parses and checks every condition; if any rule of the set has an error, the
whole set is refused with :class:`RuleSetError` and nothing runs. Errors name
the file, the line and the column of the offending token.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from collector.tomlconfig import parse_toml
from processing.rules import nodes as n
from processing.rules.checker import check
from processing.rules.errors import (
    Location,
    RuleError,
    RuleFileError,
    RuleLimitError,
    RuleSetError,
    RuleSyntaxError,
)
from processing.rules.parser import parse
from processing.rules.vocabulary import Kind

MAX_FILE_BYTES: Final = 256 * 1024
MAX_RULES_PER_FILE: Final = 100
MAX_RULES: Final = 1000
SCOPES: Final = ("participant", "device", "gateway")
SEVERITIES: Final = ("info", "warning", "critical")
MAX_COOLDOWN_S: Final = 90 * 86400

_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_RECIPIENT = re.compile(r"^[a-z0-9][a-z0-9_.@+-]{0,127}$")
_DURATION = re.compile(r"^\s*([0-9]+)\s*(s|m|min|h|d)\s*$")
_UNIT_S: Final = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_KEYS: Final = (
    "id",
    "description",
    "scope",
    "condition",
    "severity",
    "cooldown",
    "notify",
    "value",
    "enabled",
)


@dataclass(frozen=True, slots=True)
class Rule:
    """One checked rule. ``kind`` says when it is evaluated: ``daily`` or ``status``."""

    id: str
    description: str
    scope: str
    condition: n.Condition
    condition_text: str
    kind: Kind
    severity: str
    cooldown_s: int
    notify: tuple[str, ...]
    value: n.Node | None = None
    location: Location = field(default_factory=Location)

    @property
    def value_node(self) -> n.Node | None:
        """What ``value`` reports: the ``value`` expression, else the first comparison's left."""
        if self.value is not None:
            return self.value
        for node in n.walk(self.condition.expr):
            if isinstance(node, n.Compare):
                return node.left
        return None


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...]
    warnings: tuple[RuleError, ...] = ()

    def __iter__(self) -> Any:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def by_id(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)


def parse_duration(text: str) -> int:
    """Seconds in ``"30m"``, ``"6h"``, ``"7d"``, ``"0s"``; raise ValueError otherwise."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"expected a duration such as '30m', '6h' or '7d', got {text!r}")
    return int(m.group(1)) * _UNIT_S[m.group(2)]


# --------------------------------------------------------------------------- positions


class _SourceMap:
    """Finds the line of each ``[[rule]]`` table and its keys in the raw text."""

    def __init__(self, path: Path | None, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.headers = [
            i for i, line in enumerate(self.lines) if re.match(r"^\s*\[\[\s*rule\s*\]\]", line)
        ]

    def _range(self, index: int) -> range:
        if index >= len(self.headers):
            return range(0)
        start = self.headers[index]
        end = self.headers[index + 1] if index + 1 < len(self.headers) else len(self.lines)
        return range(start, end)

    def rule(self, index: int) -> Location:
        rows = self._range(index)
        if not rows:
            return Location(self.path)
        return Location(self.path, rows.start + 1, 1, self.lines[rows.start])

    def key(self, index: int, key: str) -> Location:
        for i in self._range(index):
            m = re.match(rf"^\s*({re.escape(key)}|\"{re.escape(key)}\")\s*=", self.lines[i])
            if m:
                return Location(self.path, i + 1, m.start(1) + 1, self.lines[i])
        return self.rule(index)

    def in_string(self, index: int, key: str, offset: int) -> Location:
        """The file position of character ``offset`` of string value ``key``."""
        loc = self.key(index, key)
        if not loc.line:
            return loc
        row = loc.line - 1
        line = self.lines[row]
        eq = line.index("=", loc.column - 1)
        rest = line[eq + 1 :]
        start = eq + 1 + (len(rest) - len(rest.lstrip()))
        quote = line[start : start + 3]
        if quote in ('"""', "'''"):
            return self._multiline(row, start + 3, quote, offset)
        if start >= len(line) or line[start] not in "\"'":
            return loc
        col = _raw_column(line, start + 1, offset, basic=line[start] == '"')
        return Location(self.path, row + 1, col + 1, line)

    def _multiline(self, row: int, col: int, quote: str, offset: int) -> Location:
        if col >= len(self.lines[row].rstrip()):  # a newline right after the quotes is trimmed
            row, col = row + 1, 0
        remaining = offset
        while row < len(self.lines):
            line = self.lines[row]
            if remaining <= len(line) - col:
                return Location(self.path, row + 1, col + remaining + 1, line)
            remaining -= len(line) - col + 1
            row, col = row + 1, 0
        return Location(self.path, len(self.lines), 1, self.lines[-1] if self.lines else "")


def _raw_column(line: str, start: int, offset: int, *, basic: bool) -> int:
    """Column of decoded character ``offset`` in a one-line TOML string starting at ``start``."""
    i, decoded = start, 0
    while i < len(line) and decoded < offset:
        if basic and line[i] == "\\":
            nxt = line[i + 1 : i + 2]
            i += {"u": 6, "U": 10}.get(nxt, 2)
        else:
            i += 1
        decoded += 1
    return i


# --------------------------------------------------------------------------- loading


def load_text(text: str, path: Path | None = None) -> tuple[list[Rule], list[RuleError]]:
    """Rules of one file and every problem found (errors and warnings)."""
    problems: list[RuleError] = []
    if len(text.encode()) > MAX_FILE_BYTES:
        return [], [
            RuleLimitError(f"file larger than {MAX_FILE_BYTES} bytes", location=Location(path))
        ]
    try:
        data = parse_toml(text)
    except tomllib.TOMLDecodeError as exc:
        return [], [_toml_error(exc, path, text)]
    except ValueError as exc:  # nan/inf, or nesting deeper than any rule file needs
        return [], [RuleFileError(f"not usable TOML: {exc}", location=Location(path))]
    src = _SourceMap(path, text)
    unknown = sorted(set(data) - {"rule"})
    if unknown:
        problems.append(
            RuleFileError(
                f"unknown top-level key '{unknown[0]}' (a rule file holds [[rule]] tables)",
                location=Location(path, 1),
            )
        )
    tables = data.get("rule", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        problems.append(
            RuleFileError("'rule' must be an array of tables: [[rule]]", location=Location(path, 1))
        )
        return [], problems
    if len(tables) > MAX_RULES_PER_FILE:
        problems.append(
            RuleLimitError(
                f"{len(tables)} rules in one file; the limit is {MAX_RULES_PER_FILE}",
                location=src.rule(MAX_RULES_PER_FILE),
            )
        )
        return [], problems
    rules: list[Rule] = []
    for index, table in enumerate(tables):
        rule = _rule(index, table, src, problems)
        if rule is not None:
            rules.append(rule)
    return rules, problems


def _toml_error(exc: tomllib.TOMLDecodeError, path: Path | None, text: str) -> RuleError:
    message = str(exc)
    m = re.search(r"\(at line (\d+), column (\d+)\)", message)
    if not m:
        return RuleFileError(f"not valid TOML: {message}", location=Location(path))
    line, col = int(m.group(1)), int(m.group(2))
    lines = text.splitlines()
    source = lines[line - 1] if 0 < line <= len(lines) else ""
    short = message[: m.start()].strip()
    token = source[col - 1 : col] if 0 < col <= len(source) else ""
    return RuleFileError(
        f"not valid TOML: {short}", location=Location(path, line, col, source), token=token
    )


def _rule(index: int, t: dict[str, Any], src: _SourceMap, problems: list[RuleError]) -> Rule | None:
    before = sum(1 for p in problems if p.severity == "error")

    def fail(key: str, message: str) -> None:
        problems.append(RuleFileError(message, location=src.key(index, key), token=key))

    for key in sorted(set(t) - set(_KEYS)):
        near = difflib.get_close_matches(key, _KEYS, n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        fail(key, f"unknown key '{key}'{hint}")

    def string(key: str, required: bool = True) -> str | None:
        if key not in t:
            if required:
                problems.append(
                    RuleFileError(
                        f"rule has no '{key}'", location=src.rule(index), token="[[rule]]"
                    )
                )
            return None
        value = t[key]
        if not isinstance(value, str):
            fail(key, f"'{key}' must be a string, got {type(value).__name__}")
            return None
        return value

    rule_id = string("id")
    if rule_id is not None and not _ID.match(rule_id):
        fail("id", f"id {rule_id!r}: lower-case letters, digits, '-' and '_' (max 63)")
    description = string("description")
    if description is not None and not description.strip():
        fail("description", "description is empty")
    scope = string("scope")
    if scope is not None and scope not in SCOPES:
        fail("scope", f"scope {scope!r} is not one of {', '.join(SCOPES)}")
    severity = string("severity")
    if severity is not None and severity not in SEVERITIES:
        fail("severity", f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    cooldown_text = string("cooldown")
    cooldown_s = 0
    if cooldown_text is not None:
        try:
            cooldown_s = parse_duration(cooldown_text)
        except ValueError as exc:
            fail("cooldown", str(exc))
        else:
            if cooldown_s > MAX_COOLDOWN_S:
                fail("cooldown", "cooldown longer than 90 days")
    notify: tuple[str, ...] = ()
    raw_notify = t.get("notify")
    if raw_notify is None:
        problems.append(
            RuleFileError(
                "rule has no 'notify' (who is told)", location=src.rule(index), token="[[rule]]"
            )
        )
    elif (
        not isinstance(raw_notify, list)
        or not raw_notify
        or not all(isinstance(r, str) and _RECIPIENT.match(r) for r in raw_notify)
    ):
        fail("notify", "notify must be a non-empty list of recipient names such as 'study-team'")
    else:
        notify = tuple(raw_notify)
    enabled = t.get("enabled", True)
    if not isinstance(enabled, bool):
        fail("enabled", "enabled must be true or false")

    text = string("condition")
    condition: n.Condition | None = None
    kind: Kind | None = None
    if text is not None and scope in SCOPES:
        condition, kind = _expression(index, "condition", text, scope, src, problems)
    value_node: n.Node | None = None
    value_text = string("value", required=False)
    if value_text is not None and scope in SCOPES:
        parsed, _ = _expression(index, "value", value_text, scope, src, problems)
        value_node = parsed.expr if parsed is not None else None

    errors = sum(1 for p in problems if p.severity == "error") - before
    if errors or enabled is False:
        return None
    assert rule_id and description and scope and severity and text and condition is not None
    if kind is None:
        fail("condition", "the condition reads no feature or status variable")
        return None
    return Rule(
        id=rule_id,
        description=description.strip(),
        scope=scope,
        condition=condition,
        condition_text=text,
        kind=kind,
        severity=severity,
        cooldown_s=cooldown_s,
        notify=notify,
        value=value_node,
        location=src.rule(index),
    )


def _expression(
    index: int, key: str, text: str, scope: str, src: _SourceMap, problems: list[RuleError]
) -> tuple[n.Condition | None, Kind | None]:
    def place(err: RuleError) -> RuleError:
        loc = src.in_string(index, key, err.offset or 0)
        return err.at(loc)

    try:
        cond = parse(text)
    except RuleSyntaxError as err:
        problems.append(place(err))
        return None, None
    if key == "value" and cond.days is not None:
        problems.append(
            place(
                RuleSyntaxError(
                    "'on N consecutive days' belongs in the condition",
                    token="on",
                    offset=cond.days_offset,
                )
            )
        )
        return None, None
    result = check(cond, scope, what=key)
    problems.extend(place(p) for p in result.problems)
    if any(p.severity == "error" for p in result.problems):
        return None, None
    return cond, result.kind


def rule_files(directory: Path) -> list[Path]:
    """The ``*.toml`` files of a rule directory, sorted (a file may also be given directly)."""
    if directory.is_file():
        return [directory]
    return sorted(p for p in directory.glob("*.toml") if p.is_file())


def check_dir(directory: Path) -> tuple[list[Rule], list[RuleError]]:
    """Every rule and every problem of a directory (or a single file)."""
    rules: list[Rule] = []
    problems: list[RuleError] = []
    files = rule_files(directory)
    for path in files:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            problems.append(RuleFileError(f"cannot read: {exc.strerror}", location=Location(path)))
            continue
        if len(raw) > MAX_FILE_BYTES:
            problems.append(
                RuleLimitError(f"file larger than {MAX_FILE_BYTES} bytes", location=Location(path))
            )
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(RuleFileError("not UTF-8 text", location=Location(path)))
            continue
        found, file_problems = load_text(text, path)
        rules.extend(found)
        problems.extend(file_problems)
    problems.extend(_duplicates(rules))
    problems.sort(key=_position)
    if len(rules) > MAX_RULES:
        problems.append(
            RuleLimitError(f"more than {MAX_RULES} rules", location=Location(directory))
        )
    return rules, problems


def _position(problem: RuleError) -> tuple[str, int, int]:
    loc = problem.location
    return (str(loc.path or ""), loc.line, loc.column)


def _duplicates(rules: Iterable[Rule]) -> list[RuleError]:
    seen: dict[str, Rule] = {}
    out: list[RuleError] = []
    for rule in rules:
        if rule.id in seen:
            first = seen[rule.id].location
            out.append(
                RuleFileError(
                    f"duplicate rule id '{rule.id}' (first defined at {first})",
                    location=rule.location,
                    token=rule.id,
                )
            )
        else:
            seen[rule.id] = rule
    return out


def load_rules(directory: Path) -> RuleSet:
    """Load and check a rule directory; raise :class:`RuleSetError` if anything is wrong."""
    if not directory.exists():
        raise RuleSetError(
            [RuleFileError("no such file or directory", location=Location(directory))]
        )
    rules, problems = check_dir(directory)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise RuleSetError(errors)
    return RuleSet(tuple(rules), tuple(p for p in problems if p.severity != "error"))


def load_rules_text(text: str, path: Path | None = None) -> RuleSet:
    """Load rules from text (tests, embedded rule sets); same checks as :func:`load_rules`."""
    rules, problems = load_text(text, path)
    problems.extend(_duplicates(rules))
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise RuleSetError(errors)
    return RuleSet(tuple(rules), tuple(p for p in problems if p.severity != "error"))
