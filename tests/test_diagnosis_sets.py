"""Diagnoses as first-class codes: ranges (`M99.01-M99.05`), diagnosis sets, `primary diagnosis`,
and `requires diagnosis` followed by its options, with the worded errors around them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import line, outcomes, policy, run, run_policy
from hypothesis import given
from hypothesis import strategies as st
from syrupy.assertion import SnapshotAssertion
from test_standalone import run_isolated
from test_x12 import claim, interchange
from test_x12 import line as claim_line

from payrules import api, judging, render, standalone
from payrules.compiler import compile_source
from payrules.diagnostics import CompileError
from payrules.fmt import format_text
from payrules.lint import lint_source
from payrules.source import Source

from conftest import render_transcript, transcript

@pytest.fixture
def no_code_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """Judge by the rules alone: made-up and header codes are not denied by the ICD-10-CM code set
    before the rules (when the `icd10` extra is installed), so the rule's own decision shows."""
    monkeypatch.setattr(judging, "line_findings", lambda diagnoses, date: ())


MEDICARE = """\
set spinal-cmt = 98940-98942
set subluxation = M99.01-M99.05
subluxation: requires primary diagnosis subluxation for spinal-cmt
"""


def errors(text: str) -> str:
    """The rendered diagnostics of a rule file that does not compile."""
    with pytest.raises(CompileError) as caught:
        api.compile_text(f"payer T\n{text}\n", "rules.payer")
    return render.diagnostics(caught.value.diagnostics)


def reasons(report: object) -> list[list[tuple[str | None, str]]]:
    """(rule name, CARC) of every reason of every line."""
    return [[(r.rule, r.carc) for r in ln.reasons] for s in report.sessions for ln in s.lines]  # type: ignore[attr-defined]


# --- situation: which diagnosis is primary, and named diagnosis ranges -------------------------


def test_a_diagnosis_set_of_a_range_is_accepted_and_primary_diagnosis_is_the_first_listed() -> None:
    report = run(MEDICARE,
                 line("98941", "55.00", session="A", diagnoses="M99.03 M54.50"),
                 line("98941", "55.00", session="B", diagnoses="M54.50 M99.03"),
                 line("98941", "55.00", session="C"),
                 line("98942", "65.00", session="D", diagnoses="M99.05"),
                 line("98940", "45.00", session="E", diagnoses="M99.00"),
                 line("97124", "30.00", session="F", diagnoses="M54.50"))
    assert outcomes(report) == [("98941", "paid", "55.00"), ("98941", "denied", "0.00"),
                                ("98941", "denied", "0.00"), ("98942", "paid", "65.00"),
                                ("98940", "denied", "0.00"), ("97124", "paid", "30.00")]
    assert reasons(report)[1] == [("subluxation", "11")]


def test_primary_diagnosis_reason_is_worded_for_a_biller(text_snapshot: SnapshotAssertion, tmp_path: Path) -> None:
    rules = tmp_path / "medicare.payer"
    rules.write_text(f'payer MC "Medicare (example)"\n{MEDICARE}not covered with primary diagnosis Z00*\n')
    sessions = tmp_path / "sessions.csv"
    sessions.write_text(
        "session_id,patient_id,date,payer,provider_npi,provider_credential,code,modifiers,units,charge,diagnoses\n"
        "A,P1,2024-03-04,MC,1184029555,DC,98941,AT,1,55.00,M54.50;M99.03\n"
        "B,P2,2024-03-04,MC,1184029555,DC,98941,AT,1,55.00,\n"
        "C,P3,2024-03-04,MC,1184029555,DC,97124,,1,30.00,Z00.00;M54.50\n"
        "D,P4,2024-03-04,MC,1184029555,DC,97124,,1,30.00,M54.50;Z00.00\n")
    output = render_transcript(["check", str(sessions), "--rules", str(rules)])
    assert text_snapshot == output.replace(str(tmp_path), "<tmp>")


