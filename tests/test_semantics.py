"""What each statement means, on sessions that trigger it and sessions that pass."""

from __future__ import annotations

from helpers import NPI_DC, kinds, line, outcomes, run

# --- only ---------------------------------------------------------------------------------


def test_only_pays_listed_codes_and_denies_others() -> None:
    report = run("only 97140", line("97140"), line("97124"))
    assert outcomes(report) == [("97140", "paid", "50.00"), ("97124", "denied", "0.00")]
    reason = report.sessions[0].lines[1].reasons[0]
    assert (reason.carc, reason.severity, reason.line, reason.text) == ("204", "deny", 2, "only 97140")


def test_only_with_ranges_and_sets() -> None:
    rules = "set CMT = 98940-98942\nonly CMT, S8990"
    report = run(rules, line("98941"), line("98943"), line("S8990"))
    assert [o[1] for o in outcomes(report)] == ["paid", "denied", "paid"]


def test_carc_override() -> None:
    report = run("only 97140 carc 96 rarc N130", line("97124"))
    reason = report.sessions[0].lines[0].reasons[0]
    assert (reason.carc, reason.rarc) == ("96", "N130")


# --- max per session ------------------------------------------------------------------------


def test_session_cap_reduces_in_line_order() -> None:
    report = run("max $45 per session", line("97124", "30.00"), line("97140", "30.00"), line("97140", "10.00"))
    assert outcomes(report) == [("97124", "paid", "30.00"), ("97140", "reduced", "15.00"),
                                ("97140", "reduced", "0.00")]
    assert "already used all of it" in report.sessions[0].lines[2].reasons[0].message


def test_session_cap_under_the_cap_pays_in_full() -> None:
    report = run("max $45 per session", line("97124", "20.00"), line("97140", "25.00"))
    assert [o[1] for o in outcomes(report)] == ["paid", "paid"]


def test_session_cap_with_cents() -> None:
    report = run("max $45.50 per session", line("97124", "45.51"))
    assert outcomes(report) == [("97124", "reduced", "45.50")]


def test_denied_lines_do_not_use_the_cap() -> None:
    report = run("only 97124\nmax $45 per session", line("97010", "15.00"), line("97124", "60.00"))
    assert outcomes(report) == [("97010", "denied", "0.00"), ("97124", "reduced", "45.00")]
    assert kinds(report) == [["only"], ["max_amount"]]


def test_cap_is_per_session_not_per_day() -> None:
    report = run("max $45 per session", line("97124", "40.00", session="A"), line("97124", "40.00", session="B"))
    assert [o[1] for o in outcomes(report)] == ["paid", "paid"]


# --- no same day ------------------------------------------------------------------------------


NO_MASSAGE = "no 97124, 97140 same day as 98940-98943 unless modifier 59, XS"


def test_same_day_in_another_session_by_another_provider() -> None:
    report = run(NO_MASSAGE, line("98941", session="A", npi=NPI_DC, credential="DC"), line("97124", session="B"))
    assert outcomes(report) == [("98941", "paid", "50.00"), ("97124", "denied", "0.00")]
    message = report.sessions[1].lines[0].reasons[0].message
    assert message.startswith(f"98941 was billed for this patient on 2024-03-05 by NPI {NPI_DC} (in session A, line 1)")


def test_same_day_in_the_same_session() -> None:
    report = run(NO_MASSAGE, line("98940"), line("97140"))
    assert [o[1] for o in outcomes(report)] == ["paid", "denied"]
    assert "(in this session, line 1)" in report.sessions[0].lines[1].reasons[0].message


def test_same_day_exception_modifier() -> None:
    report = run(NO_MASSAGE, line("98940"), line("97140", modifiers="59"), line("97124", modifiers="XS GP"))
    assert [o[1] for o in outcomes(report)] == ["paid", "paid", "paid"]


def test_other_day_other_patient_and_other_payer_do_not_trigger() -> None:
    report = run(NO_MASSAGE,
                 line("98940", session="A"),
                 line("97124", session="B", date="2024-03-06"),
                 line("97124", session="C", patient="P2"))
    assert [o[1] for o in outcomes(report)] == ["paid", "paid", "paid"]


