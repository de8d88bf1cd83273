"""`payrules.dask.judge`: line for line the decisions of `payrules check --format csv`, however
the lines arrive split over partitions."""

from __future__ import annotations

import csv
import importlib.util
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("dask.dataframe", reason="needs the dask extra")
import dask  # noqa: E402
import dask.dataframe as dd  # noqa: E402
import pandas  # noqa: E402

from payrules import api, frames  # noqa: E402
from payrules.dask import judge  # noqa: E402

from conftest import ROOT  # noqa: E402

EXAMPLE = ROOT / "examples" / "spark-dask"
RULES = EXAMPLE / "rules.payer"
LINES = 22_000
_spec = importlib.util.spec_from_file_location("example_lines", EXAMPLE / "lines.py")
assert _spec is not None and _spec.loader is not None
example_lines = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(example_lines)


class Judged:
    """The generated input, as files and frames, and what `payrules check` made of it."""

    def __init__(self, folder: Path) -> None:
        found, history = example_lines.lines(LINES, 11)
        self.sessions, self.history_file = folder / "lines.csv", folder / "history.csv"
        example_lines.write(self.sessions, example_lines.HEADER, found)
        example_lines.write(self.history_file, example_lines.generate.HEADER, history)
        self.lines = pandas.DataFrame(found, columns=example_lines.HEADER, dtype=object)
        # The CLI's row number of each line: the header is row 1, and no cell holds a line break.
        self.lines["csv_row"] = range(2, len(found) + 2)
        self.history = pandas.DataFrame(history, columns=example_lines.generate.HEADER, dtype=object)
        out = folder / "decisions.csv"
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "payrules", "check", str(self.sessions), "--rules", str(RULES),
                               "--history", str(self.history_file), "--format", "csv", "-o", str(out)],
                              capture_output=True, text=True)
        self.cli_seconds = time.perf_counter() - started
        assert done.returncode == 1, done.stderr  # 1: some lines were not paid in full
        with open(out, newline="", encoding="utf-8") as stream:
            rows = list(csv.DictReader(stream))
        line_ids = dict(zip(self.lines["csv_row"], self.lines["line_id"]))
        self.cli = {line_ids[int(r["row"])]: tuple(r[c] for c in frames.DECISION_COLUMNS) for r in rows}
        assert len(self.cli) == len(rows) == len(found)


def decisions(result: pandas.DataFrame) -> dict[str, tuple[str, ...]]:
    assert result["line_id"].is_unique
    return {r["line_id"]: tuple(r[c] for c in frames.DECISION_COLUMNS) for r in result.to_dict("records")}


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> Judged:
    return Judged(tmp_path_factory.mktemp("dask"))


@pytest.fixture(autouse=True)
def _threads() -> Any:
    with dask.config.set(scheduler="threads", num_workers=2):
        yield


