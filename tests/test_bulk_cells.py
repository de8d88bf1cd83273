"""The bulk writers' own ways to the bytes of the general ones: CSV cells quoted without the
`csv` module, and a line's reasons rendered once per policy by their keys."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payrules import api
from payrules.records import read_sessions
from payrules.render import CsvWriter, JsonlWriter, JsonWriter, TextWriter, Writer, _csv_cells, _quoted_cells
from payrules.runner import judge_batch, judge_lines, policies_by_payer, reason_key
from strategies import RULES

_CELLS = st.lists(st.text(alphabet=st.sampled_from(['a', '1', ' ', ',', '"', '\r', '\n', '\t', '=', "'", 'é',
                                                    '\u2028', '\ud800', '\x00']), max_size=6),
                  min_size=1, max_size=5)


@settings(max_examples=800, deadline=None)
@given(cells=_CELLS)
def test_cells_are_quoted_as_the_csv_module_quotes_them(cells: list[str]) -> None:
    assert _quoted_cells(*cells) == _csv_cells(*cells)


def test_empty_cells_stay_empty_and_quotes_are_doubled() -> None:
    assert _quoted_cells("") == _csv_cells("") == ""
    assert _quoted_cells("", "") == _csv_cells("", "") == ","
    assert _quoted_cells('a "b", c', "d") == _csv_cells('a "b", c', "d") == '"a ""b"", c",d'


# --- reasons rendered once per policy by their keys --------------------------------------------

_SESSIONS = """session_id,patient_id,date,payer,provider_npi,provider_credential,code,modifiers,units,charge
S1,P1,2024-05-06,ACME,1328719467,DC,98940,,1,40.00
S1,P1,2024-05-06,ACME,1328719467,DC,97140,,2,60.00
S2,P1,2024-05-06,ACME,1764203810,LMT,97124,,1,45.00
S3,P2,2024-05-06,ACME,1328719467,DC,98940,,1,40.00
S3,P2,2024-05-06,ACME,1328719467,DC,97140,,2,60.00
S4,P2,2024-05-07,ACME,1328719467,DC,97140,,2,60.00
S4,P2,2024-05-07,ACME,1328719467,DC,97140,59,1,"1,070.00"
S5,P3,2024-05-06,ACME,1328719467,DC,97110,,1,"=1+1"
S6,P3,2024-05-06,ACME,1328719467,DC,97110,,1,40.00
S6,P3,2024-05-06,ACME,1328719467,DC,97124,,1,45.00
S7,P4,2024-05-07,ACME,1328719467,DC,97140,,1,60.00
S7,P4,2024-05-07,ACME,1328719467,DC,97140,,1,60.00
S8,P5,2024-05-08,ACME,1764203810,LMT,97140,,1,60.00
S8,P5,2024-05-08,ACME,1764203810,LMT,97140,,1,60.00
S9,P6,2024-05-06,ACME,1328719467,DC,97010,,1,40.00
S10,P6,2024-05-09,ACME,1328719467,DC,97010,,1,40.00
"""


def _writer(kind: str, out: io.StringIO) -> Writer:
    return {"csv": CsvWriter, "jsonl": JsonlWriter, "json": JsonWriter, "text": TextWriter}[kind](out)


@pytest.mark.parametrize("kind", ["csv", "jsonl", "json", "text"])
def test_reasons_rendered_by_their_keys_are_those_of_the_result_objects(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "sessions.csv"
    path.write_text(_SESSIONS, encoding="utf-8")
    policy = api.compile_text(RULES).policy("ACME")
    policies = policies_by_payer([policy])
    batch = read_sessions([path])
    policy.reason_cache.clear()
    policy.rendered.clear()
    written = []
    for _ in range(2):  # the second time from the cache alone
        objects, direct = io.StringIO(), io.StringIO()
        _writer(kind, objects).block(judge_batch(batch, policies))
        _writer(kind, direct).judged(judge_lines(batch, policies))
        assert direct.getvalue() == objects.getvalue()
        written.append(direct.getvalue())
    assert written[0] == written[1]
    # Equal reasons are rendered once (the reductions of S7 and S8, the denials of S9 and S10);
    # the same-day denials of S1 and S3 share codes and charges but cite other sessions.
    form = "csv" if kind == "csv" else "text" if kind == "text" else "json"
    rendered = policy.rendered[form]
    lines = [(line, found) for _, _, judged in judge_lines(batch, policies).sessions
             for line, _, _, found, _ in judged if found]
    keys = {reason_key(policy, line, found) for line, found in lines}
    assert len(rendered) == len(keys) == len(lines) - 2
