"""A reason recorded by generated code → a sentence for a biller. One template per statement kind.

Each template is registered with a key function that returns exactly the facts its sentence
reads, so the runner can reuse a sentence for lines with equal facts. Standard library only:
`payrules build` copies this module into standalone modules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from payrules.domain import BENEFIT_PERIODS, CREDENTIALS, TIME_RULES, dollars, with_article
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
    return f"{line.code} {_is_not(rule)} covered: this payer pays only for {rule.param('codes')}."


@_template("not_covered", key=lambda line, facts: line.code)
def _not_covered(rule: RuleInfo, line: Line, facts: object) -> str:
    return f"{line.code} {_is_not(rule)} covered: this payer excludes {rule.param('codes')}."


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


@_template("only_with", key=lambda line, facts: (line.code, line.date, line.session_id, facts))
def _only_with(rule: RuleInfo, line: Line, facts: object) -> str:
    where = f"on {line.date}" if rule.param("scope") == "day" else "in this session"
    together = "on the same day" if rule.param("scope") == "day" else "in the same session"
    if facts:  # the line's own code is in the qualifying list: its lines do not qualify it
        return (f"This payer pays {rule.param('codes')} only with {rule.param('other')} {together}, and this "
                f"patient has none of them {where} but {line.code} itself; a line is not qualified by a line "
                f"of its own code.")
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


def _limit(rule: RuleInfo) -> str:
    """A limit as the rule gives it: `4`, or with a `let` name, the name and its value: `pt_units (4)`."""
    name = dict(rule.params).get("count_name")
    return f"{name} ({rule.param('count')})" if name else rule.param("count")


def _used_up(period: str, left: int) -> str:
    """`, so the benefit is used up` when nothing is left of a benefit period's limit."""
    return ", so the benefit is used up" if period in BENEFIT_PERIODS and not left else ""


def _accumulated(facts: tuple[object, ...], shown: Callable[[int], str], of: str = "of them") -> str:
    """` (59 of them through 2026-03-31, from the accumulators file: acc.csv:2)` when a limit
    over a period counted a figure of an accumulators file (the last fact), else ""."""
    found = facts[-1] if facts else None
    if not isinstance(found, tuple):
        return ""
    used, through, where = found
    return f" ({shown(used)} {of} through {through}, from the accumulators file: {where})"


def _unit_count(count: int) -> str:
    return f"{count} unit{'s' if count != 1 else ''}"


def _would(rule: RuleInfo, verb: str) -> str:
    """A verb as a rule that changes amounts says it, or as a warning does (`reduced` → `would be
    reduced`): a warning tells what would happen, not what did."""
    if rule.severity != "warn":
        return verb
    return f"would be {verb}"


def _is_not(rule: RuleInfo) -> str:
    """`is not`, or for a warning `would not be`."""
    return "would not be" if rule.severity == "warn" else "is not"


def _reduced(before: int, after: int, rule: RuleInfo | None = None) -> str:
    reduced = _would(rule, "reduced") if rule is not None else "reduced"
    return f"allowed {reduced} from {dollars(before)} to {dollars(after)}."


@_template("max_amount", key=lambda line, facts: (line.code, facts))
def _max_amount(rule: RuleInfo, line: Line, facts: object) -> str:
    assert isinstance(facts, tuple)
    before, cap, extra, since_or_charge = facts[:4]
    amount, period = rule.param("amount"), rule.param("period")
    limit = f"This payer allows at most {amount} {_per(rule)}{_of(rule)}"
    if period == "unit":
        allows = f"{_unit_count(extra)} allow{'s' if extra == 1 else ''} {dollars(cap)}"
        return f"{limit}; {allows}: {_reduced(before, cap, rule)}"
    if period == "line":
        if amount.endswith("of the charge"):
            limit = f"This payer allows at most {amount}{_of(rule)} ({dollars(cap)} of {dollars(since_or_charge)})"
        return f"{limit}: {_reduced(before, cap, rule)}"
    if period == "session":
        if cap == 0:
            return f"{limit}, and earlier lines of this session already used all of it: {_reduced(before, 0, rule)}"
        return f"{limit}: {_reduced(before, cap, rule)}"
    if not extra:
        return f"{limit}: {_reduced(before, cap, rule)}"
    already = (f"{dollars(extra)} was already allowed {_when(period, since_or_charge)}"
               f"{_accumulated(facts[4:], dollars, 'of it')}")
    return f"{limit}, and {already}{_used_up(period, cap)}: {_reduced(before, cap, rule)}"


