"""Rule file text in an editor → what the language server answers: diagnostics, hovers,
completions, definitions, quick fixes. Protocol-free (no pygls), offsets in characters.

Every finding comes from `lint` and `compiler`, every name from `check`'s bindings and every
layout from `fmt`: this module only locates things and words them for an editor.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Collection, Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from payrules import api, ast, fmt, lint
from payrules.check import Checked
from payrules.compiler import diagnose
from payrules.conditions import BUILT_INS
from payrules.diagnostics import Diagnostic, InputError, Severity
from payrules.domain import CODE_RE, CREDENTIALS, code_family, code_number, describe_codes
from payrules.modules import STDLIB_PREFIX, include_name, stdlib_names, stdlib_root
from payrules.named import LET_KINDS, LET_WHAT
from payrules.parser import grammar_text, parse
from payrules.reasons import default_reasons, rule_reasons
from payrules.source import Source, Span

SUGGESTION_RE = re.compile(r"did you mean `([^`]+)`\?")


# --- vocabulary ----------------------------------------------------------------------------------


@functools.cache
def modifiers() -> dict[str, str]:
    """Modifier → meaning, from the package data file (comment lines start with `#`)."""
    text = resources.files("payrules").joinpath("data/modifiers.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(io.StringIO("".join(line for line in text.splitlines(True) if not line.startswith("#"))))
    return {row["modifier"]: row["meaning"] for row in rows}


@functools.cache
def keywords() -> tuple[str, ...]:
    """Every keyword of the language: the quoted words of `grammar/rules.lark`, sorted."""
    return tuple(sorted({w.lower() for w in re.findall(r'"([A-Za-z]+)"i', grammar_text())} | {"override"}))


@attrs.frozen
class Snippet:
    label: str
    """The statement's shape, as the README heads it."""
    body: str
    """LSP snippet syntax: `${1:placeholder}` fields."""


SNIPPETS: tuple[Snippet, ...] = (
    Snippet("payer ID \"NAME\"", 'payer ${1:ACME} "${2:Acme Health}"'),
    Snippet("set NAME = CODES", "set ${1:massage} = ${2:97124, 97140}"),
    Snippet("include \"FILE\"", 'include "${1:stdlib/timed-codes}"'),
    Snippet("only CODES", "only ${1:97140}"),
    Snippet("not covered CODES", "not covered ${1:97010}"),
    Snippet("CODES only with CODES same day", "${1:97124} only with ${2:98940-98942} same ${3|day,session|}"),
    Snippet("requires modifier MODIFIERS on CODES", "requires modifier ${1:59} on ${2:97140}"),
    Snippet("not payable by CREDENTIALS for CODES", "not payable by ${1:LMT} for ${2:97140}"),
    Snippet("max AMOUNT per PERIOD for CODES", "max \\$${1:45} per ${2|session,day,month,calendar year|} for ${3:97124}"),
    Snippet("no CODES same day as CODES unless modifier MODIFIERS",
            "no ${1:97124} same day as ${2:98940-98942} unless modifier ${3:59}"),
    Snippet("max N units of CODES per PERIOD", "max ${1:4} units of ${2:97140} per ${3|day,session,line|}"),
    Snippet("max N visits per PERIOD", "max ${1:20} visits per ${2|calendar year,month,week|}"),
    Snippet("max N minutes per session for CODES", "max ${1:60} minutes per session for ${2:97124}"),
    Snippet("units by cms rule for CODES", "units by ${1|cms,ama|} rule for ${2:97124, 97140}"),
    Snippet("requires CREDENTIALS NPI for CODES", "requires ${1:DC} NPI for ${2:98940-98942}"),
    Snippet("requires prescription from CREDENTIALS for CODES", "requires prescription from ${1:MD} for ${2:97124}"),
    Snippet("requires diagnosis PATTERNS for CODES", "requires diagnosis ${1:M54.5*} for ${2:97140}"),
    Snippet("not covered with diagnosis PATTERNS", "not covered with diagnosis ${1:Z00.00}"),
    Snippet("requires primary diagnosis DIAGNOSES for CODES",
            "requires primary diagnosis ${1:M99.00-M99.05} for ${2:98940-98942}"),
    Snippet("one of CODES per session", "one of ${1:97124, 97140} per ${2|session,day|}"),
    Snippet("CODES bundled into CODES", "${1:97010} bundled into ${2:97140}"),
    Snippet("no duplicate same day", "no duplicate same day"),
    Snippet("apply ncci ptp \"FILE\"", 'apply ncci ptp "${1:examples/ncci-tables/tables/ptp-sample.txt}"'),
    Snippet("apply ncci mue \"FILE\"", 'apply ncci mue "${1:examples/ncci-tables/tables/mue-sample.csv}"'),
)
"""A template per statement kind (and for the file's own lines)."""

