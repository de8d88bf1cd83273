"""`payrules test`: worked examples beside rule files, readable failures, coverage and JUnit."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion

from payrules import api

from conftest import render_transcript, transcript

FAILING = "tests/cases/test-failing"


def test_every_example_and_stdlib_file_has_passing_cases() -> None:
    code, out, err = transcript(["test", "examples", "stdlib_rules", "--coverage"])
    assert (code, err) == (0, ""), out
    run = api.run_tests([Path("examples"), Path("stdlib_rules")])
    assert not run.unexercised, "every rule of every example and stdlib file is exercised by a case"
    tested = {Path(c.file).parent for c in run.cases}
    assert tested >= {p.parent for p in Path("examples").glob("*/rules.payer")}
    assert {Path(r.file) for r in run.rules} >= set(Path("stdlib_rules").glob("*.payer"))


def test_a_wrong_expectation_reads_clearly(text_snapshot: SnapshotAssertion) -> None:
    output = render_transcript(["test", FAILING, "--coverage"])
    assert "exit_code: 1" in output
    assert text_snapshot == output


def test_junit(text_snapshot: SnapshotAssertion) -> None:
    code, out, err = transcript(["test", FAILING, "--format", "junit"])
    assert (code, err) == (1, "")
    root = ET.fromstring(out.split("\n", 1)[1])
    assert (root.get("tests"), root.get("failures")) == ("4", "3")
    assert text_snapshot == out


def test_junit_to_a_file(tmp_path: Path) -> None:
    target = tmp_path / "report.xml"
    code, out, _ = transcript(["test", "examples/only-97140", "--format", "junit", "-o", str(target)])
    assert (code, out) == (0, "")
    assert ET.parse(target).getroot().get("failures") == "0"


HEADER = ("case,session_id,patient_id,date,payer,provider_npi,provider_credential,code,charge,"
          "expect_status,expect_allowed,expect_reasons\n")


@pytest.mark.parametrize("content, message", [
    ("session_id,code\nS1,97140\n", "a case file needs the columns `case`, `expect_status`"),
    (HEADER + "x,S1,P1,2024-01-02,ACME,1548230675,LMT,97124,10.00,approved,,\n",
     "expect_status must be paid, reduced or denied, found `approved`"),
    (HEADER + "x,S1,P1,2024-01-02,ACME,1548230675,LMT,97124,10.00,paid,ten,\n",
     "expect_allowed must be an amount such as 45.00, found `ten`"),
    (HEADER + "x,S1,P1,2024-13-02,ACME,1548230675,LMT,97124,10.00,paid,,\n",
     "wrong.cases.csv:2: date: `2024-13-02` is not a calendar date"),
    (HEADER + ",S1,P1,2024-01-02,ACME,1548230675,LMT,97124,10.00,paid,,\n", "`case` is empty"),
])
def test_bad_case_files_are_usage_errors(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "rules.payer").write_text((Path(FAILING) / "rules.payer").read_text())
    (tmp_path / "wrong.cases.csv").write_text(content)
    code, out, err = transcript(["test", str(tmp_path)])
    assert (code, out) == (2, "") and message in err and "Traceback" not in err


def test_no_case_files(tmp_path: Path) -> None:
    code, _, err = transcript(["test", str(tmp_path)])
    assert code == 2 and "no *.cases.csv files" in err


def test_a_rule_file_is_not_a_case_file() -> None:
    code, _, err = transcript(["test", "examples/only-97140/rules.payer"])
    assert code == 2 and "not a case file; case files are named *.cases.csv" in err
