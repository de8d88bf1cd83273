"""Generated code for declared fields and `when` / `unless` conditions (see `conditions.py`).

A rule with a condition gets a group fact `w{i}`: for each line of the session, whether the
rule looks at it. Its per-line code runs only for those lines; its amount pass sees the other
lines as denied (so it skips them, as it skips denied lines) and leaves them as they were.
A condition over a missing value never holds: the line is then rejected before judging or
denied by the field's declaration (`if missing deny`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import attrs

from payrules.check import Checked
from payrules.conditions import BUILT_INS, field_words


def _guard(name: str) -> str:
    """The test that a line has a value for field `name`."""
    if name == "minutes":
        return "line.minutes is not None"
    if name == "place_of_service":
        return "line.place_of_service != ''"
    if name in BUILT_INS:
        return ""
    return f"line.facts.get({name!r}) is not None"


def conditioned(emission: Any, condition: tuple[str, str, tuple[str, ...]] | None, index: int) -> Any:
    """A rule's emission, run only for the lines its condition keeps."""
    if condition is None:
        return emission
    expression, words, names = condition
    guards = [g for g in map(_guard, names) if g]
    test = " and ".join([*guards, f"({expression})"])
    params = {**emission.params, "condition": words, "condition_fields": ",".join(names)}
    group = [*emission.group, f"w{index} = [{test} for line in lines]"]
    per_line = [f"if w{index}[k]:", *("    " + text for text in emission.per_line)] if emission.per_line else []
    session = []
    if emission.session:
        session = [f"n{index} = denied",
                   f"denied = [x or not y for x, y in zip(n{index}, w{index})]",
                   *emission.session,
                   f"denied = [x if y else z for x, z, y in zip(denied, n{index}, w{index})]"]
    return attrs.evolve(emission, params=params, group=group, per_line=per_line, session=session)


class ModuleFacts(NamedTuple):
    history: bool
    """True when a condition reads the patient's first visit (which needs earlier sessions)."""
    rule_infos: list[str]
    """`rt.RuleInfo(...)` lines for the reasons of fields declared `if missing deny`."""
    fields: list[str]
    """The `FIELDS = (...)` lines."""
    setup: list[str]
    """Code at the start of `judge` (the first visit's date)."""
    per_line: list[str]
    """Code at the start of each line's checks (the denials for missing values)."""


def module_facts(checked: Checked, emissions: list[Any]) -> ModuleFacts:
    module, bindings = checked.module, checked.bindings
    fields = bindings.fields
    used: dict[str, None] = {}
    for _, _, names in bindings.conditions.values():
        used.update(dict.fromkeys(names))
    declared = fields.declared if fields is not None else {}
    specs: list[str] = []
    infos: list[str] = []
    per_line: list[str] = []
    for name, field in declared.items():
        deny = field.missing == "deny" and name in used
        rule = len(module.rules) + len(infos) if deny else -1
        specs.append(f"rt.Field({name!r}, {field.type.value.lower()!r}, {field.scope!r}, {field.missing!r}, "
                     f"{name in used!r}, {rule})")
        if deny:
            carc = field.carc.value.upper() if field.carc is not None else "16"
            rarc = field.rarc.value.upper() if field.rarc is not None else None
            params = (("field", name), ("words", field_words(name)))
            infos.append(f"rt.RuleInfo(position={rule}, name=None, kind='missing_field', file={field.span.file!r}, "
                         f"line={field.span.line}, column={field.span.column}, text={field.span.text!r}, "
                         f"severity='deny', carc={carc!r}, rarc={rarc!r}, params={params!r}, source=None, "
                         f"outcome='deny'),")
            per_line += [f"if line.facts.get({name!r}) is None:",
                         f"    r.append(({rule}, None, 0 if d else line.charge))",
                         "    d = True"]
    for name in used:
        built_in = BUILT_INS.get(name)
        if built_in is not None and built_in.missing:
            specs.append(f"rt.Field({name!r}, {built_in.type!r}, 'line', 'reject', True, -1, False)")
    first_visit = "first_visit_date" in used
    setup: list[str] = []
    if first_visit:
        # Kept on each line's facts too, so that explanations can give its value.
        specs.append("rt.Field('first_visit_date', 'date', 'session', 'reject', False, -1, False)")
        setup = ["fv = rt.first_date(past, session.date)", "for line in lines:",
                 "    line.facts['first_visit_date'] = fv"]
    lines = ["FIELDS = ("] + [f"    {spec}," for spec in specs] + [")"] if specs else []
    return ModuleFacts(first_visit, infos, lines, setup, per_line)
