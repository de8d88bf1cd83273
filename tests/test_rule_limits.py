"""Rule files past payrules' limits get a worded error, never an internal error; the limits
themselves are stated once and enforced at their edges."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import transcript
from helpers import line, outcomes, run_policy
from hypothesis import given
from hypothesis import strategies as st
from syrupy.assertion import SnapshotAssertion

from payrules import render
from payrules.check import MAX_COUNT, MAX_NAME_LENGTH, MAX_PERCENT, MAX_RANGE_SIZE
from payrules.codegen import generate
from payrules.compiler import check_source, compile_file, compile_source, diagnose
from payrules.diagnostics import CODES, CompileError, Diagnostic
from payrules.domain import MAX_MONEY_TEXT, SUGGEST_MAX_LENGTH, _edit_distance, closest
from payrules.fmt import format_text
from payrules.fields import Batch
from payrules.lint import lint_source
from payrules.modules import MAX_INCLUDE_DEPTH
from payrules.runner import evaluate, policies_by_payer
from payrules.runtime import Session
from payrules.source import Source


def errors(text: str, name: str = "limits.payer") -> list[Diagnostic]:
    with pytest.raises(CompileError) as caught:
        check_source(Source(name, text))
    return caught.value.diagnostics


def codes_of(text: str) -> list[str]:
    return [d.code for d in errors(text)]


def compiles(text: str) -> bool:
    compile_source(Source("limits.payer", text))
    return True


def every_command_ends_with_a_worded_error(path: Path, at: str | None = None) -> None:
    """compile, lint, fmt, build and check all refuse the file with exit 1 and an error located
    in the file `at` (by default the file itself)."""
    sessions = path.with_name("sessions.csv")
    sessions.write_text("session_id,patient_id,date,payer,code,charge\nS1,P1,2024-05-06,ACME,97140,40.00\n")
    for args in (["compile", str(path)], ["lint", str(path)], ["fmt", "--check", str(path)],
                 ["build", str(path), "-o", str(path.with_suffix(".py"))],
                 ["check", str(sessions), "--rules", str(path)]):
        code, out, err = transcript(args)
        assert code in (1, 2) and (code == 1 or args[0] == "check"), (args, code, out, err)
        assert f"{at or path.name}:" in out + err and "internal error" not in out + err, args


# --- amounts, shares and whole numbers -----------------------------------------------------------


def test_an_amount_of_27_digits_is_refused_by_every_command(tmp_path: Path, text_snapshot: SnapshotAssertion) -> None:
    path = tmp_path / "money.payer"
    path.write_text("payer ACME\nmax $100000000000000000000000000 per session\n")
    every_command_ends_with_a_worded_error(path)
    assert text_snapshot == render.diagnostics(errors(path.read_text(), "money.payer"))


def test_the_largest_amount_is_accepted_and_one_cent_more_is_not() -> None:
    assert compiles("payer T\nmax $999,999,999.99 per session\n")
    assert codes_of("payer T\nmax $1,000,000,000.00 per session\n") == ["E215"]
    assert codes_of("payer T\nmax $999999999.981 per session\n") == ["E205"]


def test_an_amount_with_many_decimals_is_a_decimals_error_not_a_crash() -> None:
    assert codes_of("payer T\nmax $45." + "0" * 40 + "1 per session\n") == ["E205"]
    assert codes_of("payer T\nmax 75." + "0" * 40 + "1% of charge\n") == ["E205"]


def test_a_share_of_27_digits_is_refused(tmp_path: Path, text_snapshot: SnapshotAssertion) -> None:
    path = tmp_path / "share.payer"
    path.write_text("payer ACME\nmax 100000000000000000000000000% of $10 per session\n")
    every_command_ends_with_a_worded_error(path)
    assert text_snapshot == render.diagnostics(errors(path.read_text(), "share.payer"))


def test_the_largest_share_is_accepted_and_more_is_not() -> None:
    assert compiles("payer T\nmax 1000% of $10 per session\n")
    assert compiles("payer T\nmax 1000% of charge\n")
    assert codes_of("payer T\nmax 1000.01% of charge\n") == ["E215"]
    assert codes_of("payer T\nmax 5000% of $10 per session\n") == ["E215"]


def test_a_share_above_100_percent_of_an_amount_is_paid_in_full() -> None:
    policy = compile_source(Source("t.payer", "payer T\nmax 150% of $40 per session\n"))
    assert outcomes(run_policy(policy, line("97140", "70.00"))) == [("97140", "reduced", "60.00")]


@pytest.mark.parametrize("statement", ["max {n} units per session", "max {n} visits per calendar year",
                                       "max {n} minutes per session"], ids=["units", "visits", "minutes"])
def test_a_count_of_4301_digits_is_refused(statement: str, tmp_path: Path) -> None:
    path = tmp_path / "count.payer"
    path.write_text(f"payer ACME\n{statement.format(n='9' * 4301)}\n")
    every_command_ends_with_a_worded_error(path)
    (diagnostic,) = errors(path.read_text())
    assert diagnostic.code == "E215" and "(4,301 characters)" in diagnostic.message


def test_a_count_past_the_limit_shows_where_and_the_limit(text_snapshot: SnapshotAssertion) -> None:
    assert text_snapshot == render.diagnostics(errors("payer ACME\nmax 250000 units per session\n"))


def test_the_largest_count_is_accepted_and_one_more_is_not() -> None:
    assert compiles(f"payer T\nmax {MAX_COUNT} visits per lifetime\n")
    assert compiles(f"payer T\nmax 000{MAX_COUNT} visits per lifetime\n")  # leading zeros are no size
    assert codes_of(f"payer T\nmax {MAX_COUNT + 1} visits per lifetime\n") == ["E215"]


def test_huge_day_counts_are_out_of_range_not_a_crash() -> None:
    (days,) = errors("payer T\nmax 12 visits per " + "9" * 5000 + " days\n")
    assert days.code == "E208" and "days is out of range" in days.message
    (day,) = errors("payer T\nmax 12 visits per plan year from July " + "1" * 5000 + "\n")
    assert day.code == "E209" and "(5,000 characters)" in day.message
    assert compiles("payer T\nmax 12 visits per plan year from July 01\n")


# --- names ---------------------------------------------------------------------------------------


def test_a_name_at_the_limit_is_accepted() -> None:
    name = "n" * MAX_NAME_LENGTH
    assert compiles(f"payer {name.upper()}\nset {name} = 97140\n{name}: only {name}\n")


@pytest.mark.parametrize("text,what", [
    ("payer {long}\nonly 97140\n", "the payer id"),
    ('payer "{long}"\nonly 97140\n', "the payer id"),
    ("payer T\nset {long} = 97140\nonly 97140\n", "the code set name"),
    ("payer T\nonly {long}\n", "the code set name"),
    ("payer T\n{long}: only 97140\n", "the rule name"),
    ('payer T\n"{long}": only 97140\n', "the rule name"),
], ids=["payer-id", "quoted-payer-id", "set", "set-reference", "rule", "quoted-rule"])
def test_a_name_one_character_too_long_is_refused(text: str, what: str) -> None:
    (diagnostic,) = errors(text.format(long="n" * (MAX_NAME_LENGTH + 1)))
    assert (diagnostic.code, diagnostic.message) == ("E111", f"{what} is too long ({MAX_NAME_LENGTH + 1} characters)")


def test_long_drop_and_override_names_are_refused(tmp_path: Path) -> None:
    long = "r" * 5000
    (tmp_path / "base.payer").write_text("cap: max $45 per session\n")
    main = tmp_path / "main.payer"
    main.write_text(f'payer T\ninclude "base"\ndrop {long}\noverride {long}: max $50 per session\n')
    with pytest.raises(CompileError) as caught:
        compile_file(main)
    assert [(d.code, d.span.line) for d in caught.value.diagnostics] == [("E111", 3), ("E111", 4)]


def test_a_16_kb_file_of_long_names_is_refused_with_both_names_located(text_snapshot: SnapshotAssertion) -> None:
    text = f"payer ACME\nset {'a' * 8000} = 97140\nonly {'b' * 8000}\n"
    found = errors(text)
    assert [(d.code, d.span.line, d.span.column) for d in found] == [("E111", 2, 5), ("E111", 3, 6)]
    assert text_snapshot == render.diagnostics(errors("payer ACME\nset " + "massage_" * 26 + " = 97140\n"))


def test_an_unknown_word_of_100000_characters_is_named_by_its_start() -> None:
    (diagnostic,) = errors("payer ACME\n" + "y" * 100_000 + " 97140\n")
    assert diagnostic.code == "E002"
    assert diagnostic.message == "unknown statement word `yyyyyyyyyyyyyyyyyyyyyyyy…` (100,000 characters)"


# --- "did you mean" ------------------------------------------------------------------------------


def test_suggestions_still_find_near_names() -> None:
    assert closest("onyl", ["only", "one"]) == "only"
    assert closest("massge", ["hot-pack", "massage"]) == "massage"
    assert closest("ACNE", ["ACME", "ACNEE"]) == "ACNEE"  # a tie goes to the longer shared prefix
    assert closest("ACNE", ["ACME", "ACRE"]) == "ACME"  # then to the first listed
    assert closest("zzzz", ["only"]) is None


def test_absurdly_long_words_get_no_suggestion() -> None:
    word = "Z" * 10_000
    assert closest(word, [word[:-1], word]) is None
    assert closest("A" * SUGGEST_MAX_LENGTH, ["A" * (SUGGEST_MAX_LENGTH - 1)]) == "A" * (SUGGEST_MAX_LENGTH - 1)


def _reference_distance(a: str, b: str) -> int:
    """The full-table distance the banded one must agree with."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(rows[i - 1][j] + 1, row[j - 1] + 1, rows[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[i - 2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


