"""Findings about rule files → `Diagnostic` values, and the exception tree of payrules."""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable

import attrs

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


def closest(word: str, options: Iterable[str]) -> str | None:
    """The option nearest to `word` by edit distance (ignoring case), for "did you mean" help.

    Ties go to the option that shares the longest prefix with `word`, then to the first listed.
    """
    target = word.casefold()
    best: tuple[int, int, int] | None = None
    choice = None
    for order, option in enumerate(options):
        candidate = option.casefold()
        distance = _edit_distance(target, candidate)
        if distance > max(1, min(len(target), len(candidate)) // 3):
            continue
        prefix = len(os.path.commonprefix([target, candidate]))
        key = (distance, -prefix, order)
        if best is None or key < best:
            best, choice = key, option
    return choice


def _edit_distance(a: str, b: str) -> int:
    """Edits (insert, delete, substitute, swap two neighbours) that turn `a` into `b`."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(rows[i - 1][j] + 1, row[j - 1] + 1, rows[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[i - 2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


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
