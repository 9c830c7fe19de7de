"""Decode JSON from the network without letting its content stop the process.

Python's ``json.loads`` is not safe on untrusted bytes as it stands: nesting
recurses (``[`` x 100,000 raises ``RecursionError``, which is not a
``ValueError`` and escapes the usual ``except``), ``NaN``/``Infinity`` and
``1e999`` decode to non-finite floats, a 5,000-digit integer raises a
``ValueError`` from ``int`` (Python's 4,300-digit limit), and undecodable
bytes raise ``UnicodeDecodeError``. :func:`loads` is the one decoder every
service uses for bytes it did not write (data messages, gateway state,
self-reports, command acknowledgements, retained messages, commands); it
raises only :class:`UnsafeJsonError`, and checks before decoding:

* size: at most ``max_bytes`` (the caller's bound);
* nesting: at most ``max_depth`` levels of arrays/objects, counted on the raw
  text with strings removed, *before* ``json.loads`` recurses;
* numbers: no ``NaN``/``Infinity``; finite floats and integers of at most
  :data:`MAX_INT_DIGITS` digits (a ``ts_ns`` has 19), unless the caller
  range-checks every number itself.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

DEFAULT_MAX_DEPTH: Final = 16
MAX_INT_DIGITS: Final = 40
# A JSON string (possessive, so a crafted string cannot make the regex backtrack).
_STRING: Final = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.S)
_NOT_BRACKET: Final = re.compile(rb"[^\[\]{}]++")


class UnsafeJsonError(ValueError):
    """The bytes are not JSON within the bounds; the message says which (never the data).

    ``kind``: ``too_large``, ``too_deep``, ``number`` (non-finite or too long)
    or ``syntax`` (not UTF-8, not JSON).
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def nesting_ok(text: bytes, max_depth: int) -> bool:
    """True if the brackets outside strings nest at most ``max_depth`` deep and balance.

    Each pass removes every innermost ``[]``/``{}`` pair (C-speed ``replace``),
    so ``max_depth`` passes empty a bracket sequence exactly when it is
    balanced and no deeper than that. Unbalanced text is invalid JSON anyway.
    """
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", text))
    for _ in range(max_depth):
        if not brackets:
            return True
        shorter = brackets.replace(b"[]", b"").replace(b"{}", b"")
        if len(shorter) == len(brackets):
            return False
        brackets = shorter
    return not brackets


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UnsafeJsonError("number", f"number {text[:20]} is out of range")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise UnsafeJsonError("number", f"integer of {len(text)} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _no_constant(token: str) -> Any:
    raise UnsafeJsonError("number", f"non-finite number {token} is not allowed")


def loads(
    payload: bytes | str,
    *,
    max_bytes: int,
    max_depth: int = DEFAULT_MAX_DEPTH,
    caller_checks_numbers: bool = False,
) -> Any:
    """``payload`` decoded, or :class:`UnsafeJsonError`; never any other exception.

    ``caller_checks_numbers``: the caller range-checks every number and names
    its field (the wire contract does): ``1e400`` may then decode to ``inf``
    and integers are parsed natively (Python's 4,300-digit limit still
    applies), which keeps the hot path fast.
    """
    raw = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload
    if len(raw) > max_bytes:
        raise UnsafeJsonError("too_large", f"{len(raw)} bytes > {max_bytes}")
    if not nesting_ok(raw, max_depth):
        raise UnsafeJsonError("too_deep", f"nested deeper than {max_depth} levels, or unbalanced")
    try:
        text = raw.decode("utf-8")
        if caller_checks_numbers:
            return json.loads(text, parse_constant=_no_constant)
        return json.loads(
            text, parse_float=_finite_float, parse_int=_bounded_int, parse_constant=_no_constant
        )
    except UnsafeJsonError:
        raise
    except json.JSONDecodeError as exc:
        raise UnsafeJsonError("syntax", f"not valid JSON: {exc}"[:200]) from None
    except ValueError as exc:
        if "digits" in str(exc):  # int(): "Exceeds the limit (4300 digits) ..."
            raise UnsafeJsonError("number", "integer too long") from None
        raise UnsafeJsonError("syntax", f"not valid UTF-8 JSON: {exc}"[:200]) from None
    except (RecursionError, MemoryError, TypeError, OverflowError) as exc:
        # These cannot happen within the bounds above, but a decoder must not raise them.
        raise UnsafeJsonError("syntax", f"not valid UTF-8 JSON: {exc}"[:200]) from None
