"""Session files (CSV, JSON, JSONL, and the claim formats of `payrules.formats`) → validated
`runtime.Session` values and located record errors.

Every service line read comes back exactly once: inside a session, or as a `RecordError`.
Input that is grouped by patient is read one patient block at a time (see `read_blocks`), so
memory does not grow with the file.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import operator
import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import attrs

from payrules import formats
from payrules.diagnostics import InputError, closest
from payrules.fields import (
    ALL_FIELDS,
    LIST_FIELDS,
    MAX_FIELD_CHARS,
    REQUIRED_FIELDS,
    Batch,
    Problem,
    MEMO_SIZE,
    Record,
    _FIELD_PARSERS,
    _Grouper,
    _session_records,
    clean,
    fact_texts,
    field_name,
    limited,
    new_named_tuple,
    normal_keys,
)
from payrules.judging import fewer_collections
from payrules.runtime import Origin


# --- column mapping ------------------------------------------------------------------------


@attrs.frozen
class Columns:
    """How the input's own names are read: which CSV header feeds each field, and which payer
    id of the rule files each payer id of a claim file means. Without a mapping file, a header
    feeds the field of the same name (ignoring case, spaces and dashes), and a payer id is
    used as the file spells it."""

    mapping: dict[str, tuple[str, ...]] = attrs.field(factory=dict)
    """field → normalised header names, for the fields the mapping file names."""
    source: str | None = None
    payers: dict[str, str] = attrs.field(factory=dict)
    """Payer id in a claim file (X12 2010BB NM109) → payer id of the rule files."""
    keep: tuple[str, ...] = ()
    """The caller's ids to carry to the output (`--keep`): column or key names, normalised as
    field names are, in the order asked (see `with_keep`)."""
    facts: tuple[str, ...] = ()
    """The fields the rule files declare (`field accident_date: date`), read from the column or
    key of that name, or from the column the mapping gives them (see `with_facts`)."""
    declared: tuple[str, ...] = ()
    """Names the mapping file may map besides the session fields: `facts` once known."""

    @classmethod
    def load(cls, path: Path, keep: Sequence[str] = ()) -> Columns:
        """Read a TOML mapping: a `[columns]` table of `field = "Header"` or `field = ["H1", "H2"]`,
        and a `[payers]` table of `"ID in the file" = "RULE-FILE-ID"`; either may be left out.
        A name in `keep` may be mapped to its column as a field is."""
        data = formats.read_toml(path, "column mapping")
        payers = formats.payer_table(data, path, required=False)
        table = data.get("columns", {} if "payers" in data or "accumulators" in data else None)
        if not isinstance(table, dict):
            raise InputError(f'{path}: expected a [columns] table, such as [columns] date = "DOS", or a '
                             '[payers] table, such as [payers] 87726 = "UHC"')
        mapping: dict[str, tuple[str, ...]] = {}
        kept = {field_name(name) for name in keep}
        for field, headers in table.items():
            if field in kept and field not in ALL_FIELDS:
                names = [headers] if isinstance(headers, str) else headers
                if not isinstance(names, list) or len(names) != 1 or not isinstance(names[0], str):
                    raise InputError(f"{path}: `{field}` (kept with --keep) must name one column header")
                mapping[field] = (_normal_header(names[0]),)
                continue
            if field not in ALL_FIELDS:
                # A field a rule file declares: one column, checked against the declarations
                # once the rule files are read (see `with_facts`).
                names = [headers] if isinstance(headers, str) else headers
                if not isinstance(names, list) or len(names) != 1 or not isinstance(names[0], str):
                    raise InputError(f"{path}: `{field}` is not a session field; fields are {', '.join(ALL_FIELDS)}, "
                                     "and a field a rule file declares names one column header")
                mapping[field] = (_normal_header(names[0]),)
                continue
            names = [headers] if isinstance(headers, str) else headers
            if not isinstance(names, list) or not names or not all(isinstance(h, str) for h in names):
                raise InputError(f"{path}: `{field}` must name a column header or a list of them")
            if len(names) > 1 and field not in LIST_FIELDS:
                raise InputError(f"{path}: only {' and '.join(LIST_FIELDS)} can take several columns")
            mapping[field] = tuple(_normal_header(h) for h in names)
        return cls(mapping, str(path), payers)

    def with_keep(self, names: Sequence[str]) -> Columns:
        """These columns carrying the ids `names` to the output; a name that is a session field
        is refused (its value is in the output already), a name given twice is kept once."""
        keep = tuple(dict.fromkeys(field_name(n) for n in names))
        for name in keep:
            if name in ALL_FIELDS or name == "lines":
                raise InputError(f"--keep `{name}`: `{name}` is a session field, which the output shows already; "
                                 "--keep names other columns (or JSON keys), such as a claim line id")
            if not name:
                raise InputError("--keep needs a column (or JSON key) name, such as --keep claim_line_id")
        return attrs.evolve(self, keep=keep)

    def with_facts(self, names: Sequence[str]) -> Columns:
        """These columns reading the declared fields `names` too; a mapped name that is neither a
        session field, a kept id nor a declared field is refused (a typo would be read as nothing)."""
        facts = tuple(dict.fromkeys(field_name(n) for n in names))
        for field in self.mapping:
            if field not in ALL_FIELDS and field not in facts and field not in self.keep:
                hint = closest(field, [*ALL_FIELDS, *facts])
                more = f"; did you mean `{hint}`?" if hint else ""
                raise InputError(f"{self.source}: `{field}` is not a session field nor a field a rule file declares"
                                 f"{more}")
        return attrs.evolve(self, facts=facts)

    def without_keep(self) -> Columns:
        """These columns reading no ids (for history, whose lines are never written)."""
        return attrs.evolve(self, keep=()) if self.keep else self

    def kept_at(self, path: Path, header: list[str]) -> list[int]:
        """The index of the column of each kept name, in `keep` order; a name missing from the
        header is refused before any output."""
        normal = [_normal_header(h) for h in header]
        found: list[int] = []
        for name in self.keep:
            column = self.mapping.get(name, (name,))[0]
            if column not in normal:
                mapped = f" (mapped to `{name}` in {self.source})" if name in self.mapping else ""
                raise InputError(f"{path}:1: --keep column `{column}`{mapped} is not in the header; the header has "
                                 f"{', '.join(f'`{h}`' for h in header)}")
            found.append(normal.index(column))
        return found

    def with_payers(self, payers: dict[str, str]) -> Columns:
        """These columns with `payers` added to the payer map; `payers` wins where both name an id."""
        return attrs.evolve(self, payers={**self.payers, **payers})

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


_normal_header = field_name
"""CSV headers are normalised as JSON keys are (see `fields.field_name`)."""


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


def _kind(path: Path) -> str | formats.Format:
    """The input format of `path`: a claim format (by extension or content), else `.csv`,
    `.json` or `.jsonl` by extension; anything else is refused."""
    found = formats.format_for(path)
    if found is not None:
        return found
    kinds = ["CSV (.csv)", "JSON (.json)", "JSON lines (.jsonl)",
             *(f"{f.name} ({', '.join(f.extensions)})" for f in formats.FORMATS)]
    known = f"{', '.join(kinds[:-1])} or {kinds[-1]}"
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give session files: {known}")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json", ".jsonl"):
        raise InputError(f"{path}: unknown sessions format `{suffix or path.name}`; use {known} "
                         f"({' and '.join(f.name for f in formats.FORMATS)} files are also recognised by their "
                         f"first bytes)")
    return suffix


def _format_records(path: Path, found: formats.Format, columns: Columns) -> Iterator[Record]:
    """The records a claim format reads, with fields over `MAX_FIELD_CHARS` emptied as CSV and
    JSON fields are (a damaged claim file can hold an element of any length)."""
    keep = columns.keep
    if found.name == "X12 837P":
        refuse_x12_keep(str(path), keep)
    for raw, origin, problem in found.read(path, formats.ReadOptions(columns.payers, columns)):
        raw, late = limited(raw)
        yield raw, with_kept(origin, keep), problem or late


def refuse_x12_keep(name: str, keep: tuple[str, ...]) -> None:
    """Refuse a `--keep` name that an 837P line has no value for (see `x12.KEEP_NAMES`)."""
    if not keep:
        return
    from payrules.formats.x12 import KEEP_NAMES

    other = [n for n in keep if n not in KEEP_NAMES]
    if other:
        raise InputError(f"{name}: --keep `{other[0]}` is not an id an 837P line has; with 837P input "
                         f"--keep takes {', '.join(f'`{n}`' for n in KEEP_NAMES)} (CLM01, LX01 and REF*6R)")


def with_kept(origin: Origin, keep: tuple[str, ...]) -> Origin:
    """`origin` carrying exactly the `keep` ids, in order: a claim reader offers every id it has by
    name, and the output gets those asked for ("" for one a line has not)."""
    offered = origin.kept if len(origin) > 4 else ()
    if not keep:
        return origin._replace(kept=()) if offered else origin
    found = dict(offered)
    return origin._replace(kept=tuple([(name, found.get(name, "")) for name in keep]))


CSV_READ_LIMIT = 10 * 1024 * 1024
"""The longest CSV field that can be read at all, in characters. A file with a longer field is
refused before any output; fields up to this are read, and those over `MAX_FIELD_CHARS` make
their line a record problem."""

MAX_JSON_DEPTH = 32
"""How deeply JSON may nest (a session file needs 5 levels); deeper input is refused."""


class _CsvTable:
    """One definition of a CSV row and of its cells, used both by the scan (grouping, parts) and
    by the reader, so that the two cannot disagree.

    A row is what the csv module reads (rows end at LF, CRLF or a lone CR; quotes may hold
    commas and line breaks). A file without quote characters, NULs and lone CRs is split on LF
    and commas instead: for such a file that is exactly what the csv module does, it is several
    times faster, and it gives each row's byte offsets (for cutting parts).
    """

    def __init__(self, path: Path, columns: Columns, plain: bool | None = None) -> None:
        """`plain`: whether the file is plain, when the caller checks that itself as it reads
        (see `payrules.history`); by default a first pass over the file finds out."""
        self.path = path
        self.plain = _is_plain(path) if plain is None else plain
        header = self._header()
        fields = columns.resolve(path, header)
        self.headers = columns.headers(header, fields)
        sources = dict(fields)
        self.picks = [sources.get(f) for f in ALL_FIELDS]
        self.simple = all(p is None or len(p) == 1 for p in self.picks)
        self.width = len(header)
        # Absent fields read the "" appended after the last column.
        self.pick = operator.itemgetter(*[p[0] if p else self.width for p in self.picks])
        self.padding = [""] * (self.width + 1)
        self.header_names = tuple(header)
        self.keep = columns.keep
        self.kept_at = columns.kept_at(path, header)
        normal = [_normal_header(h) for h in header]
        self.facts = tuple((name, normal.index(column)) for name in columns.facts
                           if (column := columns.mapping.get(name, (name,))[0]) in normal)
        renamed = {name: header[i].strip() for name, i in self.facts if normal[i] != name}
        if renamed:  # a record error about a declared field names the export's own column
            self.headers = {**(self.headers or {}), **renamed}

    def _header(self) -> list[str]:
        if self.plain:
            with open(self.path, "rb") as stream:
                first = stream.readline().decode("utf-8-sig")
            header = _plain_cells(first)
        else:
            with _open(self.path) as stream:
                header = next(self._csv_reader(stream), [])
        if _blank(header):
            raise InputError(f"{self.path}: the file is empty; expected a header row")
        return header

    def _csv_reader(self, stream: TextIO) -> Iterator[list[str]]:
        csv.field_size_limit(max(csv.field_size_limit(), CSV_READ_LIMIT))
        reader = csv.reader(stream)
        self.reader = reader
        try:
            yield from reader
        except csv.Error as error:
            if "field larger than field limit" in str(error):
                raise _too_long(self.path, reader.line_num) from None
            raise InputError(f"{self.path}:{reader.line_num}: {error}") from None
        except UnicodeDecodeError as error:
            raise InputError(f"{self.path}: not UTF-8 text (byte {error.start} of a block)") from None

    def rows(self, part: Part | None = None) -> Iterator[tuple[int, int, int, list[str]]]:
        """(row of its first line, its byte offsets [begin, end) or zeros, cells) of each row
        that is not blank, after the header, or within `part`."""
        if part is not None:
            yield from self._plain_rows(io.BytesIO(_read_part(part)), part.row, part.start)
        elif self.plain:
            with open(self.path, "rb") as stream:
                offset = len(stream.readline())
                yield from self._plain_rows(stream, 2, offset)
        else:
            with _open(self.path) as stream:
                numbered = self._csv_reader(stream)
                next(numbered, None)
                row = self.reader.line_num
                for cells in numbered:
                    start, row = row + 1, self.reader.line_num
                    if not _blank(cells):
                        yield start, 0, 0, cells

    def _plain_rows(self, stream: Iterable[bytes], row: int,
                    offset: int) -> Iterator[tuple[int, int, int, list[str]]]:
        try:
            for row, line in enumerate(stream, start=row):
                begin, offset = offset, offset + len(line)
                cells = _plain_cells(line.decode("utf-8"))
                if len(line) > CSV_READ_LIMIT and max(map(len, cells)) > CSV_READ_LIMIT:
                    raise _too_long(self.path, row)
                if not _blank(cells):
                    yield row, begin, offset, cells
        except UnicodeDecodeError as error:
            raise InputError(f"{self.path}:{row}: not UTF-8 text (byte {error.start} of the line)") from None

    def record(self, cells: list[str]) -> tuple[Sequence[str], Problem | None]:
        """The flat record of a row's cells (strings in `ALL_FIELDS` order), with every field
        over `MAX_FIELD_CHARS` emptied, and the problem that rejects it then."""
        if len(cells) != self.width:  # in place: the kept ids (`--keep`) are read from `cells` after this
            cells[:] = (cells + self.padding)[:self.width]
        cells.append("")
        if self.simple:
            return limited(self.pick(cells))
        return limited(tuple(";".join(cells[i] for i in p) if p else "" for p in self.picks))


def _too_long(path: Path, row: int) -> InputError:
    """The error of a row with a field longer than `CSV_READ_LIMIT`, more than is read at all."""
    return InputError(f"{path}:{row}: a field is longer than {CSV_READ_LIMIT:,} characters, more than payrules reads")


def _plain_cells(line: str) -> list[str]:
    """The cells of one line of a file without quotes, NULs and lone CRs, as csv reads them."""
    return line.rstrip("\r\n").split(",")


def _blank(cells: list[str]) -> bool:
    """A row with nothing but whitespace in its cells, skipped as csv exports end with them."""
    return not ((cells and clean(cells[0])) or clean("".join(cells)))


def _is_plain(path: Path) -> bool:
    """Whether the file has no quote characters, NULs or lone CRs (see `_CsvTable`). The scan,
    the check of its columns and the reader each ask of the same file: it is read once for
    them, and again when it has changed. Only a file unchanged for `_SETTLED_NS` is
    remembered, so that a change within the clock's granularity cannot go unseen."""
    try:
        found = os.stat(path)
        key: tuple[object, ...] | None = (os.fspath(path), found.st_dev, found.st_ino, found.st_size,
                                          found.st_mtime_ns, found.st_ctime_ns)
        if time.time_ns() - max(found.st_mtime_ns, found.st_ctime_ns) <= _SETTLED_NS:
            key = None
    except OSError:  # `_open` says what is wrong
        key = None
    known = _PLAIN_FILES.get(key) if key is not None else None
    if known is None:
        known = _read_is_plain(path)
        if key is not None:
            if len(_PLAIN_FILES) >= 64:
                _PLAIN_FILES.clear()
            _PLAIN_FILES[key] = known
    return known


