"""Session records: located errors for bad rows, every line exactly once, counts that add up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion

from payrules import render
from payrules.api import check_files
from payrules.diagnostics import InputError
from payrules.records import read_sessions

from conftest import render_transcript, transcript

MESSY = Path("tests/cases/records/messy.csv")
BROKEN_JSONL = Path("tests/cases/records/broken.jsonl")
RULES = Path("examples/only-97140")


def data_rows(path: Path) -> int:
    return sum(1 for row in path.read_text().splitlines()[1:] if row.strip())


def test_messy_csv_text(text_snapshot: SnapshotAssertion) -> None:
    assert text_snapshot == render_transcript(["check", str(MESSY), "--rules", str(RULES)])


def test_messy_csv_every_line_exactly_once() -> None:
    report = check_files([MESSY], RULES)
    s = report.summary
    assert s.lines_read == data_rows(MESSY) == 15
    assert s.judged + s.rejected == s.lines_read
    assert s.paid + s.reduced + s.denied == s.judged
    rows = sorted([l.origin.row for x in report.sessions for l in x.lines] + [e.origin.row for e in report.errors])
    assert rows == sorted(set(rows)) and len(rows) == 15


@pytest.mark.parametrize("row, field", [
    (3, "date"), (4, "provider_npi"), (5, "provider_credential"), (6, "code"), (7, "units"), (8, "charge"),
    (9, "modifiers"), (10, "diagnoses"), (11, "payer"), (13, "date"), (14, "session_id"), (15, "units"),
])
def test_messy_csv_bad_field_is_named(row: int, field: str) -> None:
    report = check_files([MESSY], RULES)
    (error,) = [e for e in report.errors if e.origin.row == row]
    assert field in [p.field for p in error.problems]


def test_all_problems_of_a_row_are_listed() -> None:
    report = check_files([MESSY], RULES)
    (error,) = [e for e in report.errors if e.origin.row == 15]
    assert [p.field for p in error.problems] == ["units", "minutes", "charge"]


def test_good_rows_are_still_judged() -> None:
    report = check_files([MESSY], RULES)
    judged = {s.session_id: [l.status for l in s.lines] for s in report.sessions}
    assert judged == {"M-1": ["paid"], "M-11": ["paid"], "M-14": ["paid"]}
    m11 = next(s for s in report.sessions if s.session_id == "M-11")
    assert m11.lines[0].charge == 107000


def test_broken_jsonl(text_snapshot: SnapshotAssertion) -> None:
    assert text_snapshot == render_transcript(["check", str(BROKEN_JSONL), "--rules", str(RULES)])


def test_broken_jsonl_counts() -> None:
    report = check_files([BROKEN_JSONL], RULES)
    s = report.summary
    assert (s.lines_read, s.judged, s.rejected) == (7, 3, 4)
    assert [(e.origin.row, e.origin.path) for e in report.errors] == [(2, "lines[0]"), (2, "lines[1]"),
                                                                      (3, "lines"), (4, "")]


def test_json_errors_shape() -> None:
    _, out, _ = transcript(["check", str(MESSY), "--rules", str(RULES), "--format", "json"])
    error = json.loads(out)["errors"][0]
    assert error == {
        "file": str(MESSY), "row": 3, "path": None, "session_id": "M-2", "line": 1, "code": "97140",
        "message": "date: `2024-02-30` is not a calendar date",
        "problems": [{"field": "date", "column": None, "value": "2024-02-30",
                      "message": "`2024-02-30` is not a calendar date"}],
    }


@pytest.mark.parametrize("content, message", [
    ("", "the file is empty"),
    ("session_id,date\nS1,2024-01-01\n", "missing columns `patient_id`, `payer`, `provider_npi`, `code`, `charge`"),
])
def test_unreadable_csv_is_usage_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "s.csv"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        read_sessions([path])


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    code, out, err = transcript(["check", str(tmp_path / "nope.csv"), "--rules", str(RULES)])
    assert (code, out) == (2, "") and "no such sessions file" in err
    code, out, err = transcript(["check", str(tmp_path), "--rules", str(RULES)])
    assert code == 2 and "is a folder; give session files: CSV (.csv), JSON (.json)" in err
    (tmp_path / "s.xlsx").write_bytes(b"PK")
    code, out, err = transcript(["check", str(tmp_path / "s.xlsx"), "--rules", str(RULES)])
    assert code == 2 and "unknown sessions format `.xlsx`" in err


def test_csv_with_bom_crlf_and_header_spacing(tmp_path: Path) -> None:
    text = ("\ufeffSession ID,Patient_ID, Date ,PAYER,provider npi,code,charge\r\n"
            "S1,P1,2024-03-05,EVERGREEN,1548230675,97140,70.00\r\n")
    path = tmp_path / "s.csv"
    path.write_bytes(text.encode("utf-8"))
    report = check_files([path], RULES)
    assert report.summary.paid == 1 and not report.errors


def test_report_errors_render_without_traceback() -> None:
    report = check_files([MESSY], RULES)
    text = render.report_text(report)
    assert "Traceback" not in text and text.count("\n  tests/cases/records/messy.csv:") == 12


def test_json_sessions_are_located_by_their_first_line(tmp_path: Path) -> None:
    session = {"session_id": "S", "patient_id": "P1", "date": "2024-05-06", "payer": "ACME",
               "provider_npi": "1328719467", "lines": [{"code": "97140", "charge": "x"}]}
    sessions = [{**session, "session_id": f"S{i}", "note": "[{\"}"} for i in range(3)]
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"sessions": sessions}, indent=2))
    rows = [e.origin.row for e in read_sessions([path]).errors]
    text = path.read_text().splitlines()
    assert rows == [i + 1 for i, line in enumerate(text) if line == "    {"]