def test_same_day_only_counts_the_same_payer() -> None:
    # A CMT sent to another payer is not known to this payer; that session has no rule file.
    report = run(NO_MASSAGE, line("98940", session="A", payer="OTHER"), line("97124", session="B"))
    assert outcomes(report) == [("97124", "paid", "50.00")]
    assert report.errors[0].problems[0].field == "payer"


def test_without_restricted_codes_every_other_code_is_restricted() -> None:
    report = run("no same day as 98940-98943", line("98940"), line("98941"), line("97124"), line("99213"))
    assert [o[1] for o in outcomes(report)] == ["paid", "paid", "denied", "denied"]


def test_a_line_does_not_trigger_itself() -> None:
    report = run("no 97140 same day as 97140", line("97140"))
    assert [o[1] for o in outcomes(report)] == ["paid"]
    report = run("no 97140 same day as 97140", line("97140", session="A"), line("97140", session="B"))
    assert [o[1] for o in outcomes(report)] == ["denied", "denied"]


def test_several_triggers_are_counted_in_the_message() -> None:
    report = run(NO_MASSAGE, line("98940", session="A"), line("98943", session="B"), line("97124", session="C"))
    message = report.sessions[2].lines[0].reasons[0].message
    assert "98940 was billed" in message and "and 1 more such line that day" in message


# --- requires credential ------------------------------------------------------------------------


def test_requires_dc_npi() -> None:
    report = run("requires DC NPI", line("97140", credential="DC", npi=NPI_DC), line("97140", credential="LMT"),
                 line("97140", credential=""))
    assert [o[1] for o in outcomes(report)] == ["paid", "denied", "denied"]
    messages = [l.reasons[0].message for l in report.sessions[0].lines[1:]]
    assert "an LMT (licensed massage therapist)" in messages[0]
    assert "a provider with no credential on record" in messages[1]


def test_requires_applies_only_to_named_codes() -> None:
    report = run("requires DC or PT or MD NPI for 97124, 97140", line("98940", credential="LMT"),
                 line("97124", credential="PT"), line("97140", credential="LMT"))
    assert [o[1] for o in outcomes(report)] == ["paid", "paid", "denied"]


def test_credentials_in_rules_are_case_insensitive() -> None:
    report = run("requires dc NPI", line("97140", credential="DC"))
    assert [o[1] for o in outcomes(report)] == ["paid"]


# --- all reasons, not only the first --------------------------------------------------------------


def test_every_reason_is_reported() -> None:
    rules = "only 97140\nno same day as 98940-98943\nrequires DC NPI\nmax $45 per session"
    report = run(rules, line("98940", session="A", credential="DC"), line("97124", session="B", credential="LMT"))
    assert kinds(report)[1] == ["only", "no_same_day", "requires_credential"]
    assert outcomes(report)[1] == ("97124", "denied", "0.00")


# --- max units ------------------------------------------------------------------------------------


def test_unit_cap_per_session_in_line_order() -> None:
    report = run("max 4 units of 97124, 97140 per session", line("97124", "90.00", units=3),
                 line("97140", "60.00", units=2), line("97140", "35.00", units=1), line("97010", "15.00"))
    assert outcomes(report) == [("97124", "paid", "90.00"), ("97140", "reduced", "30.00"),
                                ("97140", "reduced", "0.00"), ("97010", "paid", "15.00")]
    message = report.sessions[0].lines[1].reasons[0].message
    assert message == ("Earlier lines of this session used 3 of the 4 units of 97124, 97140 this payer allows per "
                       "session; 2 were billed on this line, 1 can be paid: allowed reduced from $60.00 to $30.00.")


def test_unit_cap_per_line_rounds_half_up() -> None:
    report = run("max 2 units per line", line("97124", "100.01", units=3), line("97140", "50.00", units=2))
    # 100.01 x 2/3 = 66.6733... -> 66.67
    assert outcomes(report) == [("97124", "reduced", "66.67"), ("97140", "paid", "50.00")]
    report = run("max 1 units per line", line("97124", "0.03", units=2))
    assert outcomes(report) == [("97124", "reduced", "0.02")]  # 1.5 cents rounds up


