"""Reason codes a payer would send, `only with` lists that overlap, warnings worded as
warnings, and `let` names for amounts, shares and numbers."""

from __future__ import annotations

import csv
import io
import json
import typing
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from conftest import render_transcript, transcript
from helpers import NPI_DC, line, outcomes, policy, run, run_policy
from syrupy.assertion import SnapshotAssertion
from test_standalone import run_isolated

from payrules import ast
from payrules.compiler import compile_file
from payrules.diagnostics import CompileError
from payrules.fmt import format_text
from payrules.lint import lint_source
from payrules.source import Source


def reasons_of(report: typing.Any) -> list[list[tuple[str, str, str | None]]]:
    """(kind, CARC, RARC) of every reason of every judged line, in order."""
    return [[(r.kind, r.carc, r.rarc) for r in l.reasons] for s in report.sessions for l in s.lines]


def messages(report: typing.Any) -> list[str]:
    return [r.message for s in report.sessions for l in s.lines for r in l.reasons]


# --- a used-up benefit is CARC 119 --------------------------------------------------------------


def test_a_used_up_yearly_money_benefit_is_carc_119_not_45() -> None:
    report = run("max $100 per calendar year for 97124",
                 line("97124", "60.00", session="A", date="2024-03-04"),
                 line("97124", "60.00", session="B", date="2024-03-11"),
                 line("97124", "60.00", session="C", date="2024-03-18"))
    assert outcomes(report) == [("97124", "paid", "60.00"), ("97124", "reduced", "40.00"),
                                ("97124", "reduced", "0.00")]
    # A partial cut and a cut to nothing are both the part over the benefit maximum.
    assert reasons_of(report) == [[], [("max_amount", "119", "N130")], [("max_amount", "119", "N130")]]
    assert messages(report)[-1] == (
        "This payer allows at most $100.00 per calendar year for 97124, and $100.00 was already allowed since "
        "2024-01-01, so the benefit is used up: allowed reduced from $60.00 to $0.00.")


@pytest.mark.parametrize("period", ["week", "month", "calendar year", "plan year from July 1", "30 days",
                                    "lifetime"])
def test_every_benefit_period_is_carc_119(period: str) -> None:
    report = run(f"max $50 per {period} for 97124\nmax 2 units of 97124 per {period}\n"
                 f"max 1 visit per {period} for 97140",
                 line("97124", "60.00", units=3, session="A"), line("97140", "30.00", session="B"),
                 line("97140", "30.00", session="C", date="2024-03-06"))
    found = {reason for line_reasons in reasons_of(report) for reason in line_reasons}
    assert found == {("max_amount", "119", "N130"), ("max_units", "119", "N640"),
                     ("max_visits", "119", "N640")}


def test_fees_and_caps_per_line_session_or_day_stay_carc_45_and_151() -> None:
    report = run("max $20 per unit for 97124\nmax $50 per line\nmax $45 per session\nmax $40 per day\n"
                 "max 1 unit of 97140 per day",
                 line("97124", "60.00", units=2), line("97140", "60.00", units=2))
    assert reasons_of(report) == [
        [("max_amount", "45", None)],
        [("max_amount", "45", None), ("max_amount", "45", None), ("max_amount", "45", None),
         ("max_units", "151", "N362")],
    ]


# --- a CARC written without a RARC --------------------------------------------------------------


def test_carc_alone_drops_the_default_remark_code() -> None:
    report = run("requires modifier GP on 97110 carc 50\nno 97124 same day as 98940 carc 96 rarc N130\n"
                 "max 12 visits per calendar year carc 119\nnot payable by LMT for 97140 carc 185",
                 line("97110"), line("97124"), line("98940", npi=NPI_DC, credential="DC"), line("97140"))
    assert reasons_of(report) == [
        [("requires_modifier", "50", None)],  # not 50 with N822, a pair no payer sends
        [("no_same_day", "96", "N130")],       # `rarc` sets the remark code
        [],
        [("not_payable_by", "185", None)],     # not 185 with N95
    ]
    assert policy("max 12 visits per calendar year carc 119").rules[0].rarc == "N640"  # the default CARC keeps it


def test_a_carc_that_needs_a_remark_code_warns_without_one() -> None:
    found = lint_source(Source("t.payer", "payer T\nonly 97140 carc 96\nonly 97140 carc 234 rarc M15\n"))
    assert [(d.code, d.span.line, d.message) for d in found] == [
        ("W112", 2, "CARC 96 needs a remark code, and this rule gives none")]


