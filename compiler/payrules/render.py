"""Diagnostics and reports → text for people, and JSON for programs."""

from __future__ import annotations

import abc
import contextlib
import csv
import functools
import io
import json
import os
import re
import shutil
import sys
import textwrap
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import NamedTuple, TextIO

import attrs
import click

from payrules.diagnostics import CODES, Diagnostic, InputError, Severity
from payrules.domain import dollars, format_cents
from payrules.fields import Problem, RecordError
from payrules.compiler import Policy
from payrules.judging import Judged, error_dict, kept_of, reason_dict
from payrules.runner import (
    Block,
    Judgement,
    LineResult,
    Reason,
    Report,
    SessionResult,
    Summary,
    Told,
    reasons_of,
    rendered_reasons,
    sorted_modifiers,
)
from payrules.runtime import Line, Origin, RuleInfo, Session
from payrules.runtime import Reason as Reason_
from payrules.testing import Outcome, TestRun, actual_text, expected_text

# --- user text in text output ----------------------------------------------------------------

_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
"""Unicode categories that a terminal does not show as a character: controls (line breaks,
ANSI escapes), format characters (bidi overrides), line and paragraph separators, surrogates."""

_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """User text for text output, with every character a terminal would not show as itself
    written as an escape (`\\n`, `\\x1b`, `\\u2028`, `\\ud800`): a value can then never start a
    line of its own, move the cursor or colour the terminal, and a lone surrogate can be
    written as UTF-8. Every piece of user text that reaches text output passes through here."""
    if text.isprintable():  # nearly every value; it is False for all the categories above
        return text
    return "".join(_escape(c) if unicodedata.category(c) in _HIDDEN else c for c in text)


def _escape(char: str) -> str:
    named = _NAMED_ESCAPES.get(char)
    if named:
        return named
    point = ord(char)
    return f"\\x{point:02x}" if point < 0x100 else f"\\u{point:04x}" if point < 0x10000 else f"\\U{point:08x}"


def _wrap(message: str, first: str, rest: str) -> list[str]:
    """A message as indented lines of at most 100 characters (escaped first, so that a line
    break in it shows as `\\n` rather than being folded into a space)."""
    return textwrap.wrap(printable(message), width=100, initial_indent=first, subsequent_indent=rest,
                         break_on_hyphens=False, break_long_words=False)


# --- diagnostics ---------------------------------------------------------------------------


def diagnostic(d: Diagnostic) -> str:
    """The full view: code and message, location, the source line with a caret, and help."""
    line, column = d.span.line, d.span.column
    text = d.span.source.line_text(line)
    # Escapes widen the line; measure the caret on the line as shown.
    start = len(printable(text[: column - 1].expandtabs()))
    end_offset = min(d.span.end, d.span.source.line_start(line) + len(text))
    width = max(len(printable(text[: end_offset - d.span.source.line_start(line)].expandtabs())) - start, 1)
    gutter = " " * len(str(line))
    out = [
        f"{d.code} {printable(d.message)}",
        f"{gutter}--> {printable(d.span.file)}:{line}:{column}",
        f"{gutter} |",
        f"{line} | {printable(text.expandtabs())}",
        f"{gutter} | {' ' * start}{'^' * width}",
    ]
    if d.help:
        out += [f"{gutter} |", f"{gutter} = help: {printable(d.help)}"]
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
    return _filled(message, " " * 8, 100) or tuple(_wrap(message, " " * 8, " " * 8))


def _filled(message: str, indent: str, width: int) -> tuple[str, ...] | None:
    """`_wrap(message, indent, indent)` for a message of printable words with one space
    between them (nearly every explanation, most of them seen once): the same lines, filled
    greedily as `textwrap` fills them when it breaks only at spaces; None for any other."""
    if not message.isprintable() or "  " in message or message[:1] == " " or message[-1:] == " ":
        return None
    room = width - len(indent)
    lines: list[str] = []
    start, end = 0, len(message)
    while end - start > room:
        # The most words that fit: up to the last space within the room, else one long word.
        cut = message.rfind(" ", start, start + room + 1)
        if cut == -1:
            cut = message.find(" ", start)
            if cut == -1:
                break
        lines.append(indent + message[start:cut])
        start = cut + 1
    if start < end:
        lines.append(indent + message[start:])
    return tuple(lines)


def _session_text(session: SessionResult, colour: bool) -> list[str]:
    payer = session.payer if session.payer_name == session.payer else f"{session.payer}, {session.payer_name}"
    out = [printable(f"Session {session.session_id} | patient {session.patient_id} | {session.date} | payer {payer}")]
    codes = [printable(_code_text(line)) for line in session.lines]
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
                   f"allowed {dollars(line.allowed):>{allowed_width}}  {status}{_kept_text(line.origin)}")
        for reason in line.reasons:
            name = f" [{reason.rule}]" if reason.rule else ""
            rarc = f" RARC {reason.rarc}" if reason.rarc else ""
            out.append(printable(f"      {reason.severity} CARC {reason.carc}{rarc}: {reason.text}{name} "
                                 f"({reason.location})"))
            out += _wrapped(reason.message)
    return out


