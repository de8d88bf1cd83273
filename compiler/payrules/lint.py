"""Rule files → every diagnostic of every file: the compiler's errors and warnings, checks
across rules (unreachable rules, `only` lists that do not meet, repeated rules, unused sets),
inline suppressions and the `[tool.payrules.lint]` configuration.

Suppress a warning on one line with a trailing comment naming its code:
`max 0 units per day  # payrules: ignore W104`. Errors cannot be suppressed.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path

import attrs

from payrules import ast
from payrules.check import NO_CODES, Checked, Codes
from payrules.compiler import diagnose, read_source
from payrules.diagnostics import Diagnostic, InputError, Severity
from payrules.source import Source, Span

SUPPRESS_RE = re.compile(r"#.*?\bpayrules:\s*ignore\s+([A-Z][0-9]{3}(?:\s*,\s*[A-Z][0-9]{3})*)", re.IGNORECASE)
SEVERITIES = {"error": Severity.ERROR, "warning": Severity.WARNING}


@attrs.frozen
class Config:
    """`[tool.payrules.lint]` in pyproject.toml: `exclude` globs, and `severity` by code
    (`"error"`, `"warning"` or `"off"`; only warnings can be made milder or turned off)."""

    exclude: tuple[str, ...] = ()
    severity: dict[str, str | None] = attrs.field(factory=dict)
    path: Path | None = None

    @classmethod
    def find(cls, start: Path) -> Config:
        """The configuration of the nearest pyproject.toml at or above `start`, if any."""
        for folder in [start.resolve(), *start.resolve().parents]:
            candidate = folder / "pyproject.toml"
            if candidate.is_file():
                return cls.load(candidate)
        return cls()

    @classmethod
    def load(cls, path: Path) -> Config:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise InputError(f"{path}: cannot read the configuration ({error})") from None
        section = data.get("tool", {}).get("payrules", {}).get("lint", {})
        if not isinstance(section, dict):
            raise InputError(f"{path}: [tool.payrules.lint] must be a table")
        exclude = section.get("exclude", [])
        if not (isinstance(exclude, list) and all(isinstance(e, str) for e in exclude)):
            raise InputError(f"{path}: [tool.payrules.lint] exclude must be a list of glob patterns")
        severity: dict[str, str | None] = {}
        for code, level in dict(section.get("severity", {})).items():
            if not re.fullmatch(r"[EW][0-9]{3}", str(code)):
                raise InputError(f"{path}: [tool.payrules.lint.severity] `{code}` is not a diagnostic code")
            if level not in ("error", "warning", "off"):
                raise InputError(f"{path}: [tool.payrules.lint.severity] {code} must be "
                                 f'"error", "warning" or "off", not {level!r}')
            if code.startswith("E") and level != "error":
                raise InputError(f"{path}: [tool.payrules.lint.severity] {code} is an error: a rule file with "
                                 "it cannot be compiled, so it cannot be made a warning or turned off")
            severity[code] = None if level == "off" else level
        unknown = set(section) - {"exclude", "severity"}
        if unknown:
            raise InputError(f"{path}: [tool.payrules.lint] has no setting `{sorted(unknown)[0]}`; "
                             "settings are `exclude` and `severity`")
        return cls(exclude=tuple(exclude), severity=severity, path=path)

    def excluded(self, path: Path) -> bool:
        text = path.as_posix()
        return any(fnmatch.fnmatch(text, pattern) or fnmatch.fnmatch(path.name, pattern) for pattern in self.exclude)


def rule_files(paths: Iterable[Path], config: Config) -> list[Path]:
    """The .payer files named, and those under the folders named, sorted; InputError for a
    path that does not exist."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += [p for p in sorted(path.rglob("*.payer")) if not config.excluded(p)]
        elif path.exists():
            found.append(path)
        else:
            raise InputError(f"{path}: no such file or folder")
    return list(dict.fromkeys(found))


def lint_source(source: Source, config: Config | None = None) -> list[Diagnostic]:
    """Every finding for one rule file, sorted by position, after suppressions and config."""
    checked, diagnostics = diagnose(source)
    complete = not any(d.severity is Severity.ERROR for d in diagnostics)
    if complete:
        diagnostics += _across_rules(checked)
    return _apply(source, sorted(set(diagnostics), key=lambda d: d.sort_key), config or Config(), complete)


def lint_paths(paths: Iterable[Path], config: Config) -> Iterator[tuple[Path, list[Diagnostic]]]:
    for path in rule_files(paths, config):
        yield path, lint_source(read_source(path), config)


# --- checks across rules ---------------------------------------------------------------------


def _warning(code: str, message: str, span: Span, help: str | None = None) -> Diagnostic:
    return Diagnostic(code=code, severity=Severity.WARNING, message=message, span=span, help=help)


def _unconditional(rule: ast.Rule) -> bool:
    """A rule that applies on every date and changes amounts (so it decides coverage)."""
    return rule.effective_from is None and rule.effective_to is None and rule.warn is None


