"""Parsed `ast.Module` with `include`, `drop` and `override` → one module with its includes
resolved, plus diagnostics.

`include "stdlib/NAME"` names a file shipped in payrules' `stdlib_rules/`; any other path is
relative to the including file. An included file gives its sets and rules (its `payer` line is
ignored); the including file can then `drop` an included rule or `override` it by name. Every
rule keeps the span of the file it was written in, so reasons cite that file and line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

import attrs

from payrules import ast
from payrules.diagnostics import Diagnostic, InputError, Severity, closest
from payrules.parser import parse
from payrules.source import Source, Span

STDLIB_PREFIX = "stdlib/"
SUFFIX = ".payer"

_INCLUDE_RE = re.compile(r'^[ \t]*include[ \t]+"((?:[^"\\\n]|\\.)*)"', re.IGNORECASE | re.MULTILINE)


def stdlib_root() -> Traversable:
    """The rule files shipped with payrules: inside the package, or the checkout's folder."""
    packaged = resources.files("payrules").joinpath("stdlib_rules")
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "stdlib_rules"


def stdlib_names() -> list[str]:
    """`stdlib/NAME` for every shipped rule file, sorted."""
    return sorted(STDLIB_PREFIX + entry.name[: -len(SUFFIX)] for entry in stdlib_root().iterdir()
                  if entry.name.endswith(SUFFIX))


def include_name(path: str, including: str) -> str:
    """The name an included file is shown under: `stdlib/NAME.payer`, or the path joined to the
    including file's folder."""
    if not path.endswith(SUFFIX):
        path += SUFFIX
    if path.startswith(STDLIB_PREFIX):
        return path
    return os.path.normpath(os.path.join(os.path.dirname(including), path))


def read_include(name: str) -> Source:
    """The text of an included file by its `include_name`; InputError when it cannot be read."""
    if name.startswith(STDLIB_PREFIX):
        entry = stdlib_root().joinpath(name[len(STDLIB_PREFIX):])
        if not entry.is_file():
            raise InputError(f"payrules has no rule file `{name[: -len(SUFFIX)]}`")
        return Source(name, entry.read_text(encoding="utf-8").replace("\r\n", "\n"))
    try:
        text = Path(name).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"no such rule file `{name}`") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read `{name}` ({error})") from None
    return Source(name, text.replace("\r\n", "\n"))


def included_sources(source: Source) -> Iterator[Source]:
    """Every file `source` includes, directly or not, each once; unreadable ones are skipped
    (compiling reports them). Used to key the compile cache."""
    seen = {source.name}
    pending = [source]
    while pending:
        current = pending.pop()
        for match in _INCLUDE_RE.finditer(current.text):
            name = include_name(match.group(1), current.name)
            if name in seen:
                continue
            seen.add(name)
            try:
                found = read_include(name)
            except InputError:
                continue
            yield found
            pending.append(found)


def link(module: ast.Module, parents: tuple[str, ...] = ()) -> tuple[ast.Module, list[Diagnostic]]:
    """`module` with every include resolved, drops and overrides applied; diagnostics for
    includes that cannot be found or that include themselves, and for unknown rule names."""
    linker = _Linker()
    return linker.link(module, parents + (module.span.file,)), linker.diagnostics


class _Linker:
    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []
        self.linked: set[str] = set()
        """Files already included: a file reached twice (say, a shared set file) is used once."""

    def error(self, code: str, message: str, span: Span, help: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(code=code, severity=Severity.ERROR, message=message, span=span,
                                           help=help))

    def link(self, module: ast.Module, chain: tuple[str, ...]) -> ast.Module:
        sets: list[ast.SetDef] = []
        rules: list[ast.Rule] = []
        for include in module.includes:
            found = self.include(include, chain)
            if found is not None:
                sets += found.sets
                rules += found.rules
        included = {rule.name.value: rule for rule in rules if rule.name is not None}
        dropped: set[str] = set()
        for drop in module.drops:
            if self.known(drop.name, included, "drop"):
                dropped.add(drop.name.value)
        replaced: dict[str, ast.Rule] = {}
        own: list[ast.Rule] = []
        for rule in module.rules:
            if rule.override is None:
                own.append(rule)
            elif rule.name is not None and self.known(rule.name, included, "override"):
                replaced[rule.name.value] = rule
        kept = [replaced.get(r.name.value, r) if r.name is not None else r
                for r in rules if r.name is None or r.name.value not in dropped]
        return attrs.evolve(module, sets=sets + list(module.sets), rules=kept + own, includes=(), drops=())

    def include(self, include: ast.Include, chain: tuple[str, ...]) -> ast.Module | None:
        path = include.path.value
        name = include_name(path, include.span.file)
        if name in chain:
            cycle = " → ".join(chain[chain.index(name):] + (name,))
            self.error("E109", f"`{path}` includes itself ({cycle})", include.path.span,
                       "remove one of the includes")
            return None
        if name in self.linked:
            return None
        self.linked.add(name)
        try:
            source = read_include(name)
        except InputError as error:
            help = None
            if path.startswith(STDLIB_PREFIX):
                suggestion = closest(path.removesuffix(SUFFIX), stdlib_names())
                help = f"did you mean `{suggestion}`?" if suggestion else \
                    "payrules ships: " + ", ".join(stdlib_names())
            else:
                help = "paths are relative to the file that includes them"
            self.error("E108", f"cannot include `{path}`: {error}", include.path.span, help)
            return None
        module, diagnostics = parse(source)
        # An included file needs no `payer` line of its own.
        self.diagnostics += [d for d in diagnostics if d.code != "E003"]
        return self.link(module, chain + (name,))

    def known(self, name: ast.Word, included: dict[str, ast.Rule], verb: str) -> bool:
        if name.value in included:
            return True
        suggestion = closest(name.value, included)
        if suggestion:
            help = f"did you mean `{suggestion}`?"
        elif included:
            help = "included rules: " + ", ".join(f"`{n}`" for n in included)
        else:
            help = "only rules from an `include` can be dropped or overridden, and they need a name"
        self.error("E110", f"cannot {verb} `{name.value}`: no included rule has that name", name.span, help)
        return False