def test_unit_cap_skips_denied_lines() -> None:
    report = run("only 97140\nmax 2 units per session", line("97124", units=3), line("97140", "40.00", units=2))
    assert outcomes(report) == [("97124", "denied", "0.00"), ("97140", "paid", "40.00")]


# --- options: warn, source, effective ------------------------------------------------------------


def test_warn_reports_but_changes_nothing() -> None:
    report = run("only 97140 warn\nmax $45 per session warn", line("97124", "30.00"), line("97140", "30.00"))
    assert outcomes(report) == [("97124", "paid", "30.00"), ("97140", "paid", "30.00")]
    first, second = (l.reasons[0] for l in report.sessions[0].lines)
    assert first.severity == "warn" and first.message == (
        "Would be denied if the payer applies this rule (a warning: the amount is not changed): 97124 would not be "
        "covered: this payer pays only for 97140.")
    assert second.message == (
        "Would be reduced to $15.00 if the payer applies this rule (a warning: the amount is not changed): This "
        "payer allows at most $45.00 per session: allowed would be reduced from $30.00 to $15.00.")


def test_warned_unit_cap_keeps_the_amount() -> None:
    report = run("max 2 units per session warn", line("97124", "60.00", units=3))
    assert outcomes(report) == [("97124", "paid", "60.00")]
    assert report.sessions[0].lines[0].reasons[0].kind == "max_units"


def test_source_is_cited() -> None:
    report = run('only 97140 source "Provider manual 2024, section 7.3"', line("97124"))
    reason = report.sessions[0].lines[0].reasons[0]
    assert reason.source == "Provider manual 2024, section 7.3"
    assert reason.message.endswith("Source: Provider manual 2024, section 7.3.")
    assert reason.to_dict()["source"] == "Provider manual 2024, section 7.3"


def test_effective_dates_limit_a_rule_to_dates_of_service() -> None:
    rules = "only 97140 effective from 2024-03-01 to 2024-03-31\nmax $20 per session effective to 2024-02-29"
    report = run(rules, line("97124", "30.00", session="A", date="2024-02-15"),
                 line("97124", "30.00", session="B", date="2024-03-01"),
                 line("97124", "30.00", session="C", date="2024-03-31"),
                 line("97124", "30.00", session="D", date="2024-04-01"))
    assert outcomes(report) == [("97124", "reduced", "20.00"), ("97124", "denied", "0.00"),
                                ("97124", "denied", "0.00"), ("97124", "paid", "30.00")]


def test_an_open_ended_effective_range() -> None:
    report = run("only 97140 effective from 2025-01-01", line("97124", date="2024-12-31"),
                 line("97124", session="B", date="2025-01-01"))
    assert [o[1] for o in outcomes(report)] == ["paid", "denied"]


# --- not covered --------------------------------------------------------------------------------


def test_not_covered_denies_listed_codes_only() -> None:
    report = run("set modalities = 97010-97028\nnot covered 97124, modalities", line("97124"), line("97018"),
                 line("97140"))
    assert [o[1] for o in outcomes(report)] == ["denied", "denied", "paid"]
    reason = report.sessions[0].lines[0].reasons[0]
    assert (reason.carc, reason.rarc) == ("96", "N130")
    assert report.sessions[0].lines[1].reasons[0].message == (
        "97018 is not covered: this payer excludes 97124, modalities (97010-97028).")


# --- prescription and diagnosis --------------------------------------------------------------------


def test_requires_prescription_from_given_credentials() -> None:
    rules = "requires prescription from MD or DO or DC for 97124"
    report = run(rules, line("97124", prescription_by="MD"), line("97124"), line("97124", prescription_by="LMT"),
                 line("97140"))
    assert [o[1] for o in outcomes(report)] == ["paid", "denied", "denied", "paid"]
    lines = report.sessions[0].lines
    assert lines[1].reasons[0].message == ("97124 was billed with no prescription on record; this payer pays 97124 "
                                           "only with a prescription from an MD or DO or DC.")
    assert lines[2].reasons[0].message == ("97124 was prescribed by an LMT; this payer pays 97124 only when an MD "
                                           "or DO or DC prescribed it.")
    assert lines[1].reasons[0].carc == "173"


