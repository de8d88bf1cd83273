"""Raw text of a session's fields → validated values, or a worded problem per bad field.

Shared by every input format, by `payrules test` case files and by standalone modules, so
standard library only: `payrules build` copies this module as it is.
"""

from __future__ import annotations

import datetime
import re
import reprlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from payrules.domain import (
    CODE_RE,
    CREDENTIALS,
    ICD10_RE,
    MAX_MONEY_TEXT,
    MODIFIER_RE,
    money_too_large,
    npi_is_valid,
    parse_money,
    to_cents,
)
from payrules.runtime import Line, Origin, Session

NO_FACTS = Line._field_defaults["facts"]
"""The facts of a line before judging: none (see `runtime.Line.facts`)."""

SESSION_FIELDS = ("session_id", "patient_id", "date", "payer")
LINE_FIELDS = ("provider_npi", "provider_credential", "code", "modifiers", "units", "minutes", "charge",
               "diagnoses", "prescription_by", "place_of_service")
ALL_FIELDS = SESSION_FIELDS + LINE_FIELDS
REQUIRED_FIELDS = ("session_id", "patient_id", "date", "payer", "provider_npi", "code", "charge")
LIST_FIELDS = ("modifiers", "diagnoses")
"""Fields that several columns of an export may feed (Mod 1, Mod 2, ...)."""

MAX_FIELD_CHARS = 1_000
"""The longest field payrules reads, in characters (a list field: all its columns together).
A longer field makes its line a record problem."""

MAX_WHOLE = 999_999_999
"""The largest units or minutes."""

MAX_SESSION_LINES = 5_000
"""The most lines one session may have; the lines after it are record problems."""

MAX_DAY_LINES = 100_000
"""The most lines one patient may have on one day (all sessions); the lines after it are
record problems."""

clean = str.strip
"""The one normalisation of a field's text (surrounding whitespace of any kind, NBSP included,
removed): the reader, the grouping scan and the validation all use it."""


def field_name(name: str) -> str:
    """A CSV header or JSON key → the field name it stands for: case, surrounding whitespace,
    and inner runs of spaces and dashes (as `_`) do not matter."""
    return _NAME_SEPARATORS.sub("_", name.strip().lower())


_NAME_SEPARATORS = re.compile(r"[\s\-]+")
_WHOLE = re.compile(r"[0-9]+")
"""ASCII digits only: `str.isdigit()` also accepts `²` and `⒈`, which `int()` refuses."""
_SURROGATE = re.compile("[\ud800-\udfff]")
_ISO_DATE = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})$")
_US_DATE = re.compile(r"^([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})$")
_LIST_SPLIT = re.compile(r"[\s;,]+")


class Problem(NamedTuple):
    """One bad field of a record."""

    field: str
    value: str
    message: str


# --- field parsers: raw text → (value, message when wrong) --------------------------------
#
# Exports repeat the same NPIs, codes, dates and charges on many rows, so each parser keeps
# the answers it has given (bounded) and most fields cost one dict lookup.

Parsed = tuple[Any, str | None]


def shown(text: str) -> str:
    """`text` as a message quotes it: whole when short, else its start and its length."""
    return text if len(text) <= 40 else f"{text[:30]}… ({len(text):,} characters)"

MEMO_SIZE = 100_000


class _Memo:
    """A field parser with the answers it has given (at most 100,000, then it starts afresh)."""

    def __init__(self, parse: Callable[[str], Parsed]) -> None:
        self.parse = parse
        self.answers: dict[str, Parsed] = {}
        self.valid: dict[str, Any] = {}
        """Text exactly as read → its value, for text already found valid: the fast path."""

    def __call__(self, raw: str) -> Parsed:
        answer = self.answers.get(raw)
        if answer is None:
            if len(self.answers) >= MEMO_SIZE:
                self.answers.clear()
            answer = self.answers[raw] = self.parse(raw)
        return answer

    def remember(self, raw: str, value: Any) -> None:
        """Note that `raw`, as read (unstripped), is valid and means `value`."""
        if len(self.valid) >= MEMO_SIZE:
            self.valid.clear()
        self.valid[raw] = value


