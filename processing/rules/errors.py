"""Errors of the rule language: every one carries where it happened.

A :class:`RuleError` names the file, the line, the column and the offending
token, and renders like a compiler message::

    rules/adherence.toml:12:27: error: unknown function 'system'
        condition = "system('ls') > 0"
                     ^^^^^^
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Location:
    """A position in a rule file: 1-based line and column, and the source line."""

    path: Path | None = None
    line: int = 0
    column: int = 0
    source_line: str = ""

    def __str__(self) -> str:
        name = str(self.path) if self.path is not None else "<rule>"
        if self.line:
            return f"{name}:{self.line}:{self.column}" if self.column else f"{name}:{self.line}"
        return name


class RuleError(Exception):
    """Base of every rule error; ``location`` and ``token`` say where and what.

    ``severity`` is ``"error"`` (the rule set cannot be used) or ``"warning"``
    (usable, but probably not what the author meant).
    """

    severity = "error"

    def __init__(
        self,
        message: str,
        *,
        location: Location | None = None,
        token: str = "",
        offset: int | None = None,
    ) -> None:
        self.message = message
        self.location = location or Location()
        self.token = token
        #: 0-based offset of ``token`` in the condition text, before it is placed in a file
        self.offset = offset
        super().__init__(self.render())

    def render(self) -> str:
        """The message with its location, and the source line with a caret under the token."""
        head = f"{self.location}: {self.severity}: {self.message}"
        loc = self.location
        if not loc.source_line or not loc.column:
            return head
        width = max(1, len(self.token))
        caret = " " * (loc.column - 1) + "^" * width
        return f"{head}\n    {loc.source_line.rstrip()}\n    {caret}"

    def at(self, location: Location) -> RuleError:
        """The same error moved to ``location`` (condition offsets -> file positions)."""
        return type(self)(self.message, location=location, token=self.token, offset=self.offset)


class RuleSyntaxError(RuleError):
    """The text is not in the rule grammar (lexing or parsing)."""


class RuleLimitError(RuleSyntaxError):
    """The expression or file is larger or deeper than the limits allow."""


class RuleTypeError(RuleError):
    """Names, functions or operand types that do not fit together."""


class RuleFileError(RuleError):
    """A rule file that is not valid TOML or misses or misspells a key."""


class RuleLintWarning(RuleError):
    """Usable but suspicious (for example a comparison that is always true)."""

    severity = "warning"


class RuleSetError(Exception):
    """Loading a rule set found errors; ``errors`` lists them all (nothing runs)."""

    def __init__(self, errors: list[RuleError]) -> None:
        self.errors = errors
        super().__init__("\n".join(e.render() for e in errors))
