"""Property tests: whatever text a rule file holds, parsing, checking, linting and formatting
end in diagnostics, never in an exception; and formatting a valid file is stable."""

from __future__ import annotations

from pathlib import Path

from conftest import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payrules.diagnostics import Severity
from payrules.fmt import format_text
from payrules.lint import lint_source
from payrules.source import Source

RULE_FILES = sorted([*ROOT.glob("examples/*/rules.payer"), *ROOT.glob("stdlib_rules/*.payer")])
TEXTS = [p.read_text() for p in RULE_FILES]

WORDS = ["payer", "set", "include", "drop", "override", "only", "not", "covered", "no", "same", "day", "session",
         "as", "unless", "modifier", "max", "per", "units", "unit", "visits", "minutes", "of", "for", "with",
         "requires", "NPI", "DC", "LMT", "prescription", "diagnosis", "from", "bundled", "into", "one", "duplicate",
         "by", "cms", "ama", "rule", "calendar", "year", "plan", "July", "lifetime", "days", "charge", "carc", "rarc",
         "warn", "source", "effective", "to", "97140", "97124", "98940-98943", "9714", "S8990", "$45", "$45.005",
         "$-1", "75%", "0", "12", "M54.5*", "724.2", "2024-01-01", "2024-02-30", '"quoted"', '"open', ",", ":",
         "=", "-", "#", "*", "\t", "\\", "é", "\u200b", "\r"]

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


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