def _memo(parse: Callable[[str], Parsed]) -> _Memo:
    return _Memo(parse)


@_memo
def _date(raw: str) -> Parsed:
    iso, us = _ISO_DATE.match(raw), _US_DATE.match(raw)
    try:
        if iso:
            return datetime.date(int(iso[1]), int(iso[2]), int(iso[3])).isoformat(), None
        if us:
            return datetime.date(int(us[3]), int(us[1]), int(us[2])).isoformat(), None
    except ValueError:
        return None, f"`{raw}` is not a calendar date"
    return None, f"expected a date as YYYY-MM-DD or MM/DD/YYYY, found `{raw}`"


@_memo
def _npi(raw: str) -> Parsed:
    if not (len(raw) == 10 and _WHOLE.fullmatch(raw)):
        return None, f"expected an NPI of 10 digits, found `{raw}`"
    if not npi_is_valid(raw):
        return None, f"`{raw}` fails the NPI check digit"
    return raw, None


@_memo
def _credential(raw: str) -> Parsed:
    credential = raw.upper()
    if credential and credential not in CREDENTIALS:
        return None, f"unknown credential `{raw}`; expected one of {', '.join(CREDENTIALS)}"
    return credential, None


@_memo
def _code(raw: str) -> Parsed:
    code = raw.upper()
    if not CODE_RE.match(code):
        return None, f"expected a procedure code such as 97140, 0042T or S8990, found `{raw}`"
    return code, None


@_memo
def _modifiers(raw: str) -> Parsed:
    modifiers = [m for m in _LIST_SPLIT.split(raw.upper()) if m]
    wrong = [m for m in modifiers if not MODIFIER_RE.match(m)]
    if wrong:
        return None, f"a modifier has two letters or digits, found `{wrong[0]}`"
    return frozenset(modifiers), None


def _whole(raw: str) -> int | str:
    """The value of ASCII digits, or what is wrong with them."""
    if not _WHOLE.fullmatch(raw):
        return "not a whole number"
    # Leading zeros are dropped before `int()`, which refuses more than 4,300 digits.
    if len(raw.lstrip("0")) > len(str(MAX_WHOLE)) or int(raw) > MAX_WHOLE:
        return f"more than {MAX_WHOLE:,}"
    return int(raw)


@_memo
def _units(raw: str) -> Parsed:
    if not raw:
        return 1, None
    value = _whole(raw)
    if isinstance(value, int) and value > 0:
        return value, None
    if value == "not a whole number" or value == 0:
        return None, f"expected a positive whole number, found `{shown(raw)}`"
    return None, f"units are at most {MAX_WHOLE:,}, found `{shown(raw)}`"


@_memo
def _minutes(raw: str) -> Parsed:
    if not raw:
        return None, None
    value = _whole(raw)
    if isinstance(value, int):
        return value, None
    if value == "not a whole number":
        return None, f"expected a whole number of minutes, found `{shown(raw)}`"
    return None, f"minutes are at most {MAX_WHOLE:,}, found `{shown(raw)}`"


@_memo
def _charge(raw: str) -> Parsed:
    amount = parse_money(raw)
    if amount is None:
        return None, f"expected an amount such as 45.00, found `{raw}`"
    if money_too_large(amount):
        # Before `quantize`, which fails past 28 digits.
        return None, f"a charge is at most {MAX_MONEY_TEXT}, found `{shown(raw)}`"
    if amount < 0:
        return None, f"a charge cannot be negative, found `{raw}`"
    if amount != amount.quantize(amount.__class__("0.01")):
        return None, f"an amount has at most two decimals, found `{raw}`"
    return to_cents(amount), None


@_memo
def _diagnoses(raw: str) -> Parsed:
    diagnoses = [d for d in _LIST_SPLIT.split(raw.upper()) if d]
    wrong = [d for d in diagnoses if not ICD10_RE.match(d)]
    if wrong:
        return None, f"expected ICD-10-CM codes such as M54.50, found `{wrong[0]}`"
    return tuple(diagnoses), None


_PLACE_RE = re.compile(r"[0-9]{2}")


