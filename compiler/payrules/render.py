"""Diagnostics and reports → text for people, and JSON for programs."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import click

from payrules.diagnostics import Diagnostic
from payrules.domain import dollars, format_cents
from payrules.records import RecordError
from payrules.runner import LineResult, Report, SessionResult

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
    out: list[str] = []
    for session in report.sessions:
        out += _session_text(session, colour)
        out.append("")
    if report.errors:
        out.append("Lines not judged (fix them and run again):")
        out += [f"  {_error_text(e)}" for e in report.errors]
        out.append("")
    out.append(_summary_text(report))
    return "\n".join(out) + "\n"


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
            out += textwrap.wrap(reason.message, width=100, initial_indent=" " * 8, subsequent_indent=" " * 8,
                                 break_on_hyphens=False, break_long_words=False)
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
    return f"{prefix}: {error.message}"


def _summary_text(report: Report) -> str:
    s = report.summary
    return (f"{s.lines_read} line{'s' if s.lines_read != 1 else ''} read: {s.judged} judged "
            f"({s.paid} paid, {s.reduced} reduced, {s.denied} denied), {s.rejected} not judged. "
            f"Charged {dollars(s.charged)}, allowed {dollars(s.allowed)}.")


# --- reports: JSON ---------------------------------------------------------------------


def report_data(report: Report) -> dict[str, Any]:
    """The JSON shape of a report; amounts are strings with two decimals."""
    return {
        "sessions": [{
            "session_id": s.session_id,
            "patient_id": s.patient_id,
            "date": s.date,
            "payer": s.payer,
            "payer_name": s.payer_name,
            "rules": s.rules_file,
            "lines": [{
                "line": line.line,
                "code": line.code,
                "modifiers": list(line.modifiers),
                "units": line.units,
                "charge": format_cents(line.charge),
                "allowed": format_cents(line.allowed),
                "status": line.status,
                "reasons": [{
                    "rule": r.rule, "kind": r.kind, "file": r.file, "line": r.line, "column": r.column,
                    "text": r.text, "message": r.message, "severity": r.severity, "carc": r.carc, "rarc": r.rarc,
                } for r in line.reasons],
            } for line in s.lines],
        } for s in report.sessions],
        "errors": [{
            "file": e.origin.file,
            "row": e.origin.row,
            "path": e.origin.path or None,
            "session_id": e.session_id,
            "line": e.line,
            "code": e.code,
            "message": e.message,
            "problems": [{"field": p.field, "value": p.value, "message": p.message} for p in e.problems],
        } for e in report.errors],
        "summary": {
            "lines_read": report.summary.lines_read,
            "judged": report.summary.judged,
            "paid": report.summary.paid,
            "reduced": report.summary.reduced,
            "denied": report.summary.denied,
            "rejected": report.summary.rejected,
            "charged": format_cents(report.summary.charged),
            "allowed": format_cents(report.summary.allowed),
        },
    }


def report_json(report: Report) -> str:
    return json.dumps(report_data(report), indent=2) + "\n"
