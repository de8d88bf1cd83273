"""A Spark DataFrame of service lines + rules → a DataFrame of `check --format csv` decisions.

    from payrules.spark import judge
    decisions = judge(lines, "payers/", ids=("claim_line_id",))

Lines are grouped by patient (`groupBy(...).applyInPandas`), so that no same-day rule or limit
over a period ever sees half a patient, and each group is judged by `payrules.frames`: the
reader, runner and CSV writer of `payrules check`. Needs the `spark` extra.
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
"""A Spark DataFrame."""
Column = Any


__all__ = ["ORDER", "judge"]

ORDER = frames.ORDER

_FIELD = frames.FIELD_PREFIX
_FIRST = frames.FIRST_PATIENT


def judge(frame: DataFrame, rules: RuleSet | str | Path, *, order: str | None = None,
          ids: Sequence[str] = (), history: DataFrame | None = None,
          accumulators: Iterable[Mapping[str, Any]] | Accumulators | None = None) -> DataFrame:
    """Judge every line of `frame` (columns named as the CSV's, matched ignoring case, spaces
    and dashes) with `rules` (a rule file, a folder of them, or a loaded `RuleSet`).

    Returns one row per input line: the `ids` columns as given, the `order` column (added as
    `row` when not given) and the text cells of `payrules check --format csv` from
    `session_id` to `reasons`. A line that cannot be judged comes back with status
    `not judged` and why. `history` holds earlier lines (same columns), counted by same-day
    rules and limits over periods but not judged. `accumulators` are rows (dicts with the fields
    of an accumulators file) of what the payer has already counted of each named limit,
    checked here before any job starts (`InputError` listing every problem).

    `order` names a column that gives each line's position within its session and the order
    of a patient's sessions on one day, as the rows of a CSV file would; a message that quotes
    a row quotes this value. Without it the frame's own order is used, which must then be the
    same each time the frame is computed (read from files, or cached).
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
    inner = frames.Layout(tuple(f"{_FIELD}{f}" if c is not None else None for f, c in zip(ALL_FIELDS, lay.fields)),
                          order, lay.ids, tuple((name, f"{_FIELD}{name}") for name, _ in lay.facts))
    lines = _prepared(frame, lay)
    schema = _schema(frame, lay)
    if history is None:
        def judge_group(group: PandasFrame) -> PandasFrame:
            return _plain(frames.judge_frame(group, frames.rebuilt(texts), inner, accumulators=used))

        return lines.groupBy(frames.KEY).applyInPandas(judge_group, schema)
    past_order = order if order in history.columns else None
    if past_order is None:
        history = _numbered(history)
        past_order = ORDER
    past_lay = frames.layout(history.columns, past_order, (), declared=frames.declared(texts))
    past_inner = frames.Layout(tuple(f"{_FIELD}{f}" if c is not None else None
                                     for f, c in zip(ALL_FIELDS, past_lay.fields)), past_order, (),
                               tuple((name, f"{_FIELD}{name}") for name, _ in past_lay.facts))
    past = _prepared(history, past_lay)

    def judge_with_history(group: PandasFrame, earlier: PandasFrame) -> PandasFrame:
        if not len(group):
            return _plain(frames.empty_result(group, inner))
        return _plain(frames.judge_frame(group, frames.rebuilt(texts), inner, earlier, past_inner, used))

    return lines.groupBy(frames.KEY).cogroup(past.groupBy(frames.KEY)).applyInPandas(judge_with_history, schema)


def _plain(result: PandasFrame) -> PandasFrame:
    """Text columns as Python strings: pandas 3 gives text an Arrow-backed dtype, which
    PySpark 4 cannot yet hand back to the JVM."""
    import pandas  # type: ignore[import-untyped, import-not-found, unused-ignore]

    text = [c for c, dtype in result.dtypes.items() if isinstance(dtype, pandas.StringDtype)]
    return result.astype(dict.fromkeys(text, object)) if text else result


def _numbered(frame: DataFrame) -> DataFrame:
    """`frame` with `ORDER`: 1, 2, 3... in partition order, as `RDD.zipWithIndex` numbers rows,
    but in the JVM: one small job counts the rows of each partition."""
    from pyspark.sql import functions as F  # type: ignore[import-not-found, unused-ignore]

    numbered = frame.withColumn("_payrules_part", F.spark_partition_id()) \
        .withColumn("_payrules_id", F.monotonically_increasing_id())
    counts = sorted((row[0], row[1]) for row in numbered.groupBy("_payrules_part").count().collect())
    start, offsets = 1, []
    for part, count in counts:
        offsets += [F.lit(part), F.lit(start)]
        start += count
    first = F.create_map(*offsets)[F.col("_payrules_part")] if offsets else F.lit(1)
    # monotonically_increasing_id is the partition id in the upper 31 bits and the row within it below.
    within = F.col("_payrules_id") - F.shiftleft(F.col("_payrules_part").cast("long"), 33)
    return numbered.withColumn(ORDER, (first + within).cast("long")).drop("_payrules_part", "_payrules_id")


def _prepared(frame: DataFrame, lay: frames.Layout) -> DataFrame:
    """The ids and order as given, each field as text in its own column, and the patient key."""
    from pyspark.sql import functions as F  # type: ignore[import-not-found, unused-ignore]

    fields = [F.col(f"`{c}`").cast("string").alias(f"{_FIELD}{f}")
              for f, c in [*zip(ALL_FIELDS, lay.fields), *lay.facts] if c is not None]
    keep = [F.col(f"`{c}`") for c in dict.fromkeys((*lay.ids, lay.order))]
    patient, session = lay.fields[ALL_FIELDS.index("patient_id")], lay.fields[ALL_FIELDS.index("session_id")]
    assert patient is not None and session is not None
    prepared = frame.select(*keep, *fields, _patient_key(F.col(f"`{patient}`")).alias(frames.PATIENT),
                            _patient_key(F.col(f"`{session}`")).alias(frames.SESSION))
    # Each session's first patient by line order (see `frames.owner`); ties by patient id.
    firsts = prepared.where((F.col(frames.SESSION) != "") & (F.col(frames.PATIENT) != "")) \
        .groupBy(frames.SESSION).agg(F.min(F.struct(F.col(f"`{lay.order}`"), F.col(frames.PATIENT)))
                                     .getField(frames.PATIENT).alias(_FIRST))
    owner = F.when((F.col(frames.SESSION) != "") & F.col(_FIRST).isNotNull(), F.col(_FIRST)) \
        .otherwise(F.col(frames.PATIENT))
    return prepared.join(firsts, frames.SESSION, "left").withColumn(frames.KEY, owner).drop(_FIRST)


def _patient_key(column: Column) -> Column:
    """The patient id as the reader groups it: with exactly `str.strip`'s whitespace trimmed."""
    from pyspark.sql import functions as F  # type: ignore[import-not-found, unused-ignore]

    space = "".join(f"\\u{ord(c):04x}" for c in frames.WHITESPACE)
    return F.coalesce(F.regexp_replace(column.cast("string"), f"^[{space}]+|[{space}]+$", ""), F.lit(""))


def _schema(frame: DataFrame, lay: frames.Layout) -> Any:
    from pyspark.sql import types as T  # type: ignore[import-not-found, unused-ignore]

    given = {f.name: f for f in frame.schema.fields}
    kept = [given[c] for c in lay.output if c not in frames.DECISION_COLUMNS]
    return T.StructType([*kept, *(T.StructField(c, T.StringType(), False) for c in frames.DECISION_COLUMNS)])
