"""Seeded made-up service lines for the Spark and Dask examples and tests: some bad, some
history, sorted by date of service so that each patient is spread over many partitions.

    python examples/spark-dask/lines.py --lines 20000 -o /tmp/lines.csv --history /tmp/history.csv
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("generate", HERE.parent.parent / "benchmarks" / "generate.py")
assert _spec is not None and _spec.loader is not None
generate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(generate)

HEADER = ["line_id", *generate.HEADER]

_BAD = [
    ("provider_npi", "1234567890"),   # fails the check digit
    ("date", "2024-02-30"),            # not a calendar date
    ("code", ""),                      # required field empty
    ("charge", "-5.00"),               # negative
    ("units", "0"),                    # not positive
    ("payer", "BENHC"),                # no rule file (unknown payer, close to BENCH)
    ("modifiers", "GPX"),              # a modifier has two characters
    ("diagnoses", "x" * 1_001),        # longer than a field may be
    ("payer", "OTHER"),                # another payer in the same session
    ("patient_id", " "),               # blank patient
]


def lines(count: int, seed: int) -> tuple[list[list[str]], list[list[str]]]:
    """(lines, history): `count` lines sorted by date (stably), one in 50 with a bad field, and
    the first visit of every third patient moved to the history."""
    rng = random.Random(seed)
    found, history = [], []
    for number, row in enumerate(generate.rows(count, seed), start=1):
        patient = int(row[1][1:])
        if patient % 3 == 0 and row[0].endswith("-0"):
            history.append(row)
            continue
        if rng.randrange(50) == 0:
            field, value = rng.choice(_BAD)
            row[generate.HEADER.index(field)] = value
        found.append([f"L{number:06d}", *row])
    found.sort(key=lambda r: r[3])  # by date of service: a patient's lines end up far apart
    history.sort(key=lambda r: r[2])
    return found, history


def write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--history", type=Path, required=True)
    args = parser.parse_args()
    found, history = lines(args.lines, args.seed)
    write(args.output, HEADER, found)
    write(args.history, generate.HEADER, history)


if __name__ == "__main__":
    main()
