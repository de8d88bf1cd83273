"""Findings about rule files → `Diagnostic` values, and the exception tree of payrules."""

from __future__ import annotations

import enum

import attrs

from payrules.domain import closest as closest
from payrules.source import Span


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@attrs.frozen(kw_only=True)
class Diagnostic:
    """One problem found in a rule file, located by its span."""

    code: str
    """Stable identifier such as `E001`; never renumbered."""
    severity: Severity
    message: str
    """Short lowercase phrase, names in backticks, no trailing period."""
    span: Span
    help: str | None = None
    """How to fix it, when a fix is known."""

    @property
    def sort_key(self) -> tuple[str, int, str]:
        return (self.span.file, self.span.start, self.code)


class RulesError(Exception):
    """Root of every exception payrules raises on purpose."""


class CompileError(RulesError):
    """A rule file has errors; `diagnostics` holds all of them, sorted by position."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics, key=lambda d: d.sort_key)
        """Every problem found, sorted by file and position."""
        lines = [f"{d.span}: {d.code} {d.message}" for d in self.diagnostics]
        super().__init__("\n".join(lines) or "compile error")


class InputError(RulesError):
    """A file given to payrules cannot be read at all (missing, not text, wrong kind)."""


class InternalError(RulesError):
    """A fault in payrules itself, never in the user's input."""
