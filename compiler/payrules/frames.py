"""pandas lines of whole patients + a `RuleSet` → one row of `check --format csv` cells per line.

The shared core of the Spark and Dask adapters (`payrules.spark`, `payrules.dask`): each hands
it the lines of whole patients, and it reads them as the CSV reader does, judges them with the
runner `payrules check` uses, and renders them with the CSV writer. pandas is imported only
where a frame is built, so that `import payrules` never needs it.
"""

from __future__ import annotations

import csv
import functools
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from payrules.accumulators import Accumulators
from payrules.api import RuleSet, load
from payrules.compiler import Policy, policy_from_python
from payrules.fields import (
    ALL_FIELDS,
    REQUIRED_FIELDS,
    Problem,
    RecordError,
    _Grouper,
    clean,
    fact_texts,
    field_name,
    limited,
    new_named_tuple,
)
from payrules.judging import History, declared_fields, history_index
from payrules.render import CSV_COLUMNS, CsvWriter
from payrules.runner import Block, judge_batch, policies_by_payer
from payrules.runtime import Origin

PandasFrame = Any
"""A pandas DataFrame (typed loosely: pandas is an optional dependency, without stubs)."""
PandasSeries = Any



DECISION_COLUMNS = CSV_COLUMNS[2:]
"""The cells of `check --format csv` after `file` and `row`, which a frame has no use for: the
caller's id columns and the line-order column say where a line came from."""

SOURCE, HISTORY = "<frame>", "<history>"
"""The file names of a frame's lines and of its history lines, as a message may quote them."""

ORDER = "row"
"""The line-order column an adapter adds when the caller names none: the line's 1-based
position in the frame as given (partition by partition), before any shuffle."""

FIELD_PREFIX = "_payrules_field_"
"""Prefix of the adapters' working copy of each field's column, as text."""

FIRST_PATIENT = "_payrules_first_patient"
"""The adapters' working column: the patient of a session's first line that names one."""

KEY = "_payrules_patient"
"""The partition key the adapters add: the patient of the line's session (see `owner`)."""

SESSION, PATIENT = "_payrules_session", "_payrules_own_patient"
"""The session id and the patient id as the reader compares them (see `patient_key`)."""

WHITESPACE = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())
"""Exactly what `fields.clean` (str.strip) removes, for engines that trim in their own language."""


def patient_key(text: Any) -> str:
    """The patient a line belongs to, as the reader groups lines (see `fields.clean`)."""
    return clean(cell(text))


def owner(session: str, patient: str, first_patient: str | None) -> str:
    """The group a line is judged in: the patient of its session's first line that names one.

    A session's lines must share one patient; `payrules check` judges a session with the patient
    of its first line and rejects its lines that name another, saying so. Grouping lines by
    their session's patient keeps such a session whole, so that the rejection and the line
    numbers are the same; a line without a session id stays with its own patient."""
    return first_patient if session and first_patient is not None else patient