@_memo
def _place(raw: str) -> Parsed:
    if raw and not _PLACE_RE.fullmatch(raw):
        return None, f"expected a place of service of two digits such as 11 or 02, found `{shown(raw)}`"
    return raw, None


_FIELD_PARSERS: tuple[tuple[int, str, _Memo], ...] = (
    (2, "date", _date), (4, "provider_npi", _npi), (5, "provider_credential", _credential), (6, "code", _code),
    (7, "modifiers", _modifiers), (8, "units", _units), (9, "minutes", _minutes), (10, "charge", _charge),
    (11, "diagnoses", _diagnoses), (12, "prescription_by", _credential), (13, "place_of_service", _place),
)
"""Position in `ALL_FIELDS`, name and parser of every field that is more than text."""

_REQUIRED_AT = tuple(ALL_FIELDS.index(f) for f in REQUIRED_FIELDS)
_FIELD_ORDER = {f: i for i, f in enumerate(ALL_FIELDS)}


_FAST_PARSERS = tuple((index, field, parse.answers, parse) for index, field, parse in _FIELD_PARSERS)


def _validate(raw: Sequence[str]) -> tuple[list[Any], list[Problem] | None]:
    """Check every field of one record (strings in `ALL_FIELDS` order); return the clean values,
    in the same order, and the problems found (None when there are none)."""
    values: list[Any] = [clean(raw[0]), clean(raw[1]), "", clean(raw[3]), *raw[4:]]
    problems: list[Problem] | None = None
    for index, field, answers, parse in _FAST_PARSERS:
        text = clean(raw[index])
        answer = answers.get(text)  # the common case: this text was seen before
        if answer is None:
            answer = parse(text)
        values[index], message = answer
        if message is None:
            parse.remember(raw[index], values[index])
        elif text:
            problems = problems or []
            problems.append(Problem(field=field, value=raw[index], message=message))
    for index in _REQUIRED_AT:
        if not values[index] and not clean(raw[index]):
            problems = [p for p in problems or () if p.field != ALL_FIELDS[index]]
            problems.append(Problem(field=ALL_FIELDS[index], value=raw[index], message="is empty"))
    if problems is not None:
        problems.sort(key=lambda p: _FIELD_ORDER[p.field])
    return values, problems


_DATE, _NPI, _CREDENTIAL, _CODE, _MODIFIERS, _UNITS, _MINUTES, _CHARGE, _DIAGNOSES, _PRESCRIBER, _PLACE = (
    parse.valid for _, _, parse in _FIELD_PARSERS)


def _values(raw: Sequence[str]) -> tuple[list[Any], list[Problem] | None]:
    """`_validate`, in one lookup per field when every field's text was seen and found valid
    before (exports repeat the same NPIs, codes, dates and charges on many rows)."""
    try:
        values = [clean(raw[0]), clean(raw[1]), _DATE[raw[2]], clean(raw[3]), _NPI[raw[4]],
                  _CREDENTIAL[raw[5]], _CODE[raw[6]], _MODIFIERS[raw[7]], _UNITS[raw[8]], _MINUTES[raw[9]],
                  _CHARGE[raw[10]], _DIAGNOSES[raw[11]], _PRESCRIBER[raw[12]], _PLACE[raw[13]]]
    except KeyError:
        return _validate(raw)
    if values[0] and values[1] and values[3]:
        return values, None
    return _validate(raw)


Record = tuple[Sequence[str], Origin, Problem | None]
"""A flat record (strings in `ALL_FIELDS` order), where it came from, and a structural problem
that rejects it outright."""



