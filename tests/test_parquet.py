"""Parquet input and output: the same decisions as CSV input, every value's text, worded errors, and
`--format parquet` rows that read back as the `--format csv` rows."""

from __future__ import annotations

import builtins
import csv
import datetime
import io
import random
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from syrupy.assertion import SnapshotAssertion

from payrules import api
from payrules.diagnostics import InputError
from payrules.fields import ALL_FIELDS, Record
from payrules.formats import parquet
from payrules.masking import PatientMask
from payrules.records import Columns, _batches, _csv_records
from payrules.render import CSV_COLUMNS, CsvWriter, Writer
from payrules.runner import Block, Tally, judge_batch

RULES = """\
payer SUMMIT "Summit (test)"
set CMT = 98940-98942
set massage = 97124, 97140
only CMT, massage
subluxation: requires diagnosis M99.0* for CMT
massage-by: requires LMT or DC NPI for massage
massage-units: max 4 units of massage per session
massage-cap: max $150 per day for massage
no-massage-with-cmt: no massage same day as CMT unless modifier 59, XS
"""

NPIS = ("1550000115", "1550000222", "1550000339", "1660000443")
BAD_NPI = "1550000116"  # the last digit is not the check digit


# --- made-up service lines, as Python values ------------------------------------------------------


def made_up_lines(seed: int = 12, patients: int = 60) -> list[dict[str, Any]]:
    """Lines of made-up patients, grouped by patient, with same-day visits, and bad lines that a
    typed Parquet column can still hold (a bad NPI, no units, a bad modifier, a negative charge,
    a session over two dates, an unknown payer, no session id, a session id reused)."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for p in range(patients):
        for v in range(rng.randint(1, 4)):
            date = datetime.date(2024, 3, 1) + datetime.timedelta(days=rng.randint(0, 6))
            for _ in range(rng.randint(1, 4)):
                out.append({
                    "session_id": f"S{p:03d}-{v}", "patient_id": f"P{p:04d}", "date": date, "payer": "SUMMIT",
                    "provider_npi": rng.choice(NPIS), "provider_credential": rng.choice(("DC", "LMT", "PT", "")),
                    "code": rng.choice(("98940", "98941", "97124", "97140", "97110")),
                    "modifiers": rng.choice(([], ["59"], ["GP", "XS"], ["25"])),
                    "units": rng.choice((None, 1, 2, 3, 5)), "minutes": rng.choice((None, 15, 30)),
                    "charge": Decimal(rng.randint(2000, 12000)).scaleb(-2),
                    "diagnoses": rng.choice((["M99.01"], ["M54.50", "M99.03"], ["M62.830"], [])),
                    "prescription_by": None, "place_of_service": None,
                })
    bad = [("provider_npi", BAD_NPI), ("units", 0), ("modifiers", ["GP", "X"]), ("charge", Decimal("-5.00")),
           ("date", datetime.date(2024, 4, 1)), ("payer", "NOPE"), ("session_id", ""), ("code", "9714")]
    for n, (field, value) in enumerate(bad):
        at = 7 + n * 23
        out[at] = {**out[at], field: value}
    out[-1] = {**out[-1], "session_id": out[0]["session_id"]}  # a session id of another patient
    return out


def cell(value: Any) -> str:
    """A value as a CSV export writes it."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    return value.isoformat() if isinstance(value, datetime.date) else str(value)


def write_csv(lines: list[dict[str, Any]], path: Path) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(ALL_FIELDS)
        writer.writerows([cell(line[f]) for f in ALL_FIELDS] for line in lines)
    return path


def string_table(lines: list[dict[str, Any]]) -> pa.Table:
    """Every column text; an empty value is null in every other column, "" in the rest."""
    return pa.table({f: pa.array([(None if i % 2 and not cell(line[f]) else cell(line[f])) for line in lines],
                                 pa.string()) for i, f in enumerate(ALL_FIELDS)})


TYPES = {
    "session_id": pa.string(), "patient_id": pa.dictionary(pa.int32(), pa.string()), "date": pa.date32(),
    "payer": pa.large_string(), "provider_npi": pa.int64(), "provider_credential": pa.string(),
    "code": pa.string(), "modifiers": pa.list_(pa.string()), "units": pa.int64(), "minutes": pa.int32(),
    "charge": pa.decimal128(10, 2), "diagnoses": pa.large_list(pa.string()), "prescription_by": pa.string(),
}
"""The columns as a typed export has them: whole numbers, exact amounts, dates, lists."""


