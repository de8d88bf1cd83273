"""Session files (CSV, JSON, JSONL) → validated `runtime.Session` values and located record errors.

Every service line read comes back exactly once: inside a session, or as a `RecordError`.
Input that is grouped by patient is read one patient block at a time (see `read_blocks`), so
memory does not grow with the file.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import re
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import attrs

from payrules.diagnostics import InputError
from payrules.domain import CODE_RE, CREDENTIALS, MODIFIER_RE, npi_is_valid, parse_money, to_cents
from payrules.runtime import Line, Origin, Session

SESSION_FIELDS = ("session_id", "patient_id", "date", "payer")
LINE_FIELDS = ("provider_npi", "provider_credential", "code", "modifiers", "units", "minutes", "charge",
               "diagnoses", "prescription_by")
ALL_FIELDS = SESSION_FIELDS + LINE_FIELDS
REQUIRED_FIELDS = ("session_id", "patient_id", "date", "payer", "provider_npi", "code", "charge")
LIST_FIELDS = ("modifiers", "diagnoses")
"""Fields that several columns of an export may feed (Mod 1, Mod 2, ...)."""

ICD10_RE = re.compile(r"^[A-Z][0-9][0-9A-Z](?:\.?[0-9A-Z]{1,4})?$")
_ISO_DATE = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})$")
_US_DATE = re.compile(r"^([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})$")
_LIST_SPLIT = re.compile(r"[\s;,]+")


@attrs.frozen(kw_only=True)
class Problem:
    """One bad field of a record."""

    field: str
    value: str
    message: str


@attrs.frozen(kw_only=True)
class RecordError:
    """A service line that was not judged, and why."""

    origin: Origin
    session_id: str | None
    line: int | None
    """1-based position in its session, when the session is known."""
    code: str | None
    problems: tuple[Problem, ...] = attrs.field(converter=tuple[Problem, ...])

    @property
    def message(self) -> str:
        return "; ".join(f"{p.field}: {p.message}" for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of this error (see the shipped schema)."""
        return {
            "file": self.origin.file,
            "row": self.origin.row,
            "path": self.origin.path or None,
            "session_id": self.session_id,
            "line": self.line,
            "code": self.code,
            "message": self.message,
            "problems": [{"field": p.field, "column": self.origin.column(p.field), "value": p.value,
                          "message": p.message} for p in self.problems],
        }


@attrs.define
class Batch:
    """Sessions read from the input, in input order, with the lines that were rejected."""

    sessions: list[Session] = attrs.field(factory=list)
    errors: list[RecordError] = attrs.field(factory=list)
    lines_read: int = 0


# --- field parsers: raw text → (value, message when wrong) --------------------------------
#
# Exports repeat the same NPIs, codes, dates and charges on many rows, so each parser keeps
# the answers it has given (bounded) and most fields cost one dict lookup.

Parsed = tuple[Any, str | None]


def _memo(parse: Callable[[str], Parsed]) -> Callable[[str], Parsed]:
    cache: dict[str, Parsed] = {}

    def cached(raw: str) -> Parsed:
        try:
            return cache[raw]
        except KeyError:
            if len(cache) >= 100_000:
                cache.clear()
            result = cache[raw] = parse(raw)
            return result

    return cached


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
    if not (len(raw) == 10 and raw.isdigit()):
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


@_memo
def _units(raw: str) -> Parsed:
    if not raw:
        return 1, None
    if raw.isdigit() and int(raw) > 0:
        return int(raw), None
    return None, f"expected a positive whole number, found `{raw}`"


@_memo
def _minutes(raw: str) -> Parsed:
    if not raw:
        return None, None
    if raw.isdigit():
        return int(raw), None
    return None, f"expected a whole number of minutes, found `{raw}`"


@_memo
def _charge(raw: str) -> Parsed:
    amount = parse_money(raw)
    if amount is None:
        return None, f"expected an amount such as 45.00, found `{raw}`"
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


_FIELD_PARSERS: tuple[tuple[int, str, Callable[[str], Parsed]], ...] = (
    (2, "date", _date), (4, "provider_npi", _npi), (5, "provider_credential", _credential), (6, "code", _code),
    (7, "modifiers", _modifiers), (8, "units", _units), (9, "minutes", _minutes), (10, "charge", _charge),
    (11, "diagnoses", _diagnoses), (12, "prescription_by", _credential),
)
"""Position in `ALL_FIELDS`, name and parser of every field that is more than text."""

_REQUIRED_AT = tuple(ALL_FIELDS.index(f) for f in REQUIRED_FIELDS)
_FIELD_ORDER = {f: i for i, f in enumerate(ALL_FIELDS)}


