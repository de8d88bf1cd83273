"""Declared fields (`field accident_date: date`), built-in fields such as the place of service, and
`when` / `unless` conditions: parsing, checks, judging, every input path, and the warning for
input columns that are not read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from syrupy.assertion import SnapshotAssertion

from payrules import api
from payrules.compiler import compile_source
from payrules.diagnostics import CompileError
from payrules.fmt import format_text
from payrules.lint import lint_source
from payrules.render import diagnostics as render_diagnostics
from payrules.source import Source

from conftest import render_transcript, transcript

NPI_DC = "1184029555"
NPI_LMT = "1548230675"

PIP = """\
payer PIP "Auto PIP (test)"
field accident_date: date per session
set treatment = 97124, 97140, 98940-98942
late-start: not covered treatment when first_visit_date > accident_date + 14 days carc P21
"""

HEADER = "session_id,patient_id,date,payer,provider_npi,provider_credential,code,units,charge"


def ruleset(text: str) -> api.RuleSet:
    return api.compile_text(text, "rules.payer")


def visit(session: str, patient: str, date: str, code: str = "98941", charge: str = "55.00", **facts: object
          ) -> dict[str, object]:
    return {"session_id": session, "patient_id": patient, "date": date, "payer": "PIP",
            "lines": [{"provider_npi": NPI_DC, "provider_credential": "DC", "code": code, "charge": charge}],
            **facts}


def statuses(report: api.Report) -> dict[str, str]:
    return {s.session_id: s.lines[0].status for s in report.sessions}


def errors(report: api.Report) -> list[str]:
    return [f"{e.session_id}: {e.message}" for e in report.errors]


# --- situation: a fact of the visit that payrules did not know ---------------------------------


def test_treatment_must_begin_within_14_days_of_the_accident() -> None:
    """An accident date given with the visits decides the PIP 14-day rule: the first visit must be
    within 14 days of the accident; later visits of treatment begun in time are paid."""
    report = ruleset(PIP).check([
        visit("A1", "P1", "2024-03-05", accident_date="2024-03-01"),   # day 4: began in time
        visit("A2", "P1", "2024-04-30", accident_date="2024-03-01"),   # later visit: paid
        visit("B1", "P2", "2024-03-15", accident_date="2024-03-01"),   # day 14: in time
        visit("C1", "P3", "2024-03-16", accident_date="2024-03-01"),   # day 15: late
        visit("C2", "P3", "2024-03-20", accident_date="2024-03-01"),   # treatment began late
    ])
    assert statuses(report) == {"A1": "paid", "A2": "paid", "B1": "paid", "C1": "denied", "C2": "denied"}
    reason = report.sessions[3].lines[0].reasons[0]
    assert (reason.rule, reason.carc) == ("late-start", "P21")
    assert "when the date of the patient's first visit with this payer is after the accident date + 14 days" \
        in reason.message
    assert "here the first visit is 2024-03-16, the accident date is 2024-03-01" in reason.message


def test_the_first_visit_may_come_from_history() -> None:
    rules = ruleset(PIP)
    earlier = [visit("H1", "P1", "2024-03-04", accident_date="2024-03-01")]
    late = [visit("L1", "P1", "2024-04-10", accident_date="2024-03-01")]
    assert statuses(rules.check(late)) == {"L1": "denied"}
    assert statuses(rules.check(late, history=earlier)) == {"L1": "paid"}


def test_csv_columns_json_keys_and_the_column_mapping_feed_a_declared_field(tmp_path: Path) -> None:
    (tmp_path / "rules.payer").write_text(PIP)
    rows = [f"C1,P3,2024-03-16,PIP,{NPI_DC},DC,98941,1,55.00", f"A1,P1,2024-03-05,PIP,{NPI_DC},DC,98941,1,55.00"]
    (tmp_path / "plain.csv").write_text(f"{HEADER},Accident Date\n" + "".join(f"{r},2024-03-01\n" for r in rows))
    (tmp_path / "mapped.csv").write_text(f"{HEADER},DOA\n" + "".join(f"{r},03/01/2024\n" for r in rows))
    (tmp_path / "columns.toml").write_text('[columns]\naccident_date = "DOA"\n')
    sessions = [visit("C1", "P3", "2024-03-16"), visit("A1", "P1", "2024-03-05")]
    for s in sessions:
        s["accident_date"] = "2024-03-01"
    (tmp_path / "visits.json").write_text(json.dumps({"sessions": sessions}))
    (tmp_path / "visits.jsonl").write_text("".join(json.dumps(s) + "\n" for s in sessions))
    mapping = api.Columns.load(tmp_path / "columns.toml")
    found = {
        "csv": api.check_files([tmp_path / "plain.csv"], tmp_path / "rules.payer"),
        "mapped csv": api.check_files([tmp_path / "mapped.csv"], tmp_path / "rules.payer", mapping),
        "json": api.check_files([tmp_path / "visits.json"], tmp_path / "rules.payer"),
        "jsonl": api.check_files([tmp_path / "visits.jsonl"], tmp_path / "rules.payer"),
    }
    for name, report in found.items():
        assert statuses(report) == {"C1": "denied", "A1": "paid"}, name
        assert report.errors == (), name


def test_parquet_columns_feed_a_declared_field(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    (tmp_path / "rules.payer").write_text(PIP)
    table = pa.table({"session_id": ["C1", "A1"], "patient_id": ["P3", "P1"], "date": ["2024-03-16", "2024-03-05"],
                      "payer": ["PIP", "PIP"], "provider_npi": [NPI_DC, NPI_DC], "code": ["98941", "98941"],
                      "charge": ["55.00", "55.00"], "accident_date": ["2024-03-01", "2024-03-01"]})
    pq.write_table(table, tmp_path / "visits.parquet")
    report = api.check_files([tmp_path / "visits.parquet"], tmp_path / "rules.payer")
    assert statuses(report) == {"C1": "denied", "A1": "paid"}


def test_a_mapped_name_that_is_no_field_is_refused(tmp_path: Path) -> None:
    (tmp_path / "rules.payer").write_text(PIP)
    (tmp_path / "visits.csv").write_text(f"{HEADER},DOA\nA1,P1,2024-03-05,PIP,{NPI_DC},DC,98941,1,55.00,2024-03-01\n")
    (tmp_path / "columns.toml").write_text('[columns]\nacident_date = "DOA"\n')
    with pytest.raises(api.InputError, match="`acident_date` is not a session field nor a field a rule file "
                                             "declares; did you mean `accident_date`?"):
        api.check_files([tmp_path / "visits.csv"], tmp_path / "rules.payer", api.Columns.load(tmp_path / "columns.toml"))


# --- unknown columns are named ---------------------------------------------------------------


def test_a_column_no_rule_file_declares_is_named_once_on_stderr(tmp_path: Path, text_snapshot: SnapshotAssertion
                                                               ) -> None:
    rules = tmp_path / "rules.payer"
    rules.write_text(PIP)
    rows = f"A1,P1,2024-03-05,PIP,{NPI_DC},DC,98941,1,55.00,2024-03-01,2024-03-01,x,11\n"
    header = f"{HEADER},accident_date,acident_date,claim_note,place_of_service\n"
    (tmp_path / "a.csv").write_text(header + rows)
    (tmp_path / "b.csv").write_text(header + rows.replace("A1,P1", "B1,P2"))
    code, out, err = transcript(["check", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--rules", str(rules),
                                 "--format", "json"])
    assert code == 0 and json.loads(out)["summary"]["paid"] == 2
    assert text_snapshot == err.replace(str(tmp_path), "<tmp>")


def test_kept_and_mapped_columns_are_read(tmp_path: Path) -> None:
    rules = tmp_path / "rules.payer"
    rules.write_text(PIP)
    (tmp_path / "v.csv").write_text(f"{HEADER},DOA,claim_line\nA1,P1,2024-03-05,PIP,{NPI_DC},DC,98941,1,55.00,"
                                    "2024-03-01,L9\n")
    (tmp_path / "columns.toml").write_text('[columns]\naccident_date = "DOA"\n')
    code, _, err = transcript(["check", str(tmp_path / "v.csv"), "--rules", str(rules), "--columns",
                               str(tmp_path / "columns.toml"), "--keep", "claim_line"])
    assert (code, err) == (0, "")


# --- record errors -------------------------------------------------------------------------------


def test_bad_missing_and_disagreeing_values_are_record_errors(text_snapshot: SnapshotAssertion) -> None:
    rules = ruleset(PIP + "field visit_number: number per line\n"
                          "review: not covered 97124 when visit_number > 24 warn\n")
    sessions = [
        visit("BAD", "P1", "2024-03-05", accident_date="2024-02-30"),
        visit("NONE", "P2", "2024-03-05"),
        {**visit("TWO", "P3", "2024-03-05"),
         "lines": [{"provider_npi": NPI_DC, "code": "98941", "charge": "55.00", "accident_date": "2024-03-01"},
                   {"provider_npi": NPI_DC, "code": "98940", "charge": "45.00", "accident_date": "2024-03-02"}]},
        {**visit("NUM", "P4", "2024-03-05", accident_date="2024-03-01"),
         "lines": [{"provider_npi": NPI_LMT, "provider_credential": "LMT", "code": "97124", "charge": "60.00",
                    "visit_number": "x"},
                   {"provider_npi": NPI_LMT, "provider_credential": "LMT", "code": "97124", "charge": "60.00",
                    "visit_number": "25"}]},
    ]
    report = rules.check(sessions)
    assert [(s.session_id, [line.status for line in s.lines]) for s in report.sessions] == [("NUM", ["paid"])]
    assert report.summary.lines_read == report.summary.judged + report.summary.rejected == 6
    assert text_snapshot == "\n".join(errors(report)) + "\n"


def test_a_missing_value_can_deny_the_line_instead() -> None:
    rules = ruleset(PIP.replace("field accident_date: date per session",
                                "field accident_date: date per session if missing deny carc 16 rarc N130"))
    report = rules.check([visit("NONE", "P2", "2024-03-05"), visit("OK", "P3", "2024-03-05", accident_date="2024-03-01")])
    assert statuses(report) == {"NONE": "denied", "OK": "paid"}
    reason = report.sessions[0].lines[0].reasons[0]
    assert (reason.kind, reason.carc, reason.rarc, reason.line) == ("missing_field", "16", "N130", 2)
    assert reason.message == ("The accident date is missing (the `accident_date` field); a rule of this payer needs "
                              "it, and the payer denies a line without it.")


def test_a_line_without_a_value_no_condition_needs_is_judged() -> None:
    rules = ruleset('payer PIP\nfield auth_number: text\nnot covered 97124 unless auth_number = "A1"\n')
    report = rules.check([visit("X", "P1", "2024-03-05", code="98941")])
    # The rule's condition needs the value: the line is not judged, whatever its code.
    assert errors(report) == ["X: auth_number: is missing; a rule of rules.payer needs it in a condition (its "
                              "declaration says `if missing reject`, the default)"]
    report = rules.check([visit("Y", "P1", "2024-03-05", code="97124", auth_number="a1"),
                          visit("Z", "P1", "2024-03-05", code="97124", auth_number="A1")])
    assert statuses(report) == {"Y": "denied", "Z": "paid"}


# --- conditions --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("condition", "expected"), [
    ("when place_of_service = 12", ["paid", "reduced", "paid"]),
    ("unless place_of_service = 12", ["reduced", "paid", "reduced"]),
    ("when place_of_service in (02, 12)", ["paid", "reduced", "reduced"]),
    ("when place_of_service not in (02, 12)", ["reduced", "paid", "paid"]),
    ("when place_of_service != 11 and units >= 2", ["paid", "paid", "reduced"]),
    ("when place_of_service = 12 or charge > $80", ["reduced", "reduced", "paid"]),
    ("when (place_of_service = 11 or place_of_service = 12) and code = 97124", ["reduced", "reduced", "paid"]),
    ("when date >= 2024-03-06", ["paid", "reduced", "reduced"]),
    ("when date < 2024-03-01 + 5 days", ["reduced", "paid", "paid"]),
    ("when credential = lmt", ["reduced", "reduced", "paid"]),
    ("when minutes <= 20", ["paid", "paid", "reduced"]),
])
def test_conditions_pick_the_lines_a_rule_judges(condition: str, expected: list[str]) -> None:
    rules = ruleset(f"payer PIP\nmax $40 per line {condition}\n")
    lines = [("97124", "90.00", "11", "2024-03-05", "LMT", 1, 30),
             ("97124", "60.00", "12", "2024-03-06", "LMT", 1, 30),
             ("97140", "50.00", "02", "2024-03-07", "DC", 2, 15)]
    sessions = [{"session_id": f"S{i}", "patient_id": "P1", "date": date, "payer": "PIP",
                 "lines": [{"provider_npi": NPI_LMT, "provider_credential": cred, "code": code, "charge": charge,
                            "units": units, "minutes": minutes, "place_of_service": pos}]}
                for i, (code, charge, pos, date, cred, units, minutes) in enumerate(lines)]
    report = rules.check(sessions)
    assert [s.lines[0].status for s in report.sessions] == expected


def test_a_session_cap_with_a_condition_counts_only_the_lines_it_keeps() -> None:
    rules = ruleset("payer PIP\nmax $100 per session when place_of_service = 12\n")
    session = {"session_id": "S", "patient_id": "P", "date": "2024-03-05", "payer": "PIP",
               "lines": [{"provider_npi": NPI_LMT, "code": c, "charge": "60.00", "place_of_service": p}
                         for c, p in (("97124", "12"), ("97140", "11"), ("97112", "12"))]}
    line_results = rules.check([session]).sessions[0].lines
    assert [(l.status, l.allowed) for l in line_results] == [("paid", 6000), ("paid", 6000), ("reduced", 4000)]


def test_a_yes_no_field_and_unless_modifier_together() -> None:
    rules = ruleset("payer PIP\nfield referral: yes/no\n"
                    "one of 97124, 97140 per session unless modifier 59 unless referral\n")
    def session(sid: str, referral: str, modifier: str) -> dict[str, object]:
        return {"session_id": sid, "patient_id": "P", "date": "2024-03-05", "payer": "PIP", "referral": referral,
                "lines": [{"provider_npi": NPI_LMT, "code": "97124", "charge": "60.00"},
                          {"provider_npi": NPI_LMT, "code": "97140", "charge": "60.00", "modifiers": modifier}]}
    report = rules.check([session("A", "no", ""), session("B", "yes", ""), session("C", "N", "59")])
    assert [[l.status for l in s.lines] for s in report.sessions] == [["paid", "denied"], ["paid", "paid"],
                                                                       ["paid", "paid"]]


def test_place_of_service_is_read_from_837p(tmp_path: Path) -> None:
    from test_x12 import claim, interchange, line

    rules = tmp_path / "rules.payer"
    rules.write_text("payer SUMMIT\nmax $40 per line when place_of_service = 12\n")
    text = interchange([claim("C1", "M1", [line("97124", "60.00", "2024-03-04"), line("97140", "60.00", "2024-03-04")])])
    # The claim says office (CLM05-1 = 11); the second line says home (SV105 = 12).
    lines = text.split("SV1*HC:97140*60.00*UN*1***1")
    assert len(lines) == 2
    (tmp_path / "claims.837").write_text("SV1*HC:97140*60.00*UN*1*12**1".join(lines))
    pytest.importorskip("pyx12")
    report = api.check_files([tmp_path / "claims.837"], rules)
    assert [(l.code, l.input.place_of_service, l.status) for l in report.sessions[0].lines] == [
        ("97124", "11", "paid"), ("97140", "12", "reduced")]


# --- the rule file: errors, lint, fmt ----------------------------------------------------------------


BROKEN = """\
payer PIP
field accident_date: date
field accident_date: date
field date: date
field onset: day
field referral: yes/no if missing deny
field auth: text
only 97124 when acident_date > 2024-01-01
only 97124 when accident_date > $100
only 97124 when code < 97124
only 97124 when 11 = 12
only 97124 when units + 3 days > 2
only 97124 when accident_date = 2024-02-30
only 97124 when onset
only 97124 when units > 1 and (units > 2 or (units > 3 and (units > 4 or (units > 5 and units > 6))))
only 97124 when code in (massage, 97140)
only 97124 when place_of_service = 1
only 97124 when credential = LTM
only 97124 when date < 2024-01-01 + 99999 days
"""


def test_errors_in_declarations_and_conditions(text_snapshot: SnapshotAssertion) -> None:
    diagnostics = lint_source(Source("broken.payer", BROKEN))
    assert text_snapshot == render_diagnostics(diagnostics)


def test_syntax_errors_name_the_new_words(text_snapshot: SnapshotAssertion) -> None:
    text = ("payer PIP\nfield accident_date date\nonly 97124 when\nonly 97124 when units >\n"
            "only 97124 when units in 1, 2\nfield x: yes/maybe\n")
    with pytest.raises(CompileError) as error:
        compile_source(Source("syntax.payer", text))
    assert text_snapshot == render_diagnostics(error.value.diagnostics)


def test_fmt_round_trips_the_new_syntax() -> None:
    text = ("payer   PIP\nfield   Accident_Date :  date   PER session IF missing DENY carc p21 rarc n130\n"
            "field referral: YES / no\n"
            "only 97124  WHEN  ( place_of_service IN ( 11,22 ) or units>=2 ) AND accident_date+14 days >= date\n"
            "one of 97124 per session UNLESS   MODIFIER 59 unless credential NOT   IN (dc, \"PT\") # c\n"
            "x: max $45 per session when referral = no unless charge<=$10.50\n")
    formatted = format_text(text)
    assert formatted == (
        "payer PIP\n"
        "field Accident_Date: date per session if missing deny carc P21 rarc N130\n"
        "field referral: yes/no\n"
        "only 97124 when (place_of_service in (11, 22) or units >= 2) and accident_date + 14 days >= date\n"
        'one of 97124 per session unless modifier 59 unless credential not in (dc, "PT")  # c\n'
        "x: max $45 per session when referral = no unless charge <= $10.50\n")
    assert format_text(formatted) == formatted
    # The layout changes nothing the file means.
    before = compile_source(Source("a.payer", text))
    after = compile_source(Source("a.payer", formatted))
    assert [r.params for r in before.rules] == [r.params for r in after.rules]


def test_an_unused_declared_field_is_a_lint_warning() -> None:
    found = lint_source(Source("w.payer", "payer PIP\nfield accident_date: date\nonly 97124\n"))
    assert [(d.code, d.message) for d in found] == [("W140", "field `accident_date` is declared but no rule uses it")]


def test_a_condition_keeps_a_rule_out_of_the_unreachable_check() -> None:
    found = lint_source(Source("w.payer", "payer PIP\nnot covered 97124 when place_of_service = 12\n"
                                          "max $40 per session for 97124\n"))
    assert found == []


# --- explanations and the standalone module ---------------------------------------------------------


def test_explain_shows_the_condition_in_words(text_snapshot: SnapshotAssertion) -> None:
    asked = ["explain", "examples/auto-pip/rules.payer", "--code", "97124", "--credential", "LMT", "--date",
             "2024-03-05", "--field", "accident_date=2024-03-01", "--field", "visit_number=3"]
    home = render_transcript([*asked, "--place-of-service", "12"])
    office = render_transcript([*asked, "--place-of-service", "11"])
    missing = render_transcript(asked[:-4])
    assert "The rule applies when the place of service is 12; here the place of service is 12." in " ".join(home.split())
    assert "it applies only when the place of service is 12; here the place of service is 11" in office
    assert text_snapshot == "\n".join([home, office, missing])


def test_the_standalone_module_reads_declared_fields(tmp_path: Path) -> None:
    from test_standalone import run_isolated

    (tmp_path / "rules.payer").write_text(PIP)
    module = tmp_path / "pip_rules.py"
    code, _, err = transcript(["build", str(tmp_path / "rules.payer"), "-o", str(module)])
    assert code == 0, err
    sessions = [visit("A1", "P1", "2024-03-05", accident_date="2024-03-01"),
                visit("C1", "P3", "2024-03-16", accident_date="2024-03-01"),
                visit("N1", "P4", "2024-03-16")]
    built = run_isolated(module, sessions)
    expected = ruleset(PIP).check(sessions).to_dict()
    assert built["summary"] == expected["summary"]
    assert [e["message"].replace(f"{tmp_path}/", "") for e in built["errors"]] == [
        e["message"] for e in expected["errors"]]
    assert [[l["status"] for l in s["lines"]] for s in built["sessions"]] == [["paid"], ["denied"]]


def test_dask_frames_carry_declared_fields(tmp_path: Path) -> None:
    pytest.importorskip("dask.dataframe")
    import dask.dataframe as dd
    import pandas

    from payrules.dask import judge

    (tmp_path / "rules.payer").write_text(PIP)
    rows = {"session_id": ["C1", "A1", "N1"], "patient_id": ["P3", "P1", "P4"],
            "date": ["2024-03-16", "2024-03-05", "2024-03-05"], "payer": ["PIP"] * 3,
            "provider_npi": [NPI_DC] * 3, "code": ["98941"] * 3, "charge": ["55.00"] * 3,
            "Accident Date": ["2024-03-01", "2024-03-01", ""]}
    frame = dd.from_pandas(pandas.DataFrame(rows), npartitions=2)
    result = judge(frame, tmp_path / "rules.payer").compute()
    found = dict(zip(result["session_id"], result["status"]))
    assert found == {"C1": "denied", "A1": "paid", "N1": "not judged"}


def test_an_error_in_a_mapped_declared_field_names_the_column(tmp_path: Path) -> None:
    (tmp_path / "rules.payer").write_text(PIP)
    (tmp_path / "v.csv").write_text(f"{HEADER},DOA\nA1,P1,2024-03-05,PIP,{NPI_DC},DC,98941,1,55.00,2024-13-01\n")
    (tmp_path / "columns.toml").write_text('[columns]\naccident_date = "DOA"\n')
    code, out, err = transcript(["check", str(tmp_path / "v.csv"), "--rules", str(tmp_path / "rules.payer"),
                                 "--columns", str(tmp_path / "columns.toml"), "--format", "json"])
    assert (code, err) == (1, "")
    problem, = json.loads(out)["errors"][0]["problems"]
    assert problem == {"field": "accident_date", "column": "DOA", "value": "2024-13-01",
                       "message": "`2024-13-01` is not a calendar date"}


def test_a_line_without_a_built_in_field_a_condition_needs_is_not_judged() -> None:
    rules = ruleset("payer PIP\nmax $40 per line when place_of_service = 12\n")
    report = rules.check([visit("X", "P1", "2024-03-05"), {**visit("Y", "P1", "2024-03-05"), "place_of_service": "12"}])
    assert statuses(report) == {"Y": "reduced"}
    assert errors(report) == ["X: place_of_service: is missing; a rule of rules.payer needs it in a condition (a line "
                              "without it cannot be judged by that rule)"]


def test_fields_declared_in_an_included_file_are_declared(tmp_path: Path) -> None:
    (tmp_path / "pip-common.payer").write_text("payer X\nfield accident_date: date per session\n")
    (tmp_path / "pip.payer").write_text('payer PIP\ninclude "pip-common"\n'
                                        "not covered 98941 when date > accident_date + 14 days\n")
    report = api.load(tmp_path / "pip.payer").check([visit("A", "P1", "2024-03-05", accident_date="2024-03-01"),
                                                     visit("B", "P2", "2024-03-25", accident_date="2024-03-01")])
    assert statuses(report) == {"A": "paid", "B": "denied"}


# --- hostile conditions and values: worded errors, never a crash ---------------------------------------

CONDITION_TOKENS = ["when", "unless", "and", "or", "(", ")", "=", "!=", "<", "<=", ">", ">=", "in", "not in", "+",
                    "-", "days", "14", "0", "99999999999", "2024-02-30", "2024-03-01", "9999-12-31", "$100",
                    "$1.005", '"A1"', "accident_date", "referral", "units", "date", "code", "place_of_service",
                    "credential", "first_visit_date", "charge", "minutes", "yes", "no", "massage", ",", "97124"]


@given(st.lists(st.sampled_from(CONDITION_TOKENS), min_size=1, max_size=12))
@settings(deadline=None)
def test_any_condition_gets_a_decision_or_worded_errors(tokens: list[str]) -> None:
    text = ("payer PIP\nfield accident_date: date\nfield referral: yes/no\nset massage = 97124\n"
            f"only 97124, 97140 {' '.join(tokens)}\n")
    try:
        rules = api.compile_text(text, "fuzz.payer")
    except CompileError as error:
        assert all(d.code.startswith(("E", "W")) and d.message for d in error.diagnostics)
        return
    report = rules.check([visit("S", "P", "2024-03-05", code="97124", accident_date="2024-03-01", referral="no",
                                place_of_service="11")])
    assert report.summary.lines_read == report.summary.judged + report.summary.rejected == 1


@given(st.text(max_size=30))
@settings(deadline=None)
def test_any_value_of_a_declared_field_is_judged_or_a_record_error(value: str) -> None:
    rules = ruleset("payer PIP\nfield a: date\nfield b: number per line\nfield c: money\nfield d: yes/no\n"
                    "field e: code\nnot covered 97124 when a > 2024-01-01 + 3 days or b >= 2 or c < $5 or d or e = X1\n")
    session = {**visit("S", "P", "2024-03-05", code="97124"), "a": value, "c": value, "d": value, "e": value,
               "lines": [{"provider_npi": NPI_DC, "code": "97124", "charge": "55.00", "b": value}]}
    report = rules.check([session])
    assert report.summary.lines_read == report.summary.judged + report.summary.rejected == 1


def test_a_time_rule_with_a_condition_pools_every_timed_line_and_lowers_the_kept_ones() -> None:
    rules = ruleset("payer PIP\nunits by cms rule for 97124, 97140 when place_of_service = 12\n")
    session = {"session_id": "S", "patient_id": "P", "date": "2024-03-05", "payer": "PIP",
               "lines": [{"provider_npi": NPI_LMT, "code": "97124", "charge": "60.00", "units": 2, "minutes": 20,
                          "place_of_service": "11"},
                         {"provider_npi": NPI_LMT, "code": "97140", "charge": "60.00", "units": 2, "minutes": 10,
                          "place_of_service": "12"}]}
    # 30 minutes pooled give 2 units: one each. Only the line at home (12) is lowered.
    found = [(l.status, l.units_paid) for l in rules.check([session]).sessions[0].lines]
    assert found == [("paid", 2), ("reduced", 1)]


def test_unless_without_modifier_says_to_write_modifier() -> None:
    text = "payer T\nno 97124 same day as 98940 unless 59\none of 97124 per session unless XS\n"
    found = [(d.code, d.message, d.help) for d in lint_source(Source("um.payer", text))]
    assert found == [
        ("E001", "expected `modifier` after `unless`, found `59`", "write `unless modifier 59`"),
        ("E245", "unknown field `XS`", "to exempt lines that carry modifier XS, write `unless modifier XS`")]


def test_the_language_server_completes_field_names_in_conditions() -> None:
    from payrules.lsp.analysis import Analysis, completions

    analysis = Analysis.of("pip.payer", PIP)
    found = {item.label: item.detail for item in completions(analysis, "x: not covered 97124 when acc")}
    assert found["accident_date"] == "declared field: date, per session"
    assert found["place_of_service"] == "built-in field: the place of service (code)"
    assert "modifier" not in found
    assert "59" in {item.label for item in completions(analysis, "one of 97124 per session unless modifier ")}


def test_the_limits_of_conditions_are_worded_errors() -> None:
    many = " or ".join(f"units = {n}" for n in range(33))
    values = ", ".join(str(n) for n in range(1001))
    text = (f"payer T\nfield {'x' * 65}: date\nonly 97124 when {many}\nonly 97124 when units in ({values})\n")
    found = [(d.code, d.message) for d in lint_source(Source("limits.payer", text)) if d.code.startswith("E")]
    assert found == [("E240", "the field name is too long (65 characters)"),
                     ("E243", "the condition holds 33 comparisons"), ("E243", "the list holds 1,001 values")]
    report = ruleset("payer PIP\nfield visit_number: number\nnot covered 97124 when visit_number > 24\n").check(
        [visit("S", "P", "2024-03-05", visit_number="1000000000")])
    assert errors(report) == ["S: visit_number: a number is at most 999,999,999, found `1000000000`"]
