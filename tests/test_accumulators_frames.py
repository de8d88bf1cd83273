"""Accumulators in the Dask and Spark adapters: the decisions of `payrules check --accumulators`,
line for line, with the figures checked on the driver before any job starts."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import sys
from collections.abc import Iterator
from typing import Any

import pytest

pandas = pytest.importorskip("pandas", reason="needs the dask extra")

from payrules import frames  # noqa: E402
from payrules.diagnostics import InputError  # noqa: E402

from conftest import transcript  # noqa: E402

RULES = "examples/accumulators/rules.payer"
VISITS = "examples/accumulators/visits.csv"
ACCUMULATORS = "examples/accumulators/accumulators.csv"
HISTORY = "examples/accumulators/history.csv"


def rows_of(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def cli_decisions() -> list[tuple[str, ...]]:
    """The CLI's decision cells in input order, with the figures cited as the adapters cite
    them: `<accumulators>` row N for the Nth row (the file's row N + 1, after its header)."""
    code, out, err = transcript(["check", VISITS, "--rules", RULES, "--accumulators", ACCUMULATORS,
                                 "--history", HISTORY, "--format", "csv"])
    assert code == 1 and err == ""
    found = []
    for row in csv.DictReader(io.StringIO(out)):
        cells = tuple(row[c] for c in frames.DECISION_COLUMNS)
        found.append(tuple(re.sub(re.escape(ACCUMULATORS) + r":(\d+)", lambda m: f"<accumulators>:{int(m[1]) - 1}",
                                  c) for c in cells))
    assert any("<accumulators>:1" in c for cells in found for c in cells)
    return found


def adapter_decisions(result: Any) -> list[tuple[str, ...]]:
    ordered = result.sort_values("row")
    return [tuple(r[c] for c in frames.DECISION_COLUMNS) for r in ordered.to_dict("records")]


def test_dask_counts_accumulators_like_check() -> None:
    dd = pytest.importorskip("dask.dataframe", reason="needs the dask extra")
    import dask

    from payrules.dask import judge

    lines = dd.from_pandas(pandas.read_csv(VISITS, dtype=str, keep_default_na=False), npartitions=3)
    history = dd.from_pandas(pandas.read_csv(HISTORY, dtype=str, keep_default_na=False), npartitions=2)
    with dask.config.set(scheduler="threads", num_workers=2):
        result = judge(lines, RULES, history=history, accumulators=rows_of(ACCUMULATORS)).compute()
    assert adapter_decisions(result) == cli_decisions()


def test_dask_refuses_bad_accumulators_before_any_job() -> None:
    dd = pytest.importorskip("dask.dataframe", reason="needs the dask extra")
    from payrules.dask import judge

    lines = dd.from_pandas(pandas.read_csv(VISITS, dtype=str, keep_default_na=False), npartitions=1)
    bad = [{**rows_of(ACCUMULATORS)[0], "rule": "visit"}]
    with pytest.raises(InputError, match=r"<accumulators>:1: rule: payer `PINE` has no rule named `visit`; "
                                         r"did you mean `visits`\?"):
        judge(lines, RULES, accumulators=bad)


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    pytest.importorskip("pyspark", reason="needs the spark extra")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.fail("the Spark tests need Java 17")
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (SparkSession.builder.master("local[2]").appName("payrules-accumulators")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
               .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true").getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def test_spark_counts_accumulators_like_check(spark: Any) -> None:
    from payrules.spark import judge

    def frame(path: str) -> Any:
        data = pandas.read_csv(path, dtype=str, keep_default_na=False)
        return spark.createDataFrame(data.values.tolist(), list(data.columns))

    result = judge(frame(VISITS), RULES, history=frame(HISTORY), accumulators=rows_of(ACCUMULATORS)).toPandas()
    assert adapter_decisions(result) == cli_decisions()