@functools.lru_cache(maxsize=4096)
def _session_head(session_id: str, patient_id: str, date: str, payer: str, payer_name: str) -> str:
    shown = payer if payer_name == payer else f"{payer}, {payer_name}"
    return printable(f"Session {session_id} | patient {patient_id} | {date} | payer {shown}") + "\n"


_session_head_of = _session_head.__wrapped__
"""`_session_head` without its cache, for the writer of many sessions (each id is seen once)."""


@functools.lru_cache(maxsize=20_000)
def _line_code(code: str, modifiers: frozenset[str], units: int) -> str:
    """`_code_text` of a line, escaped, from its parts."""
    text = code
    if modifiers:
        text += "-" + "-".join(sorted_modifiers(modifiers))
    return printable(f"{text} x{units}")


_dollars = functools.lru_cache(maxsize=10_000)(dollars)
"""`dollars`, for the few amounts that repeat on many lines."""


@functools.lru_cache(maxsize=8)
def _coloured(status: str) -> str:
    return click.style(status, fg=_STATUS_COLOURS[status], bold=True)


@functools.lru_cache(maxsize=20_000)
def _reason_text(reason: Reason | Told) -> str:
    """The lines `_session_text` writes for one reason, each ending in a line break."""
    return _reason_lines(reason, _wrapped)


def _reason_lines(reason: Reason | Told, wrap: Callable[[str], tuple[str, ...]]) -> str:
    """`_reason_text`, with the message wrapped by `wrap`."""
    return _reason_head(reason.severity, reason.carc, reason.rarc, reason.text, reason.rule, reason.location) + \
        "".join([f"{text}\n" for text in wrap(reason.message)])


@functools.lru_cache(maxsize=4096)
def _reason_head(severity: str, carc: str, rarc: str | None, text: str, rule: str | None, location: str) -> str:
    """The first line `_reason_text` writes for a reason: its rule's, the same for every line."""
    name = f" [{rule}]" if rule else ""
    coded = f" RARC {rarc}" if rarc else ""
    return printable(f"      {severity} CARC {carc}{coded}: {text}{name} ({location})") + "\n"


def _reasons_text(reasons: tuple[Reason | Told, ...]) -> str:
    """`_reason_text` of each of a line's reasons, for a writer that caches them by reason key
    (a message seen for the first time is wrapped without a cache of its own)."""
    return "".join([_reason_lines(reason, _wrapped.__wrapped__) for reason in reasons])


def _masked_errors(errors: tuple[RecordError, ...], mask: Mask) -> list[RecordError]:
    return [e._replace(problems=tuple(_masked_problem(p, mask) for p in e.problems)) for e in errors]


def _code_text(line: LineResult) -> str:
    text = line.code
    if line.modifiers:
        text += "-" + "-".join(line.modifiers)
    return f"{text} x{line.units}"


def _kept_text(origin: Origin) -> str:
    """The caller's ids kept on a line (`--keep`), as text after it: `  [claim_line_id A-17]`
    (`[name]` alone when the line has no value for it); "" when none were asked for."""
    kept = kept_of(origin)
    if not kept:
        return ""
    return "  " + printable(" ".join(f"[{name} {value}]" if value else f"[{name}]" for name, value in kept))


def _kept_values(origin: Origin, keep: tuple[str, ...]) -> list[str]:
    """The values of the `keep` ids of a line, in `keep` order ("" for one it does not have)."""
    kept = kept_of(origin)
    if len(kept) == len(keep) and all(name == k for (name, _), k in zip(kept, keep)):
        return [value for _, value in kept]
    found = dict(kept)
    return [found.get(name, "") for name in keep]


def _keep_json(origin: Origin, keep: tuple[str, ...]) -> str:
    """The `"keep"` object of a line or error as JSON text, in `keep` order."""
    return json.dumps(dict(zip(keep, _kept_values(origin, keep))))


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
    return printable(f"{prefix}: {'; '.join(problems)}") + _kept_text(error.origin)


def _summary_text(s: Summary) -> str:
    return (f"{s.lines_read} line{'s' if s.lines_read != 1 else ''} read: {s.judged} judged "
            f"({s.paid} paid, {s.reduced} reduced, {s.denied} denied), {s.rejected} rejected (not judged). "
            f"Charged {dollars(s.charged)}, allowed {dollars(s.allowed)}.")


# --- writers: one block at a time ----------------------------------------------------------


class Fragment(NamedTuple):
    """What a writer continuing an output wrote (see `Writer.continuation`)."""

    text: str
    held: list[RecordError]
    sessions: int


Mask = Callable[[str], str]
"""Patient id → what the output shows instead (see `payrules.masking.PatientMask`)."""


