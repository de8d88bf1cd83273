"""What generated policy code sees: the record types it judges and the rule metadata it returns.

Generated modules import only this module. It imports nothing from the front end
(parser, checker, code generator) and only the standard library, so a compiled policy runs
without them; `payrules build` copies it into standalone modules.
"""

from __future__ import annotations

import bisect
import datetime
from collections.abc import Callable, Container, Iterable, Mapping
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

    `minutes` holds (line index, minutes) for timed lines. `ama`: each line on its own, a unit
    once the midpoint (8 minutes) is passed. `cms` (the 8-minute rule): the minutes are pooled
    and shared out by `allocate`. Generated code pools a day's lines with `pooled_units`.
    """
    if method == "ama":
        return {k: 0 if m < 8 else (m + 7) // 15 for k, m in minutes}
    return allocate(minutes)


def allocate(minutes: list[tuple[int, int]]) -> dict[int, int]:
    """The CMS 8-minute rule over (index, minutes): the pooled minutes give the total units (none
    under 8 minutes, then `(total + 7) // 15`); each line first gets one unit per full 15
    minutes, then the units left go to the lines with the most minutes left over, the earlier
    line (lower place in `minutes`) on a tie. This reproduces CMS's worked examples: 24 + 23
    minutes give 2 + 1 units, 20 + 20 minutes give 2 + 1."""
    total = sum(m for _, m in minutes)
    units = {k: m // 15 for k, m in minutes}
    left = (0 if total < 8 else (total + 7) // 15) - sum(units.values())
    by_remainder = sorted(minutes, key=lambda item: -(item[1] % 15))  # stable: earlier first on a tie
    for k, _ in by_remainder[:max(left, 0)]:
        units[k] += 1
    return units


THERAPY_DISCIPLINES = frozenset({"GN", "GO", "GP"})
"""The modifiers of a therapy plan of care (speech-language, occupational, physical therapy):
minutes of one discipline are pooled apart from another's."""


Pool = tuple[str, str, str, str, int, int, int, int]
"""What one pool of timed minutes is, for explanations: (date of service, rendering NPI,
discipline modifier or "", code or "" (for the CMS rule, which pools every timed code),
minutes pooled, lines pooled, sessions they come from, how many of those sessions are in the
history)."""


def pooled_units(method: str, day: Day, codes: Container[str]) -> dict[int, tuple[int, Pool]]:
    """Units supported by minutes for the lines of `codes` with minutes on one patient's day
    (one payer), by `id(line)`, with the pool each line's units come from.

    The lines are pooled by rendering NPI and discipline modifier (`GP`; "" for none; joined
    with `+` in the odd case of several), across the day's sessions;
    `ama` pools each code apart (a code's own minutes on the day), `cms` every timed code
    together. Each pool's minutes are shared out by `allocate`, in the order of the day's
    lines: those of the history first, then the input's, in input order.
    """
    history = {id(line) for line in day.lines[:day.history]} if day.history else ()
    pools: dict[tuple[str, str, str], list[Line]] = {}
    for line in day.lines:
        if line.minutes is None or line.code not in codes:
            continue
        therapy = line.modifiers & THERAPY_DISCIPLINES
        key = (line.provider_npi, "+".join(sorted(therapy)) if therapy else "", line.code if method == "ama" else "")
        found = pools.get(key)
        if found is None:
            pools[key] = [line]
        else:
            found.append(line)
    units: dict[int, tuple[int, Pool]] = {}
    for (npi, kind, code), members in pools.items():
        if len(members) == 1:  # the common case: one timed line of its kind on the day
            line = members[0]
            minutes = line.minutes or 0
            units[id(line)] = (0 if minutes < 8 else (minutes + 7) // 15,
                               (line.date, npi, kind, code, minutes, 1, 1, int(id(line) in history)))
            continue
        shares = allocate([(j, line.minutes or 0) for j, line in enumerate(members)])
        pool: Pool = (members[0].date, npi, kind, code, sum(line.minutes or 0 for line in members), len(members),
                      len({line.session_id for line in members}),
                      len({line.session_id for line in members if id(line) in history}))
        for j, line in enumerate(members):
            units[id(line)] = (shares[j], pool)
    return units


class Day:
    """Every line one patient had with one payer on one date, and what generated code has
    worked out about them (`facts`, by rule): each same-day fact is found once per day, not
    once per session or per line. A day is judged by one policy: its payer's on that date."""

    __slots__ = ("lines", "facts", "history")

    def __init__(self, lines: list[Line], history: int = 0) -> None:
        self.lines = lines
        self.facts: dict[int, object] = {}
        self.history = history
        """How many of `lines`, at the front, are earlier lines of the history (not judged)."""


