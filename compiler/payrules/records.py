"""Session files (CSV, JSON, JSONL) → validated `runtime.Session` values and located record errors.

Every service line read comes back exactly once: inside a session, or as a `RecordError`.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from payrules.diagnostics import InputError
from payrules.domain import CODE_RE, CREDENTIALS, MODIFIER_RE, npi_is_valid, parse_money, to_cents
from payrules.runtime import Line, Origin, Session

SESSION_FIELDS = ("session_id", "patient_id", "date", "payer")
LINE_FIELDS = ("provider_npi", "provider_credential", "code", "modifiers", "units", "minutes", "charge",
               "diagnoses", "prescription_by")
ALL_FIELDS = SESSION_FIELDS + LINE_FIELDS
REQUIRED_FIELDS = ("session_id", "patient_id", "date", "payer", "provider_npi", "code", "charge")

ICD10_RE = re.compile(r"^[A-Z][0-9][0-9A-Z](?:\.?[0-9A-Z]{1,4})?$")


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


@attrs.define
class Batch:
    """Sessions read from one or more files, in input order, with the lines that were rejected."""

    sessions: list[Session] = attrs.field(factory=list)
    errors: list[RecordError] = attrs.field(factory=list)
    lines_read: int = 0


# --- field validation ------------------------------------------------------------------


def _validate(raw: dict[str, str]) -> tuple[dict[str, Any], list[Problem]]:
    """Check every field of one flat record; return the clean values and the problems found."""
    values: dict[str, Any] = {}
    problems: list[Problem] = []

    def bad(field: str, message: str) -> None:
        problems.append(Problem(field=field, value=raw.get(field, ""), message=message))

    for field in REQUIRED_FIELDS:
        if not raw.get(field, "").strip():
            bad(field, "is empty")
    for field in ("session_id", "patient_id", "payer"):
        values[field] = raw.get(field, "").strip()

    date = raw.get("date", "").strip()
    if date:
        try:
            if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", date):
                raise ValueError
            values["date"] = datetime.date.fromisoformat(date).isoformat()
        except ValueError:
            bad("date", f"expected a date as YYYY-MM-DD, found `{date}`")

    npi = raw.get("provider_npi", "").strip()
    if npi:
        if not (len(npi) == 10 and npi.isdigit()):
            bad("provider_npi", f"expected an NPI of 10 digits, found `{npi}`")
        elif not npi_is_valid(npi):
            bad("provider_npi", f"`{npi}` fails the NPI check digit")
    values["provider_npi"] = npi

    for field in ("provider_credential", "prescription_by"):
        credential = raw.get(field, "").strip().upper()
        if credential and credential not in CREDENTIALS:
            bad(field, f"unknown credential `{raw[field].strip()}`; expected one of {', '.join(CREDENTIALS)}")
        values[field] = credential

    code = raw.get("code", "").strip().upper()
    if code and not CODE_RE.match(code):
        bad("code", f"expected a procedure code such as 97140, 0042T or S8990, found `{raw['code'].strip()}`")
    values["code"] = code

    modifiers = [m for m in re.split(r"[\s;,]+", raw.get("modifiers", "").strip().upper()) if m]
    wrong = [m for m in modifiers if not MODIFIER_RE.match(m)]
    if wrong:
        bad("modifiers", f"a modifier has two letters or digits, found `{wrong[0]}`")
    values["modifiers"] = frozenset(modifiers)

    units = raw.get("units", "").strip()
    if not units:
        values["units"] = 1
    elif units.isdigit() and int(units) > 0:
        values["units"] = int(units)
    else:
        bad("units", f"expected a positive whole number, found `{units}`")

    minutes = raw.get("minutes", "").strip()
    if not minutes:
        values["minutes"] = None
    elif minutes.isdigit():
        values["minutes"] = int(minutes)
    else:
        bad("minutes", f"expected a whole number of minutes, found `{minutes}`")

    charge = raw.get("charge", "").strip()
    if charge:
        amount = parse_money(charge)
        if amount is None:
            bad("charge", f"expected an amount such as 45.00, found `{charge}`")
        elif amount < 0:
            bad("charge", f"a charge cannot be negative, found `{charge}`")
        elif amount != amount.quantize(amount.__class__("0.01")):
            bad("charge", f"an amount has at most two decimals, found `{charge}`")
        else:
            values["charge"] = to_cents(amount)

    diagnoses = [d for d in re.split(r"[\s;,]+", raw.get("diagnoses", "").strip().upper()) if d]
    wrong = [d for d in diagnoses if not ICD10_RE.match(d)]
    if wrong:
        bad("diagnoses", f"expected ICD-10-CM codes such as M54.50, found `{wrong[0]}`")
    values["diagnoses"] = tuple(diagnoses)
    return values, problems


# --- grouping flat records into sessions -------------------------------------------------


@attrs.define
class _Grouper:
    """Collects flat records into sessions by session_id, keeping first-seen order."""

    batch: Batch
    _open: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    _order: list[str] = attrs.field(factory=list)

    def add(self, raw: dict[str, str], origin: Origin, structural: Problem | None = None) -> None:
        self.batch.lines_read += 1
        values, problems = _validate(raw)
        if structural is not None:
            problems = [structural]
        session_id = values["session_id"] or None
        entry = self._open.get(session_id) if session_id else None
        number: int | None = None
        if session_id is not None:
            if entry is None:
                entry = {"head": None, "lines": [], "count": 0}
                self._open[session_id] = entry
                self._order.append(session_id)
            entry["count"] += 1
            number = entry["count"]
            head = entry["head"]
            if head is not None and not problems:
                for field in ("patient_id", "date", "payer"):
                    if values[field] != head[field]:
                        problems.append(Problem(
                            field=field, value=raw.get(field, ""),
                            message=f"session {session_id} has {field} `{head[field]}` "
                                    f"(row {head['origin'].row}), this row has `{values[field]}`"))
        if problems:
            self.batch.errors.append(RecordError(origin=origin, session_id=session_id, line=number,
                                                 code=values.get("code") or None, problems=problems))
            return
        assert entry is not None and number is not None
        if entry["head"] is None:
            entry["head"] = {**values, "origin": origin}
        entry["lines"].append(Line(number=number, origin=origin, **values))

    def finish(self) -> None:
        for session_id in self._order:
            entry = self._open[session_id]
            if entry["lines"]:
                head = entry["head"]
                self.batch.sessions.append(Session(
                    session_id=session_id, patient_id=head["patient_id"], date=head["date"],
                    payer=head["payer"], lines=tuple(entry["lines"])))
        self._open.clear()
        self._order.clear()


# --- file formats ------------------------------------------------------------------------


def _normal_header(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: no such sessions file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder; give a .csv, .json or .jsonl file") from None
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror})") from None


def _csv_records(path: Path, text: str) -> Iterator[Record]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(f"{path}: the file is empty; expected a header row") from None
    except csv.Error as error:
        raise InputError(f"{path}:1: {error}") from None
    columns = [_normal_header(h) for h in header]
    missing = [f for f in REQUIRED_FIELDS if f not in columns]
    if missing:
        raise InputError(f"{path}:1: missing column{'s' if len(missing) > 1 else ''} "
                         + ", ".join(f"`{m}`" for m in missing)
                         + f"; the header has {', '.join(f'`{h}`' for h in header)}")
    row = reader.line_num
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise InputError(f"{path}:{reader.line_num}: {error}") from None
        start, row = row + 1, reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        raw = {col: cell for col, cell in zip(columns, cells) if col in ALL_FIELDS}
        yield raw, Origin(file=str(path), row=start), None


def _json_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


Record = tuple[dict[str, str], Origin, Problem | None]
"""A flat record, where it came from, and a structural problem that rejects it outright."""


def _session_records(obj: Any, file: str, row: int, path: str) -> Iterator[Record]:
    prefix = path + "." if path else ""
    if not isinstance(obj, dict):
        problem = Problem(field=path or "session", value=_json_value(obj)[:40],
                          message="expected a session object with a `lines` list")
        yield {}, Origin(file=file, row=row, path=path), problem
        return
    shared = {k: _json_value(v) for k, v in obj.items() if k in ALL_FIELDS}
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
        raw = dict(shared)
        raw.update({k: _json_value(v) for k, v in line.items() if k in ALL_FIELDS})
        yield raw, Origin(file=file, row=row, path=where), None


def _json_records(path: Path, text: str) -> Iterator[Record]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"{path}:{error.lineno}:{error.colno}: not valid JSON ({error.msg})") from None
    sessions = data.get("sessions") if isinstance(data, dict) else data
    if not isinstance(sessions, list):
        raise InputError(f'{path}: expected a list of sessions, or an object with a "sessions" list')
    # Report each session at the line of the file where it starts.
    starts = _array_item_lines(text)
    if len(starts) != len(sessions):
        starts = [1] * len(sessions)
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


def _jsonl_records(path: Path, text: str) -> Iterator[Record]:
    for row, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{path}:{row}:{error.colno}: not valid JSON ({error.msg})") from None
        yield from _session_records(obj, str(path), row, "")


def read_sessions(paths: list[Path]) -> Batch:
    """Read every file; sessions from all files share one pool (same-day facts span files)."""
    batch = Batch()
    grouper = _Grouper(batch)
    for path in paths:
        text = _read_text(path)
        suffix = path.suffix.lower()
        if suffix == ".csv":
            records = _csv_records(path, text)
        elif suffix == ".json":
            records = _json_records(path, text)
        elif suffix == ".jsonl":
            records = _jsonl_records(path, text)
        else:
            raise InputError(f"{path}: unknown sessions format `{suffix or path.name}`; use .csv, .json or .jsonl")
        for raw, origin, problem in records:
            grouper.add(raw, origin, problem)
    grouper.finish()
    return batch