def test_primary_diagnosis_in_an_837p_is_the_claims_principal_diagnosis(tmp_path: Path) -> None:
    """ABK M99.03 is the primary diagnosis of a line that points to it, whatever the pointer order;
    a line that does not point to it has the diagnosis of its first pointer as its primary one."""
    claims = tmp_path / "claims.837"
    claims.write_text(interchange([
        claim("C1", "M1", [claim_line("98941", "55", "2024-03-04", pointers="2:1")]),
        claim("C2", "M2", [claim_line("98941", "55", "2024-03-04", pointers="2")]),
        claim("C3", "M3", [claim_line("98941", "55", "2024-03-04", pointers="1:2")], dx=("M5450", "M9903")),
    ]))
    rules = tmp_path / "summit.payer"
    rules.write_text(f"payer SUMMIT\n{MEDICARE}")
    code, out, err = transcript(["check", str(claims), "--rules", str(rules), "--format", "json"])
    lines = [ln for s in json.loads(out)["sessions"] for ln in s["lines"]]
    assert [ln["status"] for ln in lines] == ["paid", "denied", "denied"], err
    assert "with M54.50 as the primary diagnosis;" in lines[1]["reasons"][0]["message"]
    assert "with M54.50 as the primary diagnosis (then M99.03);" in lines[2]["reasons"][0]["message"]


@pytest.mark.usefixtures("no_code_set")
def test_not_covered_with_primary_diagnosis_looks_at_the_first_only() -> None:
    report = run("screening: not covered with primary diagnosis Z00*, Z01.0-Z01.1 for 97124",
                 line("97124", session="A", diagnoses="Z00.00 M54.50"),
                 line("97124", session="B", diagnoses="M54.50 Z00.00"),
                 line("97124", session="C", diagnoses="Z01.10"),
                 line("97140", session="D", diagnoses="Z00.00"))
    assert [status for _, status, _ in outcomes(report)] == ["denied", "paid", "denied", "paid"]
    assert reasons(report)[0] == [("screening", "167")]


@pytest.mark.usefixtures("no_code_set")
def test_sets_of_diagnosis_sets_ranges_prefixes_and_codes_together() -> None:
    rules = """\
set cervical = M99.01, S13.4XXA
set lumbar = M99.03-M99.04, M54.5*
set back = cervical, lumbar
requires diagnosis back, M62.83* for 97124
"""
    diagnoses = ["M99.01", "S13.4XXA", "M99.04", "M54.50", "M62.830", "M99.02", "M62.8", "S13.4XXD", ""]
    report = run(rules, *(line("97124", session=str(i), diagnoses=d) for i, d in enumerate(diagnoses)))
    assert [status for _, status, _ in outcomes(report)] == ["paid"] * 5 + ["denied"] * 4


@pytest.mark.usefixtures("no_code_set")
def test_prefix_patterns_keep_working_with_or_without_the_dot() -> None:
    report = run("requires diagnosis M62.83* for 97124",
                 line("97124", session="A", diagnoses="M62.830"), line("97124", session="B", diagnoses="M62830"),
                 line("97124", session="C", diagnoses="M62.81"))
    assert [status for _, status, _ in outcomes(report)] == ["paid", "paid", "denied"]


@pytest.mark.parametrize(("written", "inside", "outside"), [
    ("M99.01-M99.05", ["M99.01", "M99.03", "M9905", "M99.02"], ["M99.00", "M99.06", "M99.0", "M99", "M99.1"]),
    ("M62.81-M62.89", ["M62.81", "M62.830", "M62.838", "M62.89"], ["M62.8", "M62.9", "M62.80", "M62.90"]),
    ("M40-M54", ["M40", "M47.812", "M54.50", "M54"], ["M39.9", "M55", "M60.1", "N40"]),
    ("S13.4XXA-S13.4XXD", ["S13.4XXA", "S13.4XXD"], ["S13.4XXS", "S13.4XX"]),
])
@pytest.mark.usefixtures("no_code_set")
def test_what_a_range_holds(written: str, inside: list[str], outside: list[str]) -> None:
    from payrules.diagnosis_sets import Diagnoses

    low, high = written.split("-")
    found = Diagnoses.between(low, high)
    assert [d for d in inside if d not in found] == []
    assert [d for d in outside if d in found] == []
    report = run(f"requires diagnosis {written}",
                 *(line("97124", session=str(i), diagnoses=d) for i, d in enumerate(inside + outside)))
    assert [status for _, status, _ in outcomes(report)] == ["paid"] * len(inside) + ["denied"] * len(outside)