def test_requires_any_prescription() -> None:
    report = run("requires prescription", line("97124", prescription_by="LMT"), line("97124"))
    assert [o[1] for o in outcomes(report)] == ["paid", "denied"]


def test_requires_diagnosis_matching_codes_or_prefixes() -> None:
    rules = "requires diagnosis M54.5*, M62.830 for 97124, 97140"
    report = run(rules, line("97124", diagnoses="M54.50"), line("97124", diagnoses="M5459"),
                 line("97140", diagnoses="M62.830 R52"), line("97140", diagnoses="M62.838"), line("97124"),
                 line("98940"))
    assert [o[1] for o in outcomes(report)] == ["paid", "paid", "paid", "denied", "denied", "paid"]
    lines = report.sessions[0].lines
    assert lines[3].reasons[0].message == ("97140 was billed with M62.838; this payer pays 97124, 97140 only with a "
                                           "diagnosis matching M54.5*, M62.830.")
    assert lines[4].reasons[0].message.startswith("97124 was billed with no diagnosis;")
    assert lines[3].reasons[0].carc == "11"


def test_excluded_diagnoses() -> None:
    report = run("not covered with diagnosis Z00*, R52", line("97124", diagnoses="M54.50 Z00.00"),
                 line("97124", diagnoses="M54.50"), line("97124"))
    assert [o[1] for o in outcomes(report)] == ["denied", "paid", "paid"]
    reason = report.sessions[0].lines[0].reasons[0]
    assert (reason.carc, reason.message) == ("167", "97124 was billed with Z00.00; this payer does not cover services "
                                                    "with a diagnosis matching Z00*, R52.")


# --- same session, adjunct codes, required modifiers, delegation -----------------------------------


def test_no_same_session_ignores_other_sessions_that_day() -> None:
    rules = "no 97124 same session as 98940-98942"
    report = run(rules, line("98940", session="A"), line("97124", session="B"),
                 line("98941", session="C"), line("97124", session="C"))
    assert [o[1] for o in outcomes(report)] == ["paid", "paid", "paid", "denied"]
    assert "in the same session as 98940-98942" in report.sessions[2].lines[1].reasons[0].message


def test_only_with_needs_a_qualifying_code() -> None:
    rules = "97124, 97140 only with 98940-98942 same day"
    report = run(rules, line("98940", session="A"), line("97124", session="B"),
                 line("97140", session="C", date="2024-03-06"))
    assert [o[1] for o in outcomes(report)] == ["paid", "paid", "denied"]
    reason = report.sessions[2].lines[0].reasons[0]
    assert (reason.carc, reason.message) == ("B15", "This payer pays 97124, 97140 only with 98940-98942 on the same "
                                                    "day, and this patient has none of them on 2024-03-06.")


def test_only_with_same_session() -> None:
    report = run("97124 only with 98940 same session", line("98940", session="A"), line("97124", session="B"),
                 line("98940", session="C"), line("97124", session="C"))
    assert [o[1] for o in outcomes(report)] == ["paid", "denied", "paid", "paid"]


def test_requires_modifier_with_cmt() -> None:
    rules = "requires modifier 59 or XS on 97124 with 98940-98943 same day"
    report = run(rules, line("98941"), line("97124"), line("97124", modifiers="59"), line("97124", session="B",
                                                                                            date="2024-03-07"))
    assert [o[1] for o in outcomes(report)] == ["paid", "denied", "paid", "paid"]
    reason = report.sessions[0].lines[1].reasons[0]
    assert (reason.carc, reason.rarc) == ("4", "N822")
    assert reason.message.endswith("this payer pays 97124 on the same day as 98940-98943 only with modifier 59 or "
                                   "XS, and this line has none of them.")


def test_not_payable_when_delegated() -> None:
    report = run("not payable by LMT or CA for 97124, 97140", line("97124", credential="LMT"),
                 line("97140", credential="CA"), line("97124", credential="DC"), line("97010", credential="LMT"))
    assert [o[1] for o in outcomes(report)] == ["denied", "denied", "paid", "paid"]
    assert report.sessions[0].lines[0].reasons[0].message.endswith(
        "this payer does not pay 97124, 97140 when an LMT renders it.")
