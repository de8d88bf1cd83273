"""Command-line conventions users know from ruff, black and OPA: `-` for stdin and stdout, `-h`,
`--quiet`, `--verbose`, `--exit-zero`, `--color` and NO_COLOR, defaults from [tool.payrules],
`--statistics`, shell completion, lazily registered commands, and `--format parquet`."""

from __future__ import annotations

import builtins
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from syrupy.assertion import SnapshotAssertion

from payrules import cli as cli_module
from payrules.cli import cli
from payrules.formats import parquet

from conftest import render_transcript, transcript

CHIRO = "examples/chiro-clinic"
SESSIONS = f"{CHIRO}/sessions.csv"


def run(args: list[str], stdin: bytes | str | None = None, env: dict[str, str] | None = None,
        color: bool = False) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, args, input=stdin, env=env, prog_name="payrules", catch_exceptions=False,
                                color=color)
    return result.exit_code, result.stdout, result.stderr


# --- `-` for stdin and stdout --------------------------------------------------------------------


def test_sessions_from_stdin_give_the_file_s_decisions_named_stdin() -> None:
    _, from_file, _ = transcript(["check", SESSIONS, "--rules", CHIRO, "--format", "csv"])
    code, from_stdin, err = run(["check", "-", "--rules", CHIRO, "--format", "csv"],
                                Path(SESSIONS).read_bytes())
    assert (code, err) == (1, "")
    assert from_stdin == from_file.replace(SESSIONS, "<stdin>")


@pytest.mark.parametrize("kind", ["json", "jsonl"])
def test_json_sessions_on_stdin_are_recognised_or_named(kind: str, tmp_path: Path) -> None:
    sessions = [{"session_id": "J-1", "patient_id": "P-1", "date": "2024-05-06", "payer": "MERIDIAN",
                 "provider_npi": "1328719467", "provider_credential": "DC",
                 "lines": [{"code": "97140", "units": 1, "charge": "40.00"}]},
                {"session_id": "J-2", "patient_id": "P-2", "date": "2024-05-06", "payer": "MERIDIAN",
                 "provider_npi": "1328719467", "provider_credential": "DC",
                 "lines": [{"code": "98940", "units": 1, "charge": "50.00"}]}]
    text = json.dumps(sessions) if kind == "json" else "".join(json.dumps(s) + "\n" for s in sessions)
    path = tmp_path / f"s.{kind}"
    path.write_text(text)
    _, expected, _ = transcript(["check", str(path), "--rules", CHIRO, "--format", "json"])
    expected = expected.replace(str(path), "<stdin>")
    for args in (["check", "-"], ["check", "-", "--stdin-format", kind]):
        code, out, err = run([*args, "--rules", CHIRO, "--format", "json"], text)
        assert (code, err) == (1, "") and out == expected


def test_output_dash_is_stdout() -> None:
    assert transcript(["check", SESSIONS, "--rules", CHIRO, "-o", "-"]) == transcript(["check", SESSIONS,
                                                                                       "--rules", CHIRO])


def test_stdin_usage_errors(text_snapshot: SnapshotAssertion) -> None:
    runs = [["check", "-", "-", "--rules", CHIRO], ["check", SESSIONS, "--rules", CHIRO, "--stdin-format", "csv"],
            ["lint", "-", "examples"], ["check", SESSIONS, "--rules", CHIRO, "-q", "-v"]]
    output = "\n".join(render_transcript(args) for args in runs)
    assert all("exit_code: 2" in part for part in output.split("$ payrules")[1:])
    assert text_snapshot == output


def test_fmt_dash_prints_the_formatted_file() -> None:
    code, out, err = run(["fmt", "-"], "payer  ACME\nONLY 97140,97124 # c\n")
    assert (code, out, err) == (0, "payer ACME\nonly 97124, 97140  # c\n", "")
    code, out, _ = run(["fmt", "-"], out)
    assert (code, out) == (0, "payer ACME\nonly 97124, 97140  # c\n")


