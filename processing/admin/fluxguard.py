"""Which Flux the write guard lets through: only the shapes the services send.

Flux is a full language: through a token that may read and write the raw
bucket it can post data to any URL (``import "http"``, ``requests``), open
sockets and databases (``socket``, ``sql``), read secrets, write into other
buckets or other servers (``to()``, ``from(host:, token:)``). The guard so
tokenises every query (strings, comments, datetimes, durations, numbers,
identifiers, operators) and accepts it only if

1. it has no ``import``, ``option``, ``package``, ``builtin`` or
   ``testcase`` statement (the services import no package);
2. every call of ``from`` is exactly ``from(bucket: "<the raw bucket>")``
   (no ``bucketID``, ``host``, ``org`` or ``token``);
3. every bare identifier (one not after ``.`` and not a ``name:`` label) is
   a keyword, an allowed function (:data:`FUNCTIONS`) or a lambda parameter
   of :data:`LAMBDA_PARAMS`: so no variable can alias a function outside the
   list (``t = to``) and no universe function outside it (``to``,
   ``buckets``, ``sleep``...) can be reached;
4. strings hold no ``${`` interpolation (an expression hidden in a string),
   and there is no regex literal or ``/`` (the services use neither).

The list is what :mod:`processing.featurejobs` and
:mod:`processing.rules.influx_source` send (checked by
tests/unit/test_security_flux.py, which records their queries) plus a few
read-only aggregates. A query outside it is refused with 403 and a reason.
"""

from __future__ import annotations

import re
from typing import Final

#: Functions a query may call or pass (``fn: count``): read-only transformations.
FUNCTIONS: Final = frozenset(
    {
        # used by processing (featurejobs) and the rules runner (influx_source)
        "from", "range", "filter", "group", "keep", "map", "sort", "aggregateWindow",
        "last", "first", "pivot", "count", "int", "float", "string",
        # read-only aggregates and shaping, for the tests and operators' checks
        "drop", "limit", "sum", "mean", "min", "max", "distinct", "unique", "yield",
        "bool", "time", "toFloat", "toInt", "toString", "rename", "duplicate", "set",
    }
)  # fmt: skip
KEYWORDS: Final = frozenset({"and", "or", "not", "exists", "if", "then", "else", "with"})
CONSTANTS: Final = frozenset({"true", "false"})
LAMBDA_PARAMS: Final = frozenset({"r"})
FORBIDDEN_STATEMENTS: Final = frozenset({"import", "option", "package", "builtin", "testcase"})
MAX_QUERY_CHARS: Final = 64 * 1024

_TOKEN: Final = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>//[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<datetime>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d))
  | (?P<duration>(?:\d+(?:ns|us|µs|ms|mo|s|m|h|d|w|y))+)
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\|>|=>|==|!=|<=|>=|=~|!~|<-|[-+*%<>=(){}\[\],:.?])
    """,
    re.X | re.S,
)


class FluxRefused(ValueError):
    """The query is outside what the guard allows; the message says why."""


def tokens(flux: str) -> list[tuple[str, str]]:
    """(kind, text) of every token, comments and spaces dropped; FluxRefused if untokenisable."""
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(flux):
        match = _TOKEN.match(flux, pos)
        if match is None:
            raise FluxRefused(f"unexpected character {flux[pos]!r} at offset {pos}")
        kind = match.lastgroup or ""
        if kind not in ("space", "comment"):
            out.append((kind, match.group()))
        pos = match.end()
    return out


def check(flux: str, bucket: str) -> None:
    """Raise :class:`FluxRefused` unless ``flux`` follows the rules in the module docstring."""
    if len(flux) > MAX_QUERY_CHARS:
        raise FluxRefused(f"query longer than {MAX_QUERY_CHARS} characters")
    toks = tokens(flux)
    opened: list[str] = []  # the open brackets around the current token
    for i, (kind, text) in enumerate(toks):
        if kind == "op" and text in "([{":
            opened.append(text)
        elif kind == "op" and text in ")]}" and opened:
            opened.pop()
        if kind == "string":
            if "${" in text:
                raise FluxRefused("string interpolation is not allowed")
            continue
        if kind != "ident":
            continue
        before = toks[i - 1][1] if i else ""
        after = toks[i + 1][1] if i + 1 < len(toks) else ""
        if text in FORBIDDEN_STATEMENTS:
            raise FluxRefused(f"'{text}' is not allowed (the services import nothing)")
        label = after == ":" and before in ("(", ",", "{", "with") and opened[-1:] != ["["]
        if before == "." or label:
            continue  # a member (r._value) or a label (bucket:, fn:, record keys)
        if text == "from":
            expected = [("op", "("), ("ident", "bucket"), ("op", ":")]
            if toks[i + 1 : i + 4] != expected or toks[i + 4 : i + 6] != [
                ("string", f'"{bucket}"'),
                ("op", ")"),
            ]:
                raise FluxRefused(f'from() may only read from(bucket: "{bucket}")')
            continue
        if text in FUNCTIONS or text in KEYWORDS or text in CONSTANTS:
            continue
        if text in LAMBDA_PARAMS:
            continue
        raise FluxRefused(f"'{text[:40]}' is not an allowed function (see the guard's Flux rule)")
