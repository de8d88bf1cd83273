"""`--history` CSV files kept compact (`payrules.history`): the same sessions, lines, numbers and
origins as a history read whole, the same bytes from `payrules check` in every format, with
workers and with input cut into buckets, and word for word the same refusal of history rows
that fail validation."""

from __future__ import annotations

import gc
import os
import random
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from syrupy.assertion import SnapshotAssertion

from payrules import api, history as compact_history, records, workers
from payrules.history import CompactHistory, read_compact
from payrules.judging import History
from payrules.records import Columns, read_sessions

from conftest import ROOT, transcript

RULES_TEXT = """payer BENCH "Benchmark payer with limits over periods"

set massage = 97124, 97140
set CMT = 98940-98942

covered: only massage, 97010, CMT
massage-units: max 4 units of massage per session
massage-with-cmt: no massage same day as CMT unless modifier 59, XS
visits: max 3 visits per calendar year for CMT, massage
weekly-units: max 6 units of massage per week
benefit: max $150 per calendar year for massage
monthly: max $120 per 30 days
"""

HEADER = ["session_id", "patient_id", "date", "payer", "provider_npi", "provider_credential", "code",
          "modifiers", "units", "minutes", "charge", "diagnoses", "prescription_by"]
NPIS = ["1184029555", "1328719467", "1764203810"]
CODES = ["97124", "97140", "97140", "98940", "98941", "97010", " 97124 "]


def us_date(iso: str) -> str:
    year, month, day = iso.split("-")
    return f"{int(month)}/{int(day)}/{year}"