def test_generated_input_has_what_the_comparison_needs(judged: Judged) -> None:
    statuses = [d[DECISION.index("status")] for d in judged.cli.values()]
    assert len(judged.cli) >= 20_000
    assert {"paid", "reduced", "denied", "not judged"} <= set(statuses)
    assert statuses.count("not judged") >= 200
    rules = {d[DECISION.index("rules")] for d in judged.cli.values()}
    assert any("[massage-with-cmt]" in r for r in rules)  # a same-day rule fired
    assert any("[visits]" in r for r in rules) and any("[benefit]" in r for r in rules)  # period limits fired
    # The date-sorted input spreads patients: most have lines more than one partition apart.
    positions = judged.lines.groupby("patient_id").indices
    spread = sum(1 for p in positions.values() if p.max() - p.min() > len(judged.lines) // 23)
    assert spread > len(positions) // 2


DECISION = frames.DECISION_COLUMNS


def test_matches_check_line_for_line_with_history_over_many_partitions(judged: Judged) -> None:
    frame = dd.from_pandas(judged.lines, npartitions=23, sort=False)
    history = dd.from_pandas(judged.history, npartitions=5, sort=False)
    started = time.perf_counter()
    result = judge(frame, RULES, order="csv_row", ids=("line_id",), history=history).compute()
    seconds = time.perf_counter() - started
    assert list(result.columns) == ["line_id", "csv_row", *DECISION]
    assert len(result) == len(judged.lines)
    assert decisions(result) == judged.cli
    print(f"\ndask: {len(result):,} lines in {seconds:.1f} s (check: {judged.cli_seconds:.1f} s)")


def test_without_history_the_limits_count_less(judged: Judged) -> None:
    frame = dd.from_pandas(judged.lines, npartitions=23, sort=False)
    result = decisions(judge(frame, RULES, order="csv_row", ids=("line_id",)).compute())
    changed = [k for k in result if result[k] != judged.cli[k]]
    assert changed and any(judged.cli[k][DECISION.index("allowed")] != result[k][DECISION.index("allowed")]
                           or judged.cli[k][DECISION.index("status")] != result[k][DECISION.index("status")]
                           for k in changed)


def test_numbers_lines_in_frame_order_when_no_order_is_given(judged: Judged) -> None:
    lines = judged.lines.drop(columns=["csv_row"])
    frame = dd.from_pandas(lines, npartitions=17, sort=False)
    history = dd.from_pandas(judged.history, npartitions=3, sort=False)
    result = judge(frame, api.load(RULES), ids=("line_id",), history=history).compute()
    assert sorted(result["row"]) == list(range(1, len(lines) + 1))
    assert dict(zip(result["row"], result["line_id"])) == dict(zip(range(1, len(lines) + 1), lines["line_id"]))
    # A message that quotes a row quotes the frame's row, one less than the file's (its header).
    cli = {k: v[:-1] + (re.sub(r"\(row (\d+)\)", lambda m: f"(row {int(m[1]) - 1})", v[-1]),)
           for k, v in judged.cli.items()}
    assert decisions(result) == cli


def test_the_result_does_not_depend_on_partitions_or_shuffle(judged: Judged) -> None:
    shuffled = judged.lines.sample(frac=1.0, random_state=5)
    one = judge(dd.from_pandas(judged.lines, npartitions=1, sort=False), RULES, order="csv_row",
                ids=("line_id",), npartitions=1).compute()
    many = judge(dd.from_pandas(shuffled, npartitions=31, sort=False), RULES, order="csv_row",
                 ids=("line_id",), npartitions=7).compute()
    assert decisions(one) == decisions(many)


def test_typed_columns_are_read_as_their_text() -> None:
    lines = pandas.DataFrame({
        "Session ID": ["S1", "S1"], "patient-id": ["P1", "P1"], "date": ["2024-03-04", "2024-03-04"],
        "payer": ["BENCH", "BENCH"], "provider_npi": [1234567893, 1234567893], "provider_credential": ["DC", "DC"],
        "code": ["98940", "97140"], "modifiers": [None, "59"], "units": [1, 2], "minutes": pandas.array([None, 30], dtype="Int64"),
        "charge": [45.0, 70], "claim": [10, 11]})
    result = judge(dd.from_pandas(lines, npartitions=2, sort=False), RULES, ids=("claim",)).compute()
    rows = result.sort_values("row").to_dict("records")
    assert [(r["claim"], r["code"], r["units"], r["charge"], r["allowed"], r["status"]) for r in rows] == [
        (10, "98940", "1", "45.00", "45.00", "paid"), (11, "97140", "2", "70.00", "45.00", "reduced")]
    assert rows[1]["rules"].endswith("rules.payer:10 [session-cap]")
    # A float cell keeps its text: minutes 30.0 is not a whole number, and the line says so.
    lines["minutes"] = [None, 30.5]
    rows = judge(dd.from_pandas(lines, npartitions=1), RULES).compute().sort_values("row").to_dict("records")
    assert rows[1]["status"] == "not judged"
    assert rows[1]["reasons"] == "minutes: expected a whole number of minutes, found `30.5`"


def test_a_bad_history_line_leaves_its_patient_unjudged_and_says_why() -> None:
    row = ["S1", "P1", "2024-03-04", "BENCH", "1234567893", "DC", "98940", "", "1", "", "45.00", "", ""]
    lines = pandas.DataFrame([row, ["S2", "P2", *row[2:]]], columns=example_lines.generate.HEADER)
    bad = pandas.DataFrame([["H1", "P1", "2024-03-01", "BENCH", "1234567890", *row[5:]]],
                           columns=example_lines.generate.HEADER)
    result = judge(dd.from_pandas(lines, npartitions=1), RULES, history=dd.from_pandas(bad, npartitions=1)).compute()
    rows = result.sort_values("row").to_dict("records")
    assert rows[0]["status"] == "not judged"
    assert rows[0]["reasons"] == ("history: history <history>:1: provider_npi: `1234567890` fails the NPI check "
                                  "digit; history records must be valid")
    assert rows[1]["status"] == "paid"


@pytest.mark.parametrize(("columns", "kwargs"), [
    (["session_id", "date", "payer", "provider_npi", "code"], {}),
    (example_lines.generate.HEADER, {"order": "line_no"}),
    ([*example_lines.generate.HEADER, "reasons"], {"ids": ("reasons",)}),
    ([*example_lines.generate.HEADER, "row"], {}),
], ids=["missing-fields", "missing-order", "id-overwritten", "row-taken"])
def test_a_frame_that_cannot_be_judged_is_refused_before_any_work(columns: list[str], kwargs: dict[str, Any],
                                                                   text_snapshot: Any) -> None:
    frame = dd.from_pandas(pandas.DataFrame(columns=columns, dtype=object), npartitions=1)
    with pytest.raises(ValueError) as error:
        judge(frame, RULES, **kwargs)
    assert str(error.value) == text_snapshot


def test_importing_payrules_does_not_import_the_engines() -> None:
    code = "import sys, payrules, payrules.api, payrules.frames; print(sorted(m for m in ('dask', 'pandas', 'pyspark') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
