"""`payrules explain`: one made-up line judged by a payer's rules, with the rules that stayed silent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from syrupy.assertion import SnapshotAssertion

from payrules import api
from payrules.ask import PROVIDER_NPI, Question, ask, default_date, explain_command
from payrules.domain import npi_is_valid
from payrules.runner import policies_by_payer

CHIRO = "examples/chiro-clinic/rules.payer"
CLAIMS = "examples/claims-837p"


def explain(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(explain_command, args, prog_name="payrules explain", catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def transcript(args: list[str]) -> str:
    code, out, err = explain(args)
    return f"$ payrules explain {' '.join(args)}\nexit_code: {code}\n----- stdout -----\n{out}----- stderr -----\n{err}"


CASES = {
    "paid_line": [CHIRO, "--code", "97140", "--credential", "DC", "--charge", "40.00"],
    "denied_line_with_reasons": [CHIRO, "--code", "97140", "--credential", "LMT", "--charge", "70.00"],
    "same_day_question": [CHIRO, "--code", "97140", "--credential", "DC", "--same-day", "98940"],
    "credential_question": [CLAIMS, "--payer", "SUMMIT", "--code", "97124", "--credential", "PT", "--units", "6"],
    "reduced_by_units": [CLAIMS, "--payer", "summit", "--code", "97124", "--credential", "LMT", "--units", "6",
                         "--diagnosis", "M54.50", "--date", "2026-05-04"],
    "bad_values": [CHIRO, "--code", "9714", "--modifier", "591", "--units", "0", "--charge", "4.505",
                   "--credential", "XX", "--date", "2026-02-30", "--same-day", "98940-ZZZ"],
    "several_payers_without_payer": [CLAIMS, "--code", "97140"],
    "unknown_payer": [CLAIMS, "--code", "97140", "--payer", "SUMIT"],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_explain_text(name: str, text_snapshot: SnapshotAssertion) -> None:
    assert transcript(CASES[name]) == text_snapshot


@pytest.mark.parametrize("name", ["paid_line", "denied_line_with_reasons", "same_day_question"])
def test_explain_json(name: str, json_snapshot: SnapshotAssertion) -> None:
    code, out, err = explain([*CASES[name], "--format", "json"])
    assert err == ""
    assert code == (0 if name == "paid_line" else 1)
    assert out == json_snapshot


def test_exit_status_follows_the_line_asked_about() -> None:
    assert explain(CASES["paid_line"])[0] == 0
    assert explain(CASES["denied_line_with_reasons"])[0] == 1
    assert explain(CASES["bad_values"])[0] == 2
    assert explain(CASES["several_payers_without_payer"])[0] == 2


def test_decision_is_the_one_check_gives_for_the_same_line(tmp_path: Path) -> None:
    """The made-up session, written as a sessions file, gets the same decision from `check`."""
    answer = ask(Path(CHIRO), Question(code="97140", credential="DC", same_day=("98940",)))
    sessions = tmp_path / "sessions.json"
    sessions.write_text(json.dumps([{
        "session_id": answer.session.session_id, "patient_id": answer.session.patient_id,
        "date": answer.session.date, "payer": answer.session.payer, "provider_npi": PROVIDER_NPI,
        "provider_credential": "DC",
        "lines": [{"code": line.code, "modifiers": list(line.modifiers), "units": line.units,
                   "charge": f"{line.charge / 100:.2f}"} for line in answer.session.lines]}]))
    report = api.check_files([sessions], Path(CHIRO))
    assert report.sessions[0].to_dict()["lines"] == answer.session.to_dict()["lines"]


def test_made_up_provider_npi_has_a_valid_check_digit() -> None:
    assert npi_is_valid(PROVIDER_NPI)


def test_default_date_is_inside_the_payer_rule_file(tmp_path: Path) -> None:
    """Without --date the date is fixed by the rules, never the clock: inside the latest file's range."""
    (tmp_path / "a.payer").write_text('payer ACME "Acme" effective from 2023-01-01 to 2023-12-31\n\nonly 97140\n')
    (tmp_path / "b.payer").write_text('payer ACME "Acme" effective from 2024-01-01 to 2024-12-31\n\nonly 97124\n')
    found = policies_by_payer(api.load_policies(tmp_path))["acme"]
    assert default_date(found) == "2024-01-01"
    answer = ask(tmp_path, Question(code="97140"))
    assert answer.session.date == "2024-01-01"
    assert answer.line.status == "denied"


def test_date_outside_every_rule_file_is_a_worded_error(tmp_path: Path) -> None:
    (tmp_path / "a.payer").write_text('payer ACME "Acme" effective from 2024-01-01 to 2024-12-31\n\nonly 97140\n')
    code, out, err = explain([str(tmp_path), "--code", "97140", "--date", "2020-01-01"])
    assert (code, out) == (2, "")
    assert err.startswith("error: --date: no rules for payer `ACME` on 2020-01-01")


def test_rule_in_effect_later_says_so(tmp_path: Path) -> None:
    (tmp_path / "a.payer").write_text('payer ACME "Acme"\n\nonly 97140 effective from 2027-01-01\n')
    answer = ask(tmp_path, Question(code="97124", date="2026-06-01"))
    assert answer.line.status == "paid"
    assert [s.why for s in answer.silent] == ["in effect 2027-01-01 to any date only; the line is dated 2026-06-01"]
