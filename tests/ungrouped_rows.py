"""Rows of generated sessions changed into lines not judged and put out of patient order: the
input of the tests of bucketed and read-once judging, which compare their output with the
whole-input path's."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path
from unittest import mock

from payrules import workers

from conftest import ROOT, transcript

# (column, value) changes that make a row a line not judged, or test how rows are cut
CHANGES = [
    (2, "2024-13-01"),        # a bad date
    (2, "2024-02-29"),        # another date than the rest of its session
    (3, "NOPE"),              # a payer without rules: the session is not judged
    (0, ""),                  # no session id
    (1, ""),                  # no patient id
    (1, " {patient} "),       # the same patient, with spaces the reader drops
    (8, "two"),               # bad units
    (11, '"M54.50"'),         # a quoted cell: the file is read with the csv module
    (11, "M" * 1200),         # a field over the limit payrules reads
    (-1, "short"),            # a row with too few cells
    (-2, "blank"),            # a blank row
]


def generated_rows(folder: Path, lines: int, seed: int) -> tuple[str, list[str]]:
    """The header and rows of `benchmarks/generate.py` (grouped by patient), with a `ref` column."""
    path = folder / "grouped.csv"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "generate.py"), "--lines", str(lines), "--seed",
                    str(seed), "-o", str(path)], check=True)
    header, *rows = path.read_text().splitlines()
    return header + ",ref", [f"{row},R{n}" for n, row in enumerate(rows)]


def arranged(rows: list[str], order: str, seed: int, changes: list[tuple[int, int]]) -> list[str]:
    """`rows` changed by `changes` (row index, index into CHANGES), then put in `order`:
    `grouped` (as they are), `late` (the first row moved to the end: grouped but for one),
    `date` (a stable sort by date of service), `shuffled`, or `interleaved` (patients in turn,
    one row each, each patient's rows in their order)."""
    rows = list(rows)
    for at, which in changes:
        column, value = CHANGES[which]
        cells = rows[at % len(rows)].split(",")
        if column == -1:
            cells = cells[:5]
        elif column == -2:
            cells = [""] * len(cells)
        elif column < len(cells):
            cells[column] = value.format(patient=cells[1] if len(cells) > 1 else "")
        rows[at % len(rows)] = ",".join(cells)
    if order == "late":
        rows.append(rows.pop(0))
    elif order == "date":
        rows.sort(key=lambda row: row.split(",", 3)[2] if row.count(",") >= 3 else "")  # stable
    elif order == "shuffled":
        random.Random(seed).shuffle(rows)
    elif order == "interleaved":
        queues: dict[str, list[str]] = {}
        for row in rows:
            queues.setdefault(row.split(",")[1] if "," in row else "", []).append(row)
        rows = []
        while queues:
            for patient in list(queues):
                rows.append(queues[patient].pop(0))
                if not queues[patient]:
                    del queues[patient]
    else:
        assert order == "grouped", order
    return rows


def check_args(path: Path, output_format: str, mask: bool, keep: bool, history: list[str] | None,
               rules: str = str(ROOT / "benchmarks" / "reference.payer")) -> list[str]:
    """`payrules check` of the sessions at `path`, with masked patient ids, the `ref` column
    kept, and a history of the rows `history` (a header and rows) written beside it, as asked."""
    args = ["check", str(path), "--rules", rules, "--format", output_format]
    if mask:
        args.append("--mask-patient-ids")
    if keep:
        args += ["--keep", "ref"]
    if history is not None:
        past = path.with_name("history.csv")
        past.write_text("\n".join(history) + "\n")
        args += ["--history", str(past)]
    return args


def once_and_scanned(args: list[str], output: Path) -> tuple[tuple[int, str, str, bytes], tuple[int, str, str, bytes]]:
    """(exit code, stdout, stderr, bytes of the output file) of `args` written with `--output`:
    read once (not scanned first), and scanned first."""
    results = []
    for once in (True, False):
        output.unlink(missing_ok=True)
        with mock.patch.object(workers, "reads_once", lambda paths: once):
            code, out, err = transcript([*args, "--output", str(output)])
        assert not output.with_name(output.name + ".partial").exists()
        results.append((code, out, err, output.read_bytes() if output.exists() else b""))
    return results[0], results[1]
