"""Output that cannot be forged or broken by what it echoes: escaped control characters in text,
no spreadsheet formulas in CSV, lone surrogates in every format, and masked patient ids."""

from __future__ import annotations

import csv
import hmac
import io
import json
import re
import unicodedata
import xml.etree.ElementTree as ET
from pathlib import Path

import click
import pytest
from hypothesis import given, strategies as st
from syrupy.assertion import SnapshotAssertion

from payrules import cli as cli_module, render, workers
from payrules.compiler import compile_source
from payrules.fields import Problem, RecordError
from payrules.masking import KEY_ENVIRONMENT, MaskKeyError, PatientMask, load_key
from payrules.runner import Block, Report, Tally
from payrules.runtime import Origin
from payrules.source import Source

from conftest import render_transcript, transcript
from helpers import line, run_policy

KEY = "a test key, not a secret: 0123456789"
OTHER_KEY = "another test key, not secret either"
FORMATS = ["text", "json", "jsonl", "csv"]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d")
HIDDEN = {"Cc", "Cf", "Cs", "Zl", "Zp"}

RULES = """payer EVERGREEN "Evergreen Health Plan (example)"

manual-therapy-only: only 97140
"""

SESSIONS = """session_id,patient_id,date,payer,provider_npi,code,charge
S-1,P-1007,2024-03-05,EVERGREEN,1548230675,97140,70.00
S-1,P-1007,2024-03-05,EVERGREEN,1548230675,97124,60.00
S-2,P-1007,2024-03-12,EVERGREEN,1548230675,97140,70.00
S-3,P-2040,2024-03-05,EVERGREEN,1548230675,9714,70.00
S-4,P-2040,2024-03-06,EVERGREEN,1548230675,97140,70.00
"""
PATIENTS = ("P-1007", "P-2040")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with a rule file and sessions of two patients, as the current folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rules.payer").write_text(RULES)
    (tmp_path / "sessions.csv").write_text(SESSIONS)
    return tmp_path


def write(report: Report, fmt: str, errors: tuple[RecordError, ...] = (), *,
          mask: render.Mask | None = None) -> str:
    """`report` (plus `errors`) as one writer of `fmt` writes it."""
    out = io.StringIO()
    writer: render.Writer = {"text": render.TextWriter, "json": render.JsonWriter, "jsonl": render.JsonlWriter,
                             "csv": render.CsvWriter}[fmt](out, mask=mask)
    block = Block(sessions=report.sessions, errors=report.errors + errors,
                  lines_read=report.summary.lines_read + len(errors))
    tally = Tally()
    writer.block(block)
    tally.add(block)
    writer.close(tally.summary())
    return out.getvalue()


def hostile_report(session: str, patient: str, *, file: str = "rules.payer", payer_name: str = "Acme") -> Report:
    policy = compile_source(Source(file, f'payer ACME "{payer_name}"\nonly 97140\n'))
    return run_policy(policy, line("97140", session=session, patient=patient, payer="ACME"),
                      line("97124", session=session, patient=patient, payer="ACME"))


def rejected(file: str, session: str, code: str, message: str, field: str = "code",
             value: str = "") -> RecordError:
    return RecordError(origin=Origin(file=file, row=3), session_id=session, line=2, code=code,
                       problems=(Problem(field=field, value=value, message=message),))


# --- text: control characters are shown escaped -------------------------------------------------


def test_a_patient_id_with_line_breaks_cannot_forge_report_lines(workdir: Path,
                                                                 text_snapshot: SnapshotAssertion) -> None:
    (workdir / "rules.payer").write_text("payer ACME\nonly 97140\n")
    forged = "P1\r\n\r\n3 lines read: 3 judged (3 paid, 0 reduced, 0 denied), 0 rejected (not judged). " \
             "Charged $1.00, allowed $1.00.\r\nSession X"
    (workdir / "s.csv").write_bytes(
        ("session_id,patient_id,date,payer,provider_npi,provider_credential,code,modifiers,units,minutes,charge,"
         f'diagnoses,prescription_by\r\nS1,"{forged}",2024-05-06,ACME,1328719467,DC,97124,,1,,40.00,,\r\n').encode())
    output = render_transcript(["check", "s.csv", "--rules", "rules.payer"])
    stdout = output.split("----- stdout -----\n")[1].split("----- stderr -----")[0]
    assert [l for l in stdout.splitlines() if l.startswith("Session ")] == [stdout.splitlines()[0]]
    assert [l for l in stdout.splitlines() if re.match(r"\d+ lines? read: ", l)] == [stdout.splitlines()[-1]]
    assert stdout.splitlines()[-1].startswith("1 line read")
    assert text_snapshot == output