_SETTLED_NS = 2_000_000_000
"""How long a file must have been left unchanged (nanoseconds) before `_is_plain` remembers
what it found: longer than any file system's clock granularity."""

_PLAIN_FILES: dict[tuple[object, ...], bool] = {}
"""What `_is_plain` found of files, by path and version (device, inode, size, time of change)."""


def _read_is_plain(path: Path) -> bool:
    """`_is_plain` of a file read now: in its bytes while they are ASCII (then bytes and text
    are alike), else as text, which also finds what is not UTF-8."""
    try:
        with open(path, "rb") as stream:
            carry = b""
            while block := stream.read(1 << 20):
                if not block.isascii():
                    return _read_is_plain_text(path)
                block = carry + block
                carry = b"\r" if block.endswith(b"\r") else b""  # its LF may start the next block
                if carry:
                    block = block[:-1]
                if b'"' in block or b"\x00" in block or _LONE_CR.search(block):
                    return False
    except OSError:
        return _read_is_plain_text(path)  # which says what is wrong
    return not carry


_LONE_CR = re.compile(b"\r(?!\n)")


def _read_is_plain_text(path: Path) -> bool:
    carry = ""
    with _open(path) as stream:
        try:
            while chunk := stream.read(1 << 20):
                chunk = carry + chunk
                carry = "\r" if chunk.endswith("\r") else ""  # its LF may start the next chunk
                if carry:
                    chunk = chunk[:-1]
                if '"' in chunk or "\x00" in chunk or chunk.count("\r") != chunk.count("\r\n"):
                    return False
        except UnicodeDecodeError as error:
            raise InputError(f"{path}: not UTF-8 text (byte {error.start} of a block)") from None
    return not carry


