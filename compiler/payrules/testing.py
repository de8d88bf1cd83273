"""Case files (`*.cases.csv`) → results of `payrules test`: does each rule file still say what
the payer's manual says?

A case file is a sessions CSV with four more columns: `case` (a name for the worked example;
rows with the same name form one case, judged on its own), `expect_status`, and optionally
`expect_allowed`, `expect_units` (the units paid) and `expect_reasons` (rule names or `CARC n`
codes, separated by `;`; `-` means no reason at all). The rule files tested are those in the
case file's folder and below.
An accumulators file beside it with the same name (`NAME.accumulators.csv` for
`NAME.cases.csv`) gives every case of the file the payer's figures of limits already used.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import attrs

from payrules.accumulator_files import load_accumulators
from payrules.accumulators import Accumulators
from payrules.diagnostics import InputError
from payrules.domain import dollars, parse_money, to_cents
from payrules.fields import ALL_FIELDS, _Grouper
from payrules.records import _normal_header
from payrules.runner import LineResult, Policies, Reason, evaluate
from payrules.runtime import Origin, RuleInfo

EXPECT_FIELDS = ("case", "expect_status", "expect_allowed", "expect_reasons", "expect_units")
CASES_SUFFIX = ".cases.csv"
ACCUMULATORS_SUFFIX = ".accumulators.csv"
STATUSES = ("paid", "reduced", "denied")


@attrs.frozen(kw_only=True)
class Expectation:
    origin: Origin
    case: str
    status: str
    allowed: int | None
    reasons: tuple[str, ...] | None
    """Rule names and `CARC n` codes, or None when reasons are not checked."""
    units: int | None = None
    """The units paid, or None when they are not checked."""


@attrs.frozen(kw_only=True)
class Outcome:
    """One checked line: what was expected, what payrules decided, and what differs."""

    expectation: Expectation
    actual: LineResult | None
    """None when the line itself was rejected as a bad record."""
    problems: tuple[str, ...]
    missing: tuple[str, ...] = ()
    unexpected: tuple[Reason, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.problems


@attrs.frozen(kw_only=True)
class CaseResult:
    file: str
    name: str
    outcomes: tuple[Outcome, ...]

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outcomes)


@attrs.frozen(kw_only=True)
class TestRun:
    cases: tuple[CaseResult, ...]
    rules: tuple[RuleInfo, ...]
    """Every rule of every rule file tested."""
    exercised: frozenset[tuple[str, int]]
    """(file, line) of every rule that gave a reason in some case."""

    @property
    def failed(self) -> tuple[CaseResult, ...]:
        return tuple(c for c in self.cases if not c.passed)

    @property
    def unexercised(self) -> tuple[RuleInfo, ...]:
        return tuple(r for r in self.rules if (r.file, r.line) not in self.exercised)


def case_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*.cases.csv") if p.is_file())
    if not path.exists():
        raise InputError(f"{path}: no such case file or folder")
    if not path.name.endswith(".cases.csv"):
        raise InputError(f"{path}: not a case file; case files are named *.cases.csv (give one, or a folder)")
    return [path]


def _read_cases(path: Path) -> list[tuple[list[str], Expectation]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read ({error})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [_normal_header(h) for h in next(reader, [])]
    missing = [f for f in ("case", "expect_status") if f not in header]
    if missing:
        raise InputError(f"{path}:1: a case file needs the columns {', '.join(f'`{m}`' for m in missing)}")
    index = {name: i for i, name in enumerate(header)}
    rows: list[tuple[list[str], Expectation]] = []
    row = reader.line_num
    for cells in reader:
        start, row = row + 1, reader.line_num
        if not any(cell.strip() for cell in cells):
            continue

        def cell(name: str) -> str:
            i = index.get(name)
            return cells[i].strip() if i is not None and i < len(cells) else ""

        where = f"{path}:{start}"
        if not cell("case"):
            raise InputError(f"{where}: `case` is empty; give each worked example a name")
        status = cell("expect_status").lower()
        if status not in STATUSES:
            raise InputError(f"{where}: expect_status must be paid, reduced or denied, found `{status}`")
        allowed = None
        if cell("expect_allowed"):
            amount = parse_money(cell("expect_allowed"))
            if amount is None or amount != amount.quantize(amount.__class__("0.01")):
                raise InputError(f"{where}: expect_allowed must be an amount such as 45.00, "
                                 f"found `{cell('expect_allowed')}`")
            allowed = to_cents(amount)
        units = None
        if cell("expect_units"):
            if not (cell("expect_units").isascii() and cell("expect_units").isdigit()):
                raise InputError(f"{where}: expect_units must be a whole number of units paid such as 3, "
                                 f"found `{cell('expect_units')}`")
            units = int(cell("expect_units"))
        reasons: tuple[str, ...] | None = None
        if cell("expect_reasons"):
            tokens = [t.strip() for t in cell("expect_reasons").split(";") if t.strip()]
            reasons = () if tokens == ["-"] else tuple(_normal_reason(t) for t in tokens)
        # Any other column is a declared field's value (`field accident_date: date`).
        facts = tuple((name, cell(name)) for name in header if name not in _CASE_COLUMNS)
        origin = Origin(str(path), start, facts=facts)
        rows.append(([cell(f) for f in ALL_FIELDS],
                     Expectation(origin=origin, case=cell("case"), status=status, allowed=allowed, reasons=reasons,
                                 units=units)))
    return rows


_CASE_COLUMNS = frozenset(ALL_FIELDS) | {"case", "expect_status", "expect_allowed", "expect_reasons"}


def _normal_reason(token: str) -> str:
    match = re.fullmatch(r"(?i)carc\s*([A-Za-z0-9]+)", token)
    return f"CARC {match.group(1).upper()}" if match else token


def _reason_matches(token: str, reason: Reason) -> bool:
    return token == f"CARC {reason.carc}" or token == reason.rule


def run_cases(path: Path, policies: Policies) -> list[CaseResult]:
    """Judge every case of one case file on its own, and compare with its expectations."""
    rows = _read_cases(path)
    by_case: dict[str, list[tuple[list[str], Expectation]]] = {}
    for raw, expectation in rows:
        by_case.setdefault(expectation.case, []).append((raw, expectation))
    results = []
    used = _accumulators(path, policies)
    for name, case_rows in by_case.items():
        grouper = _Grouper()
        for raw, expectation in case_rows:
            grouper.add(raw, expectation.origin)
        report = evaluate(grouper.take(), policies, None, used)
        decided = {line.origin.row: line for session in report.sessions for line in session.lines}
        rejected = {error.origin.row: error for error in report.errors}
        outcomes = []
        for _, expectation in case_rows:
            row = expectation.origin.row
            if row in rejected:
                raise InputError(f"{expectation.origin}: {rejected[row].message}")
            outcomes.append(_compare(expectation, decided[row]))
        results.append(CaseResult(file=str(path), name=name, outcomes=tuple(outcomes)))
    return results


def _accumulators(path: Path, policies: Policies) -> Accumulators | None:
    """The figures of the case file's `NAME.accumulators.csv`, if it has one. A case file is
    written to be exact, so what would be a warning for `check` is an error here."""
    beside = path.with_name(path.name[: -len(CASES_SUFFIX)] + ACCUMULATORS_SUFFIX)
    if not beside.is_file():
        return None
    used = load_accumulators([beside], policies)
    if used.warnings:
        raise InputError(f"{used.warnings[0]} (in the accumulators of the case file {path})")
    return used


def _compare(expectation: Expectation, actual: LineResult) -> Outcome:
    problems = []
    if actual.status != expectation.status:
        problems.append("status")
    if expectation.allowed is not None and actual.allowed != expectation.allowed:
        problems.append("allowed")
    if expectation.units is not None and actual.units_paid != expectation.units:
        problems.append("units")
    missing: tuple[str, ...] = ()
    unexpected: tuple[Reason, ...] = ()
    if expectation.reasons is not None:
        missing = tuple(t for t in expectation.reasons if not any(_reason_matches(t, r) for r in actual.reasons))
        unexpected = tuple(r for r in actual.reasons
                           if not any(_reason_matches(t, r) for t in expectation.reasons))
        if missing or unexpected:
            problems.append("reasons")
    return Outcome(expectation=expectation, actual=actual, problems=tuple(problems), missing=missing,
                   unexpected=unexpected)


def expected_text(e: Expectation) -> str:
    text = e.status
    if e.allowed is not None:
        text += f", allowed {dollars(e.allowed)}"
    if e.units is not None:
        text += f", {e.units} unit{'s' if e.units != 1 else ''} paid"
    if e.reasons is not None:
        text += f", reasons: {'; '.join(e.reasons) if e.reasons else 'none'}"
    return text


def actual_text(line: LineResult, units: bool = False) -> str:
    """What payrules decided; with `units`, the units paid too (when the case expects them)."""
    reasons = "; ".join(r.rule or f"CARC {r.carc}" for r in line.reasons) or "none"
    paid = f", {line.units_paid} unit{'s' if line.units_paid != 1 else ''} paid" if units else ""
    return f"{line.status}, allowed {dollars(line.allowed)}{paid}, reasons: {reasons}"

