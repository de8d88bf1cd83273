"""The facts of one service line (and optional same-day lines) → what a payer's rules would do
with it: its decision and reasons, and the payer's rules that would not apply, with why.

Nothing here decides a line. The facts become a made-up session, validated by `fields` as a
sessions file is, and judged by `runner.judge_batch` with the policies of `api.load_policies`:
the code path of `payrules check`. Only the list of rules that did not apply is worked out
here, from the rule file's checked syntax tree, to say why each one stayed silent.
"""

from __future__ import annotations

import enum
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import click

from payrules import ast, ncci
from payrules.api import load_policies
from payrules.check import Checked
from payrules.compiler import Policy, check_source, read_source
from payrules.diagnosis_sets import as_written
from payrules.diagnostics import CompileError, InputError
from payrules.domain import CREDENTIALS, closest, dollars, format_cents
from payrules.explain import condition_values
from payrules.fields import RecordError, field_name, session_batch
from payrules.icd10 import release
from payrules.judging import covers, date_range, declared_fields
from payrules.render import TextWriter, diagnostics, printable
from payrules.runner import Block, LineResult, SessionResult, judge_batch, policies_by_payer

SESSION_ID = "ASK-1"
PATIENT_ID = "PATIENT-0"
PROVIDER_NPI = "1234567893"
"""The NPI of the standard's own worked example: valid check digit, no real provider."""
PLACEHOLDER_CHARGE = "100.00"
"""The charge of a line when none is given: a round figure, said in the output, that shows
caps and reductions as a share of it."""
FALLBACK_DATE = "2026-04-01"
"""The default date of service when no ICD-10-CM release is shipped to take it from."""
ORIGIN = "<explain>"

EXIT_PAID, EXIT_NOT_PAID, EXIT_USAGE = 0, 1, 2

_OPTIONS = {"code": "--code", "modifiers": "--modifier", "units": "--units", "minutes": "--minutes",
            "charge": "--charge", "diagnoses": "--diagnosis", "date": "--date", "payer": "--payer",
            "provider_credential": "--credential", "prescription_by": "--prescription-by",
            "place_of_service": "--place-of-service"}
"""Session field → the option that gave its value, for error messages."""


# --- the question --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Question:
    """The facts a biller gives on the phone; None is "not said"."""

    code: str
    credential: str | None = None
    modifiers: tuple[str, ...] = ()
    units: str | None = None
    minutes: str | None = None
    charge: str | None = None
    diagnoses: tuple[str, ...] = ()
    date: str | None = None
    payer: str | None = None
    prescription_by: str | None = None
    same_day: tuple[str, ...] = ()
    """Other lines of the same session, each `CODE` or `CODE-MOD[-MOD...]`."""
    place_of_service: str | None = None
    facts: tuple[tuple[str, str], ...] = ()
    """Values of declared fields (`--field NAME=VALUE`), for the session."""


@attrs.frozen(kw_only=True)
class Silent:
    """A rule of the payer that gave no reason on the line asked about, and why (when cheap to say)."""

    rule: str | None
    kind: str
    location: str
    text: str
    why: str


@attrs.frozen(kw_only=True)
class Answer:
    """The made-up session judged, the line asked about, and the rules that stayed silent."""

    policy: Policy
    session: SessionResult
    assumptions: tuple[str, ...]
    silent: tuple[Silent, ...]

    @property
    def line(self) -> LineResult:
        return self.session.lines[0]

    @property
    def paid(self) -> bool:
        return self.line.status == "paid"


class AskError(InputError):
    """A fact given that cannot be used: one worded message per bad option."""


# --- judging ---------------------------------------------------------------------------------


def ask(rules: Path, question: Question) -> Answer:
    """Judge the line of `question` with the rules under `rules`, as `payrules check` would."""
    policies = policies_by_payer(load_policies(rules))
    found = _payer(policies, question.payer)
    date = question.date if question.date is not None else default_date(found)
    assumptions = _assumptions(question, found[-1], date)
    names = declared_fields(p for policy in policies.values() for p in policy)
    batch = session_batch([_session(question, found[0].payer_id, date)], ORIGIN, (), names)
    if batch.errors:
        raise AskError("\n".join(_field_errors(batch.errors, question)))
    block = judge_batch(batch, policies)
    if block.errors:  # no rule file of the payer covers the date
        raise AskError("\n".join(_field_errors(block.errors, question, payer_option="--date")))
    session = block.sessions[0]
    policy = next(p for p in found if p.source == session.rules_file and covers(p, date))
    return Answer(policy=policy, session=session, assumptions=assumptions,
                  silent=tuple(_silent(policy, session)))


