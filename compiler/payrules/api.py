"""The façade: load rule files into policies, read sessions, and judge them."""

from __future__ import annotations

from pathlib import Path

from payrules.compiler import Policy, compile_file, compile_source, emit_python, read_source
from payrules.diagnostics import CompileError, Diagnostic, InputError, Severity
from payrules.records import read_sessions
from payrules.runner import Report, evaluate, policies_by_payer
from payrules.source import Span

__all__ = ["Policy", "Report", "check_files", "compile_file", "compile_source", "emit_python", "load_policies",
           "read_source", "rule_files"]


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


def check_files(sessions: list[Path], rules: Path) -> Report:
    """Judge the sessions in `sessions` against the rule files under `rules`."""
    policies = policies_by_payer(load_policies(rules))
    return evaluate(read_sessions(sessions), policies)