ICD_CHARACTERS = "0123456789ABCDEFXZ"
PLAIN_CODES = st.builds(lambda letter, rest: letter + rest, st.sampled_from("MSZ"),
                        st.text(ICD_CHARACTERS, min_size=2, max_size=6))


@pytest.mark.usefixtures("no_code_set")
@given(ends=st.lists(st.tuples(st.text("0123456789AXZ", min_size=1, max_size=3),
                               st.text("0123456789AXZ", min_size=1, max_size=3)), min_size=1, max_size=3),
       codes=st.lists(PLAIN_CODES, min_size=1, max_size=12))
def test_generated_code_decides_like_the_range_definition(ends: list[tuple[str, str]], codes: list[str]) -> None:
    """Against a plain reference: a code is in `LOW-HIGH` when it has at least as many characters
    as an end and its first characters sort between the two ends."""
    ranges = []
    for a, b in ends:
        width = max(len(a), len(b))
        low, high = sorted(("M99" + a.ljust(width, "0"), "M99" + b.ljust(width, "0")))
        ranges.append((low, high))
    written = ", ".join(f"{low[:3]}.{low[3:]}-{high[:3]}.{high[3:]}" for low, high in ranges)
    codes = [f"M99{c[3:]}" if i % 2 else c for i, c in enumerate(codes)]  # half of them in the category
    expected = ["paid" if any(len(c) >= len(lo) and lo <= c[:len(lo)] <= hi for lo, hi in ranges) else "denied"
                for c in codes]
    compiled = policy(f"requires diagnosis {written}")
    report = run_policy(compiled, *(line("97124", session=str(i), diagnoses=c) for i, c in enumerate(codes)))
    assert [status for _, status, _ in outcomes(report)] == expected


# --- situation: `requires diagnosis` and what may follow it -------------------------------------


@pytest.mark.parametrize("options", [
    "for massage", 'source "Manual 4.2"', "carc 16", "carc 16 rarc M76", "rarc N130", "warn",
    "effective from 2024-01-01", "effective to 2024-12-31", 'for massage source "Manual 4.2" carc 16 warn',
])
def test_a_bare_requires_diagnosis_takes_every_option(options: str) -> None:
    compiled = policy(f"set massage = 97124, 97140\nrequires diagnosis {options}")
    rule = compiled.rules[0]
    assert rule.text.startswith("requires diagnosis")
    report = run_policy(compiled, line("97124", session="A"), line("97124", session="B", diagnoses="M54.50"),
                        line("98940", session="C"))
    expected_first = "paid" if "warn" in options else "denied"
    third = "paid" if "for massage" in options or "warn" in options else "denied"
    assert [status for _, status, _ in outcomes(report)] == [expected_first, "paid", third]
    if "carc 16" in options:
        assert report.sessions[0].lines[0].reasons[0].carc == "16"
    if "source" in options:
        assert report.sessions[0].lines[0].reasons[0].source == "Manual 4.2"


BROKEN = {
    "primary_without_diagnoses": "requires primary diagnosis for 98940",
    "not_covered_without_diagnoses": "not covered with diagnosis carc 167",
    "primary_at_the_end": "requires primary diagnosis",
    "missing_comma": "set massage = 97124\nrequires diagnosis M54.50 massage",
    "source_without_text": "requires diagnosis source",
    "for_without_codes": "requires diagnosis for",
    "set_of_money": "set massage = $45",
    "range_errors": "set s = M99.05-M99.01, M99.01-M54.50, M54.5-M54.59, M54.5*-M54.6, 724.2-M54.50\nrequires diagnosis s",
    "set_mixes_kinds": "set back = 97124, M54.50",
    "kind_used_in_the_wrong_place": ("set massage = 97124\nset subluxation = M99.01-M99.05\n"
                                     "only subluxation\nrequires diagnosis massage"),
    "set_of_sets_mixes_kinds": "set massage = 97124\nset sub = M99.01\nset both = sub, massage\nrequires diagnosis both",
    "unknown_diagnosis_set": "set subluxation = M99.01-M99.05\nrequires primary diagnosis subluxaton",
    "diagnosis_sets_in_a_cycle": "set a = b, M99.01\nset b = a\nrequires diagnosis a",
    "diagnosis_in_a_code_list": "requires modifier AT on 98940, M99.01",
    "diagnosis_without_its_dot_in_a_set": "set subluxation = M9901\nrequires primary diagnosis subluxation",
}


