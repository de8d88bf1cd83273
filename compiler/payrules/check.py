"""`ast.Module` → diagnostics, and the resolved facts (`Bindings`) that code generation needs.

Checks append diagnostics; they never print or raise. Each statement kind has one
`_check_<kind>` function below.
"""

from __future__ import annotations

import bisect
import datetime
import functools
import re
from collections.abc import Iterable, Iterator, Mapping, Set
from decimal import Decimal

import attrs

from payrules import ast, ncci
from payrules.diagnostics import Diagnostic, InternalError, Severity, closest, quoted
from payrules.domain import (
    CARC_RE,
    CODE_EXAMPLES,
    CODE_RE,
    CREDENTIALS,
    MAX_MONEY_TEXT,
    MODIFIER_RE,
    RARC_RE,
    TIME_RULES,
    code_family,
    code_from_number,
    code_number,
    money_too_large,
    to_cents,
)
from payrules.conditions import Fields, fields_in
from payrules.diagnosis_check import DiagnosisChecks
from payrules.diagnosis_sets import Diagnoses
from payrules.named import NamedValues
from payrules.reasons import NEEDS_REMARK, REMARK_EXAMPLES, rule_reasons
from payrules.runtime import code_shape
from payrules.source import Span

MONTH_NAMES = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
               "october", "november", "december")
MONTHS = {name[:3]: number for number, name in enumerate(MONTH_NAMES, start=1)}

PERIOD_WORDS = {"unit": "unit", "line": "line", "session": "session", "day": "day", "week": "week",
                "month": "month", "year": "calendar year", "plan_year": "plan year from July 1",
                "days": "30 days", "lifetime": "lifetime"}
ALL_PERIODS = frozenset(PERIOD_WORDS)
HISTORY_PERIODS = ALL_PERIODS - {"unit", "line", "session"}
"""Periods that count earlier sessions of the patient (and `--history`)."""

MAX_DAYS = 3660

MAX_RANGE_SIZE = 10_000
"""A range wider than this is almost surely a typo (and would be slow to expand)."""

MAX_COUNT = 100_000
"""The largest limit of units, visits or minutes. Far above any payer's limit, and it keeps
every number a rule file holds small enough to read and to compute with."""

MAX_PERCENT = Decimal(1000)
"""The largest share of an amount or a charge: 1,000% (fee schedules pay up to a few times a
base rate; more is a typing slip)."""

MAX_NAME_LENGTH = 200
"""The longest name of a code set or rule, and the longest payer id, in characters."""


def long_name(name: str, span: Span, what: str) -> Diagnostic | None:
    """The error for a name longer than `MAX_NAME_LENGTH`, if it is; shared with the linker."""
    if len(name) <= MAX_NAME_LENGTH:
        return None
    return Diagnostic(code="E111", severity=Severity.ERROR, message=f"{what} is too long ({len(name):,} characters)",
                      span=span, help=f"a name has at most {MAX_NAME_LENGTH} characters")


Run = tuple[int, int]
"""The numbers of the first and last code of consecutive codes of one shape."""