def _csv_records(path: Path, columns: Columns, part: Part | None = None,
                 table: _CsvTable | None = None) -> Iterator[Record]:
    """The file's records, or those of one part of it (whose header is the file's first line).
    A file is cut into parts only when its scan found it plain, so a part's reader does not
    read the whole file again to check that. `table`: how the file is read, when known."""
    if table is None:
        table = _CsvTable(path, columns, plain=True if part is not None else None)
    file, headers = str(path), table.headers
    if table.facts:
        names, at, facts = table.keep, table.kept_at, table.facts
        for row, _, _, cells in table.rows(part):
            raw, problem = table.record(cells)  # pads `cells` to the header's width
            kept = tuple([(name, cells[i]) for name, i in zip(names, at)])
            found = fact_texts([(name, clean(cells[i])) for name, i in facts])
            if isinstance(found, Problem):
                problem, found = problem or found, ()
            yield raw, Origin(file, row, "", headers, kept, found), problem
        return
    if table.keep:
        names, at = table.keep, table.kept_at
        for row, _, _, cells in table.rows(part):
            raw, problem = table.record(cells)  # pads `cells` to the header's width
            kept = tuple([(name, cells[i]) for name, i in zip(names, at)])
            yield raw, new_named_tuple(Origin, (file, row, "", headers, kept, ())), problem
        return
    if table.plain and table.simple:
        yield from _plain_records(table, part)
        return
    for row, _, _, cells in table.rows(part):
        raw, problem = table.record(cells)
        yield raw, new_named_tuple(Origin, (file, row, "", headers, (), ())), problem


