"""Input not grouped by patient: cut into buckets by patient, spilled to disk, judged bucket by
bucket and merged into exactly the output one process writes from the whole input."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payrules import api, render, workers
from payrules.runner import Tally

from conftest import ROOT, transcript
from ungrouped_rows import CHANGES, arranged, generated_rows

RULES = str(ROOT / "benchmarks" / "reference.payer")
FORMATS = ("text", "json", "jsonl", "csv", "835")

@pytest.fixture(scope="module")
def base_rows(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    return generated_rows(tmp_path_factory.mktemp("partition"), 500, 9)


def run_both(args: list[str]) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    """The CLI's result through the partitioned path and through the whole-input path."""
    cut = mock.Mock(wraps=workers._cut)
    with mock.patch.object(workers, "PARTITION_MIN_LINES", 0), mock.patch.object(workers, "BUCKET_LINES", 60), \
            mock.patch.object(workers, "_cut", cut):
        partitioned = transcript(args)
    assert cut.called == ("835" not in args)  # the merged formats are cut into buckets; the 835 is not
    with mock.patch.object(workers, "PARTITION_MIN_LINES", 10 ** 12):
        whole = transcript(args)
    return partitioned, whole


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.sampled_from(["date", "shuffled", "interleaved"]), seed=st.integers(0, 1000),
       changes=st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, len(CHANGES) - 1)), max_size=12),
       output_format=st.sampled_from(FORMATS), mask=st.booleans(), keep=st.booleans(), history=st.booleans())
def test_ungrouped_input_gives_the_bytes_of_the_whole_input_path(
        base_rows: tuple[str, list[str]], tmp_path: Path, order: str, seed: int, changes: list[tuple[int, int]],
        output_format: str, mask: bool, keep: bool, history: bool) -> None:
    header, rows = base_rows
    sessions = tmp_path / "sessions.csv"
    sessions.write_text("\n".join([header, *arranged(rows, order, seed, changes)]) + "\n")
    args = ["check", str(sessions), "--rules", RULES, "--format", output_format]
    if mask:
        args.append("--mask-patient-ids")
    if keep:
        args += ["--keep", "ref"]
    if history:
        past = tmp_path / "history.csv"
        past.write_text("\n".join([header, *rows[:80]]) + "\n")
        args += ["--history", str(past)]
    with mock.patch.dict(os.environ, {"PAYRULES_MASK_KEY": "a made-up key of enough bytes", "PAYRULES_WORKERS": "1"}):
        partitioned, whole = run_both(args)
    assert partitioned == whole
    assert whole[1]  # something was written


def test_worker_processes_give_the_same_bytes(base_rows: tuple[str, list[str]], tmp_path: Path) -> None:
    header, rows = base_rows
    sessions = tmp_path / "sessions.csv"
    sessions.write_text("\n".join([header, *arranged(rows, "date", 0, [(7, 0), (300, 2), (420, 3)])]) + "\n")
    for output_format in ("text", "json", "jsonl", "csv"):
        args = ["check", str(sessions), "--rules", RULES, "--format", output_format]
        with mock.patch.dict(os.environ, {"PAYRULES_WORKERS": "2"}), \
                mock.patch.object(workers, "cpu_count", lambda: 2):
            partitioned, whole = run_both(args)
        assert partitioned == whole


def test_a_session_id_with_two_patients_is_judged_from_the_whole_input(
        base_rows: tuple[str, list[str]], tmp_path: Path) -> None:
    header, rows = base_rows
    cells = rows[40].split(",")
    cells[1] = "P9999999"  # another patient in the session of row 40
    rows = [*rows[:40], ",".join(cells), *rows[41:]]
    sessions = tmp_path / "sessions.csv"
    sessions.write_text("\n".join([header, *arranged(rows, "date", 0, [])]) + "\n")
    partitioned, whole = run_both(["check", str(sessions), "--rules", RULES, "--format", "csv"])
    assert partitioned == whole
    assert "has another patient at row" in whole[1]


def date_sorted_run(base_rows: tuple[str, list[str]], folder: Path) -> api.CheckRun:
    header, rows = base_rows
    sessions = folder / "sessions.csv"
    sessions.write_text("\n".join([header, *arranged(rows, "date", 0, [])]) + "\n")
    return api.start_check([sessions], Path(RULES))


@pytest.fixture
def spill_folder(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "spill"
    folder.mkdir()
    with mock.patch.object(tempfile, "tempdir", str(folder)), mock.patch.object(workers, "PARTITION_MIN_LINES", 0), \
            mock.patch.object(workers, "BUCKET_LINES", 60), mock.patch.dict(os.environ, {"PAYRULES_WORKERS": "1"}):
        yield folder


def test_spill_files_are_removed(base_rows: tuple[str, list[str]], tmp_path: Path, spill_folder: Path) -> None:
    run = date_sorted_run(base_rows, tmp_path)
    writer = render.CsvWriter(open(os.devnull, "w"))
    assert workers.partitionable(run, writer)
    seen: list[list[str]] = []
    tally = Tally()
    for _ in workers.write(run, writer, tally):
        seen.append(sorted(p.name for p in spill_folder.glob("*/*")))
    assert any(name.startswith("sessions") for names in seen for name in names)  # it did spill
    assert tally.lines_read == 500
    assert list(spill_folder.iterdir()) == []


def test_spill_files_are_removed_when_judging_is_interrupted(
        base_rows: tuple[str, list[str]], tmp_path: Path, spill_folder: Path) -> None:
    run = date_sorted_run(base_rows, tmp_path)

    def interrupted(index: int) -> Tally:
        raise KeyboardInterrupt

    with mock.patch.object(workers, "_judge_bucket", interrupted), pytest.raises(KeyboardInterrupt):
        for _ in workers.write(run, render.TextWriter(open(os.devnull, "w")), Tally()):
            pass
    assert list(spill_folder.iterdir()) == []


def test_formats_that_see_the_whole_input_are_not_partitioned(
        base_rows: tuple[str, list[str]], tmp_path: Path, spill_folder: Path) -> None:
    from payrules.formats.x835 import X835Writer

    run = date_sorted_run(base_rows, tmp_path)
    assert not workers.partitionable(run, X835Writer(open(os.devnull, "w"), errors=open(os.devnull, "w")))
    grouped = tmp_path / "grouped.csv"
    grouped.write_text("\n".join([base_rows[0], *base_rows[1]]) + "\n")
    assert not workers.partitionable(api.start_check([grouped], Path(RULES)), render.CsvWriter(open(os.devnull, "w")))


def test_a_short_row_with_kept_ids_is_a_line_not_judged(base_rows: tuple[str, list[str]], tmp_path: Path) -> None:
    header, rows = base_rows
    sessions = tmp_path / "sessions.csv"
    sessions.write_text("\n".join([header, rows[0], ",".join(rows[1].split(",")[:5]), *rows[2:]]) + "\n")
    for limit in (0, 10 ** 12):  # partitioned, and read whole
        with mock.patch.object(workers, "PARTITION_MIN_LINES", limit):
            code, out, err = transcript(["check", str(sessions), "--rules", RULES, "--format", "csv",
                                         "--keep", "ref"])
        assert (code, err) == (1, "")
        row = next(line for line in out.splitlines() if line.startswith(f"{sessions},3,"))
        assert row.endswith("code: is empty; charge: is empty,")  # judged nowhere, its kept id empty
