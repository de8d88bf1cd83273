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
from typing import Any

import attrs

from payrules import ast, ncci
from payrules.check import NO_CODES, Checked, Codes
from payrules.compiler import diagnose, read_source
from payrules.diagnosis_lint import diagnosis_set_names, diagnosis_warnings
from payrules.diagnostics import Diagnostic, InputError, Severity
from payrules.source import Source, Span

SUPPRESS_RE = re.compile(r"#.*?\bpayrules:\s*ignore\s+([A-Z][0-9]{3}(?:\s*,\s*[A-Z][0-9]{3})*)", re.IGNORECASE)
SEVERITIES = {"error": Severity.ERROR, "warning": Severity.WARNING}


def _pyproject(path: Path) -> dict[str, Any]:
    """A pyproject.toml that holds payrules' settings; a worded `InputError` when it cannot be read."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise InputError(f"{path}: cannot read the configuration ({error})") from None


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
        found = nearest_pyproject(start)
        return cls.load(found) if found else cls()

    @classmethod
    def load(cls, path: Path) -> Config:
        section = _pyproject(path).get("tool", {}).get("payrules", {}).get("lint", {})
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
        """Whether `path` matches an `exclude` glob. Globs are relative to the folder of the
        pyproject.toml that holds them, as ruff's are, whatever folder payrules runs from and
        however the path was typed; a glob without `/` also matches the file name alone."""
        if not self.exclude:
            return False
        names = [path.name]
        if self.path is not None:
            base = self.path.resolve().parent
            full = path.resolve()
            if full.is_relative_to(base):
                names.append(full.relative_to(base).as_posix())
        else:
            names.append(path.as_posix())
        return any(fnmatch.fnmatch(name, pattern) for name in names for pattern in self.exclude)


def nearest_pyproject(start: Path) -> Path | None:
    """The pyproject.toml at or above `start`, nearest first, as ruff and black find theirs."""
    for folder in [start.resolve(), *start.resolve().parents]:
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


CHECK_SETTINGS = {"rules": "a path", "columns": "a path", "format": "a format name", "payer_map": "a path",
                  "keep": "a list of column names"}
"""The `[tool.payrules]` settings that give `payrules check` defaults, and what each holds."""


@attrs.frozen
class CheckDefaults:
    """`[tool.payrules]` in pyproject.toml: defaults for `payrules check` options that are not
    given on the command line. Paths are relative to the folder of the pyproject.toml."""

    rules: Path | None = None
    columns: Path | None = None
    format: str | None = None
    payer_map: Path | None = None
    keep: tuple[str, ...] = ()
    """Input columns (or JSON keys) carried to the output, as `--keep` names them."""
    path: Path | None = None
    """The pyproject.toml they come from."""

    @classmethod
    def find(cls, start: Path) -> CheckDefaults:
        found = nearest_pyproject(start)
        return cls.load(found) if found else cls()

    @classmethod
    def load(cls, path: Path) -> CheckDefaults:
        section = _pyproject(path).get("tool", {}).get("payrules", {})
        if not isinstance(section, dict):
            raise InputError(f"{path}: [tool.payrules] must be a table")
        values: dict[str, str] = {}
        keep: tuple[str, ...] = ()
        for key, value in section.items():
            if isinstance(value, dict):
                continue  # a table of another command, such as [tool.payrules.lint]
            if key not in CHECK_SETTINGS:
                raise InputError(f"{path}: [tool.payrules] has no setting `{key}`; settings are "
                                 f"{', '.join(f'`{k}`' for k in CHECK_SETTINGS)}")
            if key == "keep":
                if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                    raise InputError(f"{path}: [tool.payrules] keep must be {CHECK_SETTINGS[key]} in quotes, "
                                     f"such as keep = [\"claim_line_id\"], not {value!r}")
                keep = tuple(v.strip() for v in value)
                continue
            if not isinstance(value, str) or not value.strip():
                raise InputError(f"{path}: [tool.payrules] {key} must be {CHECK_SETTINGS[key]} in quotes, "
                                 f"not {value!r}")
            values[key] = value.strip()
        base = path.parent

        def where(key: str) -> Path | None:
            return base / values[key] if key in values else None

        return cls(rules=where("rules"), columns=where("columns"), format=values.get("format"),
                   payer_map=where("payer_map"), keep=keep, path=path)


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
    """Every rule file under `paths` with its findings, in file order: those of the file itself,
    and those across files that `check` and `build` also stop on (E107, placed in the later file)."""
    found: list[tuple[Path, list[Diagnostic]]] = []
    dated: list[RuleFileDates] = []
    for path in rule_files(paths, config):
        source = read_source(path)
        checked, diagnostics = diagnose(source)
        if not any(d.severity is Severity.ERROR for d in diagnostics):
            # A file with errors is left out, as `check` leaves it out when it loads the folder.
            start, end = checked.effective
            dated.append(RuleFileDates(checked.payer_id, start, end, source))
        found.append((path, lint_source(source, config)))
    across: dict[str, list[Diagnostic]] = {}
    for diagnostic in payer_overlaps(dated):
        across.setdefault(diagnostic.span.file, []).append(diagnostic)
    for path, diagnostics in found:
        extra = across.get(str(path), [])
        yield path, sorted(diagnostics + extra, key=lambda d: d.sort_key) if extra else diagnostics


# --- checks across files ---------------------------------------------------------------------


@attrs.frozen
class RuleFileDates:
    """What E107 compares of a rule file: its payer id and effective range (those of its `Policy`)."""

    payer_id: str
    effective_from: str | None
    effective_to: str | None
    source: Source

    def range(self) -> str:
        return f"{self.effective_from or 'any date'} to {self.effective_to or 'any date'}"


def payer_overlaps(files: Iterable[RuleFileDates]) -> list[Diagnostic]:
    """E107 for each rule file whose payer already has rules on some of its dates in an earlier
    file; `check`, `build` and `lint` all report these, in the same words."""
    groups: dict[str, list[RuleFileDates]] = {}
    for one in files:
        groups.setdefault(one.payer_id.casefold(), []).append(one)
    found: list[Diagnostic] = []
    for group in groups.values():
        ordered = sorted(group, key=lambda d: d.effective_from or "")
        for first, later in zip(ordered, ordered[1:]):
            if first.effective_to is None or (later.effective_from or "") <= first.effective_to:
                found.append(_overlap(first, later))
    return found


_HEADER_RE = re.compile(r"^[ \t]*payer[ \t][^\n#]*", re.IGNORECASE | re.MULTILINE)


def _overlap(first: RuleFileDates, later: RuleFileDates) -> Diagnostic:
    source = later.source
    # The `payer` line, which holds the effective range (comments may come before it).
    header = _HEADER_RE.search(source.text)
    start, end = (header.start(), header.end()) if header else (0, len(source.text.split("\n", 1)[0]))
    text = source.text[start:end]
    start += len(text) - len(text.lstrip())
    end = start + len(text.strip())
    if first.effective_from is first.effective_to is later.effective_from is later.effective_to is None:
        message = f"payer `{later.payer_id}` already has a rule file: {first.source.name}"
        help = "keep one rule file per payer id, or give each an `effective from ... to ...` range"
    else:
        message = (f"payer `{later.payer_id}` already has rules for some of these dates: {first.source.name} "
                   f"({first.range()}) and this file ({later.range()}) overlap")
        help = "make the effective ranges of a payer's rule files meet without overlapping"
    return Diagnostic(code="E107", severity=Severity.ERROR, message=message, span=Span(source, start, end),
                      help=help)


# --- checks across rules ---------------------------------------------------------------------


def _warning(code: str, message: str, span: Span, help: str | None = None) -> Diagnostic:
    return Diagnostic(code=code, severity=Severity.WARNING, message=message, span=span, help=help)


def _unconditional(rule: ast.Rule) -> bool:
    """A rule that applies on every date and changes amounts (so it decides coverage)."""
    return (rule.effective_from is None and rule.effective_to is None and rule.warn is None
            and rule.when is None and rule.unless is None)


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

    # `X only with Y` where Y holds some of X.
    for rule in module.rules:
        found += _only_with_overlap(rule, bindings.code_sets)

    # The same rule twice.
    seen: dict[tuple[str, ...], ast.Rule] = {}
    for rule in module.rules:
        key = _rule_key(rule)
        if key in seen:
            found.append(_warning("W103", "the same rule is written twice", rule.statement.span,
                                  f"the first is {seen[key].span.seen_from(rule.span)}; remove one"))
        else:
            seen[key] = rule

    # NCCI PTP tables with no edit in force on the rule's dates.
    for rule in module.rules:
        if isinstance(rule.statement, ast.NcciPtp):
            stale = ncci.no_edit_in_force(rule, bindings.ncci.get(rule.statement, []))  # type: ignore[arg-type]
            found += [stale] if stale is not None else []
    # A time rule after a money limit over the same codes: the units the minutes do not support
    # come off what the limit left, so a line is cut twice (units flow; money limits do not).
    for i, rule in enumerate(module.rules):
        statement = rule.statement
        if not isinstance(statement, ast.TimeRule) or rule.warn is not None:
            continue
        timed = bindings.code_sets.get(statement.codes, NO_CODES)
        for before in module.rules[:i]:
            limit = before.statement
            if (isinstance(limit, ast.MaxAmount) and limit.period.kind != "unit" and before.warn is None
                    and (limit.codes is None or timed & bindings.code_sets.get(limit.codes, NO_CODES))):
                found.append(_warning(
                    "W160", f"this time rule comes after `{before.text}`, which lowers the amounts of the same "
                    "codes: a line it reduces is then cut again", statement.span,
                    f"that limit is {before.span.seen_from(rule.span)}; put `units by` before money limits, "
                    "so that the units the minutes do not support come off first"))
                break

    # Sets of this file that nothing uses.
    used = {item.name for node in _code_lists(module) for item in node.items if isinstance(item, ast.SetRef)}
    used |= diagnosis_set_names(module)
    for set_def in module.sets:
        if set_def.span.file == own_file and set_def.name.value not in used:
            what = "diagnosis set" if set_def.name.value in bindings.diagnoses_by_name else "code set"
            found.append(_warning("W105", f"{what} `{set_def.name.value}` is never used", set_def.name.span,
                                  "use it in a rule, or remove it"))
    found += diagnosis_warnings(checked)

    # `let` names of this file that nothing uses.
    named = {ref.name for rule in module.rules for ref in _name_refs(rule.statement)}
    for let in module.lets:
        if let.span.file == own_file and let.name.value not in named:
            found.append(_warning("W110", f"`{let.name.value}` is given a value but never used", let.name.span,
                                  "use it where an amount, share or number goes, or remove it"))
    return found


def _name_refs(statement: ast.StatementNode) -> Iterator[ast.NameRef]:
    """The `let` names a statement uses: in its amount, its count and its period."""
    for value in attrs.asdict(statement, recurse=False).values():
        if isinstance(value, ast.NameRef):
            yield value
        elif isinstance(value, ast.Amount):
            yield from (ref for ref in (value.money, value.share) if isinstance(ref, ast.NameRef))
        elif isinstance(value, ast.Period) and isinstance(value.days, ast.NameRef):
            yield value.days


def _only_with_overlap(rule: ast.Rule, code_sets: dict[ast.CodeList, Codes]) -> list[Diagnostic]:
    """W111 for `X only with Y` where Y holds codes of X: such a line is qualified only by a line
    of another code, never by itself or a line of its own code; the author may have meant Y
    without them."""
    statement = rule.statement
    if not isinstance(statement, ast.OnlyWith):
        return []
    codes, other = code_sets[statement.codes], code_sets[statement.other]
    shared = codes & other
    if not shared:
        return []
    rest = other - codes
    both = shared.describe()
    one = len(shared) == 1
    message = (f"{both} {'is' if one else 'are'} in both lists: a line of {'it' if one else 'any of them'} is "
               f"qualified only by another code of the `with` list, never by itself or a line of its own code")
    if not rest:
        help = (f"a line of {both} then has nothing to qualify it{'' if one else ' but another of them'}; "
                "name the qualifying services, such as `97124 only with 98940-98942 same day`")
    else:
        help = f"did you mean `{statement.codes.span.text} only with {rest.describe()} same {statement.scope}`? "
        help += ("it does the same" if one else
                 f"as written, a line of one of {both} is also qualified by a line of another of them")
    return [_warning("W111", message, statement.other.span, help)]


def _rule_key(rule: ast.Rule) -> tuple[str, ...]:
    """The rule without its name and layout: statement words in lower case, then its options."""
    options = [rule.carc, rule.rarc, rule.warn, rule.source, rule.effective_from, rule.effective_to]
    conditions = ["" if c is None else " ".join(c.span.text.lower().split()) for c in (rule.when, rule.unless)]
    return (" ".join(rule.statement.span.text.lower().split()),
            *("" if o is None else o.value.lower() for o in options), *conditions)


def _code_lists(module: ast.Module) -> Iterator[ast.CodeList | ast.DiagnosisList]:
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
