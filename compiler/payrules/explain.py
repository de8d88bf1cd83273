"""A reason recorded by generated code → a sentence for a biller. One template per statement kind.

Each template is registered with a key function that returns exactly the facts its sentence
reads, so the runner can reuse a sentence for lines with equal facts. Standard library only:
`payrules build` copies this module into standalone modules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from payrules.domain import CREDENTIALS, TIME_RULES, dollars, with_article
from payrules.icd10 import KIND, Finding, explanation
from payrules.runtime import Line, RuleInfo

Template = Callable[[RuleInfo, Line, object], str]
Key = Callable[[Line, object], object]


class _Entry(NamedTuple):
    template: Template
    key: Key


_TEMPLATES: dict[str, _Entry] = {}


def _template(kind: str, key: Key) -> Callable[[Template], Template]:
    def register(template: Template) -> Template:
        _TEMPLATES[kind] = _Entry(template, key)
        return template

    return register


@_template("only", key=lambda line, facts: line.code)
def _only(rule: RuleInfo, line: Line, facts: object) -> str:
    return f"{line.code} is not covered: this payer pays only for {rule.param('codes')}."


@_template("not_covered", key=lambda line, facts: line.code)
def _not_covered(rule: RuleInfo, line: Line, facts: object) -> str:
    return f"{line.code} is not covered: this payer excludes {rule.param('codes')}."


def _same_day_key(line: Line, facts: object) -> object:
    first, count = _others(facts)
    return (line.session_id, first.code, first.date, first.provider_npi, first.session_id, first.number, count)


def _others(facts: object) -> tuple[Line, int]:
    """The facts of a same-day reason: the first other line it cites, and how many there are.
    Only the first is kept, so a reason stays small on a day of thousands of lines."""
    assert isinstance(facts, tuple) and len(facts) == 2
    first, count = facts
    assert isinstance(first, Line) and isinstance(count, int) and count > 0
    return first, count


@_template("no_same_day", key=_same_day_key)
def _no_same_day(rule: RuleInfo, line: Line, facts: object) -> str:
    what = rule.param("codes") or "other services"
    when = "on the same day as" if rule.param("scope") == "day" else "in the same session as"
    sentence = f"{_first_other(line, facts)}; this payer does not pay {what} {when} {rule.param('other')}."
    if rule.param("unless"):
        sentence += f" The exception for modifier {rule.param('unless')} does not apply: this line has none of them."
    return sentence


def _first_other(line: Line, facts: object) -> str:
    first, count = _others(facts)
    where = "in this session" if first.session_id == line.session_id else f"in session {first.session_id}"
    more = count - 1
    extra = f", and {more:,} more such line{'s' if more > 1 else ''} that day" if more else ""
    return (f"{first.code} was billed for this patient on {first.date} by NPI {first.provider_npi} "
            f"({where}, line {first.number}){extra}")


@_template("only_with", key=lambda line, facts: (line.code, line.date, line.session_id))
def _only_with(rule: RuleInfo, line: Line, facts: object) -> str:
    where = f"on {line.date}" if rule.param("scope") == "day" else "in this session"
    together = "on the same day" if rule.param("scope") == "day" else "in the same session"
    return (f"This payer pays {rule.param('codes')} only with {rule.param('other')} {together}, and this "
            f"patient has none of them {where}.")


def _requires_modifier_key(line: Line, facts: object) -> object:
    return _same_day_key(line, facts) if facts else (line.code, tuple(sorted(line.modifiers)))


@_template("requires_modifier", key=_requires_modifier_key)
def _requires_modifier(rule: RuleInfo, line: Line, facts: object) -> str:
    if not facts:
        has = f"this line has {' '.join(sorted(line.modifiers))}" if line.modifiers else "this line has no modifier"
        return (f"This payer pays {rule.param('codes')} only with modifier {rule.param('modifiers')}, and "
                f"{has}.")
    together = "on the same day" if rule.param("scope") == "day" else "in the same session"
    return (f"{_first_other(line, facts)}; this payer pays {rule.param('codes')} {together} as "
            f"{rule.param('other')} only with modifier {rule.param('modifiers')}, and this line has none of them.")


CLAIM_TAXONOMY = "taxonomy"
"""The key of `Origin.headers` under which a line read from an 837P claim keeps the taxonomy
code its credential comes from: "" when the claim names none for the provider. Absent for
other inputs, whose credential is given as such."""


def _taxonomy(line: Line) -> str | None:
    headers = line.origin.headers
    return headers.get(CLAIM_TAXONOMY) if headers else None


def _no_credential(line: Line) -> str:
    """Why a line has no credential: what the claim says about its provider's taxonomy."""
    taxonomy = _taxonomy(line)
    if taxonomy is None:
        return "a provider with no credential on record"
    if not taxonomy:
        return "but the claim names no taxonomy for the provider, so their credential is not known"
    return (f"but the claim names taxonomy {taxonomy} for the provider, which does not tell which credential "
            "they hold")


