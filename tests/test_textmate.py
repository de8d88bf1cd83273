"""grammar/payer.tmLanguage.json against grammar/rules.lark: the same keywords, a scope for every
terminal, and every shipped rule file highlighted without an unmatched character."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
LARK = (ROOT / "grammar" / "rules.lark").read_text(encoding="utf-8")
GRAMMAR: dict[str, Any] = json.loads((ROOT / "grammar" / "payer.tmLanguage.json").read_text(encoding="utf-8"))
RULE_FILES = sorted([*(ROOT / "stdlib_rules").glob("*.payer"), *(ROOT / "examples").rglob("*.payer")])

TERMINAL_SCOPES = {
    "CODE": "constant.numeric.code.payer",
    "WORD": "variable.other.payer",
    "MONEY": "constant.numeric.money.payer",
    "PERCENT": "constant.numeric.percent.payer",
    "DATE": "constant.other.date.payer",
    "DIAGNOSIS": "constant.other.diagnosis.payer",
    "STRING": "string.quoted.double.payer",
    "COMMENT": "comment.line.number-sign.payer",
    "OVERRIDE": "storage.modifier.override.payer",
    "UNLESS_MODIFIER": "keyword.other.payer",
    "NOT_IN": "keyword.other.payer",
    "SHIFT": "keyword.operator.comparison.payer",
}
"""The scope each named terminal of rules.lark is highlighted with."""


def lark_keywords() -> set[str]:
    """The anonymous string terminals of rules.lark (`"payer"i`), and named terminals that are one word."""
    words = {w.lower() for w in re.findall(r'"([A-Za-z]+)"i?', LARK)}
    words |= {w.lower() for w in re.findall(r'^[A-Z_]+(?:\.\d+)?:\s*"([A-Za-z]+)"i?\s*$', LARK, re.MULTILINE)}
    return words


def lark_terminals() -> set[str]:
    return set(re.findall(r"^([A-Z_]+)(?:\.\d+)?:", LARK, re.MULTILINE))


def scopes(node: Any) -> set[str]:
    """Every scope name used anywhere in the grammar."""
    found: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("name"), str) and "." in node["name"]:
            found.add(node["name"])
        for value in node.values():
            found |= scopes(value)
    elif isinstance(node, list):
        for value in node:
            found |= scopes(value)
    return found


def keyword_pattern() -> str:
    pattern: str = GRAMMAR["repository"]["keyword"]["match"]
    return pattern


def test_grammar_names_the_payer_files() -> None:
    assert GRAMMAR["scopeName"] == "source.payer" and GRAMMAR["fileTypes"] == ["payer"]


def test_every_lark_keyword_is_highlighted_as_a_keyword_and_no_other_word_is() -> None:
    alternatives = re.search(r"\(\?:([a-z|]+)\)", keyword_pattern())
    assert alternatives is not None
    assert set(alternatives.group(1).split("|")) == lark_keywords()
    for word in lark_keywords():
        assert re.fullmatch(keyword_pattern(), word) and re.fullmatch(keyword_pattern(), word.upper()), word


def test_every_named_terminal_has_a_scope_in_the_grammar() -> None:
    assert lark_terminals() == set(TERMINAL_SCOPES)
    assert set(TERMINAL_SCOPES.values()) <= scopes(GRAMMAR)


def test_patterns_keep_to_what_oniguruma_and_python_share() -> None:
    """Every pattern compiles with Python's `re` and uses no construct only one of them has."""
    def patterns(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node[k] for k in ("match", "begin", "end") if isinstance(node.get(k), str)]
            return own + [p for v in node.values() for p in patterns(v)]
        return [p for v in node for p in patterns(v)] if isinstance(node, list) else []

    found = patterns(GRAMMAR)
    assert len(found) > 15
    for pattern in found:
        re.compile(pattern)
        assert not re.search(r"\\[hHAzZGK]|\(\?<[=!]|\(\?>|[*+?]\+|\\p\{|\(\?P", pattern), pattern


# --- a small TextMate tokenizer: the leftmost match wins, ties go to the earlier pattern -----------


