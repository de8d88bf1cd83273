"""Parquet files of flat service lines → flat records; judged blocks → a Parquet file of `--format csv` rows.

A Parquet file holds one service line per row, in the CSV's columns (matched as CSV headers
are). Each value becomes the text a CSV cell would hold (see `_text_of`), so that validation,
grouping and judging are those of the CSV reader, unchanged. The writer writes the rows of
`--format csv`, cell for cell, with the numeric and date columns typed. Both need the
`parquet` extra (pyarrow), imported only when a Parquet file is read or written.
"""

from __future__ import annotations

import csv
import datetime
import decimal
import functools
import io
import struct
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from payrules.diagnostics import InputError
from payrules.fields import ALL_FIELDS, Problem, Record, fact_texts, field_name, limited, new_named_tuple
from payrules.records import Columns
from payrules.render import CSV_COLUMNS, CsvWriter, Fragment, Mask, Writer
from payrules.runner import Block, Summary
from payrules.runtime import Origin

MAGIC = b"PAR1"
"""The first (and last) four bytes of every Parquet file."""

FIRST_ROW = 2
"""The row number of a file's first line. Row 1 stands for the column names, as the header of
a CSV export of the same table: row N is then the same line in both, and a missing column is
reported at row 1 in the CSV reader's words."""

BATCH_ROWS = 65_536
"""Rows read at a time: memory holds one batch of the needed columns, whatever the file's size."""

ROW_GROUP_ROWS = 65_536
"""Rows per row group written: memory holds at most this many output rows."""

MONEY = (18, 2)
"""Precision and scale of the amount columns written: exact cents, and within the 18 digits
that every Parquet reader keeps in a 64-bit integer."""


def sniff(head: bytes) -> bool:
    """Whether a file's first bytes are Parquet's magic number."""
    return head.startswith(MAGIC)


@functools.cache
def _pyarrow() -> tuple[Any, Any, Any]:
    """pyarrow, pyarrow.parquet and pyarrow.compute, or a worded error naming the extra."""
    try:
        import pyarrow  # type: ignore[import-untyped, import-not-found, unused-ignore]
        import pyarrow.compute  # type: ignore[import-untyped, import-not-found, unused-ignore]
        import pyarrow.parquet  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError:
        raise InputError("reading and writing Parquet files needs the pyarrow library: "
                         "install payrules[parquet] (pip install 'payrules[parquet]')") from None
    return pyarrow, pyarrow.parquet, pyarrow.compute


# --- values → the text a CSV cell would hold ----------------------------------------------------


class _NotText(Exception):
    """Bytes of a binary column that are not UTF-8; carries them, escaped, for the message."""

    def __init__(self, shown: str) -> None:
        super().__init__(shown)
        self.shown = shown


def _binary(value: bytes) -> str:
    # Writers that predate Parquet's UTF8 annotation store text as plain binary.
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise _NotText(value.decode("utf-8", "backslashreplace")) from None


def _whole(value: int) -> str:
    return str(value)


def _decimal(value: decimal.Decimal) -> str:
    return format(value, "f")  # fixed point at the column's scale: 45.00 stays `45.00`


def _float_text(value: float, pack: str) -> str:
    """A whole float without decimals (`2.0` → `2`, the form pandas gives integer columns with
    gaps); any other value as the shortest text that reads back as the same float of the
    column's width (`45.1` → `45.1`). Nothing is rounded: the field checks then take or refuse
    the text (`0.30000000000000004` is not an amount in cents)."""
    if value != value:  # NaN: pandas' missing value
        return ""
    if value in (float("inf"), float("-inf")):
        return str(value)
    if value == int(value):
        return str(int(value))
    if pack == "d":
        return repr(value)
    for digits in range(1, 18):
        text = f"{value:.{digits}g}"
        if struct.unpack(pack, struct.pack(pack, float(text)))[0] == value:
            return text
    return repr(value)  # pragma: no cover - 9 digits always suffice for float32, 5 for float16


def _boolean(value: bool) -> str:
    return "true" if value else "false"


def _date(value: datetime.date) -> str:
    return value.isoformat()


def _timestamp(value: datetime.datetime) -> str:
    """Midnight (in the column's own time zone, if it has one) is a date; any other time is
    written in full, which the date check refuses: payrules does not choose the day for you."""
    if value.time() == datetime.time(0):
        return value.date().isoformat()
    return value.isoformat()