class Codes:
    """Procedure codes as a rule file names them, kept as runs, never listed one by one: for
    each code shape (`#####`, `####T`, `S####`; see `runtime.code_shape`), the sorted,
    disjoint, non-adjacent runs of code numbers. A range of 10,000 codes is one run, so
    checking, linting and generating code stay fast and small however wide the ranges are.

    A set of codes as the checks need it: membership, size, iteration in code order, union,
    intersection and difference, and equality with another `Codes` or any set of strings."""

    __slots__ = ("runs", "_size")

    def __init__(self, runs: Mapping[str, Iterable[Run]] | None = None) -> None:
        self.runs: dict[str, tuple[Run, ...]] = {}
        for shape in sorted(runs or {}):
            merged: list[list[int]] = []
            for low, high in sorted((runs or {})[shape]):
                if merged and low <= merged[-1][1] + 1:
                    merged[-1][1] = max(merged[-1][1], high)
                else:
                    merged.append([low, high])
            if merged:
                self.runs[shape] = tuple((low, high) for low, high in merged)
        self._size = sum(high - low + 1 for found in self.runs.values() for low, high in found)

    @classmethod
    def of(cls, codes: Iterable[str]) -> Codes:
        """Codes given one by one (each already a valid procedure code)."""
        runs: dict[str, list[Run]] = {}
        for code in codes:
            number = code_number(code)
            runs.setdefault(code_shape(code), []).append((number, number))
        return cls(runs)

    @classmethod
    def between(cls, low: str, high: str) -> Codes:
        """The codes from `low` to `high`, two codes of one shape."""
        return cls({code_shape(low): [(code_number(low), code_number(high))]})

    @staticmethod
    def union(parts: Iterable[Codes]) -> Codes:
        runs: dict[str, list[Run]] = {}
        for part in parts:
            for shape, found in part.runs.items():
                runs.setdefault(shape, []).extend(found)
        return Codes(runs)

    @staticmethod
    def code(shape: str, number: int) -> str:
        """The code of `shape` whose number is `number`: ("####T", 42) → `0042T`."""
        return code_from_number(shape.replace("#", "0"), number)

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return bool(self._size)

    def __contains__(self, code: object) -> bool:
        if not isinstance(code, str):
            return False
        found = self.runs.get(code_shape(code))
        if not found:
            return False
        number = code_number(code)
        place = bisect.bisect_right(found, (number, float("inf")))
        return place > 0 and found[place - 1][0] <= number <= found[place - 1][1]

    def __iter__(self) -> Iterator[str]:
        for shape, found in self.runs.items():
            for low, high in found:
                for number in range(low, high + 1):
                    yield self.code(shape, number)

    def __or__(self, other: Codes) -> Codes:
        return Codes.union((self, other))

    def __and__(self, other: Codes) -> Codes:
        runs: dict[str, list[Run]] = {}
        for shape, mine in self.runs.items():
            theirs = other.runs.get(shape, ())
            i = j = 0
            while i < len(mine) and j < len(theirs):
                low, high = max(mine[i][0], theirs[j][0]), min(mine[i][1], theirs[j][1])
                if low <= high:
                    runs.setdefault(shape, []).append((low, high))
                if mine[i][1] < theirs[j][1]:
                    i += 1
                else:
                    j += 1
        return Codes(runs)

    def __sub__(self, other: Codes) -> Codes:
        runs: dict[str, list[Run]] = {}
        for shape, mine in self.runs.items():
            theirs = other.runs.get(shape, ())
            kept = runs.setdefault(shape, [])
            for low, high in mine:
                start = low
                for cut_low, cut_high in theirs:
                    if cut_high < start or cut_low > high:
                        continue
                    if cut_low > start:
                        kept.append((start, cut_low - 1))
                    start = max(start, cut_high + 1)
                if start <= high:
                    kept.append((start, high))
        return Codes(runs)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Codes):
            return self.runs == other.runs
        if isinstance(other, Set):
            return len(other) == self._size and all(code in self for code in other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self.runs.items()))

    def __repr__(self) -> str:
        return f"Codes({self.describe()!r})"

    def describe(self) -> str:
        """`97124, 97140, 98940-98943`: in code order, runs of three or more codes as ranges."""
        parts: list[tuple[str, str]] = []
        for shape, found in self.runs.items():
            for low, high in found:
                first, last = self.code(shape, low), self.code(shape, high)
                if high - low >= 2:
                    parts.append((first, f"{first}-{last}"))
                else:
                    parts.extend((self.code(shape, n),) * 2 for n in range(low, high + 1))
        return ", ".join(text for _, text in sorted(parts))

    def split(self, longest: int) -> tuple[frozenset[str], tuple[tuple[str, str, str], ...]]:
        """The codes of runs shorter than `longest`, listed; and each longer run as (shape,
        first code, last code), the form of `runtime.CodeSet`."""
        listed: set[str] = set()
        ranges: list[tuple[str, str, str]] = []
        for shape, found in self.runs.items():
            for low, high in found:
                if high - low + 1 >= longest:
                    ranges.append((shape, self.code(shape, low), self.code(shape, high)))
                else:
                    listed.update(self.code(shape, n) for n in range(low, high + 1))
        return frozenset(listed), tuple(ranges)