def _validate(raw: list[str]) -> tuple[list[Any], list[Problem] | None]:
    """Check every field of one record (strings in `ALL_FIELDS` order); return the clean values,
    in the same order, and the problems found (None when there are none)."""
    text = [cell.strip() for cell in raw]
    values: list[Any] = list(text)
    problems: list[Problem] | None = None
    for index in _REQUIRED_AT:
        if not text[index]:
            problems = problems or []
            problems.append(Problem(field=ALL_FIELDS[index], value=raw[index], message="is empty"))
    for index, field, parse in _FIELD_PARSERS:
        if not text[index] and index in _REQUIRED_AT:
            continue
        value, message = parse(text[index])
        values[index] = value
        if message is not None:
            problems = problems or []
            problems.append(Problem(field=field, value=raw[index], message=message))
    if problems is not None:
        problems.sort(key=lambda p: _FIELD_ORDER[p.field])
    return values, problems


# --- column mapping ------------------------------------------------------------------------


@attrs.frozen
class Columns:
    """Which CSV header feeds each field. Without a mapping file, a header feeds the field of
    the same name (ignoring case, spaces and dashes)."""

    mapping: dict[str, tuple[str, ...]] = attrs.field(factory=dict)
    """field → normalised header names, for the fields the mapping file names."""
    source: str | None = None

    @classmethod
    def load(cls, path: Path) -> Columns:
        """Read a TOML mapping: a `[columns]` table of `field = "Header"` or `field = ["H1", "H2"]`."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
        except FileNotFoundError:
            raise InputError(f"{path}: no such column mapping file") from None
        except (OSError, UnicodeDecodeError) as error:
            raise InputError(f"{path}: cannot read ({error})") from None
        except tomllib.TOMLDecodeError as error:
            raise InputError(f"{path}: not valid TOML ({error})") from None
        table = data.get("columns")
        if not isinstance(table, dict):
            raise InputError(f'{path}: expected a [columns] table, such as [columns] date = "DOS"')
        mapping: dict[str, tuple[str, ...]] = {}
        for field, headers in table.items():
            if field not in ALL_FIELDS:
                raise InputError(f"{path}: `{field}` is not a session field; fields are {', '.join(ALL_FIELDS)}")
            names = [headers] if isinstance(headers, str) else headers
            if not isinstance(names, list) or not names or not all(isinstance(h, str) for h in names):
                raise InputError(f"{path}: `{field}` must name a column header or a list of them")
            if len(names) > 1 and field not in LIST_FIELDS:
                raise InputError(f"{path}: only {' and '.join(LIST_FIELDS)} can take several columns")
            mapping[field] = tuple(_normal_header(h) for h in names)
        return cls(mapping, str(path))

    def headers(self, header: list[str], fields: list[tuple[str, list[int]]]) -> dict[str, str] | None:
        """Field → the header text it was read from, for fields whose column has another name."""
        renamed = {field: " + ".join(header[i].strip() for i in idx) for field, idx in fields
                   if [_normal_header(header[i]) for i in idx] != [field]}
        return renamed or None

    def resolve(self, path: Path, header: list[str]) -> list[tuple[str, list[int]]]:
        """For each field present, the indexes of the columns that feed it."""
        normal = [_normal_header(h) for h in header]
        index = {name: i for i, name in reversed(list(enumerate(normal)))}
        resolved: list[tuple[str, list[int]]] = []
        for field in ALL_FIELDS:
            names = self.mapping.get(field, (field,))
            found = [index[n] for n in names if n in index]
            if field in self.mapping and len(found) < len(names):
                missing = next(n for n in names if n not in index)
                raise InputError(f"{path}:1: column `{missing}` (mapped to {field} in {self.source}) "
                                 f"is not in the header; the header has {', '.join(f'`{h}`' for h in header)}")
            if found:
                resolved.append((field, found))
        present = {field for field, _ in resolved}
        missing_fields = [f for f in REQUIRED_FIELDS if f not in present]
        if missing_fields:
            raise InputError(f"{path}:1: missing column{'s' if len(missing_fields) > 1 else ''} "
                             + ", ".join(f"`{m}`" for m in missing_fields)
                             + f"; the header has {', '.join(f'`{h}`' for h in header)}"
                             + ("" if self.mapping else "; map other names with --columns"))
        return resolved


def _normal_header(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


# --- reading files ---------------------------------------------------------------------------

Record = tuple[list[str], Origin, Problem | None]
"""A flat record (strings in `ALL_FIELDS` order), where it came from, and a structural problem
that rejects it outright."""


def _open(path: Path) -> TextIO:
    try:
        return open(path, encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise InputError(f"{path}: no such sessions file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder; give a .csv, .json or .jsonl file") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror})") from None


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json", ".jsonl"):
        raise InputError(f"{path}: unknown sessions format `{suffix or path.name}`; use .csv, .json or .jsonl")
    return suffix


def _csv_records(path: Path, columns: Columns) -> Iterator[Record]:
    with _open(path) as stream:
        reader = csv.reader(stream)
        try:
            try:
                header = next(reader)
            except StopIteration:
                raise InputError(f"{path}: the file is empty; expected a header row") from None
            fields = columns.resolve(path, header)
            headers = columns.headers(header, fields)
            sources = dict(fields)
            picks = [sources.get(f) for f in ALL_FIELDS]
            simple = all(p is None or len(p) == 1 for p in picks)
            absent = 1 << 30  # past the end of any row: the field reads ""
            single = [p[0] if p else absent for p in picks]
            file = str(path)
            row = reader.line_num
            for cells in reader:
                start, row = row + 1, reader.line_num
                if not any(cells) or not any(cell.strip() for cell in cells):
                    continue
                width = len(cells)
                if simple:
                    raw = [cells[i] if i < width else "" for i in single]
                else:
                    raw = [";".join(cells[i] for i in p if i < width) if p else "" for p in picks]
                yield raw, Origin(file, start, "", headers), None
        except csv.Error as error:
            raise InputError(f"{path}:{reader.line_num}: {error}") from None
        except UnicodeDecodeError as error:
            raise InputError(f"{path}: not UTF-8 text (byte {error.start} of a block)") from None


def _json_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _session_records(obj: Any, file: str, row: int, path: str) -> Iterator[Record]:
    prefix = path + "." if path else ""
    if not isinstance(obj, dict):
        problem = Problem(field=path or "session", value=_json_value(obj)[:40],
                          message="expected a session object with a `lines` list")
        yield [""] * len(ALL_FIELDS), Origin(file=file, row=row, path=path), problem
        return
    shared = [_json_value(obj.get(f)) for f in ALL_FIELDS]
    lines = obj.get("lines")
    if not isinstance(lines, list) or not lines:
        problem = Problem(field="lines", value=_json_value(lines)[:40],
                          message="expected a non-empty list of service lines")
        yield shared, Origin(file=file, row=row, path=f"{prefix}lines"), problem
        return
    for i, line in enumerate(lines):
        where = f"{prefix}lines[{i}]"
        if not isinstance(line, dict):
            problem = Problem(field="line", value=_json_value(line)[:40], message="expected a service line object")
            yield shared, Origin(file=file, row=row, path=where), problem
            continue
        raw = [_json_value(line[f]) if f in line else value for f, value in zip(ALL_FIELDS, shared)]
        yield raw, Origin(file=file, row=row, path=where), None


def _json_sessions(path: Path) -> tuple[list[Any], list[int]]:
    with _open(path) as stream:
        try:
            text = stream.read()
        except UnicodeDecodeError as error:
            raise InputError(f"{path}: not UTF-8 text (byte {error.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"{path}:{error.lineno}:{error.colno}: not valid JSON ({error.msg})") from None
    sessions = data.get("sessions") if isinstance(data, dict) else data
    if not isinstance(sessions, list):
        raise InputError(f'{path}: expected a list of sessions, or an object with a "sessions" list')
    starts = _array_item_lines(text)
    return sessions, starts if len(starts) == len(sessions) else [1] * len(sessions)


def _json_records(path: Path) -> Iterator[Record]:
    sessions, starts = _json_sessions(path)
    for i, session in enumerate(sessions):
        yield from _session_records(session, str(path), starts[i], f"sessions[{i}]")


def _array_item_lines(text: str) -> list[int]:
    """Line numbers where each object of the sessions list starts (best effort, for messages)."""
    lines: list[int] = []
    depth_target = None
    depth = 0
    in_string = escape = False
    for pos, ch in enumerate(text):
        if in_string:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "[{":
            if ch == "{" and depth_target is not None and depth == depth_target:
                lines.append(text.count("\n", 0, pos) + 1)
            if ch == "[" and depth_target is None:
                depth_target = depth + 1
            depth += 1
        elif ch in "]}":
            depth -= 1
    return lines


def _jsonl_objects(path: Path) -> Iterator[tuple[int, Any]]:
    with _open(path) as stream:
        try:
            for row, line in enumerate(stream, start=1):
                if not line.strip():
                    continue
                try:
                    yield row, json.loads(line)
                except json.JSONDecodeError as error:
                    raise InputError(f"{path}:{row}:{error.colno}: not valid JSON ({error.msg})") from None
        except UnicodeDecodeError as error:
            raise InputError(f"{path}: not UTF-8 text (byte {error.start} of a block)") from None


def _jsonl_records(path: Path) -> Iterator[Record]:
    for row, obj in _jsonl_objects(path):
        yield from _session_records(obj, str(path), row, "")


def records(paths: list[Path], columns: Columns | None = None) -> Iterator[Record]:
    """Every flat record of every file, in input order."""
    columns = columns or Columns()
    for path in paths:
        kind = _kind(path)
        if kind == ".csv":
            yield from _csv_records(path, columns)
        elif kind == ".json":
            yield from _json_records(path)
        else:
            yield from _jsonl_records(path)


# --- grouping ------------------------------------------------------------------------------


@attrs.frozen
class Scan:
    """What a first, cheap pass over the input found out."""

    lines: int
    """Service lines (and rejected records) in the input."""
    grouped: bool
    """True when every patient's records are contiguous, so patients can be judged one by one."""
    regrouped_at: Origin | None = None
    """Where a patient reappeared after other patients, when not grouped."""
    patient: str | None = None


