"""A Pratt (top-down operator precedence) parser for conditions.

Grammar (EBNF; docs/rules.md explains it for rule authors)::

    condition  = expr [ "on" INTEGER "consecutive" "days" ] END
    expr       = or
    or         = and { "or" and }
    and        = not { "and" not }
    not        = "not" not | compare
    compare    = sum [ ( "<" | "<=" | ">" | ">=" | "==" | "!=" ) sum ]
    sum        = product { ( "+" | "-" ) product }
    product    = unary { ( "*" | "/" ) unary }
    unary      = "-" unary | atom
    atom       = NUMBER | "true" | "false" | NAME | NAME "(" [ expr { "," expr } ] ")"
               | "(" expr ")"

Comparisons do not chain (``a < b < c`` is an error, not Python's meaning).
Nesting deeper than :data:`MAX_DEPTH` is rejected, so neither the parser nor
the evaluator can be driven into deep recursion.
"""

from __future__ import annotations

from typing import Final

from processing.rules import nodes as n
from processing.rules.errors import RuleLimitError, RuleSyntaxError
from processing.rules.lexer import Kind, Token, tokenize

MAX_DEPTH: Final = 12
MAX_DAYS: Final = 60

_INFIX: Final = {
    "or": 10,
    "and": 20,
    "<": 40,
    "<=": 40,
    ">": 40,
    ">=": 40,
    "==": 40,
    "!=": 40,
    "+": 50,
    "-": 50,
    "*": 60,
    "/": 60,
}
_NOT_BP: Final = 30
_NEG_BP: Final = 70
_COMPARE_BP: Final = 40


def parse(text: str) -> n.Condition:
    """Parse a condition; raise :class:`RuleSyntaxError` with the token's offset."""
    return _Parser(tokenize(text)).condition()


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    # -- helpers ---------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def advance(self) -> Token:
        tok = self.tokens[self.pos]
        if tok.kind is not Kind.END:
            self.pos += 1
        return tok

    def error(self, message: str, tok: Token | None = None) -> RuleSyntaxError:
        tok = tok or self.tok
        return RuleSyntaxError(message, token=tok.text or " ", offset=tok.offset)

    def expect(self, text: str, what: str) -> Token:
        if self.tok.text != text or self.tok.kind not in (Kind.OP, Kind.KEYWORD):
            raise self.error(f"expected {what}, found {self.tok}")
        return self.advance()

    # -- grammar ---------------------------------------------------------------

    def condition(self) -> n.Condition:
        if self.tok.kind is Kind.END:
            raise self.error("the condition is empty")
        expr = self.expr(0)
        days: int | None = None
        days_offset = 0
        if self.tok.kind is Kind.KEYWORD and self.tok.text == "on":
            on = self.advance()
            count = self.tok
            if count.kind is not Kind.NUMBER or not count.text.isdigit():
                raise self.error(f"expected a whole number of days after 'on', found {count}")
            self.advance()
            days = int(count.text)
            if not 1 <= days <= MAX_DAYS:
                raise self.error(f"'on N consecutive days' needs 1 <= N <= {MAX_DAYS}", count)
            self.expect("consecutive", "'consecutive' (as in 'on 3 consecutive days')")
            self.expect("days", "'days' (as in 'on 3 consecutive days')")
            days_offset = on.offset
        if self.tok.kind is not Kind.END:
            if self.tok.kind is Kind.KEYWORD and self.tok.text in ("on", "consecutive", "days"):
                raise self.error(
                    "'on N consecutive days' may appear once, at the end of the condition"
                )
            raise self.error(f"unexpected {self.tok} after a complete expression")
        return n.Condition(expr, days, days_offset)

    def expr(self, min_bp: int) -> n.Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise RuleLimitError(
                f"expression nested deeper than {MAX_DEPTH} levels",
                token=self.tok.text or " ",
                offset=self.tok.offset,
            )
        try:
            left = self.prefix()
            while True:
                tok = self.tok
                if tok.kind not in (Kind.OP, Kind.KEYWORD) or tok.text not in _INFIX:
                    break
                bp = _INFIX[tok.text]
                if bp <= min_bp:
                    break
                self.advance()
                right = self.expr(bp)
                if bp == _COMPARE_BP:
                    if isinstance(left, n.Compare):
                        raise self.error("comparisons do not chain; write 'a < b and b < c'", tok)
                    left = n.Compare(tok.text, left, right, tok.offset)
                    nxt = self.tok
                    if nxt.text in _INFIX and _INFIX[nxt.text] == _COMPARE_BP:
                        raise self.error("comparisons do not chain; write 'a < b and b < c'", nxt)
                elif tok.text in ("and", "or"):
                    left = n.Logical(tok.text, left, right, tok.offset)
                else:
                    left = n.Arith(tok.text, left, right, tok.offset)
            return left
        finally:
            self.depth -= 1

    def prefix(self) -> n.Node:
        tok = self.advance()
        if tok.kind is Kind.NUMBER:
            return n.Number(float(tok.text), tok.text, tok.offset)
        if tok.kind is Kind.KEYWORD and tok.text in ("true", "false"):
            return n.Bool(tok.text == "true", tok.offset)
        if tok.kind is Kind.KEYWORD and tok.text == "not":
            return n.Unary("not", self.expr(_NOT_BP), tok.offset)
        if tok.kind is Kind.OP and tok.text == "-":
            return n.Unary("-", self.expr(_NEG_BP), tok.offset)
        if tok.kind is Kind.OP and tok.text == "(":
            inner = self.expr(0)
            self.expect(")", "')'")
            return inner
        if tok.kind is Kind.NAME:
            if self.tok.kind is Kind.OP and self.tok.text == "(":
                return self.call(tok)
            return n.Name(tok.text, tok.offset)
        if tok.kind is Kind.END:
            raise self.error("the condition ends where a value was expected", tok)
        raise self.error(f"expected a value, found {tok}", tok)

    def call(self, name: Token) -> n.Call:
        self.advance()  # "("
        args: list[n.Node] = []
        if not (self.tok.kind is Kind.OP and self.tok.text == ")"):
            while True:
                args.append(self.expr(0))
                if self.tok.kind is Kind.OP and self.tok.text == ",":
                    self.advance()
                    continue
                break
        self.expect(")", "')' to close the call")
        return n.Call(name.text, tuple(args), name.offset)
