"""Evaluate a checked condition over known values, with three-valued logic.

A missing value (absent, None or NaN) makes whatever depends on it *unknown*
(None). ``and``/``or``/``not`` follow Kleene's logic, so ``false and
unknown`` is false and ``true or unknown`` is true. Arithmetic never raises:
division by zero is unknown. The engine fires on true, resolves on false and
leaves the alert as it is on unknown.

The tree was checked (:mod:`processing.rules.checker`) and its depth bounded
(:mod:`processing.rules.parser`) before it gets here; this module only walks
it. No Python code is generated or executed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from processing.rules import nodes as n

Value = float | bool | None


def known(value: object) -> Value:
    """Normalise an input value: NaN and non-numbers become unknown (None)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        f = float(value)
        return f if math.isfinite(f) else None
    return None


def evaluate(node: n.Node, env: Mapping[str, Value]) -> Value:
    """The value of ``node``; names missing from ``env`` are unknown."""
    if isinstance(node, n.Number):
        return node.value
    if isinstance(node, n.Bool):
        return node.value
    if isinstance(node, n.Name):
        return known(env.get(node.name))
    if isinstance(node, n.Unary):
        v = evaluate(node.operand, env)
        if v is None:
            return None
        return (not v) if node.op == "not" else -float(v)
    if isinstance(node, n.Logical):
        return _logical(node, env)
    if isinstance(node, n.Call):
        args = [evaluate(a, env) for a in node.args]
        if any(a is None for a in args):
            return None
        nums = [float(a) for a in args if a is not None]
        if node.func == "abs":
            return abs(nums[0])
        if node.func == "min":
            return min(nums)
        if node.func == "max":
            return max(nums)
        raise ValueError(f"function {node.func!r} is not whitelisted")  # checker prevents this
    left, right = evaluate(node.left, env), evaluate(node.right, env)
    if left is None or right is None:
        return None
    if isinstance(node, n.Arith):
        return _arith(node.op, float(left), float(right))
    return _compare(node.op, left, right)


def _logical(node: n.Logical, env: Mapping[str, Value]) -> Value:
    left = evaluate(node.left, env)
    dominant = node.op == "or"  # true dominates 'or', false dominates 'and'
    if left is not None and bool(left) is dominant:
        return dominant
    right = evaluate(node.right, env)
    if right is not None and bool(right) is dominant:
        return dominant
    if left is None or right is None:
        return None
    return not dominant


def _arith(op: str, a: float, b: float) -> Value:
    if op == "+":
        r = a + b
    elif op == "-":
        r = a - b
    elif op == "*":
        r = a * b
    elif b == 0:
        return None
    else:
        r = a / b
    return r if math.isfinite(r) else None


def _compare(op: str, a: float | bool, b: float | bool) -> bool:
    if op == "==":
        return a == b
    if op == "!=":
        return a != b
    x, y = float(a), float(b)
    if op == "<":
        return x < y
    if op == "<=":
        return x <= y
    if op == ">":
        return x > y
    return x >= y


def kleene_all(values: list[Value]) -> Value:
    """True if all are true, false if any is false, else unknown (for 'on N days')."""
    if any(v is not None and not v for v in values):
        return False
    if any(v is None for v in values):
        return None
    return True