PLAIN_BLOCK = 1 << 20
"""Bytes of a plain CSV file decoded at once by `_plain_records`."""


def _plain_records(table: _CsvTable, part: Part | None) -> Iterator[Record]:
    """`_csv_records` of a plain file with one column per field and no kept ids: the same
    records, from text decoded a block at a time (see `_Batching.rows`, which reads them so
    for judging)."""
    for row, text in _plain_lines(table, part):
        found = _plain_record(table, row, text)
        if found is not None:
            yield found


def _plain_record(table: _CsvTable, row: int, text: str) -> Record | None:
    """The record of row `row` of a plain file with one column per field and no kept ids, from
    its text; None for a blank row. A row of the header's width, no longer than
    `MAX_FIELD_CHARS` and with a first cell, is what `table.record` would make of it at once."""
    cells = _plain_cells(text)
    if len(cells) == table.width and len(text) <= MAX_FIELD_CHARS and cells[0].strip():
        cells.append("")
        raw, problem = table.pick(cells), None
    else:
        if len(text) > CSV_READ_LIMIT and max(map(len, cells)) > CSV_READ_LIMIT:
            raise _too_long(table.path, row)
        if _blank(cells):
            return None
        raw, problem = table.record(cells)
    return raw, new_named_tuple(Origin, (str(table.path), row, "", table.headers, (), ())), problem


def _plain_blocks(path: Path, part: Part | None, offset: int | None = None,
                  stop: int | None = None) -> Iterator[bytes]:
    """The rows of a plain file after its header, or from byte `offset` (the start of a line)
    to byte `stop` (the start of a line, or the end of the file) when given, or those of
    `part`, in blocks of whole lines (the last one may lack its line break)."""
    if part is not None:
        yield _read_part(part)
        return
    with open(path, "rb") as stream:
        if offset is None:
            stream.readline()
        else:
            stream.seek(offset)
        left = -1 if stop is None else stop - stream.tell()
        carry = b""
        while left and (data := stream.read(PLAIN_BLOCK if left < 0 else min(PLAIN_BLOCK, left))):
            left -= len(data) if left > 0 else 0
            data = carry + data
            end = data.rfind(b"\n") + 1
            carry = data[end:]
            if end:
                yield data[:end]
        if carry:
            yield carry


def _read_part(part: Part) -> bytes:
    with open(part.path, "rb") as stream:
        stream.seek(part.start)
        return stream.read(part.end - part.start)


def _json_sessions(path: Path) -> tuple[list[Any], list[int]]:
    with _open(path) as stream:
        try:
            text = stream.read()
        except UnicodeDecodeError as error:
            raise InputError(f"{path}: not UTF-8 text (byte {error.start})") from None
    data, starts = _json_loads(text, path, 1)
    if isinstance(data, dict):
        data = normal_keys(data)[0].get("sessions")
    if not isinstance(data, list):
        raise InputError(f'{path}: expected a list of sessions, or an object with a "sessions" list')
    if starts is None:
        starts, _ = _json_layout(text)
    return data, starts if len(starts) == len(data) else [1] * len(data)


def _json_records(path: Path, keep: tuple[str, ...] = (), facts: tuple[str, ...] = ()) -> Iterator[Record]:
    sessions, starts = _json_sessions(path)
    for i, session in enumerate(sessions):
        yield from _session_records(session, str(path), starts[i], f"sessions[{i}]", keep, facts)


def _json_loads(text: str, path: Path, row: int) -> tuple[Any, list[int] | None]:
    """Parse JSON text (the whole file, or line `row` of a JSONL file), refusing it with its
    place when it is not valid or nests deeper than `MAX_JSON_DEPTH`; with the lines where the
    sessions start when the text needed a look at its layout (see `_json_layout`)."""
    try:
        # Whole numbers stay text, so the field checks bound them (int() refuses 4,300+ digits).
        data = json.loads(text, parse_int=str)
    except json.JSONDecodeError as error:
        raise InputError(f"{path}:{row + error.lineno - 1}:{error.colno}: not valid JSON ({error.msg})") from None
    except RecursionError:
        data = None
    starts = None
    if data is None or text.count("{") + text.count("[") > MAX_JSON_DEPTH:
        starts, deep = _json_layout(text)
        if deep is not None:
            raise InputError(f"{path}:{row + deep[0] - 1}:{deep[1]}: not valid session JSON (nested more than "
                             f"{MAX_JSON_DEPTH} levels deep)")
    return data, starts


_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.S)


def _json_layout(text: str) -> tuple[list[int], tuple[int, int] | None]:
    """One linear pass over JSON text: the line where each object of the sessions list (the
    first list) starts, and the line and column where nesting first passes `MAX_JSON_DEPTH`."""
    starts: list[int] = []
    target: int | None = None
    depth = 0
    line, counted = 1, 0
    for token in _JSON_TOKEN.finditer(text):
        ch = token.group()[0]
        if ch == '"':
            continue
        if ch in "]}":
            depth -= 1
            continue
        pos = token.start()
        if ch == "{" and depth == target:
            line, counted = line + text.count("\n", counted, pos), pos
            starts.append(line)
        if ch == "[" and target is None:
            target = depth + 1
        depth += 1
        if depth > MAX_JSON_DEPTH:
            line = line + text.count("\n", counted, pos)
            return starts, (line, pos - text.rfind("\n", 0, pos))
    return starts, None


def _jsonl_objects(path: Path) -> Iterator[tuple[int, Any]]:
    with _open(path) as stream:
        try:
            for row, line in enumerate(stream, start=1):
                if line.strip():
                    yield row, _json_loads(line, path, row)[0]
        except UnicodeDecodeError as error:
            raise InputError(f"{path}: not UTF-8 text (byte {error.start} of a block)") from None


def _jsonl_records(path: Path, keep: tuple[str, ...] = (), facts: tuple[str, ...] = ()) -> Iterator[Record]:
    for row, obj in _jsonl_objects(path):
        yield from _session_records(obj, str(path), row, "", keep, facts)


