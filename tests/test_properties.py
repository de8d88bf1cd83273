"""Property tests: whatever text a rule file holds, parsing, checking, linting and formatting
end in diagnostics, never in an exception; and formatting a valid file is stable."""

from __future__ import annotations

from pathlib import Path

from conftest import ROOT
from strategies import WORDS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payrules.diagnostics import Severity
from payrules.fmt import format_text
from payrules.lint import lint_source
from payrules.source import Source

RULE_FILES = sorted([*ROOT.glob("examples/*/rules.payer"), *ROOT.glob("stdlib_rules/*.payer")])
TEXTS = [p.read_text() for p in RULE_FILES]

# Cheap examples: four times the profile's count (`ci` by default, `HYPOTHESIS_PROFILE=long` for more).
SETTINGS = settings(max_examples=4 * settings().max_examples, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def lint_and_format(text: str) -> None:
    source = Source("prop.payer", text)
    diagnostics = lint_source(source)
    for d in diagnostics:
        assert d.code and d.message and d.span.line >= 1
    if not any(d.severity is Severity.ERROR for d in diagnostics):
        formatted = format_text(text)
        assert format_text(formatted) == formatted
        assert not [d for d in lint_source(Source("prop.payer", formatted)) if d.severity is Severity.ERROR]


@SETTINGS
@given(st.lists(st.lists(st.sampled_from(WORDS), max_size=12).map(" ".join), max_size=8).map("\n".join))
def test_token_soup_gives_diagnostics_not_tracebacks(text: str) -> None:
    lint_and_format(text)


@SETTINGS
@given(st.sampled_from(TEXTS), st.data())
def test_mutated_rule_files_give_diagnostics_not_tracebacks(text: str, data: st.DataObject) -> None:
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(text)))
        action = data.draw(st.sampled_from(["delete", "insert", "duplicate_line"]))
        if action == "delete":
            text = text[:position] + text[position + data.draw(st.integers(1, 8)):]
        elif action == "insert":
            text = text[:position] + data.draw(st.sampled_from(WORDS + [" ", "\n"])) + text[position:]
        else:
            lines = text.split("\n")
            k = data.draw(st.integers(0, max(len(lines) - 1, 0)))
            lines.insert(k, lines[k] if lines else "")
            text = "\n".join(lines)
    lint_and_format(text)


@SETTINGS
@given(st.text(max_size=200))
def test_any_text_gives_diagnostics_not_tracebacks(text: str) -> None:
    lint_and_format(text)


def test_rule_files_exist() -> None:
    assert len(RULE_FILES) >= 20 and all(isinstance(p, Path) for p in RULE_FILES)
