"""Rule file text → `Source` and `Span`: positions that every later stage carries."""

from __future__ import annotations

import bisect
from functools import cached_property

import attrs


@attrs.frozen
class Source:
    """The text of one rule file and the name it is shown under."""

    name: str
    """The path as the user gave it (shown in diagnostics and explanations)."""
    text: str = attrs.field(repr=False)

    @cached_property
    def _line_starts(self) -> list[int]:
        starts = [0]
        for i, ch in enumerate(self.text):
            if ch == "\n":
                starts.append(i + 1)
        return starts

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based line and column of a 0-based character offset."""
        index = bisect.bisect_right(self._line_starts, offset) - 1
        return index + 1, offset - self._line_starts[index] + 1

    def line_text(self, line: int) -> str:
        """The text of a 1-based line, without its line break."""
        starts = self._line_starts
        if line < 1 or line > len(starts):
            return ""
        end = starts[line] - 1 if line < len(starts) else len(self.text)
        return self.text[starts[line - 1] : end].rstrip("\r")

    def line_start(self, line: int) -> int:
        """0-based offset of the first character of a 1-based line."""
        return self._line_starts[line - 1]


@attrs.frozen
class Span:
    """A half-open range of characters `[start, end)` in a `Source`."""

    source: Source = attrs.field(eq=False, hash=False, repr=False)
    start: int
    end: int

    @property
    def line(self) -> int:
        return self.source.line_col(self.start)[0]

    @property
    def column(self) -> int:
        return self.source.line_col(self.start)[1]

    @property
    def file(self) -> str:
        return self.source.name

    @property
    def text(self) -> str:
        return self.source.text[self.start : self.end]

    def seen_from(self, here: Span) -> str:
        """Where this span is, told from `here`: `on line 3`, or `in other.payer on line 3`."""
        return f"on line {self.line}" if self.file == here.file else f"in {self.file} on line {self.line}"

    def to(self, other: Span) -> Span:
        """The span from the start of this one to the end of `other`."""
        return Span(self.source, self.start, other.end)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"