SUPPORTED_PAIRS: dict[tuple[str, str | None], str] = {
    # (CARC, RARC) -> the situation of the published CARC and RARC lists the pair answers.
    ("204", None): "not a plan benefit",
    ("96", "N130"): "non-covered; consult plan benefit documents",
    ("97", "N20"): "bundled: not payable with another service on the same date",
    ("97", "M15"): "bundled: components of the same procedure",
    ("B15", None): "needs a qualifying service",
    ("4", "N822"): "procedure code inconsistent with the modifier; missing modifier",
    ("170", "N95"): "provider type not paid; this provider type may not bill this service",
    ("45", None): "over the fee schedule or maximum allowable",
    ("119", "N130"): "benefit maximum reached; consult plan benefit documents",
    ("119", "N640"): "benefit maximum reached; exceeds the number or frequency allowed in the period",
    ("151", "N362"): "frequency not supported; units exceed the acceptable maximum",
    ("151", None): "frequency not supported",
    ("18", None): "duplicate",
    ("173", None): "not prescribed by a physician",
    ("11", None): "diagnosis inconsistent with the procedure",
    ("167", None): "diagnosis not covered",
    ("236", "N20"): "not compatible with another procedure on the same day under NCCI; not payable with it",
}
NEEDS_REMARK = {"16", "96", "234"}

EVERY_KIND = {
    "only": ["only 97140"],
    "not_covered": ["not covered 97010"],
    "no_same_day": ["no 97124 same day as 98940"],
    "only_with": ["97124 only with 98940 same day"],
    "requires_modifier": ["requires modifier GP on 97110"],
    "not_payable_by": ["not payable by LMT"],
    "max_amount": [f"max $45 per {p}" for p in ("unit", "line", "session", "day", "week", "month", "calendar year",
                                               "plan year from July 1", "30 days", "lifetime")],
    "max_units": [f"max 4 units per {p}" for p in ("line", "session", "day", "week", "month", "calendar year",
                                                  "plan year from July 1", "30 days", "lifetime")],
    "max_visits": [f"max 4 visits per {p}" for p in ("day", "week", "month", "calendar year",
                                                    "plan year from July 1", "30 days", "lifetime")],
    "max_minutes": ["max 60 minutes per session"],
    "time_rule": ["units by cms rule for 97140"],
    "one_of": ["one of 97124, 97140 per session"],
    "bundled": ["97010 bundled into 97140"],
    "no_duplicate": ["no duplicate same day"],
    "requires_credential": ["requires DC NPI"],
    "requires_prescription": ["requires prescription"],
    "requires_diagnosis": ["requires diagnosis"],
    "not_covered_diagnosis": ["not covered with diagnosis Z00*"],
    "ncci_ptp": [],  # statements that read table files: from the NCCI example's rule file
    "ncci_mue": [],
}
NCCI_RULES = Path(__file__).resolve().parents[1] / "examples" / "ncci-tables" / "rules.payer"


def test_every_statement_kind_is_listed_here() -> None:
    assert {kind.kind for kind in typing.get_args(ast.Statement)} == set(EVERY_KIND)


@pytest.mark.parametrize("kind", sorted(EVERY_KIND))
def test_every_default_pair_is_one_domain_facts_support(kind: str) -> None:
    rules = [(text, policy(text).rules[0]) for text in EVERY_KIND[kind]]
    if kind.startswith("ncci_"):
        rules = [(kind, rule) for rule in compile_file(NCCI_RULES).rules if rule.kind == kind]
    assert rules
    for text, rule in rules:
        assert rule.kind == kind
        assert (rule.carc, rule.rarc) in SUPPORTED_PAIRS, text
        assert rule.carc not in NEEDS_REMARK or rule.rarc, text


# --- `only with` lists that share codes ---------------------------------------------------------


def test_two_lines_of_one_code_do_not_qualify_each_other() -> None:
    rules = "97124 only with 97124, 98940 same day"
    report = run(rules, line("97124", session="A"), line("97124", session="B"))
    assert outcomes(report) == [("97124", "denied", "0.00"), ("97124", "denied", "0.00")]
    assert messages(report)[0] == (
        "This payer pays 97124 only with 97124, 98940 on the same day, and this patient has none of them on "
        "2024-03-05 but 97124 itself; a line is not qualified by a line of its own code.")
    paid = run(rules, line("97124", session="A"), line("98940", npi=NPI_DC, credential="DC", session="B"))
    assert outcomes(paid) == [("97124", "paid", "50.00"), ("98940", "paid", "50.00")]


