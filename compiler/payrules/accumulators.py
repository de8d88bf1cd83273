"""Rows of an accumulators file (what a payer says a patient has already used of a limit) →
the `runtime.Accumulated` figures that each limit over a period counts, checked against the
rule files; or worded errors naming the file, the row and the field.

A row names the limit by its rule name (`visits: max 60 visits per calendar year`), the
patient and payer, the last date of service it covers (`through`) and the visits, units or
amount used; the period is the rule's period that holds `through` (`period_start`, when given,
must be its first date). See README "Accumulators: use already counted by the payer".

Standard library only: `payrules build` copies this module into standalone modules, whose
`check(..., accumulators=...)` takes rows as dicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from payrules.domain import MAX_MONEY_TEXT, closest, money_too_large, parse_money, to_cents
from payrules.fields import _date, _json_value, _whole, clean, field_name, shown
from payrules.runtime import Accumulated, Origin, RuleInfo, since

ACCUMULATOR_FIELDS = ("patient_id", "payer", "rule", "period_start", "through", "visits", "units", "amount")
"""The fields of an accumulators row, in the order the README lists them."""

ACCUMULATOR_REQUIRED = ("patient_id", "payer", "rule", "through")

USED_FIELDS = ("visits", "units", "amount")

COUNTED_BY_KIND = {"max_visits": "visits", "max_units": "units", "max_amount": "amount"}
"""What each limit counts, and so which field of a row gives its use."""

ACCUMULATED_PERIODS = ("week", "month", "year", "plan_year", "lifetime")
"""The periods an accumulator can be given for: those with a fixed first date that hold more
than one day. A rolling `per N days` period starts on a different date for every date judged;
a figure of one day would be through that day, and so never counts for a session of it."""

LIFETIME = "lifetime"

MAX_ACCUMULATOR_PROBLEMS = 20
"""The most problems an error lists; the count of the others follows."""


class AccumulatorRow(NamedTuple):
    """One row as read: where it is, and the text of each field present (cleaned)."""

    origin: Origin
    values: Mapping[str, str]


class AccumulatorError(ValueError):
    """An accumulators file that cannot be counted as it is: every problem, each naming the
    file, row and field. A limit must not silently miss use, so none of it is counted."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(self.listed()))

    def listed(self) -> list[str]:
        """The problems as an error lists them: the first `MAX_ACCUMULATOR_PROBLEMS`, then how
        many more there are."""
        listed = self.problems[:MAX_ACCUMULATOR_PROBLEMS]
        more = len(self.problems) - len(listed)
        return listed + ([f"(and {more:,} more problem{'s' if more != 1 else ''})"] if more else [])


class _AccRuled(Protocol):
    """A compiled policy, as accumulators see it."""

    @property
    def payer_id(self) -> str: ...

    @property
    def source(self) -> str: ...

    @property
    def effective_from(self) -> str | None: ...

    @property
    def rules(self) -> tuple[RuleInfo, ...]: ...


PolicyKey = tuple[str, str, str, str | None]
"""(payer id in lower case, patient id, rule file, its first date): the figures of one patient
under one policy. A policy is named by its file and dates, not by identity, so that a copy of it
(in a worker or on a Spark executor) finds its figures."""


class Accumulators:
    """Accumulated use by patient and policy, then by rule index; and the warnings found while
    reading it, for the caller to show."""

    def __init__(self, found: Mapping[PolicyKey, Mapping[int, tuple[Accumulated, ...]]],
                 warnings: Sequence[str] = (), rows: int = 0) -> None:
        self.found = found
        self.warnings = tuple(warnings)
        self.rows = rows

    def of(self, policy: Any, key: tuple[str, str]) -> Mapping[int, tuple[Accumulated, ...]]:
        """The figures of patient `key` (payer in lower case, patient id) under `policy`, by rule."""
        return self.found.get((key[0], key[1], policy.source, policy.effective_from), _NO_FIGURES)

    def __bool__(self) -> bool:
        return bool(self.found)


_NO_FIGURES: Mapping[int, tuple[Accumulated, ...]] = {}


def accumulator_records(rows: Iterable[Any], name: str) -> tuple[list[AccumulatorRow], list[str]]:
    """Rows given in memory (dicts, such as JSON objects) → rows located as `name` row N, and a
    warning for each key that is no accumulators field."""
    found: list[AccumulatorRow] = []
    warnings: list[str] = []
    problems: list[str] = []
    for number, row in enumerate(rows, start=1):
        origin = Origin(name, number)
        if not isinstance(row, Mapping):
            problems.append(f"{origin}: expected an object of accumulator fields ({', '.join(ACCUMULATOR_FIELDS)}), "
                            f"found {type(row).__name__}")
            continue
        values: dict[str, str] = {}
        for key, value in row.items():
            field = field_name(str(key))
            if field not in ACCUMULATOR_FIELDS:
                warnings.append(f"{origin}: `{key}` is not an accumulators field; it is not read (fields are "
                                f"{', '.join(ACCUMULATOR_FIELDS)})")
                continue
            values[field] = clean(_json_value(value))
        found.append(AccumulatorRow(origin, values))
    if problems:
        raise AccumulatorError(problems)
    return found, warnings


