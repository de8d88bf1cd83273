"""`payrules check` in one process into a file reads its input once: it is not scanned first
but judged as grouped by patient into FILE.partial, moved into place when complete, and
scanned and judged again only when a patient comes back after another one. The output is the
same, byte for byte, as when the input is scanned first."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payrules import api, cli, records, workers

from conftest import ROOT, transcript
from ungrouped_rows import CHANGES, arranged, check_args, generated_rows, once_and_scanned

RULES = str(ROOT / "benchmarks" / "reference.payer")
FORMATS = ("text", "json", "jsonl", "csv")


@pytest.fixture(scope="module")
def base_rows(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    return generated_rows(tmp_path_factory.mktemp("once"), 300, 5)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.sampled_from(["grouped", "grouped", "late", "date", "shuffled"]), seed=st.integers(0, 1000),
       changes=st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, len(CHANGES) - 1)), max_size=10),
       output_format=st.sampled_from(FORMATS), mask=st.booleans(), keep=st.booleans(), history=st.booleans(),
       files=st.integers(1, 2))
def test_reading_once_gives_the_bytes_of_scanning_first(
        base_rows: tuple[str, list[str]], tmp_path: Path, order: str, seed: int, changes: list[tuple[int, int]],
        output_format: str, mask: bool, keep: bool, history: bool, files: int) -> None:
    header, rows = base_rows
    rows = arranged(rows, order, seed, changes)
    paths = []
    for n in range(files):  # the rows cut in two files: a patient may go on in the next one
        path = tmp_path / f"sessions{n}.csv"
        path.write_text("\n".join([header, *rows[n * len(rows) // files:(n + 1) * len(rows) // files]]) + "\n")
        paths.append(str(path))
    past = [base_rows[0], *base_rows[1][:60]] if history else None
    args = check_args(Path(paths[0]), output_format, mask, keep, past)
    args[2:2] = paths[1:]  # the second file after the first
    with mock.patch.dict(os.environ, {"PAYRULES_MASK_KEY": "a made-up key of enough bytes"}), \
            mock.patch.object(cli, "LARGE_INPUT_LINES", 100):  # the note on input not grouped, too
        once, scanned = once_and_scanned(args, tmp_path / "decisions.out")
    assert once == scanned
    assert once[3]  # something was written


def test_grouped_input_is_not_scanned(base_rows: tuple[str, list[str]], tmp_path: Path) -> None:
    header, rows = base_rows
    sessions = tmp_path / "sessions.csv"
    sessions.write_text("\n".join([header, *rows]) + "\n")
    output = tmp_path / "decisions.csv"
    scans = mock.Mock(wraps=records.scan)
    with mock.patch.object(workers, "reads_once", lambda paths: True), mock.patch.object(cli, "scan", scans), \
            mock.patch.object(api, "scan", scans):
        code, out, err = transcript(["check", str(sessions), "--rules", RULES, "--format", "csv", "--keep", "ref", "-o", str(output)])
    assert (code, out, err, scans.call_count) == (1, "", "", 0)
    assert output.read_bytes().count(b"\r\n") == len(rows) + 1


def test_input_not_grouped_is_scanned_once_it_shows(base_rows: tuple[str, list[str]], tmp_path: Path) -> None:
    header, rows = base_rows
    sessions = tmp_path / "sessions.csv"
    sessions.write_text("\n".join([header, *arranged(rows, "date", 0, [])]) + "\n")
    output = tmp_path / "decisions.csv"
    scans = mock.Mock(wraps=records.scan)
    with mock.patch.object(workers, "reads_once", lambda paths: True), mock.patch.object(cli, "scan", scans), \
            mock.patch.object(cli, "LARGE_INPUT_LINES", 100):
        code, _, err = transcript(["check", str(sessions), "--rules", RULES, "--format", "csv", "--keep", "ref", "-o", str(output)])
    assert (code, scans.call_count) == (1, 1)
    assert err.startswith("note: the sessions are not grouped by patient") and err.count("note:") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["decisions.csv", "sessions.csv"]


def test_an_error_found_while_judging_leaves_no_file(base_rows: tuple[str, list[str]], tmp_path: Path) -> None:
    header, rows = base_rows
    rows = list(rows)
    rows[-1] = rows[-1].replace("R", "R" + "x" * 1_300)  # a field longer than payrules reads, at the end
    sessions = tmp_path / "sessions.csv"
    sessions.write_text("\n".join([header, *rows]) + "\n")
    output = tmp_path / "decisions.csv"
    with mock.patch.object(workers, "reads_once", lambda paths: True), \
            mock.patch.object(records, "CSV_READ_LIMIT", 1_200):
        code, out, err = transcript(["check", str(sessions), "--rules", RULES, "--format", "csv", "--keep", "ref", "-o", str(output)])
    assert (code, out) == (2, "")
    assert err == f"error: {sessions}:{len(rows) + 1}: a field is longer than 1,200 characters, more than payrules reads\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sessions.csv"]


def test_an_existing_output_is_replaced_only_when_complete(base_rows: tuple[str, list[str]], tmp_path: Path) -> None:
    header, rows = base_rows
    sessions = tmp_path / "sessions.csv"
    sessions.write_text("\n".join([header, *rows]) + "\n")
    output = tmp_path / "decisions.csv"
    output.write_text("earlier decisions\n")

    def interrupted(*args: object) -> object:
        raise KeyboardInterrupt

    with mock.patch.object(workers, "reads_once", lambda paths: True), mock.patch.object(workers, "judge_lines", interrupted):
        code, _, err = transcript(["check", str(sessions), "--rules", RULES, "--format", "csv", "--keep", "ref",
                                   "-o", str(output)])
    assert (code, err) == (1, "\nAborted!\n")  # Ctrl-C, as click reports it
    assert output.read_text() == "earlier decisions\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["decisions.csv", "sessions.csv"]


def test_a_link_or_a_device_is_written_in_place(base_rows: tuple[str, list[str]], tmp_path: Path) -> None:
    header, rows = base_rows
    sessions = tmp_path / "sessions.csv"
    sessions.write_text("\n".join([header, *rows]) + "\n")
    target = tmp_path / "target.csv"
    target.write_text("")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    with mock.patch.object(workers, "reads_once", lambda paths: True):
        code, _, _ = transcript(["check", str(sessions), "--rules", RULES, "--format", "csv", "--keep", "ref", "-o", str(link)])
        assert code == 1 and link.is_symlink() and target.read_bytes().count(b"\r\n") == len(rows) + 1
        code, _, _ = transcript(["check", str(sessions), "--rules", RULES, "--format", "csv", "--keep", "ref", "-o", os.devnull])
        assert code == 1 and not Path(os.devnull + ".partial").exists()