def records(paths: list[Path], columns: Columns | None = None) -> Iterator[Record]:
    """Every flat record of every file, in input order."""
    columns = columns or Columns()
    for path in paths:
        kind = _kind(path)
        if isinstance(kind, formats.Format):
            yield from _format_records(path, kind, columns)
        elif kind == ".csv":
            yield from _csv_records(path, columns)
        elif kind == ".json":
            yield from _json_records(path, columns.keep, columns.facts)
        else:
            yield from _jsonl_records(path, columns.keep, columns.facts)


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
    scanned: bool = True
    """False when the input was not scanned (`Scan.unread`): nothing above is known, and the
    input is read with `read_grouped`, which finds out whether it is grouped as it reads."""

    @classmethod
    def unread(cls) -> Scan:
        """What stands for a scan that was not made: no lines counted, grouped until reading
        finds otherwise, no parts."""
        return cls(lines=0, grouped=True, scanned=False)


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
        table = _CsvTable(path, columns) if kind == ".csv" else None
        if table is not None:
            if first_break is not None and plain_rows(table):  # only the count is left to find
                count += _count_rows(table, len(_header_bytes(path)))
                continue
            runs = _csv_runs(table, str(path))
        else:
            parts = None  # only CSV files are cut into parts
            runs = _record_runs(path, kind, columns)
        part: list[_Run] = []
        in_part = 0
        for run in runs:
            count += run.lines
            if run.patient != current:
                if run.patient in seen and first_break is None:
                    first_break = (run.origin, run.patient)
                    if table is not None and run.end and plain_rows(table):
                        # Not grouped: the rest of the file is only counted, without its runs.
                        count += _count_rows(table, run.end)
                        break
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


def _record_runs(path: Path, kind: str | formats.Format, columns: Columns) -> Iterator[_Run]:
    """One run per record of a JSON, JSONL or claim file: the records the reader reads, and
    their patient as the reader groups it (see `_batches`)."""
    if isinstance(kind, formats.Format):
        found = _format_records(path, kind, columns)
    else:
        found = _json_records(path, columns.keep) if kind == ".json" else _jsonl_records(path, columns.keep)
    for raw, origin, _ in found:
        yield _Run(clean(raw[1]), origin, 1)


def _csv_runs(table: _CsvTable, file: str) -> Iterator[_Run]:
    """The file's runs of lines by patient: the rows and records the reader reads (see
    `_CsvTable`), and their patient as the reader groups it (see `_batches`). Runs of a file
    read without the csv module carry byte offsets; the others do not."""
    if plain_rows(table):
        return _plain_runs(table, file)
    return _row_runs(table, file)


def _header_bytes(path: Path) -> bytes:
    with open(path, "rb") as stream:
        return stream.readline()


_ROW_START_TO_LOOK_AT = re.compile(rb"\n(?=[^0-9A-Za-z])")
"""A row that starts with neither a letter nor a digit: it may be blank (whitespace and commas)."""


def _count_rows(table: _CsvTable, offset: int) -> int:
    """The rows the reader reads in a plain file from byte `offset` (the start of a line) on:
    every line but the blank ones, which are found by their first character. Refuses a field
    longer than `CSV_READ_LIMIT` as the reader does."""
    count = 0
    for block in _plain_blocks(table.path, None, offset):
        count += block.count(b"\n") + (not block.endswith(b"\n"))
        count -= _blank_bytes(table, block[:_line_end(block, 0)], offset)
        for found in _ROW_START_TO_LOOK_AT.finditer(block):
            start = found.start() + 1
            count -= _blank_bytes(table, block[start:_line_end(block, start)], offset + start)
        offset += len(block)
    return count


def _line_end(block: bytes, start: int) -> int:
    """Where the line of `block` that starts at `start` ends, its line break included."""
    return block.find(b"\n", start) + 1 or len(block)


def _blank_bytes(table: _CsvTable, line: bytes, offset: int) -> bool:
    """Whether the line at byte `offset` of a plain file is a blank row (see `_blank`); a field
    longer than `CSV_READ_LIMIT` is refused."""
    if line[:1].isalnum():
        if len(line) > CSV_READ_LIMIT:
            _refuse_too_long(table, _plain_cells(line.decode("utf-8", "replace")), offset)
        return False
    cells = _plain_cells(line.decode("utf-8", "replace"))  # a plain file was read as UTF-8 already
    if len(line) > CSV_READ_LIMIT:
        _refuse_too_long(table, cells, offset)
    return _blank(cells)


def _refuse_too_long(table: _CsvTable, cells: list[str], offset: int) -> None:
    if max(map(len, cells)) > CSV_READ_LIMIT:
        with open(table.path, "rb") as stream:
            row = 1 + stream.read(offset).count(b"\n")
        raise _too_long(table.path, row)


class _Runs:
    """Runs of lines by patient, built line by line: the one way both readings of a CSV file
    (`_row_runs`, `_plain_runs`) find runs, so that they always find the same ones."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.patient: str | None = None
        self.session: str | None = None
        self.earlier: set[str] = set()
        """Session ids of the patients before this one."""
        self.own: set[str] = set()
        self.first = self.lines = self.start = 0
        self.shares = False

    def line(self, patient: str, row: int, begin: int) -> _Run | None:
        """A line of `patient` at `row`, its bytes starting at `begin`; the run it ends, if any."""
        ended = None
        if patient != self.patient:
            if self.patient is not None:
                ended = _Run(self.patient, Origin(self.file, self.first), self.lines, self.start, begin, self.shares)
                self.earlier |= self.own
                self.own = set()
            self.patient, self.first, self.lines, self.start, self.shares = patient, row, 0, begin, False
        self.lines += 1
        return ended

    def session_of_line(self, session: str) -> None:
        """The session id of the line just counted."""
        if session != self.session:
            self.session = session
            self.own.add(session)
            self.shares = self.shares or session in self.earlier

    def last(self, end: int) -> Iterator[_Run]:
        """The run still open, ending at byte `end`."""
        if self.patient is not None:
            yield _Run(self.patient, Origin(self.file, self.first), self.lines, self.start, end, self.shares)


def _row_runs(table: _CsvTable, file: str) -> Iterator[_Run]:
    """`_csv_runs` row by row, through the reader's own rows and records."""
    runs = _Runs(file)
    end = 0
    for row, begin, end, cells in table.rows():
        raw, _ = table.record(cells)
        ended = runs.line(clean(raw[1]), row, begin)
        if ended is not None:
            yield ended
        runs.session_of_line(clean(raw[0]))
    yield from runs.last(end)


