"""What generated policy code sees: the record types it judges and the rule metadata it returns.

Generated modules import only this module. It imports nothing from the front end
(parser, checker, code generator) and only the standard library, so a compiled policy runs
without them; `payrules build` copies it into standalone modules.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import NamedTuple


class Origin(NamedTuple):
    """Where a record came from: `sessions.csv` row 7, or `visits.jsonl` line 3 at `lines[1]`."""

    file: str
    row: int
    path: str = ""
    headers: Mapping[str, str] | None = None
    """The input's own column name for each field, where a column mapping renamed it."""

    def __str__(self) -> str:
        where = f"{self.file}:{self.row}"
        return f"{where} {self.path}" if self.path else where

    def column(self, field: str) -> str | None:
        """The input's name for `field`, when it differs from the field's own name."""
        return self.headers.get(field) if self.headers else None


class Line(NamedTuple):
    """One service line, validated: codes upper-case, money in integer cents, dates ISO.

    A named tuple rather than an attrs class: millions are built per run, and a tuple is
    immutable and several times cheaper to construct.
    """

    session_id: str
    patient_id: str
    date: str
    """Date of service as YYYY-MM-DD (sorts and compares as text)."""
    payer: str
    number: int
    """1-based position of the line in its session."""
    code: str
    modifiers: frozenset[str]
    units: int
    minutes: int | None
    charge: int
    """Billed amount in cents."""
    provider_npi: str
    provider_credential: str
    """Upper-case credential, or "" when none was given."""
    diagnoses: tuple[str, ...]
    prescription_by: str
    """Credential of the prescriber, or "" when there is no prescription."""
    origin: Origin


class Session(NamedTuple):
    """One visit: the lines one patient had on one date, sent to one payer."""

    session_id: str
    patient_id: str
    date: str
    payer: str
    lines: tuple[Line, ...]


class RuleInfo(NamedTuple):
    """What an explanation needs to know about the rule that produced a reason."""

    position: int
    """Place of the rule in its file's RULES, from 0."""
    name: str | None
    kind: str
    file: str
    line: int
    column: int
    text: str
    """The statement as written in the rule file."""
    severity: str
    carc: str
    rarc: str | None
    params: tuple[tuple[str, str], ...]
    """Statement details as text, for explanation templates (for example the allowed codes)."""
    source: str | None = None
    """Where the policy comes from (the rule's `source` option)."""
    outcome: str = ""
    """What the rule does when it applies in full: `deny` or `reduce` (for a `warn` rule, what
    it warns of)."""

    def param(self, key: str) -> str:
        for name, value in self.params:
            if name == key:
                return value
        raise KeyError(key)


Reason = tuple[int, object]
"""What generated code records: (index into RULES, facts the explanation cites)."""


def since(period: str, date: str, days: int = 0, start: str = "") -> str:
    """The first date of the `period` that holds `date` (all YYYY-MM-DD): `day`, `week` (Monday
    to Sunday), `month`, `year` (calendar), `plan_year` (starting on `start`, MM-DD), `days`
    (the last `days` days, `date` included) or `lifetime` (every date)."""
    if period == "day":
        return date
    if period == "month":
        return date[:8] + "01"
    if period == "year":
        return date[:5] + "01-01"
    if period == "plan_year":
        year = int(date[:4]) if date[5:] >= start else int(date[:4]) - 1
        return f"{year:04d}-{start}"
    if period == "lifetime":
        return ""
    day = datetime.date.fromisoformat(date)
    back = day.weekday() if period == "week" else days - 1
    return (day - datetime.timedelta(days=back)).isoformat()


def time_units(method: str, minutes: list[tuple[int, int]]) -> dict[int, int]:
    """Units of 15-minute timed services supported by their minutes, by line index.

    `minutes` holds (line index, minutes) for the session's timed lines. `ama`: each line on
    its own, a unit once the midpoint (8 minutes) is passed. `cms` (the 8-minute rule): the
    pooled minutes give the total units; each line first gets one unit per full 15 minutes,
    then the units left go to the lines with the most minutes left over (the earlier line on
    a tie). This reproduces CMS's worked examples: 24 + 23 minutes give 2 + 1 units, 20 + 20
    minutes give 2 + 1.
    """
    if method == "ama":
        return {k: 0 if m < 8 else (m + 7) // 15 for k, m in minutes}
    total = sum(m for _, m in minutes)
    units = {k: m // 15 for k, m in minutes}
    left = (0 if total < 8 else (total + 7) // 15) - sum(units.values())
    by_remainder = sorted(minutes, key=lambda item: -(item[1] % 15))
    for k, _ in by_remainder[:max(left, 0)]:
        units[k] += 1
    return units