SNIPPET_FIELD_RE = re.compile(r"\$\{\d+(?::([^}]*)|\|([^,|]*)[^}]*\|)\}|\\(\$)")


def snippet_text(body: str) -> str:
    """The text a snippet inserts when every field keeps its placeholder (or first choice)."""
    return SNIPPET_FIELD_RE.sub(lambda m: m.group(1) or m.group(2) or m.group(3) or "", body)


# --- the workspace: documents, names shown, lint -------------------------------------------------


@attrs.frozen
class Workspace:
    """Where rule files live: names are shown relative to `root`, and open documents win over
    the files on disk."""

    root: Path
    open_texts: Mapping[Path, str] = attrs.field(factory=dict)

    def name(self, path: Path) -> str:
        """The name a file is shown and resolved under, as `payrules lint` run from `root` shows it.
        The server runs in `root`, so includes resolve against the same names."""
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(path.resolve())

    def path(self, name: str) -> Path | None:
        """The file behind a shown name; None for a file shipped with payrules that is no file."""
        if name.startswith(STDLIB_PREFIX):
            entry = stdlib_root().joinpath(name[len(STDLIB_PREFIX):])
            return entry if isinstance(entry, Path) else None
        path = Path(name)
        return path if path.is_absolute() else self.root / path

    def text(self, path: Path) -> str | None:
        found = self.open_texts.get(path.resolve())
        if found is not None:
            return found
        try:
            return api.read_source(path).text
        except InputError:
            return None


def lint_document(workspace: Workspace, path: Path, text: str) -> list[Diagnostic]:
    """What `payrules lint` reports for the document, plus E107 against the other rule files of
    its folder (as `payrules check --rules FOLDER` reports it), in the editor's text."""
    source = Source(workspace.name(path), text.replace("\r\n", "\n"))
    config = lint.Config.find(path.parent)
    found = lint.lint_source(source, config)
    if not any(d.severity is Severity.ERROR for d in found):
        found += [d for d in _overlaps(workspace, path, source) if d.span.file == source.name]
    return sorted(found, key=lambda d: d.sort_key)


def _overlaps(workspace: Workspace, path: Path, source: Source) -> list[Diagnostic]:
    """E107 for the rule files of the document's folder, read as the editor has them: the
    check `payrules lint` and `check` run (`lint.payer_overlaps`), on the editor's text."""
    dated: list[lint.RuleFileDates] = []
    folder = path.parent.resolve()
    on_disk = {p.resolve() for p in lint.rule_files([folder], lint.Config.find(folder))} if folder.is_dir() else set()
    unsaved = {p for p in workspace.open_texts if p.suffix == ".payer" and p.is_relative_to(folder)}
    for other in sorted(on_disk | unsaved | {path.resolve()}):
        same = other == path.resolve()
        text = source.text if same else workspace.text(other)
        if text is None:
            continue
        here = source if same else Source(workspace.name(other), text.replace("\r\n", "\n"))
        checked = _checked(here.name, here.text)
        if checked is None:
            continue  # a file with errors is left out, as it is when the folder is loaded
        start, end = checked.effective
        dated.append(lint.RuleFileDates(checked.payer_id, start, end, here))
    return lint.payer_overlaps(dated)


@functools.lru_cache(maxsize=256)
def _checked(name: str, text: str) -> Checked | None:
    checked, diagnostics = diagnose(Source(name, text))
    if any(d.severity is Severity.ERROR for d in diagnostics) or checked.module.header is None:
        return None
    return checked


def located(diagnostics: list[Diagnostic], written: ast.Module, name: str) -> list[tuple[Diagnostic, Span]]:
    """Each diagnostic with where the editor shows it in document `name`: at its own span, or,
    for one found in an included file, at the `include` line that brought that file in."""
    includes = [(include_name(i.path.value, name), i) for i in written.includes]
    shown: list[tuple[Diagnostic, Span]] = []
    for d in diagnostics:
        if d.span.file == name:
            shown.append((d, d.span))
            continue
        direct = [i for included, i in includes if included == d.span.file]
        # an error deeper in a chain of includes: the document's includes are the way in
        for include in direct or [i for _, i in includes][:1]:
            shown.append((d, include.span))
    return shown