@pytest.mark.parametrize("name", BROKEN)
def test_errors_point_the_right_way(name: str, text_snapshot: SnapshotAssertion) -> None:
    assert text_snapshot(name=name) == errors(BROKEN[name])


def test_the_old_misreadings_are_gone() -> None:
    """`for`, `source`, `carc`, `effective` and `warn` were read as diagnosis patterns."""
    for text in ("requires diagnosis for massage", 'requires diagnosis source "x"', "requires diagnosis carc 11",
                 "requires diagnosis effective from 2024-01-01", "requires diagnosis warn"):
        compiled = policy(f"set massage = 97124\n{text}")
        assert compiled.rules[0].kind == "requires_diagnosis"
    message = errors("requires primary diagnosis for massage")
    assert "between list items" not in message and "after `requires primary diagnosis`, found `for`" in message
    assert "`source`" not in errors("requires diagnosis source").split("expected", 1)[1].split("\n")[0]


# --- lint, fmt, explain, the standalone module ----------------------------------------------------


def test_lint_names_an_unused_diagnosis_set_and_a_code_another_item_matches(text_snapshot: SnapshotAssertion,
                                                                            tmp_path: Path) -> None:
    rules = tmp_path / "rules.payer"
    rules.write_text("payer T\nset unused = M99.01-M99.05\nset used = M54.5*\n"
                     "requires diagnosis used, M54.50, M99.01-M99.05, M99.03, M62.830\n")
    codes = [d.code for d in lint_source(Source(str(rules), rules.read_text()))]
    assert codes == ["W105", "W130", "W130"]
    assert text_snapshot == render_transcript(["lint", str(rules)]).replace(str(tmp_path), "<tmp>")


FORMATTED = """\
payer T
set cmt = 98940-98942
set subluxation = M99.01-M99.05, M62.83*
set l5 = M99.03
set back = subluxation, l5
subluxation: requires primary diagnosis subluxation, l5 for cmt carc 11
not covered with primary diagnosis Z00.00, Z01* for cmt
requires diagnosis for cmt warn
requires diagnosis back, M40-M54 source "Manual 4.2"
"""


def test_fmt_round_trips_the_new_syntax() -> None:
    messy = ("payer T\nset cmt = 98941 - 98942,98940\nset subluxation = m99.01 -m99.05,M62.83*\nset l5 = M99.03\n"
             "set  back = subluxation,l5\nsubluxation: requires  PRIMARY diagnosis subluxation,l5 for cmt carc 11\n"
             "not covered with primary DIAGNOSIS z00.00, Z01* for cmt\nrequires diagnosis for cmt WARN\n"
             'requires diagnosis back, m40-M54 source "Manual 4.2"\n')
    assert format_text(messy) == FORMATTED
    assert format_text(FORMATTED) == FORMATTED
    compiled = policy(FORMATTED.split("\n", 1)[1])
    assert [r.kind for r in compiled.rules] == ["requires_diagnosis", "not_covered_diagnosis", "requires_diagnosis",
                                               "requires_diagnosis"]


def test_explain_shows_the_primary_diagnosis(text_snapshot: SnapshotAssertion, tmp_path: Path) -> None:
    rules = tmp_path / "medicare.payer"
    rules.write_text(f'payer MC "Medicare (example)"\n{MEDICARE}')
    asked = ["explain", str(rules), "--code", "98941", "--credential", "DC", "--diagnosis", "M54.50",
             "--diagnosis", "M99.03", "--date", "2024-03-04"]
    code, out, _ = transcript(asked)
    assert code == 1 and "M54.50 as the primary diagnosis (then M99.03)" in " ".join(out.split())
    assert text_snapshot == render_transcript(asked).replace(str(tmp_path), "<tmp>")
    code, out, _ = transcript([*asked[:6], "--diagnosis", "M99.03", "--diagnosis", "M54.50", *asked[10:]])
    assert code == 0 and "primary diagnosis is M99.03" in out


