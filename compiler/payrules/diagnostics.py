"""Findings about rule files → `Diagnostic` values, and the exception tree of payrules."""

from __future__ import annotations

import enum

import attrs

from payrules.domain import closest as closest
from payrules.source import Span


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@attrs.frozen(kw_only=True)
class Diagnostic:
    """One problem found in a rule file, located by its span."""

    code: str
    """Stable identifier such as `E001`; never renumbered."""
    severity: Severity
    message: str
    """Short lowercase phrase, names in backticks, no trailing period."""
    span: Span
    help: str | None = None
    """How to fix it, when a fix is known."""

    @property
    def sort_key(self) -> tuple[str, int, str]:
        return (self.span.file, self.span.start, self.code)


def quoted(text: str) -> str:
    """User text as a message shows it, in backticks: in full when short, else its start and
    its length (the caret under the line shows all of it)."""
    return f"`{text}`" if len(text) <= 60 else f"`{text[:24]}…` ({len(text):,} characters)"


class RulesError(Exception):
    """Root of every exception payrules raises on purpose."""


class CompileError(RulesError):
    """A rule file has errors; `diagnostics` holds all of them, sorted by position."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics, key=lambda d: d.sort_key)
        """Every problem found, sorted by file and position."""
        lines = [f"{d.span}: {d.code} {d.message}" for d in self.diagnostics]
        super().__init__("\n".join(lines) or "compile error")


class InputError(RulesError):
    """A file given to payrules cannot be read at all (missing, not text, wrong kind)."""


class InternalError(RulesError):
    """A fault in payrules itself, never in the user's input."""


