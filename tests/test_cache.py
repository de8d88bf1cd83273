"""Compiled rules are cached by source text and payrules version, and never served stale."""

from __future__ import annotations

from pathlib import Path

import pytest

from payrules import compiler
from payrules.source import Source

TEXT = "payer T\nonly 97140\n"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(compiler.CACHE_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(compiler, "_compiled", {})
    return tmp_path


def forbid_compiling(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("the rule file was compiled again")

    monkeypatch.setattr(compiler, "parse", refuse)


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
