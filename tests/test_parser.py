"""Grammar and AST: the four core statements parse exactly as written and mean what they say."""

from __future__ import annotations

from decimal import Decimal

import attrs
import pytest
from syrupy.assertion import SnapshotAssertion

from payrules import ast
from payrules.parser import parse
from payrules.source import Source, Span


def parse_ok(text: str) -> ast.Module:
    module, diagnostics = parse(Source("test.payer", text))
    assert diagnostics == []
    return module


def only_rule(text: str) -> ast.Rule:
    (rule,) = parse_ok(f"payer T\n{text}\n").rules
    return rule


def dump(node: object) -> object:
    """The AST as nested dicts named by node class, spans as `line:column-end` (readable in snapshots)."""
    if isinstance(node, Span):
        return f"{node.line}:{node.column}-{node.column + node.end - node.start}"
    if attrs.has(type(node)):
        fields = {f.name: dump(getattr(node, f.name)) for f in attrs.fields(type(node))}
        return {"node": type(node).__name__, **fields}
    if isinstance(node, tuple):
        return [dump(item) for item in node]
    if isinstance(node, Decimal):
        return str(node)
    return node


def test_core_statements_ast(snapshot: SnapshotAssertion) -> None:
    module = parse_ok(
        'payer ASH "American Specialty Health (example)"\n'
        "only 97140\n"
        "max $45 per session\n"
        "no same day as 98940-98943\n"
        "requires DC NPI\n"
    )
    assert snapshot == dump(module)


def test_only_holds_codes_ranges_and_sets() -> None:
    rule = only_rule("only 97140, 0042T, S8990-S8999, massage")
    assert isinstance(rule.statement, ast.Only)
    items = rule.statement.codes.items
    assert [type(i).__name__ for i in items] == ["Code", "Code", "CodeRange", "SetRef"]
    assert isinstance(items[2], ast.CodeRange) and (items[2].low.value, items[2].high.value) == ("S8990", "S8999")


def test_no_same_day_names_restricted_codes_and_exception() -> None:
    rule = only_rule("no 97124, 97140 same day as 98940-98943 unless modifier 59 or XS")
    statement = rule.statement
    assert isinstance(statement, ast.NoSameDay)
    assert statement.codes is not None and statement.codes.span.text == "97124, 97140"
    assert statement.other.span.text == "98940-98943"
    assert [w.value for w in statement.unless] == ["59", "XS"]


def test_no_same_day_without_restricted_codes() -> None:
    statement = only_rule("no same day as 98940-98943").statement
    assert isinstance(statement, ast.NoSameDay) and statement.codes is None


def test_money_with_cents_and_thousands() -> None:
    statement = only_rule("max $1,250.50 per session").statement
    assert isinstance(statement, ast.MaxAmount) and statement.amount.money is not None
    assert str(statement.amount.money.amount) == "1250.50"
    assert statement.period.kind == "session"


def test_requires_several_credentials_for_codes() -> None:
    statement = only_rule("requires DC, PT or MD NPI for 97124").statement
    assert isinstance(statement, ast.RequiresCredential)
    assert [w.value for w in statement.credentials] == ["DC", "PT", "MD"]
    assert statement.codes is not None and statement.codes.span.text == "97124"


def test_keywords_are_case_insensitive() -> None:
    assert isinstance(only_rule("ONLY 97140").statement, ast.Only)
    assert isinstance(only_rule("Max $45 Per Session").statement, ast.MaxAmount)


def test_rule_names_reason_codes_and_comments() -> None:
    rule = only_rule('"Summit\'s \\"cap\\"": max $45 per session carc 119 rarc N130  # from the manual')
    assert rule.name is not None and rule.name.value == 'Summit\'s "cap"'
    assert rule.carc is not None and rule.carc.value == "119"
    assert rule.rarc is not None and rule.rarc.value == "N130"
    assert rule.text == "max $45 per session"


@pytest.mark.parametrize("text, line, column", [
    ("payer T\nonly 97140\n", 2, 1),
    ("payer T\n\n# comment\n   max $45 per session\n", 4, 4),
])
def test_spans_are_file_positions(text: str, line: int, column: int) -> None:
    (rule,) = parse_ok(text).rules
    assert (rule.span.line, rule.span.column, rule.span.file) == (line, column, "test.payer")


def test_header_gives_payer_id_and_display_name() -> None:
    module = parse_ok('payer 87726 "Numeric payer id"\nonly 97140\n')
    assert module.header is not None
    assert module.header.payer_id.value == "87726"
    assert module.header.display_name is not None and module.header.display_name.value == "Numeric payer id"