class Writer(abc.ABC):
    """Writes judged blocks to `out` as they come; `close` ends the output with the summary."""

    def __init__(self, out: TextIO, *, continued: bool = False, mask: Mask | None = None,
                 keep: tuple[str, ...] = ()) -> None:
        self.out = out
        self.keep = keep
        """The caller's ids carried with each line and error (`--keep`), in order; the writers
        take another, slower way only when some are asked for."""
        self.continued = continued
        """True when this writes the middle of an output another writer began."""
        self.mask = mask
        """When given, every patient id is written masked."""
        self.held: list[RecordError] = []
        """Lines not judged, for formats that list them at the end."""
        self.sessions = 0

    def block(self, block: Block) -> None:
        """Write one block; masking happens here, so that no format can forget it."""
        self._write_block(masked(block, self.mask) if self.mask else block)

    @abc.abstractmethod
    def _write_block(self, block: Block) -> None: ...

    def judged(self, judgement: Judgement) -> None:
        """Write one judged block. The bulk formats write it straight from the judged lines,
        with the bytes `block` writes for the same content; others get the result objects."""
        self.block(judgement.block())

    @abc.abstractmethod
    def close(self, summary: Summary) -> None: ...

    @abc.abstractmethod
    def continuation(self, out: TextIO) -> Writer:
        """A writer of the same kind that writes blocks into `out` as the middle of this one's
        output: the parts of a large input are rendered side by side, then `extend` this one."""

    def session_texts(self, judgement: Judgement) -> list[str]:
        """What `judged` writes for each session of `judgement`, a text per session, without
        its lines not judged: for output merged back, session by session, from parts of the
        input judged apart (see `payrules.workers`)."""
        texts, out = [], self.out
        try:
            for one in judgement.sessions:
                self.out = io.StringIO()
                self.judged(Judgement([one], (), 0))
                texts.append(self.out.getvalue())
        finally:
            self.out = out
        return texts

    def fragment(self) -> Fragment:
        """What this continuation wrote, to hand to `extend` (its `out` must be a StringIO)."""
        assert isinstance(self.out, io.StringIO)
        return Fragment(self.out.getvalue(), self.held, self.sessions)

    def extend(self, fragment: Fragment) -> None:
        self.out.write(fragment.text)
        self.held.extend(fragment.held)
        self.sessions += fragment.sessions

    def extend_from(self, fragment: Fragment, path: Path) -> None:
        """`extend` with a fragment whose text a continuation wrote to the file `path` (UTF-8)
        instead: copied by the system into an output that is a file."""
        self.extend(fragment._replace(text=""))
        try:
            self.out.flush()
            target = self.out.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            self.out.write(path.read_text(encoding="utf-8"))
            return
        with open(path, "rb", buffering=0) as source:  # read from where the system's copy stopped
            try:
                while os.copy_file_range(source.fileno(), target, 1 << 30):
                    pass
            except OSError:  # not between these two files: by reading and writing
                shutil.copyfileobj(source, self.out.buffer)
                self.out.buffer.flush()


def masked(block: Block, mask: Mask) -> Block:
    """`block` with its patient ids masked: each session's, and the value of each problem with
    the patient id field of a line not judged."""
    sessions = tuple(attrs.evolve(s, patient_id=mask(s.patient_id)) for s in block.sessions)
    errors = tuple(e._replace(problems=tuple(_masked_problem(p, mask) for p in e.problems)) for e in block.errors)
    return attrs.evolve(block, sessions=sessions, errors=errors)


def _masked_problem(problem: Problem, mask: Mask) -> Problem:
    return problem._replace(value=mask(problem.value)) if problem.field == "patient_id" else problem


class TextWriter(Writer):
    """Sessions as they are judged; the lines not judged and the summary at the end."""

    def __init__(self, out: TextIO, colour: bool = False, *, continued: bool = False,
                 mask: Mask | None = None, keep: tuple[str, ...] = ()) -> None:
        super().__init__(out, continued=continued, mask=mask, keep=keep)
        self.colour = colour

    def _write_block(self, block: Block) -> None:
        for session in block.sessions:
            self.out.write("\n".join(_session_text(session, self.colour)) + "\n\n")
        self.held.extend(block.errors)

    def judged(self, judgement: Judgement) -> None:
        self.out.write("".join(self._texts(judgement.sessions, [])))
        self.held.extend(_masked_errors(judgement.errors, self.mask) if self.mask else judgement.errors)

    def session_texts(self, judgement: Judgement) -> list[str]:
        return ["".join(self._texts([one], [])) for one in judgement.sessions]

    def _texts(self, sessions: list[tuple[Session, Policy, Judged]], out: list[str]) -> list[str]:
        """`out` with the text of each of `sessions` added."""
        mask, colour, keep = self.mask, self.colour, self.keep
        for session, policy, lines in sessions:
            patient = mask(session.patient_id) if mask else session.patient_id
            out.append(_session_head_of(session.session_id, patient, session.date, session.payer, policy.payer_name))
            for (line, _, _, found, _), text in zip(lines, _line_texts(lines, colour)):
                out.append(f"{text[:-1]}{_kept_text(line.origin)}\n" if keep else text)
                if found:
                    out.append(rendered_reasons(policy, "text", _reasons_text, line, found))
            out.append("\n")
        return out

    def close(self, summary: Summary) -> None:
        if self.held:
            self.out.write("Lines not judged (fix them and run again):\n")
            self.out.write("".join(f"  {_error_text(e)}\n" for e in self.held) + "\n")
        self.out.write(_summary_text(summary) + "\n")

    def continuation(self, out: TextIO) -> Writer:
        return TextWriter(out, self.colour, continued=True, mask=self.mask, keep=self.keep)


