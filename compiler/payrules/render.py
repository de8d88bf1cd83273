"""Diagnostics and reports → text for people, and JSON for programs."""

from __future__ import annotations

import csv
import functools
import io
import json
import textwrap
from typing import Any, Protocol, TextIO

import click

from payrules.diagnostics import Diagnostic
from payrules.domain import dollars, format_cents
from payrules.records import RecordError
from payrules.runner import Block, LineResult, Reason, Report, SessionResult, Summary

# --- diagnostics ---------------------------------------------------------------------------


def diagnostic(d: Diagnostic) -> str:
    """The full view: code and message, location, the source line with a caret, and help."""
    line, column = d.span.line, d.span.column
    text = d.span.source.line_text(line)
    start = len(text[: column - 1].expandtabs())
    end_offset = min(d.span.end, d.span.source.line_start(line) + len(text))
    width = max(len(text[: end_offset - d.span.source.line_start(line)].expandtabs()) - start, 1)
    gutter = " " * len(str(line))
    out = [
        f"{d.code} {d.message}",
        f"{gutter}--> {d.span.file}:{line}:{column}",
        f"{gutter} |",
        f"{line} | {text.expandtabs()}",
        f"{gutter} | {' ' * start}{'^' * width}",
    ]
    if d.help:
        out += [f"{gutter} |", f"{gutter} = help: {d.help}"]
    return "\n".join(out)


def diagnostics(items: list[Diagnostic]) -> str:
    body = "\n\n".join(diagnostic(d) for d in items)
    count = len(items)
    files = len({d.span.file for d in items})
    where = f" in {files} files" if files > 1 else ""
    return f"{body}\n\nfound {count} error{'s' if count != 1 else ''}{where}\n"


def diagnostics_json(items: list[Diagnostic]) -> str:
    data = [{
        "code": d.code, "severity": d.severity.value, "message": d.message, "help": d.help,
        "file": d.span.file, "line": d.span.line, "column": d.span.column,
    } for d in items]
    return json.dumps({"diagnostics": data}, indent=2) + "\n"


# --- reports: text ---------------------------------------------------------------------

_STATUS_COLOURS = {"paid": "green", "reduced": "yellow", "denied": "red"}


def report_text(report: Report, colour: bool = False) -> str:
    out = io.StringIO()
    writer = TextWriter(out, colour)
    writer.block(Block(sessions=report.sessions, errors=report.errors, lines_read=report.summary.lines_read))
    writer.close(report.summary)
    return out.getvalue()


@functools.lru_cache(maxsize=20_000)
def _wrapped(message: str) -> tuple[str, ...]:
    return tuple(textwrap.wrap(message, width=100, initial_indent=" " * 8, subsequent_indent=" " * 8,
                               break_on_hyphens=False, break_long_words=False))


def _session_text(session: SessionResult, colour: bool) -> list[str]:
    payer = session.payer if session.payer_name == session.payer else f"{session.payer}, {session.payer_name}"
    out = [f"Session {session.session_id} | patient {session.patient_id} | {session.date} | payer {payer}"]
    codes = [_code_text(line) for line in session.lines]
    code_width = max(len(c) for c in codes)
    charge_width = max(len(dollars(line.charge)) for line in session.lines)
    allowed_width = max(len(dollars(line.allowed)) for line in session.lines)
    number_width = max(len(str(line.line)) for line in session.lines)
    for line, code in zip(session.lines, codes):
        status = line.status
        if colour:
            status = click.style(status, fg=_STATUS_COLOURS[status], bold=True)
        out.append(f"  line {line.line:<{number_width}}  {code:<{code_width}}  "
                   f"charge {dollars(line.charge):>{charge_width}}  "
                   f"allowed {dollars(line.allowed):>{allowed_width}}  {status}")
        for reason in line.reasons:
            name = f" [{reason.rule}]" if reason.rule else ""
            rarc = f" RARC {reason.rarc}" if reason.rarc else ""
            out.append(f"      {reason.severity} CARC {reason.carc}{rarc}: {reason.text}{name} "
                       f"({reason.location})")
            out += _wrapped(reason.message)
    return out


def _code_text(line: LineResult) -> str:
    text = line.code
    if line.modifiers:
        text += "-" + "-".join(line.modifiers)
    return f"{text} x{line.units}"


def _error_text(error: RecordError) -> str:
    where = f"{error.origin.file}:{error.origin.row}"
    if error.origin.path:
        where += f" {error.origin.path}"
    subject = []
    if error.session_id:
        subject.append(f"session {error.session_id}")
    if error.line is not None:
        subject.append(f"line {error.line}")
    prefix = f"{where} ({' '.join(subject)})" if subject else where
    problems = []
    for p in error.problems:
        column = error.origin.column(p.field)
        problems.append(f"{p.field} (column `{column}`): {p.message}" if column else f"{p.field}: {p.message}")
    return f"{prefix}: {'; '.join(problems)}"


