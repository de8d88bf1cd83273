"""Fuzz properties: hostile rule files and records → worded errors or accounted decisions, never a crash,
a lost line, a formula cell, a forged report line, or output that depends on the hash seed."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import unicodedata
from pathlib import Path

import strategies as fz
from conftest import transcript
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payrules.api import compile_text, load
from payrules.diagnostics import CompileError, InputError

BASE = settings().max_examples
"""The example count of the loaded profile (`ci` by default, `HYPOTHESIS_PROFILE=long` for more)."""

FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d")


def scaled(fraction: float) -> settings:
    """Settings for a test that costs more per example than the profile's baseline test."""
    return settings(max_examples=max(2, int(BASE * fraction)), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example, HealthCheck.filter_too_much])


def cli(*args: str) -> tuple[int, str, str]:
    """Run payrules in-process; any exception escapes (a crash fails the test), and exit 3 never happens
    for user input: 0 and 1 are results, 2 is a worded refusal that printed nothing on stdout."""
    code, out, err = transcript(list(args))
    assert code in (0, 1, 2), (code, err[-2000:])
    if code == 2:
        assert err.strip(), "exit 2 without a message"
        assert out == "", "exit 2 after output was written"
    return code, out, err


def compile_api(text: str) -> None:
    """Compiling rule text through the API either works or raises the documented `CompileError`."""
    with contextlib.suppress(CompileError):
        compile_text(text, "fuzz.payer")


# --- output properties ------------------------------------------------------------------------------

def csv_rows(out: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(out, newline="")))


def assert_no_formula_cells(out: str) -> None:
    for row in csv.reader(io.StringIO(out, newline="")):
        bad = [cell for cell in row if cell.startswith(FORMULA_START)]
        assert not bad, f"cells a spreadsheet would run as formulas: {bad!r}"


def assert_no_raw_controls(out: str) -> None:
    """Only `\\n` breaks a line of the text report; no value starts a line of its own."""
    raw = sorted({c for c in out if c != "\n" and unicodedata.category(c) in ("Cc", "Zl", "Zp")})
    assert not raw, f"raw control or line-breaking characters in text output: {raw!r}"
    forged = [line for line in out.splitlines() if line.lstrip().startswith(fz.MARKER)]
    assert not forged, f"a value started a line of the report: {forged[:2]!r}"


def assert_accounted_jsonl(out: str, expected: int | None) -> None:
    """Every line read is judged or listed as not judged, once; the summary adds up."""
    records = [json.loads(line) for line in out.splitlines()]
    summary = records[-1]
    assert summary["type"] == "summary"
    judged = sum(len(r["lines"]) for r in records if r["type"] == "session")
    errors = sum(1 for r in records if r["type"] == "error")
    assert (summary["judged"], summary["rejected"]) == (judged, errors)
    assert summary["lines_read"] == judged + errors
    assert summary["judged"] == summary["paid"] + summary["reduced"] + summary["denied"]
    if expected is not None:
        assert summary["lines_read"] == expected, f"{expected} lines in the input, {summary['lines_read']} read"


def check_every_format(files: list[str], rules: str, expected: int | None, *, rows_of: str | None = None) -> int:
    """Judge `files` in every output format and check what each format promises. Returns the exit code."""
    codes = set()
    for form in ("jsonl", "csv", "text", "json"):
        code, out, _ = cli("check", *files, "--rules", rules, "--format", form)
        codes.add(code)
        if code == 2:
            continue
        if form == "jsonl":
            assert_accounted_jsonl(out, expected)
        elif form == "csv":
            assert_no_formula_cells(out)
            rows = csv_rows(out)
            if expected is not None:
                assert len(rows) == expected, f"{expected} input lines, {len(rows)} csv rows"
            if rows_of is not None:
                origins = [(r["file"], r["row"]) for r in rows if r["file"].lstrip("'") == rows_of]
                assert len(origins) == len(set(origins)) == expected, "an input line is missing or repeated"
        elif form == "text":
            assert_no_raw_controls(out)
        else:
            json.loads(out)
    assert len(codes) == 1, f"the exit code depends on --format: {codes}"
    return codes.pop()