def scan(paths: list[Path], columns: Columns | None = None) -> Scan:
    """Count the lines and check that the input is grouped by patient, reading as little as possible."""
    columns = columns or Columns()
    seen: set[str] = set()
    current: str | None = None
    count = 0
    first_break: tuple[Origin, str] | None = None
    for path in paths:
        kind = _kind(path)
        if kind == ".csv":
            for origin, patient in _csv_patients(path, columns):
                count += 1
                if patient != current:
                    if patient in seen and first_break is None:
                        first_break = (origin, patient)
                    if current is not None:
                        seen.add(current)
                    current = patient
            continue
        objects: Iterator[tuple[int, Any]]
        if kind == ".json":
            sessions, starts = _json_sessions(path)
            objects = zip(starts, sessions)
        else:
            objects = _jsonl_objects(path)
        for row, obj in objects:
            lines = obj.get("lines") if isinstance(obj, dict) else None
            count += len(lines) if isinstance(lines, list) and lines else 1
            patient = _json_value(obj.get("patient_id")).strip() if isinstance(obj, dict) else ""
            if patient != current:
                if patient in seen and first_break is None:
                    first_break = (Origin(file=str(path), row=row), patient)
                if current is not None:
                    seen.add(current)
                current = patient
    if first_break is None:
        return Scan(lines=count, grouped=True)
    return Scan(lines=count, grouped=False, regrouped_at=first_break[0], patient=first_break[1])


