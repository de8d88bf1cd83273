"""Units that flow from rule to rule, and time rules that pool a day's minutes: a minutes limit
passes the units it leaves to the rules after it, and the CMS and AMA rules count the minutes of
one provider and discipline on a date of service across the day's sessions."""

from __future__ import annotations

from pathlib import Path

from conftest import transcript
from helpers import NPI_DC, kinds, line, outcomes, run
from hypothesis import given
from hypothesis import strategies as st
from test_standalone import run_isolated

import payrules
from payrules.lint import lint_source
from payrules.source import Source

NPI_PT = "1000000004"


def units_paid(report: object) -> list[int]:
    return [l.units_paid for s in report.sessions for l in s.lines]  # type: ignore[attr-defined]


# --- a minutes limit passes its units on -------------------------------------------------------


def test_minutes_cap_then_units_cap_cuts_once() -> None:
    # 5 units, 75 minutes, $150.00: 60 minutes are 4 units, $120.00; the units cap then has
    # nothing left to cut (a line cut twice would be allowed $96.00).
    rules = "max 60 minutes per session\nmax 4 units per session"
    report = run(rules, line("97124", "150.00", units=5, minutes=75))
    assert outcomes(report) == [("97124", "reduced", "120.00")]
    assert units_paid(report) == [4]
    assert kinds(report) == [["max_minutes"]]
    # A minutes cap that only warns changes nothing, so the units cap does the cutting.
    warned = run("max 60 minutes per session warn\nmax 4 units per session",
                 line("97124", "150.00", units=5, minutes=75))
    assert outcomes(warned) == [("97124", "reduced", "120.00")]
    assert kinds(warned) == [["max_minutes", "max_units"]]


def test_minutes_cap_then_fee_per_unit_prices_the_units_left() -> None:
    # The fee applies to the 4 units the minutes leave: 4 x $28.00 = $112.00, not 5 x $28.00.
    rules = "max 60 minutes per session\nmax $28 per unit for 97124"
    report = run(rules, line("97124", "150.00", units=5, minutes=75))
    assert outcomes(report) == [("97124", "reduced", "112.00")]
    assert units_paid(report) == [4]
    assert kinds(report) == [["max_minutes", "max_amount"]]


def test_units_left_by_a_minutes_cap_round_to_the_nearest_unit() -> None:
    # 4 units in 60 minutes; 53 minutes left are 3.53 units: 4 (the midpoint is passed), 52 are 3.
    for left, units in ((53, 4), (52, 3), (8, 1), (7, 0)):
        report = run(f"max {left} minutes per session", line("97140", "120.00", units=4, minutes=60))
        assert units_paid(report) == [units], left


def test_a_second_minutes_cap_counts_the_minutes_the_first_left() -> None:
    # 75 minutes: the first cap leaves 60 (4 units, $120.00); the second, on 97140, leaves 45 of
    # those 60 (3 units, $90.00), not 45 of 75 of what is left.
    rules = "max 60 minutes per session\nmax 45 minutes per session for 97140"
    report = run(rules, line("97140", "150.00", units=5, minutes=75))
    assert outcomes(report) == [("97140", "reduced", "90.00")]
    assert units_paid(report) == [3]


def test_units_left_by_a_minutes_cap_count_in_a_yearly_unit_limit() -> None:
    rules = "max 60 minutes per session\nmax 6 units per calendar year"
    report = run(rules, line("97124", "150.00", units=5, minutes=75, session="A", date="2024-03-04"),
                 line("97124", "90.00", units=3, minutes=45, session="B", date="2024-03-11"))
    # A is paid 4 units; 2 of the year's 6 are left for B.
    assert units_paid(report) == [4, 2]
    assert outcomes(report) == [("97124", "reduced", "120.00"), ("97124", "reduced", "60.00")]


# --- the CMS rule pools a day's minutes ----------------------------------------------------------


