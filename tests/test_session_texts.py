"""`Writer.session_texts`: what `judged` writes, a text per session, for output merged back
session by session from buckets judged apart."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from payrules import api, render
from payrules.records import read_blocks
from payrules.runner import Judgement, judge_lines

from conftest import EXAMPLES

WRITERS = {
    "text": lambda out, keep: render.TextWriter(out, keep=keep),
    "json": lambda out, keep: render.JsonWriter(out, keep=keep),
    "jsonl": lambda out, keep: render.JsonlWriter(out, keep=keep),
    "csv": lambda out, keep: render.CsvWriter(out, keep=keep),
}


@pytest.mark.parametrize("name", sorted(WRITERS))
@pytest.mark.parametrize("example", ["messy-export", "visit-limits", "chiro-clinic"])
def test_the_texts_of_the_sessions_are_what_judged_writes(name: str, example: str) -> None:
    folder = EXAMPLES / example
    sessions = next(folder.glob("sessions.csv"), None) or folder / "export.csv"
    columns = api.Columns.load(folder / "columns.toml", ()) if (folder / "columns.toml").exists() else None
    run = api.start_check([sessions], folder / "rules.payer", columns)
    judged = [judge_lines(batch, run.policies, run.history) for batch in read_blocks([sessions], run.columns)]
    assert sum(len(j.sessions) for j in judged) > 1
    for keep in ((), ("session_id",)):
        whole = WRITERS[name](io.StringIO(), keep).continuation(io.StringIO())
        apart = WRITERS[name](io.StringIO(), keep).continuation(io.StringIO())
        texts = []
        for judgement in judged:
            whole.judged(Judgement(judgement.sessions, (), 0))
            texts += apart.session_texts(judgement)
        assert len(texts) == sum(len(j.sessions) for j in judged)
        assert "".join(texts) == whole.out.getvalue()
        assert apart.out.getvalue() == ""  # nothing written by the writer itself