@_template("max_units", key=lambda line, facts: (line.code, facts))
def _max_units(rule: RuleInfo, line: Line, facts: object) -> str:
    assert isinstance(facts, tuple)
    billed, kept, before, after, used, since = facts[:6]
    limit, period = int(rule.param("count")), rule.param("period")
    noun = "unit" if limit == 1 else "units"
    what = f"{noun} of {rule.param('codes')}" if rule.param("codes") else noun
    if period == "line":
        sentence = (f"{line.code} was billed with {billed} units; this payer allows at most {_limit(rule)} {what} "
                    "per line")
    elif period == "session":
        sentence = (f"Earlier lines of this session used {used} of the {_limit(rule)} {what} this payer allows per "
                    f"session; {billed} were billed on this line, {kept} can be paid")
    else:
        paid = f"{used} were already paid {_when(period, since)}{_accumulated(facts[6:], str)}"
        found = facts[6] if len(facts) > 6 else None
        if isinstance(found, tuple) and found[0] > used:  # `used` stops at the limit; the file's figure may not
            paid = f"the accumulators file ({found[2]}) gives {found[0]} already paid through {found[1]}"
        sentence = (f"This payer allows at most {_limit(rule)} {what} {_per(rule)}, and {paid}"
                    f"{_used_up(period, kept)}; {billed} were billed on this line, {kept} can be paid")
    return f"{sentence}: {_reduced(before, after, rule)}"


@_template("max_visits", key=lambda line, facts: (line.code, facts))
def _max_visits(rule: RuleInfo, line: Line, facts: object) -> str:
    assert isinstance(facts, tuple)
    visits, since = facts[:2]
    limit = int(rule.param("count"))
    counted = f"visit{'s' if limit != 1 else ''}" + (f" with {rule.param('codes')}" if rule.param("codes") else "")
    return (f"This payer pays at most {_limit(rule)} {counted} {_per(rule)}, and this patient already had {visits} "
            f"{_when(rule.param('period'), since)}{_accumulated(facts[2:], str)}: {line.code} on this visit "
            f"{_is_not(rule)} paid.")


@_template("max_minutes", key=lambda line, facts: (line.code, line.minutes, facts))
def _max_minutes(rule: RuleInfo, line: Line, facts: object) -> str:
    assert isinstance(facts, tuple)
    minutes, kept, before, after, billed, paid = facts
    limit = int(rule.param("count"))
    what = f"minutes of {rule.param('codes')}" if rule.param("codes") else "minutes"
    own = f"this line's {minutes} minutes"
    if line.minutes is not None and minutes != line.minutes:
        own = f"the {minutes} minutes of this line that earlier limits left"
    units = f" ({paid} of its {_unit_count(billed)})" if paid != billed else ""
    return (f"This payer pays at most {_limit(rule)} {what} per session; earlier lines used {limit - kept}, so "
            f"{kept} of {own}{units} can be paid: {_reduced(before, after, rule)}")


def _pool(pool: tuple[str, str, str, str, int, int, int, int]) -> str:
    """`the 47 timed minutes on 2024-03-04 by NPI 1000000004 (GP), on 3 lines across 2 sessions`."""
    date, npi, discipline, code, minutes, lines, sessions, earlier = pool
    what = f"{minutes} minutes of {code}" if code else f"{minutes} timed minutes"
    by = f"NPI {npi}" + (f" ({discipline})" if discipline else "")
    where = f"across {sessions} sessions" if sessions > 1 else "in one session"
    if earlier and sessions > 1:  # a pool always holds a line judged now, so never all of them
        where += f" ({earlier} from the history)"
    return f"the {what} on {date} by {by}, on {lines} lines {where},"


@_template("time_rule", key=lambda line, facts: (line.code, line.units, facts))
def _time_rule(rule: RuleInfo, line: Line, facts: object) -> str:
    assert isinstance(facts, tuple)
    minutes, billed, supported, before, after, pool = facts
    method = rule.param("method")
    units = _unit_count(supported) if supported else "no unit"
    if pool[5] > 1:
        support = f"under {TIME_RULES[method]} {_pool(pool)} support {units} for this line's {minutes} minutes"
    else:
        support = f"{minutes} minutes support {units} under {TIME_RULES[method]}"
    if supported:
        result = _reduced(before, after, rule)
    else:
        result = "would not be paid." if rule.severity == "warn" else "not paid."
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
            f"{rule.param('other')}, so it {_is_not(rule)} paid separately {when} them.")


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
    if dict(rule.params).get("primary"):
        return _requires_primary_diagnosis(service, patterns, line)
    need = f"a diagnosis matching {patterns}" if patterns else "a diagnosis"
    if not line.diagnoses:
        return f"{line.code} was billed with no diagnosis; this payer pays {service} only with {need}."
    return (f"{line.code} was billed with {', '.join(line.diagnoses)}; this payer pays {service} "
            f"only with {need}.")


def _requires_primary_diagnosis(service: str, patterns: str, line: Line) -> str:
    need = f"only when the primary diagnosis (the first listed) matches {patterns}"
    if not line.diagnoses:
        return f"{line.code} was billed with no diagnosis; this payer pays {service} {need}."
    return f"{line.code} was billed with {_primary_first(line.diagnoses)}; this payer pays {service} {need}."


