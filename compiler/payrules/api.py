"""The façade: load rule files into policies, read sessions, and judge them."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from payrules.compiler import Policy, compile_file, compile_source, emit_python, read_source
from payrules.diagnostics import CompileError, Diagnostic, InputError, Severity
from payrules.records import Columns, RecordError, Scan, read_blocks, scan
from payrules.runner import Block, Report, SessionResult, Tally, judge_batch, policies_by_payer
from payrules.source import Span

__all__ = ["CheckRun", "Columns", "Policy", "Report", "check_files", "compile_file", "compile_source",
           "emit_python", "load_policies", "read_source", "report_schema", "rule_files", "start_check"]


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
    seen: dict[str, Policy] = {}
    for policy in policies:
        key = policy.payer_id.casefold()
        if key in seen:
            first = seen[key]
            source = read_source(Path(policy.source))
            diagnostics.append(Diagnostic(
                code="E107", severity=Severity.ERROR,
                message=f"payer `{policy.payer_id}` already has a rule file: {first.source}",
                span=Span(source, 0, source.text.find("\n") if "\n" in source.text else len(source.text)),
                help="keep one rule file per payer id"))
        else:
            seen[key] = policy
    if diagnostics:
        raise CompileError(diagnostics)
    return policies


@attrs.frozen
class CheckRun:
    """A check ready to stream: the compiled policies and what a first pass learnt of the input."""

    sessions: list[Path]
    policies: Mapping[str, Policy]
    columns: Columns | None
    scan: Scan

    def blocks(self) -> Iterator[Block]:
        """Judged blocks in input order: one per patient when the input is grouped by patient,
        else one for the whole input (held in memory)."""
        for batch in read_blocks(self.sessions, self.columns, grouped=self.scan.grouped):
            yield judge_batch(batch, self.policies)


def start_check(sessions: list[Path], rules: Path, columns: Columns | None = None) -> CheckRun:
    """Compile the rules and scan the sessions; raises before any output is produced."""
    policies = policies_by_payer(load_policies(rules))
    return CheckRun(sessions, policies, columns, scan(sessions, columns))


def check_files(sessions: list[Path], rules: Path, columns: Columns | None = None) -> Report:
    """Judge the sessions in `sessions` against the rule files under `rules`, into one `Report`."""
    run = start_check(sessions, rules, columns)
    results: list[SessionResult] = []
    errors: list[RecordError] = []
    tally = Tally()
    for block in run.blocks():
        results.extend(block.sessions)
        errors.extend(block.errors)
        tally.add(block)
    return Report(sessions=tuple(results), errors=tuple(errors), summary=tally.summary())
