"""`payrules build`: a module that needs only the standard library and decides like `payrules check`."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import payrules
from payrules import api, standalone
from payrules.compiler import compile_source
from payrules.source import Source

from conftest import EXAMPLES, transcript

EXAMPLE_DIRS = sorted(p for p in EXAMPLES.iterdir() if (p / "sessions.json").exists())


def run_isolated(module: Path, sessions: list[dict], history: list[dict] | None = None) -> dict:  # type: ignore[type-arg]
    """Import the module in a fresh interpreter with no site-packages (no payrules, lark, attrs, click)."""
    script = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(module.parent)!r})\n"
        f"import {module.stem} as rules\n"
        "data = json.load(sys.stdin)\n"
        "report = rules.check(data['sessions'], data['history'])\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('payrules', 'lark', 'attrs', 'click'))\n"
        "print(json.dumps({'report': report, 'loaded': loaded}))\n"
    )
    result = subprocess.run([sys.executable, "-I", "-S", "-c", script], input=json.dumps(
        {"sessions": sessions, "history": history or []}), capture_output=True, text=True, check=True)
    out = json.loads(result.stdout)
    assert out["loaded"] == []
    return out["report"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("example", EXAMPLE_DIRS, ids=[p.name for p in EXAMPLE_DIRS])
def test_built_module_agrees_with_check(example: Path, tmp_path: Path) -> None:
    rel = example.relative_to(Path.cwd())
    module = tmp_path / "rules_module.py"
    code, out, err = transcript(["build", str(rel), "-o", str(module)])
    assert (code, out, err) == (0, "", "")
    sessions = json.loads((example / "sessions.json").read_text())["sessions"]
    report = run_isolated(module, sessions)
    _, cli_out, _ = transcript(["check", str(rel / "sessions.json"), "--rules", str(rel), "--format", "json"])
    cli = json.loads(cli_out)
    assert report["sessions"] == cli["sessions"]
    assert report["summary"] == cli["summary"]


def test_built_module_matches_the_api_exactly(tmp_path: Path) -> None:
    module = tmp_path / "all_rules.py"
    module.write_text(standalone.build(api.load_policies(Path("examples"))))
    records = [json.loads(line) for line in Path("tests/cases/records/broken.jsonl").read_text().splitlines()]
    sessions = [r for r in records if isinstance(r, dict)] + json.loads(
        Path("examples/no-massage-with-cmt/sessions.json").read_text())["sessions"]
    sessions.append({**sessions[-1], "session_id": "X-1", "payer": "NOBODY"})
    history = [{"session_id": "H-1", "patient_id": "P-3004", "date": "2024-04-04", "payer": "LAKESIDE",
                "provider_npi": "1184029555", "provider_credential": "DC", "lines": [{"code": "98940", "charge": "45"}]}]
    expected = payrules.load("examples").check(sessions, history=history).to_dict()
    assert expected["errors"] and expected["summary"]["denied"]
    assert run_isolated(module, sessions, history) == expected


def test_built_module_imports_only_the_standard_library() -> None:
    source = standalone.build(api.load_policies(Path("examples")))
    tree = ast.parse(source)
    modules = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}
    modules |= {node.module.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module}
    assert modules <= set(sys.stdlib_module_names) | {"__future__"}


def test_hostile_names_stay_data_in_a_built_module(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    name = '"\\"\\"\\"; import os; os.system(\'touch ' + str(sentinel) + '\') #"'
    policy = compile_source(Source('evil"""\'.payer', f"payer {name} {name}\n{name}: only 97140\n"))
    module = tmp_path / "evil_rules.py"
    module.write_text(standalone.build([policy]))
    ast.parse(module.read_text())
    payer = policy.payer_id
    report = run_isolated(module, [{"session_id": "S", "patient_id": "P", "date": "2024-01-02", "payer": payer,
                                    "provider_npi": "1548230675", "lines": [{"code": "97124", "charge": "10"}]}])
    assert report["sessions"][0]["payer_name"] == payer
    assert report["sessions"][0]["lines"][0]["reasons"][0]["rule"] == payer
    assert not sentinel.exists()


def test_build_errors() -> None:
    code, out, err = transcript(["build", "tests/cases/broken/unknown-word.payer"])
    assert (code, out) == (1, "") and "E002" in err
    code, _, err = transcript(["build", "no/such.payer"])
    assert code == 2 and "no such rule file" in err
