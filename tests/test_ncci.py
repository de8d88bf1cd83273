"""`apply ncci ptp` and `apply ncci mue`: CMS's NCCI tables as rule data. Decisions (rows in
force on the date of service, modifier indicators, one provider, MUE indicators), diagnostics
that point into the table file, the cache, the standalone module without the tables, and the
cross-check against the equivalent hand-written `no … same day as … unless modifier` rules."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import ROOT, render_transcript, transcript
from helpers import NPI_DC, NPI_LMT, line, outcomes, run_policy
from hypothesis import given, settings
from hypothesis import strategies as st
from syrupy.assertion import SnapshotAssertion

from payrules import api
from payrules.compiler import compile_source
from payrules.diagnostics import CompileError
from payrules.fmt import format_text
from payrules.ncci import NCCI_MODIFIERS
from payrules.runtime import Line
from payrules.source import Source

EXAMPLE = ROOT / "examples" / "ncci-tables"
HEADER = ("Hand-made test table in the layout of CMS's practitioner PTP table, not CMS data.\n"
          "Column1\tColumn2\t*=in existence prior to 1996\tEffective Date\tDeletion Date *=no data\t"
          "Modifier 0=not allowed 1=allowed 9=not applicable\tPTP Edit Rationale\n")
MUE_HEADER = ('"Hand-made test table in the layout of CMS\'s practitioner MUE table, not CMS data."\n'
              "HCPCS/CPT Code,Practitioner Services MUE Values,MUE Adjudication Indicator,MUE Rationale\n")


def ptp_table(*rows: tuple[str, str, str, str, str]) -> str:
    """A PTP table: (column 1, column 2, effective YYYYMMDD, deletion or `*`, indicator) per row."""
    return HEADER + "".join(f"{c1}\t{c2}\t\t{eff}\t{deleted}\t{ind}\tMade-up test edit\n"
                            for c1, c2, eff, deleted, ind in rows)


def compiled(folder: Path, rules: str, tables: dict[str, str]):  # type: ignore[no-untyped-def]
    for name, text in tables.items():
        (folder / name).write_text(text, encoding="utf-8")
    path = folder / "rules.payer"
    path.write_text(f"payer T\n{rules}\n", encoding="utf-8")
    return api.compile_file(path)


# --- the issue: pair edits come from CMS as data ----------------------------------------------------


def test_pair_edits_and_unit_limits_apply_from_cms_tables() -> None:
    # Before tables could be applied, each pair had to be written by hand; a PTP table and an
    # MUE table in CMS's layouts now decide, with reasons citing the table row.
    policy = api.compile_file(Path("examples/ncci-tables/rules.payer"))
    report = run_policy(policy,
                        line("98941", "55.00", npi=NPI_DC, payer="NCCI-SAMPLE"),
                        line("97140", "35.00", npi=NPI_DC, payer="NCCI-SAMPLE"),
                        line("97124", "30.00", npi=NPI_DC, payer="NCCI-SAMPLE", modifiers="XS"),
                        line("97112", "30.00", npi=NPI_DC, payer="NCCI-SAMPLE", modifiers="GP"),
                        line("97140", "175.00", session="S2", patient="P2", units=5, payer="NCCI-SAMPLE"))
    assert outcomes(report) == [("98941", "paid", "55.00"), ("97140", "denied", "0.00"),
                                ("97124", "paid", "30.00"), ("97112", "denied", "0.00"),
                                ("97140", "denied", "0.00")]
    ptp = report.sessions[0].lines[1].reasons[0]
    assert (ptp.carc, ptp.rarc, ptp.rule) == ("236", "N20", "ncci-ptp")
    assert ptp.message.startswith("examples/ncci-tables/tables/ptp-sample.txt row 9: 97140 is a column-2 code of "
                                  "98941 (modifier indicator 1), billed on the same day by the same provider "
                                  "without an NCCI-associated modifier")
    mue = report.sessions[1].lines[0].reasons[0]
    assert (mue.carc, mue.rarc, mue.rule) == ("151", "N362", "ncci-mue")
    assert "mue-sample.csv row 5: the MUE of 97140 is 4 units per date of service" in mue.message


# --- PTP decisions --------------------------------------------------------------------------------------


def test_the_rows_in_force_on_the_date_of_service_apply(tmp_path: Path) -> None:
    # An active row and a deleted row for one pair: indicator 0 until 2024-01-01 (the deletion
    # date, on which the edit no longer applies), indicator 1 from then on.
    policy = compiled(tmp_path, 'apply ncci ptp "ptp.txt"', {"ptp.txt": ptp_table(
        ("97124", "97010", "20200101", "20240101", "0"), ("97124", "97010", "20240101", "*", "1"))})
    for date, expected in [("2019-12-31", "paid"), ("2023-12-31", "denied"), ("2024-01-01", "paid")]:
        report = run_policy(policy, line("97124", date=date), line("97010", "15.00", date=date, modifiers="59"))
        assert outcomes(report)[1][1] == expected, date


def test_indicator_0_is_never_bypassed_and_9_is_no_edit(tmp_path: Path) -> None:
    policy = compiled(tmp_path, 'apply ncci ptp "ptp.txt"', {"ptp.txt": ptp_table(
        ("98940", "97140", "19990401", "*", "0"), ("98940", "97124", "19990401", "*", "9"))})
    report = run_policy(policy, line("98940"), line("97140", modifiers="59 XS"), line("97124"))
    assert outcomes(report) == [("98940", "paid", "50.00"), ("97140", "denied", "0.00"), ("97124", "paid", "50.00")]
    assert "modifier indicator 0: no modifier bypasses it" in report.sessions[0].lines[1].reasons[0].message


@pytest.mark.parametrize("modifier", sorted(NCCI_MODIFIERS))
def test_every_ncci_associated_modifier_bypasses_indicator_1(tmp_path: Path, modifier: str) -> None:
    policy = compiled(tmp_path, 'apply ncci ptp "ptp.txt"', {"ptp.txt": ptp_table(("98940", "97140", "19990401", "*", "1"))})
    assert outcomes(run_policy(policy, line("98940"), line("97140", modifiers=modifier)))[1][1] == "paid"


def test_other_modifiers_do_not_bypass_indicator_1(tmp_path: Path) -> None:
    policy = compiled(tmp_path, 'apply ncci ptp "ptp.txt"', {"ptp.txt": ptp_table(("98940", "97140", "19990401", "*", "1"))})
    report = run_policy(policy, line("98940"), line("97140", modifiers="GP KX"))
    assert outcomes(report)[1][1] == "denied"
    assert "This line's modifiers GP, KX are not NCCI-associated." in report.sessions[0].lines[1].reasons[0].message


def test_edits_apply_to_one_provider_across_the_sessions_of_a_day(tmp_path: Path) -> None:
    policy = compiled(tmp_path, 'apply ncci ptp "ptp.txt"', {"ptp.txt": ptp_table(("98940", "97140", "19990401", "*", "1"))})
    same = run_policy(policy, line("98940", session="A", npi=NPI_DC), line("97140", session="B", npi=NPI_DC))
    other = run_policy(policy, line("98940", session="A", npi=NPI_DC), line("97140", session="B", npi=NPI_LMT))
    next_day = run_policy(policy, line("98940", session="A"), line("97140", session="B", date="2024-03-06"))
    assert [o[1] for o in outcomes(same)] == ["paid", "denied"]
    assert [o[1] for o in outcomes(other)] == ["paid", "paid"]
    assert [o[1] for o in outcomes(next_day)] == ["paid", "paid"]
    assert "(in session A, line 1)" in same.sessions[1].lines[0].reasons[0].message


def test_the_four_parts_of_a_quarterly_table_can_be_listed_or_concatenated(tmp_path: Path) -> None:
    parts = [ptp_table(("98940", "97140", "19990401", "*", "1")), ptp_table(("98941", "97124", "19990401", "*", "0"))]
    listed = compiled(tmp_path, 'apply ncci ptp "f1.txt", "f2.txt"', {"f1.txt": parts[0], "f2.txt": parts[1]})
    joined = compiled(tmp_path, 'apply ncci ptp "all.txt"', {"all.txt": "".join(parts)})
    lines = (line("98940"), line("97140"), line("98941", session="B"), line("97124", session="B"))
    assert outcomes(run_policy(listed, *lines)) == outcomes(run_policy(joined, *lines))
    assert [o[1] for o in outcomes(run_policy(listed, *lines))] == ["paid", "denied", "paid", "denied"]
    reason = run_policy(listed, *lines).sessions[1].lines[1].reasons[0]
    assert reason.message.startswith(f"{tmp_path / 'f2.txt'} row 3: 97124 is a column-2 code of 98941")


# --- MUE decisions --------------------------------------------------------------------------------------


def test_mue_indicator_1_is_per_line_and_2_3_per_day_and_provider(tmp_path: Path) -> None:
    policy = compiled(tmp_path, 'apply ncci mue "mue.csv"', {"mue.csv": MUE_HEADER + (
        "97010,1,1 Line Edit,Made-up\n97140,4,3 Date of Service Edit: Clinical,Made-up\n"
        "98940,1,2 Date of Service Edit: Policy,Made-up\n")})
    per_line = run_policy(policy, line("97010", units=1), line("97010", units=1, modifiers="59"), line("97010", units=2))
    assert [o[1] for o in outcomes(per_line)] == ["paid", "paid", "denied"]
    # 3 + 2 units of 97140 for one provider: the earlier session is paid, all units of the later one denied.
    per_day = run_policy(policy, line("97140", session="A", units=3), line("97140", session="B", units=1),
                         line("97140", session="B", units=1), line("97140", session="C", units=4, npi=NPI_DC))
    assert [o[1] for o in outcomes(per_day)] == ["paid", "denied", "denied", "paid"]
    assert "billed 5 units of it for this patient on 2024-03-05, 3 of them in earlier sessions" in \
        per_day.sessions[1].lines[0].reasons[0].message
    assert [o[1] for o in outcomes(run_policy(policy, line("98940"), line("98940", session="B")))] == ["paid", "denied"]
    assert [o[1] for o in outcomes(run_policy(policy, line("97124", units=40)))] == ["paid"]  # no MUE for it


# --- files, cache, the standalone module ----------------------------------------------------------------


def test_diagnostics_point_into_the_table_files(text_snapshot: SnapshotAssertion) -> None:
    output = render_transcript(["lint", "tests/cases/ncci"])
    assert "tests/cases/ncci/tables/broken-ptp.txt:5:14" in output
    assert text_snapshot == output


def test_a_missing_table_stops_check_with_a_worded_error(text_snapshot: SnapshotAssertion) -> None:
    output = render_transcript(["check", "examples/ncci-tables/sessions.csv", "--rules",
                                "tests/cases/ncci/broken-mue.payer"])
    assert "exit_code: 2" in output and "Traceback" not in output
    assert text_snapshot == output


def test_an_edited_table_is_never_served_from_the_cache(tmp_path: Path) -> None:
    table = tmp_path / "ptp.txt"
    first = compiled(tmp_path, 'apply ncci ptp "ptp.txt"', {"ptp.txt": ptp_table(("98940", "97140", "19990401", "*", "1"))})
    assert [o[1] for o in outcomes(run_policy(first, line("98940"), line("97140")))] == ["paid", "denied"]
    table.write_text(ptp_table(("98940", "97140", "19990401", "*", "9")), encoding="utf-8")
    second = api.compile_file(tmp_path / "rules.payer")
    assert [o[1] for o in outcomes(run_policy(second, line("98940"), line("97140")))] == ["paid", "paid"]


def test_the_built_module_carries_the_tables(tmp_path: Path) -> None:
    built = tmp_path / "build" / "ncci_rules.py"
    built.parent.mkdir()
    code, _, err = transcript(["build", str(EXAMPLE), "-o", str(built)])
    assert (code, err) == (0, "")
    sessions = json.loads((EXAMPLE / "sessions.json").read_text())["sessions"]
    script = ("import json, sys\n"
              f"sys.path.insert(0, {str(built.parent)!r})\n"
              "import ncci_rules\n"
              "print(json.dumps(ncci_rules.check(json.load(sys.stdin))))\n")
    # In a fresh interpreter without site-packages, run from a folder that holds no table file.
    done = subprocess.run([sys.executable, "-I", "-S", "-c", script], input=json.dumps(sessions), capture_output=True,
                          text=True, check=True, cwd=tmp_path)
    report = json.loads(done.stdout)
    expected = api.check_files([Path("examples/ncci-tables/sessions.json")], Path("examples/ncci-tables")).to_dict()
    assert [l["status"] for s in report["sessions"] for l in s["lines"]] == \
        [l["status"] for s in expected["sessions"] for l in s["lines"]]
    assert "ptp-sample.txt row 9" in json.dumps(report)


def test_a_large_table_is_one_constant_in_the_generated_python(tmp_path: Path) -> None:
    rows = [(f"{90000 + i % 900}", f"{10000 + i}", "20000101", "*", str(i % 2)) for i in range(5_000)]
    policy = compiled(tmp_path, 'apply ncci ptp "ptp.txt"', {"ptp.txt": ptp_table(*rows)})
    assert len(policy.python.splitlines()) < 100
    assert [o[1] for o in outcomes(run_policy(policy, line("90007"), line("14507")))] == ["paid", "denied"]


def test_table_text_reaches_the_generated_python_only_as_data(tmp_path: Path) -> None:
    hostile = HEADER + "98940\t97140\t\t19990401\t*\t1\t'''); import os; os.system('x') #\n"
    policy = compiled(tmp_path, 'apply ncci ptp "ptp.txt"', {"ptp.txt": hostile})
    report = run_policy(policy, line("98940"), line("97140"))
    assert "The table's rationale: '''); import os; os.system('x') #." in report.sessions[0].lines[1].reasons[0].message


def test_format_round_trips_and_errors_stay_errors() -> None:
    text = 'payer T\nPTP : APPLY Ncci PTP   "a.txt" ,"b.txt"  carc 236\n'
    assert format_text(text) == 'payer T\nPTP: apply ncci ptp "a.txt", "b.txt" carc 236\n'
    with pytest.raises(CompileError) as error:
        compile_source(Source("t.payer", 'payer T\napply ncci edits "a.txt"\n'))
    assert "expected `mue` or `ptp`, found `edits`" in str(error.value)


# --- cross-check: the same decisions as the hand-written rules ---------------------------------------------

CODES = ["98940", "98941", "97140", "97124", "97112", "97010"]
MORE = settings(max_examples=5 * settings().max_examples)
"""Five times the profile's examples (`ci` by default, `HYPOTHESIS_PROFILE=long` for more): each
compiles two small policies, and a wrong date bound shows only on a few days."""
MODIFIERS = ["", "", "59", "XS", "GP", "RT", "59 GP"]


@st.composite
def ptp_rows(draw: st.DrawFn) -> list[tuple[str, str, str, str, str]]:
    found = []
    for _ in range(draw(st.integers(1, 6))):
        column1, column2 = draw(st.lists(st.sampled_from(CODES), min_size=2, max_size=2, unique=True))
        effective = draw(st.sampled_from(["19990401", "20200101", "20220615"]))
        deleted = draw(st.sampled_from(["*", "*", "20200101", "20221231", "20240101"]))
        found.append((column1, column2, effective, deleted, draw(st.sampled_from("0119"))))
    return found


def iso(compact: str) -> datetime.date:
    return datetime.date(int(compact[:4]), int(compact[4:6]), int(compact[6:]))


@st.composite
def day_lines(draw: st.DrawFn, rows: list[tuple[str, str, str, str, str]]) -> list[Line]:
    """Lines on the rows' own dates and the days before them (where a wrong bound shows), with
    codes mostly from the rows, one or two patients and providers."""
    bounds = {iso(day) for row in rows for day in row[2:4] if day != "*"}
    dates = sorted({str(day + datetime.timedelta(days=shift)) for day in bounds for shift in (-1, 0)})
    codes = sorted({code for row in rows for code in row[:2]}) + CODES
    date = draw(st.sampled_from(dates))
    # Most days hold one row's two codes by one provider: the case an edit is about.
    column1, column2 = draw(st.sampled_from(rows))[:2]
    npi = draw(st.sampled_from([NPI_DC, NPI_LMT]))
    found = [line(code, session="S1", date=date, npi=npi, modifiers=draw(st.sampled_from(MODIFIERS)))
             for code in (column1, column2)] if draw(st.integers(0, 3)) else []
    for _ in range(draw(st.integers(1, 6))):
        found.append(line(draw(st.sampled_from(codes)), session=f"S{draw(st.integers(1, 3))}",
                          patient=draw(st.sampled_from(["P1", "P1", "P2"])),
                          date=draw(st.sampled_from([date, date, *dates])),
                          npi=draw(st.sampled_from([NPI_DC, NPI_LMT])), modifiers=draw(st.sampled_from(MODIFIERS))))
    # A session is one patient, date and provider's visit.
    return [item._replace(session_id=f"{item.session_id}-{item.patient_id}-{item.date}-{item.provider_npi}")
            for item in found]


def hand_written(rows: list[tuple[str, str, str, str, str]]) -> str:
    """One rule per edit in force: `no C2 same day as C1 [unless modifier ...]` over its dates."""
    rules = []
    for column1, column2, effective, deleted, indicator in rows:
        start = iso(effective)
        end = None if deleted == "*" else iso(deleted)
        if indicator == "9" or (end is not None and end <= start):
            continue
        unless = f" unless modifier {', '.join(sorted(NCCI_MODIFIERS))}" if indicator == "1" else ""
        until = f" to {end - datetime.timedelta(days=1)}" if end is not None else ""
        rules.append(f"no {column2} same day as {column1}{unless} carc 236 rarc N20 effective from {start}{until}")
    return "\n".join(rules) or "max $1,000 per line"


@MORE
@given(ptp_rows().flatmap(lambda rows: st.tuples(st.just(rows), day_lines(rows))))
def test_a_ptp_table_decides_like_the_equivalent_hand_written_rules(
        drawn: tuple[list[tuple[str, str, str, str, str]], list[Line]]) -> None:
    rows, lines = drawn
    with tempfile.TemporaryDirectory() as folder:
        table = compiled(Path(folder), 'apply ncci ptp "ptp.txt"', {"ptp.txt": ptp_table(*rows)})
    by_hand = compile_source(Source("hand.payer", f"payer T\n{hand_written(rows)}\n"))
    # PTP edits apply per provider: the hand-written rules, which look at the patient's whole day,
    # see one provider's lines when each provider's lines are given as another patient's.
    split = [item._replace(patient_id=f"{item.patient_id}/{item.provider_npi}") for item in lines]
    from_table = [(l.code, l.status, l.allowed) for s in run_policy(table, *lines).sessions for l in s.lines]
    from_hand = [(l.code, l.status, l.allowed) for s in run_policy(by_hand, *split).sessions for l in s.lines]
    assert from_table == from_hand


# --- `payrules explain` ---------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["--code", "97140"], ["--code", "97140", "--same-day", "98940"],
                                  ["--code", "97140", "--same-day", "98940", "--modifier", "XS"],
                                  ["--code", "97124", "--units", "5"], ["--code", "97530"]],
                         ids=["alone", "with-cmt", "with-xs", "over-mue", "no-edit"])
def test_explain_says_why_a_table_gave_no_reason(args: list[str], text_snapshot: SnapshotAssertion) -> None:
    output = render_transcript(["explain", "examples/ncci-tables", "--date", "2024-05-06", *args])
    assert "Traceback" not in output
    assert text_snapshot == output


# --- cross-check: MUE decisions against a plain reading of CMS's rule ----------------------------------

MUE_TABLE = {"97010": (1, "1"), "97140": (4, "3"), "98940": (1, "2")}


def mue_reference(lines: list[Line]) -> list[str]:
    """CMS FAQ 11344, read plainly: indicator 1, a line over the MUE is denied; 2 and 3, the units
    of the code by the same provider for the patient on the date are summed over that day's
    sessions up to this one (in the order given), and over the MUE all of this session's lines of
    the code are denied."""
    statuses = []
    for item in lines:
        limit = MUE_TABLE.get(item.code)
        if limit is None:
            statuses.append("paid")
            continue
        value, mai = limit
        if mai == "1":
            statuses.append("denied" if item.units > value else "paid")
            continue
        same_day = [o for o in lines if (o.patient_id, o.date, o.provider_npi, o.code) ==
                    (item.patient_id, item.date, item.provider_npi, item.code)]
        # The day's sessions in the order they first come (a session may come back later).
        sessions = list(dict.fromkeys(o.session_id for o in lines if (o.patient_id, o.date) ==
                                      (item.patient_id, item.date)))
        upto = sessions[:sessions.index(item.session_id) + 1]
        total = sum(o.units for o in same_day if o.session_id in upto)
        statuses.append("denied" if total > value else "paid")
    return statuses


@MORE
@given(st.lists(st.tuples(st.sampled_from(["97010", "97140", "98940", "97124"]), st.integers(1, 3),
                          st.integers(1, 5), st.sampled_from(["P1", "P2"]), st.sampled_from([NPI_DC, NPI_LMT]),
                          st.sampled_from(["2024-03-05", "2024-03-06"])), min_size=1, max_size=10))
def test_mue_decisions_follow_cms_rule(drawn: list[tuple[str, int, int, str, str, str]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        policy = compiled(Path(folder), 'apply ncci mue "mue.csv"', {"mue.csv": MUE_HEADER + "".join(
            f"{code},{value},{mai} Edit,Made-up\n" for code, (value, mai) in MUE_TABLE.items())})
    # A session is one patient, date and provider's visit; sessions come in the order drawn.
    lines = [line(code, units=units, session=f"S{session}-{patient}-{date}-{npi}", patient=patient, npi=npi, date=date)
             for code, session, units, patient, npi, date in drawn]
    report = run_policy(policy, *lines)
    judged = {(l.input.session_id, l.input.number): l.status for s in report.sessions for l in s.lines}
    numbered = [item._replace(number=number) for item, number in zip(lines, _numbers(lines))]
    assert [judged[(item.session_id, item.number)] for item in numbered] == mue_reference(lines)


def _numbers(lines: list[Line]) -> list[int]:
    """Each line's place in its session (as `run_policy` numbers them)."""
    seen: dict[str, int] = {}
    found = []
    for item in lines:
        seen[item.session_id] = seen.get(item.session_id, 0) + 1
        found.append(seen[item.session_id])
    return found


