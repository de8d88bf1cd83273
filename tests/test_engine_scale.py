"""Busy days, long histories, wide code ranges and the ends of the calendar: decisions stay
right, reasons stay small, and the units paid on each line are reported."""

from __future__ import annotations

import ast as pyast
import datetime
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion

from payrules import api, judging, runtime, standalone
from payrules.compiler import compile_source
from payrules.fields import Batch
from payrules.judging import judge_sessions
from payrules.runner import Report, policies_by_payer
from payrules.runtime import Line, since
from payrules.source import Source

from helpers import NPI_DC, NPI_LMT, line, outcomes, policy, run, run_policy, sessions_of

NPI_DC2 = "1548230675"

# --- units paid ---------------------------------------------------------------------------


def test_units_paid_are_the_units_billed_lowered_by_limits_and_zero_when_denied() -> None:
    report = run("only 97140, 97124, 97110\nmax 2 units of 97140 per session\nunits by cms rule for 97110",
                 line("97140", units=3), line("97124", units=2), line("97010"),
                 line("97110", units=3, minutes=20))
    paid = [(l.code, l.status, l.units, l.units_paid) for l in report.sessions[0].lines]
    assert paid == [("97140", "reduced", 3, 2), ("97124", "paid", 2, 2), ("97010", "denied", 1, 0),
                    ("97110", "reduced", 3, 1)]


def test_units_paid_follow_units_in_the_json_line() -> None:
    report = run("max 1 unit per line", line("97140", units=4))
    keys = list(report.to_dict()["sessions"][0]["lines"][0])
    assert keys[keys.index("units") + 1] == "units_paid"
    assert report.to_dict()["sessions"][0]["lines"][0]["units_paid"] == 1
    assert api.report_schema()["$defs"]["line"]["properties"]["units_paid"]["minimum"] == 0


def test_a_standalone_module_reports_the_same_units_paid(tmp_path: Path) -> None:
    compiled = compile_source(Source("t.payer", "payer T\nmax 2 units per session\nonly 97140, 97124\n"))
    module = tmp_path / "rules_module.py"
    module.write_text(standalone.build([compiled]))
    namespace: dict[str, object] = {"__name__": "rules_module"}
    exec(compile(module.read_text(), str(module), "exec"), namespace)  # noqa: S102 - our own build
    session = {"session_id": "S1", "patient_id": "P1", "date": "2024-03-05", "payer": "T", "lines": [
        {"provider_npi": NPI_LMT, "provider_credential": "LMT", "code": code, "units": units, "charge": "50.00"}
        for code, units in (("97140", 1), ("97124", 3), ("97010", 1))]}
    check = namespace["check"]
    assert callable(check)
    built = check([session])
    assert [l["units_paid"] for l in built["sessions"][0]["lines"]] == [1, 1, 0]
    assert built == api.RuleSet(policies_by_payer([compiled])).check([session]).to_dict()


# --- a busy patient-day -----------------------------------------------------------------

BUSY_RULES = ("set massage = 97124, 97140\n"
              "no massage same day as 98940-98943\n"
              "one of 97110, 97112 per day\n"
              "no duplicate same day for 97530")


