"""`ast.Module` → diagnostics, and the resolved facts (`Bindings`) that code generation needs.

Checks append diagnostics; they never print or raise. Each statement kind has one
`_check_<kind>` function below.
"""

from __future__ import annotations

import datetime
import functools
import re

import attrs

from payrules import ast
from payrules.diagnostics import Diagnostic, InternalError, Severity, closest
from payrules.domain import (
    CARC_RE,
    CODE_EXAMPLES,
    CODE_RE,
    CREDENTIALS,
    MODIFIER_RE,
    RARC_RE,
    code_family,
    code_from_number,
    code_number,
    to_cents,
)
from payrules.source import Span

DIAGNOSIS_PATTERN_RE = re.compile(r"^[A-Z][0-9][0-9A-Z](?:\.?[0-9A-Z]{1,4})?\*?$|^[A-Z][0-9][0-9A-Z]\.\*$")

MAX_RANGE_SIZE = 10_000
"""A range wider than this is almost surely a typo (and would be slow to expand)."""


@attrs.define
class Bindings:
    """Facts resolved from a module, keyed by the AST node they belong to."""

    code_sets: dict[ast.CodeList, frozenset[str]] = attrs.field(factory=dict)
    cents: dict[ast.Money, int] = attrs.field(factory=dict)
    sets_by_name: dict[str, frozenset[str]] = attrs.field(factory=dict)


@attrs.frozen
class Checked:
    """A module that passed every check, with its resolved facts."""

    module: ast.Module
    bindings: Bindings

    @property
    def payer_id(self) -> str:
        assert self.module.header is not None
        return self.module.header.payer_id.value

    @property
    def effective(self) -> tuple[str | None, str | None]:
        """The dates of service the file applies to; None is an open end."""
        header = self.module.header
        assert header is not None
        return (header.effective_from.value if header.effective_from else None,
                header.effective_to.value if header.effective_to else None)

    @property
    def payer_name(self) -> str:
        header = self.module.header
        assert header is not None
        return header.display_name.value if header.display_name else header.payer_id.value


