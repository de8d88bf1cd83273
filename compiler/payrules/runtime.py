"""What generated policy code sees: the record types it judges and the rule metadata it returns.

Generated modules import only this module. It imports nothing from the front end
(parser, checker, code generator) and only the standard library, so a compiled policy runs
without them; `payrules build` copies it into standalone modules.
"""

from __future__ import annotations

import bisect
import datetime
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import NamedTuple


class Origin(NamedTuple):
    """Where a record came from: `sessions.csv` row 7, or `visits.jsonl` line 3 at `lines[1]`."""

    file: str
    row: int
    path: str = ""
    headers: Mapping[str, str] | None = None
    """The input's own column name for each field, where a column mapping renamed it."""
    kept: tuple[tuple[str, str], ...] = ()
    """The caller's ids asked for with `--keep` (name, value as given), in the order asked;
    empty unless ids were asked for, so that outputs without them stay as they are."""
    facts: tuple[tuple[str, str], ...] = ()
    """The text of each declared field (`field ...` in a rule file) the input gives for the line
    (name, value as given; a line's own value, else its session's); empty when none is declared."""

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
    place_of_service: str = ""
    """The two-digit place of service code (11 office, 12 home, ...), or "" when not given."""
    facts: Mapping[str, object] = MappingProxyType({})
    """The declared fields of the policy that judges the line, by name, as typed values (a date
    as YYYY-MM-DD, money in cents, a number as an int, yes/no as a bool, a code in capitals);
    None where the input gives no value. Filled just before judging."""


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


class Field(NamedTuple):
    """A declared field of a rule file (`field accident_date: date per session`), or a built-in
    field a condition uses, as judging needs to know it."""

    name: str
    type: str
    """`date`, `code`, `text`, `number`, `money` or `yes/no`."""
    scope: str
    """`session` or `line`."""
    missing: str
    """`reject` or `deny`: what a line without a value gets when a rule uses the field."""
    used: bool
    """Whether a rule's condition uses it."""
    rule: int
    """The index in RULES of the reason a `deny` gives; -1 for `reject`."""
    declared: bool = True
    """False for a built-in field (place of service, minutes) that a condition uses undeclared."""


def add_days(date: str, days: int) -> str:
    """`date` (YYYY-MM-DD) moved by `days`; clamped to the first and last dates there are."""
    ordinal = datetime.date.fromisoformat(date).toordinal() + days
    ordinal = min(max(ordinal, 1), datetime.date.max.toordinal())
    return datetime.date.fromordinal(ordinal).isoformat()


def first_date(past: Earlier, date: str) -> str:
    """The patient's first date of service with this payer: the earliest of the history, the
    sessions judged before this one and `date`, this session's."""
    found = [date]
    if past.history:
        found.append(past.history[0][0].date)
    if past.judged:
        found.append(min(entry[0].date for entry in past.judged))
    return min(found)


def code_shape(code: str) -> str:
    """`#####` for 97140, `####T` for 0042T, `S####` for S8990: codes of one shape compare as
    text in the order of their numbers. "" for text that is no code."""
    if len(code) != 5 or not code.isascii():
        return ""
    if code.isdigit():  # the common case, first
        return "#####"
    return "".join("#" if c.isdigit() else c for c in code)


class CodeSet:
    """Procedure codes as a rule file names them: those listed one by one, and each long range
    as its shape with its first and last code. A range of thousands of codes is then two
    comparisons, not thousands of strings in memory and in the generated code."""

    __slots__ = ("codes", "ranges")

    def __init__(self, codes: frozenset[str], ranges: tuple[tuple[str, str, str], ...]) -> None:
        self.codes = codes
        self.ranges = ranges

    def __contains__(self, code: object) -> bool:
        if code in self.codes:
            return True
        if not isinstance(code, str):
            return False
        shape = code_shape(code)
        return any(shape == kind and low <= code <= high for kind, low, high in self.ranges)

    def __repr__(self) -> str:
        return f"CodeSet({self.codes!r}, {self.ranges!r})"


Reason = tuple[int, object, int]
"""What generated code records: (index into RULES, facts the explanation cites, cents the rule
took from the line's allowed amount). A reduction takes what it lowered the amount by; the first
denying rule of a line (in file order) takes all that was left, later ones and warnings 0."""


FIRST_DATE = datetime.date.min.isoformat()
"""0001-01-01: a period that would start before it starts there, as the calendar does."""