def _json_value(value: Any) -> str:
    """A JSON value (or, through the API, any Python value) as the text of a field."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ";".join(_element(v) for v in value)
    return _element(value)


def _element(value: Any) -> str:
    return value if isinstance(value, str) else _SHOWN.repr(value)


_HUGE = 10 ** MAX_FIELD_CHARS


class _Shown(reprlib.Repr):
    """`repr` bounded in depth and length, for values that are not text (nested lists and
    objects given through the API); whole numbers too long for `str()` are described."""

    def repr_int(self, x: int, level: int) -> str:
        return f"(a whole number of more than {MAX_FIELD_CHARS:,} digits)" if abs(x) >= _HUGE else str(x)


_SHOWN = _Shown()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother = 3, MAX_FIELD_CHARS + 1, MAX_FIELD_CHARS + 1


def limited(raw: Sequence[str]) -> tuple[Sequence[str], Problem | None]:
    """`raw` with every field longer than `MAX_FIELD_CHARS` emptied (so that no grouping key,
    memo or message holds it), and the problem that then rejects the record."""
    if max(map(len, raw)) <= MAX_FIELD_CHARS:
        return raw, None
    long = [i for i, text in enumerate(raw) if len(text) > MAX_FIELD_CHARS]
    problem = Problem(field=ALL_FIELDS[long[0]], value=shown(raw[long[0]]),
                      message=f"is {len(raw[long[0]]):,} characters long; a field has at most "
                              f"{MAX_FIELD_CHARS:,}")
    cut = list(raw)
    for i in long:
        cut[i] = ""
    return cut, problem


_KEYS = frozenset(ALL_FIELDS) | {"lines"}
KNOWN_KEYS = _KEYS
"""The keys a session or line object may have, as field names."""


def normal_keys(obj: dict[Any, Any]) -> tuple[dict[Any, Any], tuple[str, str, str] | None]:
    """A JSON object with its keys as field names (see `field_name`), and a field it names
    twice: (field, first key, second key)."""
    if _KEYS.issuperset(obj):  # the common case: the keys are written as the fields are
        return obj, None
    named: dict[Any, Any] = {}
    keys: dict[str, str] = {}
    twice = None
    for key, value in obj.items():
        name = field_name(key) if isinstance(key, str) else key
        if name in keys and name in _KEYS and twice is None:
            twice = (name, keys[name], key)
        keys[name] = key
        named[name] = value
    return named, twice


def _session_records(obj: Any, file: str, row: int, path: str, keep: tuple[str, ...] = (),
                     facts: tuple[str, ...] = ()) -> Iterator[Record]:
    """The flat records of one session object; with the values of the `keep` keys (names as
    `field_name` gives them) on each origin: the line's own, else its session's, else "";
    and so the values of the declared fields `facts`."""
    names = keep + facts if facts else keep
    for raw, where, problem, kept in _json_lines(obj, path, names):
        raw, late = limited(raw)
        text = "".join(raw) if problem is None else "".join(raw) + problem.value
        if not text.isascii() and _SURROGATE.search(text):
            raw, problem = _without_surrogates(raw, problem)
        if facts:
            found = fact_texts(kept[len(keep):])
            kept = kept[:len(keep)]
            if isinstance(found, Problem):
                problem = problem or found
                found = ()
            yield raw, Origin(file=file, row=row, path=where, kept=kept, facts=found), problem or late
            continue
        yield raw, Origin(file=file, row=row, path=where, kept=kept), problem or late


def fact_texts(found: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...] | Problem:
    """The declared fields' texts of one line, bounded as every field is: the problem that rejects
    the line when one is longer than `MAX_FIELD_CHARS`."""
    for name, text in found:
        if len(text) > MAX_FIELD_CHARS:
            return Problem(field=name, value=shown(text),
                           message=f"is {len(text):,} characters long; a field has at most {MAX_FIELD_CHARS:,}")
    return tuple(found)


def _kept(keep: tuple[str, ...], line: dict[Any, Any], session: dict[Any, Any]) -> tuple[tuple[str, str], ...]:
    """The `keep` values of a line object (keys already normalised), falling back on its session's."""
    if not keep:
        return ()
    return tuple([(name, _json_value(line[name] if name in line else session.get(name))) for name in keep])