@given(st.text("abc", max_size=9), st.text("abc", max_size=9), st.integers(0, 10))
def test_the_banded_distance_agrees_with_the_full_table_up_to_its_limit(a: str, b: str, limit: int) -> None:
    assert _edit_distance(a, b, limit) == min(_reference_distance(a, b), limit + 1)


def test_an_unknown_payer_id_of_10000_characters_is_not_judged_and_gets_no_suggestion() -> None:
    policy = compile_source(Source("acme.payer", "payer ACME\nonly 97140\n"))
    payer = "Z" * 10_000
    sessions = [Session(session_id=f"S{i}", patient_id=f"P{i}", date="2024-05-06", payer=payer,
                        lines=(line("97140", session=f"S{i}", patient=f"P{i}", payer=payer),))
                for i in range(200)]
    report = evaluate(Batch(sessions=sessions, errors=[]), policies_by_payer([policy]))
    assert not report.sessions and len(report.errors) == 200
    (problem,) = report.errors[0].problems
    assert problem.field == "payer" and "did you mean" not in problem.message
    assert problem.message.endswith("rule files cover `ACME`")


# --- include paths and depth ---------------------------------------------------------------------


def test_an_include_path_with_a_nul_is_refused_by_every_command(tmp_path: Path,
                                                                text_snapshot: SnapshotAssertion) -> None:
    path = tmp_path / "nul.payer"
    path.write_text('payer ACME\ninclude "a\0b"\n')
    every_command_ends_with_a_worded_error(path)
    assert text_snapshot == render.diagnostics(errors(path.read_text(), "nul.payer"))