def _text_of(kind: Any) -> Callable[[Any], str] | None:
    """The function that writes a (non-null) value of Arrow type `kind` as text; None when
    payrules does not read that type."""
    pa = _pyarrow()[0]
    types = pa.types
    if types.is_string(kind) or types.is_large_string(kind) or _is(types, "is_string_view", kind):
        return str
    if types.is_binary(kind) or types.is_large_binary(kind) or types.is_fixed_size_binary(kind) \
            or _is(types, "is_binary_view", kind):
        return _binary
    if types.is_integer(kind):
        return _whole
    if types.is_decimal(kind):
        return _decimal
    if types.is_floating(kind):
        pack = {16: "e", 32: "f"}.get(kind.bit_width, "d")
        return functools.partial(_float_text, pack=pack)
    if types.is_boolean(kind):
        return _boolean
    if types.is_date(kind):
        return _date
    if types.is_timestamp(kind):
        return _timestamp
    if types.is_dictionary(kind):
        return _text_of(kind.value_type)
    if types.is_null(kind):
        return str  # never called: every value is null
    if types.is_list(kind) or types.is_large_list(kind) or types.is_fixed_size_list(kind) \
            or _is(types, "is_list_view", kind) or _is(types, "is_large_list_view", kind):
        element = kind.value_type
        if types.is_nested(element):
            return None
        text = _text_of(element)
        if text is None:
            return None
        # Several values in one cell, as the JSON reader joins a list: `25;GP`.
        return lambda values: ";".join("" if v is None else text(v) for v in values)
    return None


def _is(types: Any, predicate: str, kind: Any) -> bool:
    """A type predicate that older pyarrow versions do not have is false."""
    test = getattr(types, predicate, None)
    return bool(test and test(kind))


SUPPORTED = ("text, whole numbers, decimals, floats, booleans, dates, timestamps, and lists of these")


def _column_texts(column: Any, text: Callable[[Any], str]) -> tuple[list[str], dict[int, str]]:
    """Every value of an Arrow array as text (null → empty), and the rows whose binary value
    is not UTF-8, with that value escaped."""
    pa, _, pc = _pyarrow()
    if text is _whole or text is _date and pa.types.is_date32(column.type):
        # Arrow writes these exactly as Python would (digits; ISO dates), column at a time.
        return pc.cast(column, pa.string()).fill_null("").to_pylist(), {}
    try:
        values = column.to_pylist()
    except (ValueError, OverflowError, KeyError):
        # Dates and timestamps beyond Python's years 1-9999 (or in a time zone this system does
        # not know): Arrow's own text, which the date check refuses.
        values = pc.cast(column, pa.string()).to_pylist()
        text = str
    try:
        return [text(v) if v is not None else "" for v in values], {}
    except _NotText:
        texts: list[str] = []
        bad: dict[int, str] = {}
        for i, v in enumerate(values):
            try:
                texts.append(text(v) if v is not None else "")
            except _NotText as error:
                texts.append(error.shown)
                bad[i] = error.shown
        return texts, bad


# --- reading -------------------------------------------------------------------------------------


