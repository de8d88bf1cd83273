"""`payrules.spark.judge`: line for line the decisions of `payrules check --format csv`, however
the lines arrive split over partitions (Spark in local mode, two cores)."""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("pyspark", reason="needs the spark extra")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.fail("the Spark tests need Java 17 (the CI image has it; .ci/run installs a JRE when it is missing)")

from pyspark.sql import SparkSession  # noqa: E402

from payrules import frames  # noqa: E402
from payrules.spark import judge  # noqa: E402

from test_dask import RULES, Judged, decisions, example_lines  # noqa: E402

DECISION = frames.DECISION_COLUMNS


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    os.environ["PYSPARK_PYTHON"] = sys.executable  # the workers run this interpreter, with payrules
    session = (SparkSession.builder.master("local[2]").appName("payrules-tests")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "4")
               .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true").getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> Judged:
    return Judged(tmp_path_factory.mktemp("spark"))


def frame(spark: SparkSession, rows: list[list[Any]], columns: list[str], partitions: int) -> Any:
    """A DataFrame of `rows` in this order, cut into `partitions` stretches."""
    return spark.sparkContext.parallelize(rows, numSlices=partitions).toDF(columns)


def test_matches_check_line_for_line_with_history_over_many_partitions(spark: SparkSession, judged: Judged) -> None:
    rows = judged.lines.values.tolist()
    lines = frame(spark, rows, list(judged.lines.columns), 23)
    history = frame(spark, judged.history.values.tolist(), list(judged.history.columns), 5)
    started = time.perf_counter()
    result = judge(lines, RULES, order="csv_row", ids=("line_id",), history=history).toPandas()
    seconds = time.perf_counter() - started
    assert list(result.columns) == ["line_id", "csv_row", *DECISION]
    assert len(result) == len(rows)
    assert decisions(result) == judged.cli
    print(f"\nspark: {len(result):,} lines in {seconds:.1f} s (check: {judged.cli_seconds:.1f} s)")


def test_numbers_lines_in_frame_order_when_no_order_is_given(spark: SparkSession, judged: Judged) -> None:
    lines = judged.lines.drop(columns=["csv_row"])
    data = frame(spark, lines.values.tolist(), list(lines.columns), 17)
    history = frame(spark, judged.history.values.tolist(), list(judged.history.columns), 3)
    result = judge(data, RULES, ids=("line_id",), history=history).toPandas()
    assert dict(zip(result["row"], result["line_id"])) == dict(zip(range(1, len(lines) + 1), lines["line_id"]))
    # A message that quotes a row quotes the frame's row, one less than the file's (its header).
    cli = {k: v[:-1] + (re.sub(r"\(row (\d+)\)", lambda m: f"(row {int(m[1]) - 1})", v[-1]),)
           for k, v in judged.cli.items()}
    assert decisions(result) == cli


def test_a_frame_that_cannot_be_judged_is_refused_before_any_job(spark: SparkSession) -> None:
    data = spark.createDataFrame([("S1", "2024-03-04")], "session_id string, date string")
    with pytest.raises(ValueError, match=r"^the frame has no columns `patient_id`, `payer`, `provider_npi`, "
                                         r"`code`, `charge`; its columns are `session_id`, `date`$"):
        judge(data, RULES)
    header = example_lines.generate.HEADER
    with pytest.raises(ValueError, match="^column `status` would be overwritten"):
        judge(spark.createDataFrame([["x"] * (len(header) + 1)], [*header, "status"]), RULES, ids=("status",))
