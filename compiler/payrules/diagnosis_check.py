"""The checks of diagnoses in a rule file: diagnosis lists, ranges and sets, and which kind of
set (procedure codes or diagnoses) a set name stands for. A part of the checker (`check._Checker`
inherits it), kept apart so that each stays readable."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from payrules import ast
from payrules.diagnosis_sets import (
    DIAGNOSIS_PATTERN_RE,
    NO_DIAGNOSES,
    Diagnoses,
    range_problem,
    reversed_range,
)
from payrules.diagnostics import Diagnostic, InternalError, closest, quoted
from payrules.source import Span

if TYPE_CHECKING:
    from payrules.check import Bindings


class DiagnosisChecks:
    """Diagnosis checks of the checker; the attributes below are the checker's."""

    set_defs: dict[str, ast.SetDef]
    bindings: Bindings
    diagnostics: list[Diagnostic]
    _resolving: dict[str, None]
    _kinds: dict[str, str]

    if TYPE_CHECKING:  # the checker's own methods, declared for the type checker only
        def error(self, code: str, message: str, span: Span, help: str | None = None) -> None: ...

        def too_long(self, name: str, span: Span, what: str) -> bool: ...

    def set_kind(self, name: str) -> str | None:
        """`codes` or `diagnoses`: what the set holds, by the shape of its items; a set of set
        names only holds what the first of them holds. None for a name no set has (or a cycle
        of set names, which `codes` reports)."""
        seen: list[str] = []
        kind: str | None = None
        while name not in self._kinds:
            set_def = self.set_defs.get(name)
            if set_def is None or name in seen:
                break
            seen.append(name)
            items = set_def.codes.items
            if isinstance(set_def.codes, ast.DiagnosisList):
                kind = "diagnoses"
                break
            if any(not isinstance(i, ast.SetRef) for i in items):
                kind = "codes"
                break
            first = items[0]
            assert isinstance(first, ast.SetRef)
            name = first.name
        else:
            kind = self._kinds[name]
        for found in seen:
            if kind is not None:
                self._kinds[found] = kind
        return kind

    def diagnoses(self, diagnoses: ast.DiagnosisList | ast.CodeList | None) -> Diagnoses:
        """Resolve a diagnosis list (memoised per node) and report every bad item in it; the
        same walk as `codes`, on an explicit stack. A set of set names only comes here as a
        `CodeList` of `SetRef`s."""
        if diagnoses is None:
            return NO_DIAGNOSES
        if diagnoses in self.bindings.diagnosis_sets:
            return self.bindings.diagnosis_sets[diagnoses]
        stack: list[tuple[ast.DiagnosisList | ast.CodeList, Iterator[object], list[Diagnoses], bool]] = [
            (diagnoses, iter(diagnoses.items), [], False)]
        resolved = NO_DIAGNOSES
        while stack:
            node, items, found, named = stack[-1]
            for item in items:
                if isinstance(item, (ast.Diagnosis, ast.DiagnosisRange)) and item.span.text in self.set_defs:
                    # A set name shaped like a diagnosis (`l5`, `l5-s1`) is read as a diagnosis.
                    item = ast.SetRef(span=item.span, name=item.span.text)
                if isinstance(item, ast.Diagnosis):
                    if self.diagnosis_pattern(item):
                        found.append(Diagnoses.pattern(item.value))
                elif isinstance(item, ast.DiagnosisRange):
                    found.append(self.diagnosis_range(item))
                elif isinstance(item, ast.SetRef):
                    inner = self.diagnosis_set_ref(item)
                    if not isinstance(inner, Diagnoses):
                        stack.append((inner, iter(inner.items), [], True))
                        break
                    found.append(inner)
                else:
                    raise InternalError(f"a diagnosis list holds a {type(item).__name__}")
            else:
                stack.pop()
                resolved = Diagnoses.union(found)
                self.bindings.diagnosis_sets[node] = resolved
                if named:
                    self._resolving.popitem()
                if stack:
                    stack[-1][2].append(resolved)
        return resolved

    def diagnosis_set_ref(self, ref: ast.SetRef) -> Diagnoses | ast.DiagnosisList | ast.CodeList:
        """The diagnoses of a set name, or the set's own list when it still has to be resolved."""
        if self.too_long(ref.name, ref.span, "the diagnosis set name"):
            return NO_DIAGNOSES
        set_def = self.set_defs.get(ref.name)
        if set_def is None:
            suggestion = closest(ref.name, self.set_defs)
            help = (f"did you mean `{suggestion}`?" if suggestion else
                    f"define it first, as in `set {ref.name} = M99.00-M99.05`")
            self.error("E101", f"unknown diagnosis set `{ref.name}`", ref.span, help)
            return NO_DIAGNOSES
        if self.set_kind(ref.name) == "codes":
            self.error("E231", f"`{ref.name}` is a set of procedure codes; diagnoses go here", ref.span,
                       "name a set of diagnoses, or write the diagnoses, such as M54.50 or M54.5*; in a set, a "
                       "diagnosis is written with its dot (M54.50: M5450 is read as a procedure code)")
            return NO_DIAGNOSES
        if ref.name in self._resolving:
            names = list(self._resolving)
            names = names[names.index(ref.name):] + [ref.name]
            if len(names) > 8:
                names = [*names[:3], f"… {len(names) - 6:,} more …", *names[-3:]]
            self.error("E106", f"diagnosis set `{ref.name}` includes itself ({' → '.join(names)})", ref.span)
            return NO_DIAGNOSES
        if set_def.codes in self.bindings.diagnosis_sets:
            return self.bindings.diagnosis_sets[set_def.codes]
        self._resolving[ref.name] = None
        return set_def.codes

    def diagnosis_pattern(self, item: ast.Diagnosis) -> bool:
        if DIAGNOSIS_PATTERN_RE.match(item.value.upper()):
            return True
        self.error("E212", f"{quoted(item.value)} is not an ICD-10-CM code or prefix", item.span,
                   "write a code such as M54.50, or a prefix ending in `*` such as M54.5*")
        return False

    def diagnosis_range(self, item: ast.DiagnosisRange) -> Diagnoses:
        ends_ok = True
        for end in (item.low, item.high):
            if end.value.endswith("*"):
                self.error("E232", f"a range end cannot be a prefix (`{end.value}`)", end.span,
                           "write a range of codes, such as M99.01-M99.05, or one prefix, such as M99.0*")
                ends_ok = False
            elif not self.diagnosis_pattern(end):
                ends_ok = False
        if not ends_ok:
            return NO_DIAGNOSES
        low, high = item.low.value, item.high.value
        problem = range_problem(low, high)
        if problem is not None:
            self.error("E232", problem[0], item.span, problem[1])
            return NO_DIAGNOSES
        if reversed_range(low, high):
            self.error("E202", f"range `{low}-{high}` is reversed, so it holds no diagnosis", item.span,
                       f"swap the range ends: {high}-{low}")
            return NO_DIAGNOSES
        return Diagnoses.between(low, high)
