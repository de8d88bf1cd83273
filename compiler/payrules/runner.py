"""Validated sessions + compiled policies → a `Report`: a decision and its reasons for every line."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import attrs

from payrules.compiler import Policy
from payrules.diagnostics import closest
from payrules.explain import explain
from payrules.records import Batch, Problem, RecordError
from payrules.runtime import Line, Origin, Session

PAID, REDUCED, DENIED = "paid", "reduced", "denied"


@attrs.frozen(kw_only=True)
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

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"


@attrs.frozen(kw_only=True)
class LineResult:
    line: int
    code: str
    modifiers: tuple[str, ...]
    units: int
    charge: int
    """Billed amount in cents."""
    allowed: int
    """Allowed amount in cents."""
    status: str
    reasons: tuple[Reason, ...]
    origin: Origin


@attrs.frozen(kw_only=True)
class SessionResult:
    session_id: str
    patient_id: str
    date: str
    payer: str
    payer_name: str
    rules_file: str
    lines: tuple[LineResult, ...]


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


@attrs.frozen(kw_only=True)
class Report:
    sessions: tuple[SessionResult, ...]
    errors: tuple[RecordError, ...]
    summary: Summary

    @property
    def all_paid(self) -> bool:
        s = self.summary
        return s.paid == s.lines_read


def policies_by_payer(policies: list[Policy]) -> dict[str, Policy]:
    """Index policies by payer id (case-insensitive)."""
    return {p.payer_id.casefold(): p for p in policies}


def evaluate(batch: Batch, policies: Mapping[str, Policy]) -> Report:
    """Judge every session of `batch` with the policy of its payer (keys from `policies_by_payer`)."""
    day_lines: dict[tuple[str, str, str], list[Line]] = defaultdict(list)
    for session in batch.sessions:
        day_lines[(session.payer.casefold(), session.patient_id, session.date)].extend(session.lines)

    results: list[SessionResult] = []
    errors = list(batch.errors)
    for session in batch.sessions:
        policy = policies.get(session.payer.casefold())
        if policy is None:
            errors.extend(_unknown_payer(session, policies))
            continue
        day = day_lines[(session.payer.casefold(), session.patient_id, session.date)]
        results.append(_judge(session, day, policy))
    errors.sort(key=lambda e: (e.origin.file, e.origin.row, e.origin.path))
    return Report(sessions=tuple(results), errors=tuple(errors), summary=_summary(batch, results, errors))


def _judge(session: Session, day: list[Line], policy: Policy) -> SessionResult:
    allowed, reasons, denied = policy.judge(session, day)
    lines = []
    for line, cents, found, is_denied in zip(session.lines, allowed, reasons, denied):
        status = DENIED if is_denied else REDUCED if cents < line.charge else PAID
        lines.append(LineResult(
            line=line.number, code=line.code, modifiers=tuple(sorted(line.modifiers)), units=line.units,
            charge=line.charge, allowed=cents, status=status, origin=line.origin,
            reasons=tuple(_reason(policy, line, index, facts) for index, facts in found)))
    return SessionResult(session_id=session.session_id, patient_id=session.patient_id, date=session.date,
                         payer=session.payer, payer_name=policy.payer_name, rules_file=policy.source,
                         lines=tuple(lines))


def _reason(policy: Policy, line: Line, index: int, facts: object) -> Reason:
    rule = policy.rules[index]
    return Reason(rule=rule.name, kind=rule.kind, file=rule.file, line=rule.line, column=rule.column,
                  text=rule.text, message=explain(rule, line, facts), severity=rule.severity,
                  carc=rule.carc, rarc=rule.rarc)


def _unknown_payer(session: Session, policies: Mapping[str, Policy]) -> list[RecordError]:
    known = sorted(p.payer_id for p in policies.values())
    message = f"no rule file for payer `{session.payer}`"
    close = closest(session.payer, known)
    if close:
        message += f"; did you mean `{close}`?"
    elif known:
        message += f"; rule files cover {', '.join(f'`{k}`' for k in known)}"
    return [RecordError(origin=line.origin, session_id=session.session_id, line=line.number, code=line.code,
                        problems=(Problem(field="payer", value=session.payer, message=message),))
            for line in session.lines]


def _summary(batch: Batch, results: list[SessionResult], errors: list[RecordError]) -> Summary:
    lines = [line for session in results for line in session.lines]
    return Summary(
        lines_read=batch.lines_read,
        judged=len(lines),
        paid=sum(1 for line in lines if line.status == PAID),
        reduced=sum(1 for line in lines if line.status == REDUCED),
        denied=sum(1 for line in lines if line.status == DENIED),
        rejected=len(errors),
        charged=sum(line.charge for line in lines),
        allowed=sum(line.allowed for line in lines),
    )