def accumulators_of(rows: Iterable[AccumulatorRow], policies: Mapping[str, Sequence[_AccRuled]],
                    warnings: Sequence[str] = ()) -> Accumulators:
    """The figures of `rows`, each checked against the rule of its payer that it names;
    AccumulatorError listing every problem. `policies`: by payer id in lower case."""
    problems: list[str] = []
    notes = list(warnings)
    found: dict[PolicyKey, dict[int, list[Accumulated]]] = {}
    seen: dict[tuple[str, str, str, str], Origin] = {}
    count = 0
    for row in rows:
        count += 1
        values, wrong = _acc_values(row)
        if wrong:
            problems += wrong
            continue
        payer, patient, name, through = values["payer"], values["patient_id"], values["rule"], values["through"]
        dated = policies.get(payer.casefold(), ())
        if not dated:
            known = sorted({p.payer_id for found_ in policies.values() for p in found_})
            close = closest(payer, known)
            hint = f"; did you mean `{close}`?" if close else \
                (f"; rule files cover {', '.join(f'`{k}`' for k in known)}" if known else "")
            problems.append(f"{row.origin}: payer: no rule file for payer `{shown(payer)}`{hint}")
            continue
        named = [(p, i, r) for p in dated for i, r in enumerate(p.rules) if r.name == name]
        if not named:
            problems.append(f"{row.origin}: rule: {_acc_no_rule(name, payer, dated)}")
            continue
        for policy, index, rule in named:
            start, problem = _acc_period(row, values, rule)
            if problem is not None:
                problems.append(problem)
                break
            assert start is not None
            counted = COUNTED_BY_KIND[rule.kind]
            if counted not in values:
                problems.append(f"{row.origin}: {counted}: rule `{name}` ({_acc_cite(rule)}) counts {counted}; "
                                f"give the {counted} used through {through} in the `{counted}` column")
                break
            for other in USED_FIELDS:
                if other != counted and other in values:
                    notes.append(f"{row.origin}: {other}: rule `{name}` ({_acc_cite(rule)}) counts {counted}, not "
                                 f"{other}; the {other} given {'is' if other == 'amount' else 'are'} not counted")
            key = (payer.casefold(), patient, name, start)
            first = seen.get(key)
            if first is not None and first != row.origin:
                period = f"the period from {start}" if start else "the lifetime"
                problems.append(f"{row.origin}: rule: the same patient, payer, rule `{name}` and {period} are "
                                f"given already at {first}; give each limit's use once per patient and period")
                break
            seen[key] = row.origin
            figure = Accumulated(start, through, values[counted], str(row.origin))
            found.setdefault((payer.casefold(), patient, policy.source, policy.effective_from), {}) \
                .setdefault(index, []).append(figure)
    if problems:
        raise AccumulatorError(problems)
    return Accumulators({key: {index: tuple(sorted(figures)) for index, figures in by_rule.items()}
                         for key, by_rule in found.items()}, list(dict.fromkeys(notes)), count)