def cell(value: Any) -> str:
    """A frame value as the text a CSV cell would hold: missing values are empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, str):
        return value
    text = str(value)
    return "" if text in ("<NA>", "NaT") else text


# --- columns ---------------------------------------------------------------------------------


@attrs.frozen
class Layout:
    """Which frame column feeds each session field, the line-order column, and the id columns."""

    fields: tuple[str | None, ...]
    """The frame column of each field in `ALL_FIELDS` order; None when the frame has none."""
    order: str
    ids: tuple[str, ...]
    facts: tuple[tuple[str, str], ...] = ()
    """(declared field, frame column) of each field a rule file declares that the frame has."""

    @property
    def output(self) -> tuple[str, ...]:
        """The columns of the result: ids, the order column unless it is an id, decisions."""
        return (*self.ids, *(() if self.order in self.ids else (self.order,)), *DECISION_COLUMNS)


def layout(columns: Sequence[str], order: str, ids: Sequence[str], *, order_added: bool = False,
           declared: Sequence[str] = ()) -> Layout:
    """Match a frame's columns to the fields as CSV headers are matched (case, spaces and dashes
    do not matter); ValueError, worded, when a required field, the order or an id column is
    missing or an id column would be overwritten by a decision column; `order_added` when the
    adapter adds the order column itself."""
    by_field: dict[str, str] = {}
    for name in columns:
        by_field.setdefault(field_name(name), name)
    fields = tuple(by_field.get(f) for f in ALL_FIELDS)
    missing = [f for f, c in zip(ALL_FIELDS, fields) if c is None and f in REQUIRED_FIELDS]
    if missing:
        raise ValueError(f"the frame has no column{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(f'`{m}`' for m in missing)}; its columns are "
                         f"{', '.join(f'`{c}`' for c in columns)}")
    for name in (*(() if order_added else (order,)), *ids):
        if name not in columns:
            raise ValueError(f"the frame has no column `{name}`; its columns are "
                             f"{', '.join(f'`{c}`' for c in columns)}")
    clash = [name for name in (order, *ids) if name in DECISION_COLUMNS or name == KEY]
    if clash:
        raise ValueError(f"column `{clash[0]}` would be overwritten by a decision column of the result "
                         f"({', '.join(DECISION_COLUMNS)}); rename it before judging")
    facts = tuple((name, by_field[name]) for name in declared if name in by_field)
    return Layout(fields, order, tuple(dict.fromkeys(ids)), facts)


# --- rules, shipped to workers as their generated Python -------------------------------------


def policy_texts(rules: RuleSet | str | Path) -> tuple[str, ...]:
    """The generated Python of each policy: what a worker needs to rebuild the rules, in a
    form that pickles (compiled functions do not). A path is compiled here, on the driver, so
    that a rule file with errors raises `CompileError` before any job starts."""
    ruleset = rules if isinstance(rules, RuleSet) else load(rules)
    return tuple(p.python for found in ruleset.policies.values() for p in found)


def accumulated(texts: tuple[str, ...], rows: Iterable[Mapping[str, Any]] | Accumulators | None
                ) -> Accumulators | None:
    """Accumulator rows (dicts with the fields of an accumulators file) checked on the driver
    against the rules of `policy_texts`, before any job starts (`InputError` listing every
    problem); the result pickles, and finds its figures in the rules each worker rebuilds."""
    if rows is None or isinstance(rows, Accumulators):
        return rows
    return rebuilt(texts).accumulators(rows) or None


def declared(texts: tuple[str, ...]) -> tuple[str, ...]:
    """The fields the rule files of `policy_texts` declare, read from the frame's columns."""
    return declared_fields(p for found in rebuilt(texts).policies.values() for p in found)


@functools.lru_cache(maxsize=8)
def rebuilt(texts: tuple[str, ...]) -> RuleSet:
    """The rule set of `policy_texts`, compiled once per worker process."""
    policies: list[Policy] = [policy_from_python(python) for python in texts]
    return RuleSet(policies_by_payer(policies))


# --- one group of whole patients → decision rows -----------------------------------------------


def _records(frame: PandasFrame, fields: Sequence[str | None], rows: Iterable[int],
             source: str = SOURCE, facts: Sequence[tuple[str, str]] = ()) -> list[tuple[Sequence[str], Origin, Any]]:
    """The reader's records of a frame's lines (see `records._csv_records`): every field as
    text, too-long fields emptied, located as `<frame>` row N (N from `rows`), with the text of
    the declared fields `facts` (field, column)."""
    empty = [""] * len(frame)
    columns = [[cell(v) for v in frame[c].tolist()] if c is not None else empty for c in fields]
    fact_columns = [[cell(v) for v in frame[c].tolist()] for _, c in facts]
    names = [name for name, _ in facts]
    found = []
    for k, (raw, row) in enumerate(zip(zip(*columns), rows)):
        text, problem = limited(raw)
        given: tuple[tuple[str, str], ...] | Problem = ()
        if facts:
            given = fact_texts([(name, clean(values[k])) for name, values in zip(names, fact_columns)])
            if isinstance(given, Problem):
                problem, given = problem or given, ()
        found.append((text, new_named_tuple(Origin, (source, row, "", None, (), given)), problem))
    return found


def _ordered(frame: PandasFrame, order: str, fields: Sequence[str | None]) -> PandasFrame:
    """The lines in line order; equal order values fall back to the lines' text, so that the
    result never depends on how a shuffle delivered them."""
    values = frame[order].tolist()
    texts = [[cell(v) for v in frame[c].tolist()] for c in fields if c is not None and c != order]
    keys = [(order_key(value), *rest) for value, *rest in zip(values, *texts)]
    return frame.iloc[sorted(range(len(frame)), key=keys.__getitem__)]