def suggestion(diagnostic: Diagnostic) -> str | None:
    """The replacement a "did you mean" help offers, if any."""
    match = SUGGESTION_RE.search(diagnostic.help or "")
    return match.group(1) if match else None


def format_document(text: str, name: str) -> str | None:
    """The canonical layout, or None when the file has errors (formatting never guesses)."""
    _, found = diagnose(Source(name, text.replace("\r\n", "\n")))
    if any(d.severity is Severity.ERROR for d in found):
        return None
    return fmt.format_text(text)


# --- where the cursor is -------------------------------------------------------------------------


@attrs.frozen
class Found:
    """The innermost node under the cursor, with the statement and field it sits in."""

    node: Any
    field: str | None
    """The field of the parent node that holds it: `credentials`, `modifiers`, `unless`..."""
    parent: Any
    rule: ast.Rule | None


@attrs.frozen
class Analysis:
    """One document, parsed, linked and checked (even with errors: what could be read is here)."""

    source: Source
    checked: Checked
    """The document with its includes linked, and the facts resolved."""
    written: ast.Module
    """The document as written, before linking (which resolves `include` and `drop` lines away)."""

    @classmethod
    def of(cls, name: str, text: str) -> Analysis:
        source = Source(name, text.replace("\r\n", "\n"))
        checked, _ = diagnose(source)
        return cls(source, checked, parse(source)[0])

    def own(self) -> Iterator[tuple[Any, ast.Rule | None]]:
        """The top-level nodes written in this document (not in its includes)."""
        module = self.written
        for node in (module.header, *module.sets, *module.lets, *module.includes, *module.drops, *module.rules):
            if node is not None and node.span.file == self.source.name:
                yield node, node if isinstance(node, ast.Rule) else None

    def at(self, offset: int) -> Found | None:
        best: Found | None = None
        for top, rule in self.own():
            for node, field, parent in _walk(top, None, None):
                span: Span = node.span
                if span.start <= offset <= span.end and (best is None or span.end - span.start <
                                                         best.node.span.end - best.node.span.start):
                    best = Found(node, field, parent, rule)
        return best

    def set_definition(self, name: str) -> ast.SetDef | None:
        return next((s for s in self.checked.module.sets if s.name.value == name), None)

    def let_definition(self, name: str) -> ast.LetDef | None:
        return self.checked.bindings.lets.get(name)


def _name_of(node: Any) -> Any:
    """An amount written as a bare `let` name (`max cap per session`) is that name."""
    if isinstance(node, ast.Amount) and isinstance(node.money, ast.NameRef) and node.money.span == node.span:
        return node.money
    return node


def _walk(node: Any, field: str | None, parent: Any) -> Iterator[tuple[Any, str | None, Any]]:
    yield node, field, parent
    for key, value in attrs.asdict(node, recurse=False).items():
        children = value if isinstance(value, tuple) else (value,)
        for child in children:
            if attrs.has(type(child)) and isinstance(getattr(child, "span", None), Span):
                yield from _walk(child, key, node)


# --- hover ---------------------------------------------------------------------------------------

_CREDENTIAL_FIELDS = {"credentials", "prescribers"}
_MODIFIER_FIELDS = {"modifiers", "unless"}


