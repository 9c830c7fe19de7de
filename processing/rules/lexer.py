"""Tokens of the condition language (see docs/rules.md, "Grammar").

The lexer accepts a small, fixed alphabet. Anything outside it (quotes, dots,
brackets, backslashes, ``__dunder__`` names ...) is rejected here with the
offending text and its offset, before a parser ever sees it.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final

from processing.rules.errors import RuleLimitError, RuleSyntaxError

MAX_CONDITION_CHARS: Final = 500
MAX_TOKENS: Final = 120
MAX_NAME_CHARS: Final = 64
MAX_NUMBER_CHARS: Final = 24

KEYWORDS: Final = frozenset({"and", "or", "not", "true", "false", "on", "consecutive", "days"})
OPERATORS: Final = ("<=", ">=", "==", "!=", "<", ">", "+", "-", "*", "/", "(", ")", ",")

_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPACE = re.compile(r"[ \t\r\n]+")

# Text that people (or attackers) try, with what to say about it.
_HINTS: Final = {
    ".": "attribute access ('.') is not part of the rule language",
    "'": "strings are not part of the rule language",
    '"': "strings are not part of the rule language",
    "[": "indexing ('[') is not part of the rule language",
    "]": "indexing (']') is not part of the rule language",
    "{": "'{' is not part of the rule language",
    "}": "'}' is not part of the rule language",
    "\\": "backslashes are not part of the rule language",
    "=": "use '==' to compare ('=' assigns nothing here)",
    "&&": "use 'and'",
    "||": "use 'or'",
    "&": "use 'and'",
    "|": "use 'or'",
    "!": "use 'not' (or '!=' to compare)",
    "**": "'**' (power) is not supported",
    "%": "'%' (modulo) is not supported",
    ";": "one expression per condition: ';' is not allowed",
    ":": "':' is not part of the rule language",
    "@": "'@' is not part of the rule language",
    "`": "'`' is not part of the rule language",
    "$": "'$' is not part of the rule language",
    "#": "comments belong in the TOML file, outside the condition string",
}


class Kind(enum.Enum):
    NUMBER = "number"
    NAME = "name"
    KEYWORD = "keyword"
    OP = "operator"
    END = "end of condition"


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    text: str
    offset: int  # 0-based offset into the condition text

    def __str__(self) -> str:
        return "end of condition" if self.kind is Kind.END else repr(self.text)


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens (ending with an END token) or raise with the offset."""
    if len(text) > MAX_CONDITION_CHARS:
        raise _error(
            RuleLimitError,
            f"condition is {len(text)} characters long; the limit is {MAX_CONDITION_CHARS}",
            MAX_CONDITION_CHARS,
            text[MAX_CONDITION_CHARS : MAX_CONDITION_CHARS + 1],
        )
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        if m := _SPACE.match(text, pos):
            pos = m.end()
            continue
        if len(tokens) >= MAX_TOKENS:
            raise _error(
                RuleLimitError,
                f"condition has more than {MAX_TOKENS} tokens",
                pos,
                text[pos : pos + 1],
            )
        tokens.append(_next(text, pos))
        pos = tokens[-1].offset + len(tokens[-1].text)
    tokens.append(Token(Kind.END, "", len(text)))
    return tokens


def _next(text: str, pos: int) -> Token:
    if m := _NUMBER.match(text, pos):
        word = m.group()
        end = m.end()
        if end < len(text) and (text[end].isalpha() or text[end] in "_."):
            bad = re.match(r"[A-Za-z0-9_.]+", text[pos:])
            raise _error(RuleSyntaxError, "malformed number", pos, bad.group() if bad else word)
        if len(word) > MAX_NUMBER_CHARS:
            raise _error(RuleLimitError, "number literal is too long", pos, word)
        return Token(Kind.NUMBER, word, pos)
    if m := _NAME.match(text, pos):
        return _name(m.group(), pos)
    for op in ("&&", "||", "**"):
        if text.startswith(op, pos):
            raise _error(RuleSyntaxError, _HINTS[op], pos, op)
    for op in OPERATORS:
        if text.startswith(op, pos):
            return Token(Kind.OP, op, pos)
    ch = text[pos]
    hint = _HINTS.get(ch)
    if hint is None:
        printable = ch if ch.isprintable() else f"\\x{ord(ch):02x}"
        hint = f"unexpected character {printable!r}"
    raise _error(RuleSyntaxError, hint, pos, ch)


def _name(word: str, pos: int) -> Token:
    if word.startswith("_") or "__" in word:
        raise _error(
            RuleSyntaxError,
            f"names may not start with '_' or contain '__' (got {word!r})",
            pos,
            word,
        )
    if len(word) > MAX_NAME_CHARS:
        raise _error(RuleLimitError, f"name longer than {MAX_NAME_CHARS} characters", pos, word)
    if word in KEYWORDS:
        return Token(Kind.KEYWORD, word, pos)
    if word in ("True", "False"):
        raise _error(RuleSyntaxError, f"write {word.lower()!r} (lower case)", pos, word)
    if word in ("AND", "OR", "NOT", "And", "Or", "Not"):
        raise _error(RuleSyntaxError, f"write {word.lower()!r} (lower case)", pos, word)
    return Token(Kind.NAME, word, pos)


def _error(cls: type[RuleSyntaxError], message: str, offset: int, token: str) -> RuleSyntaxError:
    return cls(message, token=token, offset=offset)
