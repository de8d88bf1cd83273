"""Session dicts → the report of `payrules check --format json`, inside standalone modules.

Standard library only. `payrules build` copies this module after domain, runtime, fields,
explain and judging, then appends each payer's generated code and fills `POLICIES`.
"""

from __future__ import annotations

import json
import types
import warnings
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from payrules.accumulators import accumulator_records, accumulators_of
from payrules.explain import explain
from payrules.fields import session_batch
from payrules.judging import (
    DENIED,
    PAID,
    REDUCED,
    Judge,
    declared_fields,
    error_dict,
    history_days,
    judge_sessions,
    line_dict,
    reason_dict,
    rule_of,
    session_dict,
    sort_errors,
    summary_dict,
    unknown_payer,
)
from payrules.runtime import CodeSet, Field, Line, Origin, RuleInfo, Session, add_days, first_date, pooled_units, since
from payrules.runtime import PairEdits, UnitLimits, by_provider, time_units


class Policy(NamedTuple):
    """One payer's compiled rules, as loaded from generated code."""

    payer_id: str
    payer_name: str
    source: str
    effective_from: str | None
    effective_to: str | None
    rules: tuple[RuleInfo, ...]
    judge: Judge
    history: bool
    """True when a rule counts earlier sessions (a limit per day or longer period)."""
    fields: tuple[Field, ...] = ()
    """The declared fields, and the built-in fields the conditions need."""


POLICIES: dict[str, tuple[Policy, ...]] = {}
"""Payer id in lower case → its policies, in date order."""


def load_policy(python: str) -> Policy:
    """Run one payer's generated code (it only defines constants and `judge`)."""
    runtime = types.SimpleNamespace(RuleInfo=RuleInfo, Line=Line, Session=Session, Origin=Origin, since=since,
                                    time_units=time_units, CodeSet=CodeSet, PairEdits=PairEdits,
                                    UnitLimits=UnitLimits, by_provider=by_provider, pooled_units=pooled_units,
                                    Field=Field, add_days=add_days, first_date=first_date)
    namespace: dict[str, Any] = {"__name__": "payrules_policy", "rt": runtime}
    exec(compile(python, "<payrules policy>", "exec"), namespace)  # noqa: S102 - payrules' own output
    start, end = namespace["EFFECTIVE"]
    return Policy(namespace["PAYER_ID"], namespace["PAYER_NAME"], namespace["SOURCE"], start, end,
                  namespace["RULES"], namespace["judge"], namespace["HISTORY"], namespace.get("FIELDS", ()))


def check(sessions: Iterable[Mapping[str, Any]], history: Iterable[Mapping[str, Any]] = (),
          accumulators: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """Judge sessions given as dicts in the JSON input shape; returns the same dict as
    `payrules.RuleSet.check(...).to_dict()`. `history` sessions count for same-day and period rules
    but are not judged; a bad history record raises ValueError. `accumulators` are rows as dicts
    with the fields of an accumulators file: what the payer has already counted of each named
    limit; a bad row raises ValueError (`AccumulatorError`), and a key or figure that is not
    counted is said with `warnings.warn`."""
    past = history_days(list(history))
    rows, notes = accumulator_records(list(accumulators), "<accumulators>")
    used = accumulators_of(rows, POLICIES, notes) if rows else None
    for note in used.warnings if used is not None else ():
        warnings.warn(note, stacklevel=2)
    facts = declared_fields(p for found in POLICIES.values() for p in found)
    batch = session_batch(list(sessions), "<sessions>", (), facts)
    results: list[dict[str, Any]] = []
    errors = list(batch.errors)
    counts = {PAID: 0, REDUCED: 0, DENIED: 0}
    charged = allowed_total = 0
    for session, policy, outcome in judge_sessions(batch.sessions, POLICIES, past, used, errors):
        if policy is None:
            errors.extend(unknown_payer(session, POLICIES))
            continue
        lines = []
        for line, cents, status, found, units_paid in outcome:
            reasons = [reason_dict(rule, explain(rule, line, facts), taken)
                       for rule, facts, taken in ((rule_of(policy.rules, i), facts, taken) for i, facts, taken in found)]
            lines.append(line_dict(line, cents, status, reasons, units_paid))
            counts[status] += 1
            charged += line.charge
            allowed_total += cents
        results.append(session_dict(session, policy.payer_name, policy.source, lines))
    sort_errors(errors, batch.sessions)
    judged = sum(counts.values())
    summary = summary_dict(batch.lines_read, judged, counts[PAID], counts[REDUCED], counts[DENIED], len(errors),
                           charged, allowed_total)
    return {"sessions": results, "errors": [error_dict(e) for e in errors], "summary": summary}


def check_json(sessions: Iterable[Mapping[str, Any]], history: Iterable[Mapping[str, Any]] = (),
               accumulators: Iterable[Mapping[str, Any]] = ()) -> str:
    """`check` as JSON text."""
    return json.dumps(check(sessions, history, accumulators), indent=2)
