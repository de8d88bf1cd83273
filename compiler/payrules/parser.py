"""Rule file text → `ast.Module` plus syntax diagnostics. The only module that imports lark."""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import attrs
import lark
from lark import Lark, Token, Transformer, Tree, v_args
from lark.tree import Meta

from payrules import ast
from payrules.diagnostics import Diagnostic, InternalError, Severity, closest, quoted
from payrules.domain import cache_dir, parse_money
from payrules.source import Source, Span

STATEMENT_WORDS = ("only", "not", "no", "max", "requires", "units", "one", "apply")
"""The words a statement can start with; used to suggest a fix for an unknown word."""

TOP_LEVEL_WORDS = STATEMENT_WORDS + ("payer", "set", "include", "drop", "override", "let", "field")


def grammar_text() -> str:
    """The grammar shipped inside the package, or the checkout's `grammar/` when run from source."""
    packaged = resources.files("payrules").joinpath("grammar/rules.lark")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    checkout = Path(__file__).resolve().parents[2] / "grammar" / "rules.lark"
    return checkout.read_text(encoding="utf-8")


@functools.cache
def _lark() -> Lark:
    text = grammar_text()
    return Lark(text, start="line", parser="lalr", propagate_positions=True, cache=_grammar_cache(text, "rules"))


@functools.cache
def _layout_lark() -> Lark:
    text = grammar_text()
    return Lark(text, start="line", parser="lalr", keep_all_tokens=True, cache=_grammar_cache(text, "layout"))


def _grammar_cache(text: str, name: str) -> str | bool:
    """Where lark keeps the parser it builds from the grammar (most of a short run's start-up),
    in payrules' cache folder; lark checks the grammar and options it was built from before
    using it, and builds it again when the file is missing, stale or unreadable. False (no
    cache) when caching is off or the folder cannot be made."""
    directory = cache_dir()
    if directory is None:
        return False
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    digest = hashlib.sha256(f"{lark.__version__}\0{text}".encode()).hexdigest()[:16]
    return str(directory / f"grammar-{name}-{digest}.lark")


def layout_tree(text: str) -> Tree[Token]:
    """The parse tree of one valid line with every token kept (keywords and punctuation too),
    for `payrules fmt`. Tokens are `str` subclasses with a `type`; trees have `data` and
    `children`."""
    return _layout_lark().parse(text)


def parse(source: Source) -> tuple[ast.Module, list[Diagnostic]]:
    """Parse a whole rule file, one line at a time, so that every bad line is reported."""
    diagnostics: list[Diagnostic] = []
    header: ast.Header | None = None
    sets: list[ast.SetDef] = []
    rules: list[ast.Rule] = []
    includes: list[ast.Include] = []
    drops: list[ast.Drop] = []
    lets: list[ast.LetDef] = []
    fields: list[ast.FieldDef] = []
    seen_entry = False
    header_failed = False
    for lineno, text in enumerate(source.text.split("\n"), start=1):
        offset = source.line_start(lineno)
        try:
            entry = _parse_line(text, source, offset)
        except _LineError as error:
            diagnostics.append(error.diagnostic)
            header_failed |= text.strip().lower().startswith("payer")
            seen_entry = True
            continue
        if entry is None:
            continue
        if isinstance(entry, ast.Header):
            if header is not None:
                diagnostics.append(_error("E004", "a rule file has one `payer` line", entry.span,
                                          f"the payer is already given on line {header.span.line}"))
            elif seen_entry:
                diagnostics.append(_error("E004", "the `payer` line must come before any rule", entry.span,
                                          "move this line to the top of the file"))
            else:
                header = entry
        elif isinstance(entry, ast.SetDef):
            sets.append(entry)
        elif isinstance(entry, ast.LetDef):
            lets.append(entry)
        elif isinstance(entry, ast.Include):
            includes.append(entry)
        elif isinstance(entry, ast.Drop):
            drops.append(entry)
        elif isinstance(entry, ast.FieldDef):
            fields.append(entry)
        else:
            rules.append(entry)
        seen_entry = True
    if header is None and not header_failed and not any(d.code == "E004" for d in diagnostics):
        diagnostics.append(_error("E003", "missing `payer` line", Span(source, 0, 0),
                                  'start the file with a line such as `payer ASH "American Specialty Health"`'))
    module = ast.Module(span=Span(source, 0, len(source.text)), header=header, sets=sets, rules=rules,
                        includes=includes, drops=drops, lets=lets, fields=fields)
    return module, diagnostics


# --- one line -------------------------------------------------------------------------


class _LineError(Exception):
    def __init__(self, diagnostic: Diagnostic) -> None:
        self.diagnostic = diagnostic


Entry = ast.Header | ast.SetDef | ast.LetDef | ast.Include | ast.Drop | ast.Rule | ast.FieldDef


