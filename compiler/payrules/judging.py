"""A session, the lines of its day and a policy's `judge` → each line's allowed amount, status
and reasons; and the JSON shapes of results.

Standard library only: the runner builds typed results on it, and `payrules build` copies it
into standalone modules, whose `check` returns these shapes directly.
"""

from __future__ import annotations

import contextlib
import gc
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from payrules.domain import closest, format_cents
from payrules.fields import Batch, Problem, RecordError, parse_fact, session_batch
from payrules.icd10 import findings_of as line_findings  # `icd10.line_findings`, once per diagnoses and date
from payrules.icd10 import rule_info
from payrules.runtime import Accumulated, Day, Earlier, Entry, Field, Line, Origin, Reason, RuleInfo, Session

PAID, REDUCED, DENIED = "paid", "reduced", "denied"

DayKey = tuple[str, str, str]
"""(payer id in lower case, patient id, date of service): the lines a same-day rule looks at."""

PatientKey = tuple[str, str]
"""(payer id in lower case, patient id): the sessions a rule over a period looks at."""

Judge = Callable[[Session, Day, Earlier, list[bool]], tuple[list[int], list[list[Reason]], list[bool], list[int]]]
"""A policy's generated `judge(session, day, past, invalid)`: `invalid` marks the lines denied
before any rule (a diagnosis the ICD-10-CM code set does not bill); they pay nothing, and no
limit counts them."""

CODE_SET_RULE = -1
"""The rule index of a reason given by the ICD-10-CM code set, not by a rule of the file."""


def rule_of(rules: Sequence[RuleInfo], index: int) -> RuleInfo:
    """The rule a reason cites: `rules[index]`, or the code set for `CODE_SET_RULE` (never the
    last rule, as a plain `rules[-1]` would give)."""
    if index == CODE_SET_RULE:
        return rule_info()
    if index < 0:
        raise IndexError(f"no rule {index}")
    return rules[index]


def day_index(sessions: Iterable[Session]) -> dict[DayKey, list[Line]]:
    """Every line of `sessions`, by payer, patient and date."""
    index: dict[DayKey, list[Line]] = defaultdict(list)
    for session in sessions:
        index[(session.payer.casefold(), session.patient_id, session.date)].extend(session.lines)
    return index


class History:
    """Earlier sessions that are counted but not judged, by day and by patient. A history line
    counts as paid in full: give the amount the payer allowed as its charge."""

    def __init__(self, sessions: Iterable[Session]) -> None:
        self.days = day_index(sessions)
        self.patients: dict[PatientKey, list[Entry]] = defaultdict(list)
        for (payer, patient, _), lines in sorted(self.days.items(), key=lambda item: item[0][2]):
            self.patients[(payer, patient)].extend((line, line.charge, line.units) for line in lines)

    def __bool__(self) -> bool:
        return bool(self.days)

    def covering(self, sessions: Sequence[Session]) -> History:
        """The history a batch of `sessions` needs: all of it here; a history kept compact
        (`payrules.history`) reads only the patients of `sessions`."""
        return self