def _plain_row(session: str = "S1", patient: str = "P1", code: str = "97124") -> dict[str, str]:
    return {"session_id": session, "patient_id": patient, "date": "2024-05-06", "payer": fz.PAYER,
            "provider_npi": "1328719467", "provider_credential": "DC", "code": code, "modifiers": "", "units": "1",
            "minutes": "", "charge": "40.00", "diagnoses": "", "prescription_by": ""}


# --- rule files -------------------------------------------------------------------------------------

@scaled(1)
@given(st.lists(fz.number_statements(), min_size=1, max_size=4))
def test_huge_and_exotic_numbers_in_rule_files_give_diagnostics(statements: list[str]) -> None:
    text = f"payer {fz.PAYER}\n" + "\n".join(statements) + "\n"
    compile_api(text)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "rules.payer")
        path.write_text(text)
        for command in ("compile", "lint", "fmt"):
            code, _, _ = cli(command, str(path), *(["--check"] if command == "fmt" else []))
            assert code in (0, 1)


@scaled(0.1)
@given(fz.long_name_rules())
def test_long_names_in_rule_files_give_diagnostics(text: str) -> None:
    compile_api(text)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "rules.payer")
        path.write_text(text)
        code, _, err = cli("lint", str(path))
        assert code in (0, 1)
        assert len(err) < 200_000, "a diagnostic repeats a long name many times over"


@scaled(0.2)
@given(st.integers(1, 1500))
def test_long_set_chains_compile_or_give_diagnostics(length: int) -> None:
    compile_api(f"payer {fz.PAYER}\n" + fz.set_chain(length))


