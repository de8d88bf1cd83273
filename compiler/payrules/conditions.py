"""Declared fields (`field accident_date: date per session`) and `when` / `unless` conditions:
their checks, the Python expression a condition becomes, and its plain words.

A condition is judged on each line a rule looks at: `when C` keeps the lines for which C holds,
`unless C` leaves them out. It reads the line's own facts (built-in fields such as the date of
service or the place of service, and the declared fields of the file), never other lines'.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterator
from typing import NamedTuple

from payrules import ast
from payrules.diagnostics import Diagnostic, Severity, closest, quoted
from payrules.domain import (
    CARC_RE,
    CODE_EXAMPLES,
    CODE_RE,
    CREDENTIALS,
    MODIFIER_RE,
    RARC_RE,
    money_too_large,
    parse_money,
    to_cents,
)
from payrules.runtime import add_days
from payrules.source import Span

FIELD_TYPES = ("date", "code", "text", "number", "money", "yes/no")

MAX_DEPTH = 4
"""How deeply `and`, `or` and parentheses may nest in one condition."""

MAX_COMPARISONS = 32
"""The most comparisons one condition may hold."""

MAX_VALUES = 1_000
"""The most values of one `in (...)` list."""

MAX_SHIFT_DAYS = 3660
"""The most days a date may be moved by (`accident_date + 14 days`)."""

MAX_NUMBER = 999_999_999
"""The largest number a condition compares with (as the largest units or minutes)."""

NEEDS_REMARK = frozenset({"16", "96", "234"})
"""CARCs that a payer must send with at least one remark code (RARC)."""


class BuiltIn(NamedTuple):
    type: str
    expression: str
    """Python that reads it in generated code (`line` is the line judged)."""
    words: str
    missing: bool = False
    """Whether a line may lack it (then, when a condition needs it, the line is not judged)."""


BUILT_INS: dict[str, BuiltIn] = {
    "date": BuiltIn("date", "line.date", "the date of service"),
    "code": BuiltIn("code", "line.code", "the procedure code"),
    "units": BuiltIn("number", "line.units", "the units billed"),
    "minutes": BuiltIn("number", "line.minutes", "the minutes", missing=True),
    "charge": BuiltIn("money", "line.charge", "the charge"),
    "credential": BuiltIn("code", "line.provider_credential", "the provider's credential"),
    "place_of_service": BuiltIn("code", "line.place_of_service", "the place of service", missing=True),
    "first_visit_date": BuiltIn("date", "fv", "the date of the patient's first visit with this payer"),
}
"""Fields every session has, usable in conditions without a declaration."""

ORDERED = frozenset({"date", "number", "money"})
"""Types whose values have an order (`<`, `>=` ...)."""

_OP_WORDS = {"=": "is", "!=": "is not", "<": "is less than", "<=": "is at most", ">": "is more than",
             ">=": "is at least"}
_DATE_OP_WORDS = {"=": "is", "!=": "is not", "<": "is before", "<=": "is on or before", ">": "is after",
                  ">=": "is on or after"}
_TYPE_WORDS = {"date": "a date", "code": "a code", "text": "a text", "number": "a number", "money": "an amount",
               "yes/no": "a yes/no value"}


def field_words(name: str) -> str:
    """`accident_date` → `the accident date`; a built-in field's own words."""
    built_in = BUILT_INS.get(name)
    return built_in.words if built_in else "the " + name.replace("_", " ")


# --- checking -----------------------------------------------------------------------------


class _Typed(NamedTuple):
    type: str | None
    """None when the value could not be typed (an error was reported)."""
    expression: str
    words: str
    field: str | None = None