def _line_texts(lines: Judged, colour: bool) -> list[str]:
    """The text of each judged line of a session, in columns, ending in a line break (a line
    with ids to keep gets them before its break)."""
    if len(lines) == 1:  # its own widths
        line, cents, status, _, _ = lines[0]
        return [f"  line {line.number}  {_line_code(line.code, line.modifiers, line.units)}  "
                f"charge {_dollars(line.charge)}  allowed {_dollars(cents)}  {_coloured(status) if colour else status}\n"]
    cells = [(str(line.number), _line_code(line.code, line.modifiers, line.units), _dollars(line.charge),
              _dollars(cents), _coloured(status) if colour else status) for line, cents, status, _, _ in lines]
    number_width = max([len(number) for number, _, _, _, _ in cells])
    code_width = max([len(code) for _, code, _, _, _ in cells])
    charge_width = max([len(charge) for _, _, charge, _, _ in cells])
    allowed_width = max([len(allowed) for _, _, _, allowed, _ in cells])
    return [f"  line {number.ljust(number_width)}  {code.ljust(code_width)}  charge {charge.rjust(charge_width)}  "
            f"allowed {allowed.rjust(allowed_width)}  {status}\n" for number, code, charge, allowed, status in cells]


class JsonWriter(Writer):
    """One JSON object with one session (and one error) per line, written session by session.

    `json.dumps` escapes every control character and everything outside ASCII (lone surrogates
    included), so JSON and JSON Lines hold values exactly and can never break a line."""

    def __init__(self, out: TextIO, *, continued: bool = False, mask: Mask | None = None,
                 keep: tuple[str, ...] = ()) -> None:
        super().__init__(out, continued=continued, mask=mask, keep=keep)
        if not continued:
            out.write('{"sessions": [')

    def _write_block(self, block: Block) -> None:
        for session in block.sessions:
            # A continuation cannot know whether a session came before its first one; `extend` can.
            self.out.write(",\n" if self.sessions or self.continued else "\n")
            self.out.write(json.dumps(session.to_dict()))
            self.sessions += 1
        self.held.extend(block.errors)

    def judged(self, judgement: Judgement) -> None:
        out = []
        for session, policy, lines in judgement.sessions:
            out.append(",\n" if self.sessions or self.continued else "\n")
            out.append("{" + _session_json(session, policy.payer_name, policy.source, lines, policy, self.mask,
                                           self.keep))
            self.sessions += 1
        self.out.write("".join(out))
        self.held.extend(_masked_errors(judgement.errors, self.mask) if self.mask else judgement.errors)

    def close(self, summary: Summary) -> None:
        self.out.write("\n" if self.sessions else "")
        self.out.write('],\n"errors": [')
        self.out.write(",".join("\n" + json.dumps(error_dict(e)) for e in self.held))
        self.out.write("\n" if self.held else "")
        self.out.write('],\n"summary": ' + json.dumps(summary.to_dict()) + "}\n")

    def continuation(self, out: TextIO) -> Writer:
        return JsonWriter(out, continued=True, mask=self.mask, keep=self.keep)

    def extend_from(self, fragment: Fragment, path: Path) -> None:
        self.extend(fragment._replace(text=path.read_text(encoding="utf-8")))

    def extend(self, fragment: Fragment) -> None:
        if fragment.sessions and not self.sessions:
            fragment = fragment._replace(text="\n" + fragment.text.removeprefix(",\n"))
        super().extend(fragment)


class JsonlWriter(Writer):
    """One JSON object per line: each session and each line not judged as they come, then the summary."""

    def _write_block(self, block: Block) -> None:
        for session in block.sessions:
            self.out.write(json.dumps({"type": "session", **session.to_dict()}) + "\n")
        for error in block.errors:
            self.out.write(json.dumps({"type": "error", **error_dict(error)}) + "\n")

    def judged(self, judgement: Judgement) -> None:
        out = self.session_texts(judgement)
        errors = _masked_errors(judgement.errors, self.mask) if self.mask else judgement.errors
        out.extend(json.dumps({"type": "error", **error_dict(error)}) + "\n" for error in errors)
        self.out.write("".join(out))

    def session_texts(self, judgement: Judgement) -> list[str]:
        return [f'{{"type": "session", {_session_json(session, policy.payer_name, policy.source, lines, policy, self.mask, self.keep)}\n'
                for session, policy, lines in judgement.sessions]

    def close(self, summary: Summary) -> None:
        self.out.write(json.dumps({"type": "summary", **summary.to_dict()}) + "\n")

    def continuation(self, out: TextIO) -> Writer:
        return JsonlWriter(out, continued=True, mask=self.mask, keep=self.keep)


_dumps: Callable[[str], str] = encode_basestring_ascii
"""`json.dumps` of a string, without the encoder object around it (the same text)."""


