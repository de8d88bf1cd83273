"""One large CSV file judged into a file with workers is not scanned first: it is cut by its
bytes into stretches, each moved to where a patient starts, judged side by side, each rendered
into a file of its own and copied into the output in order. When a patient or a session id
turns up in two parts (the file is not grouped by patient), or a part cannot be read on its
own, the output is thrown away and the file is scanned and judged the usual way. The output is
the same, byte for byte, as when the file is scanned first."""

from __future__ import annotations

import io
import os
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payrules import cli, records, render, workers
from payrules.records import Columns, csv_table, patient_start, row_patients

from conftest import ROOT, transcript
from ungrouped_rows import CHANGES, arranged, check_args, generated_rows, once_and_scanned

RULES = str(ROOT / "benchmarks" / "reference.payer")
FORMATS = ("text", "json", "jsonl", "csv")


@pytest.fixture(scope="module")
def base_rows(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    return generated_rows(tmp_path_factory.mktemp("bytes"), 400, 9)


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "MIN_LINES", 0)
    monkeypatch.setattr(workers, "PART_BYTES", 1500)
    monkeypatch.setattr(workers, "cpu_count", lambda: 2)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.sampled_from(["grouped", "grouped", "grouped", "late", "date", "shuffled"]),
       seed=st.integers(0, 1000),
       changes=st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, len(CHANGES) - 1)), max_size=10),
       output_format=st.sampled_from(FORMATS), mask=st.booleans(), keep=st.booleans(), history=st.booleans(),
       sample=st.booleans(), part_bytes=st.sampled_from([400, 1500, 6000]), crlf=st.booleans())
def test_parts_cut_by_bytes_give_the_bytes_of_scanning_first(
        base_rows: tuple[str, list[str]], tmp_path: Path, small_parts: None, order: str, seed: int,
        changes: list[tuple[int, int]], output_format: str, mask: bool, keep: bool, history: bool, sample: bool,
        part_bytes: int, crlf: bool) -> None:
    header, rows = base_rows
    rows = arranged(rows, order, seed, changes)
    path = tmp_path / "sessions.csv"
    path.write_bytes(("\r\n" if crlf else "\n").join([header, *rows, ""]).encode())
    args = check_args(path, output_format, mask, keep, [header, *base_rows[1][:80]] if history else None)
    in_parts = mock.Mock(wraps=workers._comes_back)  # the look before the parts are judged
    scans = mock.Mock(wraps=records.scan)
    # Without the sample, a patient who comes back is found where the parts meet.
    with mock.patch.dict(os.environ, {"PAYRULES_MASK_KEY": "a made-up key of enough bytes"}), \
            mock.patch.object(cli, "LARGE_INPUT_LINES", 100), mock.patch.object(workers, "PART_BYTES", part_bytes), \
            mock.patch.object(workers, "_SAMPLES", 8 if sample else 0), \
            mock.patch.object(workers, "_comes_back", in_parts), mock.patch.object(cli, "scan", scans):
        once, scanned = once_and_scanned(args, tmp_path / "decisions.out")
    assert once == scanned
    assert once[3]  # something was written
    plain = not any(CHANGES[which][1].startswith('"') for _, which in changes)
    assert in_parts.called == plain  # every plain file is tried in parts
    if order == "grouped" and not changes:
        assert scans.call_count == 0  # judged in parts: not scanned after all


def test_grouped_input_is_judged_in_parts_without_a_scan(base_rows: tuple[str, list[str]], tmp_path: Path,
                                                         small_parts: None) -> None:
    header, rows = base_rows
    path = tmp_path / "sessions.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    output = tmp_path / "decisions.csv"
    scans = mock.Mock(wraps=records.scan)
    args = ["check", str(path), "--rules", RULES, "--format", "csv", "--keep", "ref", "-o"]
    with mock.patch.object(cli, "scan", scans), \
            mock.patch.object(render.Writer, "extend_from", autospec=True,
                              side_effect=render.Writer.extend_from) as copied:
        assert transcript([*args, str(output)]) == (1, "", "")
    assert scans.call_count == 0
    assert copied.call_count == len(workers._row_starts(path, None)[0]) - 1 > 5  # a part each
    scanned = tmp_path / "scanned.csv"
    with mock.patch.object(workers, "reads_once", lambda paths: False):
        transcript([*args, str(scanned)])
    assert output.read_bytes() == scanned.read_bytes()


def test_a_session_id_in_two_parts_sends_the_file_to_the_scan(base_rows: tuple[str, list[str]], tmp_path: Path,
                                                              small_parts: None) -> None:
    header, rows = base_rows
    last = rows[-1].split(",")
    last[0] = rows[0].split(",")[0]  # the last patient's row takes the first patient's session id
    path = tmp_path / "sessions.csv"
    path.write_text("\n".join([header, *rows[:-1], ",".join(last)]) + "\n")
    output = tmp_path / "decisions.csv"
    scans = mock.Mock(wraps=records.scan)
    in_parts = mock.Mock(wraps=workers._write_byte_parts)
    with mock.patch.object(cli, "scan", scans), mock.patch.object(workers, "_write_byte_parts", in_parts):
        code, out, err = transcript(["check", str(path), "--rules", RULES, "--format", "csv", "--keep", "ref",
                                     "-o", str(output)])
    assert (code, out, err) == (1, "", "")
    assert in_parts.called and scans.call_count == 1
    assert "already appeared for another patient at row 2" in output.read_text().splitlines()[-1]


