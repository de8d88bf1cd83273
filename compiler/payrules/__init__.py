"""payrules: payer policy rules for massage, manual therapy and chiropractic claims.

    import payrules

    rules = payrules.load("payers/")            # a .payer file or a folder of them
    report = rules.check([{"session_id": "S-1", "patient_id": "P-1", ...}])
    report.sessions[0].lines[0].status          # "paid", "reduced" or "denied"
    report.to_json()

    report = payrules.check(session, "payers/")  # one session or a list, against a path or a RuleSet
"""

__version__ = "0.1.0"

from payrules.api import NoPolicyError, RuleSet, compile_text, load, report_schema  # noqa: E402
from payrules.diagnostics import CompileError, Diagnostic, InputError, InternalError, RulesError  # noqa: E402
from payrules.fields import Problem, RecordError  # noqa: E402
from payrules.runner import LineResult, Reason, Report, SessionResult, Summary  # noqa: E402
from payrules.runtime import Line, Origin, Session  # noqa: E402

# `payrules.check` is the function. Importing the submodule `payrules.check` (the rule checker,
# imported above through `payrules.api`) bound that name to the module; binding the function
# after it wins, and the import system does not bind a submodule again once it is loaded. The
# checker stays reachable as `from payrules.check import ...` (through `sys.modules`).
from payrules.api import check  # noqa: E402

__all__ = [
    "CompileError", "Diagnostic", "InputError", "InternalError", "Line", "LineResult", "NoPolicyError", "Origin",
    "Problem", "Reason", "RecordError", "Report", "RuleSet", "RulesError", "Session", "SessionResult", "Summary",
    "__version__", "check", "compile_text", "load", "report_schema",
]
