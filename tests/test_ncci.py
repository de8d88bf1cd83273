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
from hypothesis import given
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
DATES = ["2019-12-31", "2020-01-01", "2022-06-15", "2024-01-01"]
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


@st.composite
def day_lines(draw: st.DrawFn) -> list[Line]:
    found = []
    for k in range(draw(st.integers(1, 8))):
        found.append(line(draw(st.sampled_from(CODES)), session=f"S{draw(st.integers(1, 3))}",
                          patient=draw(st.sampled_from(["P1", "P2"])), date=draw(st.sampled_from(DATES)),
                          npi=draw(st.sampled_from([NPI_DC, NPI_LMT])), modifiers=draw(st.sampled_from(MODIFIERS))))
    # A session is one patient, date and provider's visit.
    return [item._replace(session_id=f"{item.session_id}-{item.patient_id}-{item.date}-{item.provider_npi}")
            for item in found]


def hand_written(rows: list[tuple[str, str, str, str, str]]) -> str:
    """One rule per edit in force: `no C2 same day as C1 [unless modifier ...]` over its dates."""
    rules = []
    for column1, column2, effective, deleted, indicator in rows:
        start = datetime.date(int(effective[:4]), int(effective[4:6]), int(effective[6:]))
        end = None if deleted == "*" else datetime.date(int(deleted[:4]), int(deleted[4:6]), int(deleted[6:]))
        if indicator == "9" or (end is not None and end <= start):
            continue
        unless = f" unless modifier {', '.join(sorted(NCCI_MODIFIERS))}" if indicator == "1" else ""
        until = f" to {end - datetime.timedelta(days=1)}" if end is not None else ""
        rules.append(f"no {column2} same day as {column1}{unless} carc 236 rarc N20 effective from {start}{until}")
    return "\n".join(rules) or "max $1,000 per line"


@given(ptp_rows(), day_lines())
def test_a_ptp_table_decides_like_the_equivalent_hand_written_rules(rows: list[tuple[str, str, str, str, str]],
                                                                     lines: list[Line]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        table = compiled(Path(folder), 'apply ncci ptp "ptp.txt"', {"ptp.txt": ptp_table(*rows)})
    by_hand = compile_source(Source("hand.payer", f"payer T\n{hand_written(rows)}\n"))
    # PTP edits apply per provider: the hand-written rules, which look at the patient's whole day,
    # see one provider's lines when each provider's lines are given as another patient's.
    split = [item._replace(patient_id=f"{item.patient_id}/{item.provider_npi}") for item in lines]
    from_table = [(l.code, l.status, l.allowed) for s in run_policy(table, *lines).sessions for l in s.lines]
    from_hand = [(l.code, l.status, l.allowed) for s in run_policy(by_hand, *split).sessions for l in s.lines]
    assert from_table == from_hand