def _acc_values(row: AccumulatorRow) -> tuple[dict[str, Any], list[str]]:
    """The row's values (text, dates as YYYY-MM-DD, counts as int, amounts in cents), with the
    fields left empty left out; and its problems."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    raw = row.values
    for field in ACCUMULATOR_REQUIRED:
        if not raw.get(field, ""):
            problems.append(f"{row.origin}: {field}: missing; every row needs {', '.join(ACCUMULATOR_REQUIRED)}")
    for field in ("patient_id", "payer", "rule"):
        if raw.get(field, ""):
            values[field] = raw[field]
    for field in ("through", "period_start"):
        text = raw.get(field, "")
        if not text:
            continue
        if field == "period_start" and text.casefold() == LIFETIME:
            values[field] = LIFETIME
            continue
        date, message = _date(text)
        if message is not None:
            problems.append(f"{row.origin}: {field}: {message}")
        else:
            values[field] = date
    for field in ("visits", "units"):
        text = raw.get(field, "")
        if not text:
            continue
        value = _whole(text)
        if isinstance(value, int):
            values[field] = value
        elif text.startswith("-") and isinstance(_whole(text[1:].strip()), int):
            problems.append(f"{row.origin}: {field}: a count of {field} used cannot be negative, found `{text}`")
        else:
            problems.append(f"{row.origin}: {field}: expected a whole number of {field} used, such as 12, "
                            f"found `{shown(text)}`")
    text = raw.get("amount", "")
    if text:
        amount = parse_money(text)
        if amount is None:
            problems.append(f"{row.origin}: amount: expected an amount such as 1940.00, found `{shown(text)}`")
        elif money_too_large(amount):
            problems.append(f"{row.origin}: amount: an amount is at most {MAX_MONEY_TEXT}, found `{shown(text)}`")
        elif amount < 0:
            problems.append(f"{row.origin}: amount: an amount used cannot be negative, found `{text}`")
        elif amount != amount.quantize(amount.__class__("0.01")):
            problems.append(f"{row.origin}: amount: an amount has at most two decimals, found `{text}`")
        else:
            values["amount"] = to_cents(amount)
    if not problems and not any(field in raw and raw[field] for field in USED_FIELDS):
        problems.append(f"{row.origin}: visits: none of visits, units or amount is given; give the use of the "
                        "limit that the rule counts")
    return values, problems


def _acc_cite(rule: RuleInfo) -> str:
    return f"{rule.file}:{rule.line}: `{rule.text}`"


def _acc_no_rule(name: str, payer: str, dated: Sequence[_AccRuled]) -> str:
    limits = sorted({r.name for p in dated for r in p.rules
                     if r.name and r.kind in COUNTED_BY_KIND and r.param("period") in ACCUMULATED_PERIODS})
    message = f"payer `{shown(payer)}` has no rule named `{shown(name)}`"
    close = closest(name, limits)
    if close:
        return f"{message}; did you mean `{close}`?"
    if limits:
        return f"{message}; its named limits over a period are {', '.join(f'`{n}`' for n in limits)}"
    return (f"{message}; an accumulator names a limit over a period by its rule name, as in "
            "`visits: max 60 visits per calendar year`, and this payer's rule files name none")


def _acc_period(row: AccumulatorRow, values: dict[str, Any], rule: RuleInfo) -> tuple[str | None, str | None]:
    """The first date of the rule's period that holds the row's through date ("" for a
    lifetime), checked against the row's period_start; or the problem."""
    where, name, through = row.origin, values["rule"], values["through"]
    period = rule.param("period") if rule.kind in COUNTED_BY_KIND else ""
    if rule.kind not in COUNTED_BY_KIND:
        return None, (f"{where}: rule: rule `{name}` ({_acc_cite(rule)}) is no limit of visits, units or amount; "
                      "only those count earlier use")
    if period == "day":
        return None, (f"{where}: rule: rule `{name}` ({_acc_cite(rule)}) limits each day; a figure of a day would "
                      "be through that day, so it could never count for a visit of that day. Give that day's "
                      "earlier visits as --history rows instead")
    if period == "days":
        return None, (f"{where}: rule: rule `{name}` ({_acc_cite(rule)}) counts over the last "
                      f"{rule.param('days')} days, a period that starts on another date for every date judged; "
                      "an accumulated figure cannot say which of its visits fall in it. Give those visits as "
                      "--history rows instead")
    if period not in ACCUMULATED_PERIODS:
        return None, (f"{where}: rule: rule `{name}` ({_acc_cite(rule)}) limits each {period} on its own and counts no "
                      "earlier use; an accumulator applies to a limit per week, month, calendar year, plan year "
                      "or lifetime")
    starts = dict(rule.params).get("starts", "")
    start = since(period, through, 0, starts)
    given = values.get("period_start")
    if period == LIFETIME:
        if given is not None and given != LIFETIME:
            return None, (f"{where}: period_start: rule `{name}` ({_acc_cite(rule)}) counts over a lifetime, which has "
                          f"no first date; leave period_start empty or write `lifetime`, found `{given}`")
        return start, None
    if given is None:
        return start, None
    if given == LIFETIME:
        return None, (f"{where}: period_start: rule `{name}` ({_acc_cite(rule)}) counts {_acc_per(rule)}, not over a "
                      f"lifetime; the period that holds {through} starts on {start}")
    if given != start:
        if given > through:
            why = f"it is after the through date {through}"
        elif since(period, given, 0, starts) == given:
            why = f"that period ends before the through date {through}"
        else:
            why = "no period of this rule starts on that date"
        return None, (f"{where}: period_start: rule `{name}` ({_acc_cite(rule)}) counts {_acc_per(rule)}; the period "
                      f"that holds the through date {through} starts on {start}, not {given} ({why})")
    return start, None


def _acc_per(rule: RuleInfo) -> str:
    return f"per {rule.param('per')}"
