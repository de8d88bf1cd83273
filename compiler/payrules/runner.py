"""Validated sessions + compiled policies → a `Report`: a decision and its reasons for every line."""

from __future__ import annotations

import functools
import itertools
import json
import operator
from collections.abc import Callable, Mapping, Sequence

from typing import Any, NamedTuple

import attrs

from payrules.compiler import Policy
from payrules.explain import explain, explanation_key_of
from payrules.fields import Batch, RecordError
from payrules.judging import (
    PAID,
    REDUCED,
    Accrued,
    History,
    Judged,
    by_payer,
    error_dict,
    judge_sessions,
    kept_of,
    line_dict,
    reason_dict,
    rule_of,
    session_dict,
    sort_errors,
    summary_dict,
    unknown_payer,
)
from payrules.runtime import Line, Origin, RuleInfo, Session
from payrules.runtime import Reason as Reason_


REASON_CACHE_SIZE = 50_000


@attrs.frozen(kw_only=True, cache_hash=True)
class Reason:
    """Why a line was denied, reduced or flagged, and which rule said so."""

    rule: str | None
    """The rule's name, when the rule file gives one."""
    kind: str
    file: str
    line: int
    column: int
    text: str
    """The statement as written in the rule file."""
    message: str
    severity: str
    carc: str
    rarc: str | None
    source: str | None = None
    """Where the policy comes from, when the rule cites it."""
    amount: int = 0
    """Cents this reason took from the line's allowed amount: what a reduction lowered it by;
    for a denied line, all of it for the first denying reason (the code set's, else the first
    in the rule file) and 0 for the later ones; 0 for a warning. A line's amounts add up to
    its charge minus its allowed amount."""
    info: RuleInfo = attrs.field(eq=False, repr=False)
    """The compiled rule this reason came from."""

    @property
    def location(self) -> str:
        """`file:line` in a rule file, or what gave the reason when no rule file did
        (`ICD-10-CM code set, CDC April 2026 release`)."""
        return f"{self.file}:{self.line}" if self.line else self.file

    def to_dict(self) -> dict[str, Any]:
        return reason_dict(self.info, self.message, self.amount)


@attrs.frozen(kw_only=True)
class LineResult:
    """The decision on one service line."""

    input: Line
    """The line as read (code, modifiers, units, charge, provider, where it came from)."""
    allowed: int
    """Allowed amount in cents."""
    status: str
    """`paid`, `reduced` or `denied`."""
    reasons: tuple[Reason, ...]
    units_paid: int
    """Units the allowed amount pays for: the units billed, fewer when a limit or a time rule
    lowered them, 0 when the line is denied."""

    @property
    def line(self) -> int:
        return self.input.number

    @property
    def code(self) -> str:
        return self.input.code

    @property
    def modifiers(self) -> tuple[str, ...]:
        return sorted_modifiers(self.input.modifiers)

    @property
    def units(self) -> int:
        return self.input.units

    @property
    def charge(self) -> int:
        """Billed amount in cents."""
        return self.input.charge

    @property
    def origin(self) -> Origin:
        return self.input.origin

    @property
    def kept(self) -> dict[str, str]:
        """The caller's ids kept with the line (`keep=`, `--keep`), by name in the order asked."""
        return dict(kept_of(self.input.origin))

    def to_dict(self) -> dict[str, Any]:
        return line_dict(self.input, self.allowed, self.status, [r.to_dict() for r in self.reasons],
                         self.units_paid)


@functools.lru_cache(maxsize=4096)
def sorted_modifiers(modifiers: frozenset[str]) -> tuple[str, ...]:
    return tuple(sorted(modifiers))