def _without_surrogates(raw: Sequence[str], problem: Problem | None) -> tuple[list[str], Problem]:
    """A record whose text holds lone surrogates (from `\\ud800` escapes in JSON, which are not
    text and cannot be written out), with them escaped, and the problem that rejects it."""
    def escaped(text: str) -> str:
        return text.encode("utf-8", "backslashreplace").decode("utf-8") if _SURROGATE.search(text) else text

    if problem is None:
        at = next(i for i, text in enumerate(raw) if _SURROGATE.search(text))
        problem = Problem(field=ALL_FIELDS[at], value=raw[at],
                          message="holds a lone surrogate escape, which is not text; write the character "
                                  "itself or a valid escape pair")
    return [escaped(text) for text in raw], problem._replace(value=escaped(problem.value))


_NOT_A_LINE: dict[Any, Any] = {}


def _json_lines(obj: Any, path: str, keep: tuple[str, ...] = ()
                ) -> Iterator[tuple[Sequence[str], str, Problem | None, tuple[tuple[str, str], ...]]]:
    """A session object's lines as flat records, each with its path, structural problem and
    kept ids."""
    prefix = path + "." if path else ""
    if not isinstance(obj, dict):
        problem = Problem(field=path or "session", value=_json_value(obj)[:40],
                          message="expected a session object with a `lines` list")
        yield [""] * len(ALL_FIELDS), path, problem, _kept(keep, _NOT_A_LINE, _NOT_A_LINE)
        return
    obj, twice = normal_keys(obj)
    shared = [_json_value(obj.get(f)) for f in ALL_FIELDS]
    lines = obj.get("lines")
    if not isinstance(lines, list) or not lines:
        problem = Problem(field="lines", value=_json_value(lines)[:40],
                          message="expected a non-empty list of service lines")
        yield shared, f"{prefix}lines", problem, _kept(keep, _NOT_A_LINE, obj)
        return
    for i, line in enumerate(lines):
        where = f"{prefix}lines[{i}]"
        if not isinstance(line, dict):
            problem = Problem(field="line", value=_json_value(line)[:40], message="expected a service line object")
            yield shared, where, problem, _kept(keep, _NOT_A_LINE, obj)
            continue
        line, line_twice = normal_keys(line)
        raw = [_json_value(line[f]) if f in line else value for f, value in zip(ALL_FIELDS, shared)]
        kept = _kept(keep, line, obj)
        duplicate = twice or line_twice
        if duplicate is not None:
            field, first, second = duplicate
            problem = Problem(field=field, value="", message=f"is given twice, as `{first}` and `{second}`; "
                                                             "field names ignore case, spaces and dashes")
            yield raw, where, problem, kept
            continue
        yield raw, where, None, kept


# --- records → sessions -------------------------------------------------------------------


class RecordError(NamedTuple):
    """A service line that was not judged, and why."""

    origin: Origin
    session_id: str | None
    line: int | None
    """1-based position in its session, when the session is known."""
    code: str | None
    problems: tuple[Problem, ...]

    @property
    def message(self) -> str:
        return "; ".join(f"{p.field}: {p.message}" for p in self.problems)


class Batch:
    """Sessions read from the input, in input order, with the lines that were rejected."""

    def __init__(self, sessions: list[Session] | None = None, errors: list[RecordError] | None = None,
                 lines_read: int = 0) -> None:
        self.sessions: list[Session] = sessions if sessions is not None else []
        self.errors: list[RecordError] = errors if errors is not None else []
        self.lines_read = lines_read


new_named_tuple = tuple.__new__
"""`new_named_tuple(Line, fields)` builds a named tuple from a tuple of all its fields, without
the keyword handling of its constructor (millions are built per run)."""


def _line(v: list[Any], number: int, origin: Origin) -> Line:
    """The `Line` of a valid record's values (in `ALL_FIELDS` order)."""
    return new_named_tuple(Line, (v[0], v[1], v[2], v[3], number, v[6], v[7], v[8], v[9], v[10], v[4], v[5],
                                  v[11], v[12], origin, v[13], NO_FACTS))


class _Open:
    """A session still being read: its first valid line's values and row, its lines, and how
    many records (valid or not) it has had."""

    __slots__ = ("head", "row", "lines", "count", "day")

    def __init__(self) -> None:
        self.head: list[Any] | None = None
        self.row = 0
        self.lines: list[Line] = []
        self.count = 0
        self.day = _NO_DAY
        """The count of judged lines of its patient on its date, shared by that day's sessions."""


