"""Fee schedules: a run of per-unit money limits over disjoint codes is judged in one pass with one
dictionary lookup per line, with exactly the results of one pass per limit."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payrules.api import RuleSet
from payrules.codegen import generate
from payrules.compiler import check_source, policy_from_python
from payrules.runner import policies_by_payer
from payrules.source import Source

CODES = ["97010", "97110", "97112", "97124", "97140", "97530", "98940", "98941"]
"""Few codes, so that random limits often name the same code and sessions often bill them."""


def rule_sets(text: str) -> tuple[RuleSet, RuleSet, str]:
    """The rules compiled with fee schedule passes and with one pass per limit, and the grouped source."""
    checked = check_source(Source("fees.payer", text))
    grouped = generate(checked)
    one_by_one = generate(checked, group_fee_schedules=False)
    return (RuleSet(policies_by_payer([policy_from_python(grouped)])),
            RuleSet(policies_by_payer([policy_from_python(one_by_one)])), grouped)


def code_list(draw: st.DrawFn) -> str:
    return ", ".join(draw(st.lists(st.sampled_from(CODES), min_size=1, max_size=3, unique=True)))


@st.composite
def statements(draw: st.DrawFn) -> str:
    """One limit: mostly per-unit money limits, some written as a share of an amount, some with
    the `warn` option or an effective date (which keep them out of a schedule), and other
    amount passes that must keep their place between them."""
    dollars = draw(st.integers(1, 80))
    cents = draw(st.sampled_from(["", ".50", ".05"]))
    kind = draw(st.sampled_from(["unit"] * 6 + ["percent", "warn", "dated", "range", "session", "units", "line",
                                                "minutes", "session-all"]))
    if kind == "unit":
        return f"max ${dollars}{cents} per unit for {code_list(draw)}"
    if kind == "percent":
        percent = draw(st.sampled_from(["80", "12.5", "100"]))
        return f"max {percent}% of ${dollars}{cents} per unit for {code_list(draw)}"
    if kind == "warn":
        return f"max ${dollars} per unit for {code_list(draw)} warn"
    if kind == "dated":
        return f"max ${dollars} per unit for {code_list(draw)} effective from 2024-05-07"
    if kind == "range":
        return f"max ${dollars} per unit for 97000-97999"
    if kind == "session":
        return f"max ${dollars * 3} per session for {code_list(draw)}"
    if kind == "session-all":
        return f"max ${dollars * 4} per session"
    if kind == "units":
        return f"max {draw(st.integers(1, 4))} units of {code_list(draw)} per session"
    if kind == "line":
        return f"max ${dollars * 2} per line for {code_list(draw)}"
    return f"max {draw(st.integers(5, 60))} minutes per session for {code_list(draw)}"


@st.composite
def policies(draw: st.DrawFn) -> str:
    lines = ['payer FEES "Fee schedule"']
    if draw(st.booleans()):
        lines.append(f"covered: only {', '.join(CODES[:-1])}")
    lines += [f"r{i}: {s}" for i, s in enumerate(draw(st.lists(statements(), min_size=1, max_size=50)))]
    return "\n".join(lines) + "\n"


@st.composite
def sessions(draw: st.DrawFn) -> list[dict[str, Any]]:
    found = []
    for s in range(draw(st.integers(1, 3))):
        lines = [{"code": draw(st.sampled_from(CODES)), "units": draw(st.integers(1, 5)),
                  "minutes": draw(st.sampled_from([None, 8, 15, 30, 45])),
                  "charge": f"{draw(st.integers(0, 30000)) / 100:.2f}"}
                 for _ in range(draw(st.integers(1, 6)))]
        for line in lines:
            if line["minutes"] is None:
                del line["minutes"]
        found.append({"session_id": f"V-{s}", "patient_id": "P-1", "date": draw(st.sampled_from(["2024-05-06",
                                                                                                  "2024-05-08"])),
                      "payer": "FEES", "provider_npi": "1328719467", "provider_credential": "PT", "lines": lines})
    return found


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), st.lists(sessions(), min_size=1, max_size=3))
def test_fee_schedule_passes_judge_as_one_pass_per_limit(text: str, batches: list[list[dict[str, Any]]]) -> None:
    grouped, one_by_one, _ = rule_sets(text)
    for batch in batches:
        assert grouped.check(batch).to_dict() == one_by_one.check(batch).to_dict()


def test_a_run_of_disjoint_per_unit_limits_is_one_pass_with_the_same_reasons() -> None:
    text = ('payer FEES "Fee schedule"\n'
            "cap: max $200 per session\n"
            "fee-a: max $30 per unit for 97124\n"
            "fee-b: max 80% of $40 per unit for 97140\n"
            "fee-c: max $12.50 per unit for 97010\n")
    grouped, one_by_one, python = rule_sets(text)
    assert python.count("for k, line in enumerate(lines):") == 3, "the session cap, the schedule, the per-line loop"
    session = {"session_id": "V-1", "patient_id": "P-1", "date": "2024-05-06", "payer": "FEES",
               "provider_npi": "1328719467", "provider_credential": "PT",
               "lines": [{"code": "97124", "units": 2, "charge": "80.00"}, {"code": "97140", "units": 1,
                                                                          "charge": "45.00"},
                         {"code": "97010", "units": 1, "charge": "10.00"}]}
    report = grouped.check(session)
    assert report.to_dict() == one_by_one.check(session).to_dict()
    lines = report.sessions[0].lines
    assert [(line.allowed, [(r.rule, r.amount) for r in line.reasons]) for line in lines] == [
        (6000, [("fee-a", 2000)]), (3200, [("fee-b", 1300)]), (1000, [])]


def test_overlapping_limits_start_a_new_pass_and_keep_their_order() -> None:
    text = ('payer FEES "Fee schedule"\n'
            "fee-a: max $30 per unit for 97124\n"
            "fee-b: max $40 per unit for 97140\n"
            "lower: max $25 per unit for 97124, 97140\n"
            "fee-c: max $20 per unit for 97010\n")
    grouped, one_by_one, python = rule_sets(text)
    assert "_FEES1 = {" in python and "_FEES2" not in python
    session = {"session_id": "V-1", "patient_id": "P-1", "date": "2024-05-06", "payer": "FEES",
               "provider_npi": "1328719467", "provider_credential": "PT",
               "lines": [{"code": "97124", "units": 1, "charge": "50.00"}, {"code": "97140", "units": 1,
                                                                          "charge": "35.00"}]}
    report = grouped.check(session)
    assert report.to_dict() == one_by_one.check(session).to_dict()
    assert [[(r.rule, r.amount) for r in line.reasons] for line in report.sessions[0].lines] == [
        [("fee-a", 2000), ("lower", 500)], [("lower", 1000)]]


def test_generated_code_of_a_small_fee_schedule(python_snapshot: Any) -> None:
    text = ('payer FEES "Fee schedule"\n'
            "covered: only 97124, 97140, 97010, 97110\n"
            "cap: max $150 per session\n"
            "fee-97124: max $30 per unit for 97124\n"
            "fee-97140: max 80% of $40 per unit for 97140\n"
            "fee-97010: max $12.50 per unit for 97010\n"
            "unit-cap: max 3 units of 97110 per session\n"
            "fee-97110: max $20 per unit for 97110\n")
    assert generate(check_source(Source("fees.payer", text))) == python_snapshot