NO_CODES = Codes()


@attrs.define
class Bindings:
    """Facts resolved from a module, keyed by the AST node they belong to."""

    code_sets: dict[ast.CodeList, Codes] = attrs.field(factory=dict)
    cents: dict[ast.Money | ast.NameRef, int] = attrs.field(factory=dict)
    sets_by_name: dict[str, Codes] = attrs.field(factory=dict)
    diagnosis_sets: dict[ast.DiagnosisList | ast.CodeList, Diagnoses] = attrs.field(factory=dict)
    """The diagnoses of each diagnosis list (and of each set of diagnosis set names only)."""
    diagnoses_by_name: dict[str, Diagnoses] = attrs.field(factory=dict)
    """The diagnosis sets, by name (the procedure code sets are in `sets_by_name`)."""
    counts: dict[ast.NameRef, int] = attrs.field(factory=dict)
    """The whole number each use of a `let` name stands for."""
    shares: dict[ast.NameRef, Decimal] = attrs.field(factory=dict)
    """The percentage each use of a `let` name stands for (`75` for 75%)."""
    lets: dict[str, ast.LetDef] = attrs.field(factory=dict)
    """The `let` definitions by name (the first, when a name is given twice)."""
    ncci: dict[ast.StatementNode, list[ncci.PtpRow] | list[ncci.MueRow]] = attrs.field(factory=dict)
    """The rows of each `apply ncci` statement's tables, in file order."""
    conditions: dict[int, tuple[str, str, tuple[str, ...]]] = attrs.field(factory=dict)
    """By rule position: its `when`/`unless` as a Python expression, in plain words, and the
    fields it reads (see `conditions.py`)."""
    fields: Fields | None = None
    """The declared fields, and which fields the conditions use."""


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