def test_a_table_of_bad_rows_reports_ten_and_counts_the_rest(tmp_path: Path) -> None:
    (tmp_path / "ptp.txt").write_text(HEADER + "".join(f"9{i:03d}\t97140\t\t19990401\t*\t1\tbad\n" for i in range(50)))
    (tmp_path / "rules.payer").write_text('payer T\napply ncci ptp "ptp.txt"\napply ncci mue ""\n')
    with pytest.raises(CompileError) as error:
        api.compile_file(tmp_path / "rules.payer")
    found = error.value.diagnostics  # by file: the table's, then the rule file's
    assert [d.code for d in found] == ["E131"] * 10 + ["E130"]
    assert "the path is empty" in found[-1].message
    rows = [d for d in found if d.code == "E131"]
    assert (rows[-1].span.line, rows[-1].span.column) == (12, 1)
    assert rows[-1].help is not None and rows[-1].help.endswith("40 more rows of "
                                                                  f"{tmp_path / 'ptp.txt'} cannot be read either")


def test_rows_for_codes_sessions_never_bill_are_read(tmp_path: Path) -> None:
    # CMS's files list administrative MAAA codes such as 0002M, which sessions do not bill.
    policy = compiled(tmp_path, 'apply ncci ptp "ptp.txt"', {"ptp.txt": ptp_table(
        ("0002M", "97140", "20150101", "*", "0"), ("98940", "97140", "19990401", "*", "0"))})
    assert [o[1] for o in outcomes(run_policy(policy, line("98940"), line("97140")))] == ["paid", "denied"]