def typed_table(lines: list[dict[str, Any]]) -> pa.Table:
    def value(field: str, v: Any) -> Any:
        return int(v) if field == "provider_npi" else v

    return pa.table({f: pa.array([value(f, line[f]) for line in lines], kind) for f, kind in TYPES.items()})


def write_parquet(table: pa.Table, path: Path, row_group_size: int = 50) -> Path:
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


# --- judging ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rules() -> api.RuleSet:
    return api.compile_text(RULES, "rules.payer")


def blocks(found: Iterable[Record], rules: api.RuleSet, grouped: bool = True) -> list[Block]:
    return [judge_batch(batch, rules.policies) for batch in _batches(iter(found), grouped)]


def csv_rows(judged: Iterable[Block], mask: PatientMask | None = None) -> list[list[str]]:
    """The rows of `--format csv` for judged blocks, header first."""
    out = io.StringIO()
    writer = CsvWriter(out, mask=mask)
    for block in judged:
        writer.block(block)
    return list(csv.reader(io.StringIO(out.getvalue(), newline="")))


def decisions(rows: list[list[str]]) -> list[list[str]]:
    """Rows without the file column (it names each input), in input order."""
    return sorted((r[1:] for r in rows[1:]), key=lambda r: int(r[0]))


def written(judged: Iterable[Block], path: Path, mask: PatientMask | None = None) -> Path:
    writer = parquet.ParquetWriter(path, mask=mask)
    tally = Tally()
    for block in judged:
        writer.block(block)
        tally.add(block)
    writer.close(tally.summary())
    return path


# --- input: the same decisions as CSV ---------------------------------------------------------------


@pytest.mark.parametrize("table", [string_table, typed_table], ids=["string-columns", "typed-columns"])
def test_parquet_input_gives_the_decisions_of_the_same_csv(table: Any, rules: api.RuleSet, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parquet, "BATCH_ROWS", 13)  # batches that cut row groups and sessions
    lines = made_up_lines()
    from_csv = csv_rows(blocks(_csv_records(write_csv(lines, tmp_path / "v.csv"), Columns()), rules))
    path = write_parquet(table(lines), tmp_path / "v.parquet")
    from_parquet = csv_rows(blocks(parquet.records(path), rules))
    assert decisions(from_parquet) == decisions(from_csv)
    assert {r[0] for r in from_parquet[1:]} == {str(path)}
    # Every line is accounted for exactly once: rows 2 to N+1, judged or not.
    assert sorted(int(r[1]) for r in from_parquet[1:]) == list(range(2, len(lines) + 2))
    statuses = {r[12] for r in from_parquet[1:]}
    assert {"paid", "denied", "not judged"} <= statuses


def test_parquet_input_ungrouped_gives_the_same_decisions(rules: api.RuleSet, tmp_path: Path) -> None:
    lines = made_up_lines()
    shuffled = lines[:]
    random.Random(3).shuffle(shuffled)
    from_csv = csv_rows(blocks(_csv_records(write_csv(shuffled, tmp_path / "v.csv"), Columns()), rules, False))
    path = write_parquet(typed_table(shuffled), tmp_path / "v.parquet", row_group_size=17)
    assert decisions(csv_rows(blocks(parquet.records(path), rules, False))) == decisions(from_csv)


def test_lines_not_judged_name_file_row_and_field(rules: api.RuleSet, tmp_path: Path,
                                                  text_snapshot: SnapshotAssertion) -> None:
    path = write_parquet(typed_table(made_up_lines()), tmp_path / "visits.parquet")
    rows = csv_rows(blocks(parquet.records(path), rules))
    errors = [f"{Path(r[0]).name}:{r[1]} session {r[2] or '-'}: {r[16]}" for r in rows[1:] if r[12] == "not judged"]
    assert "\n".join(errors) + "\n" == text_snapshot(name="not-judged")


