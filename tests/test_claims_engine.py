"""The engine on real claims: diagnoses checked against the ICD-10-CM code set, lines whose
credential an 837P claim does not give, and the amount each reason takes from a line."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st
from syrupy.assertion import SnapshotAssertion

from payrules import api, icd10, standalone
from payrules.check import Codes
from payrules.compiler import compile_source
from payrules.domain import code_number, describe_codes
from payrules.formats.x835 import X835Writer, adjustments
from payrules.judging import CODE_SET_RULE, rule_of
from payrules.lint import lint_source
from payrules.runner import Block, Report
from payrules.runtime import CodeSet, Origin, code_shape
from payrules.source import Source

from conftest import EXAMPLES, ROOT, render_transcript, transcript
from helpers import NPI_DC, NPI_LMT, line, run
from x12_helpers import assert_valid

SCHEMA = json.loads((ROOT / "compiler/payrules/schemas/report.schema.json").read_text(encoding="utf-8"))

RULES = """payer ACME "Acme Health (example)"
only 97140, 97124, 98940
max $50 per session
"""

HEADER = "session_id,patient_id,date,payer,provider_npi,provider_credential,code,modifiers,units,minutes,charge,diagnoses,prescription_by"
# One line per diagnosis under test: three the code set does not bill, four valid codes, and
# a line dated before the shipped release took effect.
SESSIONS = f"""{HEADER}
S1,P1,2026-05-04,ACME,{NPI_LMT},LMT,97140,,1,15,40.00,M54.99,
S1,P1,2026-05-04,ACME,{NPI_LMT},LMT,97124,,1,15,40.00,M54.50;M62.830,
S2,P2,2026-05-04,ACME,{NPI_LMT},LMT,97140,,1,15,40.00,Z99.ZZZZ,
S2,P2,2026-05-04,ACME,{NPI_LMT},LMT,97124,,1,15,30.00,S13.4XXA,
S3,P3,2026-05-04,ACME,{NPI_DC},DC,98940,,1,,45.00,M54.5,
S3,P3,2026-05-04,ACME,{NPI_DC},DC,97140,,1,15,40.00,M99.01,
S4,P4,2025-03-03,ACME,{NPI_DC},DC,98940,,1,,45.00,M54.5;M54.2,
"""

INVALID = {"M54.99", "Z99.ZZZZ", "M54.5"}


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    rules, sessions = tmp_path / "acme.payer", tmp_path / "claims.csv"
    rules.write_text(RULES, encoding="utf-8")
    sessions.write_text(SESSIONS, encoding="utf-8")
    return rules, sessions


@pytest.fixture
def shape_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As if the `icd10` extra were not installed."""
    monkeypatch.setitem(sys.modules, icd10.LIBRARY, None)  # makes the import fail
    icd10.forget()
    yield
    monkeypatch.undo()
    icd10.forget()


# --- the ICD-10-CM code set ----------------------------------------------------------------------


def test_code_set_denials_in_the_text_report(files: tuple[Path, Path], text_snapshot: SnapshotAssertion) -> None:
    rules, sessions = files
    out = render_transcript(["check", str(sessions), "--rules", str(rules)])
    assert text_snapshot == out.replace(str(rules.parent), "<tmp>")


def test_code_set_denials_in_json(files: tuple[Path, Path], json_snapshot: SnapshotAssertion) -> None:
    rules, sessions = files
    code, out, err = transcript(["check", str(sessions), "--rules", str(rules), "--format", "json"])
    assert (code, err) == (1, "")
    report = json.loads(out.replace(str(rules.parent), "<tmp>"))
    jsonschema.validate(report, SCHEMA)
    assert json_snapshot == report


def test_code_set_denials_through_the_api(files: tuple[Path, Path]) -> None:
    rules, sessions = files
    report = api.check_files([sessions], rules)
    decided = {(l.input.diagnoses, l.status) for s in report.sessions for l in s.lines}
    assert decided == {
        (("M54.99",), "denied"), (("M54.50", "M62.830"), "paid"), (("Z99.ZZZZ",), "denied"),
        (("S13.4XXA",), "paid"), (("M54.5",), "denied"), (("M99.01",), "paid"), (("M54.5", "M54.2"), "denied")}
    for result in (l for s in report.sessions for l in s.lines if l.status == "denied"):
        (reason,) = result.reasons
        assert (reason.kind, reason.carc, reason.rarc, reason.severity) == (icd10.KIND, "16", "M76", "deny")
        assert (reason.line, reason.location) == (0, "ICD-10-CM code set, CDC April 2026 release")
        assert reason.amount == result.charge
        assert reason.to_dict()["line"] is None and reason.to_dict()["column"] is None
        named = [d for d in result.input.diagnoses if d in INVALID]
        assert all(d in reason.message for d in named)
    old = next(l for s in report.sessions for l in s.lines if l.input.date == "2025-03-03")
    assert "(Checked against the April 2026 release, which took effect on 2026-04-01" in old.reasons[0].message