_RELAXED = [0]
"""How many `fewer_collections` blocks are open: only the outermost one changes the collector."""


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Judging, and loading history, make millions of objects that reference counting frees or
    that live to the end; the cycle collector would walk them again and again. Run it less
    often, leave what exists before out of it (forked workers then share those pages), and
    restore it afterwards. Nested blocks leave it to the outermost.

    It still runs once a million more objects that it tracks are alive than were freed, so
    garbage in cycles stays bounded; a run of plain judging does not get there (at a tenth of
    that it ran a few times per million lines, each walking every young object, about 3% of
    the time)."""
    if _RELAXED[0]:
        _RELAXED[0] += 1
        try:
            yield
        finally:
            _RELAXED[0] -= 1
        return
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(1_000_000, 50, 100)
    _RELAXED[0] = 1
    try:
        yield
    finally:
        _RELAXED[0] = 0
        gc.set_threshold(*threshold)
        gc.unfreeze()


def history_index(batch: Batch) -> History:
    """Earlier sessions, for rules over days and periods; ValueError when a record is bad,
    because a fact that cannot be read must not be silently missing."""
    if batch.errors:
        first = batch.errors[0]
        more = f" (and {len(batch.errors) - 1} more)" if len(batch.errors) > 1 else ""
        raise ValueError(f"history {first.origin}: {first.message}{more}; history records must be valid")
    with fewer_collections():
        return History(batch.sessions)


def history_days(sessions: list[Any]) -> History | None:
    """Earlier sessions given in memory (dicts or typed); None when there are none."""
    return history_index(session_batch(sessions, "<history>")) if sessions else None


def days_with_history(sessions: Iterable[Session], history: History | None) -> dict[DayKey, Day]:
    """The days of `sessions`, with the earlier lines of `history` first on each day."""
    found = history.days if history else {}
    return {key: Day(found[key] + lines, len(found[key])) if key in found else Day(lines)
            for key, lines in day_index(sessions).items()}


def sort_errors(errors: list[RecordError], sessions: Sequence[Session]) -> None:
    """Put errors in input order: files in the order they were read, then rows."""
    if not errors:
        return
    files: dict[str, int] = {}
    for origin in [s.lines[0].origin for s in sessions] + [e.origin for e in errors]:
        files.setdefault(origin.file, len(files))
    errors.sort(key=lambda e: (files.get(e.origin.file, len(files)), e.origin.row, e.origin.path))


Judged = list[tuple[Line, int, str, list[Reason], int]]
"""(line, allowed cents, status, reasons as recorded by generated code, units paid) for each line
of a session; a denied line pays no units."""


class Accrued(Protocol):
    """Accumulated use of limits (see `payrules.accumulators.Accumulators`)."""

    def of(self, policy: Dated, key: PatientKey) -> Mapping[int, tuple[Accumulated, ...]]: ...


def judge_sessions(sessions: Sequence[Session], policies: Mapping[str, Sequence[P]],
                   history: History | None, accumulators: Accrued | None = None,
                   rejected: list[RecordError] | None = None) -> Iterator[tuple[Session, P | None, Judged]]:
    """Each session with its policy and judged lines (no policy: nothing judged), in input order.

    A policy that declares fields (`field ...`) gets each line with their typed values
    (`Line.facts`); a line whose value is wrong, missing where the policy rejects such lines,
    or not the one of its session is added to `rejected` and not judged (see `_with_facts`).

    When a policy has rules over periods, each patient's sessions are judged in date order
    (input order within a date), and each sees the earlier ones with the amounts and units
    they were allowed, after the lines of `history`, and after what `accumulators` gives as
    used in the period up to its through date.
    """
    history = history.covering(sessions) if history else None
    picked = _picked(policies, sessions)
    if any(policy is not None and getattr(policy, "fields", ()) for policy in picked):
        sessions, picked = _with_facts(sessions, picked, rejected)
    days = days_with_history(sessions, history) if history else {}
    day_of = None if history else _days(sessions)
    counts_past = any(policy is not None and policy.history for policy in picked)
    order = sorted(range(len(sessions)), key=lambda i: sessions[i].date) if counts_past else range(len(sessions))
    results: list[Judged] = [[] for _ in sessions]
    pasts: dict[PatientKey, Earlier] = {}
    nothing_earlier = Earlier()  # for policies with no limit over a period, which never read it
    for i in order:
        session, policy = sessions[i], picked[i]
        if policy is None:
            continue
        past = nothing_earlier
        if counts_past:
            key = (session.payer.casefold(), session.patient_id)
            found = pasts.get(key)
            if found is None:  # the patient's first session here: start from the history
                found = pasts[key] = Earlier(history.patients.get(key, ()) if history else ())
            past = found
            if accumulators is not None:
                past.accumulated = accumulators.of(policy, key)
        # Diagnoses the code set does not bill deny their line before any rule: the payer
        # rejects such a line up front, so it pays nothing and uses up no limit. Its reason
        # comes first and takes the whole charge; the rules still say what they find.
        day = day_of[i] if day_of is not None else days[(session.payer.casefold(), session.patient_id, session.date)]
        findings = [line_findings(line.diagnoses, line.date) for line in session.lines]
        if any(findings):
            invalid = [bool(wrong) for wrong in findings]
            allowed, reasons, denied, units = policy.judge(session, day, past, invalid)
            for k, wrong in enumerate(findings):
                if wrong:
                    reasons[k].insert(0, (CODE_SET_RULE, wrong, session.lines[k].charge))
        else:
            allowed, reasons, denied, units = policy.judge(session, day, past, [False] * len(findings))
        results[i] = [(line, cents, DENIED if is_denied else REDUCED if cents < line.charge else PAID, found,
                       0 if is_denied else paid)
                      for line, cents, found, is_denied, paid in zip(session.lines, allowed, reasons, denied, units)]
        if counts_past:
            past.judged.extend(zip(session.lines, allowed, units))
    return zip(sessions, picked, results)


def _picked(policies: Mapping[str, Sequence[P]], sessions: Sequence[Session]) -> list[P | None]:
    """`pick` for each session; a payer with one rule file for every date needs no date compared."""
    always: dict[str, P | None] = {}
    picked: list[P | None] = []
    for session in sessions:
        payer = session.payer
        policy = always.get(payer)
        if policy is None:
            dated = policies.get(payer.casefold(), ())
            if len(dated) == 1 and dated[0].effective_from is None and dated[0].effective_to is None:
                policy = always[payer] = dated[0]
            else:
                policy = pick(policies, session)
        picked.append(policy)
    return picked


def _days(sessions: Sequence[Session]) -> list[Day]:
    """The day of each session: `days_with_history(sessions, None)` by session, in one pass."""
    days: dict[DayKey, Day] = {}
    found: list[Day] = []
    for session in sessions:
        key = (session.payer.casefold(), session.patient_id, session.date)
        day = days.get(key)
        if day is None:
            day = days[key] = Day(list(session.lines))
        else:
            day.lines.extend(session.lines)
        found.append(day)
    return found


def _with_facts(sessions: Sequence[Session], picked: list[P | None],
                rejected: list[RecordError] | None) -> tuple[list[Session], list[P | None]]:
    """The sessions with their lines' declared fields typed, and their policies; the lines that
    cannot be judged go to `rejected` (a session left with no line is left out)."""
    kept_sessions: list[Session] = []
    kept_policies: list[P | None] = []
    errors = rejected if rejected is not None else []
    for session, policy in zip(sessions, picked):
        fields: tuple[Field, ...] = getattr(policy, "fields", ()) if policy is not None else ()
        if not fields:
            kept_sessions.append(session)
            kept_policies.append(policy)
            continue
        lines, problems = facts_of(session, fields, policy.source if policy is not None else "")
        for line, found in zip(session.lines, problems):
            if found:
                errors.append(RecordError(origin=line.origin, session_id=session.session_id, line=line.number,
                                          code=line.code, problems=tuple(found)))
        if lines:
            kept_sessions.append(session._replace(lines=tuple(lines)))
            kept_policies.append(policy)
    return kept_sessions, kept_policies


def _built_in_text(line: Line, name: str) -> str:
    if name == "minutes":
        return "" if line.minutes is None else str(line.minutes)
    return str(getattr(line, name, "") or "")


def facts_of(session: Session, fields: Sequence[Field], source: str) -> tuple[list[Line], list[list[Problem]]]:
    """The lines of `session` that can be judged, each with its typed `facts`, and the problems
    of every line (empty for those judged)."""
    problems: list[list[Problem]] = [[] for _ in session.lines]
    typed: list[dict[str, object]] = [{} for _ in session.lines]
    for field in fields:
        values: list[object] = []
        for k, line in enumerate(session.lines):
            text = dict(line.origin.facts).get(field.name, "") if field.declared else _built_in_text(line, field.name)
            value, message = parse_fact(field.type, text) if field.declared else (text or None, None)
            if message is not None:
                problems[k].append(Problem(field=field.name, value=text, message=message))
            values.append(value)
        if field.scope == "session":
            given = {repr(v): (v, k) for k, v in reversed(list(enumerate(values))) if v is not None}
            if len(given) > 1:
                (first, at), (second, other) = sorted(given.values(), key=lambda item: item[1])[:2]
                rows = (_where(session.lines[at].origin), _where(session.lines[other].origin))
                for k in range(len(values)):
                    problems[k].append(Problem(
                        field=field.name, value=_shown_fact(values[k]),
                        message=f"the lines of session {session.session_id} disagree: `{_shown_fact(first)}` "
                                f"({rows[0]}) and `{_shown_fact(second)}` ({rows[1]}); a field declared "
                                "per session has one value per session"))
            elif given:
                only = next(iter(given.values()))[0]
                values = [only] * len(values)
        for k, value in enumerate(values):
            if value is None and field.used and field.missing == "reject" and not problems[k]:
                how = ("(its declaration says `if missing reject`, the default)" if field.declared
                       else "(a line without it cannot be judged by that rule)")
                problems[k].append(Problem(field=field.name, value="",
                                           message=f"is missing; a rule of {source} needs it in a condition {how}"))
            typed[k][field.name] = value
    lines = [line._replace(facts=facts) for line, facts, found in zip(session.lines, typed, problems) if not found]
    return lines, problems


def _where(origin: Origin) -> str:
    """A line's place within its file, as a message between lines of one session names it."""
    return origin.path.rsplit(".", 1)[-1] if origin.path else f"row {origin.row}"


