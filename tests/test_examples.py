"""Every example's explanations (text and JSON) and generated Python, snapshot-tested."""

from __future__ import annotations

import ast as pyast
import json
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion

from payrules import api

from conftest import EXAMPLES, render_transcript, transcript, without_origins

EXAMPLE_DIRS = sorted(p for p in EXAMPLES.iterdir() if (p / "sessions.csv").exists())
IDS = [p.name for p in EXAMPLE_DIRS]


def rel(path: Path) -> str:
    return str(path.relative_to(Path.cwd()))


@pytest.mark.parametrize("example", EXAMPLE_DIRS, ids=IDS)
def test_example_text(example: Path, text_snapshot: SnapshotAssertion) -> None:
    assert text_snapshot == render_transcript(["check", rel(example / "sessions.csv"), "--rules", rel(example)])


@pytest.mark.parametrize("example", EXAMPLE_DIRS, ids=IDS)
def test_example_json(example: Path, json_snapshot: SnapshotAssertion) -> None:
    code, out, err = transcript(["check", rel(example / "sessions.csv"), "--rules", rel(example), "--format", "json"])
    assert code == 1 and err == ""
    data = json.loads(out)
    # The output holds one session per line; the snapshot is indented for review.
    assert len(out.splitlines()) == len(data["sessions"]) + len(data["errors"]) + 4
    assert json_snapshot == json.dumps(data, indent=2) + "\n"


@pytest.mark.parametrize("example", EXAMPLE_DIRS, ids=IDS)
def test_example_json_input_decides_like_csv(example: Path) -> None:
    from_csv = api.check_files([Path(rel(example / "sessions.csv"))], Path(rel(example)))
    from_json = api.check_files([Path(rel(example / "sessions.json"))], Path(rel(example)))
    assert without_origins(from_json.to_dict()) == without_origins(from_csv.to_dict())


@pytest.mark.parametrize("example", EXAMPLE_DIRS, ids=IDS)
def test_example_generated_python(example: Path, python_snapshot: SnapshotAssertion) -> None:
    code, python, err = transcript(["compile", rel(example / "rules.payer")])
    assert code == 0 and err == ""
    pyast.parse(python)
    assert python_snapshot == python


@pytest.mark.parametrize("example", EXAMPLE_DIRS, ids=IDS)
def test_example_has_triggering_and_passing_sessions(example: Path) -> None:
    report = api.check_files([Path(rel(example / "sessions.csv"))], Path(rel(example)))
    statuses = {line.status for session in report.sessions for line in session.lines}
    assert "paid" in statuses and statuses & {"denied", "reduced"}
    fired = {reason.line for s in report.sessions for line in s.lines for reason in line.reasons}
    rule_lines = {rule.line for policy in api.load_policies(Path(rel(example))) for rule in policy.rules}
    assert fired == rule_lines, "every rule of the example fires on at least one session"


def test_all_examples_in_one_run(text_snapshot: SnapshotAssertion) -> None:
    """The README's first command: every example's sessions against the examples folder."""
    sessions = [rel(p / "sessions.csv") for p in EXAMPLE_DIRS]
    output = render_transcript(["check", *sessions, "--rules", "examples"])
    assert text_snapshot == output


def test_json_output_is_valid_json_with_documented_keys() -> None:
    _, out, _ = transcript(["check", "examples/chiro-clinic/sessions.csv", "--rules", "examples", "--format", "json"])
    data = json.loads(out)
    assert set(data) == {"sessions", "errors", "summary"}
    line = data["sessions"][0]["lines"][0]
    assert {"line", "code", "modifiers", "units", "charge", "allowed", "status", "reasons"} <= set(line)
    reason = line["reasons"][0]
    assert {"rule", "file", "line", "text", "message", "severity", "carc"} <= set(reason)
    assert line["charge"] == "70.00" and line["allowed"] == "45.00"
