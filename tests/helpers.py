"""Build sessions in memory for table-driven semantic tests."""

from __future__ import annotations


from payrules.compiler import Policy, compile_source
from payrules.fields import Batch
from payrules.judging import History
from payrules.runner import Report, evaluate, policies_by_payer
from payrules.runtime import Line, Origin, Session
from payrules.source import Source

NPI_DC = "1184029555"
NPI_LMT = "1328719467"


def policy(rules: str, payer: str = "T") -> Policy:
    return compile_source(Source("test.payer", f"payer {payer}\n{rules}\n"))


def line(code: str, charge: str = "50.00", *, session: str = "S1", patient: str = "P1",
         date: str = "2024-03-05", payer: str = "T", npi: str = NPI_LMT, credential: str = "LMT",
         modifiers: str = "", units: int = 1, number: int = 0, diagnoses: str = "",
         prescription_by: str = "", minutes: int | None = None) -> Line:
    dollars, cents = charge.split(".")
    return Line(session_id=session, patient_id=patient, date=date, payer=payer, number=number, code=code,
                modifiers=frozenset(modifiers.split()), units=units, minutes=minutes,
                charge=int(dollars) * 100 + int(cents), provider_npi=npi, provider_credential=credential,
                diagnoses=tuple(diagnoses.split()), prescription_by=prescription_by,
                origin=Origin(file="mem", row=0))


def run(rules: str, *lines: Line, payer: str = "T", history: tuple[Line, ...] = ()) -> Report:
    """Compile `rules` for `payer`, group `lines` into sessions by session id (input order), judge them."""
    return run_policy(policy(rules, payer), *lines, history=history)


def sessions_of(lines: tuple[Line, ...]) -> list[Session]:
    sessions: dict[str, list[Line]] = {}
    for item in lines:
        group = sessions.setdefault(item.session_id, [])
        group.append(item._replace(number=len(group) + 1))
    return [Session(session_id=sid, patient_id=ls[0].patient_id, date=ls[0].date, payer=ls[0].payer,
                    lines=tuple(ls)) for sid, ls in sessions.items()]


def run_policy(compiled: Policy, *lines: Line, history: tuple[Line, ...] = ()) -> Report:
    """Group `lines` into sessions by session id (input order) and judge them with `compiled`."""
    batch = Batch(sessions=sessions_of(lines), lines_read=len(lines))
    past = History(sessions_of(history)) if history else None
    return evaluate(batch, policies_by_payer([compiled]), past)



def outcomes(report: Report) -> list[tuple[str, str, str]]:
    """(code, status, allowed) for every judged line, in order."""
    return [(l.code, l.status, f"{l.allowed // 100}.{l.allowed % 100:02d}")
            for s in report.sessions for l in s.lines]


def kinds(report: Report) -> list[list[str]]:
    """The statement kinds of the reasons on every judged line, in order."""
    return [[r.kind for r in l.reasons] for s in report.sessions for l in s.lines]
