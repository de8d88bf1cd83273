"""A `diff.Diff` → text for people, JSON for programs, or CSV with one row per changed line."""

from __future__ import annotations

import json
from itertools import groupby
from typing import Any

from payrules.diff import NOT_JUDGED, Cause, Decision, Diff, KindTotal, LineChange, Rule, RuleTotal, Version
from payrules.domain import dollars, format_cents
from payrules.render import _text_cells, printable

_MARKS = {"added": "+", "removed": "-", "amount": "~"}
_VERBS = {"added": "appears on", "removed": "disappears from", "amount": "takes another amount on"}


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _lines(count: int, width: int) -> str:
    """`  3 lines`, `  1 line `: counts right-aligned on `width` digits, words aligned too."""
    return f"{count:>{width}} line{' ' if count == 1 else 's'}"


def _signed(cents: int) -> str:
    """Money with its sign: `+$5.00`, `-$5.00`, `$0.00`."""
    return ("+" if cents > 0 else "") + dollars(cents)


def _kind(kind: str) -> str:
    return kind.replace("->", " -> ")


# --- text ------------------------------------------------------------------------------------


def text(result: Diff) -> str:
    """The changed lines session by session, the lines judged under one version only, then
    totals by kind of change, payer and rule, and a summary line. Every piece of user text is
    escaped (see `render.printable`), so each entry stays on its own line."""
    out = _header(result)
    if not result.changed:
        out.append(f"No changes: {_plural(result.compared, 'line')} judged alike under both versions.")
    for _, group in groupby(result.changes, key=lambda c: (c.session_id, c.patient_id, c.date, c.payer)):
        out += _session_lines(list(group))
    if result.unjudged:
        out.append("Lines judged under one version only, or not judged under either for other reasons:")
        for change in result.unjudged:
            out += _unjudged_lines(change)
        out.append("")
    if result.changed:
        out += _kind_lines(result.kinds())
        out += _payer_lines(result)
        out += _rule_lines(result.rules())
    out += _summary(result)
    return "\n".join(map(printable, out)) + "\n"


def _version_text(version: Version) -> str:
    return f"{version.label} ({_plural(version.files, 'rule file')})"


def _header(result: Diff) -> list[str]:
    out = [f"Old rules: {_version_text(result.old)}", f"New rules: {_version_text(result.new)}",
           f"Sessions:  {', '.join(result.sessions)}"]
    sample = result.sample
    if sample is not None:
        left_out = (f"; {_plural(sample.errors_left_out, 'line')} not judged on reading left out"
                    if sample.errors_left_out else "")
        out.append(f"Sample:    {sample.sessions} of {_plural(sample.total_sessions, 'session')} "
                   f"({sample.patients} of {_plural(sample.total_patients, 'patient')}), "
                   f"at least {sample.requested} asked, seed {sample.seed}{left_out}")
    return out + [""]


def _code_text(change: LineChange) -> str:
    code = change.code or "?"
    if change.modifiers:
        code += "-" + "-".join(change.modifiers)
    return code + (f" x{change.units}" if change.units is not None else "")


def _session_lines(changes: list[LineChange]) -> list[str]:
    first = changes[0]
    out = [printable(f"Session {first.session_id} | patient {first.patient_id} | {first.date} | payer {first.payer}")]
    columns = [(str(c.line), printable(_code_text(c)), f"{c.old.status} -> {c.new.status}",
                f"allowed {dollars(c.old.allowed or 0)} -> {dollars(c.new.allowed or 0)}", _signed(c.difference))
               for c in changes]
    widths = [max(len(row[i]) for row in columns) for i in range(5)]
    for change, (number, code, status, allowed, money) in zip(changes, columns):
        out.append(f"  line {number:<{widths[0]}}  {code:<{widths[1]}}  {status:<{widths[2]}}  "
                   f"{allowed:<{widths[3]}}  {money:>{widths[4]}}")
        out += [f"      {_cause_text(cause)}" for cause in change.causes]
    return out + [""]


def _rule_text(rule: Rule) -> str:
    name = f" [{rule.name}]" if rule.name else ""
    rarc = f" RARC {rule.rarc}" if rule.rarc else ""
    return f"{rule.severity} CARC {rule.carc}{rarc}: {rule.text}{name} ({rule.location})"


def _cause_text(cause: Cause) -> str:
    line = f"{_MARKS[cause.change]} {_rule_text(cause.rule)}"
    if cause.change == "amount":
        line += f": took {dollars(cause.old_amount)}, now {dollars(cause.new_amount)}"
    return line