def default_date(found: tuple[Policy, ...]) -> str:
    """The date of service when none is given, never the clock: the first date of the shipped
    ICD-10-CM code set (diagnoses are checked against it) when the payer's latest rule file
    covers it, else the first date that file covers."""
    shipped = release()
    date = (shipped.effective if shipped is not None else None) or FALLBACK_DATE
    latest = found[-1]
    if covers(latest, date):
        return date
    return latest.effective_from or latest.effective_to or date


def _payer(policies: dict[str, tuple[Policy, ...]], payer: str | None) -> tuple[Policy, ...]:
    known = sorted(found[0].payer_id for found in policies.values())
    listed = ", ".join(f"`{p}`" for p in known)
    if payer is None:
        if len(known) > 1:
            raise AskError(f"--payer: the rules are for {len(known)} payers ({listed}); say which with --payer")
        return next(iter(policies.values()))
    found = policies.get(payer.strip().casefold())
    if found:
        return found
    close = closest(payer, known)
    hint = f"did you mean `{close}`? " if close else ""
    raise AskError(f"--payer: no rule file for payer `{payer}`; {hint}the payers are {listed}")


def _session(question: Question, payer: str, date: str) -> dict[str, Any]:
    """The made-up session in the JSON input shape: the line asked about first, then the
    same-day lines, all by one made-up provider for one made-up patient."""
    first = {"code": question.code, "modifiers": list(question.modifiers), "units": question.units or "",
             "minutes": question.minutes or "", "charge": PLACEHOLDER_CHARGE if question.charge is None
             else question.charge, "diagnoses": list(question.diagnoses),
             "prescription_by": question.prescription_by or "", "place_of_service": question.place_of_service or ""}
    others = []
    for text in question.same_day:
        code, *modifiers = text.split("-")
        others.append({"code": code, "modifiers": modifiers, "charge": PLACEHOLDER_CHARGE,
                       "diagnoses": list(question.diagnoses)})
    return {"session_id": SESSION_ID, "patient_id": PATIENT_ID, "date": date, "payer": payer,
            "provider_npi": PROVIDER_NPI, "provider_credential": question.credential or "",
            "lines": [first, *others], **dict(question.facts)}


def _field_errors(errors: tuple[RecordError, ...] | list[RecordError], question: Question,
                  payer_option: str = "--payer") -> Iterator[str]:
    """Each problem as `--option: message`; a same-day line's as `--same-day TEXT: field: message`.
    After judging, the only problem left is a payer with no rules on the date: `payer_option`."""
    seen: set[str] = set()
    for error in errors:
        index = int(error.origin.path[len("lines["):-1]) if error.origin.path.startswith("lines[") else 0
        for problem in error.problems:
            if index == 0:
                option = payer_option if problem.field == "payer" else _OPTIONS.get(problem.field,
                                                                                   f"--field {problem.field}")
                text = f"{option}: {problem.message}"
                if problem.message.startswith("is missing"):
                    text = f"{option}: is missing; a rule's condition needs it (give {option}"
                    text += "=VALUE to ask)" if option.startswith("--field") else " to ask)"
            elif problem.field in ("code", "modifiers"):
                # Its other fields are the first line's, whose problems are said once, above.
                text = f"--same-day {question.same_day[index - 1]}: {problem.message}"
            else:
                continue
            if text not in seen:  # the session's fields are shared by all its lines
                seen.add(text)
                yield text


def _assumptions(question: Question, latest: Policy, date: str) -> tuple[str, ...]:
    said: list[str] = []
    if question.date is None:
        shipped = release()
        if shipped is not None and date == shipped.effective:
            said.append(f"date of service {date}, the first date of the ICD-10-CM code set payrules ships "
                        "(give --date to ask about another)")
        else:
            said.append(f"date of service {date}, the first date the payer's latest rule file covers "
                        f"({date_range(latest)}; give --date to ask about another)")
    if question.charge is None:
        said.append(f"charge ${PLACEHOLDER_CHARGE} for each line, a placeholder (give --charge for the "
                    "line's own)")
    elif question.same_day:
        said.append(f"charge ${PLACEHOLDER_CHARGE} for each same-day line, a placeholder")
    if question.credential is None:
        said.append("a provider with no credential on record (give --credential, such as LMT or DC)")
    said.append(f"one made-up patient ({PATIENT_ID}) and provider (NPI {PROVIDER_NPI}), no earlier visits")
    if question.same_day:
        said.append("each --same-day line is a further line of the same session (same patient, provider and date), 1 unit")
    return tuple(said)