def _parse_line(text: str, source: Source, offset: int) -> Entry | None:
    if not text.strip() or text.lstrip().startswith("#"):
        return None
    try:
        tree = _lark().parse(text)
    except lark.UnexpectedInput as error:
        raise _LineError(_syntax_diagnostic(error, text, source, offset)) from None
    try:
        entry: Entry | None = _ToAst(source, offset).transform(tree)
    except lark.exceptions.VisitError as error:
        raise error.orig_exc from None
    return entry


def _error(code: str, message: str, span: Span, help: str | None = None) -> Diagnostic:
    return Diagnostic(code=code, severity=Severity.ERROR, message=message, span=span, help=help)


_COUNT_EXAMPLES = {"units": "max 2 units per line", "visits": "max 12 visits per year",
                   "minutes": "max 60 minutes per session", "days": "per 30 days"}
_FRACTION_COUNT = re.compile(r"([0-9]+)\.([0-9]+)\s+(units?|visits?|minutes?|days?)\b", re.IGNORECASE)


def _fraction_before_count(text: str, dot: int) -> tuple[int, int, str] | None:
    """Where a limit is written with a fraction (`max 2.5 units`): the number's start and end and
    what it counts, when the unexpected `.` at `dot` sits inside such a number."""
    start = dot
    while start > 0 and text[start - 1].isdigit():
        start -= 1
    found = _FRACTION_COUNT.match(text, start)
    if found is None or found.end(1) != dot:
        return None
    word = found.group(3).lower()
    return start, found.end(2), word if word.endswith("s") else word + "s"


_UNLESS_WITHOUT_MODIFIER = re.compile(r"\bunless\s+([0-9][A-Za-z0-9]?)\s*(?:(?:,|\bor\b)\s*[A-Za-z0-9]{2}\s*)*"
                                      r"(?:#.*)?$", re.IGNORECASE)


def _syntax_diagnostic(error: lark.UnexpectedInput, text: str, source: Source, offset: int) -> Diagnostic:
    unknown = _unknown_statement_word(text)
    if unknown is not None:
        token, start = unknown
        suggestion = closest(token, TOP_LEVEL_WORDS)
        help = (f"did you mean `{suggestion}`?" if suggestion else
                "a statement starts with " + ", ".join(f"`{w}`" for w in STATEMENT_WORDS))
        span = Span(source, offset + start, offset + start + len(token))
        return _error("E002", f"unknown statement word {quoted(token)}", span, help)

    forgot = _UNLESS_WITHOUT_MODIFIER.search(text)
    if forgot is not None:  # `unless 59`: the statement's modifier exemption without its keyword
        span = Span(source, offset + forgot.start(1), offset + forgot.end(1))
        return _error("E001", f"expected `modifier` after `unless`, found {quoted(forgot.group(1))}", span,
                      f"write `unless modifier {forgot.group(1)}`")

    if isinstance(error, lark.UnexpectedCharacters):
        column = error.column
        char = text[column - 1] if column - 1 < len(text) else ""
        span = Span(source, offset + column - 1, offset + column)
        if char == "$":
            if text[column:column + 1] == "-":
                minus = Span(source, offset + column - 1, offset + column + 1)
                return _error("E001", "an amount cannot be negative", minus,
                              "write the amount the payer allows, such as `$45`")
            return _error("E001", "expected an amount after `$`, such as `$45` or `$45.50`", span)
        if char == '"':
            return _error("E001", "a quoted text is not closed", span, 'end it with `"` on the same line')
        diagnosis = _diagnosis_at(text, column - 1)
        if diagnosis is not None:
            start, end = diagnosis
            return _error("E001", f"`{text[start:end]}` is a diagnosis; procedure codes go here",
                          Span(source, offset + start, offset + end),
                          "diagnoses go after `requires diagnosis`, `requires primary diagnosis` or "
                          "`not covered with diagnosis`")
        fraction = _fraction_before_count(text, column - 1)
        if fraction is not None:
            start, end, what = fraction
            number = Span(source, offset + start, offset + end)
            return _error("E208", f"`{text[start:end]}` is not a whole number of {what}", number,
                          f"write the limit as digits, such as `{_COUNT_EXAMPLES[what]}`")
        return _error("E001", f"unexpected character `{char}`; expected {_expected_words(error.allowed)}", span)

    if isinstance(error, lark.UnexpectedToken):
        misplaced = _keyword_as_name(error, text, source, offset)
        if misplaced is not None:
            return misplaced
        token = error.token
        missing = _MISSING_DIAGNOSES.search(text)
        if missing is not None and token.start_pos is not None and token.start_pos > missing.start(2):
            keyword = missing.group(2)
            span = Span(source, offset + missing.start(2), offset + missing.end(2))
            statement = " ".join(missing.group(1).lower().split())
            example = ("requires primary diagnosis M99.00-M99.05 for 98940-98942" if statement.startswith("requires")
                       else f"{statement} Z00* for 97124")
            return _error("E001", f"expected the diagnoses after `{statement}`, found `{keyword}`", span,
                          f"name the diagnoses before `{keyword.lower()}`, as in `{example}`")
        if token.type == "$END":
            start = len(text.rstrip())
            span = Span(source, offset + start, offset + start)
            found = "the end of the line"
        else:
            assert token.start_pos is not None and token.end_pos is not None
            span = Span(source, offset + token.start_pos, offset + token.end_pos)
            found = quoted(str(token))
        if "COMMA" in error.expected and (token.type in ("CODE", "WORD", "DIAGNOSIS", "DATE")
                                          or str(token).lower() in ("or", "and")):
            return _error("E001", f"expected `,` between list items, found {found}", span,
                          "separate the items of a list with commas, as in `97124, 97140`")
        expected = _expected_words(error.expected, set_items=text.lstrip().lower().startswith("set"))
        return _error("E001", f"expected {expected}, found {found}", span)

    column = getattr(error, "column", 1) or 1  # pragma: no cover - lark raises only the two above per line
    return _error("E001", "invalid syntax", Span(source, offset + column - 1, offset + column))


