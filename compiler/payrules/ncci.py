"""CMS's NCCI tables (PTP pair edits, MUE unit limits) in CMS's published layouts → rows that
`apply ncci ptp` and `apply ncci mue` compile into generated code, with worded diagnostics that
point into the table file by row and column.

Practitioner PTP table (`ccipra-v<version>r0-f1.txt` … `-f4.txt`), tab-delimited: column 1,
column 2, `*` when the edit existed before 1996, effective date YYYYMMDD, deletion date
YYYYMMDD (`*` = none), modifier indicator (0, 1 or 9), rationale. Practitioner MUE table
(`MCR_MUE_PractitionerServices_Eff_<date>.csv`): code, MUE value, adjudication indicator (text
starting with 1, 2 or 3), rationale. In both, lines before and between the data rows (CMS's
notices and column headers) are skipped: a data row is a line whose first field starts like a
procedure code (a digit, or a letter and a digit). Every data row must be complete.

The rows reach generated code as one compact text per table (`runtime.PairEdits`,
`runtime.UnitLimits`), never as one Python statement per row, and user text only through `repr()`.
"""

from __future__ import annotations

import csv
import datetime
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import attrs

from payrules import ast
from payrules.diagnostics import Diagnostic, InputError, Severity, quoted
from payrules.runtime import Line
from payrules.source import Source, Span

NCCI_MODIFIERS = frozenset((
    "E1", "E2", "E3", "E4", "FA", "F1", "F2", "F3", "F4", "F5", "F6", "F7", "F8", "F9",
    "TA", "T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8", "T9", "LT", "RT", "LC", "LD", "RC", "LM", "RI",
    "24", "25", "57", "58", "78", "79", "27", "59", "91", "XE", "XS", "XP", "XU",
))
"""The NCCI-associated modifiers: on the column-2 line, one of them lets an edit with modifier
indicator 1 be bypassed (anatomic, global surgery, 27, 59, 91 and the X modifiers; CMS's list as
findacode.com summarises it). The one place payrules lists them."""

NO_DELETION = "9999-12-31"
"""The deletion date of an edit that is not deleted: after every date of service."""

MAX_ERRORS = 10
"""Malformed rows reported per table file; the last report says how many more there are."""

_DATA_START = re.compile(r"[A-Za-z]?[0-9]")

TABLE_CODE_RE = re.compile(r"^[0-9A-Z]{5}$")
"""A code in a CMS table: five letters or digits. Wider than the codes sessions may bill
(`domain.CODE_RE`): CMS's files also list codes such as 0002M (administrative MAAA codes), and a
row for a code no session bills is harmless, where refusing it would refuse the whole file."""

PTP_COLUMNS = ("column-1 code", "column-2 code", "prior to 1996", "effective date", "deletion date", "modifier indicator",
               "rationale")
MUE_COLUMNS = ("code", "MUE value", "adjudication indicator", "rationale")


class PtpRow(NamedTuple):
    """One PTP edit: `column2` is not paid with `column1` on dates of service from `effective`
    up to the day before `deleted` (ISO dates)."""

    column1: str
    column2: str
    effective: str
    deleted: str
    indicator: str
    rationale: str
    file: int
    """Index of the table file in the statement's list."""
    row: int
    """The row's line number in its file, from 1."""

    @property
    def in_force(self) -> bool:
        """Whether the edit applies on some date: indicator 9 and an edit deleted on the day it took
        effect (deleted retroactively) apply on none."""
        return self.indicator != "9" and self.effective < self.deleted


class MueRow(NamedTuple):
    """One MUE: at most `value` units of `code`, per line (`mai` 1) or per date of service (2, 3)."""

    code: str
    value: int
    mai: str
    rationale: str
    file: int
    row: int


# --- reading the files ----------------------------------------------------------------------


def table_name(path: str, including: str) -> str:
    """The name a table file is shown under: the path joined to the rule file's folder."""
    return os.path.normpath(os.path.join(os.path.dirname(including), path))


