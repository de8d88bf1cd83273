"""Compiled rules are cached by source text and payrules version, and never served stale."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import line, outcomes, run_policy

from payrules import compiler
from payrules.source import Source

TEXT = "payer T\nonly 97140\n"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(compiler.CACHE_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(compiler, "_compiled", {})
    return tmp_path


def forbid_compiling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parsing and linking still run on a cache hit (they find what the key is made of);
    checking and code generation are what the cache saves."""
    def refuse(*args: object) -> None:
        raise AssertionError("the rule file was compiled again")

    monkeypatch.setattr(compiler, "check", refuse)
    monkeypatch.setattr(compiler, "generate", refuse)


def test_unchanged_rules_are_not_recompiled(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = compiler.compile_source(Source("t.payer", TEXT))
    assert len(list(cache.glob("*.marshal"))) == 1
    monkeypatch.setattr(compiler, "_compiled", {})  # a new run: only the disk cache is left
    forbid_compiling(monkeypatch)
    again = compiler.compile_source(Source("t.payer", TEXT))
    assert again.python == first.python and again.rules == first.rules


def test_a_changed_file_is_never_served_stale(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compiler.compile_source(Source("t.payer", TEXT))
    changed = compiler.compile_source(Source("t.payer", TEXT.replace("97140", "97124")))
    assert changed.rules[0].text == "only 97124"
    renamed = compiler.compile_source(Source("u.payer", TEXT))
    assert renamed.source == "u.payer"
    monkeypatch.setattr(compiler, "compiler_fingerprint", lambda: "a changed payrules")
    forbid_compiling(monkeypatch)
    with pytest.raises(AssertionError, match="compiled again"):
        compiler.compile_source(Source("t.payer", TEXT))


def test_a_damaged_cache_file_is_ignored(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compiler.compile_source(Source("t.payer", TEXT))
    (entry,) = cache.glob("*.marshal")
    entry.write_bytes(b"not marshal data")
    monkeypatch.setattr(compiler, "_compiled", {})
    assert compiler.compile_source(Source("t.payer", TEXT)).rules[0].text == "only 97140"


def test_an_unwritable_cache_does_not_stop_a_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(compiler.CACHE_DIR_ENV, str(blocker / "cache"))
    monkeypatch.setattr(compiler, "_compiled", {})
    assert compiler.compile_source(Source("t.payer", TEXT)).payer_id == "T"


def test_caching_can_be_turned_off(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(compiler.NO_CACHE_ENV, "1")
    compiler.compile_source(Source("t.payer", TEXT))
    assert not list(cache.glob("*.marshal"))


def decision(rules: Path) -> str:
    """The decision on one 97124 line under `rules`, compiled as a new run would (disk cache only)."""
    compiler._compiled.clear()
    policy = compiler.compile_file(rules)
    ((_, status, _),) = outcomes(run_policy(policy, line("97124", "40.00")))
    return status


@pytest.mark.parametrize("include_line", [
    'include "sets"',
    'include"sets"',
    '\finclude "sets"',
    'include "s\\ets"',
    'INCLUDE  "sets"  # shared codes',
    'override-free: only 97124, 97140\ninclude "sets"',
], ids=["plain", "no-space", "form-feed", "escape", "capitals-and-comment", "after-a-rule"])
def test_an_edited_included_file_is_never_served_stale(include_line: str, tmp_path: Path, cache: Path) -> None:
    rules = tmp_path / "main.payer"
    rules.write_text(f"payer T\n{include_line}\n")
    included = tmp_path / "sets.payer"
    included.write_text("only 97140\n")
    assert decision(rules) == "denied"
    assert list(cache.glob("*.marshal"))
    included.write_text("only 97124\n")
    assert decision(rules) == "paid"


def test_an_edited_file_included_through_another_is_never_served_stale(tmp_path: Path, cache: Path) -> None:
    rules = tmp_path / "main.payer"
    rules.write_text('payer T\ninclude "middle"\n')
    (tmp_path / "middle.payer").write_text('include"deep/sets"\n')
    (tmp_path / "deep").mkdir()
    deepest = tmp_path / "deep" / "sets.payer"
    deepest.write_text("only 97140\n")
    assert decision(rules) == "denied"
    deepest.write_text("only 97124\n")
    assert decision(rules) == "paid"


def test_the_key_is_made_of_every_file_the_compiler_read(tmp_path: Path) -> None:
    (tmp_path / "sets.payer").write_text("only 97140\n")
    source = Source(str(tmp_path / "main.payer"), 'payer T\ninclude"s\\ets"\n')
    linked = compiler._link(source)
    assert [Path(s.name).name for s in linked.read] == ["main.payer", "sets.payer"]
    assert compiler.cache_key(linked.read) != compiler.cache_key(linked.read[:1])