# --- the rules that stayed silent ----------------------------------------------------------


def _silent(policy: Policy, session: SessionResult) -> Iterator[Silent]:
    """The payer's rules that gave the first line no reason, in file order, each with why."""
    given = {(r.file, r.line) for r in session.lines[0].reasons}
    checked = _checked(policy)
    nodes = checked.module.rules if checked is not None else ()
    for rule in policy.rules:
        if (rule.file, rule.line) in given:
            continue
        node = nodes[rule.position] if rule.position < len(nodes) else None
        why = _why(node, checked, session) if node is not None and checked is not None else ""
        condition = dict(rule.params).get("condition")
        if condition:  # the condition first: it is what a biller is asked about
            values = condition_values(rule, session.lines[0].input)
            here = "; here " + ", ".join(f"{w} is {v}" for w, v in values) if values else ""
            why = f"it applies only {condition}{here}" + (f"; {why}" if why else "")
        yield Silent(rule=rule.name, kind=rule.kind, location=f"{rule.file}:{rule.line}", text=rule.text,
                     why=why or "its conditions do not hold for this line")


def _checked(policy: Policy) -> Checked | None:
    """The rule file's checked tree, read again (compiled policies keep no tree); None when it
    cannot be read again as it was compiled, and then no rule says why."""
    try:
        checked = check_source(read_source(Path(policy.source), policy.source))
    except (InputError, CompileError):
        return None
    if len(checked.module.rules) != len(policy.rules):
        return None
    return checked


def _why(node: ast.Rule, checked: Checked, session: SessionResult) -> str:
    line = session.lines[0]
    date = session.date
    start = node.effective_from.value if node.effective_from is not None else None
    end = node.effective_to.value if node.effective_to is not None else None
    if (start is not None and date < start) or (end is not None and date > end):
        return f"in effect {start or 'any date'} to {end or 'any date'} only; the line is dated {date}"
    s = node.statement
    sets = checked.bindings.code_sets
    codes: ast.CodeList | None = getattr(s, "codes", None)
    listed = _codes_text(checked, codes)
    if isinstance(s, ast.Only):
        return f"{line.code} is one of the codes it pays for"
    if codes is not None and line.code not in sets[codes]:
        return f"for {listed} only"
    others = session.lines[1:]
    if isinstance(s, (ast.NoSameDay, ast.OnlyWith, ast.Bundled)) or (
            isinstance(s, ast.RequiresModifier) and s.other is not None):
        assert s.other is not None
        other = sets[s.other]
        if isinstance(s, ast.NoSameDay) and codes is None and line.code in other:
            return f"{line.code} is itself one of {_codes_text(checked, s.other)}"
        modifier = _has(line, getattr(s, "unless", ()) or getattr(s, "modifiers", ()))
        if modifier:
            return f"the line has modifier {modifier}"
        present = [o.code for o in others if o.code in other]
        when = "the same day" if s.scope == "day" else "the same session"
        if isinstance(s, ast.OnlyWith):
            present = [code for code in present if code != line.code]  # its own code never qualifies it
            return f"{', '.join(present)} is billed on {when}" if present else ""
        return "" if present else (f"no {_codes_text(checked, s.other)} on {when} "
                                   "(add it with --same-day to ask)")
    if isinstance(s, ast.RequiresModifier):
        modifier = _has(line, s.modifiers)
        return f"the line has modifier {modifier}" if modifier else ""
    if isinstance(s, (ast.NotPayableBy, ast.RequiresCredential)):
        credential = _credential(line)
        return f"the provider is {credential}" if credential else "the provider has no credential on record"
    if isinstance(s, ast.RequiresPrescription):
        who = line.input.prescription_by
        return f"the line has a prescription by {with_credential(who)}" if who else ""
    if isinstance(s, ast.RequiresDiagnosis):
        if s.primary and line.input.diagnoses:
            return f"the line's primary diagnosis is {line.input.diagnoses[0]}"
        return f"the line has diagnosis {', '.join(line.input.diagnoses)}" if line.input.diagnoses else ""
    if isinstance(s, ast.NotCoveredDiagnosis):
        if not line.input.diagnoses:
            return "the line has no diagnosis (give --diagnosis to ask)"
        listed = _diagnoses_text(checked, s.diagnoses)
        if s.primary:
            return f"the primary diagnosis {line.input.diagnoses[0]} is not among {listed}"
        return f"{', '.join(line.input.diagnoses)} is not among {listed}"
    if isinstance(s, (ast.MaxAmount, ast.MaxUnits, ast.MaxMinutes, ast.TimeRule)) and line.status == "denied":
        return "limits apply to lines not denied, and this line is denied"
    if isinstance(s, (ast.MaxMinutes, ast.TimeRule)) and line.input.minutes is None:
        return "the line has no minutes (give --minutes to ask)"
    if isinstance(s, ast.TimeRule):
        return f"{line.input.minutes} minutes support the {_plural(line.units, 'unit')} billed"
    if isinstance(s, (ast.MaxAmount, ast.MaxUnits, ast.MaxMinutes, ast.MaxVisits)):
        over = " (no earlier visits are counted)" if s.period.over_history else ""
        return f"within its limit{over}"
    if isinstance(s, ast.OneOf):
        modifier = _has(line, s.unless)
        return f"the line has modifier {modifier}" if modifier else "the line is the first of these codes"
    if isinstance(s, ast.NoDuplicate):
        return f"no other provider billed {line.code} that day"
    if isinstance(s, (ast.NcciPtp, ast.NcciMue)):
        rows = checked.bindings.ncci.get(s, [])
        return ncci.why_silent(s, rows, line.input, [o.input for o in others])
    return ""


