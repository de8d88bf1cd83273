"""The block reader of plain CSV files → the records the row-by-row reader gives: the same
values, rows, problems and errors, whatever the block size."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payrules import records
from payrules.diagnostics import InputError
from payrules.records import Columns, _csv_records, _CsvTable, scan
from payrules.runtime import Origin

HEADER = ("session_id,patient_id,date,payer,provider_npi,provider_credential,code,modifiers,units,minutes,"
          "charge,diagnoses,prescription_by")
_CELLS = ["P1", "P2", " P1", "", "  ", "S1", "é", "x" * 1_200]


def _row_by_row(path: Path) -> list[object]:
    """The records as `_CsvTable.rows` and `record` read them, one row at a time."""
    table = _CsvTable(path, Columns())
    found = []
    for row, _, _, cells in table.rows():
        raw, problem = table.record(cells)
        found.append((tuple(raw), Origin(str(path), row, "", table.headers, (), ()), problem))
    return found


@st.composite
def _plain_file(draw: st.DrawFn) -> str:
    rows = []
    for _ in range(draw(st.integers(0, 25))):
        shape = draw(st.sampled_from(["full", "full", "full", "blank", "short", "wide", "long", "no first"]))
        session, patient = draw(st.sampled_from(_CELLS)), draw(st.sampled_from(_CELLS))
        if shape == "blank":
            rows.append(draw(st.sampled_from(["", " ", ",,,,", " , ,"])))
        elif shape == "short":
            rows.append(f"{session},{patient}")
        elif shape == "wide":
            rows.append(f"{session},{patient},2024-05-06,ACME,,,,,,,,,,,extra")
        else:
            first = " " if shape == "no first" else session
            tail = "x" * 1_100 if shape == "long" else draw(st.sampled_from(["MD", "", "dé"]))
            rows.append(f"{first},{patient},2024-05-06,ACME,1328719467,DC,97140,,1,15,40.00,M54.50,{tail}")
    ends = [draw(st.sampled_from(["\n", "\r\n"])) for _ in rows]
    if ends:
        ends[-1] = draw(st.sampled_from(["\n", "\r\n", ""]))  # the last row may end without a line break
    return HEADER + "\n" + "".join(r + e for r, e in zip(rows, ends))


@settings(max_examples=300, deadline=None)
@given(text=_plain_file(), block=st.sampled_from([1, 7, 64, 1 << 20]))
def test_blocks_give_the_records_of_the_row_by_row_reader(text: str, block: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sessions.csv"
        path.write_text(text, encoding="utf-8", newline="")
        assert _CsvTable(path, Columns()).plain
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(records, "PLAIN_BLOCK", block)
            by_blocks = [(tuple(raw), origin, problem) for raw, origin, problem in _csv_records(path, Columns())]
        assert by_blocks == _row_by_row(path)


def test_a_part_is_read_as_the_whole_file_reads_its_rows(tmp_path: Path) -> None:
    rows = [f"S{p}-{v},P{p},2024-05-0{v + 1},ACME,1328719467,DC,97140,,1,15,40.00,M54.50,MD"
            for p in range(300) for v in range(3)]
    path = tmp_path / "sessions.csv"
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    parts = scan([path], part_lines=100).parts
    assert len(parts) > 1
    whole = list(_csv_records(path, Columns()))
    assert [r for part in parts for r in _csv_records(path, Columns(), part)] == whole
    assert [origin.row for _, origin, _ in whole] == list(range(2, 902))


def test_a_row_that_is_not_utf8_is_named_after_the_rows_before_it(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    good = "S1,P1,2024-05-06,ACME,1328719467,DC,97140,,1,15,40.00,M54.50,MD\n"
    path = tmp_path / "sessions.csv"
    path.write_bytes((HEADER + "\n" + good * 3).encode() + b"S2,P\xff,2024-05-06\n" + good.encode())
    table = _CsvTable(path, Columns(), plain=True)
    monkeypatch.setattr(records, "_is_plain", lambda _: True)  # the first pass would refuse the file sooner
    read = []
    with pytest.raises(InputError) as raised:
        for record in _csv_records(path, Columns()):
            read.append(record[1].row)
    with pytest.raises(InputError) as expected:
        list(table.rows())
    assert read == [2, 3, 4]
    assert str(raised.value) == str(expected.value) == f"{path}:5: not UTF-8 text (byte 4 of the line)"


_SESSIONS, _PATIENTS = ["S1", "S2", "S3", " S1", ""], ["P1", "P2", " P1", ""]
_DATES, _PAYERS = ["2024-05-06", "2024-05-07", "2024-13-01", " 2024-05-06"], ["ACME", "acme ", ""]
_TAILS = ["97140,,1,15,40.00,M54.50,MD", "97140,,1,15,40.00,M54.50,MD", "98941,,1,,55.00,M99.03,",
          "97140,GP,2,30,80.00,,", ",,1,15,40.00,M54.50,MD", "97140,,x,15,40.00,M54.50,MD", "97140,,1,15,40.00"]


@st.composite
def _sessions_file(draw: st.DrawFn) -> str:
    """Rows of a few sessions, patients, dates and payers, most of them valid and alike (so that
    rows are taken both in short and the general way), with bad, blank and odd rows."""
    rows = []
    for _ in range(draw(st.integers(0, 40))):
        shape = draw(st.sampled_from(["row"] * 6 + ["blank", "short", "wide", "long"]))
        if shape == "blank":
            rows.append(draw(st.sampled_from(["", " ", ",,,,,,,,,,,,"])))
            continue
        cells = [draw(st.sampled_from(_SESSIONS)), draw(st.sampled_from(_PATIENTS)), draw(st.sampled_from(_DATES)),
                 draw(st.sampled_from(_PAYERS)), draw(st.sampled_from(["1328719467", "1328719468"])),
                 draw(st.sampled_from(["DC", "LMT"])), draw(st.sampled_from(_TAILS))]
        if shape == "short":
            cells = cells[:3]
        elif shape == "wide":
            cells.append("extra")
        elif shape == "long":
            cells[6] += "x" * 1_000
        rows.append(",".join(cells))
    ends = [draw(st.sampled_from(["\n", "\r\n"])) for _ in rows]
    if ends:
        ends[-1] = draw(st.sampled_from(["\n", "\r\n", ""]))
    return HEADER + "\n" + "".join(r + e for r, e in zip(rows, ends))


def _batches_of(found: object) -> list[object]:
    """Each batch's sessions, errors and count of lines; then the error raised, if one is."""
    out: list[object] = []
    try:
        for batch in found:  # type: ignore[attr-defined]
            out.append((batch.sessions, batch.errors, batch.lines_read))
    except (InputError, records.ScanFirst) as error:
        out.append((type(error).__name__, str(error)))
    return out