def order_key(value: Any) -> tuple[int, Any]:
    """How line-order values sort: numbers by value, then any other value by its text, then
    missing values."""
    text = cell(value)
    if text == "":
        return (2, "")
    if isinstance(value, (int, float)):
        return (0, value)
    return (1, text)


def _row(value: Any) -> int:
    """The row number a message gives for a line: its line-order value when it is a whole
    number, else 0."""
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return 0


def history_of(frame: PandasFrame | None, lay: Layout) -> History | None:
    """Earlier lines of the group's patients (see `judging.History`), located as `<history>`
    row N by their order column; `HistoryError` when one is bad."""
    if frame is None or not len(frame):
        return None
    frame = _ordered(frame, lay.order, lay.fields)
    grouper = _Grouper()
    for raw, origin, problem in _records(frame, lay.fields, map(_row, frame[lay.order].tolist()), HISTORY,
                                         lay.facts):
        grouper.add(raw, origin, problem)
    try:
        return history_index(grouper.take())
    except ValueError as error:
        raise HistoryError(str(error)) from None


def judge_frame(frame: PandasFrame, rules: RuleSet, lay: Layout,
                history: PandasFrame | None = None, history_layout: Layout | None = None,
                accumulators: Accumulators | None = None) -> PandasFrame:
    """Judge the lines of whole patients: one row per line, with the caller's id columns, the
    order column and the text of `check --format csv`'s decision cells.

    `history` holds earlier lines of the same patients (columns matched as `history_layout`).
    A bad history line cannot be counted, and a limit must not silently miss it, so the
    lines of the group are then not judged and each says why. `accumulators` (see
    `accumulated`) are the payer's figures of limits already used.
    """
    import pandas  # type: ignore[import-untyped, import-not-found, unused-ignore]

    frame = _ordered(frame, lay.order, lay.fields)
    records = _records(frame, lay.fields, map(_row, frame[lay.order].tolist()), facts=lay.facts)
    grouper = _Grouper()
    for raw, origin, problem in records:
        grouper.add(raw, origin, problem)
    batch = grouper.take()
    try:
        block = judge_batch(batch, rules.policies, history_of(history, history_layout or lay), accumulators)
    except HistoryError as error:
        block = _refused(records, str(error))
    out = io.StringIO()
    CsvWriter(out, continued=True).block(block)
    # The writer's rows come in the block's order: each session's lines, then the errors.
    origins = [line.input.origin for s in block.sessions for line in s.lines] + [e.origin for e in block.errors]
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert len(rows) == len(origins) == len(records), "every line is judged or rejected exactly once"
    position = {id(origin): i for i, (_, origin, _) in enumerate(records)}
    cells: list[list[str]] = [[]] * len(records)
    for origin, row in zip(origins, rows):
        cells[position[id(origin)]] = row[2:]
    result = frame[[c for c in lay.output if c not in DECISION_COLUMNS]].reset_index(drop=True)
    decided = pandas.DataFrame(cells, columns=list(DECISION_COLUMNS), dtype=object)
    return pandas.concat([result, decided], axis=1)


class HistoryError(ValueError):
    """History lines that cannot be counted."""


def _refused(records: Sequence[tuple[Sequence[str], Origin, Any]], message: str) -> Block:
    """Every line of the group as not judged, because its history could not be read."""
    errors = tuple(RecordError(origin=origin, session_id=clean(raw[0]) or None, line=None, code=None,
                               problems=(Problem(field="history", value="", message=message),))
                   for raw, origin, _ in records)
    return Block(sessions=(), errors=errors, lines_read=len(records))


def empty_result(frame: PandasFrame, lay: Layout) -> PandasFrame:
    """A result with no rows, of the right columns (for engines that need its shape)."""
    import pandas  # type: ignore[import-untyped, import-not-found, unused-ignore]

    result = frame[[c for c in lay.output if c not in DECISION_COLUMNS]].iloc[:0].reset_index(drop=True)
    return pandas.concat([result, pandas.DataFrame(columns=list(DECISION_COLUMNS), dtype=object)], axis=1)
