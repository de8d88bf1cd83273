"""benchmarks/reference.payer written by hand as one plain Python function: the baseline that
compiled payrules evaluation is measured against.

It takes the same inputs as a compiled policy's `judge` (a session and the lines of the same
patient and payer on its date) and returns the same thing: allowed cents, the indexes of the
rules that fired on each line with their facts, and which lines are denied.
"""

from __future__ import annotations

from payrules.runtime import Line, Session

MASSAGE = frozenset({"97124", "97140"})
CMT = frozenset({"98940", "98941", "98942"})
COVERED = MASSAGE | CMT | {"97010"}
PROVIDERS = frozenset({"DC", "PT", "MD"})
EXEMPT = frozenset({"59", "XS"})
UNIT_CAP = 4
SESSION_CAP = 9000  # cents

# Rule indexes, in the order of reference.payer.
COVERED_RULE, UNITS_RULE, CAP_RULE, PROVIDERS_RULE, SAME_DAY_RULE = range(5)


def judge(session: Session, day: list[Line],
          past: object = ()) -> tuple[list[int], list[list[tuple[int, object]]], list[bool], list[int]]:
    adjustments = [other for other in day if other.code in CMT]
    allowed: list[int] = []
    reasons: list[list[tuple[int, object]]] = []
    denied: list[bool] = []
    units: list[int] = []
    for line in session.lines:
        found: list[tuple[int, object]] = []
        is_denied = False
        if line.code not in COVERED:
            found.append((COVERED_RULE, None))
            is_denied = True
        if line.code in MASSAGE and line.provider_credential not in PROVIDERS:
            found.append((PROVIDERS_RULE, None))
            is_denied = True
        if adjustments and line.code in MASSAGE and not (line.modifiers & EXEMPT):
            same_day = [other for other in adjustments if other is not line]
            if same_day:
                found.append((SAME_DAY_RULE, tuple(same_day)))
                is_denied = True
        allowed.append(0 if is_denied else line.charge)
        reasons.append(found)
        denied.append(is_denied)
        units.append(0 if is_denied else line.units)

    units_left = UNIT_CAP
    for k, line in enumerate(session.lines):
        if denied[k] or line.code not in MASSAGE:
            continue
        if line.units > units_left:
            before = allowed[k]
            after = (before * units_left * 2 + line.units) // (2 * line.units)
            reasons[k].append((UNITS_RULE, (line.units, units_left, before, after, UNIT_CAP - units_left, "")))
            allowed[k] = after
            units[k] = units_left
            units_left = 0
        else:
            units_left -= line.units

    money_left = SESSION_CAP
    for k in range(len(session.lines)):
        if denied[k]:
            continue
        if allowed[k] > money_left:
            reasons[k].append((CAP_RULE, (allowed[k], money_left, SESSION_CAP - money_left, "")))
            allowed[k] = money_left
        money_left -= allowed[k]
    return allowed, reasons, denied, units