@pytest.mark.parametrize("path,problem", [
    ("", "the path is empty"),
    ("   ", "the path is empty"),
    ("a\\nb", "a file name cannot hold the character U+000A"),
    ("tab\tin", "a file name cannot hold the character U+0009"),
    ("bell\x07", "a file name cannot hold the character U+0007"),
], ids=["empty", "blank", "escaped-newline", "tab", "bell"])
def test_an_include_path_that_names_no_file_is_refused(path: str, problem: str) -> None:
    (diagnostic,) = errors(f'payer T\ninclude "{path}"\n')
    assert diagnostic.code == "E108" and diagnostic.message.endswith(problem)


def test_an_include_path_too_long_for_the_system_is_refused() -> None:
    (diagnostic,) = errors(f'payer T\ninclude "{"d" * 5000}"\n')
    assert diagnostic.code == "E108" and "(5,000 characters)" in diagnostic.message


def include_chain(folder: Path, files: int) -> Path:
    """f0 includes f1 ... includes f{files-1}, which holds the only rule."""
    for i in range(files - 1):
        (folder / f"f{i}.payer").write_text(("payer ACME\n" if i == 0 else "") + f'include "f{i + 1}"\n')
    (folder / f"f{files - 1}.payer").write_text("only 97140\n")
    return folder / "f0.payer"


def test_includes_nested_to_the_limit_compile(tmp_path: Path) -> None:
    policy = compile_file(include_chain(tmp_path, MAX_INCLUDE_DEPTH + 1))
    assert [r.text for r in policy.rules] == ["only 97140"]


