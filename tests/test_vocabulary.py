"""Amounts, units, time, frequency and same-day statements: sessions that trigger each one and
sessions that pass, and the explanations a biller reads."""

from __future__ import annotations

import pytest
from helpers import NPI_DC, kinds, line, outcomes, run

from payrules.runtime import since, time_units

# --- money: fee schedule, caps per line, day and period, percentages -----------------------------


def test_fee_schedule_per_unit_at_different_rates() -> None:
    rules = "max $28 per unit for 97124\nmax $32 per unit for 97140"
    report = run(rules, line("97124", "70.00", units=2), line("97140", "60.00", units=2), line("97140", "30.00"))
    assert outcomes(report) == [("97124", "reduced", "56.00"), ("97140", "paid", "60.00"),
                                ("97140", "paid", "30.00")]


def test_cap_per_line() -> None:
    report = run("max $40 per line", line("97124", "45.00"), line("97140", "40.00"))
    assert outcomes(report) == [("97124", "reduced", "40.00"), ("97140", "paid", "40.00")]


def test_share_of_charge_rounds_half_up() -> None:
    report = run("max 50% of charge for 97010", line("97010", "30.05"), line("97140", "30.05"))
    assert outcomes(report) == [("97010", "reduced", "15.03"), ("97140", "paid", "30.05")]


def test_share_of_a_daily_maximum_counts_other_sessions_that_day() -> None:
    rules = "max 75% of $60 per day"
    report = run(rules, line("97124", "30.00", session="A"), line("97140", "30.00", session="B"),
                 line("97140", "30.00", session="C", date="2024-03-06"))
    assert outcomes(report) == [("97124", "paid", "30.00"), ("97140", "reduced", "15.00"),
                                ("97140", "paid", "30.00")]


def test_calendar_year_cap_counts_allowed_amounts_of_earlier_sessions() -> None:
    rules = "max 2 units per session\nmax $100 per calendar year"
    report = run(rules, line("97124", "80.00", units=4, session="A", date="2024-02-01"),
                 line("97124", "80.00", session="B", date="2024-03-01"),
                 line("97124", "80.00", session="C", date="2025-01-02"))
    # Session A is allowed $40.00 for 2 of its 4 units, so $60.00 of the year is left for B.
    assert outcomes(report) == [("97124", "reduced", "40.00"), ("97124", "reduced", "60.00"),
                                ("97124", "paid", "80.00")]


def test_period_cap_judges_sessions_in_date_order_and_reports_in_input_order() -> None:
    report = run("max $50 per month", line("97124", "40.00", session="late", date="2024-03-20"),
                 line("97124", "40.00", session="early", date="2024-03-02"))
    assert [s.session_id for s in report.sessions] == ["late", "early"]
    assert outcomes(report) == [("97124", "reduced", "10.00"), ("97124", "paid", "40.00")]


def test_plan_year_starts_on_its_own_date() -> None:
    rules = "max $50 per plan year from July 1"
    report = run(rules, line("97124", "40.00", session="A", date="2024-06-30"),
                 line("97124", "40.00", session="B", date="2024-07-01"),
                 line("97124", "40.00", session="C", date="2025-06-30"))
    assert outcomes(report) == [("97124", "paid", "40.00"), ("97124", "paid", "40.00"),
                                ("97124", "reduced", "10.00")]


def test_history_counts_but_is_not_judged() -> None:
    report = run("max $100 per lifetime", line("97124", "80.00", session="now", date="2024-05-01"),
                 history=(line("97124", "60.00", session="old", date="2019-01-01"),))
    assert [s.session_id for s in report.sessions] == ["now"]
    assert outcomes(report) == [("97124", "reduced", "40.00")]


@pytest.mark.parametrize(("period", "date", "first"), [
    ("day", "2024-03-06", "2024-03-06"),
    ("week", "2024-03-06", "2024-03-04"),
    ("week", "2024-03-04", "2024-03-04"),
    ("month", "2024-02-29", "2024-02-01"),
    ("year", "2024-12-31", "2024-01-01"),
    ("lifetime", "2024-12-31", ""),
])
def test_period_starts(period: str, date: str, first: str) -> None:
    assert since(period, date) == first


def test_rolling_days_and_plan_years() -> None:
    assert since("days", "2024-03-01", 30) == "2024-02-01"
    assert since("plan_year", "2024-06-30", 0, "07-01") == "2023-07-01"
    assert since("plan_year", "2024-07-01", 0, "07-01") == "2024-07-01"


# --- units and time ---------------------------------------------------------------------------


def test_cms_worked_example_24_and_23_minutes() -> None:
    assert time_units("cms", [(0, 24), (1, 23)]) == {0: 2, 1: 1}


def test_cms_worked_example_20_and_20_minutes() -> None:
    units = time_units("cms", [(0, 20), (1, 20)])
    assert sorted(units.values()) == [1, 2]


