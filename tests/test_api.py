"""The Python API: load or compile rules, check dicts or typed sessions, typed immutable results."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import attrs
import jsonschema
import pytest

import payrules

from syrupy.assertion import SnapshotAssertion

from conftest import transcript

SESSION = {
    "session_id": "C-9", "patient_id": "P-9", "date": "2024-05-06", "payer": "MERIDIAN",
    "provider_npi": "1328719467", "provider_credential": "DC",
    "lines": [{"code": "97140", "units": 2, "charge": "70.00"}, {"code": "97124", "charge": "30.00"}],
}


def test_load_and_check_dicts() -> None:
    rules = payrules.load("examples/chiro-clinic")
    assert rules.payers == ("MERIDIAN",)
    report = rules.check([SESSION])
    lines = report.sessions[0].lines
    assert [(l.code, l.status, l.allowed) for l in lines] == [("97140", "reduced", 4500), ("97124", "denied", 0)]
    assert lines[1].reasons[0].message == "97124 is not covered: this payer pays only for 97140."
    assert lines[1].reasons[0].carc == "204" and lines[1].reasons[0].line == 6


def test_results_are_immutable_and_serialise_like_the_cli() -> None:
    report = payrules.load("examples/chiro-clinic").check([SESSION])
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        report.sessions[0].lines[0].status = "paid"  # type: ignore[misc]
    jsonschema.validate(report.to_dict(), payrules.report_schema())
    assert json.loads(report.to_json()) == report.to_dict()


def test_same_content_as_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps([SESSION]))
    _, out, _ = transcript(["check", str(path), "--rules", "examples/chiro-clinic", "--format", "json"])
    cli = json.loads(out)
    api = payrules.load("examples/chiro-clinic").check([SESSION]).to_dict()
    assert api["sessions"] == cli["sessions"] and api["summary"] == cli["summary"]


def test_bad_lines_come_back_as_errors() -> None:
    bad = {**SESSION, "lines": [{"code": "9714", "charge": "70.00"}, {"code": "97140", "charge": "30.00"}]}
    report = payrules.load("examples/chiro-clinic").check([bad])
    (error,) = report.errors
    assert (error.origin.file, error.origin.row, error.origin.path) == ("<sessions>", 1, "lines[0]")
    assert error.problems[0].field == "code"
    assert report.summary.judged == 1 and report.summary.rejected == 1


def test_typed_sessions_and_history() -> None:
    rules = payrules.compile_text("payer T\nno 97124 same day as 98940-98943\n", name="t.payer")
    cmt = {"session_id": "H-1", "patient_id": "P-1", "date": "2024-05-06", "payer": "T",
           "provider_npi": "1184029555", "provider_credential": "DC", "lines": [{"code": "98940", "charge": "50"}]}
    massage = payrules.Session(session_id="S-1", patient_id="P-1", date="2024-05-06", payer="T", lines=(
        payrules.Line("S-1", "P-1", "2024-05-06", "T", 1, "97124", frozenset(), 2, 30, 6000, "1328719467", "LMT",
                      (), "", payrules.Origin("<mine>", 1)),))
    assert rules.check([massage]).sessions[0].lines[0].status == "paid"
    report = rules.check([massage], history=[cmt])
    line = report.sessions[0].lines[0]
    assert line.status == "denied" and "in session H-1" in line.reasons[0].message
    assert report.summary.lines_read == 1, "history is counted by rules, not judged"


def test_bad_history_raises() -> None:
    rules = payrules.compile_text("payer T\nonly 97140\n")
    with pytest.raises(payrules.InputError, match="history <history>:1"):
        rules.check([], history=[{"session_id": "H", "lines": [{"code": "x"}]}])


def test_compile_errors_carry_located_diagnostics() -> None:
    with pytest.raises(payrules.CompileError) as caught:
        payrules.compile_text("payer T\nonyl 97140\nrequires DX NPI\n", name="bad.payer")
    error = caught.value
    assert [(d.code, d.span.line, d.span.column) for d in error.diagnostics] == [("E002", 2, 1), ("E102", 3, 10)]
    assert str(error) == ("bad.payer:2:1: E002 unknown statement word `onyl`\n"
                          "bad.payer:3:10: E102 unknown credential `DX`")
    assert isinstance(error, payrules.RulesError)


def test_missing_rules_raise_input_error() -> None:
    with pytest.raises(payrules.InputError, match="no such rule file or folder"):
        payrules.load("no/such/place")


def test_a_rule_set_is_shared_between_threads() -> None:
    rules = payrules.load("examples")
    sessions = [json.loads(Path(f"examples/{name}/sessions.json").read_text())["sessions"]
                for name in ("chiro-clinic", "no-massage-with-cmt", "session-cap-45")]
    expected = [rules.check(s).to_dict() for s in sessions]
    results: list[list[dict]] = [[] for _ in range(8)]  # type: ignore[type-arg]

    def work(slot: int) -> None:
        for _ in range(20):
            results[slot].append(rules.check(sessions[slot % 3]).to_dict())

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for slot, got in enumerate(results):
        assert got == [expected[slot % 3]] * 20
    with pytest.raises(TypeError):
        rules.policies["x"] = rules.policy("MERIDIAN")  # type: ignore[index]


def test_history_file_on_the_command_line(tmp_path: Path) -> None:
    history = tmp_path / "history.csv"
    history.write_text("session_id,patient_id,date,payer,provider_npi,provider_credential,code,charge\n"
                       "H-1,P-5004,2024-05-08,MERIDIAN,1184029555,DC,98940,50.00\n")
    code, out, err = transcript(["check", "examples/chiro-clinic/sessions.csv", "--rules", "examples/chiro-clinic",
                                 "--history", str(history), "--format", "json"])
    c5 = next(s for s in json.loads(out)["sessions"] if s["session_id"] == "C-5")
    assert c5["lines"][0]["status"] == "denied" and "in session H-1" in c5["lines"][0]["reasons"][0]["message"]
    assert json.loads(out)["summary"]["lines_read"] == 7


def test_readme_embedding_example_runs(text_snapshot: SnapshotAssertion) -> None:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "examples/embedding/embed.py"], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0 and result.stderr == ""
    assert text_snapshot == result.stdout


# --- one session or a list, package-level check, worded errors --------------------------------------

ONE_SESSION = {"session_id": "V-1", "patient_id": "P-1", "date": "2024-05-06", "payer": "MERIDIAN",
               "provider_npi": "1328719467", "provider_credential": "DC",
               "lines": [{"code": "97140", "units": 1, "charge": "40.00"}, {"code": "98940", "charge": "50.00"}]}


def test_check_takes_one_session_as_a_list_of_one() -> None:
    rules = payrules.load("examples/chiro-clinic")
    one = rules.check(ONE_SESSION)
    assert one == rules.check([ONE_SESSION]) == rules.check((s for s in [ONE_SESSION]))
    assert one.summary.lines_read == 2 and not one.errors
    assert rules.check(ONE_SESSION, history=ONE_SESSION).summary.lines_read == 2


@pytest.mark.parametrize(("given", "named"), [(42, "not int 42"), ("V-1", "not str 'V-1'"), (None, "not NoneType None"),
                                              (b"{}", "not bytes b'{}'")])
def test_check_names_what_it_got_when_it_is_not_sessions(given: object, named: str) -> None:
    rules = payrules.load("examples/chiro-clinic")
    with pytest.raises(TypeError) as raised:
        rules.check(given)  # type: ignore[arg-type]
    assert str(raised.value).startswith("sessions must be a session (a dict in the JSON input shape, or a "
                                        "payrules.Session) or a list of them, ") and str(raised.value).endswith(named)


def test_package_level_check_is_callable_and_the_checker_module_still_imports() -> None:
    from payrules.check import Checked  # the rule checker, a submodule of the same name

    assert Checked.__module__ == "payrules.check"
    report = payrules.check(ONE_SESSION, "examples/chiro-clinic")
    assert report == payrules.load("examples/chiro-clinic").check([ONE_SESSION])
    assert payrules.check([ONE_SESSION], payrules.load("examples/chiro-clinic")) == report


def test_policy_of_an_unknown_payer_is_a_worded_key_error() -> None:
    rules = payrules.load("examples/chiro-clinic")
    with pytest.raises(payrules.NoPolicyError) as raised:
        rules.policy("NOPE")
    assert isinstance(raised.value, KeyError) and isinstance(raised.value, payrules.RulesError)
    assert str(raised.value) == "no rules for payer `NOPE`; the payers are `MERIDIAN`"
    assert rules.policy("meridian").payer_id == "MERIDIAN"