def _session_json(session: Session, payer_name: str, rules_file: str, lines: Judged, policy: Policy,
                  mask: Mask | None, keep: tuple[str, ...] = ()) -> str:
    """`json.dumps(session_dict(...))` without its opening brace, built from cached pieces:
    the same text, as `tests/test_speed_paths.py` checks."""
    patient = mask(session.patient_id) if mask else session.patient_id
    if keep:
        body = ", ".join([f'{{"line": {line.number}, "code": {_json_text(line.code)}, "modifiers": '
                          f'{_json_modifiers(line.modifiers)}, "units": {line.units}, "units_paid": {paid}, '
                          f'"charge": "{_money(line.charge)}", "allowed": "{_money(cents)}", "status": "{status}", '
                          f'"reasons": {_rendered_json(policy, line, found) if found else "[]"}, '
                          f'"keep": {_keep_json(line.origin, keep)}}}'
                          for line, cents, status, found, paid in lines])
    else:
        heads, parts = _JSON_HEADS, []
        for line, cents, status, found, paid in lines:
            # What comes before a line's reasons repeats on many lines: built once.
            key = (line.number, line.code, line.modifiers, line.units, paid, line.charge, cents, status)
            head = heads.get(key)
            if head is None:
                if len(heads) >= _JSON_HEADS_SIZE:
                    heads.clear()
                head = heads[key] = (f'{{"line": {line.number}, "code": {_json_text(line.code)}, "modifiers": '
                                     f'{_json_modifiers(line.modifiers)}, "units": {line.units}, "units_paid": {paid}, '
                                     f'"charge": "{_money(line.charge)}", "allowed": "{_money(cents)}", '
                                     f'"status": "{status}", "reasons": ')
            parts.append(f'{head}{_rendered_json(policy, line, found)}}}' if found else f'{head}[]}}')
        body = ", ".join(parts)
    return (f'"session_id": {_dumps(session.session_id)}, "patient_id": {_dumps(patient)}, '
            f'"date": {_json_text(session.date)}, "payer": {_json_text(session.payer)}, '
            f'"payer_name": {_json_text(payer_name)}, "rules": {_json_text(rules_file)}, "lines": [{body}]}}')


_JSON_HEADS: dict[tuple[object, ...], str] = {}
"""A judged line's JSON object up to its reasons, by the values it holds."""

_JSON_HEADS_SIZE = 50_000


def _rendered_json(policy: Policy, line: Line, found: list[Reason_]) -> str:
    return rendered_reasons(policy, "json", _told_json, line, found)


def _told_json(reasons: tuple[Reason | Told, ...]) -> str:
    """`json.dumps([r.to_dict() for r in reasons])` of reasons rendered once per key: each from
    its rule's JSON around its message and amount."""
    parts = []
    for reason in reasons:
        before, between = _reason_json_ends(reason.info)
        parts.append(f'{before}{_dumps(reason.message)}{between}"{_money(reason.amount)}"}}')
    return f"[{', '.join(parts)}]"


@functools.lru_cache(maxsize=4096)
def _reason_json_ends(rule: RuleInfo) -> tuple[str, str]:
    """The JSON of a reason of `rule` up to its message, and from there up to its amount."""
    # Cut at the empty message and the zero amount; a quote inside a value is escaped, so
    # `"message": ""` is found only as the key, and the amount is the last value.
    before, after = json.dumps(reason_dict(rule, "", 0)).split('"message": ""')
    return f'{before}"message": ', after.removesuffix('"0.00"}')


_json_text = functools.lru_cache(maxsize=10_000)(json.dumps)


@functools.lru_cache(maxsize=1024)
def _json_modifiers(modifiers: frozenset[str]) -> str:
    return json.dumps(sorted(modifiers))




CSV_COLUMNS = ("file", "row", "session_id", "patient_id", "date", "payer", "line", "code", "modifiers", "units",
               "charge", "allowed", "status", "carc", "rarc", "rules", "reasons")


