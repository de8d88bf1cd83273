"""`Writer.session_texts`: what `judged` writes, a text per session, for output merged back
session by session from buckets judged apart; and reasons written as JSON from their rules'
JSON, as `json.dumps` writes them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payrules import api, render
from payrules.records import read_blocks
from payrules.runner import Judgement, Told, judge_lines
from payrules.runtime import RuleInfo

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


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30) | st.sampled_from(["", "a \"quoted\" \\ text", "é\u2028\x00"])


@settings(max_examples=300, deadline=None)
@given(name=st.none() | _TEXT, text=_TEXT, message=_TEXT, line=st.integers(0, 99), column=st.integers(0, 9),
       rarc=st.none() | _TEXT, source=st.none() | _TEXT, amount=st.integers(-10 ** 9, 10 ** 9))
def test_reasons_as_json_are_what_json_dumps_writes(name: str | None, text: str, message: str, line: int,
                                                    column: int, rarc: str | None, source: str | None,
                                                    amount: int) -> None:
    rule = RuleInfo(position=0, name=name, kind="only", file="r.payer", line=line, column=column, text=text,
                    severity="deny", carc="204", rarc=rarc, params=(), source=source)
    told = Told(name, "deny", "204", rarc, text, "r.payer:1", message, amount, rule)
    assert render._told_json((told, told)) == json.dumps([told.to_dict(), told.to_dict()])