def test_lines_of_different_shared_codes_qualify_each_other() -> None:
    rules = "97124, 97140 only with 97124, 97140 same session"
    both = run(rules, line("97124"), line("97140"))
    assert outcomes(both) == [("97124", "paid", "50.00"), ("97140", "paid", "50.00")]
    apart = run(rules, line("97124", session="A"), line("97140", session="B"))
    assert outcomes(apart) == [("97124", "denied", "0.00"), ("97140", "denied", "0.00")]


def test_lint_warns_when_only_with_lists_share_codes(text_snapshot: SnapshotAssertion, tmp_path: Path) -> None:
    path = Path("tests/cases/reasons-lint/only-with-lists-share-codes.payer")
    found = lint_source(Source(str(path), path.read_text()))
    assert [(d.code, d.span.line) for d in found] == [("W111", 5), ("W111", 6), ("W111", 7)]
    assert text_snapshot == render_transcript(["lint", str(path)])


def test_only_with_case_file_passes() -> None:
    code, out, err = transcript(["test", "tests/cases/reasons"])
    assert code == 0, out + err
    assert "two 97124 lines do not qualify each other" in out


# --- warnings say what would happen -------------------------------------------------------------


WARN_RULES = "payer T\nonly 97140 warn\nmax $45 per session warn\nmax 2 units of 97140 per session warn\n"
WARN_SESSIONS = ("session_id,patient_id,date,payer,provider_npi,provider_credential,code,units,charge\n"
                 "S1,P1,2024-03-05,T,1548230675,LMT,97124,1,30.00\n"
                 "S1,P1,2024-03-05,T,1548230675,LMT,97140,3,60.00\n")


def _warn_files(tmp_path: Path) -> tuple[str, str]:
    rules, sessions = tmp_path / "warn.payer", tmp_path / "sessions.csv"
    rules.write_text(WARN_RULES)
    sessions.write_text(WARN_SESSIONS)
    return str(rules), str(sessions)


def test_warnings_read_as_what_would_happen(tmp_path: Path, text_snapshot: SnapshotAssertion) -> None:
    rules, sessions = _warn_files(tmp_path)
    code, out, err = transcript(["check", sessions, "--rules", rules])
    assert "May be" not in out and "is not covered" not in out and "allowed reduced" not in out
    assert text_snapshot == out.replace(str(tmp_path), "TMP")


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_warnings_are_worded_alike_in_every_format(tmp_path: Path, fmt: str) -> None:
    rules, sessions = _warn_files(tmp_path)
    text_out = transcript(["check", sessions, "--rules", rules, "--format", "json"])[1]
    expected = sorted(r["message"] for s in json.loads(text_out)["sessions"] for l in s["lines"]
                      for r in l["reasons"])
    assert expected == [
        "Would be denied if the payer applies this rule (a warning: the amount is not changed): 97124 would not be "
        "covered: this payer pays only for 97140.",
        "Would be reduced to $15.00 if the payer applies this rule (a warning: the amount is not changed): This "
        "payer allows at most $45.00 per session: allowed would be reduced from $60.00 to $15.00.",
        "Would be reduced to $40.00 if the payer applies this rule (a warning: the amount is not changed): Earlier "
        "lines of this session used 0 of the 2 units of 97140 this payer allows per session; 3 were billed on "
        "this line, 2 can be paid: allowed would be reduced from $60.00 to $40.00.",
    ]
    out = transcript(["check", sessions, "--rules", rules, "--format", fmt])[1]
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out)))
        text = "\n".join(" ".join(row.values()) for row in rows)
    else:
        text = out
    for message in expected:
        assert message in text or json.dumps(message)[1:-1] in text
    assert "May be" not in text


# --- `let`: named amounts, shares and numbers ---------------------------------------------------


LET_RULES = """\
let pt_daily_max = $120
let massage_share = 75%
let massage_units = 4
let visits = 2
let cycle = 30
max pt_daily_max per day for 97110
max massage_units units of 97124 per day
max massage_share of pt_daily_max per day for 97124
max 50% of pt_daily_max per session for 97530
max massage_share of charge for 97010
max visits visits per cycle days for 97140
"""


