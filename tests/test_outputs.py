"""Output formats, column mappings, streaming and the shipped JSON Schema."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from syrupy.assertion import SnapshotAssertion

from payrules import api, cli as cli_module
from payrules.records import Columns, read_blocks, scan

from conftest import EXAMPLES, ROOT, render_transcript, transcript

MESSY = ["examples/messy-export/export.csv", "--rules", "examples/messy-export",
         "--columns", "examples/messy-export/columns.toml"]
CLEAN = ["examples/no-massage-with-cmt/sessions.csv", "--rules", "examples"]
GENERATOR = ROOT / "benchmarks" / "generate.py"


def test_messy_export_with_column_mapping(text_snapshot: SnapshotAssertion) -> None:
    assert text_snapshot == render_transcript(["check", *MESSY])


def test_messy_export_counts_add_up() -> None:
    report = api.check_files([Path(MESSY[0])], Path(MESSY[2]), Columns.load(Path(MESSY[4])))
    s = report.summary
    assert (s.lines_read, s.judged, s.rejected) == (20, 6, 14)
    assert s.judged + s.rejected == s.lines_read and s.paid + s.reduced + s.denied == s.judged
    assert len({e.origin.row for e in report.errors}) == 14, "one error per bad row"


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_formats_snapshot(fmt: str, text_snapshot: SnapshotAssertion) -> None:
    assert text_snapshot == render_transcript(["check", *MESSY, "--format", fmt])


def test_csv_has_one_row_per_input_line() -> None:
    _, out, _ = transcript(["check", *MESSY, "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 20
    assert sorted(int(r["row"]) for r in rows) == list(range(2, 22))
    statuses = {r["status"] for r in rows}
    assert statuses == {"paid", "reduced", "denied", "not judged"}


def test_csv_cells_are_not_formulas(tmp_path: Path) -> None:
    sessions = tmp_path / "s.csv"
    sessions.write_text("session_id,patient_id,date,payer,provider_npi,code,charge\n"
                        "=HYPERLINK(1),@P1,2024-03-05,EVERGREEN,1548230675,97140,70.00\n")
    _, out, _ = transcript(["check", str(sessions), "--rules", "examples/only-97140", "--format", "csv"])
    row = list(csv.DictReader(io.StringIO(out)))[0]
    assert (row["session_id"], row["patient_id"]) == ("'=HYPERLINK(1)", "'@P1")


def test_csv_cells_with_commas_quotes_and_line_breaks_stay_in_their_cell(tmp_path: Path) -> None:
    sessions = tmp_path / "s.jsonl"
    ids = ['A,1', 'B"2', "C\n3", "D\r4", "plain"]  # (the test runner reads \r\n as \n)
    sessions.write_text("".join(json.dumps({
        "session_id": sid, "patient_id": f"P{i}", "date": "2024-03-05", "payer": "EVERGREEN",
        "lines": [{"provider_npi": "1548230675", "code": "97140", "charge": "70.00"}]}) + "\n"
        for i, sid in enumerate(ids)))
    _, out, _ = transcript(["check", str(sessions), "--rules", "examples/only-97140", "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    assert [r["session_id"] for r in rows] == ids and {r["status"] for r in rows} == {"paid"}


@pytest.mark.parametrize("args", [MESSY, CLEAN] + [[f"examples/{p.name}/sessions.csv", "--rules", "examples"]
                                                   for p in sorted(EXAMPLES.iterdir()) if (p / "sessions.csv").exists()])
def test_json_and_jsonl_match_the_shipped_schema(args: list[str]) -> None:
    schema = api.report_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    _, out, _ = transcript(["check", *args, "--format", "json"])
    jsonschema.validate(json.loads(out), schema)
    record_schema = {"$ref": "#/$defs/jsonlRecord", "$defs": schema["$defs"]}
    _, out, _ = transcript(["check", *args, "--format", "jsonl"])
    lines = [json.loads(line) for line in out.splitlines()]
    for record in lines:
        jsonschema.validate(record, record_schema)
    assert lines[-1]["type"] == "summary"


def test_formats_agree_on_every_decision() -> None:
    _, out, _ = transcript(["check", *MESSY, "--format", "json"])
    report = json.loads(out)
    _, out, _ = transcript(["check", *MESSY, "--format", "jsonl"])
    records = [json.loads(line) for line in out.splitlines()]
    assert [r for r in records if r["type"] == "session"] == [{"type": "session", **s} for s in report["sessions"]]
    assert [r for r in records if r["type"] == "error"] == [{"type": "error", **e} for e in report["errors"]]
    assert records[-1] == {"type": "summary", **report["summary"]}


def test_output_file(tmp_path: Path) -> None:
    target = tmp_path / "decisions.csv"
    code, out, err = transcript(["check", *CLEAN, "--format", "csv", "--output", str(target)])
    assert (code, out, err) == (1, "", "")
    assert target.read_text().startswith("file,row,session_id,patient_id,date,payer,line,code")


@pytest.mark.parametrize("mapping, message", [
    ('[columns]\ndate = "Date of Service"\n', "column `date_of_service` (mapped to date in"),
    ('[columns]\nvisit = "Visit #"\n', "`visit` is not a session field"),
    ('[columns]\ndate = ["DOS", "Other"]\n', "only modifiers and diagnoses can take several columns"),
    ("columns = 1\n", "expected a [columns] table"),
    ("[columns\n", "not valid TOML"),
])
def test_column_mapping_errors(tmp_path: Path, mapping: str, message: str) -> None:
    path = tmp_path / "columns.toml"
    path.write_text(mapping)
    code, out, err = transcript(["check", "examples/messy-export/export.csv", "--rules", "examples/messy-export",
                                 "--columns", str(path)])
    assert (code, out) == (2, "") and message in err and "Traceback" not in err


def test_unmapped_export_says_how_to_map() -> None:
    code, _, err = transcript(["check", "examples/messy-export/export.csv", "--rules", "examples/messy-export"])
    assert code == 2 and "missing columns `session_id`" in err and "map other names with --columns" in err


def test_us_dates() -> None:
    report = api.check_files([Path(MESSY[0])], Path(MESSY[2]), Columns.load(Path(MESSY[4])))
    assert [s.date for s in report.sessions][:2] == ["2024-03-04", "2024-03-05"]


# --- streaming ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gen") / "sessions.csv"
    subprocess.run([sys.executable, str(GENERATOR), "--lines", "3000", "--seed", "3", "-o", str(path)], check=True)
    return path


def test_grouped_input_is_read_one_patient_at_a_time(generated: Path) -> None:
    result = scan([generated])
    assert result.grouped and result.lines == 3000
    blocks = list(read_blocks([generated], grouped=True))
    patients = [{s.patient_id for s in b.sessions} for b in blocks]
    assert all(len(p) <= 1 for p in patients)
    assert len(blocks) == len({p for ps in patients for p in ps})
    assert sum(b.lines_read for b in blocks) == 3000


def test_streamed_and_whole_input_give_the_same_report(generated: Path, tmp_path: Path) -> None:
    rules = tmp_path / "bench.payer"
    rules.write_text((ROOT / "benchmarks" / "reference.payer").read_text())
    streamed = transcript(["check", str(generated), "--rules", str(rules), "--format", "jsonl"])
    shuffled = tmp_path / "shuffled.csv"
    lines = generated.read_text().splitlines()
    # Move the first patient's last visit to the end: that patient is split, the input not grouped.
    first = lines[1].split(",")[1]
    visit = [l.split(",")[0] for l in lines[1:] if l.split(",")[1] == first][-1]
    moved = [l for l in lines[1:] if l.split(",")[0] == visit]
    assert moved and len(moved) < len([l for l in lines[1:] if l.split(",")[1] == first])
    shuffled.write_text("\n".join([lines[0]] + [l for l in lines[1:] if l not in moved] + moved) + "\n")
    assert not scan([shuffled]).grouped
    whole = transcript(["check", str(shuffled), "--rules", str(rules), "--format", "json"])
    streamed_sessions = {json.loads(l)["session_id"]: json.loads(l) for l in streamed[1].splitlines()
                         if '"type": "session"' in l}
    whole_sessions = {s["session_id"]: {"type": "session", **s} for s in json.loads(whole[1])["sessions"]}
    assert streamed_sessions == whole_sessions


def test_progress_bar_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch, generated: Path) -> None:
    monkeypatch.setattr(cli_module, "LARGE_INPUT_LINES", 10)
    code, out, err = transcript(["check", str(generated), "--rules", "benchmarks/reference.payer",
                                 "--format", "csv"])
    assert err == "", "no progress bar when stderr is not a terminal"

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    run = api.start_check([generated], Path("benchmarks/reference.payer"))
    stdout = io.StringIO()
    cli_module._write(run, cli_module.OutputFormat.CSV, stdout, colour=False)
    assert "Judging" in terminal.getvalue() and "3000/3000" in terminal.getvalue()
    assert "Judging" not in stdout.getvalue()
