"""Input not grouped by patient, read as little as possible: once the scan finds a patient again
after others, the rest of a plain file is only counted; the cut into buckets is shared by the
processes that judge them, each cutting a stretch of a plain file (or keeping its own buckets of
another), and a session id with two patients is found where the buckets are judged."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from payrules import records, workers
from payrules.diagnostics import InputError
from payrules.records import Columns, csv_table, keyed_rows, read_blocks, scan
from payrules.runner import Tally

HEADER = ("session_id,patient_id,date,payer,provider_npi,provider_credential,code,modifiers,units,minutes,"
          "charge,diagnoses,prescription_by\n")

_BLANKS = ["", " ", ",,,,", " , ,", "\t,", "\u3000", "\x1c,,", ",\u00a0"]
"""Rows the reader skips: whitespace (Unicode's too) and commas only."""

_STARTS = ["S1", "-S1", " S1", "é1", "\u3000S1", "_S1", "", ",S1"]
"""First cells: most rows start with a letter or a digit, these not always."""


@st.composite
def _ungrouped_csv(draw: st.DrawFn) -> str:
    """A plain CSV file whose first patient comes back after another one, then any rows: blank
    ones, rows that start with neither a letter nor a digit, short and long rows, CRLF, and
    sometimes no line break after the last row."""
    rows = ["S1,P1,2024-05-06,ACME,1328719467,DC,97140,,1,15,40.00,M54.50,MD",
            "S2,P2,2024-05-06,ACME,1328719467,DC,97140,,1,15,40.00,M54.50,MD",
            "S3,P1,2024-05-07,ACME,1328719467,DC,97140,,1,15,40.00,M54.50,MD"]
    for _ in range(draw(st.integers(0, 40))):
        shape = draw(st.sampled_from(["full", "full", "blank", "short", "long"]))
        start, patient = draw(st.sampled_from(_STARTS)), draw(st.sampled_from(["P1", "P2", "P3", " P1", ""]))
        if shape == "blank":
            rows.append(draw(st.sampled_from(_BLANKS)))
        elif shape == "short":
            rows.append(f"{start},{patient}")
        else:
            tail = "x" * 1_100 if shape == "long" else "MD"
            rows.append(f"{start},{patient},2024-05-06,ACME,1328719467,DC,97140,,1,15,40.00,M54.50,{tail}")
    endings = [draw(st.sampled_from(["\n", "\r\n"])) for _ in rows]
    if draw(st.booleans()):
        endings[-1] = ""
    return HEADER + "".join(row + end for row, end in zip(rows, endings))


def records_read(paths: list[Path]) -> int:
    return sum(batch.lines_read for batch in read_blocks(paths, grouped=False))


@settings(max_examples=300, deadline=None)
@given(text=_ungrouped_csv(), block=st.sampled_from([16, 64, 1 << 20]), second=st.booleans())
def test_the_count_after_a_patient_comes_back_is_the_rows_the_reader_reads(text: str, block: int,
                                                                         second: bool) -> None:
    with tempfile.TemporaryDirectory() as folder, mock.patch.object(records, "PLAIN_BLOCK", block):
        paths = [Path(folder) / "sessions.csv"]
        paths[0].write_text(text, encoding="utf-8", newline="")
        if second:  # a further file after the one where the input stopped being grouped
            paths.append(Path(folder) / "more.csv")
            paths[1].write_text(text.replace("P1", "P7"), encoding="utf-8", newline="")
        found = scan(paths)
        assert not found.grouped and found.patient == "P1"
        assert found.lines == records_read(paths)


def test_the_rest_of_the_file_is_counted_without_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "sessions.csv"
    rows = [f"S{n},P{n % 50},2024-05-06,ACME,1328719467,DC,97140,,1,15,40.00,M54.50,MD" for n in range(2_000)]
    path.write_text(HEADER + "\n".join(rows) + "\n\n , \n", encoding="utf-8")
    line = records._Runs.line
    calls = []

    def counted(runs: records._Runs, patient: str, row: int, begin: int) -> object:
        calls.append(row)
        return line(runs, patient, row, begin)

    with mock.patch.object(records._Runs, "line", counted):
        found = scan([path])
    assert (found.grouped, found.lines, str(found.regrouped_at)) == (False, 2_000, f"{path}:52")
    assert max(calls) < 100  # the rows after the first few were counted, not read row by row


def test_a_field_too_long_after_the_break_is_refused_with_its_row(tmp_path: Path) -> None:
    path = tmp_path / "sessions.csv"
    rows = [f"S{n},P{n % 3},2024-05-06,ACME,1328719467,DC,97140,,1,15,40.00,M54.50,MD" for n in range(10)]
    rows[7] = rows[7].replace("M54.50", "M" * 1_300)
    path.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    with mock.patch.object(records, "CSV_READ_LIMIT", 1_200), mock.patch.object(records, "PLAIN_BLOCK", 64):
        with pytest.raises(InputError) as refused:
            scan([path])
        with pytest.raises(InputError) as read:
            records_read([path])
    assert str(refused.value) == str(read.value) == f"{path}:9: a field is longer than 1,200 characters, more than payrules reads"


def _date_sorted(path: Path, conflicting: str | None = None) -> None:
    rows = [f"S{p}-{d},P{p},2024-05-{d + 1:02d},BENCH,1328719467,DC,97140,,1,15,40.00,M54.50,MD"
            for d in range(9) for p in range(40)]
    if conflicting is not None:
        rows.append(f"{conflicting},P999,2024-05-30,BENCH,1328719467,DC,97140,,1,15,40.00,M54.50,MD")
    path.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")


def _buckets_cut(table: object, folder: Path, buckets: int, pieces: int, plain: bool) -> dict[int, list[Path]]:
    """Cut the file of `table` into `buckets` as the processes of `_write_partitioned` do: a
    plain file by `pieces` stretches of its bytes, another by `pieces` shares of the buckets;
    the spill files of each bucket, in order."""
    if plain:
        starts = workers._row_starts(table.path, pieces)[0]  # type: ignore[attr-defined]
        assert len(starts) == pieces + 1
        for piece in range(pieces):
            (start, row), (end, _) = starts[piece], starts[piece + 1]
            workers._cut(keyed_rows(table, Columns(), (start, end, row)), True, folder, buckets, piece)
    else:
        for share in range(pieces):
            workers._cut(keyed_rows(table, Columns()), False, folder, buckets, share, share, pieces)
    return {b: [path for piece in range(pieces) if (path := folder / f"rows{b}.{piece}").exists()]
            for b in range(buckets)}


@pytest.mark.parametrize("plain", [True, False])
def test_the_cut_keeps_every_row_once_in_buckets_by_patient(tmp_path: Path, plain: bool) -> None:
    path = tmp_path / "sessions.csv"
    _date_sorted(path)
    if not plain:  # a quoted cell: read with the csv module, each process keeping its share
        path.write_text(path.read_text().replace(",M54.50,", ',"M54.50",', 1))
    table = csv_table(path, Columns())
    assert records.plain_rows(table) == plain
    kept: dict[int, list[tuple[str, str, int, object]]] = {}
    for bucket, files in _buckets_cut(table, tmp_path, 6, 3, plain).items():
        found = workers._bucket_patients(files, table)
        assert found is not None
        ordered, first = found
        keys = kept[bucket] = (list(records.keyed_lines(table, ordered)) if plain else  # (row, text) or records
                               [(records.clean(raw[1]), records.clean(raw[0]), origin.row, (raw, origin, problem))
                                for raw, origin, problem in ordered])
        assert first == {session: (min(row for _, s, row, _ in keys if s == session), patient)
                         for patient, session, _, _ in keys}
    everything = list(keyed_rows(table, Columns()))
    keyed = sorted((patient, session, row) for rows in kept.values() for patient, session, row, _ in rows)
    assert keyed == sorted((patient, session, row) for patient, session, row, _ in everything)
    patients = {patient: index for index, rows in kept.items() for patient, *_ in rows}
    assert all(patients[patient] == index for index, rows in kept.items() for patient, *_ in rows)
    for rows in kept.values():  # patient by patient, in the order of their first rows; each in input order
        order = list(dict.fromkeys(patient for patient, *_ in rows))
        assert order == sorted(order, key=lambda p: min(row for q, _, row, _ in rows if q == p))
        assert rows == sorted(rows, key=lambda item: (order.index(item[0]), item[2]))


@pytest.mark.parametrize("buckets", [1, 2, 4, 7])
def test_a_session_id_with_two_patients_is_found_in_its_bucket_or_across_buckets(tmp_path: Path, buckets: int) -> None:
    path = tmp_path / "sessions.csv"
    _date_sorted(path, conflicting="S3-4")  # P3's session, also given to P999
    table = csv_table(path, Columns())
    judged: list[tuple[Tally, set[int], list[tuple[int, int]]] | None] = []
    for files in _buckets_cut(table, tmp_path, buckets, 2, True).values():
        found = workers._bucket_patients(files, table)
        judged.append(None if found is None else (Tally(), {hash(s) for s in found[1] if s}, []))
    same = hash("P3") % buckets == hash("P999") % buckets
    assert (None in judged) == same  # in one bucket, its reading finds it
    counted: list[tuple[Tally, list[tuple[int, int]]]] = []
    assert len(list(workers._checked(iter(judged), counted))) < buckets  # else, across buckets
    assert len(counted) < buckets
    fine = tmp_path / "fine"
    fine.mkdir()
    _date_sorted(path)
    table = csv_table(path, Columns())
    judged = [(Tally(), {hash(s) for s in found[1] if s}, [])
              for files in _buckets_cut(table, fine, buckets, 2, True).values()
              if (found := workers._bucket_patients(files, table)) is not None]
    assert len(list(workers._checked(iter(judged), []))) == buckets


def test_a_file_is_read_for_quotes_once_while_unchanged_and_again_when_changed(tmp_path: Path) -> None:
    path = tmp_path / "sessions.csv"
    plain = HEADER + "S1,P1,2024-05-06,ACME,1328719467,DC,97140,,1,15,40.00,M54.50,MD\n"
    path.write_text(plain, encoding="utf-8")
    reads = mock.Mock(wraps=records._read_is_plain)
    with mock.patch.object(records, "_read_is_plain", reads):
        assert records._is_plain(path) and records._is_plain(path)
        assert reads.call_count == 2  # just written: not remembered
        with mock.patch.object(records, "_SETTLED_NS", 0):  # every change counts as settled
            assert records._is_plain(path) and records._is_plain(path) and records._is_plain(path)
            assert reads.call_count == 3
            time.sleep(0.05)  # past the granularity of the file system's clock
            stat = path.stat()
            path.write_text(plain.replace("M54.50", '"M54"'), encoding="utf-8")  # the same size
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same time of change
            assert not records._is_plain(path)  # its change of status tells
            assert reads.call_count == 4


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.integers(2, 5_000), unique=True, max_size=400), spills=st.integers(1, 6),
       chunk=st.integers(1, 50), window=st.integers(1, 700), seed=st.integers(0, 100), jobs=st.integers(1, 4),
       lines=st.integers(0, 6_000))