def _shown_fact(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)


class Dated(Protocol):
    """A compiled policy as routing sees it."""

    @property
    def payer_id(self) -> str: ...

    @property
    def source(self) -> str: ...

    @property
    def effective_from(self) -> str | None: ...

    @property
    def effective_to(self) -> str | None: ...

    @property
    def history(self) -> bool: ...

    @property
    def judge(self) -> Judge: ...


P = TypeVar("P", bound=Dated)


def declared_fields(policies: Iterable[Any]) -> tuple[str, ...]:
    """The names of the fields the rule files of `policies` declare, in the order first declared."""
    return tuple(dict.fromkeys(f.name for policy in policies for f in policy.fields if f.declared))


def by_payer(policies: Iterable[P]) -> dict[str, tuple[P, ...]]:
    """Policies by payer id in lower case, each payer's in date order."""
    grouped: dict[str, list[P]] = defaultdict(list)
    for policy in policies:
        grouped[policy.payer_id.casefold()].append(policy)
    return {payer: tuple(sorted(found, key=lambda p: p.effective_from or "")) for payer, found in grouped.items()}


def covers(policy: Dated, date: str) -> bool:
    return (policy.effective_from or "") <= date and (policy.effective_to is None or date <= policy.effective_to)


def pick(policies: Mapping[str, Sequence[P]], session: Session) -> P | None:
    """The policy of the session's payer in effect on its date of service."""
    for policy in policies.get(session.payer.casefold(), ()):
        if covers(policy, session.date):
            return policy
    return None