class CsvWriter(Writer):
    """One row per service line, judged or not, ready for a spreadsheet.

    Rows are built from cells that `csv` has already quoted: a session's own cells once per
    session, a list of reasons once per distinct list (many lines share one), and the cells
    payrules itself computes (numbers, amounts, statuses), which never need quoting. Every cell
    that holds user text is made by `_text_cells`, so none can become a spreadsheet formula.
    """

    def __init__(self, out: TextIO, *, continued: bool = False, mask: Mask | None = None,
                 keep: tuple[str, ...] = ()) -> None:
        super().__init__(out, continued=continued, mask=mask, keep=keep)
        if not continued:
            out.write(",".join(CSV_COLUMNS) + (f",{_text_cells(*keep)}" if keep else "") + "\r\n")

    def _kept_cells(self, origin: Origin) -> str:
        """The cells of the kept ids after a row's own, with their leading comma."""
        return "," + _text_cells(*_kept_values(origin, self.keep)) if self.keep else ""

    def _write_block(self, block: Block) -> None:
        rows = []
        for s in block.sessions:
            session = _text_cells(s.session_id, s.patient_id, s.date, s.payer)
            for line in s.lines:
                given = line.input
                origin = given.origin
                rows.append(f"{_file_cell(origin.file)},{origin.row},{session},{given.number},"
                            f"{_code_cell(given.code)},{_modifier_cell(given.modifiers)},{given.units},"
                            f"{_money(given.charge)},{_money(line.allowed)},{line.status},"
                            f"{_reason_cells(line.reasons)}{self._kept_cells(origin)}\r\n")
        for e in block.errors:
            line_number = e.line if e.line is not None else ""
            rows.append(f"{_file_cell(e.origin.file)},{e.origin.row},{_text_cells(e.session_id or '')},,,,"
                        f"{line_number},{_code_cell(e.code or '')},,,,,not judged,,,,{_text_cells(e.message)}"
                        f"{self._kept_cells(e.origin)}\r\n")
        self.out.write("".join(rows))

    def judged(self, judgement: Judgement) -> None:
        self.out.write("".join(self._rows(judgement.sessions, [])))
        if judgement.errors:
            errors = _masked_errors(judgement.errors, self.mask) if self.mask else judgement.errors
            self._write_block(Block(sessions=(), errors=tuple(errors), lines_read=0))

    def session_texts(self, judgement: Judgement) -> list[str]:
        rows = self._rows(judgement.sessions, [])  # a row per line
        texts, at = [], 0
        for _, _, lines in judgement.sessions:
            texts.append("".join(rows[at:at + len(lines)]))
            at += len(lines)
        return texts

    def _rows(self, sessions: list[tuple[Session, Policy, Judged]], rows: list[str]) -> list[str]:
        """`rows` with the rows of each line of `sessions` added."""
        mask = self.mask
        if self.keep:
            kept = self._kept_cells
            for s, policy, lines in sessions:
                session = _text_cells(s.session_id, mask(s.patient_id) if mask else s.patient_id, s.date, s.payer)
                rows.extend([f"{_file_cell(line.origin.file)},{line.origin.row},{session},{line.number},"
                             f"{_code_cell(line.code)},{_modifier_cell(line.modifiers)},{line.units},"
                             f"{_money(line.charge)},{_money(cents)},{status},"
                             f"{_reason_cells(reasons_of(policy, line, found) if found else ())}"
                             f"{kept(line.origin)}\r\n"
                             for line, cents, status, found, _ in lines])
        else:
            append, tails = rows.append, _CSV_TAILS
            for s, policy, lines in sessions:
                session = _text_cells(s.session_id, mask(s.patient_id) if mask else s.patient_id, s.date, s.payer)
                for line, cents, status, found, _ in lines:
                    # The cells from the line number to the status repeat on many rows: built once.
                    key = (line.number, line.code, line.modifiers, line.units, line.charge, cents, status)
                    tail = tails.get(key)
                    if tail is None:
                        if len(tails) >= _CSV_TAILS_SIZE:
                            tails.clear()
                        tail = tails[key] = (f"{line.number},{_code_cell(line.code)},"
                                             f"{_modifier_cell(line.modifiers)},{line.units},"
                                             f"{_money(line.charge)},{_money(cents)},{status},")
                    origin = line.origin
                    append(f"{_file_cell(origin.file)},{origin.row},{session},{tail}"
                           f"{rendered_reasons(policy, 'csv', _reason_cells_of, line, found) if found else ',,,'}\r\n")
        return rows

    def close(self, summary: Summary) -> None:
        """A CSV has no footer: the summary's counts are the rows themselves."""

    def continuation(self, out: TextIO) -> Writer:
        return CsvWriter(out, continued=True, mask=self.mask, keep=self.keep)


_CSV_TEXT = io.StringIO()
_CSV_CELLS = csv.writer(_CSV_TEXT)
"""The dialect of `CsvWriter` (its line terminator decides which cells are quoted)."""


_QUOTED = re.compile(r'[,"\r\n]')
"""Characters that make `csv.writer` quote a cell."""


def _csv_cells(*cells: str) -> str:
    """Cells as the part of a CSV row that `csv.writer` would write for them."""
    if not _QUOTED.search("".join(cells)):
        return ",".join(cells)
    _CSV_TEXT.seek(0)
    _CSV_TEXT.truncate()
    _CSV_CELLS.writerow(cells)
    return _CSV_TEXT.getvalue().removesuffix("\r\n")


def _quoted_cells(*cells: str) -> str:
    """`_csv_cells`, quoting each cell here: `csv` quotes a cell (its quotes doubled) when it
    holds a comma, a quote or a line break."""
    return ",".join([f'"{cell.replace(chr(34), chr(34) * 2)}"' if _QUOTED.search(cell) else cell for cell in cells])


def _text_cells(*texts: str) -> str:
    """User text as CSV cells: each made safe by `_cell`, then quoted as `csv` would."""
    joined = ",".join(texts)
    # Nearly all text needs neither: ASCII, no quoting character, no formula start.
    if joined.isascii() and joined.count(",") == len(texts) - 1 and not _QUOTE_BREAK_OR_FORMULA.search(joined):
        return joined
    return _quoted_cells(*map(_cell, texts))