def test_a_chain_of_600_includes_is_refused_at_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         text_snapshot: SnapshotAssertion) -> None:
    top = include_chain(tmp_path, 600)
    monkeypatch.chdir(tmp_path)
    every_command_ends_with_a_worded_error(Path(top.name), at=f"f{MAX_INCLUDE_DEPTH}.payer")
    with pytest.raises(CompileError) as caught:
        compile_file(Path(top.name))
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.code, diagnostic.span.file) == ("E112", f"f{MAX_INCLUDE_DEPTH}.payer")
    assert text_snapshot == render.diagnostics(caught.value.diagnostics)


# --- long chains and long lines: no recursion on the depth of the input --------------------------


def set_chain(length: int, last: str = "97140") -> str:
    sets = "".join(f"set chain{i} = chain{i + 1}\n" for i in range(length))
    return f"payer ACME\n{sets}set chain{length} = {last}\nonly chain0\n"


@pytest.mark.parametrize("length", [500, 2000])
def test_a_long_chain_of_sets_resolves_in_every_stage(length: int) -> None:
    text = set_chain(length)
    checked = check_source(Source("chain.payer", text))
    assert checked.bindings.sets_by_name["chain0"] == frozenset({"97140"})
    generate(checked)
    assert lint_source(Source("chain.payer", text)) == []
    assert format_text(text) == text
    policy = compile_source(Source("chain.payer", text))
    assert outcomes(run_policy(policy, line("97140", payer="ACME"), line("97124", payer="ACME"))) == [
        ("97140", "paid", "50.00"), ("97124", "denied", "0.00")]


def test_a_long_chain_of_sets_needs_no_more_stack_than_a_short_one() -> None:
    text = set_chain(2000)
    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + 120)  # far fewer frames than sets in the chain
    try:
        _, diagnostics = diagnose(Source("chain.payer", text))
    finally:
        sys.setrecursionlimit(old)
    assert diagnostics == []


def test_a_long_cycle_of_sets_is_reported_once_and_shown_by_its_ends(text_snapshot: SnapshotAssertion) -> None:
    found = errors(set_chain(600, last="chain0"))
    assert [d.code for d in found] == ["E106"]
    assert text_snapshot == render.diagnostics(found)


def test_a_set_in_a_cycle_reports_its_other_mistakes_once() -> None:
    assert codes_of("payer T\nset a = 9714, b\nset b = a\nonly a\n") == ["E201", "E106"]


def test_a_line_of_10000_codes_goes_through_every_stage() -> None:
    codes = ", ".join(f"{n:05d}" for n in range(10_000, 20_000))
    text = f"payer ACME\nset many = {codes}\nonly many\n"
    checked = check_source(Source("wide.payer", text))
    assert len(checked.bindings.sets_by_name["many"]) == 10_000
    generate(checked)
    assert lint_source(Source("wide.payer", text)) == []
    assert format_text(text) == "payer ACME\nset many = 10000-19999\nonly many\n"


# --- the limits as documented --------------------------------------------------------------------


def test_the_documented_limits_are_the_enforced_ones() -> None:
    assert f"{MAX_NAME_LENGTH} characters" in CODES["E111"][0]
    assert f"{MAX_INCLUDE_DEPTH} levels" in CODES["E112"][0]
    assert all(text in CODES["E215"][0] for text in (MAX_MONEY_TEXT, f"{MAX_PERCENT:,}%", f"{MAX_COUNT:,}"))
    assert f"{MAX_RANGE_SIZE:,} codes" in CODES["E204"][0]


@pytest.mark.parametrize("code", ["E111", "E215"])
def test_the_example_of_each_new_code_produces_it(code: str) -> None:
    example = CODES[code][1].split("  (")[0].replace("...", "x" * MAX_NAME_LENGTH)
    assert code in codes_of(f"payer T\n{example}\n")


def test_a_limit_written_with_a_fraction_is_not_a_whole_number(text_snapshot: SnapshotAssertion) -> None:
    text = "payer T\nmax 2.5 units per line\nmax 1.5 visits per year\nmax 10 visits per 2.5 days\n"
    found = errors(text, "fraction.payer")
    assert [(d.code, d.span.text) for d in found] == [("E208", "2.5"), ("E208", "1.5"), ("E208", "2.5")]
    assert text_snapshot == render.diagnostics(found)


def test_a_fraction_elsewhere_is_still_a_syntax_error() -> None:
    assert [d.code for d in errors("payer T\nmax 2.5 per session\n", "fraction.payer")] == ["E001"]
