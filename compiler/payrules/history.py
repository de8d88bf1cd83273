"""`--history` CSV files → a compact history: each patient's rows kept as their text, checked in
full when loaded, and turned into sessions only for the patients of the batch being judged.

A history of a million lines read as `Session` and `Line` values costs several seconds and most
of a gigabyte, though a batch needs the lines of its own patients only. Here a file is read in
blocks of rows. A block whose rows all have the usual form (ids with nothing to strip, upper-case
codes, ISO dates, plain amounts: see `_CANONICAL`) is checked by one pattern, and only its NPIs
and dates are then looked at, each distinct text once. Any other block is checked column by
column: each distinct text of a column is validated once, by the reader's own field parsers.
Sessions (one patient, date and payer each) and the reader's limits are checked over whole
columns. The rows of each patient (payer and patient id) are kept as one `bytes` with their row
numbers. When a batch is judged, `CompactHistory.covering` reads its patients' rows with the
reader's own code (`_CsvTable.record`, `fields._values`) into a `judging.History`: the same
sessions, lines, numbers and origins as a history read whole.

Only plain CSV files are read this way (no quote characters, one column per field: see
`records._CsvTable`). Other files, and any file with a row the reader would reject, are read the
usual way, so that every message stays word for word what it was.
"""

from __future__ import annotations

import array
import itertools
import operator
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from payrules.diagnostics import InputError
from payrules.domain import CREDENTIALS
from payrules.fields import (
    _FIELD_PARSERS,
    ALL_FIELDS,
    MAX_DAY_LINES,
    MAX_FIELD_CHARS,
    MAX_SESSION_LINES,
    MEMO_SIZE,
    REQUIRED_FIELDS,
    _line,
    _values,
    clean,
    new_named_tuple,
)
from payrules.judging import History, PatientKey, fewer_collections
from payrules.records import CSV_READ_LIMIT, Columns, _blank, _CsvTable, _kind, _plain_cells
from payrules.runtime import Line, Origin, Session

BLOCK_BYTES = 1 << 16
"""About how much of a file is checked at a time (some 800 rows of a typical export): small
enough that a block's cells stay in the processor's cache, which makes loading about twice as
fast as with blocks of megabytes."""

_PARSERS = {index: parse for index, _, parse in _FIELD_PARSERS}
_REQUIRED = frozenset(ALL_FIELDS.index(f) for f in REQUIRED_FIELDS)
_SESSION, _PATIENT, _DATE, _PAYER, _NPI = 0, 1, 2, 3, 4

_ID = rb"[\x21-\x2b\x2d-\x7e](?:[\x20-\x2b\x2d-\x7e]*[\x21-\x2b\x2d-\x7e])?"
"""An id as most exports write it: printable ASCII, no comma, nothing to strip at either end."""
_CREDENTIAL = b"(?:" + b"|".join(sorted(c.encode() for c in CREDENTIALS)) + b")?"
_DIAGNOSIS = rb"[A-Z][0-9][0-9A-Z](?:\.[0-9A-Z]{1,4})?"
_CANONICAL = {
    _SESSION: b"(" + _ID + b")",
    _PATIENT: b"(" + _ID + b")",
    _DATE: rb"([0-9]{4}-[0-9]{2}-[0-9]{2})",
    _PAYER: b"(" + _ID + b")",
    _NPI: rb"([0-9]{10})",
    5: _CREDENTIAL,
    6: rb"(?:[0-9]{5}|[0-9]{4}[FTU]|[A-Z][0-9]{4})",
    7: rb"(?:[A-Z0-9]{2}(?:[ ;][A-Z0-9]{2})*)?",
    8: rb"(?:[1-9][0-9]{0,8})?",
    9: rb"(?:[0-9]{1,9})?",
    10: rb"(?:0|[1-9][0-9]{0,8})(?:\.[0-9]{1,2})?",
    11: b"(?:" + _DIAGNOSIS + b"(?:[ ;]" + _DIAGNOSIS + b")*)?",
    12: _CREDENTIAL,
    13: rb"(?:[0-9]{2})?",
}
"""Each field's text in the form most exports write it, which the reader always accepts (see
`fields._validate`): no spaces to strip, upper case, dates as YYYY-MM-DD, amounts as 45.00. Only
the NPI check digit and the calendar are left to check, on each distinct text. The five fields
in parentheses are captured, in column order."""
T = TypeVar("T")