def test_spilled_sessions_are_merged_back_in_order_of_their_rows(rows: list[int], spills: int, chunk: int,
                                                                window: int, seed: int, jobs: int, lines: int) -> None:
    """Merged whole, and in stretches of rows each read from the chunk that holds its first row
    (as the workers merge them), whatever the count of lines the stretches are cut by."""
    import random

    shares: list[list[int]] = [[] for _ in range(spills)]
    for row in rows:
        shares[random.Random(seed * 7919 + row).randrange(spills)].append(row)
    expected = [f"session of row {row}\n" for row in sorted(rows)]
    with tempfile.TemporaryDirectory() as folder, mock.patch.object(workers, "_SPILL_ITEMS", chunk):
        paths, indexes = [], []
        for n, share in enumerate(shares):
            paths.append(Path(folder) / f"sessions{n}")
            indexes.append(workers._spill(paths[-1], [(row, f"session of row {row}\n") for row in sorted(share)]))
        merged = list(workers._merged([workers._Spilled(path) for path in paths], window))
        assert [text for texts, _ in merged for text in texts] == expected
        assert sum(count for _, count in merged) == len(rows)
        assert all(count == len(texts) for texts, count in merged)
        in_stretches: list[str] = []
        for _, start, end, offsets, _ in workers._merge_jobs(indexes, jobs, lines, window):
            spilled = [workers._Spilled(path, offset) for path, offset in zip(paths, offsets)]
            in_stretches += [text for texts, _ in workers._merged(spilled, window, start, end) for text in texts]
        assert in_stretches == expected


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(st.sampled_from(["a", "1", ",", "\n", "\r", "\r\n", '"', "\x00", "é", " "]), max_size=40),
       at_block_end=st.booleans())
@example(pieces=["\r\n"], at_block_end=True)  # the CR ends the first block, its LF starts the next
@example(pieces=["\r", "a"], at_block_end=True)  # a lone CR ends the first block
def test_a_file_read_as_bytes_is_plain_as_when_read_as_text(pieces: list[str], at_block_end: bool) -> None:
    """Quote characters, NULs and lone CRs, also where a 1 MiB block ends (a CR there may be
    followed by the LF that starts the next block); a file that is not ASCII is read as text."""
    data = "".join(pieces).encode("utf-8")
    if at_block_end:  # `text` astride the end of the first block
        data = b"x" * ((1 << 20) - len(data) // 2) + data
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sessions.csv"
        path.write_bytes(data)
        assert records._read_is_plain(path) == records._read_is_plain_text(path)