def _credential_key(line: Line, facts: object) -> object:
    return line.code, line.provider_npi, line.provider_credential, _taxonomy(line)


@_template("not_payable_by", key=lambda line, facts: (line.code, line.provider_npi, line.provider_credential))
def _not_payable_by(rule: RuleInfo, line: Line, facts: object) -> str:
    credential = line.provider_credential
    service = rule.param("codes") or line.code
    return (f"{line.code} was billed under NPI {line.provider_npi}, {with_article(credential)} "
            f"({CREDENTIALS[credential]}); this payer does not pay {service} when {with_article(credential)} "
            f"renders it.")


@_template("requires_credential", key=_credential_key)
def _requires_credential(rule: RuleInfo, line: Line, facts: object) -> str:
    credential = line.provider_credential
    # A credential outside payrules' list comes only from a claim's taxonomy table.
    known = CREDENTIALS.get(credential)
    who = (f"{with_article(credential)} ({known})" if known else with_article(credential)) if credential \
        else _no_credential(line)
    service = rule.param("codes") or line.code
    wanted = rule.param("credentials")
    return (f"{line.code} was billed under NPI {line.provider_npi}, {who}; "
            f"this payer pays {service} only when the rendering provider is {with_article(wanted)}.")


def _per(rule: RuleInfo) -> str:
    """`per session`, `per calendar year`, `in a lifetime`."""
    per = rule.param("per")
    return "in a lifetime" if per.lower() == "lifetime" else f"per {per}"


def _of(rule: RuleInfo, prefix: str = " for ") -> str:
    codes = rule.param("codes")
    return f"{prefix}{codes}" if codes else ""


def _when(period: str, since: str) -> str:
    """When the earlier amounts or units of a period were paid: `on this day`, `since 2024-01-01`."""
    return "on this day" if period == "day" else f"since {since}" if since else "so far"


def _unit_count(count: int) -> str:
    return f"{count} unit{'s' if count != 1 else ''}"


def _reduced(before: int, after: int) -> str:
    return f"allowed reduced from {dollars(before)} to {dollars(after)}."


@_template("max_amount", key=lambda line, facts: (line.code, facts))
def _max_amount(rule: RuleInfo, line: Line, facts: object) -> str:
    assert isinstance(facts, tuple)
    before, cap, extra, since_or_charge = facts
    amount, period = rule.param("amount"), rule.param("period")
    limit = f"This payer allows at most {amount} {_per(rule)}{_of(rule)}"
    if period == "unit":
        return f"{limit}; {_unit_count(extra)} allow{'s' if extra == 1 else ''} {dollars(cap)}: {_reduced(before, cap)}"
    if period == "line":
        if amount.endswith("of the charge"):
            limit = f"This payer allows at most {amount}{_of(rule)} ({dollars(cap)} of {dollars(since_or_charge)})"
        return f"{limit}: {_reduced(before, cap)}"
    if period == "session":
        if cap == 0:
            return f"{limit}, and earlier lines of this session already used all of it: {_reduced(before, 0)}"
        return f"{limit}: {_reduced(before, cap)}"
    if not extra:
        return f"{limit}: {_reduced(before, cap)}"
    already = f"{dollars(extra)} was already allowed {_when(period, since_or_charge)}"
    return f"{limit}, and {already}: {_reduced(before, cap)}"