@pytest.mark.parametrize(("minutes", "units"), [
    ([7], [0]), ([8], [1]), ([22], [1]), ([23], [2]), ([37], [2]), ([38], [3]), ([52], [3]), ([53], [4]),
    ([127], [8]),
    ([7, 7], [1, 0]),        # two short services: one unit, for the one with more minutes (a tie: the first)
    ([5, 7], [0, 1]),
    ([33, 7], [2, 1]),       # 40 minutes: 3 units
    ([15, 15, 15], [1, 1, 1]),
])
def test_cms_units_from_pooled_minutes(minutes: list[int], units: list[int]) -> None:
    assert time_units("cms", list(enumerate(minutes))) == dict(enumerate(units))


@pytest.mark.parametrize(("minutes", "units"), [(7, 0), (8, 1), (22, 1), (23, 2), (37, 2), (38, 3)])
def test_ama_midpoint_per_code(minutes: int, units: int) -> None:
    assert time_units("ama", [(0, minutes)]) == {0: units}


def test_ama_counts_each_code_on_its_own() -> None:
    # Pooled, 7 + 7 minutes would be a unit; per code, neither is.
    assert time_units("ama", [(0, 7), (1, 7)]) == {0: 0, 1: 0}


def test_cms_rule_reproduces_the_worked_example_on_a_session() -> None:
    report = run("units by cms rule for 97110, 97112",
                 line("97112", "90.00", units=2, minutes=24), line("97110", "90.00", units=2, minutes=23))
    assert outcomes(report) == [("97112", "paid", "90.00"), ("97110", "reduced", "45.00")]


def test_units_minutes_mismatch_and_no_support() -> None:
    report = run("units by ama rule for 97124", line("97124", "100.00", units=4, minutes=38),
                 line("97124", "25.00", minutes=7), line("97124", "25.00", units=1), line("97010", "25.00", minutes=3))
    assert outcomes(report) == [("97124", "reduced", "75.00"), ("97124", "denied", "0.00"),
                                ("97124", "paid", "25.00"), ("97010", "paid", "25.00")]
    # The AMA rule counts a code's own minutes on the day: 38 + 7 minutes of 97124 are 3 units.
    assert report.sessions[0].lines[0].reasons[0].message.startswith(
        "97124 was billed with 4 units; under the AMA midpoint rule the 45 minutes of 97124 on 2024-03-05 "
        "by NPI 1328719467, on 2 lines in one session, support 3 units for this line's 38 minutes")


def test_supported_units_feed_later_unit_caps() -> None:
    rules = "units by ama rule for 97124\nmax 4 units per session"
    report = run(rules, line("97124", "90.00", units=3, minutes=30), line("97124", "90.00", units=3, minutes=45))
    # 30 minutes support 2 of 3 units; the cap then has 2 of 4 units left for the second line.
    assert outcomes(report) == [("97124", "reduced", "60.00"), ("97124", "reduced", "60.00")]
    assert kinds(report) == [["time_rule"], ["max_units"]]


def test_max_units_per_day_counts_other_sessions() -> None:
    report = run("max 4 units of 97140 per day", line("97140", "60.00", units=3, session="A"),
                 line("97140", "60.00", units=3, session="B"))
    assert outcomes(report) == [("97140", "paid", "60.00"), ("97140", "reduced", "20.00")]


def test_max_minutes_per_session() -> None:
    report = run("max 60 minutes per session", line("97140", "60.00", units=3, minutes=45),
                 line("97124", "40.00", units=2, minutes=30), line("97124", "40.00", units=2))
    assert outcomes(report) == [("97140", "paid", "60.00"), ("97124", "reduced", "20.00"),
                                ("97124", "paid", "40.00")]


# --- frequency ----------------------------------------------------------------------------------


def test_visit_limit_over_a_combined_family() -> None:
    rules = "max 2 visits per calendar year for 98940-98942, 97124"
    report = run(rules, line("98940", session="A", date="2024-01-10"), line("97124", session="B", date="2024-02-10"),
                 line("97124", session="C", date="2024-03-10"), line("97010", session="C", date="2024-03-10"),
                 line("98940", session="D", date="2025-01-03"))
    assert outcomes(report) == [("98940", "paid", "50.00"), ("97124", "paid", "50.00"), ("97124", "denied", "0.00"),
                                ("97010", "paid", "50.00"), ("98940", "paid", "50.00")]


def test_denied_visits_do_not_count() -> None:
    rules = "only 97124\nmax 1 visit per week"
    report = run(rules, line("97140", session="A", date="2024-03-04"), line("97124", session="B", date="2024-03-05"))
    assert [o[1] for o in outcomes(report)] == ["denied", "paid"]


def test_visit_limit_over_rolling_days_with_history() -> None:
    history = (line("97124", session="H1", date="2024-03-10"), line("97124", session="H2", date="2024-03-20"))
    report = run("max 2 visits per 30 days", line("97124", session="now", date="2024-04-01"),
                 line("97124", session="later", date="2024-04-10"), history=history)
    assert [o[1] for o in outcomes(report)] == ["denied", "paid"]


