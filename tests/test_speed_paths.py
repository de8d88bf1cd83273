"""The bulk path of `payrules check` → the same bytes as the result-object path it replaces:
writers fed straight from judged lines, the byte-level scan of plain CSV files, the worker
count from the environment, and the relaxed garbage collector."""

from __future__ import annotations

import gc
import io
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payrules import api, render
from payrules.judging import fewer_collections
from payrules.records import Columns, _CsvTable, _plain_runs, _row_runs, read_sessions, scan
from payrules.runner import Tally, judge_batch, judge_lines, policies_by_payer
from payrules.workers import WORKERS_ENVIRONMENT, worker_count
from strategies import RULES, csv_text, records


def _writers(out: io.StringIO, mask: render.Mask | None) -> list[render.Writer]:
    return [render.CsvWriter(out, mask=mask), render.JsonlWriter(out, mask=mask), render.JsonWriter(out, mask=mask),
            render.TextWriter(out, mask=mask), render.TextWriter(out, True, mask=mask)]


def _both_ways(text: str, mask: render.Mask | None) -> list[tuple[str, str]]:
    policies = policies_by_payer([api.compile_text(RULES).policy("ACME")])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sessions.csv"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        batch = read_sessions([path])
    outputs = []
    for kind in range(5):
        objects, direct = io.StringIO(), io.StringIO()
        old, new = _writers(objects, mask)[kind], _writers(direct, mask)[kind]
        block, judgement = judge_batch(batch, policies), judge_lines(batch, policies)
        old.block(block)
        new.judged(judgement)
        counted, tallied = Tally(), Tally()
        counted.add(block)
        tallied.add_judged(judgement)
        assert counted == tallied
        old.close(counted.summary())
        new.close(tallied.summary())
        outputs.append((objects.getvalue(), direct.getvalue()))
    return outputs


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=records(1, 10), masked=st.booleans())
def test_writing_from_judged_lines_gives_the_bytes_of_the_result_objects(rows: list[dict[str, str]],
                                                                          masked: bool) -> None:
    text = csv_text(rows, ["\n"])
    if "\ud800" <= max(text, default="") and any("\ud800" <= c <= "\udfff" for c in text):
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    mask = (lambda patient: f"masked-{len(patient)}") if masked else None
    for objects, direct in _both_ways(text, mask):
        assert direct == objects


_CELLS = ["P1", "P2", " P1", "P1 ", "", "  ", "S1", "S2", "é", "x" * 1_200]


@st.composite
def _plain_csv(draw: st.DrawFn) -> str:
    """A CSV file without quote characters: repeated and changing patients and sessions, blank
    and short rows, padded cells and fields over the length limit."""
    header = "session_id,patient_id,date,payer,provider_npi,provider_credential,code,modifiers,units,minutes," \
             "charge,diagnoses,prescription_by\n"
    rows = []
    for _ in range(draw(st.integers(0, 30))):
        shape = draw(st.sampled_from(["full", "full", "full", "blank", "short", "commas", "long"]))
        session, patient = draw(st.sampled_from(_CELLS)), draw(st.sampled_from(_CELLS))
        if shape == "blank":
            rows.append(draw(st.sampled_from(["", " ", ",,,,", " , ,"])))
        elif shape == "short":
            rows.append(f"{session},{patient}")
        elif shape == "commas":
            rows.append(f"{session},{patient},2024-05-06,ACME,,,,,,,,,,,extra")
        else:
            tail = "x" * 1_100 if shape == "long" else "MD"
            rows.append(f"{session},{patient},2024-05-06,ACME,1328719467,DC,97140,,1,15,40.00,M54.50,{tail}")
    return header + "".join(r + draw(st.sampled_from(["\n", "\r\n"])) for r in rows)


@settings(max_examples=300, deadline=None)
@given(text=_plain_csv())
def test_the_byte_scan_finds_the_runs_the_reader_finds(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sessions.csv"
        path.write_text(text, encoding="utf-8", newline="")
        table = _CsvTable(path, Columns())
        assert table.plain
        assert list(_plain_runs(table, str(path))) == list(_row_runs(table, str(path)))


def test_the_byte_scan_is_used_for_plain_files_and_keeps_the_parts(tmp_path: Path) -> None:
    rows = [f"S{p}-{v},P{p},2024-05-0{v + 1},ACME,1328719467,DC,97140,,1,15,40.00,M54.50,MD"
            for p in range(300) for v in range(3)]
    path = tmp_path / "sessions.csv"
    path.write_text("session_id,patient_id,date,payer,provider_npi,provider_credential,code,modifiers,units,"
                    "minutes,charge,diagnoses,prescription_by\n" + "\n".join(rows) + "\n", encoding="utf-8")
    found = scan([path], part_lines=100)
    assert found.grouped and found.lines == 900
    assert [part.lines for part in found.parts] == [102] * 8 + [84]
    data = path.read_bytes()
    assert all(data[part.start:part.end].count(b"\n") == part.lines for part in found.parts)


@pytest.mark.parametrize(("value", "expected"), [("1", 1), ("", 2), ("two", 2), ("0", 2), ("5", 2)])
def test_the_worker_count_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str,
                                                  expected: int) -> None:
    monkeypatch.setenv(WORKERS_ENVIRONMENT, value)
    monkeypatch.setattr("payrules.workers.cpu_count", lambda: 2)
    run = api.CheckRun([], {}, None, api.Scan(lines=200_000, grouped=True, parts=(object(),) * 5))  # type: ignore[arg-type]
    assert worker_count(run) == expected


def test_collections_are_relaxed_once_and_restored() -> None:
    before = gc.get_threshold()
    with fewer_collections():
        relaxed = gc.get_threshold()
        with fewer_collections():
            assert gc.get_threshold() == relaxed
        assert gc.get_threshold() == relaxed
    assert relaxed != before and gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