_MISSING_DIAGNOSES = re.compile(
    r"\b(requires\s+primary\s+diagnosis|not\s+covered\s+with(?:\s+primary)?\s+diagnosis)\s+"
    r"(for|carc|rarc|source|effective|warn|when|unless)\b", re.IGNORECASE)
"""A statement whose diagnoses are left out, so that its next keyword would be read as a
diagnosis set name (`requires primary diagnosis for 98940`)."""

_DIAGNOSIS_SHAPE = re.compile(r"[A-Za-z][0-9][0-9A-Za-z](?:\.[0-9A-Za-z]*\**|\*+)")


def _diagnosis_at(text: str, place: int) -> tuple[int, int] | None:
    """Where a diagnosis (`M54.50`, `M62.83*`) is written in a procedure code list: its start and
    end, when the unexpected character at `place` (its dot or `*`) sits inside one."""
    start = place
    while start > 0 and text[start - 1].isalnum():
        start -= 1
    found = _DIAGNOSIS_SHAPE.match(text, start)
    if found is None or not found.start() < place < found.end():
        return None
    return start, found.end()
_VALUE_PLACE = re.compile(r"(?:\bmax|\bof|\bper)\s*$", re.IGNORECASE)
"""Text that ends where an amount, share or number (or a `let` name) goes."""
_COUNT_WITHOUT_NUMBER = re.compile(r"\bmax\s+(units?|visits?|minutes?)\s+(?!units?\b|visits?\b|minutes?\b)",
                                   re.IGNORECASE)
_NAME_OR_VALUE = "an amount such as $45, a share such as 75%, a number such as 4 or a name given by `let`"


def _keyword_as_name(error: lark.UnexpectedToken, text: str, source: Source, offset: int) -> Diagnostic | None:
    """A keyword where a value goes (`max 75% of per day`) is read as a `let` name, and the line
    fails at the word after it; say what was missing at the keyword instead."""
    missing = _COUNT_WITHOUT_NUMBER.search(text)
    if missing is not None:  # `max units of 97124 per session`: `units` was read as a name
        span = Span(source, offset + missing.start(1), offset + missing.end(1))
        return _error("E001", f"expected a number such as 4 or a name given by `let`, found `{missing.group(1)}`",
                      span, f"write the limit before it, as in `max 4 {missing.group(1).lower()} ...`")
    history = getattr(error, "token_history", None) or ()
    previous = history[-1] if history else None
    if previous is None or previous.type != "WORD" or previous.start_pos is None or previous.end_pos is None:
        return None
    if previous.lower() not in _keywords() or not _VALUE_PLACE.search(text[:previous.start_pos]):
        return None
    span = Span(source, offset + previous.start_pos, offset + previous.end_pos)
    return _error("E001", f"expected {_NAME_OR_VALUE}, found {quoted(str(previous))}", span)


@functools.cache
def _keywords() -> frozenset[str]:
    """The grammar's keywords, in lower case."""
    return frozenset(str(t.pattern.value).lower() for t in _lark().terminals if t.pattern.type == "str")


_NAME_PREFIX = re.compile(r'^\s*(?:[A-Za-z0-9_][A-Za-z0-9_-]*|"(?:[^"\\]|\\.)*")\s*:\s*')


def _unknown_statement_word(text: str) -> tuple[str, int] | None:
    """The first word of the statement, and its column, when it is no statement keyword."""
    prefix = _NAME_PREFIX.match(text)
    start = prefix.end() if prefix else len(text) - len(text.lstrip())
    match = re.match(r"[A-Za-z_][A-Za-z0-9_-]*", text[start:])
    if match is None:
        return None
    word = match.group()
    if word.lower() in TOP_LEVEL_WORDS:
        return None
    # `name: word`, or a line that is a lone word followed by more than a colon.
    rest = text[start + match.end():].lstrip()
    if prefix is None and rest.startswith(":"):
        return None
    return word, start