_NO_DAY = [0]


class _Grouper:
    """Collects flat records into sessions by session_id, keeping first-seen order."""

    def __init__(self) -> None:
        self._open: dict[str, _Open] = {}
        self._order: list[str] = []
        self._closed: dict[str, tuple[str, int]] = {}
        """Sessions already handed out: id → (patient, row of its first line)."""
        self.errors: list[RecordError] = []
        self.lines_read = 0
        self._days: dict[tuple[str, str], list[int]] = {}
        """(patient, date) → judged lines so far; reset with each block, which holds whole patients."""
        self.ids: set[str] | None = None
        """When a set, the session ids of the lines given are added to it as they are taken."""

    def add(self, raw: Sequence[str], origin: Origin, structural: Problem | None = None) -> None:
        values, problems = _values(raw)
        if problems is None and structural is None and self.add_valid(values, origin):
            return
        self.lines_read += 1
        if structural is not None:
            problems = [structural]
        session_id = values[0] or None
        entry = self._open.get(session_id) if session_id else None
        number: int | None = None
        if session_id is not None:
            if entry is None:
                entry = self._open[session_id] = _Open()
                self._order.append(session_id)
                closed = self._closed.get(session_id)
                if closed is not None and not problems:
                    # Patient ids stay out of messages: they are masked where they are fields.
                    problems = [Problem(
                        field="session_id", value=session_id,
                        message=f"session {session_id} already appeared for another patient at row "
                                f"{closed[1]}; a session's rows must share one patient")]
            entry.count += 1
            number = entry.count
            head = entry.head
            if head is not None and not problems and (values[1] != head[1] or values[2] != head[2]
                                                      or values[3] != head[3]):
                index = next(i for i in (1, 2, 3) if values[i] != head[i])
                field = ALL_FIELDS[index]
                message = (f"session {session_id} has another patient at row {entry.row}; a session's rows "
                           "must share one patient" if index == 1 else
                           f"session {session_id} has {field} `{head[index]}` (row {entry.row}), this row "
                           f"has `{values[index]}`")
                problems = [Problem(field=field, value=raw[index], message=message)]
            if not problems and number > MAX_SESSION_LINES:
                problems = [Problem(field="session_id", value=session_id,
                                    message=f"session {session_id} has more than {MAX_SESSION_LINES:,} lines; "
                                            f"payrules judges at most {MAX_SESSION_LINES:,} lines of a session")]
        day = _NO_DAY
        if not problems:
            day = entry.day if entry is not None and entry.head is not None else self._days.setdefault(
                (values[1], values[2]), [0])
            if day[0] >= MAX_DAY_LINES:
                problems = [Problem(field="date", value=raw[2],
                                    message=f"the patient has more than {MAX_DAY_LINES:,} lines on {values[2]}; "
                                            f"payrules judges at most {MAX_DAY_LINES:,} lines of a patient "
                                            "on one day")]
        if problems:
            code = values[6] if isinstance(values[6], str) and values[6] else None
            self.errors.append(RecordError(origin=origin, session_id=session_id, line=number, code=code,
                                           problems=tuple(problems)))
            return
        assert entry is not None and number is not None
        if entry.head is None:
            entry.head, entry.row, entry.day = values, origin.row, day
        day[0] += 1
        entry.lines.append(_line(values, number, origin))

    def add_valid(self, v: list[Any], origin: Origin) -> bool:
        """`add` of a record whose values `v` are valid (in `ALL_FIELDS` order, with a session,
        patient and payer), in short, when it opens a session or continues one as its lines
        before it did; False, with nothing added, for any other (for `add` to say why)."""
        entry = self._open.get(v[0])
        if entry is None:
            if v[0] in self._closed:
                return False
            day = self._days.setdefault((v[1], v[2]), [0])
            if day[0] >= MAX_DAY_LINES:  # the general path says why the line is not judged
                return False
            entry = self._open[v[0]] = _Open()
            self._order.append(v[0])
            entry.head, entry.row, entry.day = v, origin.row, day
        else:
            head = entry.head
            if (head is None or v[1] != head[1] or v[2] != head[2] or v[3] != head[3]
                    or entry.count >= MAX_SESSION_LINES or entry.day[0] >= MAX_DAY_LINES):
                return False
        self.lines_read += 1
        entry.count += 1
        entry.day[0] += 1
        # `_line`, in place (a call per line costs what the rest of this does).
        entry.lines.append(new_named_tuple(Line, (v[0], v[1], v[2], v[3], entry.count, v[6], v[7], v[8], v[9], v[10],
                                                  v[4], v[5], v[11], v[12], origin, v[13], NO_FACTS)))
        return True

    def take(self) -> Batch:
        """The sessions and errors gathered so far; the grouper starts afresh (it remembers ids)."""
        batch = Batch(errors=self.errors, lines_read=self.lines_read)
        if self.ids is not None:
            self.ids.update(self._order)
        for session_id in self._order:
            entry = self._open[session_id]
            values = entry.head
            if values is not None:
                self._closed[session_id] = (values[1], entry.row)
                batch.sessions.append(Session(session_id, values[1], values[2], values[3], tuple(entry.lines)))
        self._open, self._order, self.errors, self.lines_read, self._days = {}, [], [], 0, {}
        return batch


