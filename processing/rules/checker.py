"""Type checking and linting of a parsed condition against the vocabulary.

Returns problems instead of raising, so ``wellsense rules check`` can report
every problem of a rule set in one run. Offsets are relative to the
condition text; the loader turns them into file positions.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass

from processing.rules import nodes as n
from processing.rules.errors import RuleError, RuleLintWarning, RuleTypeError
from processing.rules.vocabulary import FUNCTIONS, VARIABLES, Kind, Type, Variable


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What checking found: the problems and, if there are none, the kind of the condition."""

    problems: list[RuleError]
    kind: Kind | None  # "daily" or "status"; None when the condition reads no variable


def check(cond: n.Condition, scope: str, *, what: str = "condition") -> CheckResult:
    """Type-check ``cond`` for a rule of ``scope``; lint its thresholds."""
    c = _Checker(scope)
    top = c.type_of(cond.expr)
    if top is not None and top != "bool" and what == "condition":
        c.error(
            f"a condition must be true or false, but this is a {top}", cond.expr, _width(cond.expr)
        )
    if top is not None and top != "number" and what == "value":
        c.error(f"'value' must be a number, but this is a {top}", cond.expr, _width(cond.expr))
    kinds = {VARIABLES[name].kind for name in n.names(cond.expr) if name in VARIABLES}
    kind: Kind | None = None
    if len(kinds) > 1:
        c.problems.append(
            RuleTypeError(
                "a condition reads either daily features or status variables, not both "
                "(they are evaluated at different times; write two rules)",
                token=_first_token(cond.expr),
                offset=_first_offset(cond.expr),
            )
        )
    elif kinds:
        kind = kinds.pop()
    if cond.days is not None and kind == "status":
        c.problems.append(
            RuleTypeError(
                "'on N consecutive days' needs daily features; status variables have one "
                "current value, not one per day",
                token="on",
                offset=cond.days_offset,
            )
        )
    c.lint(cond.expr)
    return CheckResult(c.problems, kind)


def _first_offset(node: n.Node) -> int:
    return min(x.offset for x in n.walk(node))


def _first_token(node: n.Node) -> str:
    first = min(n.walk(node), key=lambda x: x.offset)
    return first.name if isinstance(first, n.Name) else ""


def _width(node: n.Node) -> str:
    if isinstance(node, n.Name):
        return node.name
    if isinstance(node, n.Call):
        return node.func
    if isinstance(node, n.Number):
        return node.text
    if isinstance(node, n.Unary | n.Arith | n.Logical | n.Compare):
        return node.op
    return "true" if node.value else "false"