_TERMINAL_WORDS = {
    "CODE": "a procedure code such as 97140",
    "WORD": "a name",
    "MONEY": "an amount such as $45",
    "STRING": 'a quoted text such as "Plan name"',
    "$END": "the end of the line",
    "DATE": "a date such as 2024-01-01",
    "DIAGNOSIS": "an ICD-10-CM code such as M54.50 or a prefix such as M54.5*",
    "PERCENT": "a share such as 75%",
    "UNLESS_MODIFIER": "`unless modifier`",
    "NOT_IN": "`not in`",
    "SHIFT": "`+` or `-`",
}


def _expected_words(names: Iterable[str], set_items: bool = False) -> str:
    names = {n for n in names if n != "COMMENT"}
    if names >= {"ONLY", "NOT", "NO", "MAX", "REQUIRES"}:
        return "a statement such as `only 97140`"
    if {"DIAGNOSIS", "WORD"} <= names:  # a set's items, or diagnoses (where set names go too)
        names = names - {"DIAGNOSIS", "WORD"}
        words = ["a procedure code such as 97140, a diagnosis such as M54.50 or a set name" if set_items else
                 "an ICD-10-CM code such as M54.50, a prefix such as M54.5* or a diagnosis set name"]
        return _listed(words + _named(names))
    if names == {"CODE", "MONEY", "PERCENT"}:
        return "an amount such as $45, a share such as 75% or a number such as 4"
    if names == {"CODE", "MONEY", "PERCENT", "WORD"}:
        return _NAME_OR_VALUE
    if {"CODE", "WORD", "LIFETIME"} <= names:  # after `per`: a period, or N days
        names = names - {"CODE", "WORD"}
        words = ["a number of days such as 30 or a name given by `let`"]
        return ", ".join(words + [f"`{_literal(n)}`" for n in sorted(names)][:-1]) + \
            f" or `{_literal(sorted(names)[-1])}`"
    if {"CODE", "WORD", "DATE", "MONEY", "STRING"} <= names:  # a side of a comparison
        names = names - {"CODE", "WORD", "DATE", "MONEY", "STRING"}
        words = ['a field such as accident_date, or a value such as 11, 2024-03-01, $45 or "A1"']
    elif {"CODE", "WORD"} <= names:
        names = names - {"CODE", "WORD"}
        words = ["a procedure code such as 97140 or a code set name"]
    else:
        words = []
    return _listed(words + _named(names))


def _named(names: Iterable[str]) -> list[str]:
    words = []
    for name in sorted(names, key=lambda n: (n not in _TERMINAL_WORDS, n)):
        if name in _TERMINAL_WORDS:
            words.append(_TERMINAL_WORDS[name])
        else:
            words.append(f"`{_literal(name)}`")
    return words


def _listed(words: list[str]) -> str:
    if len(words) <= 2:
        return " or ".join(words)
    return ", ".join(words[:-1]) + " or " + words[-1]


def _literal(terminal: str) -> str:
    pattern = _lark().get_terminal(terminal).pattern
    value = str(pattern.value)
    return value if pattern.type == "str" else terminal.lower()


# --- tree → AST -----------------------------------------------------------------------


_PROCEDURE_SHAPE = re.compile(r"[0-9][0-9A-Za-z]*|[A-Za-z][0-9]{4}")


def procedure_shaped(text: str) -> bool:
    """Whether an item of a set is read as a procedure code: it is shaped like the `CODE`
    terminal (a digit first, or a letter and four digits: `97140`, `0042T`, `S8990`). Anything
    else (`M54.50`, `M62.83*`, `724.2`) is read as a diagnosis, so a diagnosis in a set is
    written with its dot."""
    return _PROCEDURE_SHAPE.fullmatch(text) is not None


