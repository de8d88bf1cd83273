"""Accumulators (`--accumulators FILE`): what a payer has already counted of each named limit over
a period, counted by that limit on top of the history; the file's checks and their wording."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion

from payrules import api, standalone
from payrules.accumulators import AccumulatorError, accumulator_records, accumulators_of
from payrules.diagnostics import InputError
from payrules.runner import policies_by_payer

from conftest import EXAMPLES, render_transcript, transcript, without_origins
from helpers import line, policy, run_policy
from payrules.fields import Batch
from payrules.runner import evaluate
from helpers import sessions_of

EXAMPLE = EXAMPLES / "accumulators"
RULES = "examples/accumulators/rules.payer"
VISITS = "examples/accumulators/visits.csv"
ACCUMULATORS = "examples/accumulators/accumulators.csv"
HISTORY = "examples/accumulators/history.csv"

HEADER = "patient_id,payer,rule,period_start,through,visits,units,amount\n"

LIMITS = """\
visits: max 60 visits per calendar year for 98940-98942, 97124, 97140
massage-dollars: max $2500 per calendar year for 97124, 97140
manual-units: max 20 units of 97140 per plan year from July 1
weekly: max 2 visits per week
monthly: max $300 per month
daily: max 4 units per day
ever: max 30 visits per lifetime
rolling: max 12 visits per 30 days
per-session: max $90 per session
only-these: only 98940-98942, 97124, 97140, 97010
"""


def judge(rules: str, *lines, rows: list[dict[str, str]] | None = None, history=()):  # type: ignore[no-untyped-def]
    compiled = policy(rules, "PINE")
    policies = policies_by_payer([compiled])
    found, notes = accumulator_records(rows or [], "acc.csv")
    used = accumulators_of(found, policies, notes) if rows else None
    from payrules.judging import History

    batch = Batch(sessions=sessions_of(lines), lines_read=len(lines))
    past = History(sessions_of(history)) if history else None
    return evaluate(batch, policies, past, used)


def visit(session: str, date: str, patient: str = "P1", code: str = "98941", charge: str = "55.00",
          units: int = 1):  # type: ignore[no-untyped-def]
    return line(code, charge, session=session, patient=patient, date=date, payer="PINE", units=units)


def statuses(report) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    return [(s.session_id, l.status, f"{l.allowed / 100:.2f}") for s in report.sessions for l in s.lines]


# --- the situation: "59 of 60 visits used this calendar year, $1,940 of $2,500 paid" ------------


def test_a_payers_accumulators_replace_fifty_nine_fake_history_rows() -> None:
    """An eligibility response gives 59 of 60 visits used and $1,940 of $2,500 paid: the 60th
    visit is paid, the 61st denied, and the massage benefit pays only what is left of it."""
    rows = [
        {"patient_id": "P1", "payer": "PINE", "rule": "visits", "through": "2026-03-31", "visits": "59"},
        {"patient_id": "P1", "payer": "PINE", "rule": "massage-dollars", "through": "2026-03-31",
         "amount": "1940.00"},
    ]
    situation = "\n".join(LIMITS.splitlines()[:2])
    report = judge(situation, visit("A", "2026-04-06"), visit("B", "2026-04-13", code="97124", charge="600.00",
                                                             units=4),
                   visit("C", "2026-04-20"), rows=rows)
    assert statuses(report) == [("A", "paid", "55.00"), ("B", "denied", "0.00"), ("C", "denied", "0.00")]
    [reason] = report.sessions[1].lines[0].reasons
    assert reason.rule == "visits"
    assert "already had 60 since 2026-01-01 (59 of them through 2026-03-31, from the accumulators file: " \
           "acc.csv:1)" in reason.message
    # Without the 61st visit's limit, the dollars: $560.00 of the $2,500 are left.
    rows[0]["visits"] = "10"
    report = judge(situation, visit("B", "2026-04-13", code="97124", charge="600.00", units=4), rows=rows)
    assert statuses(report) == [("B", "reduced", "560.00")]
    assert "($1,940.00 of it through 2026-03-31, from the accumulators file: acc.csv:2)" in \
        report.sessions[0].lines[0].reasons[0].message


def test_the_cli_counts_an_accumulators_file(text_snapshot: SnapshotAssertion) -> None:
    assert text_snapshot == render_transcript(["check", VISITS, "--rules", RULES, "--accumulators", ACCUMULATORS])


def test_the_cli_json_output_cites_the_accumulators_file(json_snapshot: SnapshotAssertion) -> None:
    code, out, err = transcript(["check", VISITS, "--rules", RULES, "--accumulators", ACCUMULATORS,
                                 "--format", "json"])
    assert code == 1 and err == ""
    assert json_snapshot == json.dumps(json.loads(out), indent=2) + "\n"


def test_with_history_rows_after_the_through_date_count_on_top(text_snapshot: SnapshotAssertion) -> None:
    """history.csv has a visit on 2026-03-16 (inside the accumulator's 59: not counted again) and
    one on 2026-04-02 (after it: the 60th), so the visit of 2026-04-06 is the 61st."""
    output = render_transcript(["check", VISITS, "--rules", RULES, "--accumulators", ACCUMULATORS,
                                "--history", HISTORY])
    assert text_snapshot == output
    assert "S-701 | patient P-7001 | 2026-04-06" in output
    first = output.split("Session S-701")[1].split("Session S-702")[0]
    assert "denied" in first and "already had 60 since 2026-01-01 (59 of them" in first


def test_history_before_the_through_date_is_not_counted_twice() -> None:
    rows = [{"patient_id": "P1", "payer": "PINE", "rule": "weekly", "period_start": "2026-04-06",
             "through": "2026-04-07", "visits": "1"}]
    history = (visit("H1", "2026-04-06"), visit("H2", "2026-04-08"))
    # Week of Monday 2026-04-06: 1 visit through Tuesday (H1 is in it), H2 on Wednesday on top.
    report = judge(LIMITS, visit("A", "2026-04-09"), rows=rows, history=history)
    assert statuses(report) == [("A", "denied", "0.00")]
    assert "already had 2 since 2026-04-06 (1 of them through 2026-04-07" in \
        report.sessions[0].lines[0].reasons[0].message
    # Without the row, both history visits count: the same decision, without the file cited.
    report = judge(LIMITS, visit("A", "2026-04-09"), history=history)
    assert statuses(report) == [("A", "denied", "0.00")]
    assert "accumulators" not in report.sessions[0].lines[0].reasons[0].message
    # With the row and only the early history visit: 1 visit, so the session is paid.
    report = judge(LIMITS, visit("A", "2026-04-09"), rows=rows, history=history[:1])
    assert statuses(report) == [("A", "paid", "55.00")]


def test_a_session_on_or_before_the_through_date_does_not_count_the_figure() -> None:
    """A figure through 2026-04-07 may already hold a session of that date: sessions up to it
    count only their history, sessions after it count the figure."""
    rows = [{"patient_id": "P1", "payer": "PINE", "rule": "weekly", "through": "2026-04-07", "visits": "2"}]
    report = judge(LIMITS, visit("A", "2026-04-07"), visit("B", "2026-04-08"), rows=rows)
    assert statuses(report) == [("A", "paid", "55.00"), ("B", "denied", "0.00")]


def test_a_figure_counts_only_in_its_own_period() -> None:
    rows = [{"patient_id": "P1", "payer": "PINE", "rule": "manual-units", "period_start": "2025-07-01",
             "through": "2026-03-31", "units": "18"}]
    lines = [visit("A", "2026-04-08", code="97140", charge="90.00", units=3),
             visit("B", "2026-07-01", code="97140", charge="90.00", units=3)]
    report = judge(LIMITS, *lines, rows=rows)
    # 2026-07-01 starts the next plan year: the 18 units are not counted there.
    assert statuses(report) == [("A", "reduced", "60.00"), ("B", "paid", "90.00")]


def test_other_patients_and_payers_are_not_counted() -> None:
    rows = [{"patient_id": "P2", "payer": "PINE", "rule": "ever", "through": "2026-01-01", "visits": "30"}]
    report = judge(LIMITS, visit("A", "2026-04-08"), visit("B", "2026-04-08", patient="P2"), rows=rows)
    assert statuses(report) == [("A", "paid", "55.00"), ("B", "denied", "0.00")]


@pytest.mark.parametrize(("rule", "start", "through", "field", "value", "date"), [
    ("monthly", "2026-04-01", "2026-04-05", "amount", "300", "2026-04-20"),
    ("ever", "lifetime", "2020-05-01", "visits", "30", "2026-04-20"),
    ("ever", "", "2020-05-01", "visits", "30", "2026-04-20"),
])
def test_each_fixed_period_takes_an_accumulator(rule: str, start: str, through: str, field: str, value: str,
                                                date: str) -> None:
    rows = [{"patient_id": "P1", "payer": "PINE", "rule": rule, "period_start": start, "through": through,
             field: value}]
    report = judge(LIMITS, visit("A", date, code="97140", charge="90.00", units=3), rows=rows)
    expected = "denied" if rule == "ever" else "reduced"
    assert report.sessions[0].lines[0].status == expected


# --- checks of the file -----------------------------------------------------------------------

BAD_ROWS = HEADER + """\
P1,PINE,visits,2026-01-01,2026-03-31,59,,
P1,PINE,visits,,2026-03-31,58,,
P1,PINE,visit,,2026-03-31,1,,
P1,PINE,rolling,,2026-03-31,3,,
P1,PINE,daily,,2026-03-31,,3,
P1,PINE,per-session,,2026-03-31,,,10.00
P1,PINE,only-these,,2026-03-31,1,,
P1,PINE,visits,2026-03-01,2026-03-31,3,,
P1,PINE,manual-units,2026-01-01,2026-03-31,,3,
P1,PINE,ever,2020-01-01,2026-03-31,3,,
P1,PINE,massage-dollars,lifetime,2026-03-31,,,3.00
P1,PINE,massage-dollars,2027-01-01,2026-03-31,,,3.00
P1,PINE,massage-dollars,,2026-03-31,,,-3.00
P1,PINE,massage-dollars,,2026-03-31,,,3.005
P1,PINE,weekly,,2026-03-31,-1,,
P1,PINE,weekly,,2026-03-31,two,,
P1,PINE,weekly,,2026-03-31,,,
P1,PINE,weekly,,2026-03-31,,4,
,,,,,,,
P1,PINE,weekly,,,1,,
P1,PINE,weekly,,2026-02-30,1,,
P1,ACME,weekly,,2026-03-31,1,,
P1,PIN,weekly,,2026-03-31,1,,
"""


def test_every_problem_of_a_file_is_named_with_file_row_and_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     text_snapshot: SnapshotAssertion) -> None:
    monkeypatch.chdir(tmp_path)
    Path("rules.payer").write_text(f"payer PINE\n{LIMITS}")
    Path("acc.csv").write_text(BAD_ROWS)
    Path("visits.csv").write_text((EXAMPLE / "visits.csv").read_text())
    output = render_transcript(["check", "visits.csv", "--rules", "rules.payer", "--accumulators", "acc.csv"])
    assert text_snapshot == output
    assert output.startswith("$ payrules check") and "exit_code: 2" in output and "Session" not in output


def test_warnings_name_what_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        text_snapshot: SnapshotAssertion) -> None:
    monkeypatch.chdir(tmp_path)
    Path("rules.payer").write_text(f"payer PINE\n{LIMITS}")
    Path("acc.csv").write_text("patient_id,payer,rule,through,visits,units,amount,plan_name\n"
                               "P-7001,PINE,visits,2026-03-31,59,12,1940.00,Gold\n")
    Path("visits.csv").write_text((EXAMPLE / "visits.csv").read_text())
    output = render_transcript(["check", "visits.csv", "--rules", "rules.payer", "--accumulators", "acc.csv",
                                "--format", "jsonl"])
    assert text_snapshot == output
    assert output.count("warning: ") == 3


def test_a_file_without_its_required_columns_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("rules.payer").write_text(f"payer PINE\n{LIMITS}")
    Path("acc.csv").write_text("member,payer,rule,visits\nP1,PINE,visits,3\n")
    Path("visits.csv").write_text((EXAMPLE / "visits.csv").read_text())
    code, out, err = transcript(["check", "visits.csv", "--rules", "rules.payer", "--accumulators", "acc.csv"])
    assert (code, out) == (2, "")
    assert err == ("error: acc.csv:1: missing columns `patient_id`, `through`; the header has `member`, `payer`, "
                   "`rule`, `visits`\n")


def test_the_column_mapping_renames_an_accumulators_files_headers(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("rules.payer").write_text(f"payer PINE\n{LIMITS}")
    Path("acc.csv").write_text("Member ID,Payer,Benefit,As Of,Visits Used\nP-7001,PINE,visits,2026-03-31,59\n")
    Path("columns.toml").write_text('[accumulators]\npatient_id = "Member ID"\nrule = "Benefit"\n'
                                    'through = "As Of"\nvisits = "Visits Used"\n')
    Path("visits.csv").write_text((EXAMPLE / "visits.csv").read_text())
    code, out, err = transcript(["check", "visits.csv", "--rules", "rules.payer", "--accumulators", "acc.csv",
                                 "--columns", "columns.toml", "--format", "json"])
    assert err == ""
    lines = {s["session_id"]: s["lines"][0]["status"] for s in json.loads(out)["sessions"]}
    assert lines["S-701"] == "paid" and lines["S-702"] == "denied"
    Path("columns.toml").write_text('[accumulators]\nmember = "Member ID"\n')
    code, out, err = transcript(["check", "visits.csv", "--rules", "rules.payer", "--accumulators", "acc.csv",
                                 "--columns", "columns.toml"])
    assert code == 2 and "[accumulators] `member` is not an accumulators field" in err


def test_json_and_jsonl_files_count_like_csv(tmp_path: Path) -> None:
    rows = [{"patient_id": "P-7001", "payer": "PINE", "rule": "visits", "period_start": "2026-01-01",
             "through": "2026-03-31", "visits": 59},
            {"patient_id": "P-7002", "payer": "PINE", "rule": "massage-dollars", "through": "2026-03-31",
             "amount": "2440.00"},
            {"patient_id": "P-7003", "payer": "PINE", "rule": "manual-units", "through": "2026-03-31", "units": 18}]
    (tmp_path / "acc.json").write_text(json.dumps({"accumulators": rows}, indent=2))
    (tmp_path / "acc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    expected = api.check_files([Path(VISITS)], Path(RULES), accumulators=[Path(ACCUMULATORS)]).to_dict()
    for name in ("acc.json", "acc.jsonl"):
        found = api.check_files([Path(VISITS)], Path(RULES), accumulators=[tmp_path / name]).to_dict()
        assert without_origins(found) != without_origins(api.check_files([Path(VISITS)], Path(RULES)).to_dict())
        # The same decisions; the explanations cite each file's own rows.
        assert [(l["status"], l["allowed"]) for s in found["sessions"] for l in s["lines"]] == \
            [(l["status"], l["allowed"]) for s in expected["sessions"] for l in s["lines"]]
    message = api.check_files([Path(VISITS)], Path(RULES), accumulators=[tmp_path / "acc.json"]) \
        .sessions[1].lines[0].reasons[0].message
    assert f"from the accumulators file: {tmp_path / 'acc.json'}:3)" in message


def test_bad_json_is_located(tmp_path: Path) -> None:
    (tmp_path / "acc.jsonl").write_text('{"patient_id": "P1"}\n[1]\n')
    with pytest.raises(InputError, match=r"acc.jsonl:2: expected an object of accumulator fields"):
        api.check_files([Path(VISITS)], Path(RULES), accumulators=[tmp_path / "acc.jsonl"])
    (tmp_path / "acc.json").write_text('[{"patient_id": "P1",}]')
    with pytest.raises(InputError, match=r"acc.json:1:22: not valid JSON"):
        api.check_files([Path(VISITS)], Path(RULES), accumulators=[tmp_path / "acc.json"])


def test_duplicate_rows_name_the_first() -> None:
    compiled = policy(LIMITS, "PINE")
    rows, _ = accumulator_records([{"patient_id": "P1", "payer": "pine", "rule": "visits", "through": "2026-03-31",
                                    "visits": 3},
                                   {"patient_id": "P1", "payer": "PINE", "rule": "visits", "through": "2026-02-01",
                                    "period_start": "2026-01-01", "visits": 2}], "acc")
    with pytest.raises(AccumulatorError) as caught:
        accumulators_of(rows, policies_by_payer([compiled]))
    assert caught.value.problems == [
        "acc:2: rule: the same patient, payer, rule `visits` and the period from 2026-01-01 are given already at "
        "acc:1; give each limit's use once per patient and period"]


# --- the Python API and the standalone module --------------------------------------------------


SESSIONS = [{"session_id": "S-1", "patient_id": "P-7001", "date": "2026-04-13", "payer": "PINE",
             "lines": [{"provider_npi": "1184029555", "code": "98941", "charge": "55.00"}]}]
ROWS = [{"patient_id": "P-7001", "payer": "PINE", "rule": "visits", "through": "2026-03-31", "visits": 60}]


def test_the_api_takes_accumulator_rows() -> None:
    rules = api.load(RULES)
    assert rules.check(SESSIONS).sessions[0].lines[0].status == "paid"
    report = rules.check(SESSIONS, accumulators=ROWS)
    assert report.sessions[0].lines[0].status == "denied"
    assert report.to_dict() == rules.check(SESSIONS, accumulators=rules.accumulators(ROWS)).to_dict()
    assert "from the accumulators file: <accumulators>:1)" in report.sessions[0].lines[0].reasons[0].message
    with pytest.warns(api.AccumulatorWarning, match=r"<accumulators>:1: amount: rule `visits` .* counts visits"):
        rules.check(SESSIONS, accumulators=[{**ROWS[0], "amount": "10.00"}])
    with pytest.raises(InputError, match=r"<accumulators>:1: rule: payer `PINE` has no rule named `visit`; "
                                         r"did you mean `visits`\?"):
        rules.check(SESSIONS, accumulators=[{**ROWS[0], "rule": "visit"}])
    with pytest.raises(TypeError):
        rules.check(SESSIONS, accumulators=ROWS[0])  # type: ignore[arg-type]


def test_the_standalone_module_takes_accumulator_rows(tmp_path: Path) -> None:
    module = tmp_path / "pine_rules.py"
    module.write_text(standalone.build(api.load_policies(Path(RULES))))
    script = (
        "import json, sys, warnings\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "import pine_rules as rules\n"
        "data = json.load(sys.stdin)\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    report = rules.check(data['sessions'], [], data['accumulators'])\n"
        "try:\n"
        "    rules.check(data['sessions'], accumulators=[dict(data['accumulators'][0], visits=-1)])\n"
        "    refused = ''\n"
        "except ValueError as error:\n"
        "    refused = str(error)\n"
        "print(json.dumps({'report': report, 'warnings': [str(w.message) for w in caught], 'refused': refused}))\n"
    )
    rows = [{**ROWS[0], "units": 3}]
    result = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True, text=True, check=True,
                            input=json.dumps({"sessions": SESSIONS, "accumulators": rows}))
    out = json.loads(result.stdout)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = api.load(RULES).check(SESSIONS, accumulators=rows).to_dict()
    assert out["report"] == expected
    assert out["report"]["sessions"][0]["lines"][0]["status"] == "denied"
    assert out["warnings"] == ["<accumulators>:1: units: rule `visits` (examples/accumulators/rules.payer:10: "
                               "`max 60 visits per calendar year for CMT, massage`) counts visits, not units; "
                               "the units given are not counted"]
    assert out["refused"] == ("<accumulators>:1: visits: a count of visits used cannot be negative, found `-1`")


# --- case files -------------------------------------------------------------------------------


def test_a_case_file_counts_the_accumulators_beside_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       text_snapshot: SnapshotAssertion) -> None:
    monkeypatch.chdir(tmp_path)
    Path("rules.payer").write_text((EXAMPLE / "rules.payer").read_text())
    Path("rules.cases.csv").write_text((EXAMPLE / "rules.cases.csv").read_text())
    Path("rules.accumulators.csv").write_text((EXAMPLE / "rules.accumulators.csv").read_text())
    code, out, _ = transcript(["test", "."])
    assert code == 0 and out.endswith("7 cases: 7 passed, 0 failed\n")
    # Without the figures, the limits are not reached: the cases that expect them fail.
    Path("rules.accumulators.csv").unlink()
    code, out, _ = transcript(["test", "."])
    assert code == 1 and out.endswith("7 cases: 3 passed, 4 failed\n")
    # A case file is exact: a figure its rule does not count is an error, not a warning.
    Path("rules.accumulators.csv").write_text(HEADER + "C-1,PINE,visits,,2026-03-31,59,3,\n")
    assert text_snapshot == render_transcript(["test", "."])


def test_workers_count_the_accumulators_as_one_process_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from payrules import records, workers

    sessions = tmp_path / "visits.csv"
    figures = tmp_path / "acc.csv"
    rows = ["session_id,patient_id,date,payer,provider_npi,code,units,charge"]
    for patient in range(300):
        rows += [f"S-{patient}-{day},P-{patient},2026-04-0{day},PINE,1184029555,98941,1,55.00" for day in (1, 2, 3)]
    sessions.write_text("\n".join(rows) + "\n")
    figures.write_text(HEADER + "".join(f"P-{p},PINE,visits,,2026-03-31,{58 + p % 3},,\n" for p in range(300)))
    monkeypatch.setattr(records, "PART_LINES", 250)
    monkeypatch.setattr(workers, "MIN_LINES", 0)
    monkeypatch.setattr(workers, "cpu_count", lambda: 2)
    run = api.start_check([sessions], Path(RULES), accumulators=[figures])
    assert workers.worker_count(run) == 2
    args = ["check", str(sessions), "--rules", RULES, "--accumulators", str(figures), "--format", "csv"]
    by_workers = transcript(args)
    monkeypatch.setattr(workers, "MIN_LINES", 10**9)
    assert transcript(args) == by_workers
    # 58, 59 or 60 visits used: 2, 1 or 0 of each patient's 3 visits are paid.
    assert by_workers[1].count(",paid,") == 100 * 2 + 100 * 1
    assert by_workers[1].count(",denied,") == 100 * 1 + 100 * 2 + 100 * 3


# --- a figure decides as the history rows it stands for ------------------------------------------

from hypothesis import given, strategies as st  # noqa: E402

PROPERTY_RULES = """\
visits: max 6 visits per calendar year for 98940-98942, 97140
unit-cap: max 9 units of 97140 per plan year from January 15
dollars: max $150 per month for 97140
"""

_day = st.integers(min_value=0, max_value=80).map(lambda n: f"2026-{1 + n // 28:02d}-{1 + n % 28:02d}")
_earlier = st.tuples(_day, st.sampled_from(["98941", "97140", "97124"]), st.integers(1, 4),
                     st.integers(20, 150))


@given(history=st.lists(_earlier, max_size=14), through=_day, later=st.lists(_earlier, min_size=1, max_size=6))
def test_a_figure_decides_as_the_history_rows_it_stands_for(history: list[tuple[str, str, int, int]], through: str,
                                                            later: list[tuple[str, str, int, int]]) -> None:
    """The history up to `through` given as figures (and all of it as rows, of which those up
    to `through` are then not counted again) decides every later session as the history alone."""
    from payrules.runtime import since

    earlier = tuple(visit(f"H{i}", date, code=code, units=units, charge=f"{dollars}.00")
                    for i, (date, code, units, dollars) in enumerate(history))
    judged = [visit(f"J{i}", date, code=code, units=units, charge=f"{dollars}.00")
              for i, (date, code, units, dollars) in enumerate(later) if date > through]
    if not judged:
        return
    covered = [h for h in earlier if h.date <= through]
    rows = []
    for name, codes, period, start, figure in [
        ("visits", {"98940", "98941", "98942", "97140"}, "year", "", lambda ls: len({l.session_id for l in ls})),
        ("unit-cap", {"97140"}, "plan_year", "01-15", lambda ls: sum(l.units for l in ls)),
        ("dollars", {"97140"}, "month", "", lambda ls: sum(l.charge for l in ls)),
    ]:
        first = since(period, through, 0, start)
        counted = [h for h in covered if h.code in codes and h.date >= first]
        used = figure(counted)
        field = {"visits": "visits", "unit-cap": "units", "dollars": "amount"}[name]
        rows.append({"patient_id": "P1", "payer": "PINE", "rule": name, "through": through,
                     field: f"{used / 100:.2f}" if field == "amount" else str(used)})
    alone = judge(PROPERTY_RULES, *judged, history=earlier)
    with_figures = judge(PROPERTY_RULES, *judged, rows=rows, history=earlier)
    decided = [(l.code, l.status, l.allowed, l.units_paid, [r.rule for r in l.reasons])
               for s in alone.sessions for l in s.lines]
    assert [(l.code, l.status, l.allowed, l.units_paid, [r.rule for r in l.reasons])
            for s in with_figures.sessions for l in s.lines] == decided


def test_ledgers_with_figures_agree_with_a_rescan_of_a_long_history(monkeypatch: pytest.MonkeyPatch) -> None:
    """Figures in every period kind, over a long history: the running totals give what the
    plain rescan (test_engine_scale.RescanEarlier) gives, and each figure decides a line."""
    from payrules import judging
    from test_engine_scale import RescanEarlier, decisions, history_rows

    rules = ("set massage = 97124, 97140\n"
             "weekly: max $150 per week for massage\n"
             "yearly: max 20 units of massage per calendar year\n"
             "plan: max $1,000 per plan year from July 1\n"
             "monthly: max 12 visits per month\n"
             "ever: max 400 visits per lifetime")
    history = [h._replace(payer="PINE") for h in history_rows(300)]  # every third day, 2021-01-01 to 2023-06
    dates = ["2021-01-04", "2021-01-06", "2022-03-05", "2022-06-10", "2023-12-28", "2024-01-02"]
    # On 2022-06-10 manipulation only: the year's massage units are used up by then.
    lines = [visit(f"S{i}", date, code=code, charge="60.00", units=2)
             for i, date in enumerate(dates) for code in (("98940", "98941") if i == 3 else ("97124", "97140"))]
    figures = [
        {"rule": "weekly", "through": "2021-01-04", "amount": "100.00"},  # a history date: its line is in the figure
        {"rule": "yearly", "through": "2022-03-03", "units": "18"},
        {"rule": "plan", "through": "2022-06-01", "amount": "900.00"},
        {"rule": "monthly", "through": "2023-12-20", "visits": "12"},
        {"rule": "ever", "through": "2021-06-30", "visits": "160"},
    ]
    rows = [{"patient_id": "P1", "payer": "PINE", **figure} for figure in figures]
    compiled = policy(rules, "PINE")
    policies = policies_by_payer([compiled])
    found, _ = accumulator_records(rows, "acc.csv")
    used = accumulators_of(found, policies)
    from payrules.judging import History

    def judged() -> object:
        batch = Batch(sessions=sessions_of(tuple(lines)), lines_read=len(lines))
        return evaluate(batch, policies, History(sessions_of(tuple(history))), used)

    fast = judged()
    monkeypatch.setattr(judging, "Earlier", RescanEarlier)
    compiled.reason_cache.clear()
    plain = judged()
    assert decisions(fast) == decisions(plain)  # type: ignore[arg-type]
    cited = {r.rule for s in fast.sessions for l in s.lines for r in l.reasons  # type: ignore[attr-defined]
             if "from the accumulators file" in r.message}
    assert cited == {"weekly", "yearly", "plan", "monthly", "ever"}


def test_a_value_with_a_line_break_stays_on_its_error_line(tmp_path: Path) -> None:
    figures = tmp_path / "acc.csv"
    figures.write_text('patient_id,payer,rule,through,visits\r\nP-7001,PINE,"vis\nits",2026-03-31,59\r\n'
                       f'P-7001,PINE,{"x" * 5000},2026-03-31,59\r\n')
    code, out, err = transcript(["check", VISITS, "--rules", RULES, "--accumulators", str(figures)])
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "error: the accumulators cannot be counted (2 problems); none of them is counted until these are fixed:",
        f"error: {figures}:2: rule: payer `PINE` has no rule named `vis\\nits`; did you mean `visits`?",
        f"error: {figures}:4: rule: payer `PINE` has no rule named `{'x' * 30}… (5,000 characters)`; its named "
        "limits over a period are `manual-units`, `massage-dollars`, `visits`"]


# --- payrules diff ------------------------------------------------------------------------------


def test_diff_counts_the_accumulators_under_both_versions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          text_snapshot: SnapshotAssertion) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("rules.payer", "visits.csv", "accumulators.csv"):
        Path(name).write_text((EXAMPLE / name).read_text())
    Path("next").mkdir()
    Path("next/rules.payer").write_text(Path("rules.payer").read_text().replace("max 60 visits", "max 62 visits"))
    args = ["diff", "rules.payer", "next/rules.payer", "--sessions", "visits.csv", "--accumulators",
            "accumulators.csv"]
    output = render_transcript(args)
    assert text_snapshot == output
    assert "denied -> paid" in output and "exit_code: 1" in output
    # Without the figures, the visit limit is never reached: nothing changes.
    assert transcript(args[:-2])[0] == 0
    # A row must fit both versions.
    Path("next/rules.payer").write_text("\n".join(l for l in Path("rules.payer").read_text().splitlines()
                                                  if not l.startswith("manual-units")))
    code, out, err = transcript(args)
    assert (code, out) == (2, "")
    assert err.splitlines()[1] == ("error: accumulators.csv:4: rule: payer `PINE` has no rule named `manual-units`; "
                                   "its named limits over a period are `massage-dollars`, `visits` (with the NEW "
                                   "rules, next/rules.payer)")


def test_each_edition_of_a_payers_rules_counts_the_figures_of_its_limit(tmp_path: Path) -> None:
    """Two rule files of one payer, one per year, both naming the limit `visits`: a session is
    judged by its year's file, which counts the figure of its own period."""
    (tmp_path / "pine-2025.payer").write_text("payer PINE effective from 2025-01-01 to 2025-12-31\n"
                                              "visits: max 20 visits per calendar year\n")
    (tmp_path / "pine-2026.payer").write_text("payer PINE effective from 2026-01-01\n"
                                              "visits: max 30 visits per calendar year\n")
    rules = api.load(tmp_path)
    rows = [{"patient_id": "P1", "payer": "PINE", "rule": "visits", "through": "2025-12-15", "visits": 20},
            {"patient_id": "P1", "payer": "PINE", "rule": "visits", "through": "2026-03-31", "visits": 29}]

    def session(sid: str, date: str) -> dict:  # type: ignore[type-arg]
        return {"session_id": sid, "patient_id": "P1", "date": date, "payer": "PINE",
                "lines": [{"provider_npi": "1184029555", "code": "98941", "charge": "55.00"}]}

    report = rules.check([session("A", "2025-12-20"), session("B", "2026-01-05"), session("C", "2026-04-01"),
                          session("D", "2026-04-02")], accumulators=rows)
    assert [(s.session_id, s.lines[0].status) for s in report.sessions] == \
        [("A", "denied"), ("B", "paid"), ("C", "paid"), ("D", "denied")]
    assert "max 20 visits" in report.sessions[0].lines[0].reasons[0].text
    assert "(29 of them through 2026-03-31" in report.sessions[3].lines[0].reasons[0].message
