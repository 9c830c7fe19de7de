"""The syntax tree of a condition: frozen dataclasses, each with its source offset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias


@dataclass(frozen=True, slots=True)
class Number:
    value: float
    text: str
    offset: int


@dataclass(frozen=True, slots=True)
class Bool:
    value: bool
    offset: int


@dataclass(frozen=True, slots=True)
class Name:
    name: str
    offset: int


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # "-" or "not"
    operand: Node
    offset: int


@dataclass(frozen=True, slots=True)
class Arith:
    op: str  # "+", "-", "*", "/"
    left: Node
    right: Node
    offset: int


@dataclass(frozen=True, slots=True)
class Logical:
    op: str  # "and", "or"
    left: Node
    right: Node
    offset: int


@dataclass(frozen=True, slots=True)
class Compare:
    op: str  # "<", "<=", ">", ">=", "==", "!="
    left: Node
    right: Node
    offset: int


@dataclass(frozen=True, slots=True)
class Call:
    func: str
    args: tuple[Node, ...]
    offset: int


Node: TypeAlias = Number | Bool | Name | Unary | Arith | Logical | Compare | Call


@dataclass(frozen=True, slots=True)
class Condition:
    """A whole condition: ``expr`` must hold on ``days`` consecutive days (None: now)."""

    expr: Node
    days: int | None = None
    days_offset: int = 0


def walk(node: Node) -> list[Node]:
    """Every node of the tree, parents before children (iterative: no recursion limit)."""
    out: list[Node] = []
    stack: list[Node] = [node]
    while stack:
        n = stack.pop()
        out.append(n)
        if isinstance(n, Unary):
            stack.append(n.operand)
        elif isinstance(n, Arith | Logical | Compare):
            stack.extend((n.right, n.left))
        elif isinstance(n, Call):
            stack.extend(reversed(n.args))
    return out


def names(node: Node) -> set[str]:
    """The variable names a tree reads."""
    return {n.name for n in walk(node) if isinstance(n, Name)}


_PREC = {"or": 1, "and": 2, "not": 3, "<": 4, "<=": 4, ">": 4, ">=": 4, "==": 4, "!=": 4}
_PREC.update({"+": 5, "-": 5, "*": 6, "/": 6})
_ATOM = 8


def _prec(node: Node) -> int:
    if isinstance(node, Unary):
        return 3 if node.op == "not" else 7
    if isinstance(node, Arith | Logical | Compare):
        return _PREC[node.op]
    return _ATOM


def unparse(node: Node) -> str:
    """Canonical text of a tree, with parentheses only where precedence needs them."""
    if isinstance(node, Number):
        return node.text
    if isinstance(node, Bool):
        return "true" if node.value else "false"
    if isinstance(node, Name):
        return node.name
    if isinstance(node, Call):
        return f"{node.func}({', '.join(unparse(a) for a in node.args)})"
    if isinstance(node, Unary):
        inner = unparse(node.operand)
        if _prec(node.operand) < _prec(node):
            inner = f"({inner})"
        return f"-{inner}" if node.op == "-" else f"not {inner}"
    p = _prec(node)
    left, right = unparse(node.left), unparse(node.right)
    non_assoc = isinstance(node, Compare)
    if _prec(node.left) < p or (non_assoc and _prec(node.left) == p):
        left = f"({left})"
    if _prec(node.right) <= p:
        right = f"({right})"
    return f"{left} {node.op} {right}"