class _Checker:
    def __init__(self, scope: str) -> None:
        self.scope = scope
        self.problems: list[RuleError] = []

    def error(self, message: str, node: n.Node, token: str) -> None:
        self.problems.append(RuleTypeError(message, token=token, offset=node.offset))

    def warn(self, message: str, node: n.Node, token: str) -> None:
        self.problems.append(RuleLintWarning(message, token=token, offset=node.offset))

    # -- types -----------------------------------------------------------------------

    def type_of(self, node: n.Node) -> Type | None:
        """The node's type, or None after reporting a problem below it."""
        if isinstance(node, n.Number):
            if not math.isfinite(node.value) or abs(node.value) > 1e12:
                self.error("number out of range (|x| <= 1e12)", node, node.text)
                return None
            return "number"
        if isinstance(node, n.Bool):
            return "bool"
        if isinstance(node, n.Name):
            return self.name(node)
        if isinstance(node, n.Call):
            return self.call(node)
        if isinstance(node, n.Unary):
            inner = self.type_of(node.operand)
            want: Type = "number" if node.op == "-" else "bool"
            if inner is not None and inner != want:
                self.error(f"'{node.op}' needs a {want}, got a {inner}", node, node.op)
                return None
            return want if inner is not None else None
        left, right = self.type_of(node.left), self.type_of(node.right)
        if left is None or right is None:
            return None
        if isinstance(node, n.Logical):
            if left != "bool" or right != "bool":
                self.error(
                    f"'{node.op}' combines true/false values, got {left} {node.op} {right}",
                    node,
                    node.op,
                )
                return None
            return "bool"
        if isinstance(node, n.Arith):
            if left != "number" or right != "number":
                self.error(f"'{node.op}' needs numbers, got {left} and {right}", node, node.op)
                return None
            if node.op == "/" and isinstance(node.right, n.Number) and node.right.value == 0:
                self.error("division by zero", node, node.op)
                return None
            return "number"
        # comparison
        if node.op in ("==", "!="):
            if left != right:
                self.error(f"'{node.op}' compares a {left} with a {right}", node, node.op)
                return None
        elif left != "number" or right != "number":
            self.error(f"'{node.op}' orders numbers, got {left} and {right}", node, node.op)
            return None
        return "bool"

    def name(self, node: n.Name) -> Type | None:
        var = VARIABLES.get(node.name)
        if var is None:
            near = difflib.get_close_matches(node.name, list(VARIABLES), n=1, cutoff=0.75)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            self.error(f"unknown feature or variable '{node.name}'{hint}", node, node.name)
            return None
        if var.type == "label":
            self.error(
                f"'{node.name}' is a {var.unit} value, not a number; rules compare numbers",
                node,
                node.name,
            )
            return None
        if self.scope not in var.scopes:
            where = " or ".join(sorted(var.scopes))
            self.error(
                f"'{node.name}' is a {where} variable; this rule's scope is {self.scope}",
                node,
                node.name,
            )
            return None
        return var.type

    def call(self, node: n.Call) -> Type | None:
        arity = FUNCTIONS.get(node.func)
        if arity is None:
            allowed = ", ".join(sorted(FUNCTIONS))
            self.error(f"unknown function '{node.func}' (allowed: {allowed})", node, node.func)
            return None
        lo, hi = arity
        if not lo <= len(node.args) <= hi:
            count = f"{lo}" if lo == hi else f"{lo} to {hi}"
            self.error(
                f"{node.func}() takes {count} arguments, got {len(node.args)}", node, node.func
            )
            return None
        ok = True
        for arg in node.args:
            t = self.type_of(arg)
            if t is None:
                ok = False
            elif t != "number":
                self.error(f"{node.func}() takes numbers, got a {t}", arg, _width(arg))
                ok = False
        return "number" if ok else None

    # -- thresholds ------------------------------------------------------------------

    def lint(self, root: n.Node) -> None:
        for node in n.walk(root):
            if not isinstance(node, n.Compare):
                continue
            left, right = _constant(node.left), _constant(node.right)
            if left is not None and right is not None:
                self.warn("this comparison has no variable: it is always the same", node, node.op)
                continue
            if isinstance(node.left, n.Name) and right is not None:
                self.threshold(node, node.left, node.op, right)
            elif isinstance(node.right, n.Name) and left is not None:
                self.threshold(node, node.right, _MIRROR[node.op], left)

    def threshold(self, node: n.Compare, name: n.Name, op: str, c: float) -> None:
        var = VARIABLES.get(name.name)
        if var is None or var.type != "number":
            return
        verdict = _verdict(var, op, c)
        if verdict is None:
            return
        text = f"{name.name} {op} {_fmt(c)}"
        span = f"{_fmt(var.lo)}..{_fmt(var.hi)}" + (f" {var.unit}" if var.unit else "")
        if verdict == "never":
            self.error(
                f"impossible threshold: {name.name} is within {span}, so '{text}' is never true",
                node,
                node.op,
            )
        else:
            self.warn(
                f"threshold always met: {name.name} is within {span}, so '{text}' is always "
                "true (the rule would fire whenever the value is known)",
                node,
                node.op,
            )


_MIRROR = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def _constant(node: n.Node) -> float | None:
    if isinstance(node, n.Number):
        return node.value
    if isinstance(node, n.Unary) and node.op == "-" and isinstance(node.operand, n.Number):
        return -node.operand.value
    return None


def _verdict(var: Variable, op: str, c: float) -> str | None:
    lo, hi = var.lo, var.hi
    never = {
        "<": c <= lo,
        "<=": c < lo,
        ">": c >= hi,
        ">=": c > hi,
        "==": c < lo or c > hi,
        "!=": False,
    }[op]
    always = {
        "<": c > hi,
        "<=": c >= hi,
        ">": c < lo,
        ">=": c <= lo,
        "==": False,
        "!=": c < lo or c > hi,
    }[op]
    if never:
        return "never"
    if always:
        return "always"
    return None


def _fmt(x: float) -> str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:g}"