def test_let_names_stand_for_their_values() -> None:
    report = run(LET_RULES, line("97110", "200.00"), line("97124", "150.00", units=5), line("97530", "100.00"),
                 line("97010", "20.00"),
                 line("97140", "20.00", session="B", date="2024-03-06"),
                 line("97140", "20.00", session="C", date="2024-03-07"),
                 line("97140", "20.00", session="D", date="2024-03-08"))
    assert outcomes(report) == [("97110", "reduced", "120.00"), ("97124", "reduced", "90.00"),
                                ("97530", "reduced", "60.00"), ("97010", "reduced", "15.00"),
                                ("97140", "paid", "20.00"), ("97140", "paid", "20.00"), ("97140", "denied", "0.00")]


def test_let_names_are_shown_with_their_values(text_snapshot: SnapshotAssertion) -> None:
    report = run(LET_RULES, line("97110", "200.00"), line("97124", "150.00", units=5), line("97530", "100.00"),
                 line("97010", "20.00"),
                 line("97140", "20.00", session="B", date="2024-03-06"),
                 line("97140", "20.00", session="C", date="2024-03-07"),
                 line("97140", "20.00", session="D", date="2024-03-08"))
    text = "\n".join(messages(report))
    assert "massage_share (75%) of pt_daily_max ($120.00), that is $90.00," in text
    assert text_snapshot == text + "\n"


def test_the_same_policy_with_literals_decides_the_same() -> None:
    written = "\n".join(text for text in LET_RULES.splitlines() if not text.startswith("let "))
    for name, value in (("massage_share", "75%"), ("pt_daily_max", "$120"), ("massage_units", "4"),
                        ("visits visits", "2 visits"), ("cycle", "30")):
        written = written.replace(name, value)
    lines = (line("97110", "200.00"), line("97124", "150.00", units=5), line("97530", "100.00"),
             line("97010", "20.00"), line("97140", "20.00", session="B", date="2024-03-06"),
             line("97140", "20.00", session="C", date="2024-03-07"),
             line("97140", "20.00", session="D", date="2024-03-08"))
    assert "let" not in written and "max 75% of $120 per day for 97124" in written
    assert outcomes(run(written, *lines)) == outcomes(run(LET_RULES, *lines))


def test_let_mistakes_are_worded(text_snapshot: SnapshotAssertion) -> None:
    code, out, err = transcript(["lint", "tests/cases/reasons-lint/let-mistakes.payer"])
    assert code == 1
    found = {line.split()[0] for line in out.splitlines() if line[:1] in "EW" and line[1:4].isdigit()}
    assert {"E120", "E121", "E122", "E205", "E208", "E215"} <= found
    assert text_snapshot == out


def test_an_unused_let_is_a_lint_warning() -> None:
    found = lint_source(Source("t.payer", "payer T\nlet cap = $45\nlet spare = $50\nmax cap per session\n"))
    assert [(d.code, d.span.line, d.message) for d in found] == [
        ("W110", 3, "`spare` is given a value but never used")]


def test_let_names_are_shared_with_included_files(tmp_path: Path) -> None:
    (tmp_path / "figures.payer").write_text("let pt_daily_max = $120\n")
    (tmp_path / "caps.payer").write_text("cap: max 75% of pt_daily_max per day for 97124\n")
    main = tmp_path / "main.payer"
    main.write_text('payer T\ninclude "figures"\ninclude "caps"\n')
    report = run_policy(compile_file(main), line("97124", "100.00"))
    assert outcomes(report) == [("97124", "reduced", "90.00")]
    main.write_text('payer T\ninclude "figures"\nlet pt_daily_max = $100\n')
    with pytest.raises(CompileError) as raised:
        compile_file(main)
    assert [d.code for d in raised.value.diagnostics] == ["E122"]


def test_fmt_keeps_let_lines_and_round_trips() -> None:
    text = "payer T\nLET  cap=$45\nlet   SHARE = 75%\nmax SHARE  OF cap PER session\nmax cap PER day\n"
    formatted = format_text(text)
    assert formatted == "payer T\nlet cap = $45\nlet SHARE = 75%\nmax SHARE of cap per session\nmax cap per day\n"
    assert format_text(formatted) == formatted
    lines = (line("97124", "60.00"),)
    assert outcomes(run(formatted.split("\n", 1)[1], *lines)) == outcomes(run(text.split("\n", 1)[1], *lines))