def test_the_built_module_decides_primary_diagnoses_and_ranges_like_check(tmp_path: Path) -> None:
    compiled = compile_source(Source("medicare.payer", f"payer MC\n{MEDICARE}not covered with diagnosis Z00-Z01\n"))
    module = tmp_path / "medicare_rules.py"
    module.write_text(standalone.build([compiled]))
    sessions = [{"session_id": sid, "patient_id": "P", "date": "2024-03-04", "payer": "MC",
                 "provider_npi": "1184029555", "provider_credential": "DC",
                 "lines": [{"code": code, "charge": "50", "diagnoses": dx}]}
                for sid, code, dx in [("A", "98941", ["M99.03", "M54.50"]), ("B", "98941", ["M54.50", "M99.03"]),
                                      ("C", "97124", ["M54.50", "Z01.00"]), ("D", "98942", ["M99.05"])]]
    report = run_isolated(module, sessions)
    expected = api.compile_text(f"payer MC\n{MEDICARE}not covered with diagnosis Z00-Z01\n", "medicare.payer")
    assert report == json.loads(json.dumps(expected.check(sessions).to_dict()))
    assert [ln["status"] for s in report["sessions"] for ln in s["lines"]] == ["paid", "denied", "denied", "paid"]


def test_an_editor_hover_on_a_diagnosis_set_shows_its_diagnoses() -> None:
    from payrules.lsp.analysis import Analysis, hover

    text = f"payer T\n{MEDICARE}requires diagnosis subluxation, M54.5* for 97124\n"
    analysis = Analysis.of("rules.payer", text)
    found = hover(analysis, text.index("subluxation, M54"))
    assert found is not None and found[0] == "**diagnosis set `subluxation`**: M99.01-M99.05"
    found = hover(analysis, text.index("subluxation for"))
    assert found is not None and found[0] == "**diagnoses**: M99.01-M99.05"


def test_editors_highlight_diagnosis_sets_ranges_and_primary() -> None:
    from test_textmate import tokenize

    assert tokenize("set subluxation = M99.00-M99.05, M62.83*") == [
        ("set", "keyword.other.payer"), ("subluxation", "entity.name.type.set.payer"),
        ("=", "keyword.operator.assignment.payer"), ("M99.00", "constant.other.diagnosis.payer"),
        ("-", "punctuation.separator.range.payer"), ("M99.05", "constant.other.diagnosis.payer"),
        (",", "punctuation.separator.comma.payer"), ("M62.83*", "constant.other.diagnosis.payer")]
    assert tokenize("requires primary diagnosis subluxation, M40-M54 for 98940-98942 warn") == [
        ("requires", "keyword.other.payer"), ("primary", "keyword.other.payer"), ("diagnosis", "keyword.other.payer"),
        ("subluxation", "variable.other.payer"), (",", "punctuation.separator.comma.payer"),
        ("M40", "constant.other.diagnosis.payer"), ("-", "punctuation.separator.range.payer"),
        ("M54", "constant.other.diagnosis.payer"), ("for", "keyword.other.payer"),
        ("98940-98942", "constant.numeric.code-range.payer"), ("warn", "keyword.other.payer")]


def test_an_editor_completes_diagnosis_sets_and_not_credentials_after_requires_primary() -> None:
    from payrules.lsp.analysis import Analysis, completions

    analysis = Analysis.of("rules.payer", f"payer T\n{MEDICARE}")
    offered = {(item.label, item.kind): item.detail for item in completions(analysis, "requires primary ")}
    assert offered[("subluxation", "set")] == "M99.01-M99.05"
    assert ("requires primary diagnosis DIAGNOSES for CODES", "snippet") in offered


WORDS = ["set", "sub", "=", "requires", "primary", "diagnosis", "not", "covered", "with", "for", "only", "source",
         '"x"', "carc", "11", "rarc", "M76", "warn", "effective", "from", "2024-01-01", ",", "-", "*", ".", "M99.01",
         "M99.05", "M54.5*", "M40", "M54", "97124", "98940-98942", "S8990", "M5450", "l5", "724.2", "Z*", "massage"]