class _Checker:
    def __init__(self, module: ast.Module) -> None:
        self.module = module
        self.diagnostics: list[Diagnostic] = []
        self.bindings = Bindings()
        self.set_defs = {s.name.value: s for s in module.sets}
        self._resolving: list[str] = []

    def error(self, code: str, message: str, span: Span, help: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(code=code, severity=Severity.ERROR, message=message,
                                           span=span, help=help))

    # --- file structure -------------------------------------------------------------

    def run(self) -> None:
        header = self.module.header
        if header is not None and not header.payer_id.value.strip():
            self.error("E105", "the payer id is empty", header.payer_id.span,
                       "give the id that the `payer` column of your sessions uses")
        if header is not None:
            self.date_range(header.effective_from, header.effective_to)
        seen_sets: dict[str, ast.SetDef] = {}
        for set_def in self.module.sets:
            name = set_def.name.value
            if name in seen_sets:
                self.error("E104", f"code set `{name}` is defined twice", set_def.name.span,
                           f"the first definition is on line {seen_sets[name].span.line}")
            else:
                seen_sets[name] = set_def
            self.bindings.sets_by_name[name] = self.codes(set_def.codes)
        seen_rules: dict[str, ast.Rule] = {}
        for rule in self.module.rules:
            if rule.name is not None:
                name = rule.name.value
                if name in seen_rules:
                    self.error("E103", f"rule name `{name}` is used twice", rule.name.span,
                               f"the first rule with this name is on line {seen_rules[name].span.line}")
                else:
                    seen_rules[name] = rule
            self.options(rule)
            self.reason_code(rule.carc, CARC_RE, "CARC", "a claim adjustment reason code such as 45 or B7")
            self.reason_code(rule.rarc, RARC_RE, "RARC", "a remark code such as N130 or M15")
            _check_statement(rule.statement, self)

    def options(self, rule: ast.Rule) -> None:
        for keyword in rule.repeated:
            self.error("E211", f"option `{keyword.value}` is given twice", keyword.span,
                       "keep one; a rule has one value for each option")
        self.date_range(rule.effective_from, rule.effective_to)

    def date_range(self, start: ast.Date | None, end: ast.Date | None) -> None:
        valid = [self.date(d) for d in (start, end) if d is not None]
        if start is not None and end is not None and all(valid) and end.value < start.value:
            self.error("E210", f"the effective range ends ({end.value}) before it starts ({start.value})",
                       start.span.to(end.span), f"swap the dates: effective from {end.value} to {start.value}")

    def date(self, date: ast.Date) -> bool:
        try:
            datetime.date.fromisoformat(date.value)
        except ValueError:
            self.error("E209", f"`{date.value}` is not a calendar date", date.span,
                       "check the month and the day; dates are written YYYY-MM-DD")
            return False
        return True

    def reason_code(self, word: ast.Word | None, pattern: re.Pattern[str], what: str, expected: str) -> None:
        if word is not None and not pattern.match(word.value.upper()):
            self.error("E206", f"`{word.value}` is not a {what}", word.span, f"expected {expected}")

    # --- shared pieces --------------------------------------------------------------

    def codes(self, codes: ast.CodeList | None) -> frozenset[str]:
        """Resolve a code list (memoised per node) and report every bad item in it; a statement
        without its optional list resolves to no codes."""
        if codes is None:
            return frozenset()
        if codes in self.bindings.code_sets:
            return self.bindings.code_sets[codes]
        result: set[str] = set()
        for item in codes.items:
            if isinstance(item, ast.Code):
                if self.code_shape(item):
                    result.add(item.value)
            elif isinstance(item, ast.CodeRange):
                result |= self.code_range(item)
            else:
                result |= self.set_ref(item)
        frozen = frozenset(result)
        self.bindings.code_sets[codes] = frozen
        return frozen

    def code_shape(self, code: ast.Code) -> bool:
        if CODE_RE.match(code.value):
            return True
        help = f"expected {CODE_EXAMPLES}"
        if CODE_RE.match(code.value.upper()):
            help = f"write it in capitals: `{code.value.upper()}`"
        elif code.value.isdigit() and len(code.value) < 5:
            help = "procedure codes have 5 characters, such as 97140, 0042T or S8990"
        self.error("E201", f"`{code.value}` is not a procedure code", code.span, help)
        return False

    def code_range(self, item: ast.CodeRange) -> frozenset[str]:
        low_ok, high_ok = self.code_shape(item.low), self.code_shape(item.high)
        if not (low_ok and high_ok):
            return frozenset()
        low, high = item.low.value, item.high.value
        if code_family(low) != code_family(high) or (low[0].isalpha() and low[0] != high[0]):
            self.error("E203", f"range `{low}-{high}` mixes {code_family(low)} and {code_family(high)} codes",
                       item.span, "write one range per kind of code, separated by commas")
            return frozenset()
        lo, hi = code_number(low), code_number(high)
        if lo > hi:
            self.error("E202", f"range `{low}-{high}` is reversed, so it holds no code", item.span,
                       f"swap the range ends: {high}-{low}")
            return frozenset()
        if hi - lo >= MAX_RANGE_SIZE:
            self.error("E204", f"range `{low}-{high}` holds {hi - lo + 1:,} codes", item.span,
                       f"a range may hold at most {MAX_RANGE_SIZE:,} codes; check the range ends")
            return frozenset()
        return frozenset(code_from_number(low, n) for n in range(lo, hi + 1))

    def set_ref(self, ref: ast.SetRef) -> frozenset[str]:
        set_def = self.set_defs.get(ref.name)
        if set_def is None:
            suggestion = closest(ref.name, self.set_defs)
            if suggestion:
                help = f"did you mean `{suggestion}`?"
            elif CODE_RE.match(ref.name.upper()):
                help = f"write the code in capitals: `{ref.name.upper()}`"
            else:
                help = f"define it first, as in `set {ref.name} = 97124, 97140`"
            self.error("E101", f"unknown code set `{ref.name}`", ref.span, help)
            return frozenset()
        if ref.name in self._resolving:
            cycle = " → ".join(self._resolving[self._resolving.index(ref.name):] + [ref.name])
            self.error("E106", f"code set `{ref.name}` includes itself ({cycle})", ref.span)
            return frozenset()
        self._resolving.append(ref.name)
        try:
            return self.codes(set_def.codes)
        finally:
            self._resolving.pop()

    def money(self, money: ast.Money) -> None:
        if money.amount != money.amount.quantize(money.amount.__class__("0.01")):
            self.error("E205", f"`{money.span.text}` has more than two decimals", money.span,
                       "amounts are in dollars and cents, such as `$45.50`")
            return
        self.bindings.cents[money] = to_cents(money.amount)

    def credentials(self, words: tuple[ast.Word, ...]) -> None:
        for word in words:
            if word.value.upper() not in CREDENTIALS:
                suggestion = closest(word.value, CREDENTIALS)
                known = ", ".join(CREDENTIALS)
                help = f"did you mean `{suggestion}`? known credentials: {known}" if suggestion \
                    else f"known credentials: {known}"
                self.error("E102", f"unknown credential `{word.value}`", word.span, help)

    def diagnosis_patterns(self, words: tuple[ast.Word, ...]) -> None:
        for word in words:
            if not DIAGNOSIS_PATTERN_RE.match(word.value.upper()):
                self.error("E212", f"`{word.value}` is not an ICD-10-CM code or prefix", word.span,
                           "write a code such as M54.50, or a prefix ending in `*` such as M54.5*")

    def modifiers(self, words: tuple[ast.Word, ...]) -> None:
        for word in words:
            if not MODIFIER_RE.match(word.value.upper()):
                self.error("E207", f"`{word.value}` is not a modifier", word.span,
                           "a modifier has two letters or digits, such as 59 or XS")


