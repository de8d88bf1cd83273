"""Input columns that payrules does not read: each is named once in a warning, so that a typo
(`acident_date`) is seen rather than silently dropped.

A column is read when it is a session field, a field a loaded rule file declares, a column the
mapping file (`--columns`) names, or an id kept with `--keep`. CSV files are checked by their
header, JSON and JSONL files by the keys of their first `SAMPLE` sessions and of those sessions'
lines. Claim files (837P) have no columns of their own; Parquet files are checked by their schema.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from payrules import formats
from payrules.diagnostics import closest
from payrules.fields import ALL_FIELDS, field_name
from payrules.records import Columns, csv_table, is_csv

SAMPLE = 100
"""How many sessions of a JSON or JSONL file are looked at."""

MAX_JSON_BYTES = 64 * 1024 * 1024
"""A JSON file larger than this is not read a second time for its keys (JSONL always is, in part)."""


def unread_columns(paths: Iterable[Path], columns: Columns | None) -> list[str]:
    """One warning for each column or key of the input that payrules will not read, in the
    order met; a name is warned of once, however many files have it."""
    columns = columns or Columns()
    mapped = {header for headers in columns.mapping.values() for header in headers}
    read = set(ALL_FIELDS) | set(columns.facts) | set(columns.keep) | mapped | {"lines", "sessions"}
    known = [*ALL_FIELDS, *columns.facts]
    warned: dict[str, None] = {}
    found: list[str] = []
    for path in paths:
        for name, shown in _names(path, columns):
            if name in read or name in warned or not name:
                continue
            warned[name] = None
            hint = closest(name, known)
            what = "column" if is_csv(path) or formats.format_for(path) is not None else "key"
            help = (f"; did you mean `{hint}`?" if hint else
                    "; declare it in a rule file (`field NAME: TYPE`) to use it, or keep it with --keep")
            found.append(f"warning: {path}: {what} `{shown}` is not read: it is not a session field, nor a field "
                         f"a rule file declares, nor mapped with --columns{help}")
    return found


def _names(path: Path, columns: Columns) -> Iterator[tuple[str, str]]:
    """(normalised name, name as written) of the columns or keys of one input file."""
    try:
        if is_csv(path):
            table = csv_table(path, columns)
            for header in table.header_names:
                yield field_name(header), header.strip()
            return
        suffix = path.suffix.lower()
        if suffix == ".jsonl":
            with open(path, encoding="utf-8-sig") as stream:
                objects = (json.loads(line) for line in itertools.islice(stream, SAMPLE) if line.strip())
                yield from _keys(objects)
        elif suffix == ".json" and path.stat().st_size <= MAX_JSON_BYTES:
            with open(path, encoding="utf-8-sig") as stream:
                data = json.load(stream)
            if isinstance(data, dict):
                data = data.get("sessions", [])
            if isinstance(data, list):
                yield from _keys(data[:SAMPLE])
        elif suffix == ".parquet":
            yield from _parquet_names(path)
    except (OSError, ValueError, RecursionError):
        return  # the reader itself reports a file it cannot read


def _keys(objects: Iterable[Any]) -> Iterator[tuple[str, str]]:
    for session in objects:
        if not isinstance(session, dict):
            continue
        for key in session:
            if isinstance(key, str):
                yield field_name(key), key
        lines = session.get("lines")
        for line in lines if isinstance(lines, list) else ():
            if isinstance(line, dict):
                for key in line:
                    if isinstance(key, str):
                        yield field_name(key), key


def _parquet_names(path: Path) -> Iterator[tuple[str, str]]:
    try:
        import pyarrow.parquet as pq  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError:
        return
    try:
        names = pq.read_schema(path).names
    except Exception:  # noqa: BLE001 - a damaged file is reported by the reader
        return
    for name in names:
        yield field_name(name), name