def test_fmt_check_dash_prints_a_diff_and_errors_print_nothing(text_snapshot: SnapshotAssertion) -> None:
    code, out, err = run(["fmt", "--check", "-"], "payer ACME\nONLY 97140\n")
    assert code == 1 and err == ""
    assert text_snapshot(name="diff") == out
    code, out, err = run(["fmt", "-"], "payer ACME\nonyl 97140\n")
    assert (code, out) == (1, "")
    assert text_snapshot(name="errors") == err


def test_lint_dash_reads_one_rule_file(text_snapshot: SnapshotAssertion) -> None:
    code, out, err = run(["lint", "-"], "payer ACME\nmax 0 visits per calendar year\nonyl 97140\n")
    assert (code, err) == (1, "")
    assert text_snapshot == out


# --- -h, --quiet, --verbose, --exit-zero -----------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["check"], ["lint"], ["fmt"], ["test"], ["build"], ["compile"]])
def test_dash_h_is_help(command: list[str]) -> None:
    code, out, _ = run([*command, "-h"])
    assert code == 0 and out == run([*command, "--help"])[1] and out.startswith("Usage: payrules")


def test_exit_zero_keeps_findings_but_exits_0() -> None:
    code, out, _ = run(["check", SESSIONS, "--rules", CHIRO, "--exit-zero"])
    assert code == 0 and "denied" in out
    code, out, _ = run(["lint", "tests/cases/lint", "--exit-zero"])
    assert code == 0 and "E001" in out
    code, _, _ = run(["check", SESSIONS, "--rules", "no/such/folder", "--exit-zero"])
    assert code == 2


def test_quiet_leaves_out_summaries_but_not_errors(tmp_path: Path) -> None:
    code, out, err = run(["lint", "tests/cases/lint/zero-limits.payer", "-q"])
    assert code == 0 and err == "" and "W104" in out and "checked" not in out
    bad = tmp_path / "bad.payer"
    bad.write_text("payer ACME\nonyl 97140\n")
    good = tmp_path / "good.payer"
    good.write_text("payer  BETA\nonly 97140\n")
    code, out, err = run(["fmt", str(tmp_path), "-q"])
    assert code == 1 and out == "" and "E002" in err and "formatted" not in err
    assert good.read_text() == "payer BETA\nonly 97140\n"


def test_verbose_says_what_was_read(text_snapshot: SnapshotAssertion) -> None:
    runs = [["check", SESSIONS, "--rules", CHIRO, "--format", "csv", "-v"],
            ["lint", "tests/cases/lint/zero-limits.payer", "tests/cases/lint/unused-set.payer", "--verbose"]]
    output = "\n".join(render_transcript(args) for args in runs)
    assert text_snapshot == output.replace(str(Path.cwd()), "<repo>")