def _plain_runs(table: _CsvTable, file: str) -> Iterator[_Run]:
    """`_csv_runs` of a file read without the csv module, in one loop over its bytes: a row is
    decoded and read as the reader reads it only where its patient or session cell changes, or
    where it is long or short enough that the reader might see other cells (blank rows, missing
    cells, fields over `MAX_FIELD_CHARS`). Elsewhere the patient and session are those of the row
    before, so the runs are the same as `_csv_runs` finds row by row."""
    assert table.picks[0] and table.picks[1]
    at_session, at_patient = table.picks[0][0], table.picks[1][0]
    cut = max(at_session, at_patient) + 1
    width = table.width
    runs = _Runs(file)
    raw_patient = raw_session = b"\n"  # never a cell: the first row takes the careful way
    with open(table.path, "rb") as stream:
        offset = end = len(stream.readline())
        for row, line in enumerate(stream, start=2):
            begin, offset = offset, offset + len(line)
            cells = line.split(b",", cut)
            if len(cells) > cut and len(line) <= MAX_FIELD_CHARS and cells[at_patient] == raw_patient:
                runs.lines += 1
                if cells[at_session] != raw_session:
                    raw_session = cells[at_session]
                    runs.session_of_line(clean(raw_session.decode("utf-8")))
                end = offset
                continue
            text = _plain_cells(line.decode("utf-8"))
            if len(line) > CSV_READ_LIMIT and max(map(len, text)) > CSV_READ_LIMIT:
                raise _too_long(table.path, row)
            if _blank(text):
                continue
            # A row whose cells the reader pads or empties is compared by its record, never by raw bytes.
            plain = len(text) == width and len(line) <= MAX_FIELD_CHARS
            raw, _ = table.record(text)
            here = clean(raw[1])
            ended = runs.line(here, row, begin)
            if ended is not None:
                yield ended
            end = offset
            runs.session_of_line(clean(raw[0]))
            raw_patient = cells[at_patient] if plain and here else b"\n"
            raw_session = cells[at_session] if plain else b"\n"
    yield from runs.last(end)


def read_blocks(paths: list[Path], columns: Columns | None = None, *, grouped: bool = True) -> Iterator[Batch]:
    """Batches of sessions: one per patient block when `grouped`, else one for the whole input.

    Facts that span sessions (same patient, same day) never cross patients, so a block holds
    all a rule can need. Use `scan` first to know whether the input is grouped.
    """
    return _table_batches(_sources(paths, columns), grouped)


def read_part(part: Part, columns: Columns | None = None) -> Iterator[Batch]:
    """The patient blocks of one part of a grouped CSV file (see `Scan.parts`)."""
    return _table_batches([_part_source(part, columns)], grouped=True)


def _part_source(part: Part, columns: Columns | None) -> tuple[_CsvTable, Part]:
    return _CsvTable(part.path, columns or Columns(), plain=True), part


def _sources(paths: list[Path], columns: Columns | None) -> Iterator[tuple[_CsvTable, None] | Iterator[Record]]:
    """What `records` reads, file by file, for `_table_batches`: a CSV file as its table."""
    columns = columns or Columns()
    for path in paths:
        if _kind(path) == ".csv":
            yield _CsvTable(path, columns), None
        else:
            yield records([path], columns)


def comes_back(patients: Iterable[str], seen: set[str]) -> bool:
    """True when a patient of `patients` (each a record's, in order) comes back after another
    one, or is in `seen`; the patients passed are added to `seen` (as far as the first that
    comes back)."""
    current: str | None = None
    for patient in patients:
        if patient != current:
            if patient in seen:
                return True
            if current is not None:
                seen.add(current)
            current = patient
    if current is not None:
        seen.add(current)
    return False


def row_patients(table: _CsvTable, offset: int, row: int) -> Iterator[tuple[int, int, str]]:
    """(byte offset, row, patient as the reader groups it) of each row that is not blank in a
    plain file (`plain_rows`), from byte `offset`, the start of row `row`, to the end."""
    with open(table.path, "rb") as stream:
        stream.seek(offset)
        for row, line in enumerate(stream, start=row):
            cells = _plain_cells(line.decode("utf-8"))
            if not _blank(cells):
                raw, _ = table.record(cells)
                yield offset, row, clean(raw[1])
            offset += len(line)


def patient_start(table: _CsvTable, first: int, offset: int, row: int) -> tuple[int, int]:
    """(byte offset, row) of the first row at or after byte `offset` (the start of row `row`)
    of a plain file whose patient is not that of the row before it, blank rows aside, or the
    end of the file when there is none. `first` is the offset of the row after the header,
    where a patient always starts. Two parts cut where this says hold no patient in common."""
    if offset <= first:
        return offset, row
    before = _patient_before(table, first, offset)
    for at, number, patient in row_patients(table, offset, row):
        if patient != before:
            return at, number
    with open(table.path, "rb") as stream:
        return stream.seek(0, os.SEEK_END), 0


def _patient_before(table: _CsvTable, first: int, offset: int) -> str | None:
    """The patient of the last row that is not blank before byte `offset` (a row's start) of a
    plain file, reading back from there; None when there is none after the header at `first`."""
    back = 1 << 12
    with open(table.path, "rb") as stream:
        while True:
            begin = max(first, offset - back)
            stream.seek(begin)
            lines = stream.read(offset - begin).split(b"\n")[:-1]  # the last ended at `offset`
            for line in reversed(lines if begin == first else lines[1:]):  # the first may be cut
                cells = _plain_cells(line.decode("utf-8"))
                if not _blank(cells):
                    raw, _ = table.record(cells)
                    return clean(raw[1])
            if begin == first:
                return None
            back *= 8


def read_part_once(part: Part, columns: Columns | None, patients: set[str], sessions: set[str]) -> Iterator[Batch]:
    """`read_part` of a part cut without a scan (see `workers`), which may not hold whole
    patients of a grouped file: `NotGrouped` is raised where a patient comes back within the
    part, and the part's patients and session ids are added to `patients` and `sessions`, for
    the caller to check that no other part has any of them."""
    return _table_batches([_part_source(part, columns)], grouped=True, once=True, patients=patients,
                          sessions=sessions)


def _batches(found: Iterator[Record], grouped: bool, once: bool = False, patients: set[str] | None = None,
             sessions: set[str] | None = None) -> Iterator[Batch]:
    batching = _Batching(grouped, once, patients, sessions)
    yield from batching.records(found)
    yield from batching.end()