class _Rejected(Exception):
    """A row the fast reading leaves to the reader (it rejects it, or skips it as blank)."""


_EMPTY = object()
"""The value of a required field with nothing in it (a blank row, or a rejected one)."""


def _value(field: int, raw: bytes) -> Any:
    """The value the reader gives cell `raw` of `field`, one it parses (see `fields._validate`);
    `_EMPTY` for a required field left empty, `_Rejected` when the reader finds it wrong."""
    text = clean(raw.decode("utf-8"))  # a cell that ends its line holds the line break, which is whitespace
    value, message = _PARSERS[field](text)
    if message is not None and text:
        raise _Rejected
    if field in _REQUIRED and not value and not text:
        return _EMPTY
    return value


class _Patient:
    """The rows of one patient with one payer while a file is read: their text (each ending
    with a line break), their row numbers and, when several files are read, their file."""

    __slots__ = ("parts", "rows", "files")

    def __init__(self, several_files: bool) -> None:
        self.parts: list[bytes] = []
        self.rows = array.array("q")
        self.files: array.array[int] | None = array.array("I") if several_files else None


Rows = tuple[bytes, "array.array[int]", "array.array[int] | None"]
"""A patient's rows: their text, one line each, their row numbers and their files (None: the
first file)."""


class CompactHistory(History):
    """Earlier sessions kept as rows by patient (see the module's docstring); `covering` gives
    the `judging.History` of a batch's patients."""

    def __init__(self, tables: list[_CsvTable], patients: dict[PatientKey, Rows]) -> None:
        self.tables = [(table, str(table.path), table.headers) for table in tables]
        self.rows = patients
        self._last: tuple[tuple[PatientKey, ...], History] | None = None

    def __bool__(self) -> bool:
        return bool(self.rows)

    def covering(self, sessions: Sequence[Session]) -> History:
        """The history of the patients of `sessions`, read as the reader reads a whole history:
        a patient's sessions, lines and numbers depend only on that patient's rows, in order."""
        keys = tuple(dict.fromkeys((s.payer.casefold(), s.patient_id) for s in sessions))
        last = self._last
        if last is not None and last[0] == keys:  # the same batch judged again (`payrules diff`)
            return last[1]
        tables = self.tables
        sessions_read: list[Session] = []
        for key in keys:
            found = self.rows.get(key)
            if found is None:
                continue
            text, rows, files = found
            # The reader's sessions of these rows (see `fields._Grouper`), which it found valid:
            # each session in the order its id first appears, its lines numbered in row order.
            by_session: dict[str, list[Line]] = {}
            for line, row, at in zip(text.split(b"\n"), rows, files or itertools.repeat(0)):
                table, file, headers = tables[at]
                cells = _plain_cells(line.decode("utf-8"))
                if len(cells) == table.width:  # `table.record` without its padding, and no field is too long
                    cells.append("")
                    raw: Sequence[str] = table.pick(cells)
                else:
                    raw = table.record(cells)[0]
                values = _values(raw)[0]
                lines = by_session.get(values[0])
                if lines is None:
                    lines = by_session[values[0]] = []
                origin = new_named_tuple(Origin, (file, row, "", headers, (), ()))
                lines.append(_line(values, len(lines) + 1, origin))
            sessions_read += [Session(session, lines[0].patient_id, lines[0].date, lines[0].payer, tuple(lines))
                              for session, lines in by_session.items()]
        history = History(sessions_read)
        self._last = (keys, history)
        return history