def _codes_text(checked: Checked, codes: ast.CodeList | None) -> str:
    """A code list as written, each set name followed by its codes (as explanations write it)."""
    if codes is None:
        return "any code"
    by_name = checked.bindings.sets_by_name
    return ", ".join(f"{item.name} ({by_name[item.name].describe()})" if isinstance(item, ast.SetRef)
                     else item.span.text for item in codes.items)


def _diagnoses_text(checked: Checked, diagnoses: ast.DiagnosisList) -> str:
    """A diagnosis list as written, each set name followed by what it holds."""
    by_name = checked.bindings.diagnoses_by_name
    return ", ".join(f"{item.span.text} ({by_name[item.span.text].describe()})" if item.span.text in by_name
                     else as_written(item.span.text) for item in diagnoses.items)


def _has(line: LineResult, words: tuple[ast.Word, ...]) -> str:
    wanted = {w.value.upper() for w in words}
    return " ".join(sorted(wanted & line.input.modifiers))


def _credential(line: LineResult) -> str:
    return with_credential(line.input.provider_credential)


def with_credential(credential: str) -> str:
    meaning = CREDENTIALS.get(credential)
    return f"{credential} ({meaning})" if meaning else credential


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


# --- rendering -------------------------------------------------------------------------------


def answer_text(answer: Answer) -> str:
    """The decision on the line (in `payrules check`'s words), what was assumed, and the rules
    that did not apply with why."""
    line, policy = answer.line, answer.policy
    payer = policy.payer_id if policy.payer_name == policy.payer_id else f"{policy.payer_id}, {policy.payer_name}"
    allowed = dollars(line.allowed)
    head = printable(f"{_line_words(line)} for payer {payer} ({policy.source}): {line.status}, allowed {allowed} "
                     f"of {dollars(line.charge)}")
    out = ["Assumed:", *(f"  {text}" for text in answer.assumptions), ""]
    out += ["Rules that did not apply to this line:"]
    out += [f"  {s.location}  {s.text}{f' [{s.rule}]' if s.rule else ''}: {s.why}" for s in answer.silent]
    if not answer.silent:
        out.append("  none: every rule of the payer gave this line a reason")
    # The judged session in `payrules check`'s own text (already escaped by its writer).
    judged = io.StringIO()
    TextWriter(judged).block(Block(sessions=(answer.session,), errors=(), lines_read=len(answer.session.lines)))
    return f"{head}\n\n{judged.getvalue()}" + "".join(printable(text) + "\n" for text in out)


def _line_words(line: LineResult) -> str:
    code = "-".join((line.code, *line.modifiers))
    return f"{code} x{line.units}"


def answer_dict(answer: Answer) -> dict[str, Any]:
    """The JSON shape: the session as `payrules check --format json` writes it, the line asked
    about (its first line), the assumptions and the rules that did not apply."""
    line = answer.line
    return {"payer": answer.policy.payer_id, "payer_name": answer.policy.payer_name,
            "rules": answer.policy.source, "status": line.status, "charge": format_cents(line.charge),
            "allowed": format_cents(line.allowed), "line": line.to_dict(),
            "session": answer.session.to_dict(), "assumptions": list(answer.assumptions),
            "not_applied": [{"rule": s.rule, "kind": s.kind, "location": s.location, "text": s.text,
                             "why": s.why} for s in answer.silent]}