# --- colour ----------------------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("choice", "tty", "no_color", "expected"), [
    ("auto", True, None, True), ("auto", True, "", True), ("auto", True, "1", False), ("auto", False, None, False),
    ("always", False, "1", True), ("never", True, None, False),
])
def test_colour_choice_and_no_color(choice: str, tty: bool, no_color: str | None, expected: bool,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    if no_color is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", no_color)
    stream = _Terminal() if tty else io.StringIO()
    assert cli_module._colour(choice, stream) is expected


def test_lint_colours_its_text_when_asked(text_snapshot: SnapshotAssertion) -> None:
    args = ["lint", "tests/cases/lint/zero-limits.payer", "tests/cases/lint/code-shape.payer"]
    code, plain, _ = run(args)
    code_coloured, coloured, _ = run([*args, "--color", "always"], color=True)
    assert code == code_coloured == 1
    assert "\x1b[" in coloured and "\x1b[" not in plain
    assert click_unstyle(coloured) == plain
    assert text_snapshot == coloured.replace("\x1b", "<ESC>")


def test_check_colours_statuses_when_asked() -> None:
    _, coloured, _ = run(["check", SESSIONS, "--rules", CHIRO, "--color", "always"], color=True)
    _, plain, _ = run(["check", SESSIONS, "--rules", CHIRO, "--color", "never"], color=True)
    assert "\x1b[" in coloured and "\x1b[" not in plain and click_unstyle(coloured) == plain


def click_unstyle(text: str) -> str:
    import click

    return click.unstyle(text)


# --- [tool.payrules] defaults ----------------------------------------------------------------------


def test_check_defaults_come_from_the_nearest_pyproject(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = Path.cwd()
    (tmp_path / "payers").mkdir()
    (tmp_path / "payers" / "rules.payer").write_text((repo / CHIRO / "rules.payer").read_text())
    (tmp_path / "pyproject.toml").write_text('[tool.payrules]\nrules = "payers"\nformat = "csv"\n'
                                             '[tool.payrules.lint]\nexclude = []\n')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "s.csv").write_text((repo / SESSIONS).read_text())
    monkeypatch.chdir(tmp_path / "sub")
    code, out, err = run(["check", "s.csv"])
    assert (code, err) == (1, "") and out.startswith("file,row,session_id")
    code, out, _ = run(["check", "s.csv", "--format", "json"])  # an option given wins
    assert json.loads(out)["summary"]["lines_read"] == 7
    code, out, _ = run(["check", "s.csv", "--rules", str(repo / "examples/only-97140")])
    assert code == 1 and "no rule file for payer `MERIDIAN`" in out


@pytest.mark.parametrize("table", ['[tool.payrules]\nrule = "payers"\n',
                                   '[tool.payrules]\nrules = "payers"\nformat = "xml"\n',
                                   '[tool.payrules]\nrules = 3\n'], ids=["unknown-key", "bad-format", "not-text"])
def test_bad_check_defaults_are_usage_errors(table: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             text_snapshot: SnapshotAssertion) -> None:
    (tmp_path / "pyproject.toml").write_text(table)
    (tmp_path / "s.csv").write_text(Path(SESSIONS).read_text())
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["check", "s.csv"])
    assert (code, out) == (2, "")
    assert text_snapshot == err.replace(str(tmp_path), "<tmp>")


# --- --statistics ----------------------------------------------------------------------------------


def test_statistics_count_by_payer_carc_and_rule_on_stderr(tmp_path: Path, text_snapshot: SnapshotAssertion) -> None:
    path = tmp_path / "s.csv"
    path.write_text(Path(SESSIONS).read_text().replace("2024-05-08", "2024-02-30", 1))
    _, without, _ = run(["check", str(path), "--rules", CHIRO, "--format", "json"])
    code, out, err = run(["check", str(path), "--rules", CHIRO, "--format", "json", "--statistics"])
    assert code == 1 and out == without
    summary = json.loads(out)["summary"]
    assert f"{summary['rejected']:>7}  rejected (not judged)" in err
    assert text_snapshot == err


# --- completion, commands, imports -----------------------------------------------------------------


def test_shell_completion_script_and_completions() -> None:
    code, out, _ = run([], env={"_PAYRULES_COMPLETE": "bash_source"})
    assert code == 0 and "_payrules_completion" in out and "complete " in out
    code, out, _ = run([], env={"_PAYRULES_COMPLETE": "bash_complete", "COMP_WORDS": "payrules li",
                                "COMP_CWORD": "1"})
    assert code == 0 and out.split() == ["plain,lint"]