def unescape(quoted: str) -> str:
    """`"a \\"b\\"\\n"` → `a "b"` and a newline. Unknown escapes keep the escaped character."""
    body = quoted[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


@v_args(meta=True, inline=True)
class _ToAst(Transformer[Token, Any]):
    """One method per grammar rule or alias; anything else is a bug in payrules."""

    def __init__(self, source: Source, offset: int) -> None:
        super().__init__()
        self.source = source
        self.offset = offset

    def __default__(self, data: Any, children: Any, meta: Any) -> Any:
        raise InternalError(f"grammar rule `{data}` has no AST conversion")

    def _span(self, meta: Meta) -> Span:
        return Span(self.source, self.offset + meta.start_pos, self.offset + meta.end_pos)

    def _tspan(self, token: Token) -> Span:
        assert token.start_pos is not None and token.end_pos is not None
        return Span(self.source, self.offset + token.start_pos, self.offset + token.end_pos)

    def _word(self, token: Token) -> ast.Word:
        value = unescape(token) if token.type == "STRING" else str(token)
        return ast.Word(span=self._tspan(token), value=value)

    # file structure
    def line(self, meta: Meta, *children: Any) -> Any:
        entries = [c for c in children if not isinstance(c, Token)]
        return entries[0] if entries else None

    def header(self, meta: Meta, payer_id: ast.Word, *rest: Any) -> ast.Header:
        display = next((self._word(r) for r in rest if isinstance(r, Token)), None)
        effective: dict[str, Any] = next((r[1] for r in rest if isinstance(r, tuple)), {})
        return ast.Header(span=self._span(meta), payer_id=payer_id, display_name=display, **effective)

    def set_def(self, meta: Meta, name: Token, items: ast.CodeList | ast.DiagnosisList) -> ast.SetDef:
        return ast.SetDef(span=self._span(meta), name=self._word(name), codes=items)

    def set_items(self, meta: Meta, *items: Any) -> ast.CodeList | ast.DiagnosisList:
        """A set's items, as procedure codes or as diagnoses by their shape (see `procedure_shaped`)."""
        codes = [i for i in items if isinstance(i, (ast.Code, ast.CodeRange))]
        diagnoses = [i for i in items if isinstance(i, (ast.Diagnosis, ast.DiagnosisRange))]
        if codes and diagnoses:
            first = next(i for i in items if not isinstance(i, ast.SetRef))
            other = diagnoses[0] if isinstance(first, (ast.Code, ast.CodeRange)) else codes[0]
            code, diagnosis = (first, other) if other is diagnoses[0] else (other, first)
            raise _LineError(_error(
                "E230", "a set holds procedure codes or diagnoses, not both", other.span,
                f"`{code.span.text}` is a procedure code and `{diagnosis.span.text}` a diagnosis; "
                "make one set of each"))
        if diagnoses:
            return ast.DiagnosisList(span=self._span(meta), items=items)
        return ast.CodeList(span=self._span(meta), items=items)

    def set_code(self, meta: Meta, token: Token) -> ast.Code | ast.Diagnosis:
        if procedure_shaped(str(token)):
            return self.code(meta, token)
        return self.diagnosis(meta, token)

    def set_range(self, meta: Meta, low: Token, high: Token) -> ast.CodeRange | ast.DiagnosisRange:
        if procedure_shaped(str(low)):
            return self.code_range(meta, low, high)
        return self.diagnosis_range(meta, low, high)

    def let_def(self, meta: Meta, name: Token, value: Token) -> ast.LetDef:
        literal: ast.Money | ast.Share | ast.Code
        if value.type == "MONEY":
            literal = self._money(value)
        elif value.type == "PERCENT":
            literal = ast.Share(span=self._tspan(value), percent=Decimal(str(value)[:-1]))
        else:
            literal = self._number(value)
        return ast.LetDef(span=self._span(meta), name=self._word(name), value=literal)

    def _name_ref(self, token: Token) -> ast.NameRef:
        return ast.NameRef(span=self._tspan(token), name=str(token))

    def include(self, meta: Meta, path: Token) -> ast.Include:
        return ast.Include(span=self._span(meta), path=self._word(path))

    def drop(self, meta: Meta, name: ast.Word) -> ast.Drop:
        return ast.Drop(span=self._span(meta), name=name)

    def rule(self, meta: Meta, *children: Any) -> ast.Rule:
        override = None
        if isinstance(children[0], Token) and children[0].type == "OVERRIDE":
            override = self._word(children[0])
            children = children[1:]
        name = children[0] if isinstance(children[0], ast.Word) else None
        rest = children[1:] if name is not None else children
        statement = rest[0]
        options: dict[str, Any] = {}
        repeated = []
        for key, value, keyword in rest[1:]:
            if key in options:
                repeated.append(keyword)
            options.update(value)
        return ast.Rule(span=self._span(meta), name=name, statement=statement, repeated=repeated,
                        override=override, **options)

    def _option(self, meta: Meta, key: str, **values: Any) -> tuple[str, dict[str, Any], ast.Word]:
        keyword = ast.Word(span=Span(self.source, self.offset + meta.start_pos,
                                     self.offset + meta.start_pos + len(key)), value=key)
        return key, values, keyword

    def name(self, meta: Meta, token: Token) -> ast.Word:
        return self._word(token)

    def carc_option(self, meta: Meta, code: ast.Word) -> tuple[str, dict[str, Any], ast.Word]:
        return self._option(meta, "carc", carc=code)

    def rarc_option(self, meta: Meta, code: ast.Word) -> tuple[str, dict[str, Any], ast.Word]:
        return self._option(meta, "rarc", rarc=code)

    def warn_option(self, meta: Meta) -> tuple[str, dict[str, Any], ast.Word]:
        key, values, keyword = self._option(meta, "warn")
        return key, {"warn": keyword}, keyword

    def source_option(self, meta: Meta, text: Token) -> tuple[str, dict[str, Any], ast.Word]:
        return self._option(meta, "source", source=self._word(text))

    def effective_from(self, meta: Meta, start: Token, end: Token | None = None) -> tuple[str, dict[str, Any], ast.Word]:
        values: dict[str, Any] = {"effective_from": self._date(start)}
        if end is not None:
            values["effective_to"] = self._date(end)
        return self._option(meta, "effective", **values)

    def effective_to(self, meta: Meta, end: Token) -> tuple[str, dict[str, Any], ast.Word]:
        return self._option(meta, "effective", effective_to=self._date(end))

    def _date(self, token: Token) -> ast.Date:
        return ast.Date(span=self._tspan(token), value=str(token))

    def reason_code(self, meta: Meta, token: Token) -> ast.Word:
        return self._word(token)

    # facts and conditions (see `conditions.py` for what they mean)
    def field_def(self, meta: Meta, name: Token, type_: ast.Word, *rest: Any) -> ast.FieldDef:
        values: dict[str, Any] = {}
        for item in rest:
            values.update({"scope": item} if isinstance(item, str) else item)
        return ast.FieldDef(span=self._span(meta), name=self._word(name), type=type_, **values)

    def field_type(self, meta: Meta, token: Token) -> ast.Word:
        return self._word(token)

    def type_yes_no(self, meta: Meta) -> ast.Word:
        return ast.Word(span=self._span(meta), value="yes/no")

    def scope_line(self, meta: Meta) -> str:
        return "line"

    def missing_reject(self, meta: Meta) -> dict[str, Any]:
        return {"missing": "reject"}

    def missing_deny(self, meta: Meta, *codes: ast.Word) -> dict[str, Any]:
        # `carc` and `rarc` are both optional: tell them apart by where the keyword stands.
        values: dict[str, Any] = {"missing": "deny"}
        for code in codes:
            before = self.source.text[:code.span.start].rstrip()
            values["carc" if before.lower().endswith("carc") else "rarc"] = code
        return values

    def when_option(self, meta: Meta, condition: ast.Condition) -> tuple[str, dict[str, Any], ast.Word]:
        return self._option(meta, "when", when=condition)

    def unless_option(self, meta: Meta, condition: ast.Condition) -> tuple[str, dict[str, Any], ast.Word]:
        return self._option(meta, "unless", unless=condition)

    def cond_or(self, meta: Meta, *parts: ast.Condition) -> ast.Condition:
        return parts[0] if len(parts) == 1 else ast.AnyOf(span=self._span(meta), parts=parts)

    def cond_and(self, meta: Meta, *parts: ast.Condition) -> ast.Condition:
        return parts[0] if len(parts) == 1 else ast.AllOf(span=self._span(meta), parts=parts)

    def cond_flag(self, meta: Meta, token: Token) -> ast.Flag:
        return ast.Flag(span=self._tspan(token), name=str(token))

    def comparison(self, meta: Meta, left: ast.Value, op: str, right: ast.Value) -> ast.Comparison:
        return ast.Comparison(span=self._span(meta), left=left, op=op, right=right)

    def compare_op(self, meta: Meta, token: Token) -> str:
        return str(token)

    def cond_in(self, meta: Meta, left: ast.Value, values: tuple[ast.Value, ...]) -> ast.Membership:
        return ast.Membership(span=self._span(meta), left=left, values=values)

    def cond_not_in(self, meta: Meta, left: ast.Value, _: Token, values: tuple[ast.Value, ...]) -> ast.Membership:
        return ast.Membership(span=self._span(meta), left=left, values=values, negated=True)

    def value_list(self, meta: Meta, *values: ast.Value) -> tuple[ast.Value, ...]:
        return values

    def date_shift(self, meta: Meta, value: ast.Value, sign: Token, days: Token) -> ast.Value:
        number = int(days) if str(days).isdigit() and len(str(days)) <= 7 else None
        shift = None if number is None else (number if sign == "+" else -number)
        return attrs.evolve(value, span=self._span(meta), shift=shift, shift_text=str(days))

    def _value(self, token: Token, kind: str) -> ast.Value:
        text = unescape(token) if kind == "text" else str(token)
        return ast.Value(span=self._tspan(token), kind=kind, text=text)

    def value_field(self, meta: Meta, token: Token) -> ast.Value:
        return self._value(token, "field")

    def value_code(self, meta: Meta, token: Token) -> ast.Value:
        return self._value(token, "code")

    def value_date(self, meta: Meta, token: Token) -> ast.Value:
        return self._value(token, "date")

    def value_money(self, meta: Meta, token: Token) -> ast.Value:
        return self._value(token, "money")

    def value_text(self, meta: Meta, token: Token) -> ast.Value:
        return self._value(token, "text")

    # statements
    def only(self, meta: Meta, codes: ast.CodeList) -> ast.Only:
        return ast.Only(span=self._span(meta), codes=codes)

    def not_covered(self, meta: Meta, codes: ast.CodeList) -> ast.NotCovered:
        return ast.NotCovered(span=self._span(meta), codes=codes)

    def no_same_day(self, meta: Meta, *children: Any) -> ast.NoSameDay:
        lists = [c for c in children if isinstance(c, ast.CodeList)]
        unless = next((c for c in children if isinstance(c, tuple)), ())
        scope = next(c for c in children if isinstance(c, str))
        codes, other = (lists[0], lists[1]) if len(lists) == 2 else (None, lists[0])
        return ast.NoSameDay(span=self._span(meta), codes=codes, other=other, unless=unless, scope=scope)

    def only_with(self, meta: Meta, codes: ast.CodeList, other: ast.CodeList, scope: str) -> ast.OnlyWith:
        return ast.OnlyWith(span=self._span(meta), codes=codes, other=other, scope=scope)

    def requires_modifier(self, meta: Meta, modifiers: tuple[ast.Word, ...], codes: ast.CodeList,
                          other: ast.CodeList | None = None, scope: str = "day") -> ast.RequiresModifier:
        return ast.RequiresModifier(span=self._span(meta), modifiers=modifiers, codes=codes, other=other,
                                    scope=scope)

    def not_payable_by(self, meta: Meta, words: tuple[ast.Word, ...],
                       codes: ast.CodeList | None = None) -> ast.NotPayableBy:
        return ast.NotPayableBy(span=self._span(meta), credentials=words, codes=codes)

    def scope_day(self, meta: Meta) -> str:
        return "day"

    def unless(self, meta: Meta, keyword: Token, words: tuple[ast.Word, ...]) -> tuple[ast.Word, ...]:
        return words

    def max_amount(self, meta: Meta, amount: ast.Amount, *rest: Any) -> ast.MaxAmount:
        period = next((r for r in rest if isinstance(r, ast.Period)), None)
        codes = next((r for r in rest if isinstance(r, ast.CodeList)), None)
        if period is None:  # `max 50% of charge`: each line on its own
            period = ast.Period(span=amount.span, kind="line")
        return ast.MaxAmount(span=self._span(meta), amount=amount, period=period, codes=codes)

    def amount_money(self, meta: Meta, money: Token) -> ast.Amount:
        return ast.Amount(span=self._span(meta), money=self._money_or_name(money))

    def amount_percent(self, meta: Meta, percent: Token, money: Token) -> ast.Amount:
        return ast.Amount(span=self._span(meta), money=self._money_or_name(money), **self._share(percent))

    def amount_charge(self, meta: Meta, percent: Token) -> ast.Amount:
        return ast.Amount(span=self._span(meta), money=None, **self._share(percent))

    def _money_or_name(self, token: Token) -> ast.Money | ast.NameRef:
        return self._name_ref(token) if token.type == "WORD" else self._money(token)

    def _share(self, token: Token) -> dict[str, Any]:
        if token.type == "WORD":
            return {"percent": None, "share": self._name_ref(token)}
        return {"percent": Decimal(str(token)[:-1])}

    def _count(self, token: Token) -> ast.Code | ast.NameRef:
        if token.type == "WORD":
            return self._name_ref(token)
        return self._number(token)

    def _number(self, token: Token) -> ast.Code:
        return ast.Code(span=self._tspan(token), value=str(token))

    def max_units(self, meta: Meta, count: Token, *rest: Any) -> ast.MaxUnits:
        codes = rest[0] if len(rest) == 2 else None
        return ast.MaxUnits(span=self._span(meta), count=self._count(count), codes=codes, period=rest[-1])

    def max_visits(self, meta: Meta, count: Token, period: ast.Period,
                   codes: ast.CodeList | None = None) -> ast.MaxVisits:
        return ast.MaxVisits(span=self._span(meta), count=self._count(count), period=period, codes=codes)

    def max_minutes(self, meta: Meta, count: Token, period: ast.Period,
                    codes: ast.CodeList | None = None) -> ast.MaxMinutes:
        return ast.MaxMinutes(span=self._span(meta), count=self._count(count), period=period, codes=codes)

    def _period(self, meta: Meta, kind: str, **values: Any) -> ast.Period:
        return ast.Period(span=self._span(meta), kind=kind, **values)

    def per_unit(self, meta: Meta) -> ast.Period:
        return self._period(meta, "unit")

    def per_line(self, meta: Meta) -> ast.Period:
        return self._period(meta, "line")

    def per_session(self, meta: Meta) -> ast.Period:
        return self._period(meta, "session")

    def per_day(self, meta: Meta) -> ast.Period:
        return self._period(meta, "day")

    def per_week(self, meta: Meta) -> ast.Period:
        return self._period(meta, "week")

    def per_month(self, meta: Meta) -> ast.Period:
        return self._period(meta, "month")

    def per_year(self, meta: Meta) -> ast.Period:
        return self._period(meta, "year")

    def per_plan_year(self, meta: Meta, month: Token, day: Token) -> ast.Period:
        return self._period(meta, "plan_year", month=self._word(month), day=self._number(day))

    def per_days(self, meta: Meta, days: Token) -> ast.Period:
        return self._period(meta, "days", days=self._count(days))

    def per_lifetime(self, meta: Meta) -> ast.Period:
        return self._period(meta, "lifetime")

    def time_rule(self, meta: Meta, method: Token, codes: ast.CodeList) -> ast.TimeRule:
        return ast.TimeRule(span=self._span(meta), method=self._word(method), codes=codes)

    def one_of(self, meta: Meta, codes: ast.CodeList, scope: str,
               unless: tuple[ast.Word, ...] = ()) -> ast.OneOf:
        return ast.OneOf(span=self._span(meta), codes=codes, scope=scope, unless=unless)

    def bundled(self, meta: Meta, codes: ast.CodeList, other: ast.CodeList, scope: str = "day") -> ast.Bundled:
        return ast.Bundled(span=self._span(meta), codes=codes, other=other, scope=scope)

    def no_duplicate(self, meta: Meta, codes: ast.CodeList | None = None) -> ast.NoDuplicate:
        return ast.NoDuplicate(span=self._span(meta), codes=codes)

    def scope_session(self, meta: Meta) -> str:
        return "session"

    def of_codes(self, meta: Meta, codes: ast.CodeList) -> ast.CodeList:
        return codes

    def requires_prescription(self, meta: Meta, *children: Any) -> ast.RequiresPrescription:
        prescribers = next((c for c in children if isinstance(c, tuple)), ())
        codes = next((c for c in children if isinstance(c, ast.CodeList)), None)
        return ast.RequiresPrescription(span=self._span(meta), prescribers=prescribers, codes=codes)

    def prescribers(self, meta: Meta, words: tuple[ast.Word, ...]) -> tuple[ast.Word, ...]:
        return words

    def requires_diagnosis(self, meta: Meta, *children: Any) -> ast.RequiresDiagnosis:
        diagnoses = next((c for c in children if isinstance(c, ast.DiagnosisList)), None)
        codes = next((c for c in children if isinstance(c, ast.CodeList)), None)
        return ast.RequiresDiagnosis(span=self._span(meta), diagnoses=diagnoses, codes=codes)

    def requires_primary_diagnosis(self, meta: Meta, diagnoses: ast.DiagnosisList,
                                   codes: ast.CodeList | None = None) -> ast.RequiresDiagnosis:
        return ast.RequiresDiagnosis(span=self._span(meta), diagnoses=diagnoses, codes=codes, primary=True)

    def not_covered_diagnosis(self, meta: Meta, diagnoses: ast.DiagnosisList,
                              codes: ast.CodeList | None = None) -> ast.NotCoveredDiagnosis:
        return ast.NotCoveredDiagnosis(span=self._span(meta), diagnoses=diagnoses, codes=codes)

    def not_covered_primary_diagnosis(self, meta: Meta, diagnoses: ast.DiagnosisList,
                                      codes: ast.CodeList | None = None) -> ast.NotCoveredDiagnosis:
        return ast.NotCoveredDiagnosis(span=self._span(meta), diagnoses=diagnoses, codes=codes, primary=True)

    def diagnoses(self, meta: Meta, *items: ast.DiagnosisItem) -> ast.DiagnosisList:
        return ast.DiagnosisList(span=self._span(meta), items=items)

    def diagnosis(self, meta: Meta, token: Token) -> ast.Diagnosis:
        return ast.Diagnosis(span=self._tspan(token), value=str(token))

    def diagnosis_range(self, meta: Meta, low: Token, high: Token) -> ast.DiagnosisRange:
        return ast.DiagnosisRange(span=self._span(meta), low=self.diagnosis(meta, low),
                                  high=self.diagnosis(meta, high))

    def ncci_ptp(self, meta: Meta, files: tuple[ast.Word, ...]) -> ast.NcciPtp:
        return ast.NcciPtp(span=self._span(meta), files=files)

    def ncci_mue(self, meta: Meta, files: tuple[ast.Word, ...]) -> ast.NcciMue:
        return ast.NcciMue(span=self._span(meta), files=files)

    def table_files(self, meta: Meta, *tokens: Token) -> tuple[ast.Word, ...]:
        return tuple(self._word(t) for t in tokens)

    def requires_credential(self, meta: Meta, words: tuple[ast.Word, ...],
                            codes: ast.CodeList | None = None) -> ast.RequiresCredential:
        return ast.RequiresCredential(span=self._span(meta), credentials=words, codes=codes)

    # shared pieces
    def for_codes(self, meta: Meta, codes: ast.CodeList) -> ast.CodeList:
        return codes

    def codes(self, meta: Meta, *items: ast.CodeItem) -> ast.CodeList:
        return ast.CodeList(span=self._span(meta), items=items)

    def code(self, meta: Meta, token: Token) -> ast.Code:
        return ast.Code(span=self._tspan(token), value=str(token))

    def code_range(self, meta: Meta, low: Token, high: Token) -> ast.CodeRange:
        return ast.CodeRange(span=self._span(meta), low=self.code(meta, low), high=self.code(meta, high))

    def set_ref(self, meta: Meta, token: Token) -> ast.SetRef:
        return ast.SetRef(span=self._tspan(token), name=str(token))

    def word_list(self, meta: Meta, *tokens: Token) -> tuple[ast.Word, ...]:
        return tuple(self._word(t) for t in tokens)

    def _money(self, token: Token) -> ast.Money:
        amount = parse_money(str(token))
        if amount is None:
            raise _LineError(_error("E001",
                                    f"{quoted(str(token))} is not an amount; write it like `$45` or `$1,250.00`",
                                    self._tspan(token)))
        return ast.Money(span=self._tspan(token), amount=amount)