def session_batch(sessions: list[Any], name: str, keep: tuple[str, ...] = (), facts: tuple[str, ...] = ()) -> Batch:
    """Sessions given in memory (dicts in the JSON input shape, or typed `Session` values) as one
    batch; dicts are validated and located as `name` row N (the Nth session), carrying the
    values of their `keep` keys (see `_session_records`)."""
    grouper = _Grouper()
    order: list[Session | str] = []
    for row, session in enumerate(sessions, start=1):
        if isinstance(session, Session):
            order.append(session)
            grouper.lines_read += len(session.lines)
            continue
        for raw, origin, problem in _session_records(session, name, row, "", keep, facts):
            grouper.add(raw, origin, problem)
        if isinstance(session, dict):
            order.append(clean(_json_value(normal_keys(session)[0].get("session_id"))))
    batch = grouper.take()
    by_id = {s.session_id: s for s in batch.sessions}
    batch.sessions = []
    for item in order:
        found = item if isinstance(item, Session) else by_id.pop(item, None)
        if found is not None:
            batch.sessions.append(found)
    return batch


# --- declared fields (`field accident_date: date` in a rule file) ---------------------------

_FACT_CODE = re.compile(r"[A-Z0-9][A-Z0-9.\-]*")
_YES = frozenset({"yes", "y", "true", "1"})
_NO = frozenset({"no", "n", "false", "0"})


def _fact_code(raw: str) -> Parsed:
    code = raw.upper()
    if not _FACT_CODE.fullmatch(code):
        return None, f"expected a code of letters and digits, found `{shown(raw)}`"
    return code, None


def _fact_number(raw: str) -> Parsed:
    value = _whole(raw)
    if isinstance(value, int):
        return value, None
    if value == "not a whole number":
        return None, f"expected a whole number, found `{shown(raw)}`"
    return None, f"a number is at most {MAX_WHOLE:,}, found `{shown(raw)}`"


def _fact_money(raw: str) -> Parsed:
    value, message = _charge(raw)
    return value, message.replace("a charge", "an amount") if message else None


def _fact_yes_no(raw: str) -> Parsed:
    word = raw.lower()
    if word in _YES:
        return True, None
    if word in _NO:
        return False, None
    return None, f"expected yes or no, found `{shown(raw)}`"


FACT_PARSERS: dict[str, Callable[[str], Parsed]] = {
    "date": _date, "code": _fact_code, "text": lambda raw: (raw, None), "number": _fact_number,
    "money": _fact_money, "yes/no": _fact_yes_no,
}
"""Declared field type → parser of its text (never given the empty text: that is a missing value)."""


def parse_fact(kind: str, raw: str) -> Parsed:
    """The typed value of a declared field's text, or what is wrong with it; (None, None) when
    the text is empty (the value is missing)."""
    text = clean(raw)
    if not text:
        return None, None
    return FACT_PARSERS[kind](text)