@scaled(0.1)
@given(st.integers(1, 1200))
def test_long_include_chains_compile_or_give_diagnostics(length: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        top = fz.write_include_chain(Path(tmp, "chain"), length)
        with contextlib.suppress(CompileError, InputError):
            load(top)
        code, _, _ = cli("compile", str(top))
        assert code in (0, 1)


@scaled(0.5)
@given(st.sampled_from(fz.INCLUDE_PATHS), st.sampled_from(["", "only 97140\n", "payer OTHER\n"]))
def test_odd_include_paths_give_diagnostics(include: str, included: str) -> None:
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        Path("main.payer").write_text(f"payer {fz.PAYER}\n{include}\n", encoding="utf-8", errors="surrogateescape")
        Path("sets.payer").write_text(included)
        Path("s.csv").write_text(fz.csv_text([_plain_row()], ["\n"]))
        for command in ("compile", "lint"):
            assert cli(command, "main.payer")[0] in (0, 1)
        check_every_format(["s.csv"], "main.payer", 1)


# --- records ----------------------------------------------------------------------------------------

@scaled(1)
@given(fz.records(), fz.line_endings())
def test_hostile_csv_records_are_each_judged_or_listed_once(rows: list[dict[str, str]], endings: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        Path("rules.payer").write_text(fz.RULES)
        Path("s.csv").write_bytes(fz.csv_text(rows, endings).encode("utf-8", "surrogateescape"))
        check_every_format(["s.csv"], "rules.payer", len(rows), rows_of="s.csv")


@scaled(0.5)
@given(fz.json_sessions())
def test_hostile_json_and_jsonl_records_are_each_judged_or_listed_once(found: tuple[list[str], int, bool]) -> None:
    texts, count, spliced = found
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        Path("rules.payer").write_text(fz.RULES)
        Path("s.json").write_text("[" + ",\n".join(texts) + "]")
        Path("s.jsonl").write_text("\n".join(texts) + "\n")
        for name in ("s.json", "s.jsonl"):
            check_every_format([name], "rules.payer", None if spliced else count)


def _deep(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


API_VALUES = [10**5000, -(10**30), float("inf"), float("nan"), "S\ud800", "\x00", "²", "P1\u2028", None, True,
              {"a": 1}, [], _deep(5000), "=1+1", "9" * 4301]


@scaled(1)
@given(fz.records(1, 5), st.lists(st.tuples(st.sampled_from(fz.FIELDS), st.sampled_from(API_VALUES)), max_size=3))
def test_api_check_accounts_for_every_line_whatever_the_values(rows: list[dict[str, str]],
                                                               odd: list[tuple[str, object]]) -> None:
    sessions: list[dict[str, object]] = [dict(json.loads(fz.json_session([row], raw_numbers=False))) for row in rows]
    for (field, value), session in zip(odd, sessions):
        if field in ("session_id", "patient_id", "date", "payer"):
            session[field] = value
        else:
            session["lines"][0][field] = value  # type: ignore[index]
    report = compile_text(fz.RULES, "rules.payer").check(sessions)
    judged = sum(len(s.lines) for s in report.sessions)
    assert report.summary.lines_read == len(rows) == judged + len(report.errors)


# --- hostile text that reaches every output ---------------------------------------------------------

@scaled(0.5)
@given(fz.hostile_rule_texts(), st.sampled_from(fz.RULE_FILE_NAMES), fz.records(1, 4))
def test_rule_names_sources_and_paths_reach_outputs_escaped(rules: str, name: str,
                                                            rows: list[dict[str, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        Path(f"{name}.payer").write_text(rules)
        Path("s.csv").write_text(fz.csv_text(rows + [_plain_row("T1", "Q1", "97110")], ["\n"]))
        check_every_format(["s.csv"], f"{name}.payer", len(rows) + 1, rows_of="s.csv")


# --- wrong answers from the shape of a file ---------------------------------------------------------

def decisions(out: str) -> list[tuple[str, ...]]:
    """The csv decisions without where they were read from."""
    return sorted(tuple(v for k, v in row.items() if k not in ("file", "row")) for row in csv_rows(out))


@scaled(0.5)
@given(st.lists(st.tuples(st.sampled_from(["P1", "P2", "P3"]), st.sampled_from(["98940", "97140", "97124"])),
                min_size=2, max_size=10), fz.line_endings())
def test_line_endings_do_not_change_decisions(visits: list[tuple[str, str]], endings: list[str]) -> None:
    rows = [_plain_row(f"S{i}", patient, code) for i, (patient, code) in enumerate(visits)]
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        Path("rules.payer").write_text(fz.RULES)
        Path("lf.csv").write_text(fz.csv_text(rows, ["\n"]), newline="")
        Path("odd.csv").write_text(fz.csv_text(rows, endings), newline="")
        lf = cli("check", "lf.csv", "--rules", "rules.payer", "--format", "csv")
        odd = cli("check", "odd.csv", "--rules", "rules.payer", "--format", "csv")
        assert lf[0] == odd[0]
        assert decisions(lf[1]) == decisions(odd[1])


# --- determinism ------------------------------------------------------------------------------------

def _subprocess_check(folder: Path, seed: str) -> tuple[int, bytes]:
    env = {**os.environ, "PYTHONHASHSEED": seed, "PAYRULES_NO_CACHE": "1"}
    done = subprocess.run([sys.executable, "-m", "payrules", "check", "s.csv", "--rules", "rules.payer",
                           "--format", "json"], cwd=folder, env=env, capture_output=True, timeout=600)
    return done.returncode, done.stdout


@scaled(0.04)
@given(fz.records(2, 10))
def test_output_is_the_same_whatever_the_hash_seed(rows: list[dict[str, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "rules.payer").write_text(fz.RULES)
        (folder / "s.csv").write_bytes(fz.csv_text(rows, ["\n"]).encode("utf-8", "surrogateescape"))
        first, second = _subprocess_check(folder, "0"), _subprocess_check(folder, "4242")
        assert first[0] != 3 and first == second