def _summary_text(s: Summary) -> str:
    return (f"{s.lines_read} line{'s' if s.lines_read != 1 else ''} read: {s.judged} judged "
            f"({s.paid} paid, {s.reduced} reduced, {s.denied} denied), {s.rejected} not judged. "
            f"Charged {dollars(s.charged)}, allowed {dollars(s.allowed)}.")


def report_json(report: Report) -> str:
    out = io.StringIO()
    writer = JsonWriter(out)
    writer.block(Block(sessions=report.sessions, errors=report.errors, lines_read=report.summary.lines_read))
    writer.close(report.summary)
    return out.getvalue()


# --- writers: one block at a time ----------------------------------------------------------


class Writer(Protocol):
    def block(self, block: Block) -> None: ...

    def close(self, summary: Summary) -> None: ...


class TextWriter:
    """Sessions as they are judged; the lines not judged and the summary at the end."""

    def __init__(self, out: TextIO, colour: bool = False) -> None:
        self.out, self.colour = out, colour
        self.errors: list[RecordError] = []

    def block(self, block: Block) -> None:
        for session in block.sessions:
            self.out.write("\n".join(_session_text(session, self.colour)) + "\n\n")
        self.errors.extend(block.errors)

    def close(self, summary: Summary) -> None:
        if self.errors:
            self.out.write("Lines not judged (fix them and run again):\n")
            self.out.write("".join(f"  {_error_text(e)}\n" for e in self.errors) + "\n")
        self.out.write(_summary_text(summary) + "\n")


class JsonWriter:
    """One JSON object with one session (and one error) per line, written session by session."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.errors: list[RecordError] = []
        self.count = 0

    def block(self, block: Block) -> None:
        for session in block.sessions:
            self.out.write('{"sessions": [\n' if self.count == 0 else ",\n")
            self.out.write(json.dumps(session.to_dict()))
            self.count += 1
        self.errors.extend(block.errors)

    def close(self, summary: Summary) -> None:
        self.out.write('{"sessions": [' if self.count == 0 else "\n")
        self.out.write('],\n"errors": [')
        self.out.write(",".join("\n" + json.dumps(e.to_dict()) for e in self.errors))
        self.out.write("\n" if self.errors else "")
        self.out.write('],\n"summary": ' + json.dumps(summary.to_dict()) + "}\n")


class JsonlWriter:
    """One JSON object per line: each session and each line not judged as they come, then the summary."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def block(self, block: Block) -> None:
        for session in block.sessions:
            self.out.write(json.dumps({"type": "session", **session.to_dict()}) + "\n")
        for error in block.errors:
            self.out.write(json.dumps({"type": "error", **error.to_dict()}) + "\n")

    def close(self, summary: Summary) -> None:
        self.out.write(json.dumps({"type": "summary", **summary.to_dict()}) + "\n")


CSV_COLUMNS = ("file", "row", "session_id", "patient_id", "date", "payer", "line", "code", "modifiers", "units",
               "charge", "allowed", "status", "carc", "rarc", "rules", "reasons")


class CsvWriter:
    """One row per service line, judged or not, ready for a spreadsheet."""

    def __init__(self, out: TextIO) -> None:
        self.csv = csv.writer(out)
        self.csv.writerow(CSV_COLUMNS)

    def block(self, block: Block) -> None:
        rows = []
        for s in block.sessions:
            session = [_cell(s.session_id), _cell(s.patient_id), s.date, _cell(s.payer)]
            for line in s.lines:
                origin = line.input.origin
                rows.append([_cell(origin.file), origin.row, *session, line.input.number, line.input.code,
                             " ".join(line.modifiers), line.input.units, format_cents(line.input.charge),
                             format_cents(line.allowed), line.status, *_reason_cells(line.reasons)])
        self.csv.writerows(rows)
        for e in block.errors:
            self.csv.writerow([_cell(e.origin.file), e.origin.row, _cell(e.session_id or ""), "", "", "",
                               e.line if e.line is not None else "", _cell(e.code or ""), "", "", "", "",
                               "not judged", "", "", "", _cell(e.message)])

    def close(self, summary: Summary) -> None:
        pass


@functools.lru_cache(maxsize=20_000)
def _reason_cells(reasons: tuple[Reason, ...]) -> tuple[str, str, str, str]:
    """The carc, rarc, rules and reasons cells of a line (equal reasons repeat on many lines)."""
    return (";".join(r.carc for r in reasons), ";".join(r.rarc or "" for r in reasons),
            "; ".join(r.location + (f" [{_cell(r.rule)}]" if r.rule else "") for r in reasons),
            " | ".join(r.message for r in reasons))


def _cell(text: str) -> str:
    """User text for a spreadsheet cell: text that a spreadsheet would run as a formula is quoted."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