CODES: dict[str, tuple[str, str]] = {
    "E001": ("syntax error: what was expected and what was found", "max 4 unit of 97124 per session per day"),
    "E002": ("unknown statement word, with a suggestion", "onyl 97140"),
    "E003": ("missing `payer` line", "only 97140  (as the first line)"),
    "E004": ("a second `payer` line, or one after the rules", "payer ACME  (on line 2 of a file with a payer line)"),
    "E101": ("unknown code set name", "only massge"),
    "E102": ("unknown credential", "requires DX NPI"),
    "E103": ("a rule name used twice", "cap: max $45 per session  (twice)"),
    "E104": ("a code set defined twice", "set massage = 97124  (twice)"),
    "E105": ("empty payer id", 'payer ""'),
    "E106": ("a code set that includes itself", "set a = b\nset b = a"),
    "E107": ("two rule files for the same payer id whose effective dates overlap",
             "payer ACME effective from 2024-01-01  (in two files)"),
    "E108": ("an include that cannot be found", 'include "stdlib/no-such-file"'),
    "E109": ("an include that includes itself", 'include "this-file"'),
    "E110": ("`drop` or `override` of a rule that no include gives", "drop no-such-rule"),
    "E111": ("a name longer than 200 characters (code set, rule or payer id)",
             "set massage-codes-of-the-... = 97140  (a name of 201 characters)"),
    "E112": ("includes nested more than 32 levels deep", 'include "next"  (in the 33rd file of a chain of includes)'),
    "E120": ("an unknown `let` name", "let pt_daily_max = $120\nmax pt_daly_max per day"),
    "E121": ("a `let` name of the wrong kind (an amount where a number goes, ...)",
             "let pt_daily_max = $120\nmax pt_daily_max visits per year"),
    "E122": ("a `let` name given twice, or also the name of a code set", "let visits = 20\nlet visits = 30"),
    "E130": ("an NCCI table file that cannot be read", 'apply ncci ptp "no-such-table.txt"'),
    "E131": ("a row of an NCCI table that is not in CMS's layout, or a table with no rows",
             'apply ncci ptp "mue.csv"  (mue.csv holding an MUE table)'),
    "E201": ("not a procedure code (wrong shape)", "only 9714"),
    "E202": ("reversed range, which holds no code", "only 98943-98940"),
    "E203": ("a range that mixes kinds of codes (CPT and HCPCS)", "only 97140-S8990"),
    "E204": ("a range of more than 10,000 codes", "only 10000-99999"),
    "E205": ("money or a percentage with more than two decimals", "max $45.005 per session"),
    "E206": ("not a CARC or RARC", "only 97140 carc 4567"),
    "E207": ("not a modifier", "no 97124 same day as 98940 unless modifier 599"),
    "E208": ("a limit that is not a whole number, or a period of days out of range", "max 2.5 units per line"),
    "E209": ("not a calendar date or month", "only 97140 effective from 2024-02-30"),
    "E210": ("an effective range that ends before it starts", "only 97140 effective from 2024-12-31 to 2024-01-01"),
    "E211": ("an option given twice on one rule", "only 97140 carc 96 carc 204"),
    "E212": ("a diagnosis pattern that is not an ICD-10-CM code or prefix", "requires diagnosis 724.2"),
    "E213": ("a period that does not fit the limit", "max 4 visits per session"),
    "E214": ("an unknown time rule (not `cms` or `ama`)", "units by medicare rule for 97140"),
    "E215": ("an amount over $999,999,999.99, a share over 1,000% or a limit over 100,000",
             "max $1,000,000,000 per session"),
    "E230": ("a set that holds both procedure codes and diagnoses", "set back = 97124, M54.50"),
    "E231": ("a diagnosis set where procedure codes go, or a code set where diagnoses go",
             "set subluxation = M99.01-M99.05\nonly subluxation"),
    "E232": ("a diagnosis range whose ends differ in length or category, or end in `*`",
             "requires diagnosis M54.5-M54.59"),
    "E240": ("a field declared twice, with a built-in field's name, or a name over 64 characters",
             "field date: date"),
    "E241": ("an unknown field type", "field accident_date: day"),
    "E242": ("`if missing deny` with a CARC that needs a remark code, and none given",
             "field accident_date: date if missing deny"),
    "E243": ("a condition too large: more than 32 comparisons, 4 levels of nesting or 1,000 listed values",
             "only 97140 when units > 1 and(units > 2 or(units > 3 and(units > 4 or(units > 5 and units > 6))))"),
    "E244": ("a comparison of values of different kinds, an order (`<`) on codes or texts, or a value the "
             "field cannot hold (a place of service `1`)",
             "only 97140 when date > $100"),
    "E245": ("an unknown field in a condition", "only 97140 when acident_date > 2024-01-01"),
    "W101": ("a rule that can never apply: `only` or `not covered` denies all its codes",
             "only 97140\nmax 2 units of 97124 per line"),
    "W102": ("two `only` lists that share no code, so nothing is covered", "only 97124\nonly 97140"),
    "W103": ("the same rule written twice", "only 97140  (twice)"),
    "W104": ("a limit of zero, which pays nothing", "max 0 visits per calendar year"),
    "W105": ("a code set of the file that is never used", "set unused = 97010"),
    "W106": ("an `ignore` comment that silences nothing", "only 97140  # payrules: ignore W101"),
    "W110": ("a `let` name of the file that is never used", "let unused = $120"),
    "W111": ("`X only with Y` where Y holds codes of X (a line is never qualified by its own code)",
             "97124 only with 97124, 98940 same day"),
    "W112": ("a `carc` that needs a remark code, given without `rarc`", "only 97140 carc 96"),
    "W130": ("a diagnosis that another item of its list already matches", "requires diagnosis M54.5*, M54.50"),
    "W140": ("a declared field that no rule uses", "field accident_date: date  (no rule uses it)"),
    "W150": ("an NCCI PTP table with no edit in force on the rule's dates (every row deleted or indicator 9)",
             'apply ncci ptp "old.txt"  (old.txt holding only deleted edits)'),
    "W160": ("a time rule after a money limit on the same codes, which it then cuts again",
             "max $45 per session\nunits by cms rule for 97110"),
}
"""Every diagnostic code: what it means, and a line that produces it. Codes are never renumbered."""