def _table_batches(tables: Iterable[tuple[_CsvTable, Part | None] | Iterator[Record]], grouped: bool,
                   once: bool = False, patients: set[str] | None = None,
                   sessions: set[str] | None = None) -> Iterator[Batch]:
    """`_batches` of the records of each source in turn: a CSV file (or a part of one) given as
    its table, read the shortest way there is for it (see `_Batching.rows`), or records."""
    batching = _Batching(grouped, once, patients, sessions)
    for source in tables:
        if not isinstance(source, tuple):
            yield from batching.records(source)
            continue
        table, part = source
        if table.plain and table.simple and not table.keep and not table.facts:
            yield from batching.rows(table, _plain_lines(table, part))
        else:
            yield from batching.records(_csv_records(table.path, Columns(), part, table))
    yield from batching.end()


class _Batching:
    """Records into batches: what `_batches` keeps from one record to the next."""

    def __init__(self, grouped: bool, once: bool, patients: set[str] | None, sessions: set[str] | None) -> None:
        self.grouper = _Grouper()
        self.grouper.ids = sessions
        self.grouped, self.once = grouped, once
        self.current: str | None = None
        """For grouped input, the patient of the record before."""
        self.seen: set[str] = set() if patients is None else patients

    def turn(self, patient: str, origin: Origin) -> Batch | None:
        """For grouped input, at a record of `patient`: the batch of the patient before it when
        that patient's records end here."""
        current, self.current = self.current, patient
        if patient == current or current is None:
            return None
        if self.once:  # `read_grouped`: a patient may not come back
            self.seen.add(current)
            if patient in self.seen:
                raise NotGrouped(origin, patient)
        return self.grouper.take() if self.grouper.lines_read else None

    def records(self, found: Iterator[Record]) -> Iterator[Batch]:
        grouper, grouped = self.grouper, self.grouped
        for raw, origin, problem in found:
            if grouped and (ended := self.turn(clean(raw[1]), origin)) is not None:
                yield ended
            grouper.add(raw, origin, problem)

    def rows(self, table: _CsvTable, rows: Iterable[tuple[int, str]]) -> Iterator[Batch]:
        """`records` of the rows (number, text) of a plain file with one column per field and no
        kept ids, as `_plain_records` reads them. Where the columns are those of `ALL_FIELDS` in
        order, a row is taken in short when its cells from the code on were seen before in a
        valid row (`_TAILS`) and its others are valid: split at its first six commas, with
        one lookup for those cells, and no record built."""
        grouper, grouped = self.grouper, self.grouped
        file, headers, width, pick = str(table.path), table.headers, table.width, table.pick
        tails = _tails(table)
        dates, npis, credentials = _valid[2], _valid[4], _valid[5]
        for row, text in rows:
            if tails is not None and len(text) <= MAX_FIELD_CHARS:
                parts = text.rstrip("\r\n").split(",", 6)
                tail = tails.get(parts[-1]) if len(parts) == 7 else None
                if tail is not None:
                    session_id, patient, payer = parts[0].strip(), parts[1].strip(), parts[3].strip()
                    date, npi, credential = dates.get(parts[2]), npis.get(parts[4]), credentials.get(parts[5])
                    if session_id and patient and payer and date is not None and npi is not None \
                            and credential is not None:
                        origin = new_named_tuple(Origin, (file, row, "", headers, (), ()))
                        if grouped and patient != self.current and (ended := self.turn(patient, origin)) is not None:
                            yield ended
                        if not grouper.add_valid([session_id, patient, date, payer, npi, credential, *tail], origin):
                            cells = parts[:6] + parts[6].split(",")
                            cells.append("")
                            grouper.add(pick(cells), origin, None)
                        continue
            found = _plain_record(table, row, text)
            if found is None:
                continue
            raw, origin, problem = found
            if grouped and (ended := self.turn(clean(raw[1]), origin)) is not None:
                yield ended
            grouper.add(raw, origin, problem)
            if tails is not None and problem is None and text.count(",") == width - 1:
                _remember_tail(tails, text, raw)

    def end(self) -> Iterator[Batch]:
        """The last batch, once every record is in."""
        if self.grouper.lines_read:
            yield self.grouper.take()
        if self.current is not None:
            self.seen.add(self.current)


_valid = {index: parse.valid for index, _, parse in _FIELD_PARSERS}
"""Position in `ALL_FIELDS` → the text already found valid for that field, and its value."""

_TAILS: dict[int, dict[str, tuple[Any, ...]]] = {}
"""By a file's number of columns: the text of a row's cells from the code on → their values
(those of the fields from the code to the place of service), for cells found valid together."""

_MISSING = object()


def _tails(table: _CsvTable) -> dict[str, tuple[Any, ...]] | None:
    """The `_TAILS` of a file whose columns are the fields of `ALL_FIELDS` in order, as far as
    the code at least; None for any other."""
    width = table.width
    if not 7 <= width <= len(ALL_FIELDS) or table.picks != [[i] if i < width else None
                                                          for i in range(len(ALL_FIELDS))]:
        return None
    return _TAILS.setdefault(width, {})


def _remember_tail(tails: dict[str, tuple[Any, ...]], text: str, raw: Sequence[str]) -> None:
    """Note the values of the cells from the code on of a row with a cell per column, when
    each was found valid."""
    values = tuple([_valid[i].get(raw[i], _MISSING) for i in range(6, len(ALL_FIELDS))])
    if _MISSING not in values:
        if len(tails) >= MEMO_SIZE:
            tails.clear()
        tails[text.rstrip("\r\n").split(",", 6)[6]] = values


def _plain_lines(table: _CsvTable, part: Part | None,
                 stretch: tuple[int, int, int] | None = None) -> Iterator[tuple[int, str]]:
    """The rows of a plain file (or of `part`, or of `stretch`: see `keyed_rows`) as (number,
    text), as `_plain_records` reads them."""
    return itertools.chain.from_iterable(_plain_line_blocks(table, part, stretch))


def _plain_line_blocks(table: _CsvTable, part: Part | None,
                       stretch: tuple[int, int, int] | None) -> Iterator[Iterator[tuple[int, str]]]:
    start, end, row = stretch if stretch is not None else (None, None, part.row if part is not None else 2)
    for block in _plain_blocks(table.path, part, start, end):
        try:
            lines = block.decode("utf-8").split("\n")
        except UnicodeDecodeError:  # `table.rows` says which row, after the rows before it
            yield _undecoded(table, block, row)
            return
        if lines[-1] == "":
            lines.pop()  # after the last line break
        yield enumerate(lines, start=row)
        row += len(lines)