def test_cms_two_visits_of_10_minutes_on_one_day_are_one_unit() -> None:
    report = run("units by cms rule for 97110, 97140",
                 line("97110", "30.00", minutes=10, session="AM", npi=NPI_PT, credential="PT"),
                 line("97140", "30.00", minutes=10, session="PM", npi=NPI_PT, credential="PT"))
    # 20 minutes on the day: 1 unit, for the earlier line on a tie of minutes.
    assert outcomes(report) == [("97110", "paid", "30.00"), ("97140", "denied", "0.00")]
    assert units_paid(report) == [1, 0]
    # Other patients' days and the patient's other dates are pooled apart.
    apart = run("units by cms rule for 97110", line("97110", minutes=10, session="A"),
                line("97110", minutes=10, session="B", patient="P2"),
                line("97110", minutes=10, session="C", date="2024-03-06"))
    assert units_paid(apart) == [1, 1, 1]
    message = report.sessions[1].lines[0].reasons[0].message
    assert message == ("97140 was billed with 1 unit; under the CMS 8-minute rule the 20 timed minutes on 2024-03-05 "
                       "by NPI 1000000004, on 2 lines across 2 sessions, support no unit for this line's 10 "
                       "minutes: not paid.")


def test_cms_pools_per_provider_and_discipline() -> None:
    rules = "units by cms rule for 97110, 97140, 97530"
    pt_am = line("97110", "30.00", minutes=10, session="AM", npi=NPI_PT, credential="PT", modifiers="GP")
    dc_pm = line("97140", "30.00", minutes=10, session="PM", npi=NPI_DC, credential="DC")
    ot_pm = line("97530", "30.00", minutes=10, session="PM", npi=NPI_PT, credential="PT", modifiers="GO")
    # Another provider, and another discipline of the same provider: three pools, a unit each.
    assert units_paid(run(rules, pt_am, dc_pm, ot_pm)) == [1, 1, 1]
    pt_pm = line("97140", "30.00", minutes=10, session="PM", npi=NPI_PT, credential="PT", modifiers="GP")
    assert units_paid(run(rules, pt_am, pt_pm)) == [1, 0]


def test_cms_pools_with_the_history_of_the_same_day() -> None:
    earlier = line("97110", "30.00", minutes=12, session="AM", npi=NPI_PT, credential="PT")
    report = run("units by cms rule for 97110, 97140", line("97140", "30.00", minutes=10, session="PM",
                                                            npi=NPI_PT, credential="PT"), history=(earlier,))
    # 22 minutes on the day are 1 unit, and it goes to the 12 minutes of the morning visit.
    assert outcomes(report) == [("97140", "denied", "0.00")]


def test_cms_worked_example_split_over_two_sessions() -> None:
    report = run("units by cms rule for 97110, 97112",
                 line("97112", "90.00", units=2, minutes=24, session="A", npi=NPI_PT, credential="PT"),
                 line("97110", "90.00", units=2, minutes=23, session="B", npi=NPI_PT, credential="PT"))
    assert outcomes(report) == [("97112", "paid", "90.00"), ("97110", "reduced", "45.00")]


# --- the AMA rule counts a code's minutes on the day ----------------------------------------------


def test_ama_counts_one_code_across_the_days_sessions() -> None:
    rules = "units by ama rule for 97110, 97140"
    report = run(rules, line("97140", "30.00", minutes=10, session="AM"),
                 line("97140", "30.00", minutes=10, session="PM"),
                 line("97110", "30.00", minutes=10, session="PM"))
    # 97140: 20 minutes on the day, 1 unit; 97110 has its own 10 minutes, 1 unit.
    assert units_paid(report) == [1, 0, 1]
    # Different codes are never pooled: 7 minutes of each are no unit.
    short = run(rules, line("97140", minutes=7, session="AM"), line("97110", minutes=7, session="PM"))
    assert [o[1] for o in outcomes(short)] == ["denied", "denied"]


def test_units_cap_then_minutes_cap_cuts_once() -> None:
    # The other order: the units cap leaves 4 units and their 60 minutes, which the minutes cap
    # then allows in full.
    rules = "max 4 units per session\nmax 60 minutes per session"
    report = run(rules, line("97124", "150.00", units=5, minutes=75))
    assert outcomes(report) == [("97124", "reduced", "120.00")]
    assert units_paid(report) == [4]
    assert kinds(report) == [["max_units"]]