@settings(max_examples=300, deadline=None)
@given(text=_sessions_file(), block=st.sampled_from([1, 64, 1 << 20]))
def test_batches_read_in_short_are_those_of_the_records(text: str, block: int) -> None:
    """The reader of plain files that takes valid rows in short (`_Batching.rows`) gives the
    batches that grouping the reader's records gives: read whole, by patient, patient by patient
    where a patient may not come back, and from the rows of buckets ordered by patient."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sessions.csv"
        path.write_text(text, encoding="utf-8", newline="")
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(records, "PLAIN_BLOCK", block)
            for grouped in (True, False):
                assert _batches_of(records.read_blocks([path], grouped=grouped)) == \
                    _batches_of(records._batches(_csv_records(path, Columns()), grouped))
            assert _batches_of(records.read_grouped([path])) == \
                _batches_of(records._batches(_csv_records(path, Columns()), True, once=True))
            table = records.csv_table(path, Columns())
            ordered = sorted(records.keyed_rows(table, Columns()), key=lambda keyed: keyed[0])
            rows = [keyed[3] for keyed in ordered]
            assert _batches_of(records.read_patients(table, rows)) == \
                _batches_of(records._batches(records.keyed_records(table, rows), True))


def test_a_row_that_is_not_utf8_ends_the_batches_read_in_short_where_the_records_end(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = "S{0},P{0},2024-05-06,ACME,1328719467,DC,97140,,1,15,40.00,M54.50,MD\n"
    path = tmp_path / "sessions.csv"
    path.write_bytes((HEADER + "\n" + good.format(1) * 2 + good.format(2)).encode() + b"S3,P\xff,2024-05-06\n")
    monkeypatch.setattr(records, "_is_plain", lambda _: True)
    found = _batches_of(records.read_blocks([path]))
    assert found == _batches_of(records._batches(_csv_records(path, Columns()), True))
    assert [lines for _, _, lines in found[:-1]] == [2]  # type: ignore[misc]  # P2 had not ended
    assert found[-1] == ("InputError", f"{path}:5: not UTF-8 text (byte 4 of the line)")