def test_ansi_escapes_and_unicode_separators_are_shown_escaped(text_snapshot: SnapshotAssertion) -> None:
    report = hostile_report("S\x1b[31mRED\x1b[0m", "P\u2028Session FAKE\u2029\u202eevil",
                            file="rules\x1b[2J.payer", payer_name="Acme\\nSession FAKE | payer X\tHealth")
    errors = (rejected("in\x1b]0;title\x07put.csv", "S\n9", "97\x0b140", "bad\rcode \x1b[1mBOLD"),)
    text = write(report, "text", errors)
    assert "\x1b" not in text and "\u2028" not in text and "\u202e" not in text and "\r" not in text
    assert [l for l in text.splitlines() if l.startswith("Session ")] == [text.splitlines()[0]]
    assert text_snapshot == text


def test_text_output_never_shows_a_hidden_character_even_with_colour() -> None:
    report = hostile_report("S\x1b[31m", "P\x00\x7f\x85")
    text = write(report, "text")
    colour = io.StringIO()
    render.TextWriter(colour, colour=True).block(Block(sessions=report.sessions, errors=(), lines_read=2))
    # The only escape sequences left are the status colours payrules adds itself.
    assert "\x1b" not in click.unstyle(colour.getvalue()) and "\\x1b[31m" in colour.getvalue()
    assert not [c for c in text if unicodedata.category(c) in HIDDEN - {"Cc"} or (c != "\n" and c < " ")]


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_json_output_holds_hostile_values_exactly_on_one_line(fmt: str) -> None:
    session, patient = "S\x1b[31m\nRED", "P\u2028\r\n{\"x\": 1}"
    output = write(hostile_report(session, patient), fmt)
    first = json.loads(output) if fmt == "json" else json.loads(output.splitlines()[0])
    found = first["sessions"][0] if fmt == "json" else first
    assert (found["session_id"], found["patient_id"]) == (session, patient)
    assert output.isascii() and len(output.splitlines()) == (5 if fmt == "json" else 2)


@given(st.text())
def test_printable_keeps_any_text_on_one_line_and_encodable(text: str) -> None:
    shown = render.printable(text)
    assert not [c for c in shown if unicodedata.category(c) in HIDDEN]
    shown.encode("utf-8")
    assert render.printable(shown) == shown
    if text.isprintable():
        assert shown == text


def test_test_output_escapes_case_names_and_values(workdir: Path, text_snapshot: SnapshotAssertion) -> None:
    (workdir / "rules.payer").write_text(RULES)
    (workdir / "rules.cases.csv").write_text(
        "case,session_id,patient_id,date,payer,provider_npi,provider_credential,code,modifiers,units,charge,"
        "expect_status,expect_allowed,expect_reasons\n"
        '"massage\x1b[32m PASS\x1b[0m",A\x1b[8m,P1,2024-03-05,EVERGREEN,1548230675,LMT,97124,,1,60.00,paid,60.00,-\n')
    text = render_transcript(["test", "."])
    junit_code, junit, _ = transcript(["test", ".", "--format", "junit"])
    assert "\x1b" not in text and "\x1b" not in junit and junit_code == 1
    case = ET.fromstring(junit.split("\n", 1)[1]).find("testsuite/testcase")
    assert case is not None and case.get("name") == "massage\\x1b[32m PASS\\x1b[0m"
    assert text_snapshot == text


def test_lint_and_diagnostics_escape_rule_text(workdir: Path, text_snapshot: SnapshotAssertion) -> None:
    (workdir / "rules.payer").write_text("payer ACME\nonly 97140\nmax \x1b[31m2 units per line\n")
    output = render_transcript(["lint", "rules.payer"])
    assert "\x1b" not in output
    github = transcript(["lint", "rules.payer", "--format", "github"])[1]
    assert "\x1b" not in github and "\\x1b" in github
    assert text_snapshot == output


def test_fmt_diff_escapes_rule_text_and_keeps_line_endings(workdir: Path) -> None:
    (workdir / "rules.payer").write_text('payer ACME "Acme\x1b[31m red"\nonly   97140\n')
    code, out, err = transcript(["fmt", "--check", "rules.payer"])
    assert (code, err) == (1, "1 file would be reformatted\n")
    assert out.splitlines()[3:] == [' payer ACME "Acme\\x1b[31m red"', "-only   97140", "+only 97140"]


def test_input_errors_on_stderr_escape_file_names(workdir: Path) -> None:
    code, out, err = transcript(["check", "no\x1b[2Jsuch\n.csv", "--rules", "rules.payer"])
    assert (code, out) == (2, "")
    assert err == "error: no\\x1b[2Jsuch\\n.csv: no such sessions file\n"


# --- csv: no cell is a formula ---------------------------------------------------------------