Entry = tuple[Line, int, int]
"""An earlier line of the patient: the line, the cents allowed for it and the units paid."""


class Accumulated(NamedTuple):
    """What an accumulators file says one limit of a patient has used in one period, up to a
    date: the visits, units or cents (whichever the limit counts) on dates of service from
    `start` to `through`, both included."""

    start: str
    """The first date of the period, as `since` gives it ("" for a lifetime)."""
    through: str
    """The last date of service the figure covers."""
    used: int
    where: str
    """The file and row that give it, as an explanation cites them."""


class Ledger:
    """The earlier lines one limit over a period counts, in date order, with running totals of
    cents, units and visits: the total over any period is a binary search, not a rescan.

    Filled from `Earlier` in date order: lines up to a date are added before that date is asked
    about, and no line after it."""

    __slots__ = ("counts", "dates", "cents", "units", "visits", "seen", "_history", "_judged", "accumulated",
                 "date")

    def __init__(self, counts: Callable[[Line], bool]) -> None:
        self.counts = counts
        self.accumulated: tuple[Accumulated, ...] = ()
        """The limit's use as the accumulators file gives it (see `Earlier.accumulated`)."""
        self.date = ""
        """The date the ledger is caught up to: the date of service being judged."""
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
        self.date = date
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
        return self._since(self.cents, start)

    def units_since(self, start: str) -> int:
        return self._since(self.units, start)

    def visits_since(self, start: str) -> int:
        return self._since(self.visits, start)

    def _since(self, totals: list[int], start: str) -> int:
        """The use since `start`: the accumulated figure of the period (when one applies) and the
        counted lines dated after its `through` date, else the counted lines from `start` on."""
        found = self._accumulated(start)
        if found is None:
            return totals[-1] - totals[self._first(start)]
        return found.used + totals[-1] - totals[bisect.bisect_right(self.dates, found.through)]

    def _accumulated(self, start: str) -> Accumulated | None:
        """The accumulated figure of the period starting on `start`, if it covers only dates
        before the one being judged: a figure through that date or later may already hold the
        session being judged, so it is not used for it (its lines count as they are)."""
        for found in self.accumulated:
            if found.start == start and found.through < self.date:
                return found
        return None

    def accumulated_since(self, start: str) -> tuple[int, str, str] | None:
        """For an explanation: (the accumulated figure, its through date, where it was given)
        when one counts in the period starting on `start`, else None."""
        found = self._accumulated(start)
        return None if found is None else (found.used, found.through, found.where)


class Earlier:
    """A patient's earlier lines, for limits over periods: the history (counted, not judged;
    sorted by date) and the lines judged so far (added in date order), with one ledger per rule."""

    __slots__ = ("history", "judged", "ledgers", "accumulated")

    def __init__(self, history: Iterable[Entry] = ()) -> None:
        self.history: list[Entry] = list(history)
        self.judged: list[Entry] = []
        self.ledgers: dict[int, Ledger] = {}
        self.accumulated: Mapping[int, tuple[Accumulated, ...]] = {}
        """The patient's use of each limit (by rule) that an accumulators file gives, for the
        policy judging the current session."""

    def ledger(self, rule: int, counts: Callable[[Line], bool], date: str) -> Ledger:
        """Rule `rule`'s ledger over the lines that `counts`, caught up to `date`."""
        found = self.ledgers.get(rule)
        if found is None:
            found = self.ledgers[rule] = Ledger(counts)
        found.accumulated = self.accumulated.get(rule, ())
        found.catch_up(self, date)
        return found


# --- NCCI tables (`apply ncci ptp`, `apply ncci mue`; see payrules.ncci) ---------------------------