def _across_rules(checked: Checked) -> list[Diagnostic]:
    module, bindings = checked.module, checked.bindings
    own_file = module.span.file
    found: list[Diagnostic] = []

    # `only` lists that do not meet, and what `only` and `not covered` leave covered.
    covered: Codes | None = None
    first_only: ast.Rule | None = None
    excluded = NO_CODES
    for rule in module.rules:
        statement = rule.statement
        if not _unconditional(rule):
            continue
        if isinstance(statement, ast.Only):
            codes = bindings.code_sets[statement.codes]
            if covered is not None and first_only is not None and not (covered & codes):
                found.append(_warning(
                    "W102", "this `only` list and the one before it share no code, so nothing is covered",
                    statement.codes.span, f"the other `only` is {first_only.span.seen_from(rule.span)}; "
                    "put every covered code in one `only` list"))
            covered = codes if covered is None else covered & codes
            first_only = first_only or rule
        elif isinstance(statement, ast.NotCovered):
            excluded = excluded | bindings.code_sets[statement.codes]

    # Rules whose codes can never be paid.
    for rule in module.rules:
        statement = rule.statement
        if isinstance(statement, (ast.Only, ast.NotCovered)):
            continue
        codes_node = getattr(statement, "codes", None)
        if not isinstance(codes_node, ast.CodeList):
            continue
        codes = bindings.code_sets.get(codes_node, NO_CODES)
        payable = codes - excluded
        if covered is not None:
            payable = payable & covered
        if codes and not payable:
            found.append(_warning(
                "W101", "this rule can never apply: every code it names is denied by `only` or `not covered`",
                codes_node.span, "remove the rule, or cover its codes"))

    # The same rule twice.
    seen: dict[tuple[str, ...], ast.Rule] = {}
    for rule in module.rules:
        key = _rule_key(rule)
        if key in seen:
            found.append(_warning("W103", "the same rule is written twice", rule.statement.span,
                                  f"the first is {seen[key].span.seen_from(rule.span)}; remove one"))
        else:
            seen[key] = rule

    # Sets of this file that nothing uses.
    used = {item.name for node in _code_lists(module) for item in node.items if isinstance(item, ast.SetRef)}
    for set_def in module.sets:
        if set_def.span.file == own_file and set_def.name.value not in used:
            found.append(_warning("W105", f"code set `{set_def.name.value}` is never used", set_def.name.span,
                                  "use it in a rule, or remove it"))
    return found


def _rule_key(rule: ast.Rule) -> tuple[str, ...]:
    """The rule without its name and layout: statement words in lower case, then its options."""
    options = [rule.carc, rule.rarc, rule.warn, rule.source, rule.effective_from, rule.effective_to]
    return (" ".join(rule.statement.span.text.lower().split()),
            *("" if o is None else o.value.lower() for o in options))


def _code_lists(module: ast.Module) -> Iterator[ast.CodeList]:
    for set_def in module.sets:
        yield set_def.codes
    for rule in module.rules:
        for value in attrs.asdict(rule.statement, recurse=False).values():
            if isinstance(value, ast.CodeList):
                yield value


# --- suppressions and configuration --------------------------------------------------------------


def _apply(source: Source, diagnostics: list[Diagnostic], config: Config, complete: bool) -> list[Diagnostic]:
    """Drop what the configuration turns off and what a comment silences; report comments that
    silence nothing (for warnings, only when every check ran: errors stop the later ones)."""
    suppressed: dict[int, dict[str, Span]] = {}
    for lineno, text in enumerate(source.text.split("\n"), start=1):
        match = SUPPRESS_RE.search(text)
        if match:
            start = source.line_start(lineno) + match.start(1)
            codes = suppressed.setdefault(lineno, {})
            for code_match in re.finditer(r"[A-Za-z][0-9]{3}", match.group(1)):
                code = code_match.group().upper()
                codes[code] = Span(source, start + code_match.start(), start + code_match.end())
    kept: list[Diagnostic] = []
    used: set[tuple[int, str]] = set()
    for d in diagnostics:
        level = config.severity[d.code] if d.code in config.severity else d.severity.value
        if level is None:
            continue
        d = attrs.evolve(d, severity=SEVERITIES[level])
        here = suppressed.get(d.span.line, {}) if d.span.file == source.name else {}
        if d.severity is Severity.WARNING and d.code in here:
            used.add((d.span.line, d.code))
            continue
        kept.append(d)
    for lineno, codes in suppressed.items():
        for code, span in codes.items():
            if (lineno, code) in used or config.severity.get("W106", "warning") is None:
                continue
            if complete or code.startswith("E"):
                what = "an error cannot be silenced" if code.startswith("E") else f"no {code} is reported on this line"
                kept.append(_warning("W106", f"`ignore {code}` silences nothing: {what}", span,
                                     "fix the error instead" if code.startswith("E") else "remove it"))
    return sorted(kept, key=lambda d: d.sort_key)