def hover(analysis: Analysis, offset: int) -> tuple[str, Span] | None:
    """Markdown for what is under the cursor, and the span it describes."""
    found = analysis.at(offset)
    if found is None:
        return None
    node, bindings = _name_of(found.node), analysis.checked.bindings
    if isinstance(node, ast.SetRef) or (isinstance(node, ast.Word) and isinstance(found.parent, ast.SetDef)):
        name = node.name if isinstance(node, ast.SetRef) else node.value
        if name in bindings.diagnoses_by_name:
            return f"**diagnosis set `{name}`**: {bindings.diagnoses_by_name[name].describe()}", node.span
        codes = bindings.sets_by_name.get(name)
        if codes is None:
            return f"code set `{name}` is not defined", node.span
        return f"**code set `{name}`**: {_codes(codes)}", node.span
    if isinstance(node, ast.NameRef) or (isinstance(node, ast.Word) and isinstance(found.parent, ast.LetDef)):
        name = node.name if isinstance(node, ast.NameRef) else node.value
        let = analysis.let_definition(name)
        if let is None:
            return f"`{name}` is not given a value (`let {name} = ...`)", node.span
        return f"**`{name}`** = {let.value.span.text} ({LET_WHAT[LET_KINDS[type(let.value)]]})", node.span
    if isinstance(node, (ast.Code, ast.CodeRange)) and isinstance(found.parent, (ast.CodeList, ast.CodeRange)):
        target = node if isinstance(node, ast.CodeRange) else found.parent
        if isinstance(target, ast.CodeRange):
            low, high = target.low.value.upper(), target.high.value.upper()
            if CODE_RE.match(low) and CODE_RE.match(high) and code_family(low) == code_family(high):
                count = code_number(high) - code_number(low) + 1
                if count > 0:
                    return f"**range `{low}-{high}`**: {count:,} codes", target.span
        return f"procedure code `{node.span.text.upper()}`", node.span
    if isinstance(node, ast.DiagnosisList) and node in bindings.diagnosis_sets:
        return f"**diagnoses**: {bindings.diagnosis_sets[node].describe()}", node.span
    if isinstance(node, ast.CodeList):
        codes = bindings.code_sets.get(node)
        return (f"**codes**: {_codes(codes)}", node.span) if codes else None
    if isinstance(node, ast.Word) and found.field in _CREDENTIAL_FIELDS:
        meaning = CREDENTIALS.get(node.value.upper())
        return (f"**credential `{node.value.upper()}`**: {meaning}" if meaning
                else f"`{node.value}` is not a credential payrules knows"), node.span
    if isinstance(node, ast.Word) and found.field in _MODIFIER_FIELDS:
        meaning = modifiers().get(node.value.upper())
        return (f"**modifier `{node.value.upper()}`**: {meaning}" if meaning
                else f"modifier `{node.value.upper()}`: not one payrules describes"), node.span
    if isinstance(node, ast.Include) or (isinstance(node, ast.Word) and isinstance(found.parent, ast.Include)):
        include = node if isinstance(node, ast.Include) else found.parent
        return f"includes the sets and rules of `{_included(analysis, include)}`", include.span
    if found.rule is not None:
        return _statement(found.rule, bindings.code_sets), found.rule.span
    return None


def _codes(codes: Collection[str]) -> str:
    return describe_codes(frozenset(codes)) if codes else "no codes"


def _statement(rule: ast.Rule, code_sets: Mapping[ast.CodeList, Collection[str]]) -> str:
    statement = rule.statement
    doc = " ".join((type(statement).__doc__ or "").split())
    what, _, example = doc.partition(":")
    effect = {"deny": "denies the line", "reduce": "lowers the allowed amount", "warn": "warns"}[statement.severity]
    lines = [f"**{statement.kind.replace('_', ' ')}**: {what.strip()}.", "",
             f"When it applies it {effect if rule.warn is None else 'warns, and leaves the amount as it is'}."]
    carc, rarc = rule_reasons(rule)
    default_carc, default_rarc = default_reasons(statement)
    default = f"Default CARC {default_carc}" + (f", RARC {default_rarc}" if default_rarc else "")
    given = f"CARC {carc}" + (f", RARC {rarc}" if rarc else "")
    lines.append(f"{default}." if given == default.removeprefix("Default ") else f"{default}; this rule: {given}.")
    for key, value in attrs.asdict(statement, recurse=False).items():
        if isinstance(value, ast.CodeList) and code_sets.get(value):
            lines.append(f"- `{key}`: {_codes(code_sets[value])}")
    if example.strip():
        lines += ["", f"Example: {example.strip()}"]
    return "\n".join(lines)


def _included(analysis: Analysis, include: ast.Include) -> str:
    return include_name(include.path.value, analysis.source.name)


# --- definition ----------------------------------------------------------------------------------