_QUOTE_BREAK_OR_FORMULA = re.compile(r'["\r\n]|(?:^|,)[=+\-@\t]')
"""In ASCII cells joined by their only commas: a character that makes `csv` quote, or an ASCII
character of `_FORMULA_STARTS` at the start of a cell."""


_FORMULA_STARTS = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")
"""First characters that make a spreadsheet read a cell as a formula (OWASP's list, a line
break, and the full-width forms that some spreadsheets also accept)."""

_SURROGATE = re.compile("[\ud800-\udfff]")


def _cell(text: str) -> str:
    """User text for a spreadsheet cell: text that a spreadsheet would run as a formula gets a
    leading `'`, and a lone surrogate (which UTF-8 cannot hold) is written as `\\udxxx`."""
    if not text.isascii():
        text = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return "'" + text if text[:1] in _FORMULA_STARTS else text


_money = functools.lru_cache(maxsize=10_000)(format_cents)
"""`format_cents`, for the few amounts that repeat on many rows."""

_CSV_TAILS: dict[tuple[object, ...], str] = {}
"""A CSV row's cells from its line number to its status, by those values."""

_CSV_TAILS_SIZE = 50_000


@functools.lru_cache(maxsize=256)
def _file_cell(file: str) -> str:
    return _text_cells(file)


@functools.lru_cache(maxsize=4096)
def _code_cell(code: str) -> str:
    return _text_cells(code)


@functools.lru_cache(maxsize=256)
def _modifier_cell(modifiers: frozenset[str]) -> str:
    return _text_cells(" ".join(sorted(modifiers)))


@functools.lru_cache(maxsize=20_000)
def _reason_cells(reasons: tuple[Reason | Told, ...]) -> str:
    """The carc, rarc, rules and reasons cells of a line, as CSV text."""
    return _text_cells(";".join(r.carc for r in reasons), ";".join(r.rarc or "" for r in reasons),
                       "; ".join(r.location + (f" [{r.rule}]" if r.rule else "") for r in reasons),
                       " | ".join(r.message for r in reasons))


_reason_cells_of = _reason_cells.__wrapped__
"""`_reason_cells` without its cache, for a writer that caches them by reason key."""


# --- payrules test ---------------------------------------------------------------------------------


def test_text(run: TestRun, coverage: bool = False) -> str:
    """Each case file, a line per case, and for a failure the line, the expected and actual
    outcome, and the reasons that made the difference."""
    out: list[str] = []
    current = None
    for case in run.cases:
        if case.file != current:
            if current is not None:
                out.append("")
            out.append(case.file)
            current = case.file
        out.append(f"  {'PASS' if case.passed else 'FAIL'}  {case.name}")
        for outcome in case.outcomes:
            if not outcome.passed:
                out += _failure_lines(outcome, "        ")
    passed = len(run.cases) - len(run.failed)
    out.append("")
    if coverage:
        out += _coverage_lines(run)
    out.append(f"{len(run.cases)} case{'s' if len(run.cases) != 1 else ''}: {passed} passed, {len(run.failed)} failed")
    # Each entry is meant as one line; escaping them all keeps any user text on its line.
    return "\n".join(map(printable, out)) + "\n"


def _failure_lines(outcome: Outcome, indent: str) -> list[str]:
    e, actual = outcome.expectation, outcome.actual
    assert actual is not None
    line = actual.input
    out = [f"{indent}{e.origin}: session {line.session_id} line {line.number} {line.code}"
           f"{' x' + str(line.units)} charge {dollars(line.charge)}",
           f"{indent}  expected: {expected_text(e)}",
           f"{indent}  actual:   {actual_text(actual, e.units is not None)}"]
    if outcome.problems == ("reasons",) or outcome.missing or outcome.unexpected:
        for token in outcome.missing:
            out.append(f"{indent}  missing:  {token} gave no reason for this line")
        for reason in outcome.unexpected:
            out += _because(reason, f"{indent}  because:  ", f"{indent}            ")
    if set(outcome.problems) - {"reasons"} and not outcome.unexpected:
        if actual.reasons:
            for reason in actual.reasons:
                out += _because(reason, f"{indent}  because:  ", f"{indent}            ")
        else:
            out.append(f"{indent}  because:  no rule applied to this line")
    return out


def _because(reason: Reason, first: str, rest: str) -> list[str]:
    name = f" [{reason.rule}]" if reason.rule else ""
    head = f"{first}{reason.severity} CARC {reason.carc}: {reason.text}{name} ({reason.location})"
    return [head, *_wrap(reason.message, rest, rest)]


def _coverage_lines(run: TestRun) -> list[str]:
    total, missed = len(run.rules), run.unexercised
    out = [f"coverage: {total - len(missed)} of {total} rules gave a reason in some case"]
    for rule in missed:
        name = f" [{rule.name}]" if rule.name else ""
        out.append(f"  not exercised: {rule.file}:{rule.line}{name} {rule.text}")
    return out + [""]