def read_compact(paths: list[Path], columns: Columns | None = None) -> CompactHistory | None:
    """The history in `paths`, or None when it must be read the usual way: a file that is not
    plain CSV, a row the reader rejects or skips, or anything the reader would refuse."""
    columns = columns or Columns()
    if columns.keep or columns.facts:
        return None  # kept ids and declared fields travel in each line's origin: the reader's
    try:
        if any(_kind(path) != ".csv" for path in paths):
            return None
        # Taken as plain: `_Loader.read` checks that each file is, as it reads it.
        tables = [_CsvTable(path, columns, plain=True) for path in paths]
    except (InputError, OSError, UnicodeDecodeError):
        return None  # the reader words it, in its own order
    if not all(table.simple for table in tables):
        return None
    with fewer_collections():
        loader = _Loader(len(paths) > 1)
        try:
            for index, table in enumerate(tables):
                loader.read(table, index)
            loader.check_limits(tables)
        except (_Rejected, OSError):
            return None
        return CompactHistory(tables, loader.finish())


def _records(patient: _Patient, tables: list[_CsvTable]) -> Iterable[Sequence[str]]:
    """The reader's records of a patient's rows, while they are being read."""
    lines = b"".join(patient.parts).split(b"\n")
    for line, at in zip(lines, patient.files or itertools.repeat(0, len(lines) - 1)):
        yield tables[at].record(_plain_cells(line.decode("utf-8")))[0]


def _kept(values: Sequence[T], kept: list[int]) -> list[T]:
    return [values[i] for i in kept]


def _encoded(values: list[Any]) -> list[bytes]:
    """Text values as UTF-8 (none holds a NUL: it is not in a plain file)."""
    return "\0".join(values).encode("utf-8").split(b"\0")


