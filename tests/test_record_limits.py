"""Session records at and past the limits payrules states: odd digits, huge numbers, long fields,
deep JSON, lone surrogates, field-name spelling, and the most lines of a session or a day.
Each ends in a worded record problem (the other lines judged) or a refused file (exit 2 and
nothing printed), never an internal error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion

from payrules import fields
from payrules.api import check_files
from payrules.records import CSV_READ_LIMIT, MAX_JSON_DEPTH

from conftest import transcript

HEADER = ("session_id,patient_id,date,payer,provider_npi,provider_credential,code,modifiers,units,minutes,"
          "charge,diagnoses,prescription_by")
NPI = "1328719467"


def csv_row(session: str = "S1", patient: str = "P1", *, npi: str = NPI, units: str = "1", minutes: str = "",
            charge: str = "40.00", diagnoses: str = "", date: str = "2024-05-06") -> str:
    return f"{session},{patient},{date},ACME,{npi},DC,97140,,{units},{minutes},{charge},{diagnoses},"


def json_session(session: str = "S1", **line: object) -> dict[str, object]:
    return {"session_id": session, "patient_id": "P1", "date": "2024-05-06", "payer": "ACME",
            "provider_npi": NPI, "lines": [{"code": "97140", "charge": "40.00", **line}]}


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    path = tmp_path / "acme.payer"
    path.write_text("payer ACME\nonly 97140\n")
    return path


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def only_problem(path: Path, rules: Path) -> tuple[str, str]:
    """The field and message of the one line not judged; every other line was judged."""
    report = check_files([path], rules)
    (error,) = report.errors
    assert report.summary.judged + 1 == report.summary.lines_read
    (problem,) = error.problems
    return problem.field, problem.message


@pytest.mark.parametrize("field, cells, message", [
    ("units", {"units": "\u00b2"}, "expected a positive whole number, found `\u00b2`"),
    ("units", {"units": "\u2488"}, "expected a positive whole number, found `\u2488`"),
    ("units", {"units": "\u0663"}, "expected a positive whole number, found `\u0663`"),
    ("minutes", {"minutes": "1\u00b3"}, "expected a whole number of minutes, found `1\u00b3`"),
    ("provider_npi", {"npi": "\u00b2" * 10}, f"expected an NPI of 10 digits, found `{chr(0xb2) * 10}`"),
])
def test_digits_other_than_ascii_are_a_record_problem(field: str, cells: dict[str, str], message: str,
                                                       rules: Path, tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", "\n".join([HEADER, csv_row("S0", "P0"), csv_row(**cells)]) + "\n")
    assert only_problem(path, rules) == (field, message)


@pytest.mark.parametrize("charge", ["100000000000000000000000000", "1000000000.00", "-1000000000", "9" * 900])
def test_charge_past_the_largest_amount_is_a_record_problem(charge: str, rules: Path, tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", "\n".join([HEADER, csv_row("S0", "P0"), csv_row(charge=charge)]) + "\n")
    field, message = only_problem(path, rules)
    assert (field, message) == ("charge", f"a charge is at most $999,999,999.99, found `{fields.shown(charge)}`")


def test_charge_at_the_largest_amount_is_judged(rules: Path, tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", "\n".join([HEADER, csv_row(charge="999999999.99")]) + "\n")
    report = check_files([path], rules)
    assert not report.errors and report.sessions[0].lines[0].input.charge == 99_999_999_999


def test_a_huge_charge_after_good_lines_keeps_the_output_whole(rules: Path, tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", "\n".join([HEADER, csv_row("S0", "P0"),
                                               csv_row(charge="1" + "0" * 26)]) + "\n")
    code, out, err = transcript(["check", str(path), "--rules", str(rules), "--format", "jsonl"])
    kinds = [json.loads(line)["type"] for line in out.splitlines()]
    assert (code, kinds, err) == (1, ["session", "error", "summary"], "")


@pytest.mark.parametrize("units, message", [
    ("999999999", None),
    ("000000000000000000000001", None),
    ("1000000000", "units are at most 999,999,999, found `1000000000`"),
    ("9" * 999, "units are at most 999,999,999, found `999999999999999999999999999999… (999 characters)`"),
])
def test_whole_numbers_are_bounded(units: str, message: str | None, rules: Path, tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", "\n".join([HEADER, csv_row("S0", "P0"), csv_row(units=units)]) + "\n")
    if message is None:
        assert not check_files([path], rules).errors
    else:
        assert only_problem(path, rules) == ("units", message)


def test_minutes_are_bounded(rules: Path, tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", "\n".join([HEADER, csv_row("S0", "P0"), csv_row(minutes="1" * 10)]) + "\n")
    assert only_problem(path, rules) == ("minutes", "minutes are at most 999,999,999, found `1111111111`")


NUMBER_OF_4301_DIGITS = "9" * 4301


@pytest.mark.parametrize("suffix", [".csv", ".json", ".jsonl"])
def test_a_number_of_thousands_of_digits_is_a_record_problem(suffix: str, rules: Path, tmp_path: Path) -> None:
    if suffix == ".csv":
        text = "\n".join([HEADER, csv_row("S0", "P0"), csv_row(units=NUMBER_OF_4301_DIGITS)]) + "\n"
    else:
        good = json.dumps(json_session("S0"))
        bad = json.dumps(json_session(units=0)).replace('"units": 0', f'"units": {NUMBER_OF_4301_DIGITS}')
        text = f"[{good},\n{bad}]" if suffix == ".json" else f"{good}\n{bad}\n"
    path = write(tmp_path, "s" + suffix, text)
    assert only_problem(path, rules) == ("units", "is 4,301 characters long; a field has at most 1,000")


@pytest.mark.parametrize("suffix, where", [(".json", "2:32"), (".jsonl", "2:33")])
def test_json_nested_too_deep_is_refused_before_output(suffix: str, where: str, rules: Path,
                                                       tmp_path: Path) -> None:
    good = json.dumps(json_session("S0"))
    deep = "[" * 100_000 + "]" * 100_000
    text = f"[{good},\n{deep}]" if suffix == ".json" else f"{good}\n{deep}\n"
    path = write(tmp_path, "s" + suffix, text)
    code, out, err = transcript(["check", str(path), "--rules", str(rules)])
    assert (code, out) == (2, "")
    assert err == f"error: {path}:{where}: not valid session JSON (nested more than {MAX_JSON_DEPTH} levels deep)\n"


def test_json_nested_within_the_limit_is_read(rules: Path, tmp_path: Path) -> None:
    session = json_session(modifiers=[[[["59"]]]])
    path = write(tmp_path, "s.jsonl", json.dumps(session) + "\n")
    assert only_problem(path, rules)[0] == "modifiers"


@pytest.mark.parametrize("session, line, field", [
    ("S\ud800", {}, "session_id"),
    ("S1", {"diagnoses": ["M54.50", "\udfff"]}, "diagnoses"),
    ("S1", {"code": "9714\udc00"}, "code"),
])
@pytest.mark.parametrize("fmt", ["text", "csv", "json", "jsonl"])
def test_lone_surrogate_in_json_is_a_record_problem(session: str, line: dict[str, object], field: str, fmt: str,
                                                    rules: Path, tmp_path: Path) -> None:
    text = "[" + json.dumps(json_session("S0")) + ",\n" + json.dumps(json_session(session, **line)) + "]"
    path = write(tmp_path, "s.json", text)
    assert only_problem(path, rules)[0] == field
    code, out, err = transcript(["check", str(path), "--rules", str(rules), "--format", fmt])
    assert (code, err) == (1, "")
    out.encode("utf-8")  # no lone surrogate reaches the output


def test_lone_surrogate_in_a_session_that_is_not_an_object(rules: Path, tmp_path: Path) -> None:
    path = write(tmp_path, "s.jsonl", json.dumps(json_session("S0")) + '\n"x\\ud800"\n')
    code, out, err = transcript(["check", str(path), "--rules", str(rules), "--format", "json"])
    (problem,) = json.loads(out)["errors"][0]["problems"]
    assert (code, problem["field"], problem["value"]) == (1, "session", "x\\ud800")


def test_valid_surrogate_pair_is_text(rules: Path, tmp_path: Path) -> None:
    path = write(tmp_path, "s.jsonl", json.dumps(json_session("S\U0001f600")) + "\n")
    report = check_files([path], rules)
    assert not report.errors and report.sessions[0].session_id == "S\U0001f600"


@pytest.mark.parametrize("quoted", [False, True])
def test_long_csv_field_is_a_record_problem_for_its_line(quoted: bool, rules: Path, tmp_path: Path) -> None:
    long = "M" * 200_000
    rows = [csv_row("S0", "P0"), csv_row(diagnoses=f'"{long}"' if quoted else long), csv_row("S2", "P2")]
    path = write(tmp_path, "s.csv", "\n".join([HEADER, *rows]) + "\n")
    assert only_problem(path, rules) == ("diagnoses", "is 200,000 characters long; a field has at most 1,000")
    code, out, err = transcript(["check", str(path), "--rules", str(rules), "--format", "jsonl"])
    assert (code, err) == (1, "") and json.loads(out.splitlines()[-1])["type"] == "summary"


def test_field_of_the_longest_length_is_read(rules: Path, tmp_path: Path) -> None:
    session = "S" * fields.MAX_FIELD_CHARS
    path = write(tmp_path, "s.csv", "\n".join([HEADER, csv_row(session)]) + "\n")
    assert check_files([path], rules).sessions[0].session_id == session


@pytest.mark.parametrize("quoted", [False, True])
def test_csv_field_too_long_to_read_refuses_the_file_before_output(quoted: bool, rules: Path,
                                                                   tmp_path: Path) -> None:
    long = "M" * (CSV_READ_LIMIT + 1)
    rows = [csv_row("S0", "P0"), csv_row(diagnoses=f'"{long}"' if quoted else long)]
    path = write(tmp_path, "s.csv", "\n".join([HEADER, *rows]) + "\n")
    code, out, err = transcript(["check", str(path), "--rules", str(rules)])
    assert (code, out) == (2, "")
    assert err == (f"error: {path}:3: a field is longer than {CSV_READ_LIMIT:,} characters, "
                   "more than payrules reads\n")


def test_json_field_names_ignore_case_spaces_and_dashes(rules: Path, tmp_path: Path) -> None:
    text = ('{"Sessions": [{"Session_ID": "S1", "PATIENT-ID": "P1", "Date": "2024-05-06", "Payer": "ACME",'
            ' "Provider NPI": "1328719467", "Lines": [{"Code": "97140", " charge ": "40.00"}]}]}')
    report = check_files([write(tmp_path, "s.json", text)], rules)
    assert not report.errors and [line.status for line in report.sessions[0].lines] == ["paid"]


def test_json_field_given_twice_is_a_record_problem(rules: Path, tmp_path: Path) -> None:
    session = json_session()
    session["Session_ID"] = "S9"
    good = json_session("S0")
    path = write(tmp_path, "s.jsonl", json.dumps(good) + "\n" + json.dumps(session) + "\n")
    assert only_problem(path, rules) == (
        "session_id", "is given twice, as `session_id` and `Session_ID`; field names ignore case, spaces and dashes")


def test_session_past_the_most_lines_has_its_later_lines_not_judged(rules: Path, tmp_path: Path) -> None:
    limit = fields.MAX_SESSION_LINES
    path = write(tmp_path, "s.csv", "\n".join([HEADER, *[csv_row()] * (limit + 2)]) + "\n")
    report = check_files([path], rules)
    assert report.summary.judged == limit and report.summary.rejected == 2
    assert [(e.origin.row, e.line) for e in report.errors] == [(limit + 2, limit + 1), (limit + 3, limit + 2)]
    assert report.errors[0].message == (f"session_id: session S1 has more than {limit:,} lines; "
                                        f"payrules judges at most {limit:,} lines of a session")


def test_patient_day_past_the_most_lines_has_its_later_lines_not_judged(rules: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fields, "MAX_DAY_LINES", 3)
    rows = [csv_row(f"S{i}") for i in range(5)] + [csv_row("S9", date="2024-05-07"), csv_row("T1", "P2")]
    path = write(tmp_path, "s.csv", "\n".join([HEADER, *rows]) + "\n")
    report = check_files([path], rules)
    assert report.summary.judged == 5
    assert [(e.origin.row, e.session_id) for e in report.errors] == [(5, "S3"), (6, "S4")]
    assert report.errors[0].message == ("date: the patient has more than 3 lines on 2024-05-06; "
                                        "payrules judges at most 3 lines of a patient on one day")


def test_record_messages_do_not_quote_patient_ids(rules: Path, tmp_path: Path) -> None:
    # Not grouped (PAT-ONE comes back): one block, where each session changes patient.
    rows = [csv_row("S1", "PAT-ONE"), csv_row("S1", "PAT-TWO"), csv_row("S1", "PAT-ONE"),
            csv_row("S2", "PAT-THREE"), csv_row("S2", "PAT-FOUR")]
    path = write(tmp_path, "s.csv", "\n".join([HEADER, *rows]) + "\n")
    errors = check_files([path], rules).errors
    assert [e.message for e in errors] == [
        "patient_id: session S1 has another patient at row 2; a session's rows must share one patient",
        "patient_id: session S2 has another patient at row 5; a session's rows must share one patient"]
    assert [p.value for e in errors for p in e.problems] == ["PAT-TWO", "PAT-FOUR"]


def test_limits_transcript(text_snapshot: SnapshotAssertion, rules: Path, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rows = [csv_row("S0", "P0"), csv_row("S1", units="\u00b2"), csv_row("S2", charge="1" + "0" * 26),
            csv_row("S3", units="1" * 12), csv_row("S4", diagnoses="M" * 5000), csv_row("S0", "P9")]
    write(tmp_path, "limits.csv", "\n".join([HEADER, *rows]) + "\n")
    write(tmp_path, "acme.payer", "payer ACME\nonly 97140\n")
    code, out, err = transcript(["check", "limits.csv", "--rules", "acme.payer"])
    assert text_snapshot == f"exit_code: {code}\n----- stdout -----\n{out}----- stderr -----\n{err}"