def test_junit(run: TestRun) -> str:
    """JUnit XML: one test suite per case file, one test case per case (no timings)."""
    root = ET.Element("testsuites", name="payrules", tests=str(len(run.cases)), failures=str(len(run.failed)))
    files: dict[str, ET.Element] = {}
    for case in run.cases:
        suite = files.get(case.file)
        if suite is None:
            suite = files[case.file] = ET.SubElement(root, "testsuite", name=printable(case.file), tests="0",
                                                     failures="0")
        suite.set("tests", str(int(suite.get("tests", "0")) + 1))
        element = ET.SubElement(suite, "testcase", classname=printable(case.file), name=printable(case.name))
        if not case.passed:
            suite.set("failures", str(int(suite.get("failures", "0")) + 1))
            details = [text for o in case.outcomes if not o.passed for text in _failure_lines(o, "")]
            failed = next(o for o in case.outcomes if not o.passed)
            # XML cannot hold most control characters at all: escaped, they are kept and readable.
            message = printable(f"expected {expected_text(failed.expectation)}")
            failure = ET.SubElement(element, "failure", message=message, type="expectation")
            failure.text = "\n".join(map(printable, details))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# --- lint ----------------------------------------------------------------------------------------


def lint_summary(files: int, items: list[Diagnostic]) -> str:
    errors = sum(1 for d in items if d.severity is Severity.ERROR)
    warnings = len(items) - errors
    checked = f"{files} rule file{'s' if files != 1 else ''} checked"
    if not items:
        return f"{checked}: no problems\n"
    counts = [f"{n} {word}{'s' if n != 1 else ''}" for n, word in ((errors, "error"), (warnings, "warning")) if n]
    return f"{checked}: {' and '.join(counts)}\n"


def lint_text(files: int, items: list[Diagnostic]) -> str:
    body = "".join(diagnostic(d) + "\n\n" for d in items)
    return body + lint_summary(files, items)


def _end(d: Diagnostic) -> tuple[int, int]:
    """Line and column of the last character of the span (the caret's end)."""
    line, column = d.span.source.line_col(max(d.span.end - 1, d.span.start))
    return line, column + (1 if d.span.end > d.span.start else 0)


def lint_json(files: int, items: list[Diagnostic]) -> str:
    data = []
    for d in items:
        end_line, end_column = _end(d)
        data.append({"code": d.code, "severity": d.severity.value, "message": d.message, "help": d.help,
                     "file": d.span.file, "line": d.span.line, "column": d.span.column,
                     "end_line": end_line, "end_column": end_column})
    errors = sum(1 for d in items if d.severity is Severity.ERROR)
    summary = {"files": files, "errors": errors, "warnings": len(items) - errors}
    return json.dumps({"diagnostics": data, "summary": summary}, indent=2) + "\n"


SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"


def lint_sarif(files: int, items: list[Diagnostic], version: str) -> str:
    """SARIF 2.1.0, for code scanning: one run, every diagnostic code as a rule."""
    rules = [{"id": code, "name": code, "shortDescription": {"text": meaning},
              "defaultConfiguration": {"level": "error" if code.startswith("E") else "warning"}}
             for code, (meaning, _) in CODES.items()]
    index = {code: i for i, code in enumerate(CODES)}
    results = []
    for d in items:
        end_line, end_column = _end(d)
        text = d.message + (f" (help: {d.help})" if d.help else "")
        results.append({
            "ruleId": d.code, "ruleIndex": index[d.code], "level": d.severity.value, "message": {"text": text},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": Path(d.span.file).as_posix(), "uriBaseId": "%SRCROOT%"},
                "region": {"startLine": d.span.line, "startColumn": d.span.column, "endLine": end_line,
                           "endColumn": end_column,
                           "snippet": {"text": d.span.source.line_text(d.span.line)}},
            }}],
        })
    run = {"tool": {"driver": {"name": "payrules", "version": version, "rules": rules}},
           "columnKind": "unicodeCodePoints", "results": results}
    return json.dumps({"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}, indent=2) + "\n"


def _github_escape(text: str, property_value: bool = False) -> str:
    # Line breaks have GitHub's own escapes; every other hidden character is shown escaped.
    text = printable(text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"))
    if property_value:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def lint_github(files: int, items: list[Diagnostic]) -> str:
    """GitHub Actions workflow commands: each diagnostic is an annotation on its line."""
    out = []
    for d in items:
        end_line, end_column = _end(d)
        props = (f"file={_github_escape(d.span.file, True)},line={d.span.line},endLine={end_line},"
                 f"col={d.span.column},endColumn={end_column},title={_github_escape(d.code, True)}")
        message = d.message + (f" (help: {d.help})" if d.help else "")
        out.append(f"::{d.severity.value} {props}::{_github_escape(message)}\n")
    return "".join(out) + lint_summary(files, items)


@contextlib.contextmanager
def open_output(path: Path | None) -> Iterator[TextIO]:
    """Where a command writes its product: stdout for no path or `-`, else the file (UTF-8, line
    endings as written); a file that cannot be opened is an `InputError`."""
    if path is None or str(path) == "-":
        yield sys.stdout
        return
    try:
        stream = open(path, "w", encoding="utf-8", newline="")
    except OSError as error:
        raise InputError(f"{path}: cannot write ({error.strerror})") from None
    with stream:
        yield stream