def test_record_problems_name_the_column_a_mapping_renamed(tmp_path: Path) -> None:
    lines = made_up_lines()[:20]
    table = typed_table(lines).rename_columns(["Visit", "Member", "DOS", "Payer", "Rendering NPI", "Credential",
                                               "CPT", "Mods", "Units", "Minutes", "Charge Amount", "Dx", "Rx"])
    mods = pa.array([(line["modifiers"] + [None, None])[:2] for line in lines], pa.list_(pa.string()))
    table = table.drop_columns(["Mods"]).append_column("Mod 1", pc_element(mods, 0)) \
        .append_column("Mod 2", pc_element(mods, 1))
    path = write_parquet(table, tmp_path / "export.parquet")
    mapping = tmp_path / "columns.toml"
    mapping.write_text('[columns]\nsession_id = "Visit"\npatient_id = "Member"\ndate = "DOS"\n'
                       'provider_npi = "Rendering NPI"\nprovider_credential = "Credential"\ncode = "CPT"\n'
                       'modifiers = ["Mod 1", "Mod 2"]\ncharge = "Charge Amount"\ndiagnoses = "Dx"\n'
                       'prescription_by = "Rx"\n', encoding="utf-8")
    found = list(parquet.records(path, Columns.load(mapping)))
    expected = list(_csv_records(write_csv(lines, tmp_path / "v.csv"), Columns()))
    # Two modifier columns are joined as the CSV reader joins them: `GP;XS`, `59;`.
    assert [[*r[:7], r[7].strip(";"), *r[8:]] for r, _, _ in found] == [list(r) for r, _, _ in expected]
    assert found[7][1].column("provider_npi") == "Rendering NPI"
    assert found[7][1].column("modifiers") == "Mod 1 + Mod 2"


def pc_element(lists: pa.Array, index: int) -> pa.Array:
    return pa.array([v[index] for v in lists.to_pylist()], pa.string())