# --- the command -------------------------------------------------------------------------------


def _facts(ctx: click.Context, given: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """`--field NAME=VALUE` options as (name, value), names as the input's keys are read."""
    found = []
    for text in given:
        name, sign, value = text.partition("=")
        if not sign or not name.strip():
            raise click.BadParameter(f"expected NAME=VALUE, such as accident_date=2024-03-01, found `{text}`",
                                     ctx, param_hint="--field")
        found.append((field_name(name), value))
    return tuple(found)


class AskFormat(enum.Enum):
    TEXT = "text"
    JSON = "json"


@click.command(name="explain")
@click.argument("rules", type=click.Path(path_type=Path))
@click.option("--code", "code", required=True, metavar="CODE", help="The procedure code billed, such as 97140.")
@click.option("--credential", "credential", metavar="CRED",
              help=f"The rendering provider's credential ({', '.join(CREDENTIALS)}); by default none on record.")
@click.option("--modifier", "modifiers", multiple=True, metavar="MOD", help="A modifier of the line (repeatable).")
@click.option("--units", "units", metavar="N", help="Units billed; by default 1.")
@click.option("--minutes", "minutes", metavar="N", help="Minutes of a timed service.")
@click.option("--charge", "charge", metavar="AMOUNT",
              help=f"The line's charge, such as 45.00; by default a placeholder of ${PLACEHOLDER_CHARGE}.")
@click.option("--diagnosis", "diagnoses", multiple=True, metavar="ICD10",
              help="An ICD-10-CM diagnosis of the line, such as M54.50 (repeatable; the first is the "
                   "primary diagnosis).")
@click.option("--date", "date", metavar="YYYY-MM-DD",
              help="The date of service; by default the first date of the ICD-10-CM code set payrules ships, "
              "when the payer's latest rule file covers it, else that file's first date.")
@click.option("--payer", "payer", metavar="ID", help="The payer id; needed when RULES holds several payers.")
@click.option("--prescription-by", "prescription_by", metavar="CRED",
              help="The credential of the prescriber, when the line has a prescription.")
@click.option("--same-day", "same_day", multiple=True, metavar="CODE[-MOD]",
              help="Another line of the same session, such as 98940 or 97140-59 (repeatable).")
@click.option("--place-of-service", "place_of_service", metavar="CODE",
              help="The place of service, two digits such as 11 (office) or 12 (home).")
@click.option("--field", "facts", multiple=True, metavar="NAME=VALUE",
              help="The value of a field the rule file declares, such as accident_date=2024-03-01 (repeatable).")
@click.option("--format", "output_format", type=click.Choice([f.value for f in AskFormat]),
              default=AskFormat.TEXT.value, show_default=True, help="text for people, json for programs.")
@click.pass_context
def explain_command(ctx: click.Context, rules: Path, code: str, credential: str | None, modifiers: tuple[str, ...],
                    units: str | None, minutes: str | None, charge: str | None, diagnoses: tuple[str, ...],
                    date: str | None, payer: str | None, prescription_by: str | None, same_day: tuple[str, ...],
                    place_of_service: str | None, facts: tuple[str, ...], output_format: str) -> None:
    """Say what the rules in RULES (a .payer file or a folder) would do with one service line
    described by its facts, without any session file: its decision and reasons, in the words of
    `payrules check`, and which of the payer's rules would not apply, with why.

    \b
    Example: payrules explain payers/ --payer MERIDIAN --code 97140 --credential LMT
             --same-day 98940

    Exit status: 0 the line would be paid in full, 1 denied or reduced, 2 bad usage or a value
    that cannot be used.
    """
    question = Question(code=code, credential=credential, modifiers=modifiers, units=units, minutes=minutes,
                        charge=charge, diagnoses=diagnoses, date=date, payer=payer,
                        prescription_by=prescription_by, same_day=same_day, place_of_service=place_of_service,
                        facts=_facts(ctx, facts))
    try:
        answer = ask(rules, question)
    except CompileError as error:
        click.echo(diagnostics(error.diagnostics), err=True, nl=False)
        ctx.exit(EXIT_USAGE)
    except InputError as error:
        for text in str(error).split("\n"):
            click.echo(f"error: {printable(text)}", err=True)
        ctx.exit(EXIT_USAGE)
    if AskFormat(output_format) is AskFormat.JSON:
        click.echo(json.dumps(answer_dict(answer), indent=2))
    else:
        click.echo(answer_text(answer), nl=False)
    ctx.exit(EXIT_PAID if answer.paid else EXIT_NOT_PAID)