def _resolve(patterns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in patterns:
        if "include" in p:
            out += _resolve([GRAMMAR["repository"][p["include"][1:]]])
        elif "patterns" in p and "match" not in p and "begin" not in p:
            out += _resolve(p["patterns"])
        else:
            out.append(p)
    return out


def _captured(match: re.Match[str], rule: dict[str, Any], key: str) -> list[tuple[str, str]]:
    tokens = []
    for group, capture in sorted(rule.get(key, {}).items(), key=lambda item: int(item[0])):
        if match.group(int(group)):
            tokens.append((match.group(int(group)), capture["name"]))
    return tokens if rule.get(key) else [(match.group(), rule.get("name", "?"))]


def tokenize(line: str) -> list[tuple[str, str]]:
    """(text, scope) for every token of one line; text matched by no pattern gets scope `UNMATCHED`."""
    tokens: list[tuple[str, str]] = []
    stack: list[dict[str, Any]] = []
    pos = 0
    while pos < len(line):
        candidates = _resolve(stack[-1].get("patterns", [])) if stack else _resolve(GRAMMAR["patterns"])
        best: tuple[int, int, re.Match[str], dict[str, Any]] | None = None
        if stack:
            end = re.compile(stack[-1]["end"]).search(line, pos)
            if end:
                best = (end.start(), -1, end, {"end": True})
        for order, rule in enumerate(candidates):
            found = re.compile(rule.get("match") or rule["begin"]).search(line, pos)
            if found and (best is None or found.start() < best[0]):
                best = (found.start(), order, found, rule)
        if best is None:
            gap, pos = line[pos:], len(line)
        else:
            gap, pos = line[pos:best[0]], best[2].end()
        if gap.strip():
            # inside a begin/end region, text no inner pattern matches takes the region's scope
            region = stack[-1].get("contentName") or stack[-1].get("name") if stack else None
            tokens.append((gap.strip(), region or "UNMATCHED"))
        if best is None:
            break
        _, _, match, rule = best
        if rule.get("end") is True:
            if match.group():
                tokens.append((match.group(), stack[-1].get("name", "?")))
            stack.pop()
        elif "begin" in rule:
            tokens += _captured(match, rule, "beginCaptures")
            stack.append(rule)
        else:
            tokens += _captured(match, rule, "captures")
        if match.end() == match.start() and rule.get("end") is not True and "begin" not in rule:
            pos += 1  # an empty match must not stall the scan
    return [(text, scope) for text, scope in tokens if text.strip()]


def test_shipped_rule_files_exist() -> None:
    assert len(RULE_FILES) >= 15


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_rule_file_is_highlighted_without_an_unmatched_token(path: Path) -> None:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        unmatched = [text for text, scope in tokenize(line) if scope == "UNMATCHED"]
        assert unmatched == [], f"{path.name}:{number}: {line}"


TOKENIZED = {
    'payer ACME "Acme Health" effective from 2024-01-01  # note': [
        ("payer", "keyword.other.payer"), ("ACME", "variable.other.payer"), ('"', "string.quoted.double.payer"),
        ("Acme Health", "string.quoted.double.payer"), ('"', "string.quoted.double.payer"), ("effective", "keyword.other.payer"),
        ("from", "keyword.other.payer"), ("2024-01-01", "constant.other.date.payer"),
        ("# note", "comment.line.number-sign.payer")],
    "set massage = 97124, 97140": [
        ("set", "keyword.other.payer"), ("massage", "entity.name.type.set.payer"),
        ("=", "keyword.operator.assignment.payer"), ("97124", "constant.numeric.code.payer"),
        (",", "punctuation.separator.comma.payer"), ("97140", "constant.numeric.code.payer")],
    "override session-cap: max 75% of $60 per session for massage carc 119": [
        ("override", "storage.modifier.override.payer"), ("session-cap", "entity.name.function.rule.payer"),
        (":", "punctuation.separator.key-value.payer"), ("max", "keyword.other.payer"),
        ("75%", "constant.numeric.percent.payer"), ("of", "keyword.other.payer"),
        ("$60", "constant.numeric.money.payer"), ("per", "keyword.other.payer"), ("session", "keyword.other.payer"),
        ("for", "keyword.other.payer"), ("massage", "variable.other.payer"), ("carc", "keyword.other.payer"),
        ("119", "constant.numeric.integer.payer")],
    "requires modifier 59 or XS on 97124 with 98940-98942 same day": [
        ("requires", "keyword.other.payer"), ("modifier", "keyword.other.payer"),
        ("59", "constant.other.modifier.payer"), ("or", "keyword.other.payer"),
        ("XS", "constant.other.modifier.payer"), ("on", "keyword.other.payer"),
        ("97124", "constant.numeric.code.payer"), ("with", "keyword.other.payer"),
        ("98940-98942", "constant.numeric.code-range.payer"), ("same", "keyword.other.payer"),
        ("day", "keyword.other.payer")],
    "requires DC or PT NPI for S8990": [
        ("requires", "keyword.other.payer"), ("DC", "support.constant.credential.payer"),
        ("or", "keyword.other.payer"), ("PT", "support.constant.credential.payer"), ("NPI", "keyword.other.payer"),
        ("for", "keyword.other.payer"), ("S8990", "constant.numeric.code.payer")],
    "requires diagnosis M54.5*, S13.4XXA for 97140": [
        ("requires", "keyword.other.payer"), ("diagnosis", "keyword.other.payer"),
        ("M54.5*", "constant.other.diagnosis.payer"), (",", "punctuation.separator.comma.payer"),
        ("S13.4XXA", "constant.other.diagnosis.payer"), ("for", "keyword.other.payer"),
        ("97140", "constant.numeric.code.payer")],
}


@pytest.mark.parametrize("line", TOKENIZED)
def test_tokens_get_their_scopes(line: str) -> None:
    assert tokenize(line) == TOKENIZED[line]
