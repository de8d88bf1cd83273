"""Accumulators files (CSV, JSON, JSON Lines) → located rows for `payrules.accumulators`, with
the headers renamed by the `[accumulators]` table of a column mapping file."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from payrules import formats
from payrules.accumulators import (
    ACCUMULATOR_FIELDS,
    ACCUMULATOR_REQUIRED,
    AccumulatorError,
    AccumulatorRow,
    Accumulators,
    accumulator_records,
    accumulators_of,
)
from payrules.diagnostics import InputError
from payrules.fields import clean, field_name
from payrules.records import _json_layout
from payrules.runtime import Origin

TABLE = "accumulators"
"""The table of a `--columns` file that names an accumulators file's own headers."""


def accumulator_columns(path: Path | None) -> dict[str, str]:
    """Field → the header that feeds it, from the `[accumulators]` table of a column mapping
    file ({} without one); an InputError for a table that is not field = "Header"."""
    if path is None:
        return {}
    table = formats.read_toml(path, "column mapping").get(TABLE, {})
    if not isinstance(table, dict):
        raise InputError(f'{path}: [{TABLE}] must be a table of field = "Header", such as patient_id = "Member ID"')
    mapping: dict[str, str] = {}
    for field, header in table.items():
        if field_name(field) not in ACCUMULATOR_FIELDS:
            raise InputError(f"{path}: [{TABLE}] `{field}` is not an accumulators field; fields are "
                             f"{', '.join(ACCUMULATOR_FIELDS)}")
        if not isinstance(header, str) or not header.strip():
            raise InputError(f'{path}: [{TABLE}] `{field}` must name one column header, such as {field} = "Used"')
        mapping[field_name(field)] = field_name(header)
    return mapping


def read_accumulator_files(paths: list[Path], columns: Mapping[str, str] | None = None
                           ) -> tuple[list[AccumulatorRow], list[str]]:
    """Every row of every file, in order, and the warnings (columns or keys that are not read)."""
    rows: list[AccumulatorRow] = []
    warnings: list[str] = []
    problems: list[str] = []
    for path in paths:
        try:
            found, noted = _read(path, dict(columns or {}))
        except AccumulatorError as error:
            problems += error.problems
            continue
        rows += found
        warnings += noted
    if problems:
        raise AccumulatorError(problems)
    return rows, warnings


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: no such accumulators file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder; give a .csv, .json or .jsonl accumulators file") from None
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror})") from None


def _read(path: Path, columns: dict[str, str]) -> tuple[list[AccumulatorRow], list[str]]:
    text = _text(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _json_rows(path, text)
    if suffix in (".jsonl", ".ndjson"):
        return _jsonl_rows(path, text)
    return _csv_rows(path, text, columns)


def _csv_rows(path: Path, text: str, columns: dict[str, str]) -> tuple[list[AccumulatorRow], list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, [])
        if not any(cell.strip() for cell in header):
            raise InputError(f"{path}: the file is empty; expected a header row such as "
                             f"{','.join(ACCUMULATOR_FIELDS)}")
        normal = [field_name(h) for h in header]
        feeds = {header_: field for field, header_ in columns.items()}
        at: dict[str, int] = {}
        warnings: list[str] = []
        for i, name in enumerate(normal):
            if name in feeds:
                field = feeds[name]
            elif name in ACCUMULATOR_FIELDS and name not in columns:
                field = name
            else:
                field = ""
            if field and field not in at:
                at[field] = i
            elif name:
                warnings.append(f"{path}:1: column `{header[i].strip()}` is not an accumulators field; it is not "
                                f"read (fields are {', '.join(ACCUMULATOR_FIELDS)})")
        missing = [f for f in ACCUMULATOR_REQUIRED if f not in at]
        if missing:
            mapped = [columns[f] for f in missing if f in columns]
            how = f" (mapped to `{mapped[0]}`)" if mapped else ""
            raise InputError(f"{path}:1: missing column{'s' if len(missing) > 1 else ''} "
                             f"{', '.join(f'`{m}`' for m in missing)}{how}; the header has "
                             f"{', '.join(f'`{h}`' for h in header)}")
        rows: list[AccumulatorRow] = []
        row = reader.line_num + 1
        for cells in reader:
            if any(cell.strip() for cell in cells):
                values = {field: clean(cells[i]) for field, i in at.items() if i < len(cells)}
                rows.append(AccumulatorRow(Origin(str(path), row), values))
            row = reader.line_num + 1
    except csv.Error as error:
        raise InputError(f"{path}:{reader.line_num}: {error}") from None
    return rows, warnings


def _loads(text: str, path: Path, row: int) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"{path}:{row + error.lineno - 1}:{error.colno}: not valid JSON ({error.msg})") from None
    except RecursionError:
        raise InputError(f"{path}:{row}: not valid accumulators JSON (nested too deep)") from None


def _json_rows(path: Path, text: str) -> tuple[list[AccumulatorRow], list[str]]:
    data = _loads(text, path, 1)
    if isinstance(data, dict):
        data = {field_name(str(k)): v for k, v in data.items()}.get(TABLE)
    if not isinstance(data, list):
        raise InputError(f'{path}: expected a list of accumulator rows, or an object with an "{TABLE}" list')
    starts, _ = _json_layout(text)
    if len(starts) != len(data):
        starts = list(range(1, len(data) + 1))  # rows not all objects: the Nth row is located as N
    try:
        found, warnings = accumulator_records(data, str(path))
    except AccumulatorError as error:
        raise AccumulatorError([_relocated(p, path, starts) for p in error.problems]) from None
    if len(starts) == len(found):
        found = [AccumulatorRow(Origin(str(path), start), row.values) for start, row in zip(starts, found)]
        warnings = [_relocated(w, path, starts) for w in warnings]
    return found, warnings


def _relocated(warning: str, path: Path, starts: list[int]) -> str:
    """A warning of `accumulator_records` (located as `path:N`, the Nth row) at its line instead."""
    place, _, rest = warning.partition(": ")
    number = int(place.rsplit(":", 1)[1])
    return f"{path}:{starts[number - 1]}: {rest}"


def _jsonl_rows(path: Path, text: str) -> tuple[list[AccumulatorRow], list[str]]:
    objects: list[Any] = []
    lines: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            objects.append(_loads(line, path, number))
            lines.append(number)
    try:
        found, warnings = accumulator_records(objects, str(path))
    except AccumulatorError as error:
        raise AccumulatorError([_relocated(p, path, lines) for p in error.problems]) from None
    found = [AccumulatorRow(Origin(str(path), line), row.values) for line, row in zip(lines, found)]
    return found, [_relocated(w, path, lines) for w in warnings]


def load_accumulators(paths: list[Path], policies: Mapping[str, Any], columns_file: Path | None = None
                      ) -> Accumulators:
    """The accumulators of `paths`, checked against `policies` (by payer id in lower case); an
    InputError listing every problem, each with its file, row and field."""
    try:
        rows, warnings = read_accumulator_files(paths, accumulator_columns(columns_file))
        return accumulators_of(rows, policies, warnings)
    except AccumulatorError as error:
        raise AccumulatorInputError(error.problems) from None


class AccumulatorInputError(InputError):
    """An accumulators file that cannot be counted: every problem, printed one to a line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        count = len(problems)
        self.lines = [f"the accumulators cannot be counted ({count} problem{'s' if count != 1 else ''}); none of "
                      "them is counted until these are fixed:", *AccumulatorError(problems).listed()]
        super().__init__("\n".join(self.lines))
