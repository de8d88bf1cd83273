"""The parser lark builds from the grammar is kept in payrules' cache folder: a run starts by
loading it instead of building it again, and a missing, damaged or stale file is rebuilt."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
from lark import Lark

from payrules import compiler, parser
from payrules.source import Source


@pytest.fixture
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv(compiler.CACHE_DIR_ENV, str(tmp_path))
    parser._lark.cache_clear()
    parser._layout_lark.cache_clear()
    yield tmp_path
    parser._lark.cache_clear()
    parser._layout_lark.cache_clear()


def parses() -> bool:
    module, problems = parser.parse(Source("t.payer", "payer T\nonly 97140\n"))
    return not problems and len(module.rules) == 1


def test_the_built_parser_is_kept_and_loaded_by_the_next_run(fresh: Path) -> None:
    assert parses()
    (kept,) = fresh.glob("grammar-rules-*.lark")
    parser._lark.cache_clear()
    with mock.patch.object(Lark, "_load", autospec=True, side_effect=Lark._load) as loaded:
        assert parses()
    assert loaded.call_count == 1


def test_a_damaged_file_is_built_again(fresh: Path) -> None:
    assert parses()
    (kept,) = fresh.glob("grammar-rules-*.lark")
    kept.write_bytes(b"not a parser")
    parser._lark.cache_clear()
    assert parses()
    assert kept.read_bytes() != b"not a parser"


def test_another_grammar_gets_another_file(fresh: Path) -> None:
    first = parser._grammar_cache(parser.grammar_text(), "rules")
    other = parser._grammar_cache(parser.grammar_text() + "\n// another version\n", "rules")
    assert isinstance(first, str) and isinstance(other, str) and first != other


def test_no_file_when_caching_is_off_or_the_folder_cannot_be_made(fresh: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(compiler.NO_CACHE_ENV, "1")
    assert parser._grammar_cache(parser.grammar_text(), "rules") is False
    assert parses()
    monkeypatch.delenv(compiler.NO_CACHE_ENV)
    blocker = fresh / "file"
    blocker.write_text("")
    monkeypatch.setenv(compiler.CACHE_DIR_ENV, str(blocker / "cache"))
    assert parser._grammar_cache(parser.grammar_text(), "rules") is False
    parser._lark.cache_clear()
    assert parses()
    assert not list(fresh.glob("grammar-*"))