def test_csv_rules_cell_from_a_formula_file_name_is_not_a_formula(workdir: Path,
                                                                  text_snapshot: SnapshotAssertion) -> None:
    (workdir / '=HYPERLINK("http--evil").payer').write_text("payer ACME\nonly 97140\n")
    (workdir / "s.csv").write_text(
        "session_id,patient_id,date,payer,provider_npi,provider_credential,code,modifiers,units,minutes,charge,"
        "diagnoses,prescription_by\nS1,P1,2024-05-06,ACME,1328719467,DC,97124,,1,,40.00,,\n")
    args = ["check", "s.csv", "--rules", '=HYPERLINK("http--evil").payer', "--format", "csv"]
    _, out, _ = transcript(args)
    row = next(csv.DictReader(io.StringIO(out, newline="")))
    assert row["rules"] == "'=HYPERLINK(\"http--evil\").payer:2"
    assert text_snapshot == render_transcript(args)


@pytest.mark.parametrize("start", FORMULA_STARTS)
def test_no_csv_cell_of_user_text_starts_a_formula(start: str) -> None:
    report = hostile_report(f"{start}S", f"{start}P", file=f"{start}rules.payer")
    errors = (rejected(f"{start}in.csv", f"{start}S2", f"{start}97140", f"{start}1+1"),)
    rows = list(csv.reader(io.StringIO(write(report, "csv", errors), newline="")))
    assert len(rows) == 4 and rows[0] == list(render.CSV_COLUMNS)
    cells = [cell for row in rows[1:] for cell in row]
    assert not [cell for cell in cells if cell[:1] in FORMULA_STARTS]
    assert {rows[1][2], rows[1][3], rows[1][0]} == {f"'{start}S", f"'{start}P", "mem"}
    assert rows[2][15].startswith(f"'{start}rules.payer:2") and rows[3][0] == f"'{start}in.csv"


def test_csv_keeps_line_breaks_and_commas_inside_their_cell() -> None:
    report = hostile_report("S,1\r\n=2", 'P"3')
    rows = list(csv.reader(io.StringIO(write(report, "csv"), newline="")))
    assert [(r[2], r[3]) for r in rows[1:]] == [("S,1\r\n=2", 'P"3')] * 2


# --- lone surrogates never break a writer ----------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_lone_surrogate_never_breaks_a_writer(fmt: str) -> None:
    report = hostile_report("S\ud800", "P\udfff", file="r\udcff.payer", payer_name="Acme")
    errors = (rejected("in\udcfe.csv", "S\udbff", "97\ud800", "bad \udc80", field="patient_id", value="P\ud801"),)
    for mask in (None, PatientMask(KEY.encode())):
        output = write(report, fmt, errors, mask=mask)
        output.encode("utf-8")
        assert "\\ud800" in output and "\\udc80" in output


def test_a_lone_surrogate_in_json_input_is_not_an_internal_error(workdir: Path) -> None:
    (workdir / "rules.payer").write_text("payer ACME\nonly 97140\n")
    (workdir / "s.json").write_text('[{"session_id":"S\\ud800","patient_id":"P1","date":"2024-05-06","payer":"ACME",'
                                    '"provider_npi":"1328719467","lines":[{"code":"97140","charge":"40.00"}]}]')
    for fmt in FORMATS:
        code, out, err = transcript(["check", "s.json", "--rules", "rules.payer", "--format", fmt])
        assert code in (0, 1) and "internal error" not in err, (fmt, err)
        out.encode("utf-8")


# --- masked patient ids ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_masked_patient_ids(fmt: str, workdir: Path, monkeypatch: pytest.MonkeyPatch,
                            text_snapshot: SnapshotAssertion) -> None:
    monkeypatch.setenv(KEY_ENVIRONMENT, KEY)
    args = ["check", "sessions.csv", "--rules", "rules.payer", "--format", fmt, "--mask-patient-ids"]
    output = render_transcript(args)
    assert not [p for p in PATIENTS if p in output]
    masks = [PatientMask(KEY.encode())(p) for p in PATIENTS]
    assert output.count(masks[0]) == (3 if fmt == "csv" else 2) and output.count(masks[1]) >= 1
    assert text_snapshot == output


def test_masks_are_the_same_in_every_format_and_run_and_differ_by_key(workdir: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / "mask.key").write_text(KEY + "\n")
    args = ["check", "sessions.csv", "--rules", "rules.payer", "--format", "json", "--mask-patient-ids"]
    from_file = transcript([*args, "--mask-key-file", "mask.key"])
    monkeypatch.setenv(KEY_ENVIRONMENT, KEY)
    from_env = transcript(args)
    assert from_file == from_env == transcript(args)
    sessions = json.loads(from_env[1])["sessions"]
    assert [s["patient_id"] for s in sessions] == [sessions[0]["patient_id"]] * 2 + [sessions[2]["patient_id"]]
    csv_rows = list(csv.DictReader(io.StringIO(transcript([*args[:-2], "csv", "--mask-patient-ids"])[1])))
    assert {r["patient_id"] for r in csv_rows if r["patient_id"]} == {s["patient_id"] for s in sessions}
    monkeypatch.setenv(KEY_ENVIRONMENT, OTHER_KEY)
    other = json.loads(transcript(args)[1])["sessions"]
    assert not {s["patient_id"] for s in other} & {s["patient_id"] for s in sessions}