@_template("max_units", key=lambda line, facts: (line.code, facts))
def _max_units(rule: RuleInfo, line: Line, facts: object) -> str:
    assert isinstance(facts, tuple)
    billed, kept, before, after, used, since = facts
    limit, period = int(rule.param("count")), rule.param("period")
    noun = "unit" if limit == 1 else "units"
    what = f"{noun} of {rule.param('codes')}" if rule.param("codes") else noun
    if period == "line":
        sentence = f"{line.code} was billed with {billed} units; this payer allows at most {limit} {what} per line"
    elif period == "session":
        sentence = (f"Earlier lines of this session used {used} of the {limit} {what} this payer allows per "
                    f"session; {billed} were billed on this line, {kept} can be paid")
    else:
        sentence = (f"This payer allows at most {limit} {what} {_per(rule)}, and {used} were already paid "
                    f"{_when(period, since)}; {billed} were billed on this line, {kept} can be paid")
    return f"{sentence}: {_reduced(before, after)}"


@_template("max_visits", key=lambda line, facts: (line.code, facts))
def _max_visits(rule: RuleInfo, line: Line, facts: object) -> str:
    assert isinstance(facts, tuple)
    visits, since = facts
    limit = int(rule.param("count"))
    counted = f"visit{'s' if limit != 1 else ''}" + (f" with {rule.param('codes')}" if rule.param("codes") else "")
    return (f"This payer pays at most {limit} {counted} {_per(rule)}, and this patient already had {visits} "
            f"{_when(rule.param('period'), since)}: {line.code} on this visit is not paid.")


@_template("max_minutes", key=lambda line, facts: (line.code, facts))
def _max_minutes(rule: RuleInfo, line: Line, facts: object) -> str:
    assert isinstance(facts, tuple)
    minutes, kept, before, after = facts
    limit = int(rule.param("count"))
    what = f"minutes of {rule.param('codes')}" if rule.param("codes") else "minutes"
    return (f"This payer pays at most {limit} {what} per session; earlier lines used {limit - kept}, so "
            f"{kept} of this line's {minutes} minutes can be paid: {_reduced(before, after)}")


@_template("time_rule", key=lambda line, facts: (line.code, line.units, facts))
def _time_rule(rule: RuleInfo, line: Line, facts: object) -> str:
    assert isinstance(facts, tuple)
    minutes, billed, supported, before, after, pooled, timed_lines = facts
    method = rule.param("method")
    units = _unit_count(supported) if supported else "no unit"
    if method == "cms" and timed_lines > 1:
        support = (f"under {TIME_RULES[method]} this session's {pooled} timed minutes (on {timed_lines} lines) "
                   f"support {units} for this line's {minutes} minutes")
    else:
        support = f"{minutes} minutes support {units} under {TIME_RULES[method]}"
    result = _reduced(before, after) if supported else "not paid."
    return f"{line.code} was billed with {_unit_count(billed)}; {support}: {result}"


@_template("one_of", key=_same_day_key)
def _one_of(rule: RuleInfo, line: Line, facts: object) -> str:
    per = "per day" if rule.param("scope") == "day" else "per session"
    sentence = f"{_first_other(line, facts)}; this payer pays only one of {rule.param('codes')} {per}."
    if rule.param("unless"):
        sentence += f" The exception for modifier {rule.param('unless')} does not apply: this line has none of them."
    return sentence


@_template("bundled", key=_same_day_key)
def _bundled(rule: RuleInfo, line: Line, facts: object) -> str:
    when = "on the same day as" if rule.param("scope") == "day" else "in the same session as"
    return (f"{_first_other(line, facts)}; this payer includes {rule.param('codes')} in the payment for "
            f"{rule.param('other')}, so it is not paid separately {when} them.")


@_template("no_duplicate", key=_same_day_key)
def _no_duplicate(rule: RuleInfo, line: Line, facts: object) -> str:
    return (f"{_first_other(line, facts)}, another provider; this payer pays "
            f"{rule.param('codes') or 'each code'} once per patient and day.")


@_template("requires_prescription", key=lambda line, facts: (line.code, line.prescription_by, _taxonomy(line) is None))
def _requires_prescription(rule: RuleInfo, line: Line, facts: object) -> str:
    service = rule.param("codes") or line.code
    wanted = rule.param("prescribers")
    if not line.prescription_by:
        need = f"a prescription from {with_article(wanted)}" if wanted else "a prescription"
        if _taxonomy(line) is not None:  # read from an 837P claim, which carries no prescription
            return (f"{line.code} was billed on an 837P claim, which does not give a prescriber's credential; "
                    f"this payer pays {service} only with {need}.")
        return f"{line.code} was billed with no prescription on record; this payer pays {service} only with {need}."
    return (f"{line.code} was prescribed by {with_article(line.prescription_by)}; this payer pays {service} "
            f"only when {with_article(wanted)} prescribed it.")


