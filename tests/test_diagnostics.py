"""Broken rule files get located, worded errors: file:line:col, the line, a caret, what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion

from payrules import api, render
from payrules.diagnostics import CompileError

from conftest import CASES, render_transcript

BROKEN = sorted((CASES / "broken").glob("*.payer"))


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_rule_file(path: Path, text_snapshot: SnapshotAssertion) -> None:
    relative = path.relative_to(Path.cwd())
    with pytest.raises(CompileError) as caught:
        api.compile_file(relative)
    assert caught.value.diagnostics, "a broken file must produce at least one diagnostic"
    assert text_snapshot == render.diagnostics(caught.value.diagnostics)


def test_every_error_in_a_file_is_reported() -> None:
    with pytest.raises(CompileError) as caught:
        api.compile_file(CASES / "broken" / "several-errors.payer")
    lines = [d.span.line for d in caught.value.diagnostics]
    assert lines == sorted(lines) and len(lines) == 5


def test_check_with_broken_rules_exits_2_and_prints_no_traceback(text_snapshot: SnapshotAssertion) -> None:
    output = render_transcript(["check", "examples/only-97140/sessions.csv",
                                "--rules", "tests/cases/broken/unknown-word.payer"])
    assert "Traceback" not in output
    assert text_snapshot == output


def test_diagnostics_json_has_stable_keys(json_snapshot: SnapshotAssertion) -> None:
    with pytest.raises(CompileError) as caught:
        api.compile_file(Path("tests/cases/broken/several-errors.payer"))
    assert json_snapshot == render.diagnostics_json(caught.value.diagnostics)
