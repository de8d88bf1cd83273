"""`let` names for amounts, shares and whole numbers: checking their lines and their uses (a
mixin of the checker), and what each use stands for in generated code and explanations.

`let pt_daily_max = $120` names an amount, `let massage_share = 75%` a share, `let visits = 20`
a whole number; the literal written decides the kind. A use is resolved to its value when the
file is checked (`Bindings.cents`, `shares` and `counts`, keyed by the use), so generated code
holds plain numbers; explanations show the name with its value: `pt_daily_max ($120.00)`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, ClassVar

from payrules import ast
from payrules.diagnostics import closest, quoted
from payrules.domain import dollars

if TYPE_CHECKING:
    from payrules.check import Bindings
    from payrules.source import Span

LET_KINDS: dict[type, str] = {ast.Money: "money", ast.Share: "share", ast.Code: "count"}
"""The kind of value a `let` gives, by the literal written."""
LET_WHAT = {"money": "an amount", "share": "a share", "count": "a whole number"}
LET_EXAMPLE = {"money": "$120", "share": "75%", "count": "20"}
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                "twelve")
"""Numbers written as words, where a limit goes: a slip for digits rather than an unknown name."""


class NamedValues:
    """The checks of `let` lines and of the names' uses; mixed into the checker, whose state
    and reporting methods these are."""

    module: ast.Module
    bindings: Bindings
    set_defs: dict[str, ast.SetDef]
    let_defs: dict[str, ast.LetDef]
    most_count: ClassVar[int]
    """The largest whole number a rule file may hold (the checker's `MAX_COUNT`)."""

    if TYPE_CHECKING:  # the checker's own methods, declared for the type checker only
        def error(self, code: str, message: str, span: Span, help: str | None = None) -> None: ...

        def name(self, word: ast.Word, what: str) -> None: ...

        def money(self, money: ast.Money | ast.NameRef) -> None: ...

        def share(self, percent: Decimal, span: Span, decimals_span: Span | None = None) -> None: ...

        def share_ok(self, percent: Decimal) -> bool: ...

    def lets(self) -> None:
        """Check every `let` line: a name given once, not also a code set's, and its value."""
        for let in self.module.lets:
            name = let.name.value
            self.name(let.name, "the name")
            first = self.let_defs[name]
            if first is not let:
                self.error("E122", f"`{name}` is given a value twice", let.name.span,
                           f"the first `let {name}` is {first.span.seen_from(let.span)}; keep one")
                continue
            if name in self.set_defs:
                self.error("E122", f"`{name}` is already the name of a code set", let.name.span,
                           f"the set is {self.set_defs[name].span.seen_from(let.span)}; give the value another name")
            value = let.value
            if isinstance(value, ast.Money):
                self.money(value)
            elif isinstance(value, ast.Share):
                self.share(value.percent, value.span)
            elif not (value.value.isascii() and value.value.isdigit()):
                self.error("E208", f"{quoted(value.value)} is not a whole number", value.span,
                           "give an amount such as `$120`, a share such as `75%` or a whole number such as `20`")
            elif len(value.value.lstrip("0")) > len(str(self.most_count)) or int(value.value) > self.most_count:
                self.error("E215", f"the number {quoted(value.value)} is too large", value.span,
                           f"a number goes up to {self.most_count:,}")

    def named(self, ref: ast.NameRef, kind: str) -> int | Decimal | None:
        """The value of a `let` name used where `kind` (money, share or count) goes: cents, a
        percentage or a whole number; None after reporting an unknown name or a wrong kind (or
        when the `let` itself has an error, reported there)."""
        let = self.let_defs.get(ref.name)
        if let is None:
            same_kind = [n for n, d in self.let_defs.items() if LET_KINDS[type(d.value)] == kind]
            suggestion = closest(ref.name, same_kind) or closest(ref.name, self.let_defs)
            if suggestion:
                help = f"did you mean `{suggestion}`?"
            elif ref.name.lower() in NUMBER_WORDS and kind == "count":
                help = f"write the number as digits: `{NUMBER_WORDS.index(ref.name.lower())}`"
            elif ref.name in self.set_defs:
                help = f"`{ref.name}` is a code set; {LET_WHAT[kind]} goes here, such as `{LET_EXAMPLE[kind]}`"
            else:
                help = f"give it a value first, as in `let {ref.name} = {LET_EXAMPLE[kind]}`"
            self.error("E120", f"unknown name `{ref.name}`", ref.span, help)
            return None
        found = LET_KINDS[type(let.value)]
        if found != kind:
            fitting = sorted(n for n, d in self.let_defs.items() if LET_KINDS[type(d.value)] == kind)
            suggestion = closest(ref.name, fitting)
            if suggestion:
                help = f"did you mean `{suggestion}`?"
            elif fitting:
                help = f"names given {LET_WHAT[kind]}: " + ", ".join(f"`{n}`" for n in fitting[:8])
            else:
                help = f"give {LET_WHAT[kind]} a name of its own, as in `let name = {LET_EXAMPLE[kind]}`"
            self.error("E121", f"`{ref.name}` is {LET_WHAT[found]} ({let.value.span.text}), but {LET_WHAT[kind]} "
                       "goes here", ref.span, help)
            return None
        value = let.value
        if isinstance(value, ast.Money):
            return self.bindings.cents.get(value)
        if isinstance(value, ast.Share):
            return value.percent if self.share_ok(value.percent) else None
        digits = value.value.lstrip("0")
        if value.value.isascii() and value.value.isdigit() and len(digits) <= len(str(self.most_count)):
            number = int(digits or "0")
            return number if number <= self.most_count else None
        return None


# --- what a use stands for, in generated code and explanations ------------------------------


def number(node: ast.Code | ast.NameRef, bindings: Bindings) -> int:
    """A whole number as written, or the one its `let` name stands for."""
    return bindings.counts[node] if isinstance(node, ast.NameRef) else int(node.value)


def count_params(node: ast.Code | ast.NameRef, bindings: Bindings) -> dict[str, str]:
    """A limit for explanations: `count`, and `count_name` when a `let` name gives it."""
    params = {"count": str(number(node, bindings))}
    if isinstance(node, ast.NameRef):
        params["count_name"] = node.name
    return params


def per_text(period: ast.Period, bindings: Bindings) -> str:
    """A period as explanations say it (`per` left off): `calendar year`, or for `per cycle
    days` the name and its number, `cycle (30) days`."""
    if isinstance(period.days, ast.NameRef):
        return f"{period.days.name} ({bindings.counts[period.days]}) days"
    return " ".join(period.span.text.split())


def percent_of(amount: ast.Amount, bindings: Bindings) -> Decimal | None:
    """The percentage of a share as written, or the one its `let` name stands for."""
    return bindings.shares[amount.share] if amount.share is not None else amount.percent


def amount_text(amount: ast.Amount, cents: int | None, bindings: Bindings) -> str:
    """How explanations state a money limit of `cents`: `$45.00`, `$90.00 (75% of $120.00)`,
    `50% of the charge`; with `let` names, each name and its value: `75% of pt_daily_max
    ($120.00), that is $90.00,`."""
    percent = percent_of(amount, bindings)
    share = f"{percent.normalize():f}%" if percent is not None else ""
    if amount.share is not None:
        share = f"{amount.share.name} ({share})"
    if amount.money is None:
        return f"{share} of the charge"
    base = dollars(bindings.cents[amount.money])
    if isinstance(amount.money, ast.NameRef):
        base = f"{amount.money.name} ({base})"
    assert cents is not None
    if percent is None:
        return base
    if amount.share is None and not isinstance(amount.money, ast.NameRef):
        return f"{dollars(cents)} ({share} of {base})"
    return f"{share} of {base}, that is {dollars(cents)},"