def _decision_text(decision: Decision) -> str:
    if decision.allowed is None:
        return f"not judged: {decision.error}"
    return f"{decision.status}, allowed {dollars(decision.allowed)}"


def _unjudged_lines(change: LineChange) -> list[str]:
    subject = " ".join(part for part in (f"session {change.session_id}" if change.session_id else "",
                                         f"line {change.line}" if change.line is not None else "",
                                         _code_text(change) if change.code else "") if part)
    return [f"  {change.where}" + (f" ({subject})" if subject else ""),
            f"      old: {_decision_text(change.old)}",
            f"      new: {_decision_text(change.new)}"]


def _kind_lines(kinds: list[KindTotal]) -> list[str]:
    digits = max(len(str(k.lines)) for k in kinds)
    # Money is compared over lines judged under both versions only.
    rows = [(_kind(k.kind), _lines(k.lines, digits), "" if NOT_JUDGED in k.kind else _signed(k.difference),
             ", ".join(k.examples)) for k in kinds]
    widths = [max(len(printable(row[i])) for row in rows) for i in range(3)]
    out = ["Changes by kind:"]
    for kind, lines, money, examples in rows:
        out.append(f"  {kind:<{widths[0]}}  {lines:<{widths[1]}}  {money:>{widths[2]}}  e.g. {examples}")
    return out + [""]


def _payer_lines(result: Diff) -> list[str]:
    payers = result.payers()
    digits = max(len(str(p.lines)) for p in payers)
    rows = [(printable(p.payer), _lines(p.lines, digits), _signed(p.difference)) for p in payers]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    out = ["Changes by payer:"]
    out += [f"  {payer:<{widths[0]}}  {lines:<{widths[1]}}  {money:>{widths[2]}}" for payer, lines, money in rows]
    return out + [""]


def _rule_lines(rules: list[RuleTotal]) -> list[str]:
    if not rules:
        return []
    width = max(len(_signed(r.difference)) for r in rules)
    out = ["Changes by rule (what each rule's change did to the allowed amounts):"]
    for total in rules:
        rule = total.rule
        name = f" [{rule.name}]" if rule.name else ""
        rarc = f" RARC {rule.rarc}" if rule.rarc else ""
        places = [f"old {total.old_location}" if total.old_location else "",
                  f"new {total.new_location}" if total.new_location else ""]
        out.append(f"  {_signed(total.difference):>{width}}  {rule.text}{name}: {rule.severity} CARC {rule.carc}"
                   f"{rarc} ({', '.join(p for p in places if p)})")
        counts = [f"{_VERBS[change]} {_plural(count, 'line')}" for change, count in
                  (("added", total.added), ("removed", total.removed), ("amount", total.amount)) if count]
        out.append(f"  {'':>{width}}  {'; '.join(counts)}; e.g. {', '.join(total.examples)}")
    return out + [""]


def _summary(result: Diff) -> list[str]:
    others = f", {len(result.unjudged)} judged under one version only or not judged for other reasons" \
        if result.unjudged else ""
    still = f", {result.still_not_judged} not judged under either" if result.still_not_judged else ""
    return [f"{_plural(result.lines_read, 'line')} read: {result.compared} judged under both versions "
            f"({len(result.changes)} changed, {result.unchanged} unchanged){others}{still}.",
            f"Allowed under both versions: {dollars(result.allowed_old)} -> {dollars(result.allowed_new)} "
            f"({_signed(result.difference)})."]


# --- JSON ------------------------------------------------------------------------------------


def _rule_dict(rule: Rule) -> dict[str, Any]:
    return {"rule": rule.name, "kind": rule.kind, "text": rule.text, "severity": rule.severity, "carc": rule.carc,
            "rarc": rule.rarc, "location": rule.location}


def _money(cents: int | None) -> str | None:
    return None if cents is None else format_cents(cents)


def _decision_dict(decision: Decision) -> dict[str, Any]:
    return {"status": decision.status, "allowed": _money(decision.allowed),
            "reasons": [_rule_dict(r) for r in decision.reasons], "error": decision.error}


