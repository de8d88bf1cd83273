"""Session files (CSV, JSON, JSONL) → validated `runtime.Session` values and located record errors.

Every service line read comes back exactly once: inside a session, or as a `RecordError`.
Input that is grouped by patient is read one patient block at a time (see `read_blocks`), so
memory does not grow with the file.
"""

from __future__ import annotations

import csv
import io
import json
import operator
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import attrs

from payrules.diagnostics import InputError
from payrules.fields import (
    ALL_FIELDS,
    LIST_FIELDS,
    REQUIRED_FIELDS,
    Batch,
    Record,
    _Grouper,
    _json_value,
    _session_records,
    new_named_tuple,
)
from payrules.runtime import Origin




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
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give .csv, .json or .jsonl files")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json", ".jsonl"):
        raise InputError(f"{path}: unknown sessions format `{suffix or path.name}`; use .csv, .json or .jsonl")
    return suffix


def _csv_records(path: Path, columns: Columns, part: Part | None = None) -> Iterator[Record]:
    """The file's records, or those of one part of it (whose header is the file's first line)."""
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
            width = len(header)
            # Absent fields read the "" appended after the last column.
            pick = operator.itemgetter(*[p[0] if p else width for p in picks])
            padding = [""] * (width + 1)
            file = str(path)
            base = 0
            if part is not None:
                text = _read_part(part)
                base = part.row - 1
                reader = csv.reader(io.StringIO(text))
            numbered: Iterator[tuple[int, list[str]]] = ((reader.line_num, cells) for cells in reader)
            if part is not None and "\x00" not in text and "\r" not in text.replace("\r\n", ""):
                # A part has no quote characters (see `scan`); without lone carriage returns and
                # NULs as well, the csv module would split each line on commas, as this does.
                numbered = enumerate((line.split(",") for line in text.replace("\r\n", "\n").split("\n")), start=1)
            row = base + reader.line_num
            for end, cells in numbered:
                start, row = row + 1, base + end
                if not ((cells and cells[0].strip()) or "".join(cells).strip()):
                    continue
                if len(cells) != width:
                    cells = (cells + padding)[:width]
                cells.append("")
                if simple:
                    raw = pick(cells)
                else:
                    raw = tuple(";".join(cells[i] for i in p) if p else "" for p in picks)
                yield raw, new_named_tuple(Origin, (file, start, "", headers)), None
        except csv.Error as error:
            raise InputError(f"{path}:{base + reader.line_num}: {error}") from None
        except UnicodeDecodeError as error:
            raise InputError(f"{path}: not UTF-8 text (byte {error.start} of a block)") from None


def _read_part(part: Part) -> str:
    with open(part.path, "rb") as stream:
        stream.seek(part.start)
        return stream.read(part.end - part.start).decode("utf-8")


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


PART_LINES = 20_000
"""About how many lines a part of a large CSV file holds (see `Part`)."""


@attrs.frozen
class Part:
    """A stretch of a CSV file that holds whole patients, so that it can be judged on its own."""

    path: Path
    start: int
    """Byte offset of its first line."""
    end: int
    """Byte offset just after its last line."""
    row: int
    """Line number of its first line."""
    lines: int
    """Service lines in it."""


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
    parts: tuple[Part, ...] = ()
    """The input cut into parts at patient changes, when it is grouped CSV without quote
    characters and no session id is used by two patients; else empty."""


@attrs.frozen
class _Run:
    """Consecutive lines of one patient in one file."""

    patient: str
    origin: Origin
    """Where its first line is."""
    lines: int
    start: int = 0
    end: int = 0
    shares_session: bool = False
    """True when one of its session ids was used by an earlier patient of the file."""


def scan(paths: list[Path], columns: Columns | None = None, part_lines: int | None = None) -> Scan:
    """Count the lines and check that the input is grouped by patient, reading as little as
    possible; cut grouped CSV input into parts of about `part_lines` (default `PART_LINES`)."""
    columns = columns or Columns()
    part_lines = part_lines or PART_LINES
    seen: set[str] = set()
    current: str | None = None
    count = 0
    first_break: tuple[Origin, str] | None = None
    parts: list[Part] | None = []
    for path in paths:
        runs: Iterator[_Run]
        kind = _kind(path)
        if kind == ".csv":
            runs = _csv_runs(path, columns)
        else:
            parts = None
            runs = _json_runs(path, kind)
        part: list[_Run] = []
        in_part = 0
        for run in runs:
            count += run.lines
            if run.patient != current:
                if run.patient in seen and first_break is None:
                    first_break = (run.origin, run.patient)
                if current is not None:
                    seen.add(current)
                current = run.patient
            else:  # the previous run's patient goes on (from another file, or line by line)
                parts = None
            if parts is None or run.shares_session or run.end == 0:
                parts = None
                continue
            part.append(run)
            in_part += run.lines
            if in_part >= part_lines:
                parts.append(_part(path, part))
                part, in_part = [], 0
        if parts is not None and part:
            parts.append(_part(path, part))
    if first_break is None:
        return Scan(lines=count, grouped=True, parts=tuple(parts or ()))
    return Scan(lines=count, grouped=False, regrouped_at=first_break[0], patient=first_break[1])