def _primary_first(diagnoses: tuple[str, ...]) -> str:
    """`M54.50 as the primary diagnosis (then M99.03)`."""
    rest = f" (then {', '.join(diagnoses[1:])})" if len(diagnoses) > 1 else ""
    return f"{diagnoses[0]} as the primary diagnosis{rest}"


@_template("not_covered_diagnosis", key=lambda line, facts: (line.code, facts, line.diagnoses))
def _not_covered_diagnosis(rule: RuleInfo, line: Line, facts: object) -> str:
    assert isinstance(facts, tuple) and facts
    service = rule.param("codes") or "services"
    if dict(rule.params).get("primary"):
        return (f"{line.code} was billed with {_primary_first(line.diagnoses)}; this payer does not cover {service} "
                f"when the primary diagnosis matches {rule.param('patterns')}.")
    return (f"{line.code} was billed with {', '.join(facts)}; this payer does not cover {service} "
            f"with a diagnosis matching {rule.param('patterns')}.")


def _ncci_ptp_key(line: Line, facts: object) -> object:
    assert isinstance(facts, tuple)
    file, row, column1, indicator, rationale, first, count = facts
    return (line.code, line.modifiers, line.session_id, file, row, _same_day_key(line, (first, count)))


@_template("ncci_ptp", key=_ncci_ptp_key)
def _ncci_ptp(rule: RuleInfo, line: Line, facts: object) -> str:
    assert isinstance(facts, tuple)
    file, row, column1, indicator, rationale, first, count = facts
    head = f"{file} row {row}: {line.code} is a column-2 code of {column1} (modifier indicator {indicator}"
    if indicator == "0":
        sentence = (f"{head}: no modifier bypasses it), billed on the same day by the same provider: "
                    f"{_first_other(line, (first, count))}.")
    else:
        sentence = (f"{head}), billed on the same day by the same provider without an NCCI-associated modifier: "
                    f"{_first_other(line, (first, count))}.")
        if line.modifiers:
            mods = sorted(line.modifiers)
            sentence += (f" This line's modifier{'s' if len(mods) > 1 else ''} {', '.join(mods)} "
                         f"{'are' if len(mods) > 1 else 'is'} not NCCI-associated.")
    return f"{sentence} The table's rationale: {rationale}." if rationale else sentence


@_template("ncci_mue", key=lambda line, facts: (line.code, line.units, line.provider_npi, line.date, facts))
def _ncci_mue(rule: RuleInfo, line: Line, facts: object) -> str:
    assert isinstance(facts, tuple)
    file, row, value, mai, rationale, total, earlier = facts
    limit = f"{file} row {row}: the MUE of {line.code} is {_unit_count(value)}"
    if mai == "1":
        sentence = (f"{limit} per line (adjudication indicator 1), and this line has {_unit_count(total)}: "
                    "all units of the line are denied.")
    else:
        before = f", {earlier} of them in earlier sessions" if earlier else ""
        sentence = (f"{limit} per date of service (adjudication indicator {mai}), and NPI {line.provider_npi} "
                    f"billed {_unit_count(total)} of it for this patient on {line.date}{before}: all units of "
                    f"{line.code} in this session are denied.")
    return f"{sentence} The table's rationale: {rationale}." if rationale else sentence


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


_AFTER = {"max_amount": 1, "max_units": 3, "max_minutes": 3, "time_rule": 4}
"""Where the facts of a reducing reason hold the amount the line would be allowed."""


def _warning(rule: RuleInfo, facts: object) -> str:
    """What a warning rule would do to the line if the payer applied it."""
    if rule.outcome == "deny":
        return "Would be denied if the payer applies this rule"
    place = _AFTER.get(rule.kind)
    if place is not None and isinstance(facts, tuple) and isinstance(facts[place], int):
        return f"Would be reduced to {dollars(facts[place])} if the payer applies this rule"
    return "Would be reduced if the payer applies this rule"


def explain(rule: RuleInfo, line: Line, facts: object) -> str:
    """The sentence for one reason; it cites the facts the rule used, and the rule's source."""
    sentence = _with_condition(rule, line, _entry(rule).template(rule, line, facts))
    if rule.severity == "warn":
        sentence = f"{_warning(rule, facts)} (a warning: the amount is not changed): {sentence}"
    if rule.source:
        sentence += f" Source: {rule.source}."
    return sentence


def explanation_key(rule: RuleInfo, line: Line, facts: object) -> object:
    """What `explain` reads from the line and facts for this rule, as a hashable value."""
    return explanation_key_of(rule)(line, facts)


def explanation_key_of(rule: RuleInfo) -> Callable[[Line, object], object]:
    """`explanation_key` for one rule, as a function of the line and facts: the rule's template
    and condition are looked up once, not for every reason."""
    key = _entry(rule).key
    if dict(rule.params).get("condition"):
        return lambda line, facts: (key(line, facts), condition_values(rule, line))
    return key