def _change_dict(change: LineChange) -> dict[str, Any]:
    return {
        "file": change.file, "row": change.row, "path": change.path or None, "session_id": change.session_id,
        "patient_id": change.patient_id, "date": change.date, "payer": change.payer, "line": change.line,
        "code": change.code, "modifiers": list(change.modifiers), "units": change.units,
        "charge": _money(change.charge), "kind": change.kind, "old": _decision_dict(change.old),
        "new": _decision_dict(change.new), "difference": format_cents(change.difference),
        "causes": [{"change": c.change, "rule": _rule_dict(c.rule), "old_amount": format_cents(c.old_amount),
                    "new_amount": format_cents(c.new_amount), "difference": format_cents(c.difference)}
                   for c in change.causes],
    }


def to_dict(result: Diff) -> dict[str, Any]:
    """The JSON shape of a diff (see the README's `payrules diff` section); keys never move."""
    sample = result.sample
    return {
        "old": {"rules": result.old.label, "files": result.old.files, "payers": list(result.old.payers)},
        "new": {"rules": result.new.label, "files": result.new.files, "payers": list(result.new.payers)},
        "sessions": list(result.sessions),
        "sample": None if sample is None else {
            "requested": sample.requested, "seed": sample.seed, "sessions": sample.sessions,
            "patients": sample.patients, "total_sessions": sample.total_sessions,
            "total_patients": sample.total_patients, "errors_left_out": sample.errors_left_out},
        "summary": {"changed": result.changed, "lines_read": result.lines_read, "compared": result.compared,
                    "changed_lines": len(result.changes), "unchanged": result.unchanged,
                    "judged_once_or_other_error": len(result.unjudged), "still_not_judged": result.still_not_judged,
                    "allowed_old": format_cents(result.allowed_old), "allowed_new": format_cents(result.allowed_new),
                    "difference": format_cents(result.difference)},
        "kinds": [{"kind": k.kind, "old_status": k.old_status, "new_status": k.new_status, "lines": k.lines,
                   "difference": format_cents(k.difference), "examples": list(k.examples)} for k in result.kinds()],
        "payers": [{"payer": p.payer, "lines": p.lines, "difference": format_cents(p.difference)}
                   for p in result.payers()],
        "rules": [{**_rule_dict(r.rule), "old_location": r.old_location, "new_location": r.new_location,
                   "added": r.added, "removed": r.removed, "amount": r.amount,
                   "difference": format_cents(r.difference), "examples": list(r.examples)} for r in result.rules()],
        "changes": [_change_dict(c) for c in result.changes],
        "unjudged": [_change_dict(c) for c in result.unjudged],
    }


def json_text(result: Diff) -> str:
    """`to_dict` as JSON; `json.dumps` escapes every control character and non-ASCII one."""
    return json.dumps(to_dict(result), indent=2) + "\n"


# --- CSV -------------------------------------------------------------------------------------

CSV_COLUMNS = ("file", "row", "session_id", "patient_id", "date", "payer", "line", "code", "modifiers", "units",
               "charge", "change", "old_status", "new_status", "old_allowed", "new_allowed", "difference", "rules",
               "old_reasons", "new_reasons", "old_error", "new_error")


def _reasons_cell(decision: Decision) -> str:
    return "; ".join(f"CARC {r.carc}{' RARC ' + r.rarc if r.rarc else ''}: {r.text} ({r.location})"
                     for r in decision.reasons)


def _causes_cell(change: LineChange) -> str:
    return "; ".join(f"{c.change}: {c.rule.text}{f' [{c.rule.name}]' if c.rule.name else ''} ({c.rule.location})"
                     for c in change.causes)


def csv_text(result: Diff) -> str:
    """One row per changed line (judged under both, then the others); every cell of user text
    goes through `render._text_cells`, so no cell can become a spreadsheet formula."""
    rows = [",".join(CSV_COLUMNS)]
    for change in (*result.changes, *result.unjudged):
        old, new = change.old, change.new
        user = _text_cells(change.file, str(change.row), change.session_id or "", change.patient_id or "",
                           change.date or "", change.payer or "", "" if change.line is None else str(change.line),
                           change.code or "", " ".join(change.modifiers))
        units = "" if change.units is None else str(change.units)
        computed = (f"{units},{_money(change.charge) or ''},{change.kind},{old.status},{new.status},"
                    f"{_money(old.allowed) or ''},{_money(new.allowed) or ''},{format_cents(change.difference)}")
        reasons = _text_cells(_causes_cell(change), _reasons_cell(old), _reasons_cell(new), old.error or "",
                              new.error or "")
        rows.append(f"{user},{computed},{reasons}")
    return "\r\n".join(rows) + "\r\n"