def read_table(name: str) -> Source:
    """A table file's text; InputError when it cannot be read. CMS's files are ASCII; a file that
    is not UTF-8 is read as Latin-1, so that one odd byte in a rationale is no reason to refuse it."""
    from payrules.modules import printable

    shown = quoted(printable(name))
    try:
        data = Path(name).read_bytes()
    except FileNotFoundError:
        raise InputError(f"no such file {shown}") from None
    except IsADirectoryError:
        raise InputError(f"{shown} is a folder") from None
    except OSError as error:
        raise InputError(f"cannot read {shown} ({error.strerror or error})") from None
    except ValueError as error:  # a name the system refuses (a NUL, a lone surrogate)
        raise InputError(f"cannot read {shown} ({error})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return Source(name, text.replace("\r\n", "\n"))


Report = Callable[[str, str, Span, str | None], None]


def load_tables(rule: ast.Rule, report: Report, read: list[Source]) -> ast.Rule:
    """An `apply ncci` rule with its table files read, relative to the file the rule is written
    in; each file that cannot be read is reported (E130) and left out. Files read go to `read`."""
    from payrules.modules import printable, unusable_path

    statement = rule.statement
    if not isinstance(statement, (ast.NcciPtp, ast.NcciMue)):
        return rule
    tables: list[Source] = []
    for path in statement.files:
        problem = unusable_path(path.value)
        if problem is not None:
            report("E130", f"cannot read the NCCI table {quoted(printable(path.value))}: {problem}", path.span,
                   "write the path of the table file, relative to the rule file")
            continue
        name = table_name(path.value, rule.span.file)
        try:
            source = read_table(name)
        except InputError as error:
            report("E130", f"cannot read the NCCI table {quoted(printable(path.value))}: {error}", path.span,
                   "paths are relative to the rule file that names them; download the table from CMS "
                   "(see the README, NCCI tables)")
            continue
        read.append(source)
        tables.append(source)
    return attrs.evolve(rule, statement=attrs.evolve(statement, tables=tuple(tables)))


# --- parsing the rows -------------------------------------------------------------------------


class _Errors:
    """The diagnostics of one table file: at most `MAX_ERRORS`, then a count of the rest."""

    def __init__(self, source: Source, what: str) -> None:
        self.source = source
        self.what = what
        self.found: list[Diagnostic] = []
        self.more = 0

    def add(self, message: str, start: int, end: int, help: str | None) -> None:
        if len(self.found) >= MAX_ERRORS:
            self.more += 1
            return
        span = Span(self.source, start, max(end, start))
        self.found.append(Diagnostic(code="E131", severity=Severity.ERROR, message=message, span=span, help=help))

    def done(self) -> list[Diagnostic]:
        if self.more and self.found:
            last = self.found[-1]
            more = f"{self.more:,} more row{'s' if self.more > 1 else ''} of {self.source.name} cannot be read either"
            self.found[-1] = Diagnostic(code=last.code, severity=last.severity, message=last.message, span=last.span,
                                        help=f"{last.help}; {more}" if last.help else more)
        return self.found


def _lines(source: Source) -> list[tuple[int, int, str]]:
    """(line number, offset, text) of every line of the file."""
    found = []
    offset = 0
    for number, text in enumerate(source.text.split("\n"), start=1):
        found.append((number, offset, text.rstrip("\r")))
        offset += len(text) + 1
    return found


def _date(text: str) -> str | None:
    """YYYYMMDD → YYYY-MM-DD, or None when it is no calendar date."""
    if len(text) != 8 or not text.isascii() or not text.isdigit():
        return None
    try:
        return datetime.date(int(text[:4]), int(text[4:6]), int(text[6:])).isoformat()
    except ValueError:
        return None


def parse_ptp(source: Source, file: int) -> tuple[list[PtpRow], list[Diagnostic]]:
    """The edits of one practitioner PTP table file, and a diagnostic for each malformed row."""
    errors = _Errors(source, "PTP")
    rows: list[PtpRow] = []
    for number, offset, text in _lines(source):
        if not _DATA_START.match(text.lstrip()):
            continue
        cells: list[tuple[str, int, int]] = []  # (text, start, end) in the file
        start = 0
        for part in text.split("\t"):
            stripped = part.strip()
            lead = len(part) - len(part.lstrip())
            cells.append((stripped, offset + start + lead, offset + start + lead + len(stripped)))
            start += len(part) + 1
        while len(cells) > 7 and not cells[-1][0]:
            cells.pop()  # trailing tabs
        if len(cells) < 6:
            if len(cells) == 1 and "," in text:  # the whole file is another layout: say it once
                errors.add(f"row {number} is comma-separated: this looks like an MUE table, not a PTP table",
                           offset, offset + len(text), "apply an MUE table with `apply ncci mue`; a practitioner "
                           "PTP table is tab-separated")
                break
            errors.add(f"row {number} of this PTP table has {len(cells)} tab-separated column"
                       f"{'s' if len(cells) != 1 else ''}, not 7", offset, offset + len(text),
                       f"a practitioner PTP row is: {', '.join(PTP_COLUMNS)}, separated by tabs")
            continue
        row = _ptp_row(cells, number, file, errors)
        if row is not None:
            rows.append(row)
    if not rows and not errors.found:
        errors.add("this file holds no PTP edit rows", 0, len(source.line_text(1)),
                   "a row starts with two procedure codes separated by a tab, as in CMS's practitioner PTP files")
    return rows, errors.done()


def _ptp_row(cells: list[tuple[str, int, int]], number: int, file: int, errors: _Errors) -> PtpRow | None:
    def bad(index: int, message: str, help: str) -> None:
        text, start, end = cells[index]
        errors.add(f"row {number}, column {index + 1} ({PTP_COLUMNS[index]}): {message}", start, end, help)

    ok = True
    for index in (0, 1):
        if not TABLE_CODE_RE.match(cells[index][0].upper()):
            bad(index, f"{quoted(cells[index][0])} is not a procedure code", "expected a code such as 97140")
            ok = False
    if cells[2][0] not in ("", "*"):
        bad(2, f"expected `*` or nothing, found {quoted(cells[2][0])}", "`*` marks an edit in force before 1996")
        ok = False
    effective = _date(cells[3][0])
    if effective is None:
        bad(3, f"{quoted(cells[3][0])} is not a date", "dates are written YYYYMMDD, such as 19990401")
        ok = False
    deleted = NO_DELETION if cells[4][0] in ("*", "") else _date(cells[4][0])
    if deleted is None:
        bad(4, f"{quoted(cells[4][0])} is not a date or `*`", "write YYYYMMDD, or `*` for an edit not deleted")
        ok = False
    indicator = cells[5][0]
    if indicator not in ("0", "1", "9"):
        bad(5, f"expected 0, 1 or 9, found {quoted(indicator)}",
            "0: no modifier bypasses the edit; 1: an NCCI-associated modifier may; 9: no edit")
        ok = False
    if not ok:
        return None
    assert effective is not None and deleted is not None
    rationale = cells[6][0] if len(cells) > 6 else ""
    return PtpRow(cells[0][0].upper(), cells[1][0].upper(), effective, deleted, indicator,
                  " ".join(rationale.split()), file, number)


def parse_mue(source: Source, file: int) -> tuple[list[MueRow], list[Diagnostic]]:
    """The limits of one practitioner MUE table file, and a diagnostic for each malformed row."""
    errors = _Errors(source, "MUE")
    rows: list[MueRow] = []
    lines = _lines(source)
    reader = csv.reader(source.text.split("\n"))
    last = 0
    for cells in reader:
        first_line, last = last + 1, reader.line_num
        number, offset, text = lines[first_line - 1]
        if not cells or not _DATA_START.match(cells[0].lstrip()):
            continue
        spans: list[tuple[str, int, int]] = []
        at = 0
        for cell in cells:
            stripped = cell.strip()
            found = text.find(stripped, at) if stripped else -1
            place = found if found >= 0 else min(at, len(text))
            spans.append((stripped, offset + place, offset + place + (len(stripped) if found >= 0 else 0)))
            at = place + len(stripped) if found >= 0 else at
        if len(cells) < 3:
            if "\t" in text:  # the whole file is another layout: say it once
                errors.add(f"row {number} is tab-separated: this looks like a PTP table, not an MUE table",
                           offset, offset + len(text), "apply a PTP table with `apply ncci ptp`; a practitioner "
                           "MUE table is comma-separated")
                break
            errors.add(f"row {number} of this MUE table has {len(cells)} comma-separated column"
                       f"{'s' if len(cells) != 1 else ''}, not 4", offset, offset + len(text),
                       f"a practitioner MUE row is: {', '.join(MUE_COLUMNS)}")
            continue
        row = _mue_row(spans, number, file, errors)
        if row is not None:
            rows.append(row)
    if not rows and not errors.found:
        errors.add("this file holds no MUE rows", 0, len(source.line_text(1)),
                   "a row starts with a procedure code and its MUE value, as in CMS's practitioner MUE file")
    return rows, errors.done()


def _mue_row(cells: list[tuple[str, int, int]], number: int, file: int, errors: _Errors) -> MueRow | None:
    def bad(index: int, message: str, help: str) -> None:
        text, start, end = cells[index]
        errors.add(f"row {number}, column {index + 1} ({MUE_COLUMNS[index]}): {message}", start, end, help)

    ok = True
    code = cells[0][0].upper()
    if not TABLE_CODE_RE.match(code):
        bad(0, f"{quoted(cells[0][0])} is not a procedure code", "expected a code such as 97140")
        ok = False
    value = cells[1][0]
    if not (value.isascii() and value.isdigit() and len(value) <= 6):
        bad(1, f"{quoted(value)} is not a whole number of units", "an MUE value is a number of units, such as 4")
        ok = False
    mai = cells[2][0][:1]
    if mai not in ("1", "2", "3"):
        bad(2, f"expected text starting with 1, 2 or 3, found {quoted(cells[2][0])}",
            "1: a limit per line; 2 or 3: a limit per date of service, such as `3 Date of Service Edit: Clinical`")
        ok = False
    if not ok:
        return None
    rationale = cells[3][0] if len(cells) > 3 else ""
    return MueRow(code, int(value), mai, " ".join(rationale.split()), file, number)


# --- for the checker and the code generator ----------------------------------------------------


def ptp_rows(statement: ast.NcciPtp) -> tuple[list[PtpRow], list[Diagnostic]]:
    rows: list[PtpRow] = []
    diagnostics: list[Diagnostic] = []
    for index, source in enumerate(statement.tables):
        found, problems = parse_ptp(source, index)
        rows += found
        diagnostics += problems
    return rows, diagnostics


def mue_rows(statement: ast.NcciMue) -> tuple[list[MueRow], list[Diagnostic]]:
    rows: list[MueRow] = []
    diagnostics: list[Diagnostic] = []
    seen: dict[str, MueRow] = {}
    for index, source in enumerate(statement.tables):
        found, problems = parse_mue(source, index)
        diagnostics += problems
        for row in found:
            first = seen.get(row.code)
            if first is not None:
                start = source.line_start(row.row)
                where = f"row {first.row}" + ("" if first.file == index else f" of {statement.tables[first.file].name}")
                diagnostics.append(Diagnostic(
                    code="E131", severity=Severity.ERROR, message=f"row {row.row}: {row.code} already has an MUE "
                    f"({where})", span=Span(source, start, start + len(row.code)),
                    help="keep one row per code: an MUE table gives each code one limit"))
                continue
            seen[row.code] = row
            rows.append(row)
    return rows, diagnostics


def in_range(row: PtpRow, start: str | None, end: str | None) -> bool:
    """Whether the edit is in force on some date of service in [start, end] (None: open)."""
    return row.in_force and (start is None or row.deleted > start) and (end is None or row.effective <= end)


def pair_edits_literal(rows: list[PtpRow], files: tuple[str, ...]) -> str:
    """Python source of an `rt.PairEdits` holding the edits that apply on some date (indicator 9
    rows and retroactive deletions are left out), one line of text per edit."""
    rationales: dict[str, int] = {}
    text = []
    for row in rows:
        if not row.in_force:
            continue
        number = rationales.setdefault(row.rationale, len(rationales))
        text.append(f"{row.column2} {row.column1} {row.effective} {row.deleted} {row.indicator} {row.file} "
                    f"{row.row} {number}")
    return f"rt.PairEdits({files!r}, {tuple(rationales)!r}, {chr(10).join(text)!r})"


def unit_limits_literal(rows: list[MueRow], files: tuple[str, ...]) -> str:
    """Python source of an `rt.UnitLimits` holding one line of text per MUE."""
    rationales: dict[str, int] = {}
    text = []
    for row in rows:
        number = rationales.setdefault(row.rationale, len(rationales))
        text.append(f"{row.code} {row.value} {row.mai} {row.file} {row.row} {number}")
    return f"rt.UnitLimits({files!r}, {tuple(rationales)!r}, {chr(10).join(text)!r})"


def modifiers_literal() -> str:
    return "frozenset({" + ", ".join(repr(m) for m in sorted(NCCI_MODIFIERS)) + "})"


def no_edit_in_force(rule: ast.Rule, rows: list[PtpRow]) -> Diagnostic | None:
    """W150 for an `apply ncci ptp` rule whose tables hold rows but none in force on any date of
    service the rule applies to (every row deleted, deleted retroactively, or indicator 9)."""
    start = rule.effective_from.value if rule.effective_from is not None else None
    end = rule.effective_to.value if rule.effective_to is not None else None
    if not rows or any(in_range(row, start, end) for row in rows):
        return None
    dates = (f" from {start} to {end}" if start and end else f" from {start} on" if start
             else f" up to {end}" if end else "")
    return Diagnostic(code="W150", severity=Severity.WARNING,
                      message=f"no edit of this PTP table is in force on any date of service{dates}",
                      span=rule.statement.span,
                      help="every row is deleted or has modifier indicator 9; point the rule at a current table "
                           "from CMS")


def why_silent(statement: ast.NcciPtp | ast.NcciMue, rows: list[PtpRow] | list[MueRow], line: Line,
               others: list[Line]) -> str:
    """Why an `apply ncci` rule gave `line` no reason (for `payrules explain`), when its other
    lines that day (`others`, by the same provider) are those given."""
    if isinstance(statement, ast.NcciMue):
        limit = next((row for row in rows if isinstance(row, MueRow) and row.code == line.code), None)
        if limit is None:
            return f"the table has no MUE for {line.code}"
        per = "per line" if limit.mai == "1" else "per date of service"
        return f"{line.units} unit{'s' if line.units != 1 else ''} within the MUE of {limit.value} {per}"
    edits = [row for row in rows if isinstance(row, PtpRow) and row.column2 == line.code and row.in_force
             and row.effective <= line.date < row.deleted]
    if not edits:
        return f"no edit of the table in force on {line.date} has {line.code} in column 2"
    billed = {other.code for other in others if other.provider_npi == line.provider_npi}
    present = sorted({row.column1 for row in edits if row.column1 in billed})
    if not present:
        column1 = ", ".join(sorted({row.column1 for row in edits}))
        return (f"{line.code} is a column-2 code of {column1}, and none is billed the same day "
                "(add one with --same-day to ask)")
    bypassed = sorted(line.modifiers & NCCI_MODIFIERS)
    return f"the line has NCCI-associated modifier {' '.join(bypassed)}" if bypassed else ""


def tables_named(name: str, text: str) -> set[str]:
    """The table files a rule file's `apply ncci` lines name, as paths joined to the rule file's
    folder with `/` (for `payrules diff git:REV:PATH`, which takes files from a git revision)."""
    from posixpath import dirname, join, normpath

    from payrules.parser import parse

    module, _ = parse(Source(name, text))
    return {normpath(join(dirname(name), path.value)) for rule in module.rules
            if isinstance(rule.statement, (ast.NcciPtp, ast.NcciMue)) for path in rule.statement.files}
