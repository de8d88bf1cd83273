"""A rule file never runs code: hostile payer names, rule names and file names reach generated
Python only as repr()'d literals, and the generated module does nothing but judge lines."""

from __future__ import annotations

import re

import ast as pyast
from pathlib import Path

import pytest

from payrules.compiler import compile_source, emit_python
from payrules.parser import unescape
from payrules.source import Source

from helpers import line, run_policy

SENTINEL = "payrules-pwned"

HOSTILE = [
    '"\\"\\"\\"; import os; os.system(\'touch ' + SENTINEL + '\') #"',
    '"\'); __import__(\\"os\\").system(\\"touch ' + SENTINEL + '\\"); (\'"',
    '"back\\\\slash \\\\\\" and \\\\n"',
    '"line\\nbreak\\nimport os\\nos.system(\\"touch ' + SENTINEL + '\\")"',
    '"carriage\rreturn = __import__(\'os\').system(\'touch ' + SENTINEL + '\')"',
    '"{__import__(\'os\')} %s {0} \\t tab"',
]


def allowed_calls(tree: pyast.AST) -> set[str]:
    names = set()
    for node in pyast.walk(tree):
        if isinstance(node, pyast.Call):
            names.add(pyast.unparse(node.func))
    return names


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_data(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = (f"payer {name} {name}\n"
            f"{name}: only 97140\n"
            f"set massage = 97124, 97140\n"
            f"no massage same day as 98940-98943 unless modifier 59\n")
    source = Source(f"evil{name}.payer", text)
    python = emit_python(source)
    tree = pyast.parse(python)

    # The only import is the runtime; the only calls build constants or judge lines.
    imports = [pyast.unparse(n) for n in pyast.walk(tree) if isinstance(n, (pyast.Import, pyast.ImportFrom))]
    assert imports == ["from payrules import runtime as rt"]
    ledger_reads = {c for c in allowed_calls(tree) if re.fullmatch(r"l[0-9]+\.(cents|units|visits)_since", c)}
    assert allowed_calls(tree) - ledger_reads <= {
        "rt.RuleInfo", "rt.CodeSet", "rt.since", "frozenset", "enumerate", "tuple", "len", "id", "r.append",
        "allowed.append", "reasons.append", "denied.append", "units.append", "reasons[k].append",
        "day.facts.get", "past.ledger"}
    top_level = {type(n).__name__ for n in tree.body}
    assert top_level <= {"ImportFrom", "Assign", "FunctionDef", "Expr"}

    policy = compile_source(source)
    assert not (tmp_path / SENTINEL).exists()
    expected = unescape(name)
    assert (policy.payer_id, policy.payer_name, policy.rules[0].name) == (expected, expected, expected)
    assert policy.source == source.name

    report = run_policy(policy, line("97140", payer=expected), line("97124", payer=expected))
    assert [l.status for l in report.sessions[0].lines] == ["paid", "denied"]
    assert report.sessions[0].lines[1].reasons[0].rule == expected
    assert not (tmp_path / SENTINEL).exists()


def test_rule_text_with_carriage_return_stays_in_a_comment() -> None:
    # A bare carriage return ends a line for Python; it must not end the comment that cites the rule.
    python = emit_python(Source("t.payer", 'payer T\n"a\rimport os": only 97140\n'))
    assert "\r" not in python
    pyast.parse(python)
