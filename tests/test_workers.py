"""Large grouped CSV input: cut into parts at patient changes, judged by worker processes, and
written exactly as one process would write it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from payrules import api, records, workers
from payrules.records import read_blocks, read_part, scan

from conftest import ROOT, transcript

RULES = str(ROOT / "benchmarks" / "reference.payer")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3000 generated lines with bad rows of several kinds among them."""
    path = tmp_path_factory.mktemp("parts") / "sessions.csv"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "generate.py"), "--lines", "3000", "--seed", "5",
                    "-o", str(path)], check=True)
    lines = path.read_text().splitlines()
    bad = {10: (2, "2024-13-01"), 400: (4, "1234567890"), 900: (8, "two"), 1500: (10, "12.345"),
           2100: (6, "9714"), 2600: (0, "")}
    for row, (column, value) in bad.items():
        cells = lines[row].split(",")
        cells[column] = value
        lines[row] = ",".join(cells)
    lines.insert(1200, "")  # a blank line: skipped, and the rows after it keep their numbers
    path.write_text("\r\n".join(lines) + "\r\n")
    return path


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(records, "PART_LINES", 250)
    monkeypatch.setattr(workers, "MIN_LINES", 0)
    monkeypatch.setattr(workers, "cpu_count", lambda: 2)


def patient_of(path: Path, offset: int) -> str:
    with open(path, "rb") as stream:
        stream.seek(offset)
        return stream.readline().decode().split(",")[1]


def test_parts_hold_whole_patients_and_every_line(generated: Path) -> None:
    found = scan([generated], part_lines=250)
    parts = found.parts
    assert found.grouped and len(parts) > 5
    assert sum(p.lines for p in parts) == found.lines == 3000
    assert parts[0].row == 2 and all(a.end == b.start for a, b in zip(parts, parts[1:]))
    assert parts[-1].end == generated.stat().st_size
    with open(generated, "rb") as stream:
        data = stream.read()
    for before, after in zip(parts, parts[1:]):
        last_line = data[:before.end].rstrip(b"\r\n").rsplit(b"\n", 1)[1].decode()
        assert last_line.split(",")[1] != patient_of(generated, after.start), "a part ends where a patient ends"
        assert data[:after.start].count(b"\n") + 1 == after.row
    whole = [(b.sessions, b.errors) for b in read_blocks([generated])]
    in_parts = [(b.sessions, b.errors) for part in parts for b in read_part(part)]
    assert in_parts == whole


def test_a_part_is_read_without_reading_the_whole_file_again(generated: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The scan found the file plain before cutting it, so reading a part reads only its bytes
    (checking every part against the whole file made workers cost 1.6x one process)."""
    parts = scan([generated], part_lines=250).parts
    whole = [(b.sessions, b.errors) for b in read_blocks([generated])]
    checked: list[Path] = []
    monkeypatch.setattr(records, "_is_plain", lambda path: checked.append(path) or True)
    in_parts = [(b.sessions, b.errors) for part in parts for b in read_part(part)]
    assert checked == []
    assert in_parts == whole


NOT_JUDGED = {"text": "Lines not judged", "json": '"errors": [\n{', "jsonl": '"type": "error"', "csv": "not judged"}


@pytest.mark.parametrize("fmt", ["text", "json", "jsonl", "csv"])
def test_workers_write_what_one_process_writes(fmt: str, generated: Path, small_parts: None,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    assert workers.worker_count(api.start_check([generated], Path(RULES))) == 2
    args = ["check", str(generated), "--rules", RULES, "--format", fmt]
    by_workers = transcript(args)
    monkeypatch.setattr(workers, "MIN_LINES", 10**9)
    by_one = transcript(args)
    assert by_workers == by_one
    assert by_one[0] == 1 and NOT_JUDGED[fmt] in by_one[1]


def _rewrite(path: Path, target: Path, change: object) -> Path:
    lines = path.read_text().splitlines()
    target.write_text("\n".join(change(lines)) + "\n")  # type: ignore[operator]
    return target


def test_no_parts_when_a_session_id_is_used_by_two_patients(generated: Path, tmp_path: Path,
                                                             small_parts: None) -> None:
    def reuse(lines: list[str]) -> list[str]:
        last = lines[-1].split(",")
        last[0] = lines[1].split(",")[0]  # the last patient's row takes the first patient's session id
        return lines[:-1] + [",".join(last)]

    path = _rewrite(generated, tmp_path / "reused.csv", reuse)
    assert scan([path]).grouped and scan([path]).parts == ()
    code, out, _ = transcript(["check", str(path), "--rules", RULES, "--format", "csv"])
    assert "already appeared for another patient at row 2" in out.splitlines()[-1]


def test_no_parts_with_quotes_or_a_patient_across_files(generated: Path, tmp_path: Path) -> None:
    quoted = _rewrite(generated, tmp_path / "quoted.csv",
                      lambda lines: [lines[0], *(line.replace(",M54.50,", ',"M54.50",') for line in lines[1:])])
    assert scan([quoted], part_lines=250).grouped and scan([quoted], part_lines=250).parts == ()
    lines = generated.read_text().splitlines()
    patients = [(line.split(",") + [""])[1] for line in lines]
    cut = next(i for i in range(2, len(lines)) if patients[i - 1] == patients[i] != patients[i - 2])
    first = _rewrite(generated, tmp_path / "first.csv", lambda _: lines[:cut])
    second = _rewrite(generated, tmp_path / "second.csv", lambda _: [lines[0], *lines[cut:]])
    assert scan([first], part_lines=250).parts and scan([second], part_lines=250).parts
    assert scan([first, second], part_lines=250).grouped and scan([first, second], part_lines=250).parts == ()
    # The first line of that patient moved to the end: the input is no longer grouped.
    split = _rewrite(generated, tmp_path / "split.csv",
                     lambda _: [*lines[:cut - 1], *lines[cut:], lines[cut - 1]])
    assert not scan([split]).grouped and scan([split], part_lines=250).parts == ()


def test_parts_cut_where_the_reader_sees_a_new_patient(tmp_path: Path) -> None:
    # "P1" padded with a tab or NBSP is the same patient for the reader, so no part starts there.
    header = "session_id,patient_id,date,payer,provider_npi,code,charge"
    rows = [f"S{i},{pad}P{i // 4}{pad},2024-05-06,ACME,1328719467,97140,40.00"
            for i, pad in zip(range(40), ["", "\t", "\u00a0", " "] * 10)]
    path = tmp_path / "s.csv"
    path.write_bytes(("\n".join([header, *rows]) + "\n").encode())
    found = scan([path], part_lines=3)
    assert found.grouped and [p.lines for p in found.parts] == [4] * 10
    assert [[s.patient_id for s in b.sessions] for part in found.parts for b in read_part(part)] == \
        [[f"P{n}"] * 4 for n in range(10)]
