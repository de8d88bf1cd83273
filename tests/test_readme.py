"""The README stays true: its commands are the ones CI runs and the CLI accepts, and every output
block in it is what payrules prints.

How a README block is tied to a test: an HTML comment on the line before the fenced block says
what the block is (each kind has a test below):

- `<!-- output: [NAME=VALUE ...] ARGS -->`: `payrules ARGS` run from the repository root (with
  those environment variables) prints exactly the block on stdout and nothing on stderr.
- `<!-- stderr: ARGS -->`: the same run prints exactly the block on stderr; a file it writes
  with `-o PATH` (written to a temporary folder instead) equals the file PATH of the repository.
- `<!-- output-of: SCRIPT -->`: `python SCRIPT` prints the block.
- `<!-- scratch-file: PATH -->` and `<!-- output-in-scratch: ARGS -->`: `payrules ARGS`, run in
  an empty folder holding a copy of the repository's `examples/` and each scratch file at its
  PATH, prints exactly the block on stdout and nothing on stderr (for examples that need a rule
  file the repository does not have, such as a second version of a policy).
- `<!-- completion -->`: each line sets `_PAYRULES_COMPLETE` for a shell, and payrules answers
  with that shell's completion script.
- `<!-- file: PATH -->` / `<!-- excerpt-of: PATH -->`: the block is the file / a run of its lines.
- `<!-- json-excerpt: ARGS -->`: the JSON block holds the first sessions, the errors and the
  summary of that run, exactly, and is valid against the shipped schema.
- `<!-- json-error-of: ARGS -->`: the JSON block is one of the `errors` of that run.
- `<!-- icd10-explanations -->`: each row's explanation is the code set's answer for that code.
- `<!-- http: RULES -->`: each `$ curl` in the block is replayed against the decision service
  (rules RULES) through httpx's ASGI transport; `…` stands for any text within a line.
- `<!-- dask-example -->` and `<!-- output-of-dask-example -->`: the Dask program, run on the
  lines the README says, prints the block.

Every other fenced block that holds a `payrules` command is checked against the CLI: the
command exists, and so do its options and `--format` values. Blocks that run nothing payrules
can check here (installing packages, starting a long-running server, a Spark cluster, editors)
are listed in NOT_RUN with the reason, and every other unmarked block must be a rule file
snippet, a data sample or code checked elsewhere (SAMPLES).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import jsonschema
import pytest
from click.testing import CliRunner
from conftest import ROOT, transcript

from payrules.api import report_schema
from payrules.cli import cli
from payrules.diagnostics import CODES
from payrules.lint import lint_source
from payrules.source import Source

README = (ROOT / "README.md").read_text()

# A fenced block and the comment line before it (if any).
BLOCK = re.compile(r"(?:<!-- (?P<mark>[^\n]*?) -->\n)?```(?P<lang>[a-z]*)\n(?P<body>.*?)```", re.S)


def blocks(kind: str) -> list[tuple[str, str]]:
    """(argument of the mark, block text) of every block marked `kind`."""
    found = []
    for match in BLOCK.finditer(README):
        mark = match["mark"] or ""
        if mark == kind or mark.startswith(kind + ":") or mark.startswith(kind + " "):
            found.append((mark[len(kind):].lstrip(":").strip(), match["body"]))
    return found


def run(args: str) -> tuple[int, str, str]:
    """`payrules ARGS` in-process; leading NAME=VALUE words are environment variables."""
    words = shlex.split(args)
    env = {}
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    old = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        return transcript(words)
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# --- the two fresh-machine commands -------------------------------------------------------------


def commands() -> list[str]:
    section = README.split("## On a fresh machine", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```\n(python3 -m venv .+)\n```", section)


def test_exactly_two_fresh_machine_commands() -> None:
    setup_and_run, setup_and_test = commands()
    assert setup_and_run == (
        "python3 -m venv .venv && .venv/bin/pip install -q '.[x12,icd10]' && .venv/bin/payrules check "
        "examples/*/sessions.csv examples/claims-837p/claims.837 --rules examples/ "
        "--payer-map examples/claims-837p/payers.toml")
    assert setup_and_test == "python3 -m venv .venv && .venv/bin/pip install -q '.[test]' && .venv/bin/pytest -q"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands()[1] in ci.splitlines()


def test_the_fresh_machine_check_judges_every_example_and_exits_1() -> None:
    payrules_part = commands()[0].split(".venv/bin/payrules ", 1)[1]
    words = [str(p.relative_to(ROOT)) for p in sorted(ROOT.glob("examples/*/sessions.csv"))]
    words += shlex.split(payrules_part)[2:]  # after `check examples/*/sessions.csv`
    code, out, err = transcript(["check", *words])
    assert (code, err) == (1, "")
    said = re.search(r"(\d+) lines read: (\d+) judged .*?, (\d+) rejected \(not judged\)", out)
    assert said is not None
    read, judged, rejected = map(int, said.groups())
    assert read == judged + rejected and rejected == 2
    section = README.split("## On a fresh machine", 1)[1].split("\n## ", 1)[0]
    assert f"{read} lines read, {judged} judged, and {rejected} lines" in " ".join(section.split())


# --- output blocks ---------------------------------------------------------------------------------


def test_there_are_output_blocks_of_every_kind() -> None:
    for kind in ("output", "stderr", "output-of", "file", "excerpt-of", "json-excerpt", "json-error-of",
                 "http", "dask-example", "output-of-dask-example", "scratch-file", "output-in-scratch",
                 "completion"):
        assert blocks(kind), kind
    assert README.count("<!-- icd10-explanations -->\n|") == 1  # marks a table, not a block


@pytest.mark.parametrize("args, block", blocks("output"), ids=lambda value: value[:60])
def test_sample_output_is_what_payrules_prints(args: str, block: str) -> None:
    code, out, err = run(args)
    assert err == ""
    assert out == block


@pytest.mark.parametrize("args, block", blocks("stderr"), ids=lambda value: value[:60])
def test_sample_stderr_is_what_payrules_prints(args: str, block: str, tmp_path: Path) -> None:
    words = shlex.split(args)
    written = None
    if "-o" in words:
        at = words.index("-o") + 1
        written, words[at] = words[at], str(tmp_path / "out")
    code, out, err = transcript(words)
    assert err == block
    if written is not None:
        assert (tmp_path / "out").read_bytes() == (ROOT / written).read_bytes()


@pytest.mark.parametrize("args, block", blocks("output-in-scratch"), ids=lambda value: value[:60])
def test_sample_output_over_scratch_files_is_what_payrules_prints(args: str, block: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    for path, text in blocks("scratch-file"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    monkeypatch.chdir(tmp_path)
    code, out, err = run(args)
    assert err == ""
    assert out == block


def test_completion_lines_give_each_shells_script() -> None:
    (_, block), = blocks("completion")
    shells = re.findall(r"_PAYRULES_COMPLETE=(\w+)_source payrules", block)
    assert shells == ["bash", "zsh", "fish"]
    assert len(block.splitlines()) == len(shells)
    for shell in shells:
        result = CliRunner().invoke(cli, [], prog_name="payrules", env={"_PAYRULES_COMPLETE": f"{shell}_source"})
        assert result.exit_code == 0
        assert "_PAYRULES_COMPLETE" in result.output and "payrules" in result.output, shell


def test_embedding_example_in_readme_is_the_file() -> None:
    example = (ROOT / "examples" / "embedding" / "embed.py").read_text()
    assert f"```python\n{example}```" in README
    (script, block), = blocks("output-of")
    printed = subprocess.run([sys.executable, script], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert block == printed


@pytest.mark.parametrize("path, block", blocks("file") + blocks("excerpt-of"))
def test_quoted_files_are_the_files(path: str, block: str) -> None:
    text = (ROOT / path).read_text()
    assert block in text
    assert text.startswith(block) or f"\n{block}" in text  # whole lines


def test_json_example_is_the_start_of_the_real_report() -> None:
    (args, block), = blocks("json-excerpt")
    shown = json.loads(block)
    code, out, err = run(args)
    real = json.loads(out)
    assert shown["sessions"] == real["sessions"][:len(shown["sessions"])]
    assert (shown["errors"], shown["summary"]) == (real["errors"], real["summary"])
    jsonschema.validate(shown, report_schema())


def test_json_error_example_is_a_real_error() -> None:
    (args, block), = blocks("json-error-of")
    code, out, err = run(args)
    assert json.loads(block) in json.loads(out)["errors"]


def test_diagnosis_explanations_are_the_code_sets() -> None:
    from payrules import icd10

    section = README.split("<!-- icd10-explanations -->\n", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| (.+?) \|$", section, flags=re.M)
    assert len(rows) >= 5
    within = icd10.release()
    assert within is not None
    for code, explanation in rows:
        finding = icd10.check_diagnosis(code, within.effective)
        assert finding is not None, code
        assert icd10.explanation([finding]) == explanation
    assert f"has {len(icd10.billable_codes()):,} billable codes" in README
    assert f"**CDC ICD-10-CM {within.name} release**" in README


# --- the decision service ---------------------------------------------------------------------------


def curl_request(command: str) -> tuple[str, str, dict[str, str], bytes]:
    """Method, path, headers and body of a `curl` command line as the README writes it."""
    words = shlex.split(command)
    method, headers, body, url = "GET", {}, b"", ""
    i = 1
    while i < len(words):
        word = words[i]
        if word in ("-X",):
            method, i = words[i + 1], i + 1
        elif word == "-H":
            name, value = words[i + 1].split(":", 1)
            headers[name.strip()] = value.strip()
            i += 1
        elif word in ("-d", "--data-binary"):
            data = words[i + 1]
            body = (ROOT / data[1:]).read_bytes() if data.startswith("@") else data.encode()
            method = "POST" if method == "GET" else method
            i += 1
        elif not word.startswith("-"):
            url = word
        i += 1
    return method, url.split("8000", 1)[1], headers, body


def matches(shown: str, real: str) -> bool:
    """`…` in a shown line stands for any text."""
    pattern = ".*?".join(re.escape(part) for part in shown.split("…"))
    return re.fullmatch(pattern, real, flags=re.S) is not None


def test_curl_examples_answer_as_shown() -> None:
    httpx = pytest.importorskip("httpx")
    from payrules.serve import create_app

    (rules, block), = blocks("http")
    exchanges = re.split(r"^\$ ", block, flags=re.M)[1:]
    app = create_app(Path(rules))

    async def replay() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
            for exchange in exchanges:
                command, shown = exchange.split("\n", 1)
                method, path, headers, body = curl_request(command)
                answer = await client.request(method, path, headers=headers, content=body)
                if " -i " in f" {command} ":
                    head, shown_body = shown.split("\n\n", 1)
                    status, *header_lines = head.splitlines()
                    assert status == f"HTTP/1.1 {answer.status_code} {answer.reason_phrase}"
                    for line in header_lines:
                        name, value = line.split(": ", 1)
                        assert matches(value, answer.headers[name]), line
                    assert matches(shown_body.rstrip("\n"), answer.text.rstrip("\n")), command
                else:
                    assert matches(shown.rstrip("\n"), answer.text.rstrip("\n")), command
                if path == "/v1/check" and answer.status_code == 200:
                    code, out, err = transcript(["check", str(body_file(command)), "--rules", rules, "--format", "json"])
                    assert answer.text == out  # "byte for byte"

    asyncio.run(replay())


def body_file(command: str) -> Path:
    return Path(re.search(r"@(\S+)", command)[1])  # type: ignore[index]


# --- the Dask example -------------------------------------------------------------------------------


def test_dask_example_prints_what_the_readme_shows(tmp_path: Path) -> None:
    pytest.importorskip("dask")
    (_, program), = blocks("dask-example")
    (_, shown), = blocks("output-of-dask-example")
    generate = re.search(r"`python (examples/spark-dask/lines\.py [^`]+)`", " ".join(README.split()))
    assert generate is not None
    words = shlex.split(generate[1])
    subprocess.run([sys.executable, str(ROOT / words[0]), *words[1:]], check=True, cwd=tmp_path)
    (tmp_path / "rules.payer").write_text((ROOT / "examples" / "spark-dask" / "rules.payer").read_text())
    (tmp_path / "example.py").write_text(program)
    printed = subprocess.run([sys.executable, "example.py"], capture_output=True, text=True, check=True,
                             cwd=tmp_path).stdout
    assert printed == shown


# --- diagnostics table ------------------------------------------------------------------------------


def test_every_diagnostic_code_is_documented() -> None:
    source = "".join(p.read_text() for p in (ROOT / "compiler" / "payrules").rglob("*.py")
                     if p.name != "diagnostics.py")
    used = set(re.findall(r'"([EW]\d{3})"', source))
    documented = re.findall(r"^\| ([EW]\d{3}) \| (.+?) \|", README, flags=re.M)
    assert used == set(CODES) == {code for code, _ in documented}
    assert all(CODES[code][0] == meaning for code, meaning in documented)


def table_examples() -> list[tuple[str, list[str], str]]:
    """(code, the example's lines, the note in brackets after it) of each diagnostics table row."""
    rows = re.findall(r"^\| ([EW]\d{3}) \| .+? \| (.+) \|$", README, flags=re.M)
    found = []
    for code, example in rows:
        lines = [part.replace("\\|", "|") for part in re.findall(r"`([^`]*)`", example.split(" (")[0])]
        note = example.split(" (", 1)[1].rstrip(")") if " (" in example else ""
        found.append((code, lines, note))
    return found


def files_for(code: str, lines: list[str], note: str, folder: Path) -> list[Path]:
    """The rule files a table row describes: its lines after a payer line, with what the note asks."""
    if code == "E111":  # the example shortens a 201-character name with "..."
        lines = [line.replace("...", "x" * (201 - len(line.split(" = ")[0][4:]) + 3)) for line in lines]
    if note == "twice":
        lines = lines * 2
    head = [] if note == "as the first line" or lines[0].startswith("payer ") else ["payer T"]
    if note.startswith("on line 2"):
        head = ["payer T"]
    if note == "in two files":
        paths = [folder / "a.payer", folder / "b.payer"]
        for path in paths:
            path.write_text("\n".join(lines) + "\n")
        return paths
    if code == "E109":  # `this-file` names the file itself
        path = folder / "this-file.payer"
        path.write_text("\n".join([*head, *lines]) + "\n")
        return [path]
    if code == "E112":  # a chain of 33 includes, each file including `next`
        depth = 33
        for level in range(depth + 1):
            nested = folder / ("/".join(["n"] * level))
            nested.mkdir(parents=True, exist_ok=True)
            text = "payer T\n" if level == 0 else ""
            (nested / ("main.payer" if level == 0 else "next.payer")).write_text(
                text + ('include "n/next"\n' if level < depth else "only 97140\n"))
        return [folder / "main.payer"]
    if code in ("E131", "W150"):  # the NCCI tables the notes describe, next to the rule file
        (folder / "mue.csv").write_text("97140,4,3 Date of Service Edit: Clinical,Made-up value\n")
        (folder / "old.txt").write_text("98940\t97140\t\t19990401\t19990401\t1\tMade-up edit, deleted retroactively\n")
    path = folder / "t.payer"
    path.write_text("\n".join([*head, *lines]) + "\n")
    return [path]


@pytest.mark.parametrize("code, lines, note", table_examples(), ids=lambda value: str(value)[:12])
def test_each_diagnostics_table_example_gives_its_code(code: str, lines: list[str], note: str,
                                                       tmp_path: Path) -> None:
    paths = files_for(code, lines, note, tmp_path)
    if len(paths) > 1:  # a check across files: only `check`/`build` see both
        result = transcript(["build", str(tmp_path)])
        assert code in result[1] + result[2]
        return
    found = [d.code for d in lint_source(Source(str(paths[0]), paths[0].read_text()))]
    assert code in found, (lines, found)


def test_the_error_shown_before_the_table_is_what_lint_prints(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    section = README.split("## Rule file errors", 1)[1]
    shown = section.split("```\n", 2)[1]
    line = re.search(r"^3 \| (.+)$", shown, flags=re.M)[1]  # type: ignore[index]
    payers = tmp_path / "payers"
    payers.mkdir()
    (payers / "evergreen.payer").write_text(f"payer EVERGREEN\nonly 97124\n{line}\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = transcript(["lint", "payers/evergreen.payer"])
    assert shown in out + err


# --- commands in the README --------------------------------------------------------------------------

# Blocks that run nothing this test can run, and why; their payrules commands are still checked.
NOT_RUN = {
    "pip install": "installs packages from a registry",
    "payrules serve --rules": "starts a long-running server; its answers are replayed through ASGI above",
    "payrules lsp": "a language server talking to an editor on stdin/stdout; tests/test_lsp.py drives it",
    "npm run copy-grammar": "builds the VS Code extension with npm",
    "SparkSession": "needs Java and a Spark session (about 14 s to start); tests/test_spark.py compares it row by row",
    "openssl rand": "makes a secret key; the masked output it leads to is checked above",
    "python benchmarks/run.py": "the benchmark takes minutes; its figures are measurements, not output",
    "benchmarks/reliability.py": "the reliability benchmark takes minutes and measures time",
    "HYPOTHESIS_PROFILE=long": "the test suite itself (the long profile takes minutes)",
    "polars_reference.py": "needs the bench extra and a generated sessions file; the benchmark compares its bytes",
    "payrules lint payers/ ": "lint's outputs are snapshot-tested in tests/test_lint.py",
    "payrules check claims.837": "a synopsis on placeholder files",
    "payrules check visits.csv": "placeholder files; the masked output is checked above",
    "payrules check visits.parquet": "placeholder files",
    "vim.filetype": "Neovim configuration",
    "repos:": "the pre-commit snippet; its hook ids are checked against .pre-commit-hooks.yaml",
}


def payrules_lines(body: str) -> list[str]:
    found = []
    for line in body.splitlines():
        line = line.removeprefix("$ ").strip()
        if line.startswith(("payrules ", ".venv/bin/payrules ")):
            found.append(line.split("  #")[0].split(" # ")[0].strip())
    return found


def option_problems(line: str) -> list[str]:
    """What in a `payrules ...` line the CLI does not know: the command, an option, a format."""
    words = line.replace(".venv/bin/payrules", "payrules").split()
    name = words[1]
    assert isinstance(cli, click.Group)
    command = cli.get_command(click.Context(cli), name)  # commands may be loaded when asked for
    if command is None:
        return [f"`payrules {name}` is not a command"]
    params = {opt: p for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    problems = []
    for at, word in enumerate(words):
        for option in re.findall(r"^\[*(--?[a-z0-9][a-z0-9-]*)", word):
            if option not in params:
                problems.append(f"`{option}` is not an option of `payrules {name}`")
                continue
            param = params[option]
            if isinstance(param.type, click.Choice) and at + 1 < len(words):
                for value in words[at + 1].strip("[]").split("|"):
                    if value not in param.type.choices:
                        problems.append(f"`{option} {value}` is not a choice of `payrules {name}`")
    return problems


def test_every_payrules_command_in_the_readme_is_one_the_cli_takes() -> None:
    problems = []
    for match in BLOCK.finditer(README):
        for line in payrules_lines(match["body"]):
            problems += [f"{line}: {problem}" for problem in option_problems(line)]
    assert problems == []


def test_every_unmarked_block_is_accounted_for() -> None:
    """A block is marked (and run above), holds only checked payrules commands, is in NOT_RUN,
    or is a sample: rule file text, a data or config sample, or Python checked elsewhere."""
    unaccounted = []
    for match in BLOCK.finditer(README):
        body, lang = match["body"], match["lang"]
        if match["mark"] or any(key in body for key in NOT_RUN):
            continue
        lines = [line for line in body.splitlines() if line.strip()]
        if lines and all(line.removeprefix("$ ").lstrip().startswith(("payrules ", "[")) for line in lines):
            continue  # checked by test_every_payrules_command_in_the_readme_is_one_the_cli_takes
        if lang in ("toml", "json", "yaml", "python") or is_rule_text(body) or is_sample(body):
            continue
        unaccounted.append(body[:80])
    assert unaccounted == []


def is_rule_text(body: str) -> bool:
    """A snippet of rule file text: every line parses after a payer line (or is one)."""
    text = body if body.lstrip().startswith(("payer ", "# ")) else f"payer T\n{body}"
    found = [d.code for d in lint_source(Source("snippet.payer", text))]
    return not [code for code in found if code in ("E001", "E002")]


def is_sample(body: str) -> bool:
    """A data sample: CSV with a header row, or the text of a report or an error shown as an
    illustration of a section whose real output is checked by a marked block."""
    first = body.splitlines()[0]
    return first.startswith(("session_id,", "case,", "E002 ", "  FAIL ", "machine: ", "grammar/rules.lark ", "warning: "))


def test_pre_commit_snippet_names_the_shipped_hooks() -> None:
    snippet = re.search(r"```yaml\n(repos:.*?)```", README, flags=re.S)
    assert snippet is not None
    shown = re.findall(r"- id: (\S+)", snippet[1])
    shipped = re.findall(r"^- id: (\S+)", (ROOT / ".pre-commit-hooks.yaml").read_text(), flags=re.M)
    assert shown == shipped


def test_local_pre_commit_snippet_runs_the_shipped_hooks_commands() -> None:
    snippet = re.search(r"```yaml\n(repos:\n  - repo: local\n.*?)```", README, flags=re.S)
    assert snippet is not None
    hooks = (ROOT / ".pre-commit-hooks.yaml").read_text()

    def fields(text: str, prefix: str) -> list[tuple[str, str, str]]:
        return re.findall(rf"^{prefix}- id: (\S+)\n(?:.*\n)*?\s*entry: (.+)\n(?:.*\n)*?\s*files: (\S+)", text,
                          flags=re.M)

    assert fields(snippet[1], "      ") == fields(hooks, "")
