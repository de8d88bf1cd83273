"""A reason recorded by generated code → a sentence for a biller. One template per statement kind."""

from __future__ import annotations

from collections.abc import Callable

from payrules.diagnostics import InternalError
from payrules.domain import CREDENTIALS, dollars, with_article
from payrules.runtime import Line, RuleInfo


def _only(rule: RuleInfo, line: Line, facts: object) -> str:
    return f"{line.code} is not covered: this payer pays only for {rule.param('codes')}."


def _no_same_day(rule: RuleInfo, line: Line, facts: object) -> str:
    assert isinstance(facts, tuple) and facts
    first: Line = facts[0]
    where = "in this session" if first.session_id == line.session_id else f"in session {first.session_id}"
    sentence = (f"{first.code} was billed for this patient on {first.date} by NPI {first.provider_npi} "
                f"({where}, line {first.number})")
    more = len(facts) - 1
    if more:
        sentence += f", and {more} more such line{'s' if more > 1 else ''} that day"
    what = rule.param("codes") or "other services"
    sentence += f"; this payer does not pay {what} on the same day as {rule.param('other')}."
    if rule.param("unless"):
        sentence += f" The exception for modifier {rule.param('unless')} does not apply: this line has none of them."
    return sentence


def _requires_credential(rule: RuleInfo, line: Line, facts: object) -> str:
    credential = line.provider_credential
    who = f"{with_article(credential)} ({CREDENTIALS[credential]})" if credential \
        else "a provider with no credential on record"
    service = rule.param("codes") or line.code
    wanted = rule.param("credentials")
    return (f"{line.code} was billed under NPI {line.provider_npi}, {who}; "
            f"this payer pays {service} only when the rendering provider is {with_article(wanted)}.")


def _max_per_session(rule: RuleInfo, line: Line, facts: object) -> str:
    assert isinstance(facts, tuple)
    before, after = facts
    cap = rule.param("amount")
    if after == 0:
        return (f"This payer allows at most {cap} per session, and earlier lines of this session "
                f"already used all of it: allowed reduced from {dollars(before)} to {dollars(0)}.")
    return (f"This payer allows at most {cap} per session: allowed reduced from "
            f"{dollars(before)} to {dollars(after)}.")


_TEMPLATES: dict[str, Callable[[RuleInfo, Line, object], str]] = {
    "only": _only,
    "no_same_day": _no_same_day,
    "requires_credential": _requires_credential,
    "max_per_session": _max_per_session,
}


def explain(rule: RuleInfo, line: Line, facts: object) -> str:
    """The sentence for one reason; it cites the facts the rule used."""
    template = _TEMPLATES.get(rule.kind)
    if template is None:
        raise InternalError(f"no explanation template for statement kind `{rule.kind}`")
    return template(rule, line, facts)