def test_a_line_denied_by_the_code_set_uses_up_no_limit() -> None:
    # The cap is $50 a session: had the first line counted, the second would be cut to $10.
    report = run("max $50 per session", line("97140", "40.00", diagnoses="M54.5"),
                 line("97124", "40.00", diagnoses="M54.50"))
    assert [(l.status, l.allowed) for l in report.sessions[0].lines] == [("denied", 0), ("paid", 4000)]


def test_the_code_set_reason_comes_first_and_takes_the_charge() -> None:
    report = run("only 97124\nmax $30 per line", line("97140", "40.00", diagnoses="M54.99"),
                 line("97124", "40.00", diagnoses="M54.99"))
    first, second = report.sessions[0].lines
    assert [(r.kind, r.amount) for r in first.reasons] == [(icd10.KIND, 4000), ("only", 0)]
    # Amount passes skip a denied line: the cap says nothing about it.
    assert [(r.kind, r.amount) for r in second.reasons] == [(icd10.KIND, 4000)]


def test_the_code_set_index_never_picks_the_last_rule() -> None:
    rules = compile_source(Source("t.payer", "payer T\nonly 97140\nmax $1 per line\n")).rules
    assert rule_of(rules, CODE_SET_RULE).kind == icd10.KIND
    assert rule_of(rules, 1) is rules[1]
    with pytest.raises(IndexError):
        rule_of(rules, -2)


@pytest.mark.usefixtures("shape_only")
def test_without_the_code_set_only_the_shape_is_checked(files: tuple[Path, Path]) -> None:
    rules, sessions = files
    assert icd10.available() is False
    report = api.check_files([sessions], rules)
    assert {l.status for s in report.sessions for l in s.lines} == {"paid", "reduced"}
    assert not any(r.kind == icd10.KIND for s in report.sessions for l in s.lines for r in l.reasons)


def _standalone(tmp_path: Path) -> Path:
    module = tmp_path / "acme_rules.py"
    module.write_text(standalone.build([compile_source(Source("acme.payer", RULES))]), encoding="utf-8")
    return module


def _run_module(module: Path, isolated: bool) -> dict:  # type: ignore[type-arg]
    sessions = [{"session_id": "S1", "patient_id": "P1", "date": "2026-05-04", "payer": "ACME",
                 "provider_npi": NPI_LMT, "provider_credential": "LMT",
                 "lines": [{"code": "97140", "units": 1, "charge": "40.00", "diagnoses": ["M54.5"]},
                           {"code": "97124", "units": 1, "charge": "40.00", "diagnoses": ["M54.50"]}]}]
    script = (f"import json, sys\nsys.path.insert(0, {str(module.parent)!r})\nimport {module.stem} as rules\n"
              "print(json.dumps(rules.check(json.load(sys.stdin))))\n")
    flags = ["-I", "-S"] if isolated else ["-I"]
    result = subprocess.run([sys.executable, *flags, "-c", script], input=json.dumps(sessions), capture_output=True,
                            text=True, check=True)
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_standalone_modules_check_the_code_set(tmp_path: Path) -> None:
    report = _run_module(_standalone(tmp_path), isolated=False)
    first, second = report["sessions"][0]["lines"]
    assert (first["status"], second["status"]) == ("denied", "paid")
    (reason,) = first["reasons"]
    assert (reason["kind"], reason["carc"], reason["rarc"], reason["line"], reason["amount"]) == \
        (icd10.KIND, "16", "M76", None, "40.00")
    assert reason["message"].startswith("M54.5 is a category, not a billable code; bill M54.50, M54.51 or M54.59.")
    jsonschema.validate(report, SCHEMA)


