"""Rule file text → the same rules in one canonical layout.

Each line is re-printed from its parse tree: keywords in lower case (`NPI` in capitals),
credentials, modifiers and diagnoses in capitals, one space between words, `, ` in lists,
`: ` after a rule name, two spaces before a trailing comment. Code lists are sorted (set names
first, in the order written, then codes by number) and codes that touch or overlap are merged
into ranges (three or more consecutive codes become a range). Comment lines are kept, runs of
blank lines become one, and the file ends with one newline. Only files without errors are
formatted, so the layout never changes what a file means.
"""

from __future__ import annotations

from typing import Any

from payrules.diagnosis_sets import DIAGNOSIS_PATTERN_RE
from payrules.domain import code_family, code_number
from payrules.parser import layout_tree, procedure_shaped

_KEEP_CASE = {"WORD", "STRING", "MONEY", "DATE", "PERCENT", "COMMENT"}
_CAPITALS = {"CODE", "DIAGNOSIS"}
_NO_SPACE_BEFORE = {",", ":", ")", "/"}
_NO_SPACE_AFTER = {"(", "/"}


def format_text(text: str) -> str:
    """The canonical layout of a rule file that has no errors (check it first)."""
    out: list[str] = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        stripped = raw.strip()
        if not stripped:
            if out and out[-1] != "":
                out.append("")
            continue
        out.append(stripped if stripped.startswith("#") else _format_line(stripped))
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n" if out else ""


def _format_line(text: str) -> str:
    tree: Any = layout_tree(text)
    comment = None
    parts: list[str] = []
    for child in tree.children:
        if _is_token(child) and child.type == "COMMENT":
            comment = child.strip()
        else:
            parts.append(_join(_words(child, in_list=False)))
    line = " ".join(p for p in parts if p)
    return f"{line}  {comment}" if line and comment else comment or line


def _words(node: Any, in_list: bool) -> list[str]:
    """The words of a subtree, with punctuation as separate items."""
    if _is_token(node):
        return [_token(node, in_list)]
    if node.data == "codes" or (node.data == "set_items" and not _holds_diagnoses(node)):
        return [_code_list(node)]
    if node.data in ("diagnosis_range", "set_range"):
        return ["-".join(_token(t, in_list) for t in node.children if _is_token(t) and t.type == "DIAGNOSIS")]
    if node.data in ("word_list", "reason_code"):
        return [w for child in node.children for w in _words(child, in_list=True)]
    return [w for child in node.children for w in _words(child, in_list)]


def _is_token(node: Any) -> bool:
    return isinstance(node, str)


def _holds_diagnoses(node: Any) -> bool:
    """Whether a set's items are diagnoses: an item not shaped like a procedure code."""
    return any(_is_token(t) and t.type == "DIAGNOSIS" and not procedure_shaped(t)
               for item in node.children if not _is_token(item) for t in item.children)


def _token(token: Any, in_list: bool) -> str:
    value = str(token)
    if token.type == "DIAGNOSIS" and not (DIAGNOSIS_PATTERN_RE.match(value.upper()) or procedure_shaped(value)):
        return value  # a set name shaped like a diagnosis (`l5`) keeps its case
    if token.type in _CAPITALS or (in_list and token.type == "WORD"):
        return value.upper()
    if token.type in _KEEP_CASE:
        return value
    if token.type in ("UNLESS_MODIFIER", "NOT_IN"):  # two words read as one token
        return " ".join(value.lower().split())
    return "NPI" if value.lower() == "npi" else value.lower()


def _join(words: list[str]) -> str:
    out = ""
    for word in words:
        if out and word not in _NO_SPACE_BEFORE and out[-1] not in _NO_SPACE_AFTER:
            out += " "
        out += word
    return out


def _code_list(node: Any) -> str:
    """Set names in the order written (once each), then codes sorted with ranges merged."""
    names: list[str] = []
    spans: list[tuple[str, int, int, str, str]] = []  # (family, low, high, low code, high code)
    for item in node.children:
        if _is_token(item):
            continue  # a comma
        tokens = [t for t in item.children if _is_token(t) and t.type in _CAPITALS]
        if item.data == "set_ref":
            name = str(item.children[0])
            if name not in names:
                names.append(name)
            continue
        low, high = tokens[0].upper(), tokens[-1].upper()
        spans.append((code_family(low), code_number(low), code_number(high), low, high))
    merged: list[list[Any]] = []
    for family, lo, hi, low, high in sorted(spans):
        last = merged[-1] if merged else None
        if last is not None and last[0] == family and lo <= last[2] + 1:
            if hi > last[2]:
                last[2], last[4] = hi, high
        else:
            merged.append([family, lo, hi, low, high])
    codes: list[str] = []
    for family, lo, hi, low, high in merged:
        if hi == lo:
            codes.append(low)
        elif hi == lo + 1:
            codes += [low, high]
        else:
            codes.append(f"{low}-{high}")
    return ", ".join(names + codes)