def _plain(text: bytes) -> bool:
    """Whether `text` (whole lines) is plain as `records._is_plain` means it: no quote characters,
    NULs or carriage returns but before a line feed, and UTF-8."""
    if b'"' in text or b"\0" in text or text.count(b"\r") != text.count(b"\r\n"):
        return False
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class _Loader:
    """Checks blocks of rows as the reader would, keeping each patient's rows."""

    def __init__(self, several_files: bool) -> None:
        self.several_files = several_files
        self.known: list[dict[bytes, Any]] = [{} for _ in ALL_FIELDS]
        """Per field, the value of each cell text seen (`_EMPTY` for a required field left empty)."""
        self.emptied: list[set[bytes]] = [set() for _ in ALL_FIELDS]
        """Per field, the cell texts whose value is `_EMPTY`."""
        self.owners: dict[bytes, tuple[bytes, bytes, bytes]] = {}
        """Session id → its patient, date and payer, as on its first row (values, UTF-8)."""
        self.folded: dict[bytes, str] = {}
        """Payer id (UTF-8) → in lower case (see `str.casefold`)."""
        self.canonical: dict[int, Any] = {}
        """Per file, its pattern of rows in the usual form (see `_canonical`)."""
        self.patients: dict[PatientKey, _Patient] = {}

    def read(self, table: _CsvTable, index: int) -> None:
        with open(table.path, "rb") as stream:
            header = stream.readline()
            if not _plain(header.removeprefix(b"\xef\xbb\xbf")):
                raise _Rejected
            row = 2
            while lines := stream.readlines(BLOCK_BYTES):
                block = b"".join(lines)
                if not _plain(block):
                    raise _Rejected
                if not block.endswith(b"\n"):  # the file's last line: kept as one line of the patient's text
                    lines[-1] += b"\n"
                    block += b"\n"
                self._block(table, index, lines, block, row)
                row += len(lines)

    def _cells(self, table: _CsvTable, lines: list[bytes], block: bytes) -> list[bytes]:
        """The cells of `lines` (`block`, joined), row after row, each row padded or cut to the
        header's width as the reader does; a cell that ends its line keeps the line break."""
        width = table.width
        if list(map(bytes.count, lines, itertools.repeat(b","))).count(width - 1) == len(lines):
            return block.replace(b"\n", b",").split(b",")
        rows = [line.rstrip(b"\r\n").split(b",") for line in lines]
        padding = [b""] * width
        return list(itertools.chain.from_iterable(
            cells if len(cells) == width else (cells + padding)[:width] for cells in rows))

    def _column(self, field: int, cells: Sequence[bytes]) -> None:
        """Learn the value of each text of `field` in `cells`; `_Rejected` when one is wrong."""
        known = self.known[field]
        if len(known) > MEMO_SIZE:
            known.clear()
        for raw in set(cells).difference(known):
            value = known[raw] = _value(field, raw)
            if value is _EMPTY:
                self.emptied[field].add(raw)

    def _canonical(self, table: _CsvTable) -> tuple[re.Pattern[bytes], dict[int, int]] | None:
        """A pattern of the file's rows with every field as `_CANONICAL` has it, and the place of
        each captured field among the groups; None when a column feeds two fields."""
        fields: dict[int, int] = {}
        for field, pick in enumerate(table.picks):
            if pick:
                if pick[0] in fields:
                    return None
                fields[pick[0]] = field
        cells = [_CANONICAL[fields[at]] if at in fields else rb"[^,\n]*" for at in range(table.width)]
        captured = sorted((at, field) for at, field in fields.items() if field in (_SESSION, _PATIENT, _DATE,
                                                                                    _PAYER, _NPI))
        return (re.compile(b"^" + b",".join(cells) + rb"\r?\n", re.MULTILINE),
                {field: place for place, (_, field) in enumerate(captured)})

    def _block(self, table: _CsvTable, index: int, lines: list[bytes], block: bytes, first_row: int) -> None:
        longest = max(map(len, lines))
        if longest > CSV_READ_LIMIT:
            raise _Rejected
        width, count = table.width, len(lines)
        canonical = self.canonical.get(index, ())
        if canonical == ():
            canonical = self.canonical[index] = self._canonical(table)
        if canonical is not None and longest <= MAX_FIELD_CHARS:
            pattern, place = canonical
            found = pattern.findall(block)
            if len(found) == count:  # each row, whole, in the usual form: one pass of the pattern checked it
                captured = list(zip(*found))
                del found
                self._column(_NPI, captured[place[_NPI]])
                self._column(_DATE, captured[place[_DATE]])
                # In the usual form a text is its value (UTF-8), as `_encoded` gives it below.
                session, patient, date, payer = (captured[place[f]] for f in (_SESSION, _PATIENT, _DATE, _PAYER))
                self._check_sessions(session, list(zip(patient, date, payer)))
                self._keep(patient, payer, lines, range(first_row, first_row + count), index)
                return
        cells = self._cells(table, lines, block)
        picked = [(field, pick[0]) for field, pick in enumerate(table.picks) if pick]
        columns = {at: cells[at:width * count:width] for _, at in picked}
        del cells
        if longest > MAX_FIELD_CHARS and any(max(map(len, columns[at])) > MAX_FIELD_CHARS for _, at in picked):
            raise _Rejected  # the reader empties the field and rejects the row
        at = dict(picked)
        # Session, patient and payer are their text, stripped (a cell holds no NUL in a plain file).
        session, patient, payer = (list(map(clean, b"\0".join(columns[at[f]]).decode("utf-8").split("\0")))
                                   for f in (_SESSION, _PATIENT, _PAYER))
        for field, where in picked:
            if field not in (_SESSION, _PATIENT, _PAYER):
                self._column(field, columns[where])
        date = list(map(self.known[_DATE].__getitem__, columns[at[_DATE]]))
        numbers: Sequence[int] = range(first_row, first_row + count)
        if "" in session or "" in patient or "" in payer or any(
                self.emptied[f] and not self.emptied[f].isdisjoint(columns[where]) for f, where in picked):
            kept = self._without_blank_rows(lines, [session, patient, payer, date, *(
                list(map(self.known[f].__getitem__, columns[where])) for f, where in picked
                if f in _REQUIRED and f not in (_SESSION, _PATIENT, _DATE, _PAYER))])
            if not kept:
                return
            lines, numbers = _kept(lines, kept), _kept(numbers, kept)
            session, patient, date, payer = (_kept(values, kept) for values in (session, patient, date, payer))
        session, patient, date, payer = (_encoded(values) for values in (session, patient, date, payer))
        self._check_sessions(session, list(zip(patient, date, payer)))
        self._keep(patient, payer, lines, numbers, index)

    def _without_blank_rows(self, lines: list[bytes], required: list[list[Any]]) -> list[int]:
        """The rows of a block but those the reader skips as blank; `_Rejected` when another row
        has a required field left empty (`required`: the values of each required field)."""
        empty = {i for values in required for i, value in enumerate(values) if value == "" or value is _EMPTY}
        for i in empty:
            if not _blank(_plain_cells(lines[i].decode("utf-8"))):
                raise _Rejected
        return [i for i in range(len(lines)) if i not in empty]

    def _check_sessions(self, sessions: Sequence[bytes], heads: list[tuple[bytes, bytes, bytes]]) -> None:
        """`_Rejected` unless every row of a session has the patient, date and payer of its first."""
        first = dict(zip(reversed(sessions), reversed(heads)))
        owners = self.owners
        if any(owners[s] != first[s] for s in first.keys() & owners.keys()):
            raise _Rejected
        if list(map(first.__getitem__, sessions)) != heads:
            raise _Rejected
        owners.update(first)

    def _keep(self, patient: Sequence[bytes], payer: Sequence[bytes], lines: list[bytes], numbers: Sequence[int],
              index: int) -> None:
        """Add each run of rows of one patient and payer (values, UTF-8) to that patient's rows."""
        count = len(lines)
        changed = map(operator.or_, map(operator.ne, itertools.islice(patient, 1, None), patient),
                      map(operator.ne, itertools.islice(payer, 1, None), payer))
        cuts = [0, *itertools.compress(range(1, count), changed), count]
        patients, folded = self.patients, self.folded
        for start, end in zip(cuts, itertools.islice(cuts, 1, None)):
            name = payer[start]
            lower = folded.get(name)
            if lower is None:
                lower = folded[name] = name.decode("utf-8").casefold()
            key = (lower, patient[start].decode("utf-8"))
            found = patients.get(key)
            if found is None:
                found = patients[key] = _Patient(self.several_files)
            found.parts.append(lines[start] if end - start == 1 else b"".join(lines[start:end]))
            found.rows.extend(numbers[start:end])
            if found.files is not None:
                found.files.extend(itertools.repeat(index, end - start))

    def check_limits(self, tables: list[_CsvTable]) -> None:
        """`_Rejected` when a session, or a patient's day, has more lines than the reader judges.
        Only a patient with that many lines can: its rows are read again to count them."""
        totals: Counter[str] = Counter()
        for (_, patient), found in self.patients.items():
            totals[patient] += len(found.rows)
            if len(found.rows) > MAX_SESSION_LINES:
                sessions = Counter(clean(raw[0]) for raw in _records(found, tables))
                if max(sessions.values()) > MAX_SESSION_LINES:
                    raise _Rejected
        for patient in [p for p, n in totals.items() if n > MAX_DAY_LINES]:
            days = Counter(_PARSERS[_DATE](clean(raw[2]))[0] for (_, other), found in self.patients.items()
                           if other == patient for raw in _records(found, tables))
            if max(days.values()) > MAX_DAY_LINES:
                raise _Rejected

    def finish(self) -> dict[PatientKey, Rows]:
        """Each patient's rows as one text, the reading's working data let go."""
        self.known, self.owners = [], {}
        patients = self.patients
        self.patients = {}
        done: dict[PatientKey, Rows] = {}
        for key in list(patients):
            found = patients.pop(key)
            text = found.parts[0] if len(found.parts) == 1 else b"".join(found.parts)
            done[key] = (text, found.rows, found.files)
        return done