def history_rows(rng: random.Random, sessions: int, prefix: str = "H") -> list[dict[str, str]]:
    """Valid history lines of a few patients (sessions interleaved, ids and payers written in
    several ways the reader accepts), as dicts by field."""
    rows: list[dict[str, str]] = []
    for number in range(sessions):
        patient = f"P-{rng.randrange(8)}"
        iso = f"2024-{rng.randrange(1, 7):02d}-{rng.randrange(1, 29):02d}"
        payer = rng.choice(["BENCH", "BENCH", "BENCH", "bench", "OTHER"])
        npi, credential = rng.choice(NPIS), rng.choice(["DC", "dc", "LMT", "PT", ""])
        for _ in range(rng.randint(1, 4)):
            rows.append({
                "session_id": rng.choice([f"{prefix}{number}", f" {prefix}{number}"]),
                "patient_id": rng.choice([patient, patient, f" {patient} "]),
                "date": rng.choice([iso, iso, us_date(iso)]),
                "payer": payer if rng.random() < 0.9 else f" {payer}",
                "provider_npi": npi, "provider_credential": credential, "code": rng.choice(CODES),
                "modifiers": rng.choice(["", "", "59", "xs;GP", "GP 59"]),
                "units": rng.choice(["", "1", "2", "03", "5"]),
                "minutes": rng.choice(["", "15", "30", "45"]),
                "charge": rng.choice(["45.00", "60", "$35.50", "0.00", "120.10"]),
                "diagnoses": rng.choice(["M54.50", "m54.2;M99.01", "", "S13.4XXA"]),
                "prescription_by": rng.choice(["", "DC", "md"]),
            })
    # Some sessions' rows apart from each other: a session is its rows wherever they are.
    for _ in range(len(rows) // 10):
        i, j = rng.randrange(len(rows)), rng.randrange(len(rows))
        rows[i], rows[j] = rows[j], rows[i]
    return rows


def write_csv(path: Path, rows: list[dict[str, str]], rng: random.Random, *, plain_layout: bool = False) -> None:
    """`rows` as a CSV file: columns in some order (one optional column left out, one extra),
    with blank rows, rows with cells missing or added, CRLF or LF, a BOM, and no line break
    at the end, as exports come."""
    header = list(HEADER)
    if not plain_layout:
        rng.shuffle(header)
        header.remove(rng.choice(["minutes", "prescription_by", "diagnoses"]))
        header.insert(rng.randrange(len(header)), "note")
    lines = [",".join(header)]
    for row in rows:
        cells = [row.get(name, "ward 3") for name in header]
        if not plain_layout and rng.random() < 0.05:
            cells.append("")  # a cell after the last column
        if not plain_layout and rng.random() < 0.05 and header[-1] not in ("session_id", "patient_id", "date",
                                                                          "payer", "provider_npi", "code", "charge"):
            cells.pop()  # the last, optional, cell missing
        lines.append(",".join(cells))
        if not plain_layout and rng.random() < 0.03:
            lines.append(rng.choice(["", ",,,", "  ,  , "]))  # blank rows are skipped
    end = "\r\n" if rng.random() < 0.5 else "\n"
    text = end.join(lines) + (end if rng.random() < 0.7 else "")
    data = text.encode()
    path.write_bytes(b"\xef\xbb\xbf" + data if rng.random() < 0.3 else data)


def sessions_csv(path: Path, rng: random.Random) -> None:
    """Sessions to judge: the same patients, on dates among and after the history's."""
    rows = history_rows(rng, 40, prefix="S")
    for row in rows:
        row["date"] = f"2024-{rng.randrange(3, 9):02d}-{rng.randrange(1, 29):02d}" if rng.random() < 0.5 \
            else row["date"]
    # A session's rows share one date.
    first: dict[str, str] = {}
    for row in rows:
        row["date"] = first.setdefault(row["session_id"].strip(), row["date"])
        row["payer"] = row["payer"].strip()
    lines = [",".join(HEADER)] + [",".join(row[name] for name in HEADER) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def read_whole(paths: list[Path], columns: Columns | None = None) -> History:
    batch = read_sessions(paths, columns)
    assert not batch.errors
    return History(batch.sessions)


def assert_same_history(paths: list[Path], columns: Columns | None = None) -> None:
    compact = read_compact(paths, columns)
    assert isinstance(compact, CompactHistory)
    whole = read_whole(paths, columns)
    batch = read_sessions(paths, columns)
    covered = compact.covering(batch.sessions)
    assert covered.days == whole.days  # lines with their numbers, payers as written, and origins
    assert covered.patients == whole.patients
    # One patient's history alone is that patient's part of the whole.
    for session in batch.sessions[:5]:
        alone = compact.covering([session])
        key = (session.payer.casefold(), session.patient_id)
        assert alone.patients[key] == whole.patients[key]
        assert {k: v for k, v in alone.days.items() if k[:2] == key} == \
               {k: v for k, v in whole.days.items() if k[:2] == key}


@pytest.mark.parametrize("seed", range(12))
def test_a_compact_history_gives_the_sessions_of_the_history_read_whole(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    first, second = tmp_path / "h1.csv", tmp_path / "h2.csv"
    rows = history_rows(rng, 60)
    cut = rng.randrange(len(rows))
    write_csv(first, rows[:cut], rng)
    write_csv(second, rows[cut:], rng)  # sessions may go on in the second file
    assert_same_history([first])
    assert_same_history([first, second])
    assert_same_history([second, first, second])  # a file given twice counts twice


def usual_rows(count: int, seed: int, folder: Path) -> list[str]:
    """Rows as most exports write them (benchmarks/generate.py), without the header."""
    path = folder / f"usual-{count}-{seed}.csv"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "generate.py"), "--lines", str(count), "--seed",
                    str(seed), "-o", str(path)], check=True)
    return path.read_text().splitlines()[1:]


