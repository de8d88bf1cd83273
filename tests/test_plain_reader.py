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