def _naive_starts(path: Path, first: int) -> dict[int, tuple[int, int]]:
    """For the start of every row and the end of the file: (offset, row) of the first row there
    or after whose patient, as the reader groups its records, is not that of the record before
    it; from every record the reader reads, in order."""
    data = path.read_bytes()
    offsets = [first + len(line) for line in [b""]]
    for line in data[first:].splitlines(keepends=True):
        offsets.append(offsets[-1] + len(line))
    found = [(offsets[origin.row - 2], origin.row, records.clean(raw[1])) for raw, origin, _ in records.records([path])]
    starts: dict[int, tuple[int, int]] = {}
    for start in offsets:
        before = [patient for at, _, patient in found if at < start]
        after = [(at, row) for at, row, patient in found if at >= start and patient != (before or [None])[-1]]
        starts[start] = (first, 2) if start == first else after[0] if after else (len(data), 0)
    return starts


@settings(max_examples=60, deadline=None)
@given(cells=st.lists(st.tuples(st.sampled_from(["P1", " P1", "P1\u00a0", "P2", "\tP2", "P3", ""]),
                                st.sampled_from(["row", "row", "blank", "short"])), min_size=1, max_size=14),
       crlf=st.booleans())
def test_a_part_starts_at_the_first_row_whose_patient_changes(cells: list[tuple[str, str]], crlf: bool) -> None:
    header = "session_id,patient_id,date,payer,provider_npi,code,charge"
    lines = [header]
    for n, (patient, kind) in enumerate(cells):
        lines.append({"row": f"S{n},{patient},2024-05-06,ACME,1328719467,97140,40.00", "blank": " , ",
                      "short": f"S{n},{patient}"}[kind])
    with tempfile_path() as path:
        path.write_bytes(("\r\n" if crlf else "\n").join([*lines, ""]).encode())
        table = csv_table(path, Columns())
        first = len(lines[0]) + (2 if crlf else 1)
        for start, expected in _naive_starts(path, first).items():
            row = 2 + path.read_bytes()[first:start].count(b"\n")
            assert patient_start(table, first, start, row) == expected


class tempfile_path:
    """A file in a folder of its own, removed afterwards (hypothesis runs many examples in one test)."""

    def __enter__(self) -> Path:
        import tempfile

        self.folder = tempfile.TemporaryDirectory()
        return Path(self.folder.name) / "sessions.csv"

    def __exit__(self, *exc: object) -> None:
        self.folder.cleanup()


@pytest.mark.parametrize("count", [1, 2, 3, 7, 50])
def test_stretches_start_at_rows_and_know_their_numbers(tmp_path: Path, count: int) -> None:
    path = tmp_path / "sessions.csv"
    rows = [f"S{n},P{n // 3},{'x' * (n % 17)}" for n in range(40)]
    path.write_text("\n".join(["session_id,patient_id,note", *rows]) + "\n")
    data = path.read_bytes()
    starts, breaks = workers._row_starts(path, count)
    assert breaks == 40
    assert starts[0] == (len(b"session_id,patient_id,note\n"), 2) and starts[-1][0] == len(data)
    assert [s for s, _ in starts] == sorted({s for s, _ in starts})
    for offset, row in starts[:-1]:
        assert data[offset - 1:offset] == b"\n" and data[:offset].count(b"\n") + 1 == row
    assert len(starts) == count + 1 if count <= 7 else len(starts) <= 41  # no stretch without a row


@pytest.mark.parametrize("target", ["file", "memory", "no copy"])
def test_a_part_rendered_to_a_file_is_copied_into_the_output(tmp_path: Path, target: str) -> None:
    rendered = tmp_path / "part"
    rendered.write_text("second part, é\n" * 5000, encoding="utf-8")
    fragment = render.Fragment("", [], 3)
    if target == "memory":
        out: io.StringIO | io.TextIOWrapper = io.StringIO()
    else:
        out = open(tmp_path / "out", "w", encoding="utf-8", newline="")
    writer = render.CsvWriter(out)
    out.write("first part\n")
    failing = mock.Mock(side_effect=OSError(18, "Invalid cross-device link"))
    with mock.patch.object(os, "copy_file_range", failing if target == "no copy" else os.copy_file_range):
        writer.extend_from(fragment, rendered)
    out.write("third part\n")
    head = io.StringIO()
    render.CsvWriter(head)  # writes the header
    expected = head.getvalue() + "first part\n" + "second part, é\n" * 5000 + "third part\n"
    if isinstance(out, io.StringIO):
        assert out.getvalue() == expected
    else:
        out.close()
        assert (tmp_path / "out").read_bytes().decode("utf-8") == expected
    assert writer.sessions == 3