# --- same day and session -----------------------------------------------------------------------


def test_one_of_mutually_exclusive_codes() -> None:
    rules = "one of 97124, 97140 per session unless modifier 59"
    report = run(rules, line("97124"), line("97140"), line("97140", modifiers="59"), line("97010"),
                 line("97140", session="other"))
    assert [o[1] for o in outcomes(report)] == ["paid", "denied", "paid", "paid", "paid"]


def test_one_of_per_day_spans_sessions() -> None:
    report = run("one of 97124, 97140 per day", line("97124", session="A"), line("97140", session="B"))
    assert [o[1] for o in outcomes(report)] == ["paid", "denied"]


def test_bundling_same_day_and_same_session() -> None:
    report = run("97010 bundled into 97124, 97140", line("97010", session="A"), line("97140", session="B"),
                 line("97010", session="C", date="2024-03-06"))
    assert [o[1] for o in outcomes(report)] == ["denied", "paid", "paid"]
    assert kinds(report)[0] == ["bundled"]
    assert report.sessions[0].lines[0].reasons[0].carc == "97"
    session_only = run("97010 bundled into 97140 same session", line("97010", session="A"),
                       line("97140", session="B"))
    assert [o[1] for o in outcomes(session_only)] == ["paid", "paid"]


def test_duplicate_by_another_provider() -> None:
    report = run("no duplicate same day", line("97140", session="A", npi=NPI_DC, credential="DC"),
                 line("97140", session="B"), line("97124", session="B"))
    assert [o[1] for o in outcomes(report)] == ["paid", "denied", "paid"]
    assert report.sessions[1].lines[0].reasons[0].carc == "18"
    # The same provider twice is a units question, not a duplicate by another provider.
    same = run("no duplicate same day", line("97140", session="A"), line("97140", session="B"))
    assert [o[1] for o in outcomes(same)] == ["paid", "paid"]


def test_warn_variants_never_change_amounts() -> None:
    rules = ("units by ama rule for 97124 warn\nmax 1 visit per day warn\nmax $10 per line warn\n"
             "one of 97124, 97140 per session warn")
    report = run(rules, line("97124", units=4, minutes=10), line("97140"), line("97124", session="B"))
    assert [o[1] for o in outcomes(report)] == ["paid", "paid", "paid"]
    assert all(r.severity == "warn" for s in report.sessions for l in s.lines for r in l.reasons)


# --- explanations ---------------------------------------------------------------------------------


EXPLAINED = [
    ("max $28 per unit for 97124", [line("97124", "70.00", units=2)]),
    ("max 50% of charge for 97010", [line("97010", "30.00")]),
    ("max 75% of $60 per day", [line("97124", "30.00", session="A"), line("97140", "30.00", session="B")]),
    ("max $500 per calendar year for 97124 source \"Plan booklet, massage benefit\"",
     [line("97124", "300.00", session="A", date="2024-02-01"), line("97124", "300.00", session="B", date="2024-03-01")]),
    ("max 6 units of 97124 per week", [line("97124", "120.00", units=4, session="A", date="2024-03-04"),
                                        line("97124", "120.00", units=4, session="B", date="2024-03-06")]),
    ("max 2 visits per calendar year for 98940-98942, 97124",
     [line("97124", session=s, date=d) for s, d in (("A", "2024-01-10"), ("B", "2024-02-10"), ("C", "2024-03-10"))]),
    ("max 60 minutes per session", [line("97140", "60.00", units=3, minutes=45),
                                    line("97124", "40.00", units=2, minutes=30)]),
    ("units by cms rule for 97110, 97112", [line("97112", "100.00", units=3, minutes=24),
                                            line("97110", "100.00", units=2, minutes=23)]),
    ("units by ama rule for 97140", [line("97140", "100.00", units=4, minutes=38),
                                     line("97140", "25.00", minutes=7)]),
    ("one of 97124, 97140 per session unless modifier 59", [line("97124"), line("97140")]),
    ("97010 bundled into 97124, 97140", [line("97010"), line("97140", session="B")]),
    ("no duplicate same day for 97140", [line("97140", session="A", npi=NPI_DC, credential="DC"),
                                         line("97140", session="B")]),
    ("max 1 visit per day warn", [line("97124", session="A"), line("97124", session="B")]),
]


def test_explanations(text_snapshot: object) -> None:
    out = []
    for rules, lines in EXPLAINED:
        out.append(f"## {rules}")
        report = run(rules, *lines)
        for session in report.sessions:
            for judged in session.lines:
                out.append(f"{session.session_id} line {judged.line} {judged.code}: {judged.status}, "
                           f"{judged.allowed // 100}.{judged.allowed % 100:02d}")
                out += [f"  [{r.carc}] {r.message}" for r in judged.reasons]
        out.append("")
    assert text_snapshot == "\n".join(out)