def test_standalone_modules_without_the_code_set_check_the_shape(tmp_path: Path) -> None:
    report = _run_module(_standalone(tmp_path), isolated=True)  # no site-packages: no simple-icd-10-cm
    assert [l["status"] for l in report["sessions"][0]["lines"]] == ["paid", "reduced"]


# --- 837P lines whose credential is not known ----------------------------------------------------


def _from_claim(taxonomy: str, credential: str = "", **fields: str) -> object:
    given = line("97140", "60.00", npi=NPI_LMT, credential=credential, **fields)  # type: ignore[arg-type]
    return given._replace(origin=Origin("claims.837", 40, "ST 0001 / CLM C1 / LX 1 / SV1",
                                        {"code": "SV101-2", "taxonomy": taxonomy}))


CREDENTIAL_RULES = {
    "requires": "requires LMT or PT NPI for 97140",
    "not payable by": "not payable by DC for 97140",
    "prescription from": "requires prescription from MD or DO for 97140",
}


def test_credential_not_known_on_claim_lines(text_snapshot: SnapshotAssertion) -> None:
    cases = {
        "no taxonomy on the claim": _from_claim(""),
        "a physician's taxonomy": _from_claim("207Q00000X"),
        "a massage therapist's taxonomy": _from_claim("225700000X", credential="LMT"),
        "a CSV line with no credential": line("97140", "60.00", npi=NPI_LMT, credential=""),
    }
    out = []
    for rule_name, rule in CREDENTIAL_RULES.items():
        for case, given in cases.items():
            (result,) = run(rule, given).sessions[0].lines  # type: ignore[arg-type]
            out.append(f"{rule_name} / {case}: {result.status}")
            out += [f"    {r.message}" for r in result.reasons]
    assert text_snapshot == "\n".join(out) + "\n"


def test_rules_without_a_credential_judge_claim_lines_as_usual() -> None:
    report = run("only 97140\nmax $45 per line", _from_claim(""))  # type: ignore[arg-type]
    assert [(l.status, l.allowed) for l in report.sessions[0].lines] == [("reduced", 4500)]


# --- the amount of each reason -------------------------------------------------------------------


def _lines(report: Report) -> Iterator[object]:
    return (l for s in report.sessions for l in s.lines)


def assert_amounts_add_up(report: Report) -> None:
    for result in _lines(report):
        taken = [r.amount for r in result.reasons]  # type: ignore[attr-defined]
        assert all(t >= 0 for t in taken), result
        assert sum(taken) == result.charge - result.allowed, result  # type: ignore[attr-defined]
        assert all(r.amount == 0 for r in result.reasons if r.severity == "warn")  # type: ignore[attr-defined]
        adjustments(result)  # type: ignore[arg-type]  # raises when the CAS would not balance


@pytest.mark.parametrize("folder", sorted(p.name for p in EXAMPLES.iterdir() if (p / "sessions.csv").exists()))
def test_reason_amounts_add_up_on_every_example_line(folder: str) -> None:
    report = api.check_files([EXAMPLES / folder / "sessions.csv"], EXAMPLES / folder)
    assert report.summary.judged
    assert_amounts_add_up(report)


STATEMENTS = [
    "only 97140, 97124, 98940, 97110", "not covered 97010", "max $45 per session", "max $30 per line",
    "max $25 per unit for 97140", "max 80% of charge for 97124", "max 2 units per session",
    "max 3 units of 97110 per line", "max 60 minutes per session", "units by cms rule for 97140, 97110, 97124",
    "units by ama rule for 97110", "no 97140 same day as 98940 unless modifier 59", "one of 97140, 97124 per session", "97124 bundled into 98940 same day",
    "no duplicate same day", "not payable by LMT for 98940", "requires prescription from MD for 97110",
    "requires DC NPI for 98940", "max $40 per session warn", "max 1 unit per line warn",
    "requires diagnosis M54.* for 97140", "max $100 per 30 days", "max 2 visits per calendar year",
    "97140 only with 98940 same session",
]


