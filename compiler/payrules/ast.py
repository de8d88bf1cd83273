"""Parsed rule file → typed, immutable syntax tree (every node carries its `Span`)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import ClassVar, Union

import attrs

from payrules.source import Source, Span


@attrs.frozen(kw_only=True)
class Node:
    span: Span


@attrs.frozen(kw_only=True)
class StatementNode(Node):
    """Base of every statement: what a reason from it means when the author says nothing else."""

    kind: ClassVar[str]
    """Stable name of the statement kind (used in JSON and by explanation templates)."""
    severity: ClassVar[str]
    """`deny` (allowed becomes 0), `reduce` (allowed is lowered) or `warn` (amount unchanged)."""
    carc: ClassVar[str]
    """Default claim adjustment reason code."""
    rarc: ClassVar[str | None] = None
    """Default remittance advice remark code, if one fits."""


# --- literals -------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Word(Node):
    """A bare word or a quoted string, already unescaped: `DC`, `"ASH's cap"`."""

    value: str


@attrs.frozen(kw_only=True)
class Code(Node):
    """A procedure code as written: `97140`, `0042T`, `S8990` (shape checked later)."""

    value: str


@attrs.frozen(kw_only=True)
class CodeRange(Node):
    """Every code from `low` to `high` inclusive, in one family: `98940-98943`."""

    low: Code
    high: Code


@attrs.frozen(kw_only=True)
class SetRef(Node):
    """A named code set used in a list: `massage` after `set massage = 97124, 97140`."""

    name: str


CodeItem = Union[Code, CodeRange, SetRef]


@attrs.frozen(kw_only=True)
class Diagnosis(Node):
    """An ICD-10-CM code, or a prefix of one ending in `*`, as written: `M54.50`, `M62.83*`
    (shape checked later)."""

    value: str


@attrs.frozen(kw_only=True)
class DiagnosisRange(Node):
    """Every diagnosis from `low` to `high`, two codes of one shape and category: `M99.01-M99.05`
    (see `diagnosis_sets` for what a range holds)."""

    low: Diagnosis
    high: Diagnosis


DiagnosisItem = Union[Diagnosis, DiagnosisRange, SetRef]


@attrs.frozen(kw_only=True)
class DiagnosisList(Node):
    """A comma list of diagnoses, prefixes, ranges and diagnosis set names:
    `M54.5*, M99.01-M99.05, subluxation`."""

    items: tuple[DiagnosisItem, ...] = attrs.field(converter=tuple[DiagnosisItem, ...])


@attrs.frozen(kw_only=True)
class Date(Node):
    """A date as written, YYYY-MM-DD: `2024-01-01` (checked later)."""

    value: str


@attrs.frozen(kw_only=True)
class CodeList(Node):
    """A comma list of codes, ranges and set names: `97124, 97140, CMT`."""

    items: tuple[CodeItem, ...] = attrs.field(converter=tuple[CodeItem, ...])


@attrs.frozen(kw_only=True)
class Money(Node):
    """A dollar amount as written: `$45`, `$1,250.00` (decimals checked later)."""

    amount: Decimal


@attrs.frozen(kw_only=True)
class Share(Node):
    """A percentage as a `let` gives it: `75%` (checked later)."""

    percent: Decimal
    """The percentage as written (`75` for `75%`)."""


@attrs.frozen(kw_only=True)
class NameRef(Node):
    """A name that `let` gives an amount, share or number, used where one goes: `pt_daily_max`
    in `max 75% of pt_daily_max per day`."""

    name: str


# --- statements -----------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Only(StatementNode):
    """Only these codes are covered; any other code is denied: `only 97140`."""

    kind = "only"
    severity = "deny"
    carc = "204"

    codes: CodeList


@attrs.frozen(kw_only=True)
class NotCovered(StatementNode):
    """These codes are excluded from coverage; a line with one is denied: `not covered 97124, 97010`."""

    kind = "not_covered"
    severity = "deny"
    carc = "96"
    rarc = "N130"

    codes: CodeList


@attrs.frozen(kw_only=True)
class NoSameDay(StatementNode):
    """Deny `codes` when the patient has an `other` code on the same date of service:
    `no 97124, 97140 same day as 98940-98943 unless modifier 59`.
    """

    kind = "no_same_day"
    severity = "deny"
    carc = "97"
    rarc = "N20"

    codes: CodeList | None
    """The restricted codes; None means every code that is not in `other`."""
    other: CodeList
    unless: tuple[Word, ...] = attrs.field(converter=tuple[Word, ...])
    """Modifiers on the restricted line that exempt it."""
    scope: str = "day"
    """`day`: the patient's lines on the date, in any session; `session`: this session's lines."""


@attrs.frozen(kw_only=True)
class OnlyWith(StatementNode):
    """These codes are paid only with one of `other` on the same day or in the same session:
    `97124, 97140 only with 98940-98942 same day`.
    """

    kind = "only_with"
    severity = "deny"
    carc = "B15"

    codes: CodeList
    other: CodeList
    scope: str


@attrs.frozen(kw_only=True)
class RequiresModifier(StatementNode):
    """`codes` (when billed with one of `other`, if given) must carry one of the modifiers:
    `requires modifier 59 or XS on 97124 with 98940-98942 same day`, `requires modifier AT on 98940-98942`.
    """

    kind = "requires_modifier"
    severity = "deny"
    carc = "4"
    rarc = "N822"

    modifiers: tuple[Word, ...] = attrs.field(converter=tuple[Word, ...])
    codes: CodeList
    other: CodeList | None
    """None: the modifier is required whatever else is billed."""
    scope: str


@attrs.frozen(kw_only=True)
class NotPayableBy(StatementNode):
    """Lines rendered by one of these credentials are not paid: `not payable by LMT for 97124`."""

    kind = "not_payable_by"
    severity = "deny"
    carc = "170"
    rarc = "N95"

    credentials: tuple[Word, ...] = attrs.field(converter=tuple[Word, ...])
    codes: CodeList | None


@attrs.frozen(kw_only=True)
class Period(Node):
    """What a limit counts over: `per session`, `per calendar year`, `per 30 days`,
    `per plan year from July 1`. `kind` is unit, line, session, day, week, month, year,
    plan_year, days or lifetime."""

    kind: str
    days: Code | NameRef | None = None
    """For `per N days`: N as written (a whole number, checked later), or its `let` name."""
    month: Word | None = None
    day: Code | None = None
    """For `per plan year from July 1`: the month and day the plan year starts."""

    @property
    def over_history(self) -> bool:
        """True when the limit counts earlier sessions too (a day or longer)."""
        return self.kind not in ("unit", "line", "session")


@attrs.frozen(kw_only=True)
class Amount(Node):
    """`$45`, `75% of $60`, or `50% of charge`."""

    money: Money | NameRef | None
    percent: Decimal | None = None
    """The percentage as written (`75` for `75%`); None for a plain amount or a named share."""
    share: NameRef | None = None
    """The name of the share, when a `let` gives it: `massage_share` in `massage_share of $60`."""


@attrs.frozen(kw_only=True)
class MaxAmount(StatementNode):
    """At most this amount is allowed per unit, line, session, day or period; lines are paid in
    order until the amount is used up: `max $45 per session`, `max $28 per unit for 97124`,
    `max $500 per calendar year for massage`, `max 50% of charge for 97010`.
    """

    kind = "max_amount"
    severity = "reduce"
    carc = "45"

    amount: Amount
    period: Period
    codes: CodeList | None
    """The codes whose amounts count; None means every code."""


@attrs.frozen(kw_only=True)
class MaxVisits(StatementNode):
    """At most `count` visits with one of `codes` per period; the lines of later visits are denied:
    `max 12 visits per calendar year for 98940-98942, 97124, 97140`.
    """

    kind = "max_visits"
    severity = "deny"
    carc = "119"
    rarc = "N640"

    count: Code | NameRef
    period: Period
    codes: CodeList | None


@attrs.frozen(kw_only=True)
class MaxMinutes(StatementNode):
    """At most `count` minutes of `codes` per session; later minutes are not paid, nor the
    units they stand for: `max 60 minutes per session for 97124, 97140`.
    """

    kind = "max_minutes"
    severity = "reduce"
    carc = "151"
    rarc = "N362"

    count: Code | NameRef
    period: Period
    codes: CodeList | None


@attrs.frozen(kw_only=True)
class TimeRule(StatementNode):
    """Units of timed codes must be supported by the minutes on the line, counted by the CMS
    8-minute rule (minutes pooled over the date of service, per provider and discipline, across
    the day's sessions) or the AMA midpoint rule (each code's own minutes on the day):
    `units by cms rule for 97110, 97112, 97124, 97140`.
    """

    kind = "time_rule"
    severity = "reduce"
    carc = "151"

    method: Word
    """`cms` or `ama` as written (checked later)."""
    codes: CodeList
    """The timed codes: billed per 15 minutes."""


@attrs.frozen(kw_only=True)
class OneOf(StatementNode):
    """At most one line with one of these codes per session or day; later ones are denied:
    `one of 97124, 97140 per session unless modifier 59`.
    """

    kind = "one_of"
    severity = "deny"
    carc = "97"
    rarc = "N20"

    codes: CodeList
    scope: str
    unless: tuple[Word, ...] = attrs.field(converter=tuple[Word, ...])


@attrs.frozen(kw_only=True)
class Bundled(StatementNode):
    """`codes` are included in the payment for `other` and are not paid separately when billed
    with one of them: `97010 bundled into 97124, 97140`.
    """

    kind = "bundled"
    severity = "deny"
    carc = "97"
    rarc = "M15"

    codes: CodeList
    other: CodeList
    scope: str = "day"


@attrs.frozen(kw_only=True)
class NoDuplicate(StatementNode):
    """A code already billed for the patient on the same day by another provider is denied:
    `no duplicate same day for 97124, 97140`.
    """

    kind = "no_duplicate"
    severity = "deny"
    carc = "18"

    codes: CodeList | None


@attrs.frozen(kw_only=True)
class MaxUnits(StatementNode):
    """At most `count` units of `codes` per line, session, day or period; extra units are not paid:
    `max 4 units of 97124, 97140 per session`, `max 24 units of 97124 per calendar year`.
    """

    kind = "max_units"
    severity = "reduce"
    carc = "151"
    rarc = "N362"

    count: Code | NameRef
    """The limit as written (a whole number, checked later)."""
    codes: CodeList | None
    """The codes counted; None means every code."""
    period: Period


@attrs.frozen(kw_only=True)
class RequiresCredential(StatementNode):
    """The rendering provider must hold one of these credentials: `requires DC or PT NPI for 97124`."""

    kind = "requires_credential"
    severity = "deny"
    carc = "170"
    rarc = "N95"

    credentials: tuple[Word, ...] = attrs.field(converter=tuple[Word, ...])
    codes: CodeList | None
    """The codes the requirement applies to; None means every code."""


@attrs.frozen(kw_only=True)
class RequiresPrescription(StatementNode):
    """The line needs a prescription, optionally from given credentials:
    `requires prescription from MD or DO or DC for 97124, 97140`.
    """

    kind = "requires_prescription"
    severity = "deny"
    carc = "173"

    prescribers: tuple[Word, ...] = attrs.field(converter=tuple[Word, ...])
    """Credentials a prescriber must hold; empty means any prescription will do."""
    codes: CodeList | None


@attrs.frozen(kw_only=True)
class RequiresDiagnosis(StatementNode):
    """The line needs a diagnosis, optionally one matching given codes, prefixes, ranges or sets:
    `requires diagnosis M54.5*, M62.83* for 97124`. With `primary`, the line's primary
    diagnosis (its first; the claim's ABK code in an 837P) must match:
    `requires primary diagnosis subluxation for 98940-98942`.
    """

    kind = "requires_diagnosis"
    severity = "deny"
    carc = "11"

    diagnoses: DiagnosisList | None
    """None means any diagnosis will do (never None with `primary`)."""
    codes: CodeList | None
    primary: bool = False
    """Only the line's primary diagnosis counts."""


@attrs.frozen(kw_only=True)
class NotCoveredDiagnosis(StatementNode):
    """Lines with one of these diagnoses are not covered: `not covered with diagnosis Z00.00, F32*`.
    With `primary`, only when the primary diagnosis is one: `not covered with primary diagnosis Z00*`.
    """

    kind = "not_covered_diagnosis"
    severity = "deny"
    carc = "167"

    diagnoses: DiagnosisList
    codes: CodeList | None
    primary: bool = False
    """Only the line's primary diagnosis counts."""


@attrs.frozen(kw_only=True)
class NcciPtp(StatementNode):
    """CMS's NCCI procedure-to-procedure edits, read from tables in CMS's practitioner layout: a
    column-2 code is denied when its column-1 code is billed for the patient on the same date of
    service by the same rendering provider: `apply ncci ptp "tables/ptp.txt"`.
    """

    kind = "ncci_ptp"
    severity = "deny"
    carc = "236"
    rarc = "N20"

    files: tuple[Word, ...] = attrs.field(converter=tuple[Word, ...])
    """The table files as written, relative to the rule file."""
    tables: tuple[Source, ...] = attrs.field(default=(), converter=tuple[Source, ...], repr=False)
    """The files as read when the rule file is linked (one per file that could be read)."""


@attrs.frozen(kw_only=True)
class NcciMue(StatementNode):
    """CMS's medically unlikely edits (MUEs), read from a table in CMS's practitioner layout: a
    line whose units (or the day's units of its code, by adjudication indicator) exceed the
    code's MUE is denied: `apply ncci mue "tables/mue.csv"`.
    """

    kind = "ncci_mue"
    severity = "deny"
    carc = "151"
    rarc = "N362"

    files: tuple[Word, ...] = attrs.field(converter=tuple[Word, ...])
    tables: tuple[Source, ...] = attrs.field(default=(), converter=tuple[Source, ...], repr=False)


Statement = Union[Only, OnlyWith, NotCovered, NotPayableBy, RequiresModifier, NoSameDay, MaxAmount, MaxUnits,
                  MaxVisits, MaxMinutes, TimeRule, OneOf, Bundled, NoDuplicate, RequiresCredential,
                  RequiresPrescription, RequiresDiagnosis, NotCoveredDiagnosis, NcciPtp, NcciMue]


# --- file structure -------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Header(Node):
    """`payer ASH "American Specialty Health (example)"`: the payer id sessions are routed by."""

    payer_id: Word
    display_name: Word | None
    effective_from: Date | None = None
    effective_to: Date | None = None
    """The dates of service the whole file applies to (`effective from 2024-01-01 to ...`)."""


@attrs.frozen(kw_only=True)
class SetDef(Node):
    """`set CMT = 98940-98942`: a named code set usable in any code list of the file; or a
    diagnosis set, `set subluxation = M99.00-M99.05`, usable wherever diagnoses go."""

    name: Word
    codes: CodeList | DiagnosisList
    """A `DiagnosisList` when an item is a diagnosis; a list of set names only is a `CodeList`
    whose kind the checker finds from the sets it names."""


@attrs.frozen(kw_only=True)
class LetDef(Node):
    """`let pt_daily_max = $120`, `let massage_share = 75%`, `let chiro_visits = 20`: a name for
    an amount, a share or a whole number, usable wherever one goes in the file (and in files that
    include it)."""

    name: Word
    value: Money | Share | Code


@attrs.frozen(kw_only=True)
class Include(Node):
    """`include "stdlib/massage-session-cap-45"`: the sets and rules of another file."""

    path: Word


@attrs.frozen(kw_only=True)
class Drop(Node):
    """`drop session-cap`: leave out an included rule, by name."""

    name: Word


@attrs.frozen(kw_only=True)
class Rule(Node):
    """One policy line: an optional name, a statement, and options.
    `session-cap: max $45 per session carc 119 source "Manual 7.3" effective from 2024-01-01`
    """

    name: Word | None
    statement: Statement
    carc: Word | None = None
    rarc: Word | None = None
    warn: Word | None = None
    """Present when the rule only warns: its reason is shown but the amount is not changed."""
    source: Word | None = None
    """Where the policy comes from, shown with every reason."""
    effective_from: Date | None = None
    effective_to: Date | None = None
    """The rule applies to dates of service in this range (either end may be open)."""
    repeated: tuple[Word, ...] = attrs.field(default=(), converter=tuple[Word, ...])
    """Options given more than once (an error), by the keyword that repeats."""
    override: Word | None = None
    """The `override` keyword: this rule replaces the included rule of the same name."""
    when: Condition | None = None
    """The rule applies only to lines for which this holds (`when ...`)."""
    unless: Condition | None = None
    """The rule does not apply to lines for which this holds (`unless ...`)."""

    @property
    def text(self) -> str:
        """The statement as written in the file (without the name), with its conditions."""
        if self.when is None and self.unless is None:
            return self.statement.span.text
        parts = [self.statement.span.text]
        if self.when is not None:
            parts.append(f"when {self.when.span.text}")
        if self.unless is not None:
            parts.append(f"unless {self.unless.span.text}")
        return " ".join(parts)


def _field_defs(items: Iterable[FieldDef]) -> tuple[FieldDef, ...]:
    return tuple(items)


@attrs.frozen(kw_only=True)
class Module:
    """A whole rule file."""

    span: Span
    header: Header | None
    sets: tuple[SetDef, ...] = attrs.field(converter=tuple[SetDef, ...])
    rules: tuple[Rule, ...] = attrs.field(converter=tuple[Rule, ...])
    includes: tuple[Include, ...] = attrs.field(default=(), converter=tuple[Include, ...])
    drops: tuple[Drop, ...] = attrs.field(default=(), converter=tuple[Drop, ...])
    lets: tuple[LetDef, ...] = attrs.field(default=(), converter=tuple[LetDef, ...])
    fields: tuple[FieldDef, ...] = attrs.field(default=(), converter=_field_defs)
    """The declared facts (`field ...` lines), in file order."""


# --- facts and conditions -------------------------------------------------------------


@attrs.frozen(kw_only=True)
class FieldDef(Node):
    """A fact of the session or line that the rules use, read from the input column or key of the
    same name: `field accident_date: date per session if missing deny carc P21 rarc N130`."""

    name: Word
    type: Word
    """`date`, `code`, `text`, `number`, `money` or `yes/no` as written (checked later)."""
    scope: str = "session"
    """`session`: one value for the whole session (its lines must agree); `line`: each line's own."""
    missing: str = "reject"
    """What a line that lacks the value gets when a rule needs it: `reject` (not judged, a record
    error) or `deny` (denied with this declaration's reason)."""
    carc: Word | None = None
    rarc: Word | None = None
    """The reason codes of a `deny` when the value is missing."""


@attrs.frozen(kw_only=True)
class Value(Node):
    """One side of a comparison: a field (`accident_date`), a literal (`11`, `2024-03-01`, `$100`,
    `"A12"`), or a date moved by a number of days (`accident_date + 14 days`)."""

    kind: str
    """`field`, `code` (digits or a code-like word), `date`, `money` or `text`."""
    text: str
    """The field name or the literal as written (a quoted text unescaped)."""
    shift: int | None = None
    """Days added (negative: taken away), for `... + 14 days`."""
    shift_text: str = ""
    """The number of days as written (checked later)."""


@attrs.frozen(kw_only=True)
class Comparison(Node):
    """`date > accident_date + 14 days`, `units >= 2`, `place_of_service != 11`."""

    left: Value
    op: str
    right: Value


@attrs.frozen(kw_only=True)
class Membership(Node):
    """`place_of_service in (11, 22)`, `code not in (97124)`."""

    left: Value
    values: tuple[Value, ...] = attrs.field(converter=tuple[Value, ...])
    negated: bool = False


@attrs.frozen(kw_only=True)
class Flag(Node):
    """A yes/no field on its own: `when referral`."""

    name: str


def _parts(parts: Iterable[Condition]) -> tuple[Condition, ...]:
    return tuple(parts)


@attrs.frozen(kw_only=True)
class AllOf(Node):
    """`a and b`."""

    parts: tuple[Condition, ...] = attrs.field(converter=_parts)


@attrs.frozen(kw_only=True)
class AnyOf(Node):
    """`a or b`."""

    parts: tuple[Condition, ...] = attrs.field(converter=_parts)


Condition = Union[Comparison, Membership, Flag, AllOf, AnyOf]
