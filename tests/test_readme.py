"""The README stays true: its commands are the ones CI runs, and its sample output is real."""

from __future__ import annotations

import re

from conftest import ROOT, transcript

from payrules.diagnostics import CODES

README = (ROOT / "README.md").read_text()


def commands() -> list[str]:
    section = README.split("## On a fresh machine", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```\n(python3 -m venv .+)\n```", section)


def test_exactly_two_fresh_machine_commands() -> None:
    setup_and_run, setup_and_test = commands()
    assert "payrules check examples/*/sessions.csv --rules examples/" in setup_and_run
    assert setup_and_test.endswith("pytest -q")


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands()[1] in ci.splitlines()


def test_sample_output_is_what_payrules_prints() -> None:
    for args, block in re.findall(r"<!-- output: (.+?) -->\n```\n(.*?)```", README, flags=re.S):
        code, out, err = transcript(args.split())
        assert err == ""
        assert out == block


def test_every_diagnostic_code_is_documented() -> None:
    source = "".join(p.read_text() for p in (ROOT / "compiler" / "payrules").glob("*.py")
                     if p.name != "diagnostics.py")
    used = set(re.findall(r'"([EW]\d{3})"', source))
    documented = re.findall(r"^\| ([EW]\d{3}) \| (.+?) \|", README, flags=re.M)
    assert used == set(CODES) == {code for code, _ in documented}
    assert all(CODES[code][0] == meaning for code, meaning in documented)


def test_embedding_example_in_readme_is_the_file() -> None:
    example = (ROOT / "examples" / "embedding" / "embed.py").read_text()
    assert f"```python\n{example}```" in README
    import subprocess
    import sys

    printed = subprocess.run([sys.executable, "examples/embedding/embed.py"], capture_output=True, text=True,
                             check=True, cwd=ROOT).stdout
    (block,) = re.findall(r"<!-- output-of: examples/embedding/embed.py -->\n```\n(.*?)```", README, flags=re.S)
    assert block == printed