def definition(analysis: Analysis, offset: int) -> Span | str | None:
    """Where the name under the cursor is defined: a span, or the name of an included file."""
    found = analysis.at(offset)
    if found is None:
        return None
    node = _name_of(found.node)
    if isinstance(node, ast.SetRef):
        set_def = analysis.set_definition(node.name)
        return set_def.name.span if set_def else None
    if isinstance(node, ast.NameRef):
        let = analysis.let_definition(node.name)
        return let.name.span if let else None
    if isinstance(node, ast.Include) or (isinstance(node, ast.Word) and isinstance(found.parent, ast.Include)):
        include = node if isinstance(node, ast.Include) else found.parent
        return _included(analysis, include)
    if isinstance(node, ast.Word) and (isinstance(found.parent, ast.Drop) or found.field in ("name", "override")):
        # a dropped or overridden rule: the included rule of that name
        for rule in analysis.checked.module.rules:
            if rule.name is not None and rule.name.value == node.value and rule.span.file != analysis.source.name:
                return rule.name.span
    return None


# --- completion ----------------------------------------------------------------------------------


@attrs.frozen
class Item:
    label: str
    kind: str
    """keyword, snippet, set, value (a `let` name), credential, modifier, include or field."""
    detail: str
    insert: str | None = None


INCLUDE_RE = re.compile(r'^\s*include\s+"([^"]*)$', re.IGNORECASE)
_LIST_SO_FAR = r"\s+(?:\w+\s*(?:,|\bor\b)\s*)*\w*$"
MODIFIER_LIST_RE = re.compile(r"\bmodifier" + _LIST_SO_FAR, re.IGNORECASE)
"""The cursor is in a list of modifiers (`requires modifier 59 or X`, `unless modifier `)."""
CREDENTIAL_LIST_RE = re.compile(
    r"(?:\bpayable\s+by|\bprescription\s+from|^\s*(?:[\w-]+\s*:\s*)?requires(?!\s+(?:modifier|prescription|diagnosis|primary)\b))"
    + _LIST_SO_FAR, re.IGNORECASE)
"""The cursor is in a list of credentials (`not payable by L`, `requires DC or `, `from MD, `)."""


CONDITION_RE = re.compile(r"\b(?:when|unless(?!\s+modifier\b)|and|or)\s+[(\s]*\w*$", re.IGNORECASE)
"""The cursor is where a condition names a field (`when pl`, `unless (ref`, `... and `)."""


def completions(analysis: Analysis, line_before: str) -> list[Item]:
    """What may be typed at the cursor; `line_before` is the line's text up to it."""
    if CONDITION_RE.search(line_before) and not MODIFIER_LIST_RE.search(line_before) \
            and not CREDENTIAL_LIST_RE.search(line_before):
        fields = analysis.checked.bindings.fields
        declared = fields.declared if fields is not None else {}
        items = [Item(name, "field", f"declared field: {field.type.value.lower()}, per {field.scope}")
                 for name, field in declared.items()]
        return items + [Item(name, "field", f"built-in field: {built.words} ({built.type})")
                        for name, built in BUILT_INS.items()]
    if INCLUDE_RE.match(line_before):
        return [Item(name, "include", "rule file shipped with payrules") for name in stdlib_names()]
    if MODIFIER_LIST_RE.search(line_before):
        return [Item(m, "modifier", meaning) for m, meaning in modifiers().items()]
    if CREDENTIAL_LIST_RE.search(line_before):
        return [Item(c, "credential", meaning) for c, meaning in CREDENTIALS.items()]
    items = [Item(s.label, "snippet", "statement template", s.body) for s in SNIPPETS]
    items += [Item(word, "keyword", "keyword") for word in keywords()]
    items += [Item(name, "set", _codes(codes)) for name, codes in sorted(analysis.checked.bindings.sets_by_name.items())]
    items += [Item(name, "set", diagnoses.describe())
              for name, diagnoses in sorted(analysis.checked.bindings.diagnoses_by_name.items())]
    items += [Item(name, "value", let.value.span.text) for name, let in sorted(analysis.checked.bindings.lets.items())]
    items += [Item(c, "credential", meaning) for c, meaning in CREDENTIALS.items()]
    items += [Item(m, "modifier", meaning) for m, meaning in modifiers().items()]
    items += [Item(name, "include", "rule file shipped with payrules", f'"{name}"') for name in stdlib_names()]
    return items


__all__ = ["Analysis", "Item", "Snippet", "Workspace", "completions", "definition", "format_document",
           "hover", "keywords", "lint_document", "located", "modifiers", "snippet_text", "suggestion"]