def test_edge_commands_are_listed_and_importing_the_cli_imports_no_framework() -> None:
    names = cli.list_commands(cli.make_context("payrules", ["--help"], resilient_parsing=True))
    assert {"check", "lint", "fmt", "serve", "lsp", "diff"} <= set(names)
    probe = ("import sys, payrules.cli; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('starlette', 'uvicorn', 'pygls', 'lsprotocol', 'pyarrow', 'payrules.serve')))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --- Parquet wiring --------------------------------------------------------------------------------


def test_parquet_output_needs_a_file(text_snapshot: SnapshotAssertion) -> None:
    runs = [["check", SESSIONS, "--rules", CHIRO, "--format", "parquet"],
            ["check", SESSIONS, "--rules", CHIRO, "--format", "parquet", "-o", "-"]]
    output = "\n".join(render_transcript(args) for args in runs)
    assert text_snapshot == output


def test_parquet_output_is_the_csv_rows_and_leaves_no_partial_file(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    target = tmp_path / "decisions.parquet"
    code, out, err = run(["check", SESSIONS, "--rules", CHIRO, "--format", "parquet", "-o", str(target)])
    assert (code, out, err) == (1, "", "")
    assert [p.name for p in tmp_path.iterdir()] == ["decisions.parquet"]
    table = pq.read_table(target)
    _, csv_text, _ = transcript(["check", SESSIONS, "--rules", CHIRO, "--format", "csv"])
    assert table.column_names == csv_text.splitlines()[0].split(",")
    assert table.num_rows == len(csv_text.splitlines()) - 1


def test_parquet_without_pyarrow_exits_2_before_any_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_pyarrow(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.split(".")[0] == "pyarrow":
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    parquet._pyarrow.cache_clear()
    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    try:
        target = tmp_path / "decisions.parquet"
        code, out, err = run(["check", SESSIONS, "--rules", CHIRO, "--format", "parquet", "-o", str(target)])
    finally:
        monkeypatch.undo()
        parquet._pyarrow.cache_clear()
    assert (code, out) == (2, "") and "payrules[parquet]" in err
    assert list(tmp_path.iterdir()) == []


def test_parquet_input_is_read_by_extension_and_by_content(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import csv

    rows = list(csv.DictReader(io.StringIO(Path(SESSIONS).read_text())))
    named = tmp_path / "visits.parquet"
    pq.write_table(pa.Table.from_pylist(rows), named)
    unnamed = tmp_path / "visits.data"
    unnamed.write_bytes(named.read_bytes())
    _, expected, _ = transcript(["check", SESSIONS, "--rules", CHIRO, "--format", "csv"])
    for path in (named, unnamed):
        code, out, err = run(["check", str(path), "--rules", CHIRO, "--format", "csv"])
        assert (code, err) == (1, "") and out == expected.replace(SESSIONS, str(path))
    code, out, err = run(["check", "-", "--rules", CHIRO, "--format", "csv"], named.read_bytes())
    assert (code, err) == (1, "") and out == expected.replace(SESSIONS, "<stdin>")


# --- --columns with JSON input ---------------------------------------------------------------------


def test_columns_with_json_input_is_refused(tmp_path: Path, text_snapshot: SnapshotAssertion) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text('{"session_id": "S1", "lines": []}\n')
    code, out, err = run(["check", str(path), "--rules", CHIRO, "--columns",
                          "examples/messy-export/columns.toml"])
    assert (code, out) == (2, "")
    assert text_snapshot == err.replace(str(tmp_path), "<tmp>")
    payers = tmp_path / "payers.toml"
    payers.write_text('[payers]\nSX1 = "MERIDIAN"\n')
    code, _, err = run(["check", str(path), "--rules", CHIRO, "--columns", str(payers)])
    assert code == 1 and "--columns" not in err


# --- the README's diagnostic examples ----------------------------------------------------------------


@pytest.mark.parametrize(("rule", "codes"), [("max 2 visits per 0 days", ["E208"]), ("max 2x units per line", ["E208"]),
                                             ("max 0 visits per calendar year", ["W104"])])
def test_limit_diagnostics_are_the_readme_s(rule: str, codes: list[str]) -> None:
    from payrules.lint import lint_source
    from payrules.source import Source

    found = lint_source(Source("t.payer", f"payer ACME\n{rule}\n"))
    assert [d.code for d in found] == codes


def test_schema_names_the_kinds_the_output_gives() -> None:
    from payrules.api import report_schema

    description = report_schema()["$defs"]["reason"]["properties"]["kind"]["description"]
    _, out, _ = transcript(["check", SESSIONS, "--rules", CHIRO, "--format", "json"])
    kinds = {r["kind"] for s in json.loads(out)["sessions"] for line in s["lines"] for r in line["reasons"]}
    assert kinds and all(f" {kind}" in description for kind in kinds)
    assert "max_per_session" not in description