class PairEdits:
    """NCCI PTP edits as generated code holds them: one text line per edit in force on some date
    (`column2 column1 effective deleted indicator file row rationale`, dates ISO, the last three
    indexes), indexed by column-2 code on first use. Compact to compile and to load: a table of
    100,000 edits is one string constant, not 100,000 statements."""

    __slots__ = ("files", "rationales", "text", "_by_code")

    def __init__(self, files: tuple[str, ...], rationales: tuple[str, ...], text: str) -> None:
        self.files = files
        self.rationales = rationales
        self.text = text
        self._by_code: dict[str, tuple[tuple[str, str, str, str, str, int, str], ...]] | None = None

    def _index(self) -> dict[str, tuple[tuple[str, str, str, str, str, int, str], ...]]:
        found: dict[str, list[tuple[str, str, str, str, str, int, str]]] = {}
        for row in self.text.split("\n") if self.text else ():
            column2, column1, effective, deleted, indicator, file, number, rationale = row.split(" ")
            found.setdefault(column2, []).append((column1, effective, deleted, indicator, self.files[int(file)],
                                                  int(number), self.rationales[int(rationale)]))
        # Races between threads only build equal indexes.
        self._by_code = {code: tuple(edits) for code, edits in found.items()}
        return self._by_code

    def hit(self, line: Line, billed: dict[str, dict[str, list[Line]]], modifiers: frozenset[str]) -> object:
        """The facts of the first edit (in table order) that denies `line`: in force on its date, its
        column-1 code billed on the day by the line's provider (`billed`: the day's lines by provider
        and code), and for modifier indicator 1 no NCCI-associated modifier on `line`. None if none."""
        edits = (self._by_code if self._by_code is not None else self._index()).get(line.code)
        if edits is None:
            return None
        mine = billed.get(line.provider_npi)
        if mine is None:
            return None
        date = line.date
        for column1, effective, deleted, indicator, file, number, rationale in edits:
            if not (effective <= date < deleted):
                continue
            others = mine.get(column1)
            if not others:
                continue
            first, count = others[0], len(others)
            if column1 == line.code:  # a line never counts as its own column-1 line
                count -= 1
                if not count:
                    continue
                if first is line:
                    first = others[1]
            if indicator == "1" and line.modifiers & modifiers:
                continue
            return (file, number, column1, indicator, rationale, first, count)
        return None


def by_provider(lines: Iterable[Line]) -> dict[str, dict[str, list[Line]]]:
    """The lines by rendering provider (NPI) and code, each list in the order given."""
    found: dict[str, dict[str, list[Line]]] = {}
    for line in lines:
        found.setdefault(line.provider_npi, {}).setdefault(line.code, []).append(line)
    return found


class UnitLimits:
    """NCCI MUEs as generated code holds them: one text line per code (`code value mai file row
    rationale`, the last three indexes), indexed on first use."""

    __slots__ = ("files", "rationales", "text", "_by_code")

    def __init__(self, files: tuple[str, ...], rationales: tuple[str, ...], text: str) -> None:
        self.files = files
        self.rationales = rationales
        self.text = text
        self._by_code: dict[str, tuple[int, str, str, int, str]] | None = None

    def _index(self) -> dict[str, tuple[int, str, str, int, str]]:
        found: dict[str, tuple[int, str, str, int, str]] = {}
        for row in self.text.split("\n") if self.text else ():
            code, value, mai, file, number, rationale = row.split(" ")
            found[code] = (int(value), mai, self.files[int(file)], int(number), self.rationales[int(rationale)])
        self._by_code = found
        return found

    def over(self, line: Line, day: Day, key: int) -> object:
        """The facts when `line` is over its code's MUE, else None. Indicator 1: the line's own
        units. 2 and 3: the units of the code billed for the patient on the date by the line's
        provider, in this session and the day's earlier ones (found once per day, kept on
        `day.facts[key]`)."""
        found = (self._by_code if self._by_code is not None else self._index()).get(line.code)
        if found is None:
            return None
        value, mai, file, number, rationale = found
        if mai == "1":
            earlier, total = 0, line.units
        else:
            totals = day.facts.get(key)
            if totals is None:
                totals = day.facts[key] = day_units(day.lines)
            assert isinstance(totals, dict)
            earlier, total = totals[(line.provider_npi, line.code, line.session_id)]
        if total <= value:
            return None
        return (file, number, value, mai, rationale, total, earlier)


def day_units(lines: Iterable[Line]) -> dict[tuple[str, str, str], tuple[int, int]]:
    """For each provider, code and session of a day: the units of the code the provider billed in
    the day's earlier sessions (in the order the sessions come), and through this session."""
    order: dict[str, int] = {}
    units: dict[tuple[str, str, str], int] = {}
    for line in lines:
        order.setdefault(line.session_id, len(order))
        key = (line.provider_npi, line.code, line.session_id)
        units[key] = units.get(key, 0) + line.units
    running: dict[tuple[str, str], int] = {}
    totals: dict[tuple[str, str, str], tuple[int, int]] = {}
    for key in sorted(units, key=lambda k: order[k[2]]):
        before = running.get(key[:2], 0)
        running[key[:2]] = before + units[key]
        totals[key] = (before, before + units[key])
    return totals
