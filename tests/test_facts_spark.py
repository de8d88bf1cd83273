"""`payrules.spark.judge` reads the fields a rule file declares from the frame's columns, as
`payrules check` reads them from a CSV file's (Spark in local mode, two cores)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("pyspark", reason="needs the spark extra")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.fail("the Spark tests need Java 17 (the CI image has it; .ci/run installs a JRE when it is missing)")

from pyspark.sql import SparkSession  # noqa: E402

from payrules.spark import judge  # noqa: E402

from test_facts import NPI_DC, PIP  # noqa: E402


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (SparkSession.builder.master("local[2]").appName("payrules-facts-tests")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
               .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true").getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def test_spark_frames_carry_declared_fields(spark: SparkSession, tmp_path: Path) -> None:
    (tmp_path / "rules.payer").write_text(PIP)
    rows = [["C1", "P3", "2024-03-16", "PIP", NPI_DC, "98941", "55.00", "2024-03-01"],
            ["A1", "P1", "2024-03-05", "PIP", NPI_DC, "98941", "55.00", "2024-03-01"],
            ["N1", "P4", "2024-03-05", "PIP", NPI_DC, "98941", "55.00", ""]]
    columns = ["session_id", "patient_id", "date", "payer", "provider_npi", "code", "charge", "Accident Date"]
    frame = spark.sparkContext.parallelize(rows, numSlices=2).toDF(columns)
    result = judge(frame, tmp_path / "rules.payer").toPandas()
    assert dict(zip(result["session_id"], result["status"])) == {"C1": "denied", "A1": "paid", "N1": "not judged"}