class Fields:
    """The declared fields of a module, checked; and what its conditions use."""

    def __init__(self, module: ast.Module, report: Callable[[Diagnostic], None]) -> None:
        self.report = report
        self.declared: dict[str, ast.FieldDef] = {}
        self.used: dict[str, None] = {}
        """Field names the conditions use (declared or built in), in order of first use."""
        for field in module.fields:
            self._declare(field)

    def error(self, code: str, message: str, span: Span, help: str | None = None) -> None:
        self.report(Diagnostic(code=code, severity=Severity.ERROR, message=message, span=span, help=help))

    def _declare(self, field: ast.FieldDef) -> None:
        # Field names ignore case, as the input's column names and keys do.
        name = field.name.value.lower()
        if name.lower() in BUILT_INS or name.lower() in _INPUT_FIELDS:
            self.error("E240", f"`{name}` is a built-in field", field.name.span,
                       "conditions can use it without a declaration; give a declared field another name")
            return
        if name in self.declared:
            first = self.declared[name].span
            self.error("E240", f"field `{name}` is declared twice", field.name.span,
                       f"the first declaration is {first.seen_from(field.span)}")
            return
        if len(name) > 64:
            self.error("E240", f"the field name is too long ({len(name):,} characters)", field.name.span,
                       "a field name has at most 64 characters")
            return
        kind = field.type.value.lower()
        if kind not in FIELD_TYPES:
            suggestion = closest(kind, FIELD_TYPES)
            help = f"did you mean `{suggestion}`? " if suggestion else ""
            self.error("E241", f"unknown field type {quoted(field.type.value)}", field.type.span,
                       help + "a field is a date, code, text, number, money or yes/no")
            return
        for word, pattern, what in ((field.carc, CARC_RE, "CARC"), (field.rarc, RARC_RE, "RARC")):
            if word is not None and not pattern.match(word.value.upper()):
                self.error("E206", f"{quoted(word.value)} is not a {what}", word.span,
                           "expected a claim adjustment reason code such as 16" if what == "CARC"
                           else "expected a remark code such as N130")
                return
        carc = field.carc.value.upper() if field.carc is not None else "16"
        if field.missing == "deny" and carc in NEEDS_REMARK and field.rarc is None:
            self.error("E242", f"CARC {carc} needs a remark code (RARC)", field.span,
                       f"add the RARC your payer sends for a missing {name.replace('_', ' ')}, "
                       "as in `if missing deny carc 16 rarc ...`")
            return
        self.declared[name] = field

    def type_of(self, name: str) -> str | None:
        name = name.lower()
        built_in = BUILT_INS.get(name)
        if built_in is not None:
            return built_in.type
        field = self.declared.get(name)
        return field.type.value.lower() if field is not None else None

    def expression_of(self, name: str) -> str:
        name = name.lower()
        built_in = BUILT_INS.get(name)
        return built_in.expression if built_in is not None else f"line.facts[{name!r}]"

    # --- conditions -----------------------------------------------------------------------

    def condition(self, condition: ast.Condition) -> tuple[str, str] | None:
        """The Python expression and the plain words of a condition, or None after an error."""
        comparisons = sum(1 for _ in _leaves(condition))
        if comparisons > MAX_COMPARISONS:
            self.error("E243", f"the condition holds {comparisons} comparisons", condition.span,
                       f"a condition holds at most {MAX_COMPARISONS}; split the rule in two")
            return None
        if _depth(condition) > MAX_DEPTH:
            self.error("E243", "the condition nests too deeply", condition.span,
                       f"`and`, `or` and parentheses nest at most {MAX_DEPTH} levels")
            return None
        return self._condition(condition)

    def _condition(self, condition: ast.Condition) -> tuple[str, str] | None:
        if isinstance(condition, (ast.AllOf, ast.AnyOf)):
            parts = [self._condition(part) for part in condition.parts]
            if any(part is None for part in parts):
                return None
            joiner = " and " if isinstance(condition, ast.AllOf) else " or "
            found = [p for p in parts if p is not None]
            return ("(" + joiner.join(f"({e})" for e, _ in found) + ")",
                    joiner.join(w if not (" and " in w or " or " in w) else f"({w})" for _, w in found))
        if isinstance(condition, ast.Flag):
            kind = self._field_type(condition.name, condition.span)
            if kind is None:
                return None
            if kind != "yes/no":
                self.error("E244", f"`{condition.name}` is {_TYPE_WORDS[kind]}, not a yes/no field",
                           condition.span, f"compare it, as in `{condition.name} = ...`")
                return None
            return f"{self.expression_of(condition.name)} is True", f"{field_words(condition.name.lower())} is yes"
        if isinstance(condition, ast.Membership):
            return self._membership(condition)
        return self._comparison(condition)

    def _field_type(self, name: str, span: Span) -> str | None:
        kind = self.type_of(name)
        if kind is None:
            known = list(self.declared) + list(BUILT_INS)
            suggestion = closest(name, known)
            help = (f"did you mean `{suggestion}`?" if suggestion else
                    f"declare it first, as in `field {name}: date`; built-in fields are "
                    + ", ".join(BUILT_INS))
            if MODIFIER_RE.match(name.upper()):
                help = f"to exempt lines that carry modifier {name}, write `unless modifier {name}`"
            self.error("E245", f"unknown field `{name}`", span, help)
            return None
        self.used.setdefault(name.lower(), None)
        return kind

    def _is_field(self, value: ast.Value) -> bool:
        return value.kind == "field" and self.type_of(value.text) is not None

    def _operand(self, value: ast.Value, other: str | None) -> _Typed:
        """A side of a comparison; `other` is the type of the other side when it is a field."""
        if value.kind == "field" and (self.type_of(value.text) is not None or other not in ("code", "text", "yes/no")):
            kind = self._field_type(value.text, value.span)
            if kind is None:
                return _Typed(None, "", "")
            typed = _Typed(kind, self.expression_of(value.text), field_words(value.text.lower()), value.text.lower())
        else:
            typed = self._literal(value, other)
        if value.shift is not None or value.shift_text:
            return self._shifted(value, typed)
        return typed

    def _shifted(self, value: ast.Value, typed: _Typed) -> _Typed:
        if typed.type is None:
            return typed
        if typed.type != "date":
            self.error("E244", f"days can only be added to a date; {value.text} is {_TYPE_WORDS[typed.type]}",
                       value.span, "write a date field, as in `accident_date + 14 days`")
            return _Typed(None, "", "")
        if not (value.shift_text.isascii() and value.shift_text.isdigit()):
            self.error("E208", f"{quoted(value.shift_text[:24])} is not a whole number of days", value.span,
                       "write the days as digits, as in `accident_date + 14 days`")
            return _Typed(None, "", "")
        if value.shift is None or abs(value.shift) > MAX_SHIFT_DAYS:
            self.error("E208", f"a shift of {value.shift_text[:24]} days is out of range", value.span,
                       f"give between 0 and {MAX_SHIFT_DAYS:,} days")
            return _Typed(None, "", "")
        days = value.shift
        sign = "+" if days >= 0 else "-"
        words = f"{typed.words} {sign} {abs(days)} day{'s' if abs(days) != 1 else ''}"
        if typed.field is None:  # a fixed date: moved here, once
            return _Typed("date", repr(add_days(typed.expression.strip("'"), days)), words)
        return _Typed("date", f"rt.add_days({typed.expression}, {days})", words, typed.field)

    def _literal(self, value: ast.Value, other: str | None) -> _Typed:
        text = value.text
        if value.kind == "date":
            try:
                day = datetime.date.fromisoformat(text)
            except ValueError:
                self.error("E209", f"`{text}` is not a calendar date", value.span,
                           "check the month and the day; dates are written YYYY-MM-DD")
                return _Typed(None, "", "")
            return _Typed("date", repr(day.isoformat()), text)
        if value.kind == "money":
            amount = parse_money(text)
            if amount is None or money_too_large(amount) or amount != amount.quantize(amount.__class__("0.01")):
                self.error("E205", f"{quoted(text)} is not an amount in dollars and cents", value.span,
                           "write it like `$45` or `$45.50`")
                return _Typed(None, "", "")
            return _Typed("money", str(to_cents(amount)), text)
        if value.kind == "text":
            return _Typed("text" if other != "code" else "code", repr(text if other != "code" else text.upper()),
                          f'"{text}"')
        if other == "yes/no":
            if text.lower() in ("yes", "no"):
                return _Typed("yes/no", repr(text.lower() == "yes"), text.lower())
            self.error("E244", f"expected yes or no, found {quoted(text)}", value.span)
            return _Typed(None, "", "")
        if other == "number" or (other is None and text.isdigit()):
            if not (text.isascii() and text.isdigit()) or len(text.lstrip("0")) > 9:
                self.error("E208", f"{quoted(text[:40])} is not a whole number up to {MAX_NUMBER:,}", value.span)
                return _Typed(None, "", "")
            return _Typed("number", str(int(text)), str(int(text)))
        # A code (procedure code, place of service, credential ...) or a text written bare.
        return _Typed("code" if other != "text" else "text", repr(text.upper() if other != "text" else text), text)

    def _comparison(self, comparison: ast.Comparison) -> tuple[str, str] | None:
        left_field, right_field = self._is_field(comparison.left), self._is_field(comparison.right)
        left_type = self.type_of(comparison.left.text) if left_field else None
        right_type = self.type_of(comparison.right.text) if right_field else None
        left = self._operand(comparison.left, right_type)
        right = self._operand(comparison.right, left.type if left.field else None)
        if left.type is None or right.type is None:
            return None
        if left.field is None and right.field is None:
            self.error("E244", "the comparison has no field: it is always true or always false", comparison.span,
                       "compare a field with a value, as in `place_of_service = 11`")
            return None
        if not _compatible(left.type, right.type):
            self.error("E244", f"cannot compare {_TYPE_WORDS[left.type]} ({comparison.left.span.text}) with "
                               f"{_TYPE_WORDS[right.type]} ({comparison.right.span.text})", comparison.span,
                       "compare values of one kind: a date with a date, money with an amount such as $100")
            return None
        op = comparison.op
        if op not in ("=", "!=") and left.type not in ORDERED:
            self.error("E244", f"`{op}` compares dates, numbers or amounts; "
                               f"{comparison.left.span.text} is {_TYPE_WORDS[left.type]}", comparison.span,
                       "use `=`, `!=` or `in (...)`")
            return None
        for field, value, given in ((left.field, right, comparison.right), (right.field, left, comparison.left)):
            if field is not None and value.field is None and not self._fits(field, value, given):
                return None
        python_op = "==" if op == "=" else op
        words = (_DATE_OP_WORDS if left.type == "date" else _OP_WORDS)[op]
        return f"{left.expression} {python_op} {right.expression}", f"{left.words} {words} {right.words}"

    def _fits(self, field: str, value: _Typed, given: ast.Value) -> bool:
        """Whether a value compared with a built-in code field could be one of its values: a
        procedure code, a place of service of two digits, a known credential."""
        text = given.text.upper()
        if field == "code" and not CODE_RE.match(text):
            help = (f"`{given.text}` reads as a code; a condition lists codes one by one, and a code set "
                    "goes in the statement's `for` list" if given.kind == "field" else None)
            self.error("E244", f"{quoted(given.text)} is not a procedure code", given.span,
                       help or f"expected {CODE_EXAMPLES}")
            return False
        if field == "place_of_service" and not _PLACE_RE.fullmatch(text):
            self.error("E244", f"{quoted(given.text)} is not a place of service", given.span,
                       "a place of service has two digits, such as 11 (office) or 12 (home)")
            return False
        if field == "credential" and text not in CREDENTIALS:
            suggestion = closest(text, CREDENTIALS)
            hint = f"did you mean `{suggestion}`? " if suggestion else ""
            self.error("E244", f"unknown credential {quoted(given.text)}", given.span,
                       hint + f"known credentials: {', '.join(CREDENTIALS)}")
            return False
        return True

    def _membership(self, membership: ast.Membership) -> tuple[str, str] | None:
        left = self._operand(membership.left, None)
        if left.type is None:
            return None
        if left.field is None:
            self.error("E244", "the left side of `in` must be a field", membership.left.span,
                       "write the field first, as in `place_of_service in (11, 22)`")
            return None
        if len(membership.values) > MAX_VALUES:
            self.error("E243", f"the list holds {len(membership.values):,} values", membership.span,
                       f"a list holds at most {MAX_VALUES:,} values; declare a code set for procedure codes")
            return None
        values = [self._literal(v, left.type) if v.kind == "field" or v.shift is None else self._operand(v, None)
                  for v in membership.values]
        if any(v.type is None for v in values):
            return None
        for value, given in zip(values, membership.values):
            if value.type is not None and not _compatible(left.type, value.type):
                self.error("E244", f"cannot compare {_TYPE_WORDS[left.type]} ({membership.left.span.text}) with "
                                   f"{_TYPE_WORDS[value.type]} ({given.span.text})", given.span)
                return None
        if not all(self._fits(left.field, value, given) for value, given in zip(values, membership.values)):
            return None
        choices = "{" + ", ".join(dict.fromkeys(v.expression for v in values)) + "}"
        listed = ", ".join(v.words for v in values)
        negated = membership.negated
        return (f"{left.expression} {'not in' if negated else 'in'} {choices}",
                f"{left.words} {'is not' if negated else 'is'} one of {listed}")