def _csv_patients(path: Path, columns: Columns) -> Iterator[tuple[Origin, str]]:
    """Each record's origin and patient id, one line at a time. A file without quote characters
    is split on commas, several times faster than the csv module and the same for such files."""
    if _has_quotes(path):
        yield from _csv_patients_quoted(path, columns)
        return
    file = str(path)
    with _open(path) as stream:
        try:
            header = stream.readline()
            if not header.strip():
                raise InputError(f"{path}: the file is empty; expected a header row")
            index = dict(columns.resolve(path, header.rstrip("\r\n").split(",")))["patient_id"][0]
            for row, line in enumerate(stream, start=2):
                cells = line.rstrip("\r\n").split(",")
                if any(cell.strip() for cell in cells):
                    yield Origin(file, row), cells[index].strip() if index < len(cells) else ""
        except UnicodeDecodeError as error:
            raise InputError(f"{path}: not UTF-8 text (byte {error.start} of a block)") from None


def _has_quotes(path: Path) -> bool:
    with _open(path) as stream:
        try:
            while chunk := stream.read(1 << 20):
                if '"' in chunk:
                    return True
        except UnicodeDecodeError as error:
            raise InputError(f"{path}: not UTF-8 text (byte {error.start} of a block)") from None
    return False


def _csv_patients_quoted(path: Path, columns: Columns) -> Iterator[tuple[Origin, str]]:
    file = str(path)
    with _open(path) as stream:
        reader = csv.reader(stream)
        try:
            header = next(reader, None)
            if header is None:
                raise InputError(f"{path}: the file is empty; expected a header row")
            index = dict(columns.resolve(path, header))["patient_id"][0]
            row = reader.line_num
            for cells in reader:
                start, row = row + 1, reader.line_num
                if any(cell.strip() for cell in cells):
                    yield Origin(file, start), cells[index].strip() if index < len(cells) else ""
        except csv.Error as error:
            raise InputError(f"{path}:{reader.line_num}: {error}") from None
        except UnicodeDecodeError as error:
            raise InputError(f"{path}: not UTF-8 text (byte {error.start} of a block)") from None


