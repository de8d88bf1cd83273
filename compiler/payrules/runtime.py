"""What generated policy code sees: the record types it judges and the rule metadata it returns.

Generated modules import only this module. It imports nothing from the front end
(parser, checker, code generator) and only the standard library, so a compiled policy runs
without them; `payrules build` copies it into standalone modules.
"""

from __future__ import annotations

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