def date_range(policy: Dated) -> str:
    return f"{policy.effective_from or 'any date'} to {policy.effective_to or 'any date'}"


def unknown_payer(session: Session, policies: Mapping[str, Sequence[Dated]]) -> list[RecordError]:
    """Every line of a session with no rules for its payer and date, as an error: never silently paid."""
    dated = policies.get(session.payer.casefold())
    if dated:
        spans = "; ".join(f"{date_range(p)} ({p.source})" for p in dated)
        message = f"no rules for payer `{session.payer}` on {session.date}; its rule files cover {spans}"
    else:
        known = sorted(p.payer_id for found in policies.values() for p in found[:1])
        message = f"no rule file for payer `{session.payer}`"
        close = closest(session.payer, known)
        if close:
            message += f"; did you mean `{close}`?"
        elif known:
            message += f"; rule files cover {', '.join(f'`{k}`' for k in known)}"
    return [RecordError(origin=line.origin, session_id=session.session_id, line=line.number, code=line.code,
                        problems=(Problem(field="payer", value=session.payer, message=message),))
            for line in session.lines]


# --- JSON shapes (see schemas/report.schema.json) ----------------------------------------------


def reason_dict(rule: RuleInfo, message: str, amount: int) -> dict[str, Any]:
    """A reason; `line` and `column` are null for one not given by a rule file (the code set),
    `amount` is what the reason took from the line's allowed amount."""
    return {"rule": rule.name, "kind": rule.kind, "file": rule.file, "line": rule.line or None,
            "column": rule.column or None, "text": rule.text, "message": message, "severity": rule.severity,
            "carc": rule.carc, "rarc": rule.rarc, "source": rule.source, "amount": format_cents(amount)}


def kept_of(origin: Origin) -> tuple[tuple[str, str], ...]:
    """The caller's ids kept on a line (`--keep`), in the order they were asked for."""
    return origin.kept


def line_dict(line: Line, allowed: int, status: str, reasons: list[dict[str, Any]],
              units_paid: int) -> dict[str, Any]:
    found = {"line": line.number, "code": line.code, "modifiers": sorted(line.modifiers), "units": line.units,
             "units_paid": units_paid, "charge": format_cents(line.charge), "allowed": format_cents(allowed),
             "status": status, "reasons": reasons}
    kept = kept_of(line.origin)
    if kept:
        found["keep"] = dict(kept)
    return found


def session_dict(session: Session, payer_name: str, rules_file: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
    return {"session_id": session.session_id, "patient_id": session.patient_id, "date": session.date,
            "payer": session.payer, "payer_name": payer_name, "rules": rules_file, "lines": lines}


def error_dict(error: RecordError) -> dict[str, Any]:
    return {
        "file": error.origin.file,
        "row": error.origin.row,
        "path": error.origin.path or None,
        "session_id": error.session_id,
        "line": error.line,
        "code": error.code,
        "message": error.message,
        "problems": [{"field": p.field, "column": error.origin.column(p.field), "value": p.value,
                      "message": p.message} for p in error.problems],
        **({"keep": dict(kept)} if (kept := kept_of(error.origin)) else {}),
    }


def summary_dict(lines_read: int, judged: int, paid: int, reduced: int, denied: int, rejected: int,
                 charged: int, allowed: int) -> dict[str, Any]:
    return {"lines_read": lines_read, "judged": judged, "paid": paid, "reduced": reduced, "denied": denied,
            "rejected": rejected, "charged": format_cents(charged), "allowed": format_cents(allowed)}