# --- explanations -----------------------------------------------------------------------------------


EXPLAINED = [
    ("units by cms rule for 97110, 97140",
     [line("97110", "30.00", minutes=10, session="AM", npi=NPI_PT, credential="PT", modifiers="GP"),
      line("97140", "30.00", minutes=10, session="PM", npi=NPI_PT, credential="PT", modifiers="GP")], ()),
    ("units by cms rule for 97110, 97112, 97140",
     [line("97112", "90.00", units=2, minutes=24, session="AM", npi=NPI_PT, credential="PT"),
      line("97110", "90.00", units=2, minutes=13, session="PM", npi=NPI_PT, credential="PT"),
      line("97140", "90.00", units=2, minutes=10, session="PM", npi=NPI_PT, credential="PT")], ()),
    ("units by cms rule for 97110, 97140",
     [line("97140", "30.00", minutes=10, session="PM", npi=NPI_PT, credential="PT")],
     (line("97110", "30.00", minutes=12, session="AM", npi=NPI_PT, credential="PT"),)),
    ("units by ama rule for 97140",
     [line("97140", "60.00", units=2, minutes=20, session="AM"), line("97140", "30.00", minutes=10, session="PM")], ()),
    ("max 60 minutes per session\nmax 4 units per session", [line("97124", "150.00", units=5, minutes=75)], ()),
    ("max 60 minutes per session\nmax $28 per unit for 97124", [line("97124", "150.00", units=5, minutes=75)], ()),
    ("max 60 minutes per session\nmax 45 minutes per session for 97140",
     [line("97140", "150.00", units=5, minutes=75)], ()),
]


def test_explanations(text_snapshot: object) -> None:
    out = []
    for rules, lines, history in EXPLAINED:
        out.append("## " + rules.replace("\n", " / "))
        if history:
            out.append("history: " + ", ".join(f"{h.session_id} {h.code} {h.minutes} minutes" for h in history))
        report = run(rules, *lines, history=history)
        for session in report.sessions:
            for judged in session.lines:
                out.append(f"{session.session_id} line {judged.line} {judged.code}: {judged.status}, "
                           f"{judged.allowed // 100}.{judged.allowed % 100:02d}, {judged.units_paid} of "
                           f"{judged.units} units paid")
                out += [f"  [{r.carc}] {r.message}" for r in judged.reasons]
        out.append("")
    assert text_snapshot == "\n".join(out)


# --- case files check the units paid ----------------------------------------------------------------


CASE_HEADER = ("case,session_id,patient_id,date,payer,provider_npi,provider_credential,code,modifiers,units,minutes,"
               "charge,expect_status,expect_allowed,expect_reasons,expect_units\n")


def test_a_case_checks_the_units_paid(tmp_path: Path, text_snapshot: object) -> None:
    (tmp_path / "rules.payer").write_text(
        "payer T\ncap: max 60 minutes per session\nunit-cap: max 4 units per session\n")
    (tmp_path / "flow.cases.csv").write_text(
        CASE_HEADER
        + "the minutes cap leaves 4 units,A,P1,2024-03-04,T,1328719467,LMT,97124,,5,75,150.00,reduced,120.00,cap,4\n"
        + "the author expects 5 units,B,P2,2024-03-04,T,1328719467,LMT,97124,,5,75,150.00,reduced,120.00,cap,5\n")
    code, out, err = transcript(["test", str(tmp_path)])
    assert (code, err) == (1, "")
    assert text_snapshot == out.replace(str(tmp_path), "<tmp>")


def test_expect_units_must_be_a_whole_number(tmp_path: Path) -> None:
    (tmp_path / "rules.payer").write_text("payer T\nonly 97124\n")
    (tmp_path / "bad.cases.csv").write_text(
        CASE_HEADER + "x,A,P1,2024-03-04,T,1328719467,LMT,97124,,1,,30.00,paid,30.00,-,1.5\n")
    code, out, err = transcript(["test", str(tmp_path)])
    assert (code, out) == (2, "")
    assert "bad.cases.csv:2: expect_units must be a whole number of units paid such as 3, found `1.5`" in err


# --- the standalone module ------------------------------------------------------------------------