@attrs.frozen(kw_only=True)
class SessionResult:
    session_id: str
    patient_id: str
    date: str
    payer: str
    payer_name: str
    rules_file: str
    lines: tuple[LineResult, ...]

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of this session (see the shipped schema)."""
        session = Session(self.session_id, self.patient_id, self.date, self.payer, ())
        return session_dict(session, self.payer_name, self.rules_file, [line.to_dict() for line in self.lines])


@attrs.frozen(kw_only=True)
class Summary:
    """Counts of lines; `judged + rejected == lines_read` and `paid + reduced + denied == judged`."""

    lines_read: int
    judged: int
    paid: int
    reduced: int
    denied: int
    rejected: int
    charged: int
    allowed: int

    def to_dict(self) -> dict[str, Any]:
        return summary_dict(self.lines_read, self.judged, self.paid, self.reduced, self.denied, self.rejected,
                            self.charged, self.allowed)


@attrs.frozen(kw_only=True)
class Report:
    sessions: tuple[SessionResult, ...]
    errors: tuple[RecordError, ...]
    summary: Summary

    @property
    def all_paid(self) -> bool:
        s = self.summary
        return s.paid == s.lines_read

    def to_dict(self) -> dict[str, Any]:
        """The same content as `payrules check --format json`: sessions, errors and summary."""
        return {"sessions": [s.to_dict() for s in self.sessions], "errors": [error_dict(e) for e in self.errors],
                "summary": self.summary.to_dict()}

    def to_json(self, indent: int | None = 2) -> str:
        """`to_dict()` as JSON text; it validates against the shipped schema."""
        return json.dumps(self.to_dict(), indent=indent)


@attrs.frozen(kw_only=True)
class Block:
    """The judged sessions and rejected lines of one batch of input."""

    sessions: tuple[SessionResult, ...]
    errors: tuple[RecordError, ...]
    lines_read: int


_STATUS, _CHARGE, _ALLOWED = operator.attrgetter("status"), operator.attrgetter("input.charge"), \
    operator.attrgetter("allowed")
_JUDGED_LINES = operator.itemgetter(2)
"""The judged lines of a (session, policy, judged lines) of a `Judgement`."""
_JUDGED_LINE, _JUDGED_CENTS, _JUDGED_STATUS = operator.itemgetter(0), operator.itemgetter(1), operator.itemgetter(2)
"""The line, allowed cents and status of a judged line (see `Judged`)."""
_LINE_CHARGE = operator.attrgetter("charge")


@attrs.define
class Tally:
    """Running counts over blocks, for the summary."""

    lines_read: int = 0
    judged: int = 0
    paid: int = 0
    reduced: int = 0
    denied: int = 0
    rejected: int = 0
    charged: int = 0
    allowed: int = 0

    def add_judged(self, judgement: Judgement) -> None:
        """`add` for a block not yet turned into result objects."""
        self.lines_read += judgement.lines_read
        self.rejected += len(judgement.errors)
        judged = list(itertools.chain.from_iterable(map(_JUDGED_LINES, judgement.sessions)))
        statuses = list(map(_JUDGED_STATUS, judged))
        paid, reduced = statuses.count(PAID), statuses.count(REDUCED)
        self.judged += len(judged)
        self.paid += paid
        self.reduced += reduced
        self.denied += len(judged) - paid - reduced
        self.charged += sum(map(_LINE_CHARGE, map(_JUDGED_LINE, judged)))
        self.allowed += sum(map(_JUDGED_CENTS, judged))

    def add(self, block: Block) -> None:
        self.lines_read += block.lines_read
        self.rejected += len(block.errors)
        lines = [line for session in block.sessions for line in session.lines]
        statuses = list(map(_STATUS, lines))
        self.judged += len(lines)
        self.paid += statuses.count(PAID)
        self.reduced += statuses.count(REDUCED)
        self.denied += len(lines) - statuses.count(PAID) - statuses.count(REDUCED)
        self.charged += sum(map(_CHARGE, lines))
        self.allowed += sum(map(_ALLOWED, lines))

    def merge(self, other: Tally) -> None:
        """Add the counts of another tally (of other blocks)."""
        for field in attrs.fields(Tally):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    def summary(self) -> Summary:
        return Summary(lines_read=self.lines_read, judged=self.judged, paid=self.paid, reduced=self.reduced,
                       denied=self.denied, rejected=self.rejected, charged=self.charged, allowed=self.allowed)


Policies = Mapping[str, Sequence[Policy]]
"""Policies by payer id in lower case, in date order (see `policies_by_payer`)."""


def policies_by_payer(policies: list[Policy]) -> dict[str, tuple[Policy, ...]]:
    """Index policies by payer id (case-insensitive); a payer may have one per date range."""
    return by_payer(policies)


def judge_batch(batch: Batch, policies: Policies, history: History | None = None,
                accumulators: Accrued | None = None) -> Block:
    """Judge every session of `batch` with the policy of its payer (keys from `policies_by_payer`).

    Facts about the day and earlier sessions come from the lines of the batch, so a batch must
    hold all of a patient's lines, and from `history`: earlier sessions that are counted but
    not judged; and from `accumulators`: the use of limits that an accumulators file gives.
    """
    results: list[SessionResult] = []
    errors = list(batch.errors)
    for session, policy, judged in judge_sessions(batch.sessions, policies, history, accumulators, errors):
        if policy is None:
            errors.extend(unknown_payer(session, policies))
        else:
            results.append(_judge(session, judged, policy))
    sort_errors(errors, batch.sessions)
    return Block(sessions=tuple(results), errors=tuple(errors), lines_read=batch.lines_read)


class Judgement(NamedTuple):
    """A batch judged, before any result object is built: what the bulk writers write from.
    `block()` gives the same content as `Block` objects, for the API and for other writers."""

    sessions: list[tuple[Session, Policy, Judged]]
    """Each judged session with its policy and its lines as `judge_sessions` gives them."""
    errors: tuple[RecordError, ...]
    lines_read: int

    def block(self) -> Block:
        return Block(sessions=tuple([_judge(session, judged, policy) for session, policy, judged in self.sessions]),
                     errors=self.errors, lines_read=self.lines_read)


def judge_lines(batch: Batch, policies: Policies, history: History | None = None,
                accumulators: Accrued | None = None) -> Judgement:
    """`judge_batch` without the result objects: the same decisions and errors, in the same order."""
    judged: list[tuple[Session, Policy, Judged]] = []
    errors = list(batch.errors)
    for session, policy, lines in judge_sessions(batch.sessions, policies, history, accumulators, errors):
        if policy is None:
            errors.extend(unknown_payer(session, policies))
        else:
            judged.append((session, policy, lines))
    sort_errors(errors, batch.sessions)
    return Judgement(judged, tuple(errors), batch.lines_read)


def reasons_of(policy: Policy, line: Line, found: list[Reason_]) -> tuple[Reason, ...]:
    """The `Reason` objects of one judged line (each built once per policy and facts)."""
    if not found:
        return ()
    return tuple([_reason(policy, index, line, facts, taken) for index, facts, taken in found])


def evaluate(batch: Batch, policies: Policies, history: History | None = None,
             accumulators: Accrued | None = None) -> Report:
    """Judge a whole batch into a `Report`."""
    block = judge_batch(batch, policies, history, accumulators)
    tally = Tally()
    tally.add(block)
    return Report(sessions=block.sessions, errors=block.errors, summary=tally.summary())


def _judge(session: Session, judged: Judged, policy: Policy) -> SessionResult:
    lines = tuple([LineResult(input=line, allowed=cents, status=status,
                              reasons=tuple([_reason(policy, index, line, facts, taken)
                                             for index, facts, taken in found])
                              if found else (), units_paid=paid)
                   for line, cents, status, found, paid in judged])
    return SessionResult(session_id=session.session_id, patient_id=session.patient_id, date=session.date,
                         payer=session.payer, payer_name=policy.payer_name, rules_file=policy.source,
                         lines=lines)


def reason_key(policy: Policy, line: Line, found: list[Reason_]) -> tuple[object, ...]:
    """What decides the `reasons_of(policy, line, found)` of a line (not empty): each reason's
    rule, amount and explanation key, as `_reason` caches a reason by them. Lines with equal
    keys have equal reasons, so a writer can cache what it renders for them by this key."""
    keys = policy.reason_keys
    out = []
    for index, facts, amount in found:
        how = keys.get(index) or _key_of(policy, index)
        out.append((index, amount, how[1](line, facts)))
    return tuple(out)


def _key_of(policy: Policy, index: int) -> tuple[RuleInfo, Callable[[Line, object], object]]:
    """The rule of index `index` and its explanation key function, kept in `policy.reason_keys`."""
    rule = rule_of(policy.rules, index)
    how = policy.reason_keys[index] = (rule, explanation_key_of(rule))
    return how


RENDERED_CACHE_SIZE = 50_000
"""Rendered reasons kept per policy and format before the cache starts afresh."""


class Told(NamedTuple):
    """A reason as the writers read it, for a line whose reasons are rendered once per key (see
    `rendered_reasons`): the fields of its `Reason` they use, without building one."""

    rule: str | None
    severity: str
    carc: str
    rarc: str | None
    text: str
    location: str
    message: str
    amount: int
    info: RuleInfo

    def to_dict(self) -> dict[str, Any]:
        return reason_dict(self.info, self.message, self.amount)


def _told(policy: Policy, key: Any, line: Line, facts: object) -> Told:
    """The `Told` of a reason of `key` (rule, amount, explanation key): what `_reason` would hold."""
    index, amount, _ = key
    rule = policy.reason_keys[index][0]
    return Told(rule.name, rule.severity, rule.carc, rule.rarc, rule.text,
                f"{rule.file}:{rule.line}" if rule.line else rule.file, explain(rule, line, facts), amount, rule)


def rendered_reasons(policy: Policy, form: str, render: Callable[[tuple[Reason | Told, ...]], str], line: Line,
                     found: list[Reason_]) -> str:
    """`render(reasons_of(policy, line, found))`, rendered once per policy, format and reason key
    (from `Told` reasons, which hold what the writers read of a `Reason`)."""
    cache = policy.rendered.get(form)
    if cache is None:
        cache = policy.rendered[form] = {}
    if len(found) == 1:  # most lines: `reason_key` in short
        index, facts, amount = found[0]
        how = policy.reason_keys.get(index) or _key_of(policy, index)
        key: tuple[object, ...] = ((index, amount, how[1](line, facts)),)
    else:
        key = reason_key(policy, line, found)
    text = cache.get(key)
    if text is None:
        text = render(tuple([_told(policy, reason_key, line, facts) for reason_key, (_, facts, _) in zip(key, found)]))
        if len(cache) >= RENDERED_CACHE_SIZE:
            cache.clear()
        cache[key] = text
    return text


def _reason(policy: Policy, index: int, line: Line, facts: object, amount: int) -> Reason:
    # Equal facts give equal reasons; most lines repeat a few, so each is built once per policy.
    how = policy.reason_keys.get(index)
    if how is None:
        rule = rule_of(policy.rules, index)
        how = policy.reason_keys[index] = (rule, explanation_key_of(rule))
    rule, key_of = how
    key = (index, amount, key_of(line, facts))
    reason = policy.reason_cache.get(key)
    if reason is None:
        reason = _new_reason(policy, rule, key, line, facts)
    return reason


def _new_reason(policy: Policy, rule: RuleInfo, key: tuple[int, int, object], line: Line, facts: object) -> Reason:
    """The reason of `key` (rule, amount, explanation key), explained and cached."""
    reason = Reason(rule=rule.name, kind=rule.kind, file=rule.file, line=rule.line, column=rule.column,
                    text=rule.text, message=explain(rule, line, facts), severity=rule.severity,
                    carc=rule.carc, rarc=rule.rarc, source=rule.source, amount=key[1], info=rule)
    cache = policy.reason_cache
    if len(cache) >= REASON_CACHE_SIZE:
        cache.clear()
    cache[key] = reason
    return reason
