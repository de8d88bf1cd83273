"""A Dask DataFrame of service lines + rules → a DataFrame of `check --format csv` decisions.

    from payrules.dask import judge
    decisions = judge(lines, "payers/", ids=("claim_line_id",))

Lines are shuffled by patient and judged partition by partition, one patient at a time, by
`payrules.frames`: the reader, runner and CSV writer of `payrules check`. Needs the `dask` extra.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from payrules import frames
from payrules.accumulators import Accumulators
from payrules.api import RuleSet
from payrules.fields import ALL_FIELDS

PandasFrame = frames.PandasFrame
PandasSeries = frames.PandasSeries
DataFrame = Any
"""A Dask DataFrame."""


__all__ = ["ORDER", "judge"]

ORDER = frames.ORDER

_FIELD = frames.FIELD_PREFIX
_FIRST = frames.FIRST_PATIENT


def judge(frame: DataFrame, rules: RuleSet | str | Path, *, order: str | None = None,
          ids: Sequence[str] = (), history: DataFrame | None = None,
          npartitions: int | None = None,
          accumulators: Iterable[Mapping[str, Any]] | Accumulators | None = None) -> DataFrame:
    """Judge every line of `frame` (columns named as the CSV's, matched ignoring case, spaces
    and dashes) with `rules` (a rule file, a folder of them, or a loaded `RuleSet`).

    Returns one row per input line: the `ids` columns as given, the `order` column (added as
    `row` when not given) and the text cells of `payrules check --format csv` from
    `session_id` to `reasons`. A line that cannot be judged comes back with status
    `not judged` and why. `history` holds earlier lines (same columns), counted by same-day
    rules and limits over periods but not judged. `npartitions` is how many partitions the
    shuffle by patient makes (default: as many as `frame` has). `accumulators` are rows (dicts
    with the fields of an accumulators file) of what the payer has already counted of each
    named limit, checked here before any job starts (`InputError` listing every problem).

    `order` names a column that gives each line's position within its session and the order
    of a patient's sessions on one day, as the rows of a CSV file would; a message that quotes
    a row quotes this value. Without it the frame's own order is used.
    """
    texts = frames.policy_texts(rules)
    used = frames.accumulated(texts, accumulators)
    ids = tuple(ids)
    added = order is None
    if added and ORDER in frame.columns:
        raise ValueError(f"the frame already has a column `{ORDER}`; name it with order=\"{ORDER}\" "
                         "if it gives the line order, or rename it")
    order = order or ORDER
    lay = frames.layout(list(frame.columns), order, ids, order_added=added, declared=frames.declared(texts))
    if added:
        frame = _numbered(frame)
    inner = _inner(lay)
    parts = npartitions or frame.npartitions
    lines = _prepared(frame, lay).shuffle(frames.KEY, npartitions=parts)
    meta = _meta(frame, lay)
    if history is None:
        return lines.map_partitions(_judge_partition, texts, inner, meta=meta, accumulators=used)
    past_order = order if order in history.columns else None
    if past_order is None:
        history = _numbered(history)
        past_order = ORDER
    past_lay = frames.layout(list(history.columns), past_order, (), declared=frames.declared(texts))
    # The same key, hash and partition count put a patient's history beside its lines.
    past = _prepared(history, past_lay).shuffle(frames.KEY, npartitions=parts)
    return lines.map_partitions(_judge_partition, texts, inner, past, _inner(past_lay), meta=meta,
                                align_dataframes=False, accumulators=used)


def _inner(lay: frames.Layout) -> frames.Layout:
    return frames.Layout(tuple(f"{_FIELD}{f}" if c is not None else None for f, c in zip(ALL_FIELDS, lay.fields)),
                         lay.order, lay.ids, tuple((name, f"{_FIELD}{name}") for name, _ in lay.facts))


def _judge_partition(part: PandasFrame, texts: tuple[str, ...], lay: frames.Layout,
                     history: PandasFrame | None = None,
                     history_layout: frames.Layout | None = None,
                     accumulators: Accumulators | None = None) -> PandasFrame:
    """Judge a partition one patient at a time, in patient order: a patient's result never
    depends on which other patients share its partition."""
    import pandas  # type: ignore[import-untyped, import-not-found, unused-ignore]

    rules = frames.rebuilt(texts)
    earlier = dict(iter(history.groupby(frames.KEY, sort=False))) if history is not None else {}
    results = [frames.judge_frame(group, rules, lay, earlier.get(key), history_layout, accumulators)
               for key, group in part.groupby(frames.KEY, sort=True)]
    if not results:
        return frames.empty_result(part, lay)
    return pandas.concat(results, ignore_index=True)


def _numbered(frame: DataFrame) -> DataFrame:
    """`frame` with `ORDER`: 1, 2, 3... in partition order (a running sum, before any shuffle)."""
    return frame.assign(**{ORDER: 1}).assign(**{ORDER: lambda f: f[ORDER].cumsum()})


def _prepared(frame: DataFrame, lay: frames.Layout) -> DataFrame:
    """The ids and order as given, each field as text in its own column, and the patient key."""
    keep = list(dict.fromkeys((*lay.ids, lay.order)))
    fields = [(f, c) for f, c in zip(ALL_FIELDS, lay.fields) if c is not None] + list(lay.facts)
    patient, session = lay.fields[ALL_FIELDS.index("patient_id")], lay.fields[ALL_FIELDS.index("session_id")]

    def prepare(part: PandasFrame) -> PandasFrame:
        out = part[keep].copy()
        for field, column in fields:
            out[f"{_FIELD}{field}"] = pandas_text(part[column])
        out[frames.PATIENT] = [frames.patient_key(v) for v in part[patient].tolist()]
        out[frames.SESSION] = [frames.patient_key(v) for v in part[session].tolist()]
        return out

    meta = frame._meta[keep].copy()
    for field, _ in fields:
        meta[f"{_FIELD}{field}"] = pandas_text(frame._meta[keep[0]].iloc[:0])
    for name in (frames.PATIENT, frames.SESSION):
        meta[name] = pandas_text(frame._meta[keep[0]].iloc[:0])
    prepared = frame.map_partitions(prepare, meta=meta)
    # Each session's first patient (by line order), found per partition, then over all of them.
    firsts = prepared[[frames.SESSION, frames.PATIENT, lay.order]].map_partitions(_firsts, lay.order) \
        .shuffle(frames.SESSION).map_partitions(_firsts, lay.order)
    firsts = firsts[[frames.SESSION, frames.PATIENT]].rename(columns={frames.PATIENT: _FIRST})
    joined = prepared.merge(firsts, on=frames.SESSION, how="left")

    def keyed(part: PandasFrame) -> PandasFrame:
        part = part.copy()
        part[frames.KEY] = [frames.owner(s, p, f if isinstance(f, str) else None) for s, p, f in
                            zip(part[frames.SESSION].tolist(), part[frames.PATIENT].tolist(), part[_FIRST].tolist())]
        return part.drop(columns=[_FIRST])

    meta = meta.copy()
    meta[frames.KEY] = meta[frames.PATIENT]
    return joined.map_partitions(keyed, meta=meta)


def _firsts(part: PandasFrame, order: str) -> PandasFrame:
    """The first line (by order, then patient) of each session that names a session and a patient."""
    named = part[(part[frames.SESSION] != "") & (part[frames.PATIENT] != "")]
    keys = [(frames.order_key(o), p) for o, p in zip(named[order].tolist(), named[frames.PATIENT].tolist())]
    ranked = named.iloc[sorted(range(len(named)), key=keys.__getitem__)]
    return ranked.drop_duplicates(frames.SESSION, keep="first")


def pandas_text(column: PandasSeries) -> PandasSeries:
    """A column as the text of CSV cells (see `frames.cell`), with an object dtype."""
    import pandas  # type: ignore[import-untyped, import-not-found, unused-ignore]

    return pandas.Series([frames.cell(v) for v in column.tolist()], index=column.index, dtype=object)


def _meta(frame: DataFrame, lay: frames.Layout) -> Any:
    import pandas  # type: ignore[import-untyped, import-not-found, unused-ignore]

    kept = frame._meta[[c for c in lay.output if c not in frames.DECISION_COLUMNS]]
    return pandas.concat([kept, pandas.DataFrame(columns=list(frames.DECISION_COLUMNS), dtype=object)], axis=1)