_INPUT_FIELDS = frozenset({"session_id", "patient_id", "payer", "provider_npi", "provider_credential", "modifiers",
                           "diagnoses", "prescription_by"})
"""Input fields that are not condition fields but cannot be declared either."""


_PLACE_RE = re.compile(r"[0-9]{2}")


def _compatible(left: str, right: str) -> bool:
    return left == right or {left, right} == {"code", "text"}


def _leaves(condition: ast.Condition) -> Iterator[ast.Condition]:
    if isinstance(condition, (ast.AllOf, ast.AnyOf)):
        for part in condition.parts:
            yield from _leaves(part)
    else:
        yield condition


def _depth(condition: ast.Condition) -> int:
    if isinstance(condition, (ast.AllOf, ast.AnyOf)):
        return 1 + max(_depth(part) for part in condition.parts)
    return 0


def fields_in(condition: ast.Condition) -> list[str]:
    """The field names a condition reads (as written; unknown ones included), in order."""
    names: dict[str, None] = {}
    for leaf in _leaves(condition):
        if isinstance(leaf, ast.Flag):
            names.setdefault(leaf.name, None)
        elif isinstance(leaf, ast.Comparison):
            for value in (leaf.left, leaf.right):
                if value.kind == "field":
                    names.setdefault(value.text, None)
        elif isinstance(leaf, ast.Membership) and leaf.left.kind == "field":
            names.setdefault(leaf.left.text, None)
    return list(names)