def test_diff_against_a_git_revision_reads_the_tables_it_applies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    (repo / "payers" / "ncci").mkdir(parents=True)
    (repo / "payers" / "ncci" / "ptp.txt").write_text(ptp_table(("98940", "97140", "19990401", "*", "1")))
    (repo / "payers" / "t.payer").write_text('payer T\nncci-ptp: apply ncci ptp "ncci/ptp.txt"\n')
    (repo / "sample.csv").write_text(
        "session_id,patient_id,date,payer,provider_npi,provider_credential,code,modifiers,units,charge\n"
        f"S1,P1,2024-03-05,T,{NPI_DC},DC,98940,,1,45.00\nS1,P1,2024-03-05,T,{NPI_DC},DC,97140,,1,35.00\n")

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=Test", "-c", "user.email=test@example.org", "-c",
                        "init.defaultBranch=main", "-c", "commit.gpgsign=false", *args], cwd=repo, check=True,
                       capture_output=True)

    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "rules")
    # The edit becomes indicator 9 (no edit) in the working tree: 97140 is paid there.
    (repo / "payers" / "ncci" / "ptp.txt").write_text(ptp_table(("98940", "97140", "19990401", "*", "9")))
    monkeypatch.chdir(repo)
    code, out, err = transcript(["diff", "git:HEAD:payers", "payers", "--sessions", "sample.csv"])
    assert (code, err) == (1, "")
    assert "97140" in out and "denied" in out and "paid" in out