def _part(path: Path, runs: list[_Run]) -> Part:
    return Part(path, runs[0].start, runs[-1].end, runs[0].origin.row, sum(r.lines for r in runs))


def _json_runs(path: Path, kind: str) -> Iterator[_Run]:
    objects: Iterator[tuple[int, Any]]
    if kind == ".json":
        sessions, starts = _json_sessions(path)
        objects = zip(starts, sessions)
    else:
        objects = _jsonl_objects(path)
    for row, obj in objects:
        lines = obj.get("lines") if isinstance(obj, dict) else None
        patient = _json_value(obj.get("patient_id")).strip() if isinstance(obj, dict) else ""
        yield _Run(patient, Origin(str(path), row), len(lines) if isinstance(lines, list) and lines else 1)


def _csv_runs(path: Path, columns: Columns) -> Iterator[_Run]:
    """The file's runs of lines by patient. A file without quote characters is split on commas
    (several times faster than the csv module, and the same for such files) and its runs carry
    byte offsets; other files are read with the csv module, and their runs do not."""
    if _has_quotes(path):
        for origin, name in _csv_patients_quoted(path, columns):
            yield _Run(name, origin, 1)
        return
    file = str(path)
    with open(path, "rb") as stream:
        header = stream.readline()
        offset = len(header)
        header_cells = header.decode("utf-8-sig").rstrip("\r\n").split(",")
        if not "".join(header_cells).strip():
            raise InputError(f"{path}: the file is empty; expected a header row")
        fields = dict(columns.resolve(path, header_cells))
        at_patient, at_session = fields["patient_id"][0], fields["session_id"][0]
        cut = max(at_patient, at_session) + 1
        patient: bytes | None = None
        session: bytes | None = None
        earlier: set[bytes] = set()
        """Session ids of the patients before this one."""
        own: set[bytes] = set()
        start = row = first = lines = 0
        shares = False
        for row, line in enumerate(stream, start=2):
            size = len(line)
            if not line.strip(b" \t\r\n,"):
                offset += size
                continue
            cells = line.rstrip(b"\r\n").split(b",", cut)
            here = cells[at_patient].strip() if at_patient < len(cells) else b""
            if here != patient:
                if patient is not None:
                    yield _Run(patient.decode(), Origin(file, first), lines, start, offset, shares)
                    earlier |= own
                    own = set()
                patient, first, lines, start, shares = here, row, 0, offset, False
            lines += 1
            offset += size
            sid = cells[at_session].strip() if at_session < len(cells) else b""
            if sid != session:
                session = sid
                own.add(sid)
                shares = shares or sid in earlier
        if patient is not None:
            yield _Run(patient.decode(), Origin(file, first), lines, start, offset, shares)


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


def read_blocks(paths: list[Path], columns: Columns | None = None, *, grouped: bool = True) -> Iterator[Batch]:
    """Batches of sessions: one per patient block when `grouped`, else one for the whole input.

    Facts that span sessions (same patient, same day) never cross patients, so a block holds
    all a rule can need. Use `scan` first to know whether the input is grouped.
    """
    return _batches(records(paths, columns), grouped)


def read_part(part: Part, columns: Columns | None = None) -> Iterator[Batch]:
    """The patient blocks of one part of a grouped CSV file (see `Scan.parts`)."""
    return _batches(_csv_records(part.path, columns or Columns(), part), grouped=True)


def _batches(found: Iterator[Record], grouped: bool) -> Iterator[Batch]:
    grouper = _Grouper()
    current: str | None = None
    for raw, origin, problem in found:
        if grouped:
            patient = raw[1].strip()
            if patient != current and current is not None and grouper.lines_read:
                yield grouper.take()
            current = patient
        grouper.add(raw, origin, problem)
    if grouper.lines_read:
        yield grouper.take()


def read_sessions(paths: list[Path], columns: Columns | None = None) -> Batch:
    """Read the whole input as one batch."""
    return next(read_blocks(paths, columns, grouped=False), Batch())