@given(lines=st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=9).map(" ".join), min_size=1, max_size=4))
def test_any_mix_of_diagnosis_syntax_compiles_or_gets_worded_errors(lines: list[str]) -> None:
    text = "payer T\nset massage = 97124\n" + "\n".join(lines) + "\n"
    try:
        compiled = api.compile_text(text, "rules.payer")
    except CompileError as error:
        assert error.diagnostics and all(d.code[0] in "EW" and d.message for d in error.diagnostics)
        return
    formatted = format_text(text)  # a file that compiles is laid out once and for all, to the same rules
    assert format_text(formatted) == formatted
    again = api.compile_text(formatted, "rules.payer")
    assert [r.kind for r in again.policies[0].rules] == [r.kind for r in compiled.policies[0].rules]


ITEMS = st.sampled_from(["M99.01", "m99.03", "M9905", "M54.5*", "m62.83*", "M99.00-M99.05", "m40 - M54", "Z00*",
                         "S13.4XXA-S13.4XXD", "sub", "l5"])
STATEMENTS = st.sampled_from(["requires diagnosis {} for 98940-98942", "REQUIRES PRIMARY diagnosis {}",
                              "not covered with diagnosis {} for massage", "not covered with primary diagnosis {}",
                              "requires  diagnosis {}  warn"])


@pytest.mark.usefixtures("no_code_set")
@given(rules=st.lists(st.tuples(STATEMENTS, st.lists(ITEMS, min_size=1, max_size=4)), min_size=1, max_size=4),
       diagnoses=st.lists(st.lists(st.sampled_from(["M99.01", "M99.03", "M54.50", "Z00.00", "M47.812", "S13.4XXB"]),
                                   max_size=3), min_size=1, max_size=6))
def test_formatting_diagnosis_lists_never_changes_a_decision(rules: list[tuple[str, list[str]]],
                                                             diagnoses: list[list[str]]) -> None:
    text = "payer T\nset massage = 97124\nset sub = M99.01-M99.05\nset l5 = M99.03\n" + "".join(
        template.format(",".join(items)) + "\n" for template, items in rules)
    formatted = format_text(text)
    assert format_text(formatted) == formatted
    lines = [line(code, session=str(i), diagnoses=" ".join(dx)) for i, dx in enumerate(diagnoses)
             for code in ("98941", "97124")]
    before = run_policy(compile_source(Source("t.payer", text)), *lines)
    after = run_policy(compile_source(Source("t.payer", formatted)), *lines)
    assert outcomes(after) == outcomes(before)
    assert reasons(after) == reasons(before)


def test_a_range_written_with_spaces_is_shown_without_them() -> None:
    report = run("requires diagnosis m99.01 - M99.05 for 98941", line("98941", diagnoses="M54.50"))
    assert "matching M99.01-M99.05." in report.sessions[0].lines[0].reasons[0].message


def test_an_included_diagnosis_set_and_the_first_mapped_column_as_primary(tmp_path: Path) -> None:
    (tmp_path / "sets.payer").write_text("set subluxation = M99.00-M99.05\n")
    rules = tmp_path / "plan.payer"
    rules.write_text('payer PLAN\ninclude "sets"\nrequires primary diagnosis subluxation for 98940-98942\n')
    columns = tmp_path / "columns.toml"
    columns.write_text('[columns]\ndiagnoses = ["Dx 1", "Dx 2"]\n')
    export = tmp_path / "export.csv"
    export.write_text("session_id,patient_id,date,payer,provider_npi,provider_credential,code,charge,Dx 2,Dx 1\n"
                      "A,P1,2024-03-04,PLAN,1184029555,DC,98940,45.00,M54.50,M99.03\n"
                      "B,P2,2024-03-04,PLAN,1184029555,DC,98940,45.00,M99.03,M54.50\n")
    code, out, err = transcript(["check", str(export), "--rules", str(rules), "--columns", str(columns),
                                 "--format", "json"])
    assert [ln["status"] for s in json.loads(out)["sessions"] for ln in s["lines"]] == ["paid", "denied"], err