@attrs.define
class _Grouper:
    """Collects flat records into sessions by session_id, keeping first-seen order."""

    _open: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    _order: list[str] = attrs.field(factory=list)
    _closed: dict[str, tuple[str, int]] = attrs.field(factory=dict)
    """Sessions already handed out: id → (patient, row of its first line)."""
    errors: list[RecordError] = attrs.field(factory=list)
    lines_read: int = 0

    def add(self, raw: list[str], origin: Origin, structural: Problem | None = None) -> None:
        self.lines_read += 1
        values, problems = _validate(raw)
        if structural is not None:
            problems = [structural]
        session_id = values[0] or None
        entry = self._open.get(session_id) if session_id else None
        number: int | None = None
        if session_id is not None:
            if entry is None:
                entry = self._open[session_id] = {"head": None, "lines": [], "count": 0}
                self._order.append(session_id)
                closed = self._closed.get(session_id)
                if closed is not None and not problems:
                    problems = [Problem(
                        field="session_id", value=session_id,
                        message=f"session {session_id} already appeared for patient `{closed[0]}` at row "
                                f"{closed[1]}; a session's rows must share one patient")]
            entry["count"] += 1
            number = entry["count"]
            head = entry["head"]
            if head is not None and not problems:
                for index in (1, 2, 3):
                    if values[index] != head[0][index]:
                        field = ALL_FIELDS[index]
                        problems = [Problem(
                            field=field, value=raw[index],
                            message=f"session {session_id} has {field} `{head[0][index]}` "
                                    f"(row {head[1].row}), this row has `{values[index]}`")]
                        break
        if problems:
            code = values[6] if isinstance(values[6], str) and values[6] else None
            self.errors.append(RecordError(origin=origin, session_id=session_id, line=number, code=code,
                                           problems=problems))
            return
        assert entry is not None and number is not None
        if entry["head"] is None:
            entry["head"] = (values, origin)
        v = values
        entry["lines"].append(Line(v[0], v[1], v[2], v[3], number, v[6], v[7], v[8], v[9], v[10], v[4], v[5],
                                   v[11], v[12], origin))

    def take(self) -> Batch:
        """The sessions and errors gathered so far; the grouper starts afresh (it remembers ids)."""
        batch = Batch(errors=self.errors, lines_read=self.lines_read)
        for session_id in self._order:
            entry = self._open[session_id]
            head = entry["head"]
            if head is not None:
                values, origin = head
                self._closed[session_id] = (values[1], origin.row)
                batch.sessions.append(Session(session_id=session_id, patient_id=values[1], date=values[2],
                                              payer=values[3], lines=tuple(entry["lines"])))
        self._open, self._order, self.errors, self.lines_read = {}, [], [], 0
        return batch


def read_blocks(paths: list[Path], columns: Columns | None = None, *, grouped: bool = True) -> Iterator[Batch]:
    """Batches of sessions: one per patient block when `grouped`, else one for the whole input.

    Facts that span sessions (same patient, same day) never cross patients, so a block holds
    all a rule can need. Use `scan` first to know whether the input is grouped.
    """
    grouper = _Grouper()
    current: str | None = None
    for raw, origin, problem in records(paths, columns):
        if grouped:
            patient = raw[1].strip()
            if patient != current and current is not None and grouper.lines_read:
                yield grouper.take()
            current = patient
        grouper.add(raw, origin, problem)
    if grouper.lines_read:
        yield grouper.take()


def session_batch(sessions: list[Any], name: str) -> Batch:
    """Sessions given in memory (dicts in the JSON input shape, or typed `Session` values) as one
    batch; dicts are validated and located as `name` row N (the Nth session)."""
    grouper = _Grouper()
    order: list[Session | str] = []
    for row, session in enumerate(sessions, start=1):
        if isinstance(session, Session):
            order.append(session)
            grouper.lines_read += len(session.lines)
            continue
        for raw, origin, problem in _session_records(session, name, row, ""):
            grouper.add(raw, origin, problem)
        if isinstance(session, dict):
            order.append(_json_value(session.get("session_id")).strip())
    batch = grouper.take()
    by_id = {s.session_id: s for s in batch.sessions}
    batch.sessions = []
    for item in order:
        found = item if isinstance(item, Session) else by_id.pop(item, None)
        if found is not None:
            batch.sessions.append(found)
    return batch


def read_sessions(paths: list[Path], columns: Columns | None = None) -> Batch:
    """Read the whole input as one batch."""
    return next(read_blocks(paths, columns, grouped=False), Batch())