def busy_day(count: int, one_session: bool) -> list[Line]:
    """`count` lines of one patient on one day: massage, manipulation, exercise from alternating
    providers, and an activity code billed by two providers."""
    kinds = [("97124", NPI_LMT, "LMT"), ("98940", NPI_DC, "DC"), ("97110", NPI_LMT, "LMT"), ("97530", NPI_DC, "DC")]
    lines = []
    for i in range(count):
        code, npi, credential = kinds[i % 4]
        if code == "97530":
            npi = (NPI_DC, NPI_DC2)[(i // 4) % 2]
        lines.append(line(code, npi=npi, credential=credential, session="S1" if one_session else f"S{i + 1}"))
    return lines


def judged_reasons(compiled: object, lines: list[Line]) -> list[list[runtime.Reason]]:
    """The reasons as generated code records them, before they are explained."""
    batch = Batch(sessions=sessions_of(tuple(lines)), lines_read=len(lines))
    return [found for _, _, judged in judge_sessions(batch.sessions, policies_by_payer([compiled]), None)
            for _, _, _, found, _ in judged]


@pytest.mark.parametrize("one_session", [False, True], ids=["one-line-sessions", "one-session"])
def test_a_busy_day_is_judged_line_by_line(one_session: bool) -> None:
    lines = busy_day(4000, one_session)
    report = run_policy(policy(BUSY_RULES), *lines)
    result = [l for s in report.sessions for l in s.lines]
    assert len(result) == 4000
    for i, judged in enumerate(result):
        code = judged.code
        if code == "97124":  # massage on a day of manipulation
            assert (judged.status, [r.kind for r in judged.reasons]) == ("denied", ["no_same_day"])
        elif code == "97110":  # only the first of the day is paid
            assert judged.status == ("paid" if i == 2 else "denied")
        elif code == "97530":  # billed by two providers: each after the first has an earlier one by the other
            assert judged.status == ("paid" if i == 3 else "denied")
        else:
            assert judged.status == "paid"


@pytest.mark.parametrize("one_session", [False, True], ids=["one-line-sessions", "one-session"])
def test_a_busy_day_reason_cites_the_first_line_and_counts_the_rest(one_session: bool,
                                                                     text_snapshot: SnapshotAssertion) -> None:
    lines = busy_day(6000, one_session)
    report = run_policy(policy(BUSY_RULES), *lines)
    result = [l for s in report.sessions for l in s.lines]
    picked = [result[0], result[5996], result[6], result[5998], result[7], result[5999]]
    text = "\n".join(f"{l.code} ({l.status}): {r.message}" for l in picked for r in l.reasons)
    assert text_snapshot(name="one-session" if one_session else "one-line-sessions") == text + "\n"


def test_a_busy_day_reason_holds_one_line_however_many_it_counts() -> None:
    found = judged_reasons(policy(BUSY_RULES), busy_day(2000, one_session=True))
    facts = [f for reasons in found for _, f, _ in reasons]
    assert len(facts) > 1000
    for fact in facts:
        first, count = fact  # type: ignore[misc]
        assert isinstance(first, Line) and count >= 1
    assert max(count for _, count in facts) == 500  # type: ignore[misc]


def test_same_session_rules_see_only_their_session_on_a_busy_day() -> None:
    lines = [line("98940", session="S1", npi=NPI_DC, credential="DC"), line("97140", session="S2"),
             line("97140", session="S1"), line("97140", session="S1", modifiers="59")]
    report = run("requires modifier 59 on 97140 with 98940 same session", *lines)
    assert [o[1] for o in outcomes(report)] == ["paid", "denied", "paid", "paid"]


# --- limits over periods with a long history ---------------------------------------------

PERIOD_RULES = ("set massage = 97124, 97140\n"
                "max 11 visits per 30 days for massage, 98940\n"
                "max $150 per week for massage\n"
                "max 20 units of massage per calendar year\n"
                "max $1,000 per plan year from July 1\n"
                "max 40 visits per lifetime")


def history_rows(count: int) -> list[Line]:
    start = datetime.date(2021, 1, 1)
    return [line(["97124", "97140", "98940"][i % 3], "30.00", session=f"H{i}", npi=NPI_DC, credential="DC",
                 date=(start + datetime.timedelta(days=(i * 3) % 1090)).isoformat()) for i in range(count)]


class RescanEarlier(runtime.Earlier):
    """The plain definition of a limit's ledger: rescan every earlier line for each question."""

    def ledger(self, rule: int, counts: Callable[[Line], bool], date: str) -> runtime.Ledger:
        entries = [e for e in [*self.history, *self.judged] if e[0].date <= date and counts(e[0])]
        return _Rescan(entries, self.accumulated.get(rule, ()), date)  # type: ignore[return-value]


class _Rescan:
    def __init__(self, entries: list[runtime.Entry], figures: tuple[runtime.Accumulated, ...] = (),
                 date: str = "") -> None:
        # An accumulated figure of the period, through a date before `date`, replaces the lines up to that date.
        self.figures = [f for f in figures if f.through < date]
        self.entries = entries

    def accumulated_since(self, start: str) -> tuple[int, str, str] | None:
        found = [f for f in self.figures if f.start == start]
        return (found[0].used, found[0].through, found[0].where) if found else None

    def _counted(self, start: str) -> tuple[list[runtime.Entry], int]:
        found = [f for f in self.figures if f.start == start]
        after = found[0].through if found else ""
        return [e for e in self.entries if e[0].date >= start and e[0].date > after], found[0].used if found else 0

    def cents_since(self, start: str) -> int:
        entries, used = self._counted(start)
        return used + sum(a for o, a, u in entries)

    def units_since(self, start: str) -> int:
        entries, used = self._counted(start)
        return used + sum(u for o, a, u in entries)

    def visits_since(self, start: str) -> int:
        entries, used = self._counted(start)
        return used + len({(o.session_id, o.date) for o, a, u in entries if u})


def decisions(report: Report) -> list[tuple[str, str, int, int, tuple[str, ...]]]:
    return [(s.session_id, l.code, l.allowed, l.units_paid, tuple(r.message for r in l.reasons))
            for s in report.sessions for l in s.lines]


def test_limits_over_periods_agree_with_a_rescan_of_a_long_history(monkeypatch: pytest.MonkeyPatch) -> None:
    history = history_rows(2000)
    # Sessions before, among and after the history's dates, several on one day.
    dates = ["2020-12-30", "2021-01-04", "2021-01-04", "2022-06-30", "2022-07-01", "2023-12-31", "2024-01-02"]
    lines = [line(code, "60.00", session=f"S{i}", date=date, units=2)
             for i, date in enumerate(dates) for code in ("97124", "97140")]
    compiled = policy(PERIOD_RULES)
    fast = run_policy(compiled, *lines, history=tuple(history))
    monkeypatch.setattr(judging, "Earlier", RescanEarlier)
    compiled.reason_cache.clear()
    plain = run_policy(compiled, *lines, history=tuple(history))
    assert decisions(fast) == decisions(plain)
    assert {l.status for s in fast.sessions for l in s.lines} >= {"denied", "reduced"}


def test_history_dated_after_a_session_does_not_count_for_it() -> None:
    history = (line("97124", session="H1", date="2024-03-20"), line("97124", session="H2", date="2024-03-21"))
    report = run("max 1 visit per 30 days", line("97140", date="2024-03-05"), line("97140", session="S2",
                 date="2024-03-25"), history=history)
    assert [o[1] for o in outcomes(report)] == ["paid", "denied"]


# --- code ranges ---------------------------------------------------------------------------


def range_rules(count: int) -> str:
    return "payer BIG\n" + "".join(f"r{i}: not covered {10000 + 10 * i}-{19999 + 10 * i}\n" for i in range(count))


def test_wide_ranges_compile_to_range_checks_not_code_lists() -> None:
    compiled = compile_source(Source("big.payer", range_rules(40)))
    assert len(compiled.python) < 20_000
    pyast.parse(compiled.python)
    assert "('#####', '10000', '19999')" in compiled.python


def test_wide_ranges_decide_like_the_codes_they_hold() -> None:
    rules = "set wide = 10000-19999, S0100-S0199, 0001F-0100F, 97140\nnot covered wide"
    codes = ["09999", "10000", "15000", "19999", "20000", "S0099", "S0100", "S0199", "S0200", "T0150",
             "0001F", "0100F", "0101F", "0050T", "97140", "97124"]
    report = run(rules, *[line(code) for code in codes])
    assert [(o[0], o[1]) for o in outcomes(report)] == [
        ("09999", "paid"), ("10000", "denied"), ("15000", "denied"), ("19999", "denied"), ("20000", "paid"),
        ("S0099", "paid"), ("S0100", "denied"), ("S0199", "denied"), ("S0200", "paid"), ("T0150", "paid"),
        ("0001F", "denied"), ("0100F", "denied"), ("0101F", "paid"), ("0050T", "paid"), ("97140", "denied"),
        ("97124", "paid")]


def test_a_range_holds_only_codes_of_its_shape() -> None:
    wide = runtime.CodeSet(frozenset({"97140"}), (("#####", "10000", "19999"),))
    assert "15000" in wide and "97140" in wide
    for text in ("15/00", "1A000", "1500", "150000", "１５０００", "", "S5000", None):
        assert text not in wide


def test_short_runs_of_codes_stay_listed(python_snapshot: SnapshotAssertion) -> None:
    compiled = compile_source(Source("t.payer", "payer T\nset cmt = 98940-98943\nonly cmt, 97140\n"
                                     "not covered 20000-20099, 97010"))
    assert python_snapshot == compiled.python


# --- the ends of the calendar ------------------------------------------------------------


@pytest.mark.parametrize(("period", "date", "days", "start", "expected"), [
    ("days", "0001-01-05", 30, "", "0001-01-01"),
    ("days", "0001-01-30", 30, "", "0001-01-01"),
    ("days", "0001-01-31", 30, "", "0001-01-02"),
    ("days", "0001-01-01", 3650, "", "0001-01-01"),
    ("week", "0001-01-03", 0, "", "0001-01-01"),
    ("plan_year", "0001-03-01", 0, "07-01", "0001-01-01"),
    ("plan_year", "0001-07-01", 0, "07-01", "0001-07-01"),
    ("days", "9999-12-31", 30, "", "9999-12-02"),
    ("week", "9999-12-31", 0, "", "9999-12-27"),
    ("plan_year", "9999-12-31", 0, "07-01", "9999-07-01"),
    ("month", "9999-12-31", 0, "", "9999-12-01"),
])
def test_periods_at_the_ends_of_the_calendar(period: str, date: str, days: int, start: str, expected: str) -> None:
    assert since(period, date, days, start) == expected


def test_a_limit_over_days_in_year_one_is_judged() -> None:
    report = run("max 2 visits per 30 days\nmax 3 visits per week\nmax $60 per plan year from July 1",
                 line("97140", date="0001-01-01"), line("97140", session="S2", date="0001-01-05"),
                 line("97140", session="S3", date="9999-12-31"))
    assert outcomes(report) == [("97140", "paid", "50.00"), ("97140", "reduced", "10.00"),
                                ("97140", "paid", "50.00")]


def test_a_year_one_date_through_the_cli(tmp_path: Path) -> None:
    from conftest import transcript

    rules = tmp_path / "r.payer"
    rules.write_text("payer ACME\nmax 2 visits per 30 days\n")
    sessions = tmp_path / "s.csv"
    sessions.write_text("session_id,patient_id,date,payer,provider_npi,provider_credential,code,charge\n"
                        f"S1,P1,0001-01-05,ACME,{NPI_LMT},LMT,97140,40.00\n")
    code, out, err = transcript(["check", str(sessions), "--rules", str(rules), "--format", "json"])
    assert (code, err) == (0, "")
    assert json.loads(out)["summary"]["paid"] == 1