def test_records_are_read_in_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = made_up_lines()
    path = write_parquet(typed_table(lines), tmp_path / "v.parquet", row_group_size=1000)
    seen: list[int] = []
    real = pq.ParquetFile.iter_batches

    def counting(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for batch in real(self, *args, **kwargs):
            seen.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(parquet, "BATCH_ROWS", 64)
    monkeypatch.setattr(pq.ParquetFile, "iter_batches", counting)
    found = parquet.records(path)
    first = next(found)
    assert first[1].row == 2 and seen == [64]  # one batch read, not the file
    assert len(list(found)) + 1 == len(lines)
    assert max(seen) == 64 and sum(seen) == len(lines)


# --- input: the text of each value ------------------------------------------------------------------

MIDNIGHT = datetime.datetime(2024, 3, 5)
CONVERSIONS: list[tuple[str, pa.Array, list[str]]] = [
    ("string", pa.array(["97140", None, " a b "]), ["97140", "", " a b "]),
    ("int8", pa.array([4, None, -1], pa.int8()), ["4", "", "-1"]),
    ("uint64", pa.array([2**64 - 1, 0, None], pa.uint64()), ["18446744073709551615", "0", ""]),
    ("decimal(10,2)", pa.array([Decimal("45.00"), Decimal("0.50"), None], pa.decimal128(10, 2)),
     ["45.00", "0.50", ""]),
    ("decimal(12,3)", pa.array([Decimal("45.125"), Decimal("45.100"), None], pa.decimal128(12, 3)),
     ["45.125", "45.100", ""]),
    ("decimal256(40,2)", pa.array([Decimal("1234567890123456789012345.67"), None, None], pa.decimal256(40, 2)),
     ["1234567890123456789012345.67", "", ""]),
    ("float64", pa.array([45.0, 45.5, 0.1 + 0.2], pa.float64()), ["45", "45.5", "0.30000000000000004"]),
    ("float64-gaps", pa.array([2.0, float("nan"), None], pa.float64()), ["2", "", ""]),
    ("float64-huge", pa.array([1e20, float("inf"), -0.0], pa.float64()), ["100000000000000000000", "inf", "0"]),
    ("float32", pa.array([45.1, 45.0, 0.3], pa.float32()), ["45.1", "45", "0.3"]),
    ("bool", pa.array([True, False, None]), ["true", "false", ""]),
    ("date32", pa.array([datetime.date(2024, 3, 5), None, datetime.date(1, 1, 1)], pa.date32()),
     ["2024-03-05", "", "0001-01-01"]),
    ("date64", pa.array([datetime.date(2024, 3, 5), None, None], pa.date64()), ["2024-03-05", "", ""]),
    ("timestamp", pa.array([MIDNIGHT, MIDNIGHT.replace(hour=9, minute=30), None], pa.timestamp("ms")),
     ["2024-03-05", "2024-03-05T09:30:00", ""]),
    ("timestamp-tz", pa.array([datetime.datetime(2024, 3, 5, 5), datetime.datetime(2024, 3, 5), None],
                              pa.timestamp("us", tz="America/New_York")),
     ["2024-03-05", "2024-03-04T19:00:00-05:00", ""]),
    ("dictionary", pa.array(["P1", "P2", None]).dictionary_encode(), ["P1", "P2", ""]),
    ("list<string>", pa.array([["GP", "59"], [], None]), ["GP;59", "", ""]),
    ("list-with-null", pa.array([["GP", None, "59"], ["25"], [None]]), ["GP;;59", "25", ""]),
    ("large_list<int>", pa.array([[1, 2], None, [3]], pa.large_list(pa.int32())), ["1;2", "", "3"]),
    ("binary", pa.array([b"M54.50", None, "caf\u00e9".encode()], pa.binary()), ["M54.50", "", "caf\u00e9"]),
    ("null", pa.array([None, None, None], pa.null()), ["", "", ""]),
]


def test_each_arrow_type_reads_as_the_text_a_csv_holds(tmp_path: Path) -> None:
    table = pa.table({name: array for name, array, _ in CONVERSIONS})
    path = write_parquet(table, tmp_path / "types.parquet")
    rows = list(parquet.text_rows(path))
    assert rows[0] == [name for name, _, _ in CONVERSIONS]
    got = {name: [row[i] for row in rows[1:]] for i, name in enumerate(rows[0])}
    assert got == {name: expected for name, _, expected in CONVERSIONS}


def test_a_float_amount_is_judged_by_its_exact_value(rules: api.RuleSet, tmp_path: Path) -> None:
    """A float charge that is not a whole number of cents is refused, never rounded."""
    lines = made_up_lines()[:3]
    table = typed_table(lines).set_column(10, "charge", pa.array([45.5, 0.1 + 0.2, 60.0], pa.float64()))
    table = table.set_column(8, "units", pa.array([2.0, None, float("nan")], pa.float64()))
    found = list(parquet.records(write_parquet(table, tmp_path / "f.parquet")))
    assert [(r[10], r[8]) for r, _, _ in found] == [("45.5", "2"), ("0.30000000000000004", ""), ("60", "")]
    rows = csv_rows(blocks(found, rules))
    refused = [r[16] for r in rows[1:] if r[1] == "3"]
    assert refused == ["charge: an amount has at most two decimals, found `0.30000000000000004`"]
    assert {r[1]: r[10] for r in rows[1:] if r[12] != "not judged"} == {"2": "45.50", "4": "60.00"}


def test_bytes_that_are_not_text_reject_their_line_only(rules: api.RuleSet, tmp_path: Path) -> None:
    lines = made_up_lines()[:3]
    table = typed_table(lines).set_column(0, "session_id", pa.array(["A", "B", "C"]))
    table = table.set_column(1, "patient_id", pa.array([b"P1", b"P\xff2", b"P3"], pa.binary()))
    found = list(parquet.records(write_parquet(table, tmp_path / "b.parquet")))
    assert [p for _, _, p in found] == [None, ("patient_id", "P\\xff2",
                                               "column `patient_id` holds bytes that are not UTF-8 text"), None]
    rows = csv_rows(blocks(found, rules))
    assert [(r[1], r[16]) for r in rows[1:] if r[12] == "not judged"] == [
        ("3", "patient_id: column `patient_id` holds bytes that are not UTF-8 text")]
    assert [r[3] for r in rows[1:] if r[12] != "not judged"] == ["P1", "P3"]


def test_a_column_that_feeds_no_field_may_hold_any_type(tmp_path: Path) -> None:
    table = typed_table(made_up_lines()[:2])
    table = table.append_column("extra", pa.array([{"a": 1}, {"a": 2}]))
    assert len(list(parquet.records(write_parquet(table, tmp_path / "x.parquet")))) == 2


def test_a_long_field_rejects_its_line(tmp_path: Path) -> None:
    table = typed_table(made_up_lines()[:2]).set_column(6, "code", pa.array(["97140", "9" * 1500]))
    found = list(parquet.records(write_parquet(table, tmp_path / "x.parquet")))
    assert found[0][2] is None
    assert found[1][0][6] == "" and found[1][2] is not None and found[1][2].field == "code"
    assert "1,500 characters long" in found[1][2].message


# --- input: worded errors ------------------------------------------------------------------------


def error_of(path: Path, columns: Columns | None = None) -> str:
    with pytest.raises(InputError) as caught:
        list(parquet.records(path, columns))
    return str(caught.value)


def test_unreadable_input_gets_one_worded_error(tmp_path: Path, text_snapshot: SnapshotAssertion) -> None:
    lines = made_up_lines()
    (tmp_path / "visits.csv").write_text("session_id,patient_id\nS1,P1\n", encoding="utf-8")
    (tmp_path / "empty.parquet").write_bytes(b"")
    good = write_parquet(typed_table(lines), tmp_path / "good.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(good[: len(good) // 2])
    (tmp_path / "folder.parquet").mkdir()
    write_parquet(typed_table(lines).drop_columns(["code", "charge"]), tmp_path / "missing.parquet")
    nested = typed_table(lines[:2]).drop_columns(["modifiers"]).append_column(
        "modifiers", pa.array([[["GP"]], [["59"]]], pa.list_(pa.list_(pa.string()))))
    write_parquet(nested, tmp_path / "nested.parquet")
    struct = typed_table(lines[:2]).drop_columns(["charge"]).append_column(
        "charge", pa.array([{"amount": 1}, {"amount": 2}]))
    write_parquet(struct, tmp_path / "struct.parquet")
    names = ["visits.csv", "empty.parquet", "cut.parquet", "folder.parquet", "no-such.parquet", "missing.parquet",
             "nested.parquet", "struct.parquet"]
    messages = [error_of(tmp_path / name).replace(str(tmp_path), "<tmp>") for name in names]
    assert "\n".join(messages) + "\n" == text_snapshot(name="errors")


def test_missing_columns_are_worded_as_for_csv(tmp_path: Path) -> None:
    lines = made_up_lines()[:3]
    table = typed_table(lines).drop_columns(["payer", "charge"])
    write_parquet(table, tmp_path / "v.parquet")
    with open(tmp_path / "v.csv", "w", encoding="utf-8") as stream:
        stream.write(",".join(table.column_names) + "\n")
    with pytest.raises(InputError) as from_csv:
        list(_csv_records(tmp_path / "v.csv", Columns()))
    assert error_of(tmp_path / "v.parquet") == str(from_csv.value).replace("v.csv", "v.parquet")


def test_damaged_rows_are_an_error_that_says_from_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parquet, "BATCH_ROWS", 50)
    path = write_parquet(typed_table(made_up_lines()), tmp_path / "v.parquet", row_group_size=100)
    data = bytearray(path.read_bytes())
    column = pq.ParquetFile(path).metadata.row_group(1).column(6)
    start = column.data_page_offset
    data[start: start + column.total_compressed_size] = b"\xff" * column.total_compressed_size
    path.write_bytes(bytes(data))
    message = error_of(path)
    assert message.startswith(f"{path}: a damaged Parquet file: cannot read the rows after row 101 (")
    assert "\n" not in message


def test_without_pyarrow_the_error_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   text_snapshot: SnapshotAssertion) -> None:
    real = builtins.__import__

    def no_pyarrow(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.split(".")[0] == "pyarrow":
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    parquet._pyarrow.cache_clear()
    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    try:
        read = error_of(tmp_path / "v.parquet")
        with pytest.raises(InputError) as write:
            parquet.ParquetWriter(tmp_path / "out.parquet")
    finally:
        monkeypatch.undo()
        parquet._pyarrow.cache_clear()
    assert read == str(write.value)
    assert read == text_snapshot(name="no-pyarrow")


def test_sniff_knows_parquet_by_its_first_bytes(tmp_path: Path) -> None:
    path = write_parquet(typed_table(made_up_lines()[:2]), tmp_path / "v.bin")
    assert parquet.sniff(path.read_bytes()[:512])
    assert not parquet.sniff(b"session_id,patient_id\n")
    assert not parquet.sniff(b"ISA*00*")


# --- output ------------------------------------------------------------------------------------------


NASTY = ["S,1", 'S"2', "S\n3", "=1+1", "-S5", "caf\u00e9 \u2028", "\t6", "@7"]


def nasty_lines() -> list[dict[str, Any]]:
    """Lines whose user text needs quoting in a CSV or is a spreadsheet formula."""
    lines = made_up_lines()
    for i, text in enumerate(NASTY):
        at = 3 + i * 11
        lines[at] = {**lines[at], "session_id": text}
        lines[at + 1] = {**lines[at + 1], "patient_id": text, "code": text if i % 2 else lines[at + 1]["code"]}
    return lines


@pytest.fixture
def judged(rules: api.RuleSet, tmp_path: Path) -> list[Block]:
    path = write_parquet(string_table(nasty_lines()), tmp_path / "in.parquet")
    return blocks(parquet.records(path), rules)


def test_output_reads_back_as_the_csv_output_row_for_row(judged: list[Block], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parquet, "ROW_GROUP_ROWS", 40)
    path = written(judged, tmp_path / "out.parquet")
    expected = csv_rows(judged)
    assert list(parquet.text_rows(path)) == expected
    assert pq.ParquetFile(path).metadata.num_row_groups == -(-(len(expected) - 1) // 40)
    assert any(r[16].startswith("'") or r[2].startswith("'") for r in expected[1:])  # formula guards kept


def test_output_masks_patient_ids_as_the_csv_does(judged: list[Block], tmp_path: Path) -> None:
    mask = PatientMask(b"k" * 32)
    path = written(judged, tmp_path / "out.parquet", mask)
    rows = list(parquet.text_rows(path))
    assert rows == csv_rows(judged, mask)
    assert not {r[3] for r in rows[1:]} & {f"P{p:04d}" for p in range(60)}


def test_output_columns_are_typed_where_exact(judged: list[Block], tmp_path: Path,
                                              text_snapshot: SnapshotAssertion) -> None:
    path = written(judged, tmp_path / "out.parquet")
    schema = pq.read_schema(path)
    assert schema.names == list(CSV_COLUMNS)
    assert schema.remove_metadata().to_string() == text_snapshot(name="schema")
    table = pq.read_table(path)
    judged_row = table.filter(pa.compute.field("status") == "paid").slice(0, 1).to_pylist()[0]
    assert isinstance(judged_row["charge"], Decimal) and isinstance(judged_row["date"], datetime.date)
    refused = table.filter(pa.compute.field("status") == "not judged").to_pylist()
    assert all(r["date"] is None and r["charge"] is None and r["units"] is None for r in refused)


def test_output_is_the_same_bytes_whether_written_whole_or_in_parts(judged: list[Block], tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parquet, "ROW_GROUP_ROWS", 32)
    whole = written(judged, tmp_path / "whole.parquet").read_bytes()
    assert written(judged, tmp_path / "again.parquet").read_bytes() == whole
    # As `payrules check` with workers: each part rendered by a continuation, then extended in order.
    writer = parquet.ParquetWriter(tmp_path / "parts.parquet")
    writer.block(judged[0])
    for start in range(1, len(judged), 7):
        part: Writer = writer.continuation(io.StringIO())
        for block in judged[start:start + 7]:
            part.block(block)
        writer.extend(part.fragment())
    writer.close(Tally().summary())
    assert (tmp_path / "parts.parquet").read_bytes() == whole


def test_output_metadata_holds_nothing_that_varies(judged: list[Block], tmp_path: Path) -> None:
    meta = pq.ParquetFile(written(judged, tmp_path / "out.parquet")).metadata
    assert meta.created_by.startswith("parquet-cpp-arrow version ")
    assert set(meta.metadata) == {b"ARROW:schema"}


def test_output_of_no_lines_has_the_columns(tmp_path: Path) -> None:
    sink = io.BytesIO()
    writer = parquet.ParquetWriter(sink)
    writer.close(Tally().summary())
    assert not sink.closed
    table = pq.read_table(io.BytesIO(sink.getvalue()))
    assert table.num_rows == 0 and table.column_names == list(CSV_COLUMNS)