# --- one check per statement kind -------------------------------------------------------


@functools.singledispatch
def _check_statement(statement: ast.StatementNode, c: _Checker) -> None:
    raise InternalError(f"no check for statement kind `{type(statement).__name__}`")


@_check_statement.register
def _check_only(s: ast.Only, c: _Checker) -> None:
    c.codes(s.codes)


@_check_statement.register
def _check_not_covered(s: ast.NotCovered, c: _Checker) -> None:
    c.codes(s.codes)


@_check_statement.register
def _check_no_same_day(s: ast.NoSameDay, c: _Checker) -> None:
    c.codes(s.codes)
    c.codes(s.other)
    c.modifiers(s.unless)


@_check_statement.register
def _check_only_with(s: ast.OnlyWith, c: _Checker) -> None:
    c.codes(s.codes)
    c.codes(s.other)


@_check_statement.register
def _check_requires_modifier(s: ast.RequiresModifier, c: _Checker) -> None:
    c.modifiers(s.modifiers)
    c.codes(s.codes)
    c.codes(s.other)


@_check_statement.register
def _check_not_payable_by(s: ast.NotPayableBy, c: _Checker) -> None:
    c.credentials(s.credentials)
    c.codes(s.codes)


@_check_statement.register
def _check_max_per_session(s: ast.MaxPerSession, c: _Checker) -> None:
    c.money(s.amount)


@_check_statement.register
def _check_max_units(s: ast.MaxUnits, c: _Checker) -> None:
    if not s.count.value.isdigit():
        c.error("E208", f"`{s.count.value}` is not a whole number of units", s.count.span,
                "write the limit as digits, such as `max 4 units per session`")
    c.codes(s.codes)


@_check_statement.register
def _check_requires_prescription(s: ast.RequiresPrescription, c: _Checker) -> None:
    c.credentials(s.prescribers)
    c.codes(s.codes)


@_check_statement.register
def _check_requires_diagnosis(s: ast.RequiresDiagnosis, c: _Checker) -> None:
    c.diagnosis_patterns(s.patterns)
    c.codes(s.codes)


@_check_statement.register
def _check_not_covered_diagnosis(s: ast.NotCoveredDiagnosis, c: _Checker) -> None:
    c.diagnosis_patterns(s.patterns)
    c.codes(s.codes)


@_check_statement.register
def _check_requires_credential(s: ast.RequiresCredential, c: _Checker) -> None:
    c.credentials(s.credentials)
    c.codes(s.codes)


def check(module: ast.Module) -> tuple[Bindings, list[Diagnostic]]:
    """Run every check on a parsed module; diagnostics come back sorted by position."""
    checker = _Checker(module)
    checker.run()
    return checker.bindings, sorted(checker.diagnostics, key=lambda d: d.sort_key)