def test_a_built_module_pools_and_passes_units_on_like_check(tmp_path: Path) -> None:
    (tmp_path / "rules.payer").write_text(
        "payer T\nunits by cms rule for 97110, 97140\nmax 60 minutes per session\nmax $28 per unit for 97124\n")
    module = tmp_path / "pooled_rules.py"
    assert transcript(["build", str(tmp_path), "-o", str(module)]) == (0, "", "")
    visit = {"patient_id": "P1", "date": "2024-03-04", "payer": "T", "provider_npi": NPI_PT,
             "provider_credential": "PT"}
    sessions = [{**visit, "session_id": "AM", "lines": [{"code": "97110", "modifiers": "GP", "minutes": 10,
                                                         "charge": "30"}]},
                {**visit, "session_id": "PM", "lines": [{"code": "97140", "modifiers": "GP", "minutes": 10,
                                                         "charge": "30"},
                                                        {"code": "97124", "units": 5, "minutes": 75,
                                                         "charge": "150"}]}]
    history = [{**visit, "session_id": "EARLY", "lines": [{"code": "97140", "modifiers": "GP", "minutes": 2,
                                                           "charge": "30"}]}]
    report = run_isolated(module, sessions, history)
    assert report == payrules.load(str(tmp_path)).check(sessions, history=history).to_dict()
    lines = [line for session in report["sessions"] for line in session["lines"]]
    assert [(line["status"], line["allowed"], line["units_paid"]) for line in lines] == [
        ("paid", "30.00", 1), ("denied", "0.00", 0), ("reduced", "112.00", 4)]


# --- a line is cut once: a minutes limit and a units limit agree -----------------------------------


@given(billed=st.lists(st.tuples(st.sampled_from(["97124", "97140"]), st.integers(1, 6), st.integers(100, 30_000)),
                       min_size=1, max_size=5),
       limit=st.integers(0, 12), minutes_first=st.booleans())
def test_minutes_and_units_limits_cut_each_unit_once(billed: list[tuple[str, int, int]], limit: int,
                                                      minutes_first: bool) -> None:
    # Lines of 15 minutes a unit: `max 15N minutes` and `max N units` are the same limit, so
    # together, in either order, they pay what one of them pays alone.
    caps = [f"max {15 * limit} minutes per session", f"max {limit} units per session"]
    rules = "\n".join(caps if minutes_first else caps[::-1])
    lines = [line(code, f"{cents // 100}.{cents % 100:02d}", units=u, minutes=15 * u) for code, u, cents in billed]
    both, alone = run(rules, *lines), run(caps[1], *lines)
    assert units_paid(both) == units_paid(alone)
    for got, want in zip([l.allowed for s in both.sessions for l in s.lines],
                         [l.allowed for s in alone.sessions for l in s.lines]):
        assert abs(got - want) <= 1  # a share taken in two steps may round a cent apart


# --- lint: a time rule after a money limit ------------------------------------------------------------


LINT_ORDER = [
    ("max $45 per session\nunits by cms rule for 97110", True),
    ("max 50% of charge for 97110\nunits by ama rule for 97110", True),
    ("max $500 per calendar year for 97110, 97140\nunits by ama rule for 97140", True),
    ("units by cms rule for 97110\nmax $45 per session", False),         # units first: the right order
    ("max $28 per unit for 97110\nunits by cms rule for 97110", False),  # a fee per unit follows the units
    ("max $45 per session for 97010\nunits by cms rule for 97110", False),
    ("max $45 per session warn\nunits by cms rule for 97110", False),
    ("max 4 units per session\nmax 60 minutes per session\nunits by cms rule for 97110", False),  # units flow
]


def test_lint_warns_of_a_time_rule_after_a_money_limit() -> None:
    # After `max $45 per session`, a 4-unit line of 38 minutes (3 units) is allowed 3/4 of $45.00,
    # $33.75; with the time rule first, $90.00 capped to $45.00.
    warned = ["W160" in {d.code for d in lint_source(Source("t.payer", f"payer T\n{rules}\n"))}
              for rules, _ in LINT_ORDER]
    assert warned == [expected for _, expected in LINT_ORDER]