def _parquet_file(path: Path) -> Any:
    pa, pq, _ = _pyarrow()
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a .parquet file")
    try:
        with open(path, "rb") as stream:
            head = stream.read(len(MAGIC))
        if not head:
            raise InputError(f"{path}: the file is empty; expected a Parquet file")
        if not sniff(head):
            raise InputError(f"{path}: not a Parquet file (a Parquet file starts with `PAR1`)")
        with open(path, "rb") as stream:
            stream.seek(-len(MAGIC), io.SEEK_END)
            if not sniff(stream.read()):
                raise InputError(f"{path}: a damaged Parquet file (it does not end with `PAR1`: it may have "
                                 "been cut short)")
        return pq.ParquetFile(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such sessions file") from None
    except (OSError, pa.ArrowException) as error:
        if isinstance(error, pa.ArrowException):
            raise InputError(f"{path}: a damaged Parquet file ({_reason(error)})") from None
        raise InputError(f"{path}: cannot read ({error.strerror or error})") from None


def records(path: Path, columns: Columns | None = None) -> Iterator[Record]:
    """The file's records, one per row, in file order; a file that cannot be read raises
    `InputError`, which a first pass over the file (the scan) meets before any output."""
    pa = _pyarrow()[0]
    table = _parquet_file(path)
    schema = table.schema_arrow
    names: list[str] = list(schema.names)
    columns = columns or Columns()
    fields = columns.resolve(path, names)
    headers = columns.headers(names, fields)
    kept_at = columns.kept_at(path, names)
    normal = [field_name(n) for n in names]
    facts_at = [(name, normal.index(column)) for name in columns.facts
                if (column := columns.mapping.get(name, (name,))[0]) in normal]
    needed = sorted({i for _, idx in fields for i in idx} | set(kept_at) | {i for _, i in facts_at})
    texts: dict[int, Callable[[Any], str]] = {}
    for i in needed:
        text = _text_of(schema.field(i).type)
        if text is None:
            raise InputError(f"{path}: column `{names[i]}` holds {schema.field(i).type} values; payrules reads "
                             f"columns of {SUPPORTED}")
        texts[i] = text
    # Columns are picked by name; a file that repeats a needed name is read whole and picked by place.
    unique = all(names.count(names[i]) == 1 for i in needed)
    wanted = [names[i] for i in needed] if unique else None
    picks = [dict(fields).get(f) for f in ALL_FIELDS]
    file, row = str(path), FIRST_ROW
    try:
        for batch in table.iter_batches(batch_size=BATCH_ROWS, columns=wanted):
            cells: dict[int, list[str]] = {}
            bad: dict[int, dict[int, str]] = {}
            for i in needed:
                cells[i], bad[i] = _column_texts(batch.column(names[i] if unique else i), texts[i])
            empty = [""] * batch.num_rows
            by_field = [cells[p[0]] if p and len(p) == 1 else empty if not p else
                        [";".join(parts) for parts in zip(*(cells[i] for i in p))] for p in picks]
            not_text = [(f, i, rows) for f, p in zip(ALL_FIELDS, picks) for i in p or () if (rows := bad[i])]
            kept = ([tuple(zip(columns.keep, values)) for values in zip(*(cells[i] for i in kept_at))]
                    if kept_at else None)
            facts = ([[(name, text.strip()) for (name, _), text in zip(facts_at, values)]
                      for values in zip(*(cells[i] for _, i in facts_at))] if facts_at else None)
            for j, raw in enumerate(zip(*by_field)):
                found, problem = limited(raw)
                if not_text:
                    problem = _not_text(not_text, j, names) or problem
                texts_found: tuple[tuple[str, str], ...] | Problem = fact_texts(facts[j]) if facts else ()
                if isinstance(texts_found, Problem):
                    problem, texts_found = problem or texts_found, ()
                yield found, new_named_tuple(Origin, (file, row + j, "", headers, kept[j] if kept else (),
                                                      texts_found)), problem
            row += batch.num_rows
    except (pa.ArrowException, OSError) as error:
        which = "its rows" if row == FIRST_ROW else f"the rows after row {row - 1}"
        raise InputError(f"{path}: a damaged Parquet file: cannot read {which} ({_reason(error)})") from None


def _reason(error: Exception) -> str:
    """pyarrow's account of a damaged file, on one line."""
    return " ".join(str(error).split()).removesuffix(".")


def _not_text(bad: list[tuple[str, int, dict[int, str]]], row: int, names: list[str]) -> Problem | None:
    for field, column, rows in bad:
        if row in rows:
            return Problem(field=field, value=rows[row],
                           message=f"column `{names[column]}` holds bytes that are not UTF-8 text")
    return None


def text_rows(path: Path) -> Iterator[list[str]]:
    """Every row of any Parquet file (its column names first) as the text that the reader
    gives each value: what a CSV export of the file would hold."""
    table = _parquet_file(path)
    schema = table.schema_arrow
    yield list(schema.names)
    texts = [_text_of(f.type) for f in schema]
    for batch in table.iter_batches(batch_size=BATCH_ROWS):
        cells = [_column_texts(batch.column(i), text or str)[0] for i, text in enumerate(texts)]
        yield from map(list, zip(*cells))


# --- writing -------------------------------------------------------------------------------------


def _int_cell(text: str) -> int | None:
    return int(text) if text else None


def _money_cell(text: str) -> decimal.Decimal | None:
    return decimal.Decimal(text) if text else None


def _date_cell(text: str) -> datetime.date | None:
    return datetime.date.fromisoformat(text) if text else None


_TYPED: dict[str, tuple[str, Callable[[str], Any]]] = {
    "row": ("int64", _int_cell), "line": ("int64", _int_cell), "units": ("int64", _int_cell),
    "charge": ("money", _money_cell), "allowed": ("money", _money_cell), "date": ("date32", _date_cell),
}
"""The columns written typed, with how a CSV cell becomes their value (an empty cell: null)."""


def output_schema(keep: tuple[str, ...] = ()) -> Any:
    """The Arrow schema of `--format parquet`: the columns of `--format csv`, in its order,
    then a text column per id kept with `--keep`."""
    pa = _pyarrow()[0]
    kinds = {"int64": pa.int64(), "money": pa.decimal128(*MONEY), "date32": pa.date32()}
    return pa.schema([pa.field(name, kinds[_TYPED[name][0]] if name in _TYPED else pa.string(),
                               nullable=name in _TYPED) for name in CSV_COLUMNS]
                     + [pa.field(name, pa.string(), nullable=False) for name in keep])


class ParquetWriter(Writer):
    """One row per service line, judged or not, with the cells of `CsvWriter`: the text
    columns hold the same text (a value a spreadsheet would run as a formula keeps its
    leading `'`), and `row`, `line`, `units`, `charge`, `allowed` and `date` are typed, null
    where the CSV cell is empty. Rows are written in row groups of `ROW_GROUP_ROWS` as they
    come; `close` writes the footer. `sink` is a binary file, left open."""

    def __init__(self, sink: BinaryIO | Path, *, mask: Mask | None = None, keep: tuple[str, ...] = ()) -> None:
        # `out` holds the CSV text of the block being written; rows leave it at once.
        super().__init__(io.StringIO(), mask=mask, keep=keep)
        pa, pq, _ = _pyarrow()
        self._pa = pa
        self.schema = output_schema(keep)
        self._names = (*CSV_COLUMNS, *keep)
        self._file = pq.ParquetWriter(str(sink) if isinstance(sink, Path) else sink, self.schema, compression="snappy", version="2.6",
                                      use_dictionary=True, write_statistics=True)
        self._rows: list[list[str]] = []
        self._csv = CsvWriter(self.out, continued=True, keep=keep)  # blocks arrive here masked already

    def _write_block(self, block: Block) -> None:
        self._csv.block(block)
        self._add(self._take_text())

    def _take_text(self) -> str:
        assert isinstance(self.out, io.StringIO)
        text = self.out.getvalue()
        self.out.seek(0)
        self.out.truncate()
        return text

    def _add(self, text: str) -> None:
        """Rows of CSV text, as `CsvWriter` wrote them, into the next row group."""
        rows = list(csv.reader(io.StringIO(text, newline="")))
        width = len(self._names)
        assert all(len(r) == width for r in rows), "CsvWriter writes every column of every row"
        self._rows.extend(rows)
        while len(self._rows) >= ROW_GROUP_ROWS:
            self._flush(self._rows[:ROW_GROUP_ROWS])
            del self._rows[:ROW_GROUP_ROWS]

    def _flush(self, rows: Sequence[list[str]]) -> None:
        pa = self._pa
        arrays = []
        for i, (name, field, cells) in enumerate(zip(self._names, self.schema, zip(*rows))):
            typed = _TYPED.get(name) if i < len(CSV_COLUMNS) else None  # a kept id is text, whatever its name
            values = [typed[1](c) for c in cells] if typed else list(cells)
            arrays.append(pa.array(values, type=field.type))
        self._file.write_table(pa.Table.from_arrays(arrays, schema=self.schema), row_group_size=ROW_GROUP_ROWS)

    def close(self, summary: Summary) -> None:
        """Write the last row group and the footer (a file with no rows still has the columns)."""
        if self._rows:
            self._flush(self._rows)
            self._rows = []
        self._file.close()

    def continuation(self, out: TextIO) -> Writer:
        """A worker renders its part as CSV text; `extend` turns it into rows here, so the row
        groups, and so the bytes, do not depend on how the input was cut into parts."""
        return CsvWriter(out, continued=True, mask=self.mask, keep=self.keep)

    def extend(self, fragment: Fragment) -> None:
        self._add(fragment.text)
        self.held.extend(fragment.held)
        self.sessions += fragment.sessions