def _undecoded(table: _CsvTable, block: bytes, row: int) -> Iterator[tuple[int, str]]:
    """The rows of a block of a plain file that is not UTF-8 up to the one that is not, where
    `InputError` says so."""
    for found in table._plain_rows(io.BytesIO(block), row, 0):
        yield found[0], ",".join(found[3])
    raise AssertionError("a block that is not UTF-8 has a row that is not")  # pragma: no cover


class ScanFirst(Exception):
    """Input that was judged without a scan must be scanned and judged again: it is not grouped
    by patient, or it was cut into parts that turned out not to hold whole patients and sessions
    (see `workers`)."""


class NotGrouped(ScanFirst):
    """The input turned out not to be grouped by patient (see `read_grouped`)."""

    def __init__(self, origin: Origin, patient: str) -> None:
        super().__init__(f"patient {patient} comes back at {origin}")
        self.origin = origin
        self.patient = patient


def read_scanned(paths: list[Path], columns: Columns | None, found: Scan) -> Iterator[Batch]:
    """The input's batches as its scan says: `read_blocks` (one batch per patient when grouped,
    else one for the whole input), or `read_grouped` when it was not scanned (`Scan.unread`)."""
    return read_blocks(paths, columns, grouped=found.grouped) if found.scanned else read_grouped(paths, columns)


def read_grouped(paths: list[Path], columns: Columns | None = None) -> Iterator[Batch]:
    """The batches of `read_blocks(grouped=True)` of input that was not scanned first: one per
    patient while every patient's records are together; `NotGrouped` is raised at the first
    record of a patient that comes back after another patient (the batches given out before
    then are not those of the input's order, and must be thrown away). Reading the input once
    instead of scanning it first: it pays when the output can wait for the end."""
    return _table_batches(_sources(paths, columns), grouped=True, once=True)


def is_csv(path: Path) -> bool:
    """True when `path` is read as a CSV session file."""
    return _kind(path) == ".csv"


def csv_table(path: Path, columns: Columns) -> _CsvTable:
    """How the CSV file at `path` is read (for `keyed_rows` and `keyed_records`)."""
    return _CsvTable(path, columns)


def keyed_rows(table: _CsvTable, columns: Columns,
               stretch: tuple[int, int, int] | None = None) -> Iterator[tuple[str, str, int, Any]]:
    """(patient, session id, row) of each record of a CSV file as the reader reads them, with
    the record in a compact form that `keyed_records` turns back into the reader's record: the
    row's number and text for a file read without the csv module (`plain_rows`), else the
    record itself. Used to cut a file into buckets by patient. `stretch`, for a plain file
    only: (start, end, row), the rows from byte `start` (the start of row number `row`) to
    byte `end` (the start of a row, or the end of the file) alone."""
    path = table.path
    if not plain_rows(table):
        assert stretch is None, "only a plain file is read by stretches"
        for record in _csv_records(path, columns):
            raw = record[0]
            yield clean(raw[1]), clean(raw[0]), record[1].row, record
        return
    yield from keyed_lines(table, _plain_lines(table, None, stretch))


def plain_rows(table: _CsvTable) -> bool:
    """Whether the file is read without the csv module, one column per field, with a session
    and a patient column: its rows can then be found, cut and counted in its bytes, and
    `keyed_rows` gives them as (row, text), which `keyed_lines` keys again."""
    return bool(table.plain and table.simple and table.picks[0] and table.picks[1])


def keyed_lines(table: _CsvTable, lines: Iterable[tuple[int, str]]) -> Iterator[tuple[str, str, int, Any]]:
    """`keyed_rows` of the lines (row, text without its line break) of a file read without the
    csv module: a row is parsed in full only where the cells it is keyed by might not be its
    own (as in `_plain_runs`)."""
    path = table.path
    assert table.picks[0] and table.picks[1]
    at_session, at_patient = table.picks[0][0], table.picks[1][0]
    cut = max(at_session, at_patient) + 1
    for row, text in lines:
        cells = text.split(",", cut)
        if len(cells) > cut and len(text) <= MAX_FIELD_CHARS:  # a blank row is skipped by `keyed_records`
            yield clean(cells[at_patient]), clean(cells[at_session]), row, (row, text)
            continue
        whole = _plain_cells(text)
        if len(text) > CSV_READ_LIMIT and max(map(len, whole)) > CSV_READ_LIMIT:
            raise _too_long(path, row)
        if not _blank(whole):
            raw, _ = table.record(whole)
            yield clean(raw[1]), clean(raw[0]), row, (row, text)


def keyed_records(table: _CsvTable, rows: Iterable[Any]) -> Iterator[Record]:
    """The reader's records of rows in the compact form of `keyed_rows`."""
    path = table.path
    if not plain_rows(table):
        yield from rows
        return
    file, headers, names, at = str(path), table.headers, table.keep, table.kept_at
    for row, text in rows:
        cells = _plain_cells(text)
        if _blank(cells):
            continue
        raw, problem = table.record(cells)  # pads `cells` to the header's width
        kept = tuple([(name, cells[i]) for name, i in zip(names, at)]) if names else ()
        found: tuple[tuple[str, str], ...] | Problem = ()
        if table.facts:
            found = fact_texts([(name, clean(cells[i])) for name, i in table.facts])
            if isinstance(found, Problem):
                problem, found = problem or found, ()
        yield raw, new_named_tuple(Origin, (file, row, "", headers, kept, found)), problem


def read_patients(table: _CsvTable, rows: Iterable[Any]) -> Iterator[Batch]:
    """The records of `rows` (in the compact form of `keyed_rows`, read from `table`) with each
    patient's records together (such as a bucket of an ungrouped file, patient by patient), in
    batches of one patient, as `read_blocks` reads a grouped input."""
    if not plain_rows(table) or table.keep or table.facts:
        return _batches(keyed_records(table, rows), grouped=True)
    return _row_batches(table, rows)


def _row_batches(table: _CsvTable, rows: Iterable[tuple[int, str]]) -> Iterator[Batch]:
    batching = _Batching(grouped=True, once=False, patients=None, sessions=None)
    yield from batching.rows(table, rows)
    yield from batching.end()


def read_sessions(paths: list[Path], columns: Columns | None = None) -> Batch:
    """Read the whole input as one batch (with the collector relaxed: it is all kept)."""
    with fewer_collections():
        return next(read_blocks(paths, columns, grouped=False), Batch())