class _Checker(DiagnosisChecks, NamedValues):
    most_count = MAX_COUNT

    def __init__(self, module: ast.Module) -> None:
        self.module = module
        self.diagnostics: list[Diagnostic] = []
        self.bindings = Bindings()
        self.set_defs = {s.name.value: s for s in module.sets}
        self.let_defs: dict[str, ast.LetDef] = {}
        for let in module.lets:
            self.let_defs.setdefault(let.name.value, let)
        self.bindings.lets = self.let_defs
        self._resolving: dict[str, None] = {}
        """The set names being resolved, innermost last (a dict: an ordered stack with fast lookup)."""
        self._kinds: dict[str, str] = {}
        """What each set holds, once found: `codes` or `diagnoses` (see `set_kind`)."""

    def error(self, code: str, message: str, span: Span, help: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(code=code, severity=Severity.ERROR, message=message,
                                           span=span, help=help))

    def warning(self, code: str, message: str, span: Span, help: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(code=code, severity=Severity.WARNING, message=message,
                                           span=span, help=help))

    # --- file structure -------------------------------------------------------------

    def run(self) -> None:
        header = self.module.header
        if header is not None and not header.payer_id.value.strip():
            self.error("E105", "the payer id is empty", header.payer_id.span,
                       "give the id that the `payer` column of your sessions uses")
        if header is not None:
            self.name(header.payer_id, "the payer id")
        if header is not None:
            self.date_range(header.effective_from, header.effective_to)
        seen_sets: dict[str, ast.SetDef] = {}
        for set_def in self.module.sets:
            name = set_def.name.value
            self.name(set_def.name, "the code set name")
            if name in seen_sets:
                self.error("E104", f"code set `{name}` is defined twice", set_def.name.span,
                           f"the first definition is {seen_sets[name].span.seen_from(set_def.span)}")
            else:
                seen_sets[name] = set_def
            if self.set_kind(name) == "diagnoses":
                self.bindings.diagnoses_by_name[name] = self.diagnoses(set_def.codes)
            else:
                assert isinstance(set_def.codes, ast.CodeList)
                self.bindings.sets_by_name[name] = self.codes(set_def.codes)
        self.lets()
        self.bindings.fields = Fields(self.module, self.diagnostics.append)
        seen_rules: dict[str, ast.Rule] = {}
        for position, rule in enumerate(self.module.rules):
            if rule.name is not None:
                name = rule.name.value
                self.name(rule.name, "the rule name")
                if name in seen_rules:
                    first = seen_rules[name].span
                    help = f"the first rule with this name is {first.seen_from(rule.span)}"
                    if first.file != rule.span.file:
                        help += "; to replace an included rule, write `override` before its name"
                    self.error("E103", f"rule name `{name}` is used twice", rule.name.span, help)
                else:
                    seen_rules[name] = rule
            self.options(rule)
            self.reason_code(rule.carc, CARC_RE, "CARC", "a claim adjustment reason code such as 45 or B7")
            self.reason_code(rule.rarc, RARC_RE, "RARC", "a remark code such as N130 or M15")
            self.remark_needed(rule)
            _check_statement(rule.statement, self)
            self.condition(position, rule)
        fields = self.bindings.fields
        for name, field in fields.declared.items():
            if name not in fields.used:
                self.warning("W140", f"field `{name}` is declared but no rule uses it", field.name.span,
                             f"use it in a condition, as in `... when {name} ...`, or remove the declaration")

    def condition(self, position: int, rule: ast.Rule) -> None:
        """A rule's `when` and `unless`, as one test of the line judged."""
        fields = self.bindings.fields
        assert fields is not None
        parts: list[tuple[str, str]] = []
        for keyword, condition in (("when", rule.when), ("unless", rule.unless)):
            if condition is None:
                continue
            found = fields.condition(condition)
            if found is None:
                return
            expression, words = found
            parts.append((expression if keyword == "when" else f"not ({expression})", f"{keyword} {words}"))
        if parts:
            names = [n.lower() for c in (rule.when, rule.unless) if c is not None for n in fields_in(c)
                     if fields.type_of(n) is not None]
            self.bindings.conditions[position] = (" and ".join(f"({e})" for e, _ in parts),
                                                  " and ".join(w for _, w in parts), tuple(dict.fromkeys(names)))

    def too_long(self, name: str, span: Span, what: str) -> bool:
        """Report a name longer than `MAX_NAME_LENGTH`; True when it is one."""
        diagnostic = long_name(name, span, what)
        if diagnostic is not None:
            self.diagnostics.append(diagnostic)
        return diagnostic is not None

    def name(self, word: ast.Word, what: str) -> None:
        diagnostic = long_name(word.value, word.span, what)
        if diagnostic is not None:
            self.diagnostics.append(diagnostic)

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

    def remark_needed(self, rule: ast.Rule) -> None:
        """W112 for a `carc` whose X12 wording asks for a remark code, given without one."""
        carc, rarc = rule_reasons(rule)
        if rule.carc is not None and rarc is None and carc in NEEDS_REMARK:
            self.warning("W112", f"CARC {carc} needs a remark code, and this rule gives none", rule.carc.span,
                         "add the remark code the payer sends with it, as in "
                         f"`carc {carc} rarc {REMARK_EXAMPLES[carc]}`")

    def reason_code(self, word: ast.Word | None, pattern: re.Pattern[str], what: str, expected: str) -> None:
        if word is not None and not pattern.match(word.value.upper()):
            self.error("E206", f"{quoted(word.value)} is not a {what}", word.span, f"expected {expected}")

    # --- shared pieces --------------------------------------------------------------

    def codes(self, codes: ast.CodeList | None) -> Codes:
        """Resolve a code list (memoised per node) and report every bad item in it; a statement
        without its optional list resolves to no codes.

        Sets may name sets to any depth, so the lists being resolved are kept on an explicit
        stack rather than on Python's call stack (which a long chain of sets would exhaust).
        """
        if codes is None:
            return NO_CODES
        if codes in self.bindings.code_sets:
            return self.bindings.code_sets[codes]
        # Each frame: a list, its items still to read, the codes found so far, and whether it
        # was entered through a set name (which `_resolving` then holds).
        stack: list[tuple[ast.CodeList, Iterator[ast.CodeItem], list[Codes], bool]] = [
            (codes, iter(codes.items), [], False)]
        resolved = NO_CODES
        while stack:
            node, items, found, named = stack[-1]
            for item in items:
                if isinstance(item, ast.Code):
                    if self.code_shape(item):
                        found.append(Codes.of((item.value,)))
                elif isinstance(item, ast.CodeRange):
                    found.append(self.code_range(item))
                else:
                    inner = self.set_ref(item)
                    if isinstance(inner, ast.CodeList):
                        stack.append((inner, iter(inner.items), [], True))
                        break
                    found.append(inner)
            else:
                stack.pop()
                resolved = Codes.union(found)
                self.bindings.code_sets[node] = resolved
                if named:
                    self._resolving.popitem()
                if stack:
                    stack[-1][2].append(resolved)
        return resolved

    def code_shape(self, code: ast.Code) -> bool:
        if CODE_RE.match(code.value):
            return True
        help = f"expected {CODE_EXAMPLES}"
        if CODE_RE.match(code.value.upper()):
            help = f"write it in capitals: `{code.value.upper()}`"
        elif code.value.isdigit() and len(code.value) < 5:
            help = "procedure codes have 5 characters, such as 97140, 0042T or S8990"
        self.error("E201", f"{quoted(code.value)} is not a procedure code", code.span, help)
        return False

    def code_range(self, item: ast.CodeRange) -> Codes:
        low_ok, high_ok = self.code_shape(item.low), self.code_shape(item.high)
        if not (low_ok and high_ok):
            return NO_CODES
        low, high = item.low.value, item.high.value
        if code_family(low) != code_family(high) or (low[0].isalpha() and low[0] != high[0]):
            self.error("E203", f"range `{low}-{high}` mixes {code_family(low)} and {code_family(high)} codes",
                       item.span, "write one range per kind of code, separated by commas")
            return NO_CODES
        lo, hi = code_number(low), code_number(high)
        if lo > hi:
            self.error("E202", f"range `{low}-{high}` is reversed, so it holds no code", item.span,
                       f"swap the range ends: {high}-{low}")
            return NO_CODES
        if hi - lo >= MAX_RANGE_SIZE:
            self.error("E204", f"range `{low}-{high}` holds {hi - lo + 1:,} codes", item.span,
                       f"a range may hold at most {MAX_RANGE_SIZE:,} codes; check the range ends")
            return NO_CODES
        return Codes.between(low, high)

    def set_ref(self, ref: ast.SetRef) -> Codes | ast.CodeList:
        """The codes of a set name, or the set's own list when it still has to be resolved (the
        caller resolves it, with the name pushed on `_resolving`)."""
        diagnostic = long_name(ref.name, ref.span, "the code set name")
        if diagnostic is not None:
            self.diagnostics.append(diagnostic)
            return NO_CODES
        set_def = self.set_defs.get(ref.name)
        if set_def is None:
            suggestion = closest(ref.name, self.set_defs)
            if ref.name in self.let_defs:
                help = f"`{ref.name}` is a `let` name, for an amount, share or number; a code list needs codes or sets"
            elif suggestion:
                help = f"did you mean `{suggestion}`?"
            elif CODE_RE.match(ref.name.upper()):
                help = f"write the code in capitals: `{ref.name.upper()}`"
            else:
                help = f"define it first, as in `set {ref.name} = 97124, 97140`"
            self.error("E101", f"unknown code set `{ref.name}`", ref.span, help)
            return NO_CODES
        if self.set_kind(ref.name) == "diagnoses":
            self.error("E231", f"`{ref.name}` is a set of diagnoses; procedure codes go here", ref.span,
                       "a diagnosis set goes after `requires diagnosis`, `requires primary diagnosis` or "
                       "`not covered with diagnosis`")
            return NO_CODES
        if ref.name in self._resolving:
            names = list(self._resolving)
            names = names[names.index(ref.name):] + [ref.name]
            if len(names) > 8:  # a long cycle is shown by its ends
                names = [*names[:3], f"… {len(names) - 6:,} more …", *names[-3:]]
            cycle = " → ".join(names)
            self.error("E106", f"code set `{ref.name}` includes itself ({cycle})", ref.span)
            return NO_CODES
        assert isinstance(set_def.codes, ast.CodeList)
        if set_def.codes in self.bindings.code_sets:
            return self.bindings.code_sets[set_def.codes]
        self._resolving[ref.name] = None
        return set_def.codes

    def money(self, money: ast.Money | ast.NameRef) -> None:
        if isinstance(money, ast.NameRef):
            cents = self.named(money, "money")
            if isinstance(cents, int):
                self.bindings.cents[money] = cents
            return
        # Checked before the decimals: an amount of 28 digits or more cannot be rounded exactly.
        if money_too_large(money.amount):
            self.error("E215", f"the amount {quoted(money.span.text)} is too large", money.span,
                       f"amounts go up to {MAX_MONEY_TEXT}")
            return
        if money.amount != money.amount.quantize(Decimal("0.01")):
            self.error("E205", f"{quoted(money.span.text)} has more than two decimals", money.span,
                       "amounts are in dollars and cents, such as `$45.50`")
            return
        self.bindings.cents[money] = to_cents(money.amount)

    def percent(self, amount: ast.Amount) -> None:
        if amount.share is not None:
            value = self.named(amount.share, "share")
            if isinstance(value, Decimal):
                self.bindings.shares[amount.share] = value
            return
        assert amount.percent is not None
        text = amount.span.text.split("%", 1)[0] + "%"
        self.share(amount.percent, Span(amount.span.source, amount.span.start, amount.span.start + len(text)),
                   amount.span)

    @staticmethod
    def share_ok(percent: Decimal) -> bool:
        return percent <= MAX_PERCENT and percent == percent.quantize(Decimal("0.01"))

    def share(self, percent: Decimal, span: Span, decimals_span: Span | None = None) -> None:
        """A percentage as written: at most `MAX_PERCENT`, with at most two decimals."""
        if percent > MAX_PERCENT:
            self.error("E215", f"the share {quoted(span.text)} is too large", span,
                       f"a share goes up to {MAX_PERCENT:,}%")
            return
        if percent != percent.quantize(Decimal("0.01")):
            self.error("E205", f"`{percent}%` has more than two decimals", decimals_span or span,
                       "write a percentage such as `75%` or `62.5%`")

    def count(self, count: ast.Code | ast.NameRef, what: str, example: str, most: int = MAX_COUNT) -> int | None:
        if isinstance(count, ast.NameRef):
            value = self.named(count, "count")
            if not isinstance(value, int):
                return None
            if value > most:
                self.error("E208", f"a period of `{count.name}` ({value:,}) days is out of range", count.span,
                           f"give between 1 and {most:,} days")
                return None
            self.bindings.counts[count] = value
            if value == 0 and most == MAX_COUNT:
                self.zero_limit(count.span, what)
            return value
        return self.literal_count(count, what, example, most)

    def literal_count(self, count: ast.Code, what: str, example: str, most: int = MAX_COUNT) -> int | None:
        """A limit written as a whole number; a limit of zero is a warning (nothing would be paid).
        A number of days (`most` below `MAX_COUNT`) is a period's length, not a limit: zero days
        is an error of the period (see `period`), never the W104 of a limit of zero."""
        if not (count.value.isascii() and count.value.isdigit()):
            self.error("E208", f"{quoted(count.value)} is not a whole number of {what}", count.span,
                       f"write the limit as digits, such as `{example}`")
            return None
        # Compared as text first: a number of thousands of digits is refused before `int()`.
        digits = count.value.lstrip("0")
        if len(digits) > len(str(most)) or int(digits or "0") > most:
            number = count.value if len(count.value) <= 24 else quoted(count.value)
            if most == MAX_COUNT:
                self.error("E215", f"a limit of {number} {what} is too large", count.span,
                           f"a limit goes up to {most:,} {what}")
            else:
                self.error("E208", f"a period of {number} days is out of range", count.span,
                           f"give between 1 and {most:,} days")
            return None
        value = int(digits or "0")
        if value == 0 and most == MAX_COUNT:
            self.zero_limit(count.span, what)
        return value

    def zero_limit(self, span: Span, what: str) -> None:
        self.warning("W104", f"a limit of {' '.join((span.text, what)).strip()} pays nothing", span,
                     "to exclude codes, write `not covered ...`; otherwise give the limit the payer sets")

    def period(self, period: ast.Period, allowed: frozenset[str]) -> None:
        if period.kind not in allowed:
            choices = ", ".join(f"`per {PERIOD_WORDS[k]}`" for k in sorted(allowed, key=list(PERIOD_WORDS).index))
            self.error("E213", f"`per {period.span.text}` does not fit this limit", period.span,
                       f"use one of {choices}")
            return
        if period.days is not None:
            if self.count(period.days, "days", "per 30 days", most=MAX_DAYS) == 0:
                self.error("E208", f"a period of {period.days.span.text} days is out of range", period.days.span,
                           f"give between 1 and {MAX_DAYS:,} days")
        if period.month is not None and period.day is not None:
            month = MONTHS.get(period.month.value.lower()[:3]) if len(period.month.value) >= 3 else None
            if month is None or not period.month.value.lower() in (MONTH_NAMES[month - 1],
                                                                   MONTH_NAMES[month - 1][:3]):
                suggestion = closest(period.month.value.lower(), MONTH_NAMES)
                help = f"did you mean `{suggestion.capitalize()}`?" if suggestion else "write a month such as July"
                self.error("E209", f"{quoted(period.month.value)} is not a month", period.month.span, help)
                return
            day = period.day.value
            try:
                # At most two digits after leading zeros: a longer text is no day of a month.
                if len(day.lstrip("0")) > 2:
                    raise ValueError(day)
                datetime.date(2001, month, int(day))
            except ValueError:
                shown_day = day if len(day) <= 24 else quoted(day)
                self.error("E209", f"{period.month.value.capitalize()} has no day {shown_day}",
                           period.day.span, "give the day of the month the plan year starts")

    def credentials(self, words: tuple[ast.Word, ...]) -> None:
        for word in words:
            if word.value.upper() not in CREDENTIALS:
                suggestion = closest(word.value, CREDENTIALS)
                known = ", ".join(CREDENTIALS)
                help = f"did you mean `{suggestion}`? known credentials: {known}" if suggestion \
                    else f"known credentials: {known}"
                self.error("E102", f"unknown credential {quoted(word.value)}", word.span, help)

    def modifiers(self, words: tuple[ast.Word, ...]) -> None:
        for word in words:
            if not MODIFIER_RE.match(word.value.upper()):
                self.error("E207", f"{quoted(word.value)} is not a modifier", word.span,
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
def _check_max_amount(s: ast.MaxAmount, c: _Checker) -> None:
    if s.amount.money is not None:
        c.money(s.amount.money)
    if s.amount.percent is not None or s.amount.share is not None:
        c.percent(s.amount)
    if s.amount.money is None and s.period.kind != "line":
        c.error("E213", "a share of the charge is a limit for each line", s.period.span,
                f"write `max {s.amount.span.text} for ...` without `per {s.period.span.text}`")
    else:
        c.period(s.period, ALL_PERIODS)
    c.codes(s.codes)
    share = c.bindings.shares.get(s.amount.share) if s.amount.share is not None else s.amount.percent
    if (s.amount.money is not None and c.bindings.cents.get(s.amount.money) == 0) or share == 0:
        c.zero_limit(s.amount.span, "")


@_check_statement.register
def _check_max_units(s: ast.MaxUnits, c: _Checker) -> None:
    c.count(s.count, "units", f"max 4 units per {s.period.span.text}")
    c.period(s.period, ALL_PERIODS - {"unit"})
    c.codes(s.codes)


@_check_statement.register
def _check_max_visits(s: ast.MaxVisits, c: _Checker) -> None:
    c.count(s.count, "visits", f"max 12 visits per {s.period.span.text}")
    c.period(s.period, HISTORY_PERIODS)
    c.codes(s.codes)


@_check_statement.register
def _check_max_minutes(s: ast.MaxMinutes, c: _Checker) -> None:
    c.count(s.count, "minutes", "max 60 minutes per session")
    c.period(s.period, frozenset({"session"}))
    c.codes(s.codes)


@_check_statement.register
def _check_time_rule(s: ast.TimeRule, c: _Checker) -> None:
    if s.method.value.lower() not in TIME_RULES:
        suggestion = closest(s.method.value.lower(), TIME_RULES)
        help = f"did you mean `{suggestion}`? " if suggestion else ""
        c.error("E214", f"unknown time rule {quoted(s.method.value)}", s.method.span,
                help + "write `cms` (CMS 8-minute rule, minutes pooled) or `ama` (AMA midpoint rule, per code)")
    c.codes(s.codes)


@_check_statement.register
def _check_one_of(s: ast.OneOf, c: _Checker) -> None:
    c.codes(s.codes)
    c.modifiers(s.unless)


@_check_statement.register
def _check_bundled(s: ast.Bundled, c: _Checker) -> None:
    c.codes(s.codes)
    c.codes(s.other)


@_check_statement.register
def _check_no_duplicate(s: ast.NoDuplicate, c: _Checker) -> None:
    c.codes(s.codes)


@_check_statement.register
def _check_requires_prescription(s: ast.RequiresPrescription, c: _Checker) -> None:
    c.credentials(s.prescribers)
    c.codes(s.codes)


@_check_statement.register
def _check_requires_diagnosis(s: ast.RequiresDiagnosis, c: _Checker) -> None:
    c.diagnoses(s.diagnoses)
    c.codes(s.codes)


@_check_statement.register
def _check_not_covered_diagnosis(s: ast.NotCoveredDiagnosis, c: _Checker) -> None:
    c.diagnoses(s.diagnoses)
    c.codes(s.codes)


@_check_statement.register
def _check_requires_credential(s: ast.RequiresCredential, c: _Checker) -> None:
    c.credentials(s.credentials)
    c.codes(s.codes)


@_check_statement.register
def _check_ncci_ptp(s: ast.NcciPtp, c: _Checker) -> None:
    rows, diagnostics = ncci.ptp_rows(s)
    c.diagnostics += diagnostics
    c.bindings.ncci[s] = rows


@_check_statement.register
def _check_ncci_mue(s: ast.NcciMue, c: _Checker) -> None:
    rows, diagnostics = ncci.mue_rows(s)
    c.diagnostics += diagnostics
    c.bindings.ncci[s] = rows


def check(module: ast.Module) -> tuple[Bindings, list[Diagnostic]]:
    """Run every check on a parsed module; diagnostics come back sorted by position."""
    checker = _Checker(module)
    checker.run()
    # A set reached again inside its own cycle reports its earlier items twice; keep each once.
    unique = dict.fromkeys(checker.diagnostics)
    return checker.bindings, sorted(unique, key=lambda d: d.sort_key)