def test_masking_covers_problems_about_the_patient_id() -> None:
    report = hostile_report("S1", "P-1007")
    errors = (rejected("in.csv", "S2", "97140", "differs from the session's first line", field="patient_id",
                       value="P-2040"),)
    mask = PatientMask(KEY.encode())
    for fmt in ("json", "jsonl"):
        output = write(report, fmt, errors, mask=mask)
        assert "P-1007" not in output and "P-2040" not in output
        assert mask("P-2040") in output and mask("P-1007") in output
    data = json.loads(write(report, "json", errors))
    assert mask.decision(data) == json.loads(write(report, "json", errors, mask=mask))


def test_masked_output_is_the_same_from_worker_processes(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [f"S-{n},P-{n // 3:04d},2024-03-05,EVERGREEN,1548230675,{97140 if n % 2 else 97124},70.00"
            for n in range(600)]
    (workdir / "many.csv").write_text(SESSIONS.splitlines()[0] + "\n" + "\n".join(rows) + "\n")
    monkeypatch.setenv(KEY_ENVIRONMENT, KEY)
    args = ["check", "many.csv", "--rules", "rules.payer", "--format", "jsonl", "--mask-patient-ids"]
    alone = transcript(args)
    monkeypatch.setattr("payrules.records.PART_LINES", 100)
    monkeypatch.setattr(workers, "MIN_LINES", 0)
    monkeypatch.setattr(workers, "cpu_count", lambda: 2)
    assert transcript(args) == alone and "P-0001" not in alone[1]


def test_the_ungrouped_input_note_masks_the_patient(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_module, "LARGE_INPUT_LINES", 2)
    (workdir / "s.csv").write_text(SESSIONS.splitlines()[0] + "\n" + "\n".join(
        f"S-{n},P-{n % 2},2024-03-05,EVERGREEN,1548230675,97140,70.00" for n in range(4)) + "\n")
    monkeypatch.setenv(KEY_ENVIRONMENT, KEY)
    _, _, err = transcript(["check", "s.csv", "--rules", "rules.payer", "--mask-patient-ids"])
    assert err.startswith(f"note: the sessions are not grouped by patient (patient `{PatientMask(KEY.encode())('P-0')}`")


@pytest.mark.parametrize("case", ["no key", "key file without the flag", "short key", "empty key file",
                                  "unreadable key file"])
def test_mask_key_mistakes_are_usage_errors(case: str, workdir: Path, monkeypatch: pytest.MonkeyPatch,
                                            text_snapshot: SnapshotAssertion) -> None:
    monkeypatch.delenv(KEY_ENVIRONMENT, raising=False)
    (workdir / "short.key").write_text("0123456789\n")
    (workdir / "empty.key").write_text("\n")
    args = {"no key": ["--mask-patient-ids"],
            "key file without the flag": ["--mask-key-file", "short.key"],
            "short key": ["--mask-patient-ids", "--mask-key-file", "short.key"],
            "empty key file": ["--mask-patient-ids", "--mask-key-file", "empty.key"],
            "unreadable key file": ["--mask-patient-ids", "--mask-key-file", "missing.key"]}[case]
    output = render_transcript(["check", "sessions.csv", "--rules", "rules.payer", *args])
    assert "exit_code: 2\n----- stdout -----\n----- stderr -----" in output
    assert text_snapshot == output


def test_an_empty_key_variable_counts_as_unset() -> None:
    with pytest.raises(MaskKeyError, match="needs a key"):
        load_key(None, {KEY_ENVIRONMENT: ""})
    assert load_key(None, {KEY_ENVIRONMENT: KEY}) == KEY.encode()


def test_masks_are_keyed_hashes_of_the_id() -> None:
    mask = PatientMask(KEY.encode())
    assert mask("P-1007") == mask("P-1007") != mask("P-1008")
    assert mask("P-1007") != PatientMask(OTHER_KEY.encode())("P-1007")
    assert mask("P-1007").startswith("p_") and len(mask("P-1007")) == 26
    assert mask("") == "" and KEY not in repr(mask)
    # Known value: HMAC-SHA256(key, "P-1007"), first 24 hex digits.
    assert mask("P-1007") == "p_" + hmac.new(KEY.encode(), b"P-1007", "sha256").hexdigest()[:24]