@_template("requires_diagnosis", key=lambda line, facts: (line.code, line.diagnoses))
def _requires_diagnosis(rule: RuleInfo, line: Line, facts: object) -> str:
    service = rule.param("codes") or line.code
    patterns = rule.param("patterns")
    need = f"a diagnosis matching {patterns}" if patterns else "a diagnosis"
    if not line.diagnoses:
        return f"{line.code} was billed with no diagnosis; this payer pays {service} only with {need}."
    return (f"{line.code} was billed with {', '.join(line.diagnoses)}; this payer pays {service} "
            f"only with {need}.")


@_template("not_covered_diagnosis", key=lambda line, facts: (line.code, facts))
def _not_covered_diagnosis(rule: RuleInfo, line: Line, facts: object) -> str:
    assert isinstance(facts, tuple) and facts
    service = rule.param("codes") or "services"
    return (f"{line.code} was billed with {', '.join(facts)}; this payer does not cover {service} "
            f"with a diagnosis matching {rule.param('patterns')}.")


@_template(KIND, key=lambda line, facts: facts)
def _code_set(rule: RuleInfo, line: Line, facts: object) -> str:
    assert isinstance(facts, tuple) and all(isinstance(f, Finding) for f in facts)
    return explanation(facts)


@_template("missing_field", key=lambda line, facts: None)
def _missing_field(rule: RuleInfo, line: Line, facts: object) -> str:
    return (f"{rule.param('words').capitalize()} is missing (the `{rule.param('field')}` field); a rule of this "
            f"payer needs it, and the payer denies a line without it.")


_BUILT_IN_VALUES = {"date": "date", "code": "code", "units": "units", "minutes": "minutes", "charge": "charge",
                    "credential": "provider_credential", "place_of_service": "place_of_service"}


def condition_values(rule: RuleInfo, line: Line) -> tuple[tuple[str, str], ...]:
    """The values of the fields a rule's condition reads, as shown: (words, value)."""
    names = dict(rule.params).get("condition_fields", "")
    found = []
    for name in names.split(",") if names else ():
        attribute = _BUILT_IN_VALUES.get(name)
        if attribute is not None:
            value: object = getattr(line, attribute)
            words = {"date": "the date of service", "code": "the procedure code", "units": "the units billed",
                     "minutes": "the minutes", "charge": "the charge", "credential": "the provider's credential",
                     "place_of_service": "the place of service"}[name]
        elif name in line.facts:
            value = line.facts[name]
            words = "the first visit" if name == "first_visit_date" else "the " + name.replace("_", " ")
        else:
            continue
        if name == "charge" and isinstance(value, int):
            shown = dollars(value)
        elif isinstance(value, bool):
            shown = "yes" if value else "no"
        else:
            shown = "none" if value in (None, "") else str(value)
        found.append((words, shown))
    return tuple(found)


def _with_condition(rule: RuleInfo, line: Line, sentence: str) -> str:
    condition = dict(rule.params).get("condition")
    if not condition:
        return sentence
    values = condition_values(rule, line)
    here = "; here " + ", ".join(f"{words} is {value}" for words, value in values) if values else ""
    return f"{sentence} The rule applies {condition}{here}."


def _entry(rule: RuleInfo) -> _Entry:
    entry = _TEMPLATES.get(rule.kind)
    if entry is None:  # a statement kind without a template is a bug in payrules
        raise LookupError(f"no explanation template for statement kind `{rule.kind}`")
    return entry


def explain(rule: RuleInfo, line: Line, facts: object) -> str:
    """The sentence for one reason; it cites the facts the rule used, and the rule's source."""
    sentence = _with_condition(rule, line, _entry(rule).template(rule, line, facts))
    if rule.severity == "warn":
        would = "denied" if rule.outcome == "deny" else "reduced"
        sentence = f"May be {would} (a warning; the amount is not changed): {sentence}"
    if rule.source:
        sentence += f" Source: {rule.source}."
    return sentence


def explanation_key(rule: RuleInfo, line: Line, facts: object) -> object:
    """What `explain` reads from the line and facts for this rule, as a hashable value."""
    key = _entry(rule).key(line, facts)
    return (key, condition_values(rule, line)) if dict(rule.params).get("condition") else key