def test_rows_in_the_usual_form_are_checked_by_one_pattern(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "h.csv"
    path.write_text("\n".join([",".join(HEADER), *usual_rows(3000, 11, tmp_path)]) + "\n")
    monkeypatch.setattr(compact_history, "BLOCK_BYTES", 5000)  # sessions go on from one block to the next
    with mock.patch.object(compact_history._Loader, "_cells", side_effect=AssertionError("cell by cell")):
        assert_same_history([path])


@pytest.mark.parametrize("seed", range(4))
def test_blocks_in_the_usual_form_and_others_give_the_history_read_whole(seed: int, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks checked by the pattern and blocks checked cell by cell, one after the other, with
    sessions and patients going on from one to the next."""
    rng = random.Random(seed)
    rows = usual_rows(2000, seed, tmp_path)
    for at in rng.sample(range(len(rows)), 12):  # cells the reader accepts, in other forms
        cells = rows[at].split(",")
        column, value = rng.choice([(0, f" {cells[0]}"), (1, f"{cells[1]} "), (2, us_date(cells[2])),
                                    (5, cells[5].lower()), (6, f" {cells[6]}"), (8, "01"), (10, f"${cells[10]}"),
                                    (11, cells[11].lower()), (7, "gp")])
        cells[column] = value
        rows[at] = ",".join(cells)
    rows.insert(rng.randrange(len(rows)), ",,,")
    path = tmp_path / "h.csv"
    path.write_text("\n".join([",".join(HEADER), *rows]) + "\n")
    monkeypatch.setattr(compact_history, "BLOCK_BYTES", 3000)
    cell_by_cell = mock.Mock(wraps=compact_history._Loader._cells)
    monkeypatch.setattr(compact_history._Loader, "_cells", lambda self, *given: cell_by_cell(self, *given))
    assert_same_history([path])
    blocks = path.stat().st_size // 3000
    assert 0 < cell_by_cell.call_count < blocks


def test_renamed_columns_are_kept_in_the_lines_origins(tmp_path: Path) -> None:
    rng = random.Random(3)
    path = tmp_path / "h.csv"
    write_csv(path, history_rows(rng, 30), rng, plain_layout=True)
    text = path.read_text(encoding="utf-8-sig").replace("patient_id", "Member ID", 1).replace("charge", "Paid", 1)
    path.write_text(text)
    mapping = tmp_path / "columns.toml"
    mapping.write_text('[columns]\npatient_id = "Member ID"\ncharge = "Paid"\n')
    columns = Columns.load(mapping)
    assert_same_history([path], columns)
    lines = [line for found in read_compact([path], columns).covering(  # type: ignore[union-attr]
        read_sessions([path], columns).sessions).days.values() for line in found]
    assert lines[0].origin.headers == {"patient_id": "Member ID", "charge": "Paid"}


def test_a_history_is_kept_as_one_text_per_patient(tmp_path: Path) -> None:
    rng = random.Random(5)
    path = tmp_path / "h.csv"
    rows = history_rows(rng, 1500)
    write_csv(path, rows, rng, plain_layout=True)
    gc.collect()
    before = len(gc.get_objects())
    compact = read_compact([path])
    gc.collect()
    assert isinstance(compact, CompactHistory)
    patients = {(row["payer"].strip().casefold(), row["patient_id"].strip()) for row in rows}
    assert set(compact.rows) == patients
    assert all(isinstance(text, bytes) for text, _, _ in compact.rows.values())
    # No object per line: a few per patient (its key and rows), whatever the number of lines.
    assert len(gc.get_objects()) - before < 10 * len(patients) < len(rows) // 10


# --- the answers of `payrules check` ------------------------------------------------------------------


def old_path() -> mock._patch:  # type: ignore[type-arg]
    """The history read whole, as it always was."""
    return mock.patch.object(api, "read_compact", lambda *args: None)


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules.payer"
    path.write_text(RULES_TEXT)
    return path


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("fmt", ["text", "json", "jsonl", "csv", "835"])
def test_check_with_a_compact_history_writes_the_same_bytes(seed: int, fmt: str, rules: Path,
                                                             tmp_path: Path) -> None:
    rng = random.Random(100 + seed)
    first, second, sessions = tmp_path / "h1.csv", tmp_path / "h2.csv", tmp_path / "s.csv"
    rows = history_rows(rng, 80)
    write_csv(first, rows[:150], rng)
    write_csv(second, rows[150:], rng)
    sessions_csv(sessions, rng)
    args = ["check", str(sessions), "--rules", str(rules), "--format", fmt, "--history", str(first),
            "--history", str(second)]
    if fmt == "835":
        args += ["--payee-npi", "1184029555", "--payee-name", "Clinic"]
    loaded: list[object] = []
    with mock.patch.object(api, "read_compact", lambda *given: loaded.append(read_compact(*given)) or loaded[-1]):
        compact = transcript(args)
    assert len(loaded) == 1 and isinstance(loaded[0], CompactHistory)
    with old_path():
        whole = transcript(args)
    assert compact == whole
    without = transcript([arg for arg in args if arg not in (str(first), str(second), "--history")])
    assert without != compact, "the history changes some answers"


def test_workers_and_buckets_give_the_bytes_of_one_process(rules: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(7)
    history, sessions, by_date = tmp_path / "h.csv", tmp_path / "s.csv", tmp_path / "d.csv"
    write_csv(history, history_rows(rng, 300), rng)
    rows = history_rows(rng, 400, prefix="S")
    for row in rows:
        row["payer"] = "BENCH"
        row["patient_id"] = row["patient_id"].strip()
        row["session_id"] = row["session_id"].strip()
    rows.sort(key=lambda row: row["patient_id"])  # grouped by patient: cut into parts for workers
    first: dict[str, str] = {}
    for row in rows:
        row["date"] = first.setdefault(row["session_id"], row["date"])
    text = [",".join(HEADER)] + [",".join(row[name] for name in HEADER) for row in rows]
    sessions.write_text("\n".join(text) + "\n")
    by_date.write_text("\n".join([text[0], *sorted(text[1:], key=lambda line: line.split(",")[2])]) + "\n")
    expected = {}
    with old_path(), mock.patch.dict(os.environ, {"PAYRULES_WORKERS": "1"}):
        for path in (sessions, by_date):
            expected[path] = transcript(["check", str(path), "--rules", str(rules), "--format", "csv",
                                         "--history", str(history)])
    monkeypatch.setattr(records, "PART_LINES", 100)
    monkeypatch.setattr(workers, "MIN_LINES", 0)
    monkeypatch.setattr(workers, "PARTITION_MIN_LINES", 0)
    monkeypatch.setattr(workers, "BUCKET_LINES", 150)
    monkeypatch.setattr(workers, "cpu_count", lambda: 2)
    cut = mock.Mock(wraps=workers._cut)
    monkeypatch.setattr(workers, "_cut", cut)
    with mock.patch.dict(os.environ, {"PAYRULES_WORKERS": "2"}):
        run = api.start_check([sessions], rules, history=[history])
        assert isinstance(run.history, CompactHistory) and workers.worker_count(run) == 2
        for path in (sessions, by_date):
            assert transcript(["check", str(path), "--rules", str(rules), "--format", "csv",
                               "--history", str(history)]) == expected[path]
    assert cut.called  # the date-sorted file was cut into buckets


# --- history rows that fail validation, and files read the usual way ----------------------------------


BASE = [
    "session_id,patient_id,date,payer,provider_npi,provider_credential,code,modifiers,units,minutes,charge,"
    "diagnoses,prescription_by",
    "H1,P-1,2024-03-04,BENCH,1184029555,DC,98940,,1,,45.00,M99.01,",
    "H1,P-1,2024-03-04,BENCH,1184029555,DC,97140,59,2,30,60.00,M54.50,DC",
    "H2,P-1,2024-03-11,BENCH,1328719467,LMT,97124,,2,30,50.00,M54.50,DC",
    "H3,P-2,2024-03-05,BENCH,1328719467,LMT,97124,,1,15,30.00,M54.2,MD",
]

def changed(*changes: tuple[int, int, str]) -> str:
    """`BASE` with cells changed: (row, column, new text)."""
    lines = list(BASE)
    for row, column, value in changes:
        cells = lines[row].split(",")
        cells[column] = value
        lines[row] = ",".join(cells)
    return "\n".join(lines) + "\n"


REFUSED = {
    "a bad date": changed((3, 2, "2024-13-01")),
    "a bad NPI, and a bad charge on another row": changed((2, 4, "1234567890"), (3, 10, "fifty")),
    "an unknown credential": changed((4, 5, "RN")),
    "a required field left empty": changed((4, 10, "")),
    "a row with no session id": changed((4, 0, "  ")),
    "a session with two patients": changed((2, 1, "P-9")),
    "a session with two dates": changed((2, 2, "2024-03-05")),
    "a session with two payers (case counts)": changed((2, 3, "bench")),
    "a field over the limit": changed((3, 11, "M" * 1001)),
    "a missing column": changed((0, 10, "paid")),
    "a lone carriage return": changed((3, 5, "L\rMT")),
    "a session of more than 5,000 lines": "\n".join(
        BASE + ["H5,P-5,2024-03-04,BENCH,1184029555,DC,98940,,1,,45.00,,"] * 5001) + "\n",
}


def test_history_rows_that_fail_are_refused_word_for_word(rules: Path, tmp_path: Path,
                                                         text_snapshot: SnapshotAssertion) -> None:
    sessions = ROOT / "examples" / "chiro-clinic" / "sessions.csv"
    shown = []
    for name, text in REFUSED.items():
        history = tmp_path / "history.csv"
        history.write_bytes(text.encode())
        assert read_compact([history]) is None, name
        args = ["check", str(sessions), "--rules", str(rules), "--history", str(history)]
        refused = transcript(args)
        with old_path():
            assert transcript(args) == refused, name
        assert refused[0] == 2 and not refused[1], name
        shown.append(f"{name}:\n{refused[2].replace(str(tmp_path), '<tmp>')}")
    assert text_snapshot == "\n".join(shown)


@pytest.mark.parametrize("name,text", [
    ("quoted cells", "\n".join(BASE[:2]) + '\nH1,P-1,2024-03-04,BENCH,1184029555,DC,97140,59,2,30,"60.00",M54.50,DC\n'),
    ("list fields over two columns", BASE[0].replace("modifiers", "mod 1") + ",mod 2\n" +
     "\n".join(line + ",GP" for line in BASE[1:]) + "\n"),
])
def test_files_the_fast_reading_leaves_to_the_reader_are_read_as_before(name: str, text: str, rules: Path,
                                                                       tmp_path: Path) -> None:
    history = tmp_path / "history.csv"
    history.write_text(text)
    columns = None
    if name == "list fields over two columns":
        mapping = tmp_path / "columns.toml"
        mapping.write_text('[columns]\nmodifiers = ["mod 1", "mod 2"]\n')
        columns = Columns.load(mapping)
    assert read_compact([history], columns) is None
    assert isinstance(api.read_history([history], columns), History)
    assert not isinstance(api.read_history([history], columns), CompactHistory)


def test_blank_rows_and_a_large_patient_stay_compact(tmp_path: Path) -> None:
    """Rows the reader skips are skipped; a patient with more lines than one session may have is
    counted session by session, and kept compact when each session is within the limit."""
    history = tmp_path / "history.csv"
    lines = [BASE[0], ",,,", ""] + [f"L{n},P-1,2024-03-{1 + n % 28:02d},BENCH,1184029555,DC,98940,,1,,45.00,,"
                                     for n in range(5200)] + ["   ,  ", BASE[4]]
    history.write_text("\n".join(lines) + "\n")
    assert_same_history([history])


def test_a_place_of_service_column_gives_the_history_read_whole(tmp_path: Path) -> None:
    rows = [",".join(HEADER) + ",place_of_service"]
    for i in range(300):
        place = ["11", "12", "", " 22"][i % 4]  # the last is not in the usual form: checked by column
        rows.append(f"H{i // 3},P-{i // 30},2024-0{1 + i // 3 % 9}-1{i // 3 % 10},ACME,1184029555,DC,9714{i % 2},,1,"
                    f"{15 + i % 20},48.00,M54.50,,{place}")
    path = tmp_path / "history.csv"
    path.write_text("\n".join(rows) + "\n")
    assert_same_history([path])
    usual = tmp_path / "usual.csv"
    usual.write_text("\n".join(row for row in rows if not row.endswith(" 22")) + "\n")
    assert_same_history([usual])


def test_declared_fields_are_read_with_the_history_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "history.csv"
    path.write_text(",".join(HEADER) + ",accident_date\nH1,P-1,2024-01-02,ACME,1184029555,DC,97140,,1,,48.00,,,"
                    "2023-12-20\n")
    assert read_compact([path], Columns().with_facts(["accident_date"])) is None
    assert isinstance(read_compact([path]), CompactHistory)
