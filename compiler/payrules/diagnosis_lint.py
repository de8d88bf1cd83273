"""Lint checks on the diagnoses of a checked module: which diagnosis sets are used, and items of
a diagnosis list that another item of it already matches."""

from __future__ import annotations

from collections.abc import Iterator

from payrules import ast
from payrules.check import Checked
from payrules.diagnosis_sets import Diagnoses
from payrules.diagnostics import Diagnostic, Severity


def diagnosis_lists(module: ast.Module) -> Iterator[ast.DiagnosisList]:
    """Every diagnosis list of the module: in diagnosis sets and in statements."""
    for set_def in module.sets:
        if isinstance(set_def.codes, ast.DiagnosisList):
            yield set_def.codes
    for rule in module.rules:
        found = getattr(rule.statement, "diagnoses", None)
        if isinstance(found, ast.DiagnosisList):
            yield found


def diagnosis_set_names(module: ast.Module) -> set[str]:
    """The set names that diagnosis lists use (a set name shaped like a diagnosis included)."""
    names = {s.name.value for s in module.sets}
    return {item.span.text for node in diagnosis_lists(module) for item in node.items
            if isinstance(item, ast.SetRef) or item.span.text in names}


def diagnosis_warnings(checked: Checked) -> list[Diagnostic]:
    """W130: a code in a diagnosis list that a prefix, range or set of the same list already
    matches (`M54.5*, M54.50`): one of the two is not what was meant, or is not needed."""
    bindings = checked.bindings
    own_file = checked.module.span.file
    found: list[Diagnostic] = []
    for node in diagnosis_lists(checked.module):
        if node.span.file != own_file:
            continue
        for item in node.items:
            if not isinstance(item, ast.Diagnosis) or item.value.endswith("*") or item.span.text in bindings.diagnoses_by_name:
                continue
            for other in node.items:
                if other is item or (isinstance(other, ast.Diagnosis) and not other.value.endswith("*")
                                     and other.span.text not in bindings.diagnoses_by_name):
                    continue
                if item.value in _resolved(other, bindings.diagnoses_by_name):
                    found.append(Diagnostic(
                        code="W130", severity=Severity.WARNING,
                        message=f"`{item.value.upper()}` is already matched by `{other.span.text}` in this list",
                        span=item.span, help="remove it, or check that the other item is the one you meant"))
                    break
    return found


def _resolved(item: ast.DiagnosisItem, by_name: dict[str, Diagnoses]) -> Diagnoses:
    if item.span.text in by_name:
        return by_name[item.span.text]
    if isinstance(item, ast.Diagnosis):
        return Diagnoses.pattern(item.value)
    if isinstance(item, ast.DiagnosisRange):
        return Diagnoses.between(item.low.value, item.high.value)
    return Diagnoses()
