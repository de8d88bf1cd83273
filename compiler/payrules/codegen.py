"""Checked `ast.Module` → Python source of one fused `judge(session, day, past, invalid)` function per payer.

Generated code has three parts per session, in this order:

1. group facts: the same-day ones computed once per patient-day and kept on `day.facts` for the
   day's other sessions (per session for rules `same session`), each line's share found by a
   lookup; limits over periods read running totals from a ledger of `past`;
2. one loop over the session's lines that runs every per-line rule (coverage, same day,
   credentials) and records all reasons, not only the first;
3. amount passes over the session, in file order (caps), skipping denied lines.

Each reason records the cents it took from its line: a reduction what it lowered the allowed
amount by, the first denying rule of a line all of it (see `_hit`).

User text (payer names, rule names, file paths, statement text) reaches the generated
source only through `repr()`, including inside comments, so a rule file cannot inject code.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

import attrs

from payrules import __version__, ast, ncci
from payrules import conditions_code
from payrules.check import MONTHS, Bindings, Checked, Codes
from payrules.diagnosis_sets import Diagnoses, as_written
from payrules.diagnostics import InternalError
from payrules.domain import dollars
from payrules.named import amount_text, count_params, number, per_text, percent_of
from payrules.reasons import rule_reasons


class _Writer:
    """Writes indented source lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._depth = 0

    def line(self, text: str = "") -> None:
        self.lines.append("    " * self._depth + text if text else "")

    def block(self, lines: list[str]) -> None:
        for text in lines:
            self.line(text)

    @contextmanager
    def indent(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


@attrs.define
class _Emission:
    """The code one rule contributes to each part of `judge`, plus its explanation params."""

    params: dict[str, str] = attrs.field(factory=dict)
    group: list[str] = attrs.field(factory=list)
    per_line: list[str] = attrs.field(factory=list)
    session: list[str] = attrs.field(factory=list)


class _Context:
    """Constants and helpers shared by the per-statement emitters of one module."""

    def __init__(self, bindings: Bindings) -> None:
        self.bindings = bindings
        self.constants: dict[str, str] = {}
        self._by_value: dict[str, str] = {}
        self.tracks_minutes = False
        """Whether `judge` keeps each line's paid minutes in `mins` (a module with a minutes limit)."""

    def const(self, value: frozenset[str], literal: str | None = None) -> str:
        """A module-level name holding `value` (written as `literal`, by default a frozenset);
        equal sets share one name."""
        literal = literal or _frozenset_literal(value)
        if literal not in self._by_value:
            name = f"_SET{len(self._by_value)}"
            self._by_value[literal] = name
            self.constants[name] = literal
        return self._by_value[literal]

    def table(self, literal: str) -> str:
        """A module-level name holding a fee schedule's dictionary, written as `literal`."""
        name = f"_FEES{sum(n.startswith('_FEES') for n in self.constants)}"
        self.constants[name] = literal
        return name

    def codes(self, codes: ast.CodeList) -> str:
        return self.const(frozenset(), _code_set_literal(self.bindings.code_sets[codes]))

    def words(self, words: tuple[ast.Word, ...]) -> str:
        """A module-level name holding the credentials or modifiers, in capitals."""
        return self.const(frozenset(w.value.upper() for w in words))

    def describe(self, codes: ast.CodeList | None) -> str:
        """The code list as written, each set name followed by its codes: `massage (97124, 97140), 97010`."""
        if codes is None:
            return ""
        return ", ".join(f"{item.name} ({self.bindings.sets_by_name[item.name].describe()})"
                         if isinstance(item, ast.SetRef) else item.span.text for item in codes.items)

    def describe_diagnoses(self, diagnoses: ast.DiagnosisList | None) -> str:
        """The diagnoses as written, in capitals, each set name followed by what it holds:
        `subluxation (M99.00-M99.05), M54.5*`."""
        if diagnoses is None:
            return ""
        by_name = self.bindings.diagnoses_by_name
        return ", ".join(f"{item.span.text} ({by_name[item.span.text].describe()})"
                         if item.span.text in by_name else as_written(item.span.text) for item in diagnoses.items)


def _frozenset_literal(value: frozenset[str]) -> str:
    if not value:
        return "frozenset()"
    items = [repr(v) for v in sorted(value)]
    rows = [", ".join(items[i : i + 10]) for i in range(0, len(items), 10)]
    if len(rows) == 1:
        return f"frozenset({{{rows[0]}}})"
    return "frozenset({\n    " + ",\n    ".join(rows) + ",\n})"


RANGE_MIN = 32
"""Consecutive codes from this many on are written as a range check, not listed one by one."""


def _code_set_literal(codes: Codes) -> str:
    """A frozenset of the codes, or, when some run of consecutive codes is long, an `rt.CodeSet`
    of the other codes and one (shape, first, last) range per such run. Runs come from the
    checker as runs: a wide range is never listed code by code."""
    listed, ranges = codes.split(RANGE_MIN)
    if not ranges:
        return _frozenset_literal(listed)
    rows = ",\n".join(f"    {r!r}" for r in sorted(ranges, key=lambda r: (r[0], r[1])))
    return f"rt.CodeSet({_frozenset_literal(listed)}, (\n{rows},\n))"


def _either(words: tuple[ast.Word, ...]) -> str:
    """`59 or XS`: credentials or modifiers as the explanations list them."""
    return " or ".join(w.value.upper() for w in words)


def severity(rule: ast.Rule) -> str:
    """`warn` for a rule with the warn option, else what its statement does."""
    return "warn" if rule.warn is not None else rule.statement.severity


def _hit(index: int, rule: ast.Rule, facts: str) -> list[str]:
    """Record a reason; a denying rule also marks the line denied (a warning never does). The
    first denying rule of a line takes its whole charge, later ones nothing: amount passes
    skip denied lines, so nothing was taken from it before."""
    if severity(rule) != "deny":
        return [f"r.append(({index}, {facts}, 0))"]
    return [f"r.append(({index}, {facts}, 0 if d else line.charge))", "d = True"]


def _taken(rule: ast.Rule, before: str, after: str) -> str:
    """What a reduction takes from the line's allowed amount (a warning takes nothing)."""
    return "0" if severity(rule) == "warn" else f"{before} - {after}"


def _apply(rule: ast.Rule, assignment: str) -> str:
    """A reduction, or for a warning the same bookkeeping without changing the line's amount."""
    if severity(rule) == "warn":
        return assignment.replace("allowed[k] = ", "")
    return assignment


# --- one emitter per statement kind -----------------------------------------------------


@functools.singledispatch
def _emit(statement: ast.StatementNode, rule: ast.Rule, index: int, ctx: _Context) -> _Emission:
    raise InternalError(f"no code generation for statement kind `{type(statement).__name__}`")


@_emit.register
def _emit_only(s: ast.Only, rule: ast.Rule, index: int, ctx: _Context) -> _Emission:
    return _Emission(
        params={"codes": ctx.describe(s.codes)},
        per_line=[f"if code not in {ctx.codes(s.codes)}:", *_indent(_hit(index, rule, "None"))],
    )


@_emit.register
def _emit_not_covered(s: ast.NotCovered, rule: ast.Rule, index: int, ctx: _Context) -> _Emission:
    return _Emission(
        params={"codes": ctx.describe(s.codes)},
        per_line=[f"if code in {ctx.codes(s.codes)}:", *_indent(_hit(index, rule, "None"))],
    )


def _others(ctx: _Context, index: int, other: ast.CodeList, scope: str, positions: bool = False) -> list[str]:
    """Group fact `t{index}`: the lines of the day (or of this session) with a code in `other`.

    A day's is found once and kept on the day for its other sessions; with `positions`, also
    `i{index}`: each of those lines' place among them, so a line finds the ones before it at once.
    """
    found = f"[o for o in {'day.lines' if scope == 'day' else 'lines'} if o.code in {ctx.codes(other)}]"
    if scope != "day":
        places = [f"i{index} = {{id(o): j for j, o in enumerate(t{index})}}"] if positions else []
        return [f"t{index} = {found}", *places]
    if not positions:
        return [f"t{index} = day.facts.get({index})",
                f"if t{index} is None:",
                f"    t{index} = day.facts[{index}] = {found}"]
    return [f"g{index} = day.facts.get({index})",
            f"if g{index} is None:",
            f"    t = {found}",
            f"    g{index} = day.facts[{index}] = (t, {{id(o): j for j, o in enumerate(t)}})",
            f"t{index}, i{index} = g{index}"]


def _other_lines_hit(index: int, rule: ast.Rule, ctx: _Context, other: ast.CodeList) -> list[str]:
    """Record a reason citing the group's other lines (never the line itself), if there are any:
    the first of them and how many there are, so a reason stays small however busy the day."""
    return [f"n = len(t{index}) - (code in {ctx.codes(other)})",
            "if n:",
            *_indent(_hit(index, rule, f"(t{index}[0] if t{index}[0] is not line else t{index}[1], n)"))]


@_emit.register
def _emit_no_same_day(s: ast.NoSameDay, rule: ast.Rule, index: int, ctx: _Context) -> _Emission:
    other = ctx.codes(s.other)
    tests = [f"t{index}"]
    tests.append(f"code in {ctx.codes(s.codes)}" if s.codes is not None else f"code not in {other}")
    if s.unless:
        tests.append(f"not (line.modifiers & {ctx.words(s.unless)})")
    return _Emission(
        params={
            "codes": ctx.describe(s.codes),
            "other": ctx.describe(s.other),
            "unless": _either(s.unless),
            "scope": s.scope,
        },
        group=_others(ctx, index, s.other, s.scope),
        per_line=[
            f"if {' and '.join(tests)}:",
            *_indent(_other_lines_hit(index, rule, ctx, s.other)),
        ],
    )


@_emit.register
def _emit_only_with(s: ast.OnlyWith, rule: ast.Rule, index: int, ctx: _Context) -> _Emission:
    # A line is qualified by another line of the group whose code is not its own: never by
    # itself, nor by a second line of its own code (`c{index}` counts the group's lines by code).
    found = f"[o for o in {'day.lines' if s.scope == 'day' else 'lines'} if o.code in {ctx.codes(s.other)}]"
    count = [f"t = {found}", "c = {}", "for o in t:", "    c[o.code] = c.get(o.code, 0) + 1"]
    group = ([*count, f"t{index}, c{index} = t, c"] if s.scope != "day" else
             [f"g{index} = day.facts.get({index})",
              f"if g{index} is None:",
              *_indent(count),
              f"    g{index} = day.facts[{index}] = (t, c)",
              f"t{index}, c{index} = g{index}"])
    return _Emission(
        params={"codes": ctx.describe(s.codes), "other": ctx.describe(s.other), "scope": s.scope},
        group=group,
        per_line=[
            f"if code in {ctx.codes(s.codes)} and len(t{index}) == c{index}.get(code, 0):",
            *_indent(_hit(index, rule, f"c{index}.get(code, 0)")),
        ],
    )


@_emit.register
def _emit_requires_modifier(s: ast.RequiresModifier, rule: ast.Rule, index: int, ctx: _Context) -> _Emission:
    modifiers = ctx.words(s.modifiers)
    params = {"codes": ctx.describe(s.codes), "other": ctx.describe(s.other), "scope": s.scope,
              "modifiers": _either(s.modifiers)}
    test = f"code in {ctx.codes(s.codes)} and not (line.modifiers & {modifiers})"
    if s.other is None:
        return _Emission(params=params, per_line=[f"if {test}:", *_indent(_hit(index, rule, "None"))])
    return _Emission(
        params=params,
        group=_others(ctx, index, s.other, s.scope),
        per_line=[f"if t{index} and {test}:", *_indent(_other_lines_hit(index, rule, ctx, s.other))],
    )


@_emit.register
def _emit_not_payable_by(s: ast.NotPayableBy, rule: ast.Rule, index: int, ctx: _Context) -> _Emission:
    credentials = ctx.words(s.credentials)
    return _Emission(
        params={"credentials": " or ".join(sorted({w.value.upper() for w in s.credentials})),
                "codes": ctx.describe(s.codes)},
        per_line=[f"if {_applies(ctx, s.codes)}line.provider_credential in {credentials}:",
                  *_indent(_hit(index, rule, "None"))],
    )


def _period_params(period: ast.Period, ctx: _Context) -> dict[str, str]:
    params = {"period": period.kind, "per": per_text(period, ctx.bindings)}
    # What an accumulators file is checked against: where a plan year starts, a rolling period's length.
    if period.month is not None and period.day is not None:
        params["starts"] = f"{MONTHS[period.month.value.lower()[:3]]:02d}-{int(period.day.value):02d}"
    if period.days is not None:
        params["days"] = str(number(period.days, ctx.bindings))
    return params


def _past(ctx: _Context, index: int, period: ast.Period, codes: ast.CodeList | None) -> list[str]:
    """Group facts for a limit over a period: its first date `s{index}`, and the ledger
    `l{index}` of the patient's earlier lines it counts, with the cents and units they were
    allowed, totalled by date."""
    days = number(period.days, ctx.bindings) if period.days is not None else 0
    start = ""
    if period.month is not None and period.day is not None:
        start = f"{MONTHS[period.month.value.lower()[:3]]:02d}-{int(period.day.value):02d}"
    counts = f"lambda o: o.code in {ctx.codes(codes)}" if codes is not None else "lambda o: True"
    return [f"s{index} = rt.since({period.kind!r}, session.date, {days}, {start!r})",
            f"l{index} = past.ledger({index}, {counts}, session.date)"]


def _skip(ctx: _Context, codes: ast.CodeList | None) -> str:
    return "denied[k]" if codes is None else f"denied[k] or line.code not in {ctx.codes(codes)}"


def _share(part: str, whole: str) -> str:
    """`allowed[k]` scaled by part/whole, to the nearest cent with halves rounded up."""
    return f"(a * {part} * 2 + {whole}) // (2 * {whole})"


def _money_cap(amount: ast.Amount, ctx: _Context) -> int:
    """The cents of a money limit: `$N`, or `P% of $N` rounded to the nearest cent, halves up."""
    assert amount.money is not None
    cents = ctx.bindings.cents[amount.money]
    percent = percent_of(amount, ctx.bindings)
    if percent is None:
        return cents
    numerator, denominator = percent.as_integer_ratio()
    return (cents * numerator * 2 + denominator * 100) // (2 * denominator * 100)


@_emit.register
def _emit_max_amount(s: ast.MaxAmount, rule: ast.Rule, index: int, ctx: _Context) -> _Emission:
    amount, period = s.amount, s.period
    params = {"codes": ctx.describe(s.codes), **_period_params(period, ctx)}
    group: list[str] = []
    if amount.money is None:
        # A share of each line's own charge.
        percent = percent_of(amount, ctx.bindings)
        assert percent is not None
        numerator, denominator = percent.as_integer_ratio()
        params["amount"] = amount_text(amount, None, ctx.bindings)
        params["per"] = "line"
        cap = f"(line.charge * {numerator} * 2 + {denominator * 100}) // ({2 * denominator * 100})"
    else:
        cents = _money_cap(amount, ctx)
        params["amount"] = amount_text(amount, cents, ctx.bindings)
        cap = f"{cents} * units[k]" if period.kind == "unit" else str(cents)
    loop = ["for k, line in enumerate(lines):", f"    if {_skip(ctx, s.codes)}:", "        continue",
            "    a = allowed[k]"]
    if period.kind in ("unit", "line"):
        body = [f"    c = {cap}",
                "    if a > c:",
                f"        reasons[k].append(({index}, (a, c, units[k], line.charge), {_taken(rule, 'a', 'c')}))",
                *(["        allowed[k] = c"] if severity(rule) != "warn" else [])]
        return _Emission(params=params, session=[*loop, *body])
    if period.over_history:
        group = _past(ctx, index, period, s.codes)
        setup = [f"used = l{index}.cents_since(s{index})", f"left = max({cap} - used, 0)"]
    else:
        setup = ["used = 0", f"left = {cap}"]
    # A limit over a period also cites the accumulated use it counted (see `Ledger.accumulated_since`).
    since = f"s{index}, l{index}.accumulated_since(s{index})" if period.over_history else "''"
    body = ["    if a > left:",
            f"        reasons[k].append(({index}, (a, left, used, {since}), {_taken(rule, 'a', 'left')}))",
            *(["        allowed[k] = a = left"] if severity(rule) != "warn" else []),
            "    left -= min(a, left)",
            "    used += a"]
    return _Emission(params=params, group=group, session=[*setup, *loop, *body])


def _unit_cap(index: int, rule: ast.Rule, kept: str, facts: str, minutes: bool = False) -> list[str]:
    """Lower line k to `kept` of its units, paying that share of its allowed amount; with
    `minutes`, its paid minutes too (the minutes of the units not paid are not paid), to the
    nearest minute, halves up."""
    return ["        a = allowed[k]",
            f"        b = {_share(kept, 'u')}",
            f"        reasons[k].append(({index}, {facts}, {_taken(rule, 'a', 'b')}))",
            *([f"        allowed[k] = b", f"        units[k] = {kept}"] if severity(rule) != "warn" else []),
            *([f"        if mins[k] is not None:", f"            mins[k] = (mins[k] * {kept} * 2 + u) // (2 * u)"]
              if minutes and severity(rule) != "warn" else [])]


@_emit.register
def _emit_max_units(s: ast.MaxUnits, rule: ast.Rule, index: int, ctx: _Context) -> _Emission:
    limit = number(s.count, ctx.bindings)
    period = s.period
    params = {**count_params(s.count, ctx.bindings), "codes": ctx.describe(s.codes), **_period_params(period, ctx)}
    loop = ["for k, line in enumerate(lines):", f"    if {_skip(ctx, s.codes)}:", "        continue",
            "    u = units[k]"]
    if period.kind == "line":
        return _Emission(params=params, session=[
            *loop, f"    if u > {limit}:",
            *_unit_cap(index, rule, str(limit), f"(u, {limit}, a, b, 0, '')", ctx.tracks_minutes)])
    group: list[str] = []
    setup = [f"left = {limit}"]
    since = "''"
    if period.over_history:
        group = _past(ctx, index, period, s.codes)
        setup = [f"left = max({limit} - l{index}.units_since(s{index}), 0)"]
        since = f"s{index}, l{index}.accumulated_since(s{index})"
    body = ["    if u > left:", *_unit_cap(index, rule, "left", f"(u, left, a, b, {limit} - left, {since})",
                                                   ctx.tracks_minutes),
            "        left = 0", "    else:", "        left -= u"]
    return _Emission(params=params, group=group, session=[*setup, *loop, *body])


@_emit.register
def _emit_max_visits(s: ast.MaxVisits, rule: ast.Rule, index: int, ctx: _Context) -> _Emission:
    limit = number(s.count, ctx.bindings)
    in_codes = f"code in {ctx.codes(s.codes)} and " if s.codes is not None else ""
    return _Emission(
        params={**count_params(s.count, ctx.bindings), "codes": ctx.describe(s.codes), **_period_params(s.period, ctx)},
        group=[*_past(ctx, index, s.period, s.codes),
               f"v{index} = l{index}.visits_since(s{index})"],
        per_line=[f"if {in_codes}v{index} >= {limit}:",
                  *_indent(_hit(index, rule, f"(v{index}, s{index}, l{index}.accumulated_since(s{index}))"))],
    )


@_emit.register
def _emit_max_minutes(s: ast.MaxMinutes, rule: ast.Rule, index: int, ctx: _Context) -> _Emission:
    # `mins` holds each line's minutes still paid (see `generate`): a line cut by an earlier
    # minutes limit counts only what that limit left it. A line cut keeps the share of its
    # allowed amount that its paid minutes are of its minutes, and the same share of its units,
    # rounded to the nearest unit, halves up, which the rules after it then see.
    limit = number(s.count, ctx.bindings)
    return _Emission(
        params={**count_params(s.count, ctx.bindings), "codes": ctx.describe(s.codes), **_period_params(s.period, ctx)},
        session=[
            f"left = {limit}",
            "for k, line in enumerate(lines):",
            f"    if {_skip(ctx, s.codes)} or mins[k] is None:",
            "        continue",
            "    m = mins[k]",
            "    if m > left:",
            "        a = allowed[k]",
            f"        b = {_share('left', 'm')}",
            "        u = units[k]",
            "        v = (u * left * 2 + m) // (2 * m)",
            f"        reasons[k].append(({index}, (m, left, a, b, u, v), {_taken(rule, 'a', 'b')}))",
            *(["        allowed[k] = b", "        units[k] = v", "        mins[k] = left"]
              if severity(rule) != "warn" else []),
            "        left = 0",
            "    else:",
            "        left -= m",
        ],
    )


@_emit.register
def _emit_time_rule(s: ast.TimeRule, rule: ast.Rule, index: int, ctx: _Context) -> _Emission:
    # Group fact, once per day: the units each timed line of the day is supported by, its minutes
    # pooled with the day's other lines of the same provider and discipline (see rt.pooled_units).
    method = s.method.value.lower()
    warn = severity(rule) == "warn"
    found = f"rt.pooled_units({method!r}, day, {ctx.codes(s.codes)})"
    return _Emission(
        params={"method": method, "codes": ctx.describe(s.codes)},
        group=[f"t{index} = day.facts.get({index})",
               f"if t{index} is None:",
               f"    t{index} = day.facts[{index}] = {found}"],
        session=[
            "for k, line in enumerate(lines):",
            f"    f = t{index}.get(id(line))",
            "    if f is None or denied[k]:",
            "        continue",
            "    n = f[0]",
            "    u = units[k]",
            "    if u <= n:",
            "        continue",
            "    a = allowed[k]",
            f"    b = {_share('n', 'u')}",
            f"    reasons[k].append(({index}, (line.minutes, u, n, a, b, f[1]), {_taken(rule, 'a', 'b')}))",
            *([] if warn else ["    allowed[k] = b", "    units[k] = n", "    if not n:", "        denied[k] = True"]),
        ],
    )


@_emit.register
def _emit_one_of(s: ast.OneOf, rule: ast.Rule, index: int, ctx: _Context) -> _Emission:
    codes = ctx.codes(s.codes)
    tests = [f"code in {codes}", f"t{index}[0] is not line"]
    if s.unless:
        tests.append(f"not (line.modifiers & {ctx.words(s.unless)})")
    return _Emission(
        params={"codes": ctx.describe(s.codes), "scope": s.scope,
                "unless": _either(s.unless)},
        group=_others(ctx, index, s.codes, s.scope, positions=True),
        per_line=[
            f"if {' and '.join(tests)}:",
            *_indent(_hit(index, rule, f"(t{index}[0], i{index}[id(line)])")),
        ],
    )


@_emit.register
def _emit_bundled(s: ast.Bundled, rule: ast.Rule, index: int, ctx: _Context) -> _Emission:
    return _Emission(
        params={"codes": ctx.describe(s.codes), "other": ctx.describe(s.other), "scope": s.scope},
        group=_others(ctx, index, s.other, s.scope),
        per_line=[f"if t{index} and code in {ctx.codes(s.codes)}:",
                  *_indent(_other_lines_hit(index, rule, ctx, s.other))],
    )


@_emit.register
def _emit_no_duplicate(s: ast.NoDuplicate, rule: ast.Rule, index: int, ctx: _Context) -> _Emission:
    # Group fact, once per day: for each line, the first earlier line of the day with its code
    # and another provider, and how many there are.
    return _Emission(
        params={"codes": ctx.describe(s.codes)},
        group=[
            f"t{index} = day.facts.get({index})",
            f"if t{index} is None:",
            f"    t{index} = day.facts[{index}] = {{}}",
            "    firsts = {}  # code -> [its first line, its first line by another provider, lines so far]",
            "    same = {}  # (code, provider) -> lines so far",
            "    for o in day.lines:",
            "        f = firsts.get(o.code)",
            "        if f is None:",
            "            f = firsts[o.code] = [o, None, 0]",
            "        elif f[1] is None and o.provider_npi != f[0].provider_npi:",
            "            f[1] = o",
            "        by = (o.code, o.provider_npi)",
            "        n = f[2] - same.get(by, 0)",
            "        if n:",
            f"            t{index}[id(o)] = (f[0] if f[0].provider_npi != o.provider_npi else f[1], n)",
            "        f[2] += 1",
            "        same[by] = same.get(by, 0) + 1",
        ],
        per_line=[
            f"if {_applies(ctx, s.codes)}id(line) in t{index}:",
            *_indent(_hit(index, rule, f"t{index}[id(line)]")),
        ],
    )


def _diagnosis_test(ctx: _Context, diagnoses: Diagnoses) -> str:
    """An expression, true when a diagnosis `g` (without its dot) is one of `diagnoses`: in the
    exact codes, under a prefix, or with its first characters between a range's ends."""
    tests = []
    if diagnoses.exact:
        tests.append(f"g in {ctx.const(diagnoses.exact)}")
    if diagnoses.prefixes:
        tests.append(f"g.startswith({tuple(sorted(diagnoses.prefixes))!r})")
    by_length: dict[int, list[tuple[str, str]]] = {}
    for low, high in sorted(diagnoses.ranges):
        by_length.setdefault(len(low), []).append((low, high))
    for n, ranges in sorted(by_length.items()):
        inner = " or ".join(f"{low!r} <= g[:{n}] <= {high!r}" for low, high in ranges)
        tests.append(f"(len(g) >= {n} and ({inner}))" if len(ranges) > 1 else f"(len(g) >= {n} and {inner})")
    return " or ".join(tests)


def _diagnosed(s: ast.RequiresDiagnosis | ast.NotCoveredDiagnosis) -> str:
    """The line's diagnoses a statement looks at: all of them, or with `primary` the first."""
    return "line.diagnoses[:1]" if s.primary else "line.diagnoses"


def _diagnosis_params(s: ast.RequiresDiagnosis | ast.NotCoveredDiagnosis, ctx: _Context) -> dict[str, str]:
    params = {"patterns": ctx.describe_diagnoses(s.diagnoses), "codes": ctx.describe(s.codes)}
    if s.primary:
        params["primary"] = "yes"
    return params


def _applies(ctx: _Context, codes: ast.CodeList | None) -> str:
    return f"code in {ctx.codes(codes)} and " if codes is not None else ""


@_emit.register
def _emit_requires_prescription(s: ast.RequiresPrescription, rule: ast.Rule, index: int,
                                ctx: _Context) -> _Emission:
    test = 'not line.prescription_by'
    if s.prescribers:
        test = f"line.prescription_by not in {ctx.words(s.prescribers)}"
    return _Emission(
        params={"prescribers": _either(s.prescribers), "codes": ctx.describe(s.codes)},
        per_line=[f"if {_applies(ctx, s.codes)}{test}:", *_indent(_hit(index, rule, "None"))],
    )


@_emit.register
def _emit_requires_diagnosis(s: ast.RequiresDiagnosis, rule: ast.Rule, index: int, ctx: _Context) -> _Emission:
    test = "not line.diagnoses"
    if s.diagnoses is not None:
        diagnoses = ctx.bindings.diagnosis_sets[s.diagnoses]
        test = f"not any({_diagnosis_test(ctx, diagnoses)} for g in (d.replace('.', '') for d in {_diagnosed(s)}))"
    return _Emission(
        params=_diagnosis_params(s, ctx),
        per_line=[f"if {_applies(ctx, s.codes)}{test}:", *_indent(_hit(index, rule, "None"))],
    )


@_emit.register
def _emit_not_covered_diagnosis(s: ast.NotCoveredDiagnosis, rule: ast.Rule, index: int,
                                ctx: _Context) -> _Emission:
    return _Emission(
        params=_diagnosis_params(s, ctx),
        per_line=[
            f"if {_applies(ctx, s.codes)}line.diagnoses:",
            f"    h = [d for d, g in ((d, d.replace('.', '')) for d in {_diagnosed(s)}) "
            f"if {_diagnosis_test(ctx, ctx.bindings.diagnosis_sets[s.diagnoses])}]",
            "    if h:",
            *_indent(_hit(index, rule, "tuple(h)"), 2),
        ],
    )


@_emit.register
def _emit_requires_credential(s: ast.RequiresCredential, rule: ast.Rule, index: int,
                              ctx: _Context) -> _Emission:
    credentials = ctx.words(s.credentials)
    test = f"{_applies(ctx, s.codes)}line.provider_credential not in {credentials}"
    return _Emission(
        params={
            "credentials": _either(s.credentials),
            "codes": ctx.describe(s.codes),
        },
        per_line=[f"if {test}:", *_indent(_hit(index, rule, "None"))],
    )


@_emit.register
def _emit_ncci_ptp(s: ast.NcciPtp, rule: ast.Rule, index: int, ctx: _Context) -> _Emission:
    # The table is one constant (see ncci.pair_edits_literal); the day's lines by provider and
    # code are found once per day.
    files = tuple(source.name for source in s.tables)
    rows = ctx.bindings.ncci[s]
    assert all(isinstance(row, ncci.PtpRow) for row in rows)
    ctx.constants[f"_NCCI{index}"] = ncci.pair_edits_literal(rows, files)  # type: ignore[arg-type]
    return _Emission(
        params={"files": ", ".join(files)},
        group=[f"p{index} = day.facts.get({index})",
               f"if p{index} is None:",
               f"    p{index} = day.facts[{index}] = rt.by_provider(day.lines)"],
        per_line=[f"h = _NCCI{index}.hit(line, p{index}, {ctx.const(ncci.NCCI_MODIFIERS)})",
                  "if h is not None:", *_indent(_hit(index, rule, "h"))],
    )


@_emit.register
def _emit_ncci_mue(s: ast.NcciMue, rule: ast.Rule, index: int, ctx: _Context) -> _Emission:
    files = tuple(source.name for source in s.tables)
    rows = ctx.bindings.ncci[s]
    assert all(isinstance(row, ncci.MueRow) for row in rows)
    ctx.constants[f"_NCCI{index}"] = ncci.unit_limits_literal(rows, files)  # type: ignore[arg-type]
    return _Emission(
        params={"files": ", ".join(files)},
        per_line=[f"h = _NCCI{index}.over(line, day, {index})",
                  "if h is not None:", *_indent(_hit(index, rule, "h"))],
    )


def _indent(lines: list[str], depth: int = 1) -> list[str]:
    return ["    " * depth + text for text in lines]


# --- the module -------------------------------------------------------------------------


def generate(checked: Checked, *, group_fee_schedules: bool = True) -> str:
    """Python source for a checked module; `exec` it with `payrules.runtime` importable.
    `group_fee_schedules=False` writes each per-unit limit as its own pass, as a yardstick for
    the grouped form (see `_fee_runs`)."""
    module = checked.module
    ctx = _Context(checked.bindings)
    # Which amount passes join a fee schedule pass is known from a first emission into a scratch
    # context; the rules that join are then emitted into a scratch context again, so that their
    # own code sets, which the schedule's dictionary replaces, are not written into the module.
    scratch = _Context(checked.bindings)
    ctx.tracks_minutes = scratch.tracks_minutes = any(isinstance(r.statement, ast.MaxMinutes) for r in module.rules)
    passes = [i for i, rule in enumerate(module.rules) if _emit(rule.statement, rule, i, scratch).session]
    runs = _fee_runs(module.rules, passes, ctx) if group_fee_schedules else [[i] for i in passes]
    scheduled = {i for run in runs if len(run) > 1 for i in run}
    emissions = [conditions_code.conditioned(_emit(rule.statement, rule, i, scratch if i in scheduled else ctx),
                                             checked.bindings.conditions.get(i), i)
                 for i, rule in enumerate(module.rules)]

    w = _Writer()
    w.line(f"# Generated by payrules {__version__} from {module.span.file!r}. Do not edit.")
    w.line("from payrules import runtime as rt")
    w.line()
    w.line(f"PAYER_ID = {checked.payer_id!r}")
    w.line(f"PAYER_NAME = {checked.payer_name!r}")
    w.line(f"SOURCE = {module.span.file!r}")
    w.line(f"EFFECTIVE = {checked.effective!r}")
    facts = conditions_code.module_facts(checked, emissions)
    w.line(f"HISTORY = {any(_over_history(rule) for rule in module.rules) or facts.history!r}")
    w.line("RULES = (")
    with w.indent():
        for i, (rule, emission) in enumerate(zip(module.rules, emissions)):
            w.line(_rule_info(i, rule, emission))
        w.block(facts.rule_infos)
    w.line(")")
    w.block(facts.fields)
    w.line()
    constants_at = len(w.lines)  # the constants go here once `judge` is written (see below)
    w.line()
    w.line()
    w.line("def judge(session, day, past, invalid):")
    with w.indent():
        w.line('"""Judge one session; `day.lines` holds every line of this patient and payer on its date')
        w.line("(`day.facts` keeps what this code finds about them for the day's other sessions), and `past`")
        w.line("(when HISTORY is true) the patient's earlier lines, totalled by date in one ledger per limit;")
        w.line("`invalid` marks the lines denied before any rule (a diagnosis the code set does not bill).")
        w.line()
        w.line("Returns the allowed cents, the reasons (rule, facts, cents taken), the denied flag and the")
        w.line("units paid of each line.")
        w.line('"""')
        w.line("lines = session.lines")
        w.line("allowed = []")
        w.line("reasons = []")
        w.line("denied = []")
        w.line("units = []")
        w.block(facts.setup)
        for i, (rule, emission) in enumerate(zip(module.rules, emissions)):
            if _in_effect(rule):
                w.line(_comment(rule))
                w.line(f"e{i} = {_in_effect(rule)}")
            if emission.group:
                w.line(_comment(rule))
                w.block(_guarded(rule, i, emission.group))
        w.line("for k, line in enumerate(lines):")
        with w.indent():
            w.line("code = line.code")
            w.line("r = []")
            w.line("d = invalid[k]")
            w.block(facts.per_line)
            for i, (rule, emission) in enumerate(zip(module.rules, emissions)):
                if emission.per_line:
                    w.line(_comment(rule))
                    w.block(_guarded(rule, i, emission.per_line))
            w.line("allowed.append(0 if d else line.charge)")
            w.line("reasons.append(r)")
            w.line("denied.append(d)")
            w.line("units.append(0 if d else line.units)")
        if ctx.tracks_minutes:
            w.line("mins = [line.minutes for line in lines]  # minutes still paid, lowered by minutes and units limits")
        for run in runs:
            if len(run) == 1:
                i = run[0]
                w.line(_comment(module.rules[i]))
                w.block(_guarded(module.rules[i], i, emissions[i].session))
            else:
                w.block(_fee_pass(run, module.rules, ctx))
        w.line("return allowed, reasons, denied, units")
    # The constants, fee schedule dictionaries included, are known once `judge` is written.
    w.lines[constants_at:constants_at] = [f"{name} = {literal}" for name, literal in ctx.constants.items()]
    return w.text()


# --- fee schedules: runs of per-unit money limits as one pass ------------------------------


def _fee_codes(rule: ast.Rule, ctx: _Context) -> frozenset[str] | None:
    """The codes of a per-unit money limit that may join a fee schedule pass, or None.

    Joins: `max $N per unit for CODES` or `max P% of $N per unit for CODES`, reducing (not
    `warn`), with no effective dates (its pass would be guarded per session), and with codes
    that are listed, not written as a range check (a dictionary needs every code as a key).
    """
    s = rule.statement
    if not (isinstance(s, ast.MaxAmount) and s.amount.money is not None and s.period.kind == "unit"
            and s.codes is not None and severity(rule) == "reduce" and not _in_effect(rule)
            and rule.when is None and rule.unless is None):
        return None
    listed, ranges = ctx.bindings.code_sets[s.codes].split(RANGE_MIN)
    return None if ranges else listed


def _fee_runs(rules: tuple[ast.Rule, ...], passes: list[int], ctx: _Context) -> list[list[int]]:
    """The amount passes, in file order, cut into runs; a run of two or more is one fee schedule.

    A run is consecutive amount passes (rules with only group facts or per-line code run before
    every amount pass, so they sit between none of them) that each join (`_fee_codes`) and whose
    code sets are pairwise disjoint. Why one pass then gives the same result as one pass per
    rule: a pass of `max $N per unit for C` reads and writes only `allowed[k]` and `reasons[k]`
    of the lines k not denied whose code is in C; it never changes `denied` or `units`. A line
    has one code, so with disjoint sets each line is touched by at most one pass of the run:
    the passes commute, and each line gets from the single pass exactly the test, amount and
    reason (one at most, so none reordered) its own rule's pass gave it. A rule whose codes
    meet those of the run, or any other amount pass, ends the run, so no order changes.
    """
    runs: list[list[int]] = []
    taken: set[str] = set()
    joins = False  # whether the last run is a fee schedule still open to more rules
    for i in passes:
        codes = _fee_codes(rules[i], ctx)
        if codes is None:
            runs.append([i])
            joins = False
        elif joins and taken.isdisjoint(codes):
            runs[-1].append(i)
            taken |= codes
        else:
            runs.append([i])
            taken = set(codes)
            joins = True
    return runs


def _fee_pass(run: list[int], rules: tuple[ast.Rule, ...], ctx: _Context) -> list[str]:
    """One pass for a run of per-unit limits over disjoint codes: each line finds its rule and
    cents per unit in one dictionary, then is capped as that rule's own pass would cap it."""
    rows = []
    for i in run:
        statement, codes = rules[i].statement, _fee_codes(rules[i], ctx)
        assert isinstance(statement, ast.MaxAmount) and codes is not None
        cents = _money_cap(statement.amount, ctx)
        # The same strings as the rule's own frozenset, so a lookup matches where `in` did.
        rows += [f"    {code!r}: ({i}, {cents})," for code in sorted(codes)]
    table = ctx.table("{  # code -> (rule, cents per unit)\n" + "\n".join(rows) + "\n}")
    return [f"# {len(run)} per-unit limits over disjoint codes, in one pass: each line meets at most one",
            *(_comment(rules[i]) for i in run),
            "for k, line in enumerate(lines):",
            f"    fee = {table}.get(line.code)",
            "    if fee is None or denied[k]:",
            "        continue",
            "    a = allowed[k]",
            "    c = fee[1] * units[k]",
            "    if a > c:",
            "        reasons[k].append((fee[0], (a, c, units[k], line.charge), a - c))",
            "        allowed[k] = c"]


def _over_history(rule: ast.Rule) -> bool:
    period = getattr(rule.statement, "period", None)
    return isinstance(period, ast.Period) and period.over_history


def _in_effect(rule: ast.Rule) -> str:
    """The test that a session's date of service is in the rule's effective range ("" if none).
    Dates are YYYY-MM-DD, so they compare as text."""
    tests = []
    if rule.effective_from is not None:
        tests.append(f"{rule.effective_from.value!r} <= session.date")
    if rule.effective_to is not None:
        tests.append(f"session.date <= {rule.effective_to.value!r}")
    return " and ".join(tests)


def _guarded(rule: ast.Rule, index: int, lines: list[str]) -> list[str]:
    """A rule's code, run only for sessions in its effective range."""
    if not _in_effect(rule):
        return lines
    return [f"if e{index}:", *_indent(lines)]


def _comment(rule: ast.Rule) -> str:
    # repr() keeps a carriage return or other line break in user text from ending the comment.
    return f"# line {rule.span.line}: {rule.text!r}"


def _rule_info(index: int, rule: ast.Rule, emission: _Emission) -> str:
    statement = rule.statement
    carc, rarc = rule_reasons(rule)
    fields = [
        f"position={index}",
        f"name={rule.name.value if rule.name is not None else None!r}",
        f"kind={statement.kind!r}",
        f"file={rule.span.file!r}",
        f"line={rule.span.line}",
        f"column={rule.span.column}",
        f"text={rule.text!r}",
        f"severity={severity(rule)!r}",
        f"carc={carc!r}",
        f"rarc={rarc!r}",
        f"params={tuple(sorted(emission.params.items()))!r}",
        f"source={rule.source.value if rule.source is not None else None!r}",
        f"outcome={statement.severity!r}",
    ]
    return f"rt.RuleInfo({', '.join(fields)}),"
