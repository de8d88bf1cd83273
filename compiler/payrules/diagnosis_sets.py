"""Diagnoses as a rule file names them (codes, prefixes, ranges) → one value that matches them.

A rule file names diagnoses four ways: an ICD-10-CM code (`M54.50`), a prefix ending in `*`
(`M62.83*`), a range (`M99.01-M99.05`) and the name of a diagnosis set. All of them are matched
on the code without its dot, in capitals, so `M5450` and `m54.50` are the same diagnosis.

A range is lexical: its two ends are codes of the same length (without the dot) and, unless
both are three-character categories (`M40-M54`), of the same category (the first three
characters). A diagnosis is in the range when its first characters, as many as an end has,
fall between the two ends in character order (digits before letters, as the code set lists
them). So `M99.01-M99.05` holds M99.01 to M99.05, and `M62.81-M62.89` also holds M62.830,
which lies under M62.83. No ICD-10-CM data is needed to read or to match a range.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import attrs

from payrules.domain import ICD10_RE

DIAGNOSIS_PATTERN_RE = re.compile(r"^[A-Z](?:[0-9][0-9A-Z]|A[0-9])(?:\.?[0-9A-Z]{1,4})?\*?$"
                                  r"|^[A-Z](?:[0-9][0-9A-Z]|A[0-9])\.\*$")
"""An ICD-10-CM code or a prefix of one ending in `*` (in capitals), as a rule file writes it."""


def plain(code: str) -> str:
    """A diagnosis or a pattern as it is matched: in capitals, without its dot."""
    return code.upper().replace(".", "")


def dotted(code: str) -> str:
    """`M9901` → `M99.01`: a plain code as the code set writes it (a prefix keeps its `*`)."""
    star = code.endswith("*")
    body = code.rstrip("*")
    text = f"{body[:3]}.{body[3:]}" if len(body) > 3 else body
    return f"{text}*" if star else text


def as_written(text: str) -> str:
    """A diagnosis, prefix or range of a rule file as explanations show it: in capitals, a range
    without spaces around its `-` (`m40 - M54` → `M40-M54`)."""
    return "-".join(part.strip() for part in text.upper().split("-"))


def range_problem(low: str, high: str) -> tuple[str, str] | None:
    """Why `low-high` (two valid ICD-10-CM codes, as written) is not a range of diagnoses, with
    a help text; None when it is one. Reversed ranges are reported apart (see `reversed_range`)."""
    a, b = plain(low), plain(high)
    if len(a) != len(b):
        return (f"range `{low}-{high}` mixes a code of {len(a)} characters and one of {len(b)}",
                "write both ends with as many characters (without the dot), such as M54.50-M54.59")
    if len(a) > 3 and a[:3] != b[:3]:
        return (f"range `{low}-{high}` crosses categories ({dotted(a[:3])} and {dotted(b[:3])})",
                "a range of codes stays within one category (the first three characters); write one range "
                "per category, or a range of whole categories such as M40-M54")
    return None


def reversed_range(low: str, high: str) -> bool:
    return plain(low) > plain(high)


def is_code(text: str) -> bool:
    """True for an ICD-10-CM code (with or without its dot), not a prefix."""
    return bool(ICD10_RE.match(text.upper()))


@attrs.frozen
class Diagnoses:
    """Diagnoses that a list names: exact codes, prefixes and ranges, each plain (see `plain`).
    Equal lists give equal values, whatever the order they were written in."""

    exact: frozenset[str] = frozenset()
    prefixes: frozenset[str] = frozenset()
    """Without the `*`: `M545` for `M54.5*`."""
    ranges: frozenset[tuple[str, str]] = frozenset()
    """(low, high), two plain codes of the same length."""

    @staticmethod
    def union(parts: Iterable[Diagnoses]) -> Diagnoses:
        exact: set[str] = set()
        prefixes: set[str] = set()
        ranges: set[tuple[str, str]] = set()
        for part in parts:
            exact |= part.exact
            prefixes |= part.prefixes
            ranges |= part.ranges
        return Diagnoses(frozenset(exact), frozenset(prefixes), frozenset(ranges))

    @staticmethod
    def pattern(text: str) -> Diagnoses:
        """One code or prefix as written (its shape already checked)."""
        if text.endswith("*"):
            return Diagnoses(prefixes=frozenset({plain(text).rstrip("*")}))
        return Diagnoses(exact=frozenset({plain(text)}))

    @staticmethod
    def between(low: str, high: str) -> Diagnoses:
        return Diagnoses(ranges=frozenset({(plain(low), plain(high))}))

    def __bool__(self) -> bool:
        return bool(self.exact or self.prefixes or self.ranges)

    def __contains__(self, code: object) -> bool:
        """Whether a diagnosis (with or without its dot) is one of these."""
        if not isinstance(code, str):
            return False
        g = plain(code)
        return (g in self.exact or any(g.startswith(p) for p in self.prefixes)
                or any(len(g) >= len(low) and low <= g[:len(low)] <= high for low, high in self.ranges))

    def describe(self) -> str:
        """`M54.5*, M62.830, M99.01-M99.05`: every item with its dot, in code order."""
        items = [(code, dotted(code)) for code in self.exact]
        items += [(prefix, dotted(prefix + "*")) for prefix in self.prefixes]
        items += [(low, f"{dotted(low)}-{dotted(high)}") for low, high in self.ranges]
        return ", ".join(text for _, text in sorted(items))


NO_DIAGNOSES = Diagnoses()
