"""The reason codes (CARC and RARC) a rule's reasons carry: each statement kind's default pair,
the pair a used-up benefit period gives, and what the `carc` and `rarc` options change.

A payer sends CARC 45 when a charge is over a fee or a cap on one line, session or day, and
CARC 119 ("benefit maximum for this time period or occurrence has been reached") when a benefit
limit over a longer period is used up: per week, month, calendar or plan year, N days or
lifetime. A limit that is partly used up cuts the line to what is left of the benefit; the cut
is the part over the benefit maximum, so it is CARC 119 too.
"""

from __future__ import annotations

from payrules import ast
from payrules.domain import BENEFIT_PERIODS


BENEFIT_MONEY = ("119", "N130")
"""A money benefit used up: N130 (consult plan benefit documents for this service's restrictions)
points the biller at the plan's dollar maximum."""

BENEFIT_COUNT = ("119", "N640")
"""A visit or unit benefit used up: N640 (exceeds number/frequency allowed within time period)."""

NEEDS_REMARK = frozenset({"16", "96", "234"})
"""CARCs whose X12 wording says at least one remark code must be provided."""

REMARK_EXAMPLES = {"16": "N822", "96": "N130", "234": "N20"}
"""A remark code that fits each of `NEEDS_REMARK`, for the help of W112: missing procedure
modifier; consult plan benefit documents; not payable with another service on the same date."""


def default_reasons(statement: ast.StatementNode) -> tuple[str, str | None]:
    """The CARC and RARC a statement's reasons carry when the rule names none."""
    period = getattr(statement, "period", None)
    if isinstance(period, ast.Period) and period.kind in BENEFIT_PERIODS:
        if isinstance(statement, ast.MaxAmount):
            return BENEFIT_MONEY
        if isinstance(statement, (ast.MaxUnits, ast.MaxVisits)):
            return BENEFIT_COUNT
    return statement.carc, statement.rarc


def rule_reasons(rule: ast.Rule) -> tuple[str, str | None]:
    """The CARC and RARC of a rule's reasons. `carc` without `rarc` drops the default remark
    code (it was chosen for the default CARC, and with another CARC it would make a pair no
    payer sends), unless the CARC written is the default one; `rarc` sets it."""
    carc, rarc = default_reasons(rule.statement)
    if rule.carc is not None:
        written = rule.carc.value.upper()
        if written != carc:
            rarc = None
        carc = written
    if rule.rarc is not None:
        rarc = rule.rarc.value.upper()
    return carc, rarc
