"""The façade: load rule files into policies, read sessions, and judge them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs

from payrules.compiler import Policy, compile_file, compile_source, emit_python, read_source
from payrules.diagnostics import CompileError, Diagnostic, InputError, Severity
from payrules.fields import RecordError, session_batch
from payrules.judging import History, by_payer, covers, date_range, history_days, history_index
from payrules.records import Columns, Scan, read_blocks, read_sessions, scan
from payrules.runner import (
    Policies,
    Block,
    Report,
    SessionResult,
    Tally,
    evaluate,
    judge_batch,
    policies_by_payer,
)
from payrules.runtime import RuleInfo, Session
from payrules.testing import CaseResult, TestRun, case_files, run_cases
from payrules.source import Source, Span

__all__ = ["CheckRun", "Columns", "Policy", "Report", "RuleSet", "check_files", "compile_file", "compile_source",
           "compile_text", "emit_python", "load", "load_policies", "read_source", "report_schema", "rule_files",
           "run_tests", "start_check"]


def report_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of `payrules check --format json`; `$defs/jsonlRecord`
    describes each line of `--format jsonl`."""
    text = resources.files("payrules").joinpath("schemas/report.schema.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def rule_files(path: Path) -> list[Path]:
    """A rule file, or every `*.payer` file under a folder, in sorted order."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.payer") if p.is_file())
        if not files:
            raise InputError(f"{path}: no .payer rule files in this folder")
        return files
    if not path.exists():
        raise InputError(f"{path}: no such rule file or folder")
    return [path]


def load_policies(path: Path) -> list[Policy]:
    """Compile every rule file under `path`; all diagnostics of all files are raised together."""
    policies: list[Policy] = []
    diagnostics: list[Diagnostic] = []
    for file in rule_files(path):
        try:
            policies.append(compile_file(file))
        except CompileError as error:
            diagnostics.extend(error.diagnostics)
    for found in by_payer(policies).values():
        for first, later in zip(found, found[1:]):
            if first.effective_to is None or (later.effective_from or "") <= first.effective_to:
                diagnostics.append(_overlap(first, later))
    if diagnostics:
        raise CompileError(diagnostics)
    return policies


def read_history(paths: list[Path], columns: Columns | None = None) -> History:
    """Earlier sessions, counted by same-day rules and period limits but never judged. They must be valid."""
    try:
        return history_index(read_sessions(paths, columns))
    except ValueError as error:
        raise InputError(str(error)) from None


@attrs.frozen
class CheckRun:
    """A check ready to stream: the compiled policies and what a first pass learnt of the input."""

    sessions: list[Path]
    policies: Policies
    columns: Columns | None
    scan: Scan
    history: History | None = None

    def blocks(self) -> Iterator[Block]:
        """Judged blocks in input order: one per patient when the input is grouped by patient,
        else one for the whole input (held in memory)."""
        for batch in read_blocks(self.sessions, self.columns, grouped=self.scan.grouped):
            yield judge_batch(batch, self.policies, self.history)


def start_check(sessions: list[Path], rules: Path, columns: Columns | None = None,
                history: list[Path] | None = None) -> CheckRun:
    """Compile the rules, read the history and scan the sessions; raises before any output."""
    policies = policies_by_payer(load_policies(rules))
    past = read_history(history, columns) if history else None
    return CheckRun(sessions, policies, columns, scan(sessions, columns), past)


def _overlap(first: Policy, later: Policy) -> Diagnostic:
    source = read_source(Path(later.source))
    header = source.text.split("\n", 1)[0]
    if first.effective_from is first.effective_to is later.effective_from is later.effective_to is None:
        message = f"payer `{later.payer_id}` already has a rule file: {first.source}"
        help = "keep one rule file per payer id, or give each an `effective from ... to ...` range"
    else:
        message = (f"payer `{later.payer_id}` already has rules for some of these dates: {first.source} "
                   f"({date_range(first)}) and this file ({date_range(later)}) overlap")
        help = "make the effective ranges of a payer's rule files meet without overlapping"
    return Diagnostic(code="E107", severity=Severity.ERROR, message=message, span=Span(source, 0, len(header)),
                      help=help)


def check_files(sessions: list[Path], rules: Path, columns: Columns | None = None,
                history: list[Path] | None = None) -> Report:
    """Judge the sessions in `sessions` against the rule files under `rules`, into one `Report`."""
    run = start_check(sessions, rules, columns, history)
    results: list[SessionResult] = []
    errors: list[RecordError] = []
    tally = Tally()
    for block in run.blocks():
        results.extend(block.sessions)
        errors.extend(block.errors)
        tally.add(block)
    return Report(sessions=tuple(results), errors=tuple(errors), summary=tally.summary())


# --- embedding ---------------------------------------------------------------------------------

SessionInput = Mapping[str, Any] | Session
"""A session as a dict in the JSON input format (with its `lines`), or a typed `Session`."""


def _as_policies(policies: Policies) -> Policies:
    return MappingProxyType({payer: tuple(found) for payer, found in policies.items()})


@attrs.frozen
class RuleSet:
    """Compiled payer policies by payer id. Immutable, and safe to share between threads."""

    policies: Policies = attrs.field(converter=_as_policies)
    """Policies keyed by payer id in lower case; a payer has one per effective date range."""

    @property
    def payers(self) -> tuple[str, ...]:
        """The payer ids, as their rule files spell them, sorted."""
        return tuple(sorted(found[0].payer_id for found in self.policies.values()))

    def policy(self, payer: str, date: str | None = None) -> Policy:
        """The policy of one payer (case-insensitive) in effect on `date` (YYYY-MM-DD), or its
        first when no date is given; KeyError when there is none."""
        for policy in self.policies[payer.casefold()]:
            if date is None or covers(policy, date):
                return policy
        raise KeyError(f"{payer} on {date}")

    def check(self, sessions: Iterable[SessionInput], *, history: Iterable[SessionInput] = ()) -> Report:
        """Judge sessions. Dicts are validated like a JSON sessions file (a bad line comes back
        in `Report.errors`, located as `<sessions>` row N); typed `Session` values are used as
        they are. `history` sessions count for same-day and period rules but are not judged; a bad
        history record raises `InputError`."""
        try:
            past = history_days(list(history))
        except ValueError as error:
            raise InputError(str(error)) from None
        return evaluate(session_batch(list(sessions), "<sessions>"), self.policies, past)


def load(path: str | Path) -> RuleSet:
    """Compile a `.payer` file, or every one under a folder. Raises `CompileError` (with every
    diagnostic of every file) or `InputError` (missing or unreadable files)."""
    return RuleSet(policies_by_payer(load_policies(Path(path))))


def compile_text(text: str, name: str = "<rules>") -> RuleSet:
    """Compile rule text; `name` is the file name used in diagnostics and explanations."""
    return RuleSet(policies_by_payer([compile_source(Source(name, text))]))


# --- payrules test -------------------------------------------------------------------------------


def run_tests(paths: list[Path]) -> TestRun:
    """Run every case file under `paths` against the rule files of its folder."""
    results: list[CaseResult] = []
    rules: dict[tuple[str, int], RuleInfo] = {}
    loaded: dict[Path, Policies] = {}
    files = [f for path in paths for f in case_files(path)]
    if not files:
        raise InputError(f"no *.cases.csv files under {', '.join(str(p) for p in paths)}")
    for file in files:
        folder = file.parent
        if folder not in loaded:
            loaded[folder] = policies_by_payer(load_policies(folder))
            for found in loaded[folder].values():
                for policy in found:
                    rules.update({(r.file, r.line): r for r in policy.rules})
        results.extend(run_cases(file, loaded[folder]))
    exercised = frozenset((r.file, r.line) for case in results for outcome in case.outcomes
                          if outcome.actual is not None for r in outcome.actual.reasons)
    return TestRun(cases=tuple(results), rules=tuple(rules.values()), exercised=exercised)