@st.composite
def claim_lines(draw: st.DrawFn) -> list[object]:
    found = []
    for number in range(draw(st.integers(1, 8))):
        code = draw(st.sampled_from(["97140", "97124", "98940", "97110", "97010"]))
        minutes = draw(st.none() | st.integers(0, 70))
        dx = draw(st.sampled_from(["M54.50", "M54.5", "M62.830", "", "M54.99 M54.2"]))
        found.append(line(code, f"{draw(st.integers(0, 150))}.{draw(st.integers(0, 99)):02d}",
                          session=f"S{draw(st.integers(1, 3))}", patient=draw(st.sampled_from(["P1", "P2"])),
                          date=draw(st.sampled_from(["2026-04-06", "2026-05-04"])),
                          units=draw(st.integers(1, 5)), minutes=minutes, diagnoses=dx,
                          modifiers=draw(st.sampled_from(["", "59"])),
                          credential=draw(st.sampled_from(["LMT", "DC", ""])), number=number))
    return found


@given(rules=st.lists(st.sampled_from(STATEMENTS), min_size=1, max_size=6, unique=True), lines=claim_lines())
def test_reason_amounts_add_up_on_random_rules_and_lines(rules: list[str], lines: list[object]) -> None:
    # Sessions need one patient and date each: the session id carries them.
    keyed = [l._replace(session_id=f"{l.session_id}-{l.patient_id}-{l.date}") for l in lines]  # type: ignore[attr-defined]
    report = run("\n".join(rules), *keyed)
    assert_amounts_add_up(report)
    out = io.StringIO()
    writer = X835Writer(out)
    writer.block(Block(sessions=report.sessions, errors=report.errors, lines_read=report.summary.lines_read))
    writer.close(report.summary)
    assert_valid(out.getvalue())


# --- code lists kept as runs ---------------------------------------------------------------------

_SHAPES = ("00000", "0000T", "S0000")


@st.composite
def code_lists(draw: st.DrawFn) -> tuple[Codes, frozenset[str]]:
    parts, listed = [], set()
    for _ in range(draw(st.integers(0, 5))):
        shape = draw(st.sampled_from(_SHAPES))
        low = draw(st.integers(0, 60))
        high = low + draw(st.integers(0, 40))
        parts.append(Codes.between(Codes.code(shape.replace("0", "#"), low), Codes.code(shape.replace("0", "#"), high)))
        listed.update(Codes.code(shape.replace("0", "#"), n) for n in range(low, high + 1))
    return Codes.union(parts), frozenset(listed)


@given(code_lists(), code_lists())
def test_runs_of_codes_behave_as_the_sets_they_stand_for(a: tuple[Codes, frozenset[str]],
                                                         b: tuple[Codes, frozenset[str]]) -> None:
    (runs_a, set_a), (runs_b, set_b) = a, b
    assert runs_a == set_a and len(runs_a) == len(set_a) and bool(runs_a) == bool(set_a)
    assert list(runs_a) == sorted(set_a, key=lambda c: (code_shape(c), c))
    assert (runs_a | runs_b) == set_a | set_b
    assert (runs_a & runs_b) == set_a & set_b
    assert (runs_a - runs_b) == set_a - set_b
    assert all((code in runs_a) == (code in set_a) for code in set_a | set_b | {"97140", "0042T", "S8990", "x"})
    assert runs_a.describe() == (describe_codes(set_a) if set_a else "")
    listed, ranges = runs_a.split(32)
    assert all(CodeSet(listed, ranges).__contains__(code) for code in set_a)
    assert sum(code_number(last) - code_number(first) + 1 for _, first, last in ranges) + len(listed) == len(set_a)


def test_lint_sees_through_wide_ranges() -> None:
    source = Source("wide.payer", "payer W\nonly 10000-19999\nnot covered 15000-19999\nmax $10 per session for 15000-19999\n"
                    "max $20 per session for 14000-19999\n")
    assert {(d.code, d.span.line) for d in lint_source(source)} == {("W101", 4)}
    apart = Source("apart.payer", "payer W\nonly 10000-19999\nonly 20000-29999, 0001T-0999T\nonly 19999-20000\n")
    assert {(d.code, d.span.line) for d in lint_source(apart)} == {("W102", 3), ("W102", 4)}


def test_a_file_of_wide_ranges_generates_range_checks() -> None:
    text = "payer BIG\n" + "".join(f"r{i}: not covered {10000 + 10 * i}-{19999 + 10 * i}\n" for i in range(50))
    compiled = compile_source(Source("big.payer", text))
    assert len(compiled.python) < 40_000  # listed one by one, the codes alone would take 4 MB
    assert compiled.python.count("rt.CodeSet(frozenset(), (") == 50