def test_a_built_module_with_let_decides_like_check(tmp_path: Path) -> None:
    rules = tmp_path / "rules.payer"
    rules.write_text(Path("stdlib_rules/pt-ot-daily-max.payer").read_text())
    sessions = tmp_path / "sessions.csv"
    sessions.write_text("session_id,patient_id,date,payer,provider_npi,provider_credential,code,units,charge\n"
                        "S1,P1,2024-03-05,TEMPLATE-PT-DAILY-MAX,1548230675,LMT,97124,5,150.00\n"
                        "S1,P1,2024-03-05,TEMPLATE-PT-DAILY-MAX,1000000004,PT,97110,3,150.00\n")
    module = tmp_path / "built_rules.py"
    assert transcript(["build", str(rules), "-o", str(module)])[0] == 0
    checked = json.loads(transcript(["check", str(sessions), "--rules", str(rules), "--format", "json"])[1])
    records = [{"session_id": "S1", "patient_id": "P1", "date": "2024-03-05", "payer": "TEMPLATE-PT-DAILY-MAX",
                "provider_npi": npi, "provider_credential": credential,
                "lines": [{"code": code, "units": units, "charge": charge}]}
               for npi, credential, code, units, charge in (("1548230675", "LMT", "97124", 5, "150.00"),
                                                            ("1000000004", "PT", "97110", 3, "150.00"))]
    built = run_isolated(module, records)  # a fresh interpreter with the standard library only
    assert [l["allowed"] for s in built["sessions"] for l in s["lines"]] == ["90.00", "120.00"]
    assert [l["allowed"] for s in checked["sessions"] for l in s["lines"]] == ["90.00", "120.00"]
    assert "massage_share (75%) of pt_daily_max ($120.00)" in json.dumps(built)


def test_the_editor_shows_let_names_and_the_reason_codes_a_rule_sends() -> None:
    from payrules.lsp import analysis

    text = "payer T\nlet cap = $45\nmax cap per session\nmax $500 per calendar year carc 96\n"
    document = analysis.Analysis.of("t.payer", text)
    use = text.index("cap per")
    found = analysis.hover(document, use + 1)
    assert found is not None and found[0] == "**`cap`** = $45 (an amount)"
    target = analysis.definition(document, use + 1)
    assert not isinstance(target, str) and target is not None and (target.line, target.column) == (2, 5)
    yearly, _ = analysis.hover(document, text.index("calendar")) or ("", None)
    assert "Default CARC 119, RARC N130; this rule: CARC 96." in yearly
    assert ("cap", "value") in {(item.label, item.kind) for item in analysis.completions(document, "max ")}


@st.composite
def _limits(draw: st.DrawFn) -> tuple[str, str]:
    """The same random limits written with literals and with `let` names: (literal, named)."""
    cents = draw(st.integers(0, 30_000))
    money = f"${cents // 100:,}.{cents % 100:02d}"
    percent = f"{draw(st.integers(0, 15_000)) / 100:g}%"
    count = str(draw(st.integers(0, 6)))
    days = str(draw(st.integers(1, 60)))
    period = draw(st.sampled_from(["session", "day", "week", f"{days} days", "calendar year"]))
    code = draw(st.sampled_from(["97124", "97140"]))
    literal = "\n".join([
        f"max {percent} of {money} per {period} for {code}",
        f"max {count} units of 97124, 97140 per {period}",
        f"max {count} visits per {days} days for 97140",
        f"max {percent} of charge for 97110",
        f"max {money} per unit for 98940",
    ])
    lets = f"let m = {money}\nlet s = {percent}\nlet n = {count}\nlet d = {days}\n"
    named = "\n".join([
        f"max s of m per {period.replace(f'{days} days', 'd days')} for {code}",
        f"max n units of 97124, 97140 per {period.replace(f'{days} days', 'd days')}",
        "max n visits per d days for 97140",
        "max s of charge for 97110",
        "max m per unit for 98940",
    ])
    return literal, lets + named


@given(_limits(), st.lists(st.tuples(st.sampled_from(["97124", "97140", "97110", "98940"]), st.integers(1, 5),
                                     st.integers(1, 40_000), st.integers(1, 28)), min_size=1, max_size=8))
def test_let_names_decide_as_their_literals_do(limits: tuple[str, str],
                                               billed: list[tuple[str, int, int, int]]) -> None:
    literal, named = limits
    lines = [line(code, f"{charge // 100}.{charge % 100:02d}", units=units, session=f"S{day}",
                  date=f"2024-02-{day:02d}") for code, units, charge, day in sorted(billed, key=lambda b: b[3])]
    by_literal, by_name = run(literal, *lines), run(named, *lines)
    assert outcomes(by_name) == outcomes(by_literal)
    assert reasons_of(by_name) == reasons_of(by_literal)