def since(period: str, date: str, days: int = 0, start: str = "") -> str:
    """The first date of the `period` that holds `date` (all YYYY-MM-DD): `day`, `week` (Monday
    to Sunday), `month`, `year` (calendar), `plan_year` (starting on `start`, MM-DD), `days`
    (the last `days` days, `date` included) or `lifetime` (every date). A period reaching back
    before 0001-01-01 starts on that date."""
    if period == "day":
        return date
    if period == "month":
        return date[:8] + "01"
    if period == "year":
        return date[:5] + "01-01"
    if period == "plan_year":
        year = int(date[:4]) if date[5:] >= start else int(date[:4]) - 1
        return f"{year:04d}-{start}" if year >= 1 else FIRST_DATE
    if period == "lifetime":
        return ""
    day = datetime.date.fromisoformat(date)
    back = day.weekday() if period == "week" else days - 1
    # Counting on ordinals, not date - timedelta, which overflows below year 1.
    first = day.toordinal() - back
    return datetime.date.fromordinal(first).isoformat() if first >= 1 else FIRST_DATE


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


class Day:
    """Every line one patient had with one payer on one date, and what generated code has
    worked out about them (`facts`, by rule): each same-day fact is found once per day, not
    once per session or per line. A day is judged by one policy: its payer's on that date."""

    __slots__ = ("lines", "facts")

    def __init__(self, lines: list[Line]) -> None:
        self.lines = lines
        self.facts: dict[int, object] = {}


Entry = tuple[Line, int, int]
"""An earlier line of the patient: the line, the cents allowed for it and the units paid."""


class Ledger:
    """The earlier lines one limit over a period counts, in date order, with running totals of
    cents, units and visits: the total over any period is a binary search, not a rescan.

    Filled from `Earlier` in date order: lines up to a date are added before that date is asked
    about, and no line after it."""

    __slots__ = ("counts", "dates", "cents", "units", "visits", "seen", "_history", "_judged")

    def __init__(self, counts: Callable[[Line], bool]) -> None:
        self.counts = counts
        self.dates: list[str] = []
        self.cents = [0]
        self.units = [0]
        self.visits = [0]
        self.seen: set[tuple[str, str]] = set()
        self._history = 0
        self._judged = 0

    def _add(self, entry: Entry) -> None:
        line, cents, units = entry
        if not self.counts(line):
            return
        # A visit is a session and date with a unit paid; it is counted on its first such line.
        visit = 0
        if units:
            key = (line.session_id, line.date)
            if key not in self.seen:
                self.seen.add(key)
                visit = 1
        self.dates.append(line.date)
        self.cents.append(self.cents[-1] + cents)
        self.units.append(self.units[-1] + units)
        self.visits.append(self.visits[-1] + visit)

    def catch_up(self, earlier: Earlier, date: str) -> None:
        """Add the lines of `earlier` dated up to `date` that are not in yet, merging the history
        (sorted by date) with the judged lines (added in date order)."""
        history, judged = earlier.history, earlier.judged
        h, j = self._history, self._judged
        while True:
            take_history = h < len(history) and history[h][0].date <= date
            if j < len(judged) and not (take_history and history[h][0].date <= judged[j][0].date):
                self._add(judged[j])
                j += 1
            elif take_history:
                self._add(history[h])
                h += 1
            else:
                break
        self._history, self._judged = h, j

    def _first(self, start: str) -> int:
        return bisect.bisect_left(self.dates, start)

    def cents_since(self, start: str) -> int:
        """Cents allowed for the counted lines dated from `start` to the last date caught up."""
        return self.cents[-1] - self.cents[self._first(start)]

    def units_since(self, start: str) -> int:
        return self.units[-1] - self.units[self._first(start)]

    def visits_since(self, start: str) -> int:
        return self.visits[-1] - self.visits[self._first(start)]


class Earlier:
    """A patient's earlier lines, for limits over periods: the history (counted, not judged;
    sorted by date) and the lines judged so far (added in date order), with one ledger per rule."""

    __slots__ = ("history", "judged", "ledgers")

    def __init__(self, history: Iterable[Entry] = ()) -> None:
        self.history: list[Entry] = list(history)
        self.judged: list[Entry] = []
        self.ledgers: dict[int, Ledger] = {}

    def ledger(self, rule: int, counts: Callable[[Line], bool], date: str) -> Ledger:
        """Rule `rule`'s ledger over the lines that `counts`, caught up to `date`."""
        found = self.ledgers.get(rule)
        if found is None:
            found = self.ledgers[rule] = Ledger(counts)
        found.catch_up(self, date)
        return found
