"""Seeded generator of synthetic session records (CSV), grouped by patient as exports usually are.

    python benchmarks/generate.py --lines 1000000 --seed 7 -o /tmp/sessions.csv

Patients, dates, providers, credentials, codes, modifiers, units and charges are drawn from a
fixed seed, so the same arguments always give the same file. All patients are invented and
every NPI has a valid check digit.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from collections.abc import Iterator
from pathlib import Path

HEADER = ["session_id", "patient_id", "date", "payer", "provider_npi", "provider_credential", "code",
          "modifiers", "units", "minutes", "charge", "diagnoses", "prescription_by"]

PAYER = "BENCH"
CODES = ["97124", "97124", "97140", "97140", "97140", "97010", "97112", "98940", "98941", "98942", "97110"]
CREDENTIALS = ["DC", "DC", "LMT", "LMT", "PT", "MD", "CA"]
MODIFIERS = ["", "", "", "", "59", "XS", "GP", "59 GP"]
DIAGNOSES = ["M54.50", "M54.2", "M62.830", "M99.01", "M99.03", "S13.4XXA", "M79.10"]
PRICES = {"97124": 3000, "97140": 3500, "97010": 1500, "97112": 4000, "97110": 3800, "98940": 4500,
          "98941": 5500, "98942": 6500}


def npi_with_check_digit(first9: str) -> str:
    total = 0
    for i, ch in enumerate(reversed("80840" + first9)):
        digit = int(ch)
        if i % 2 == 0:
            digit = digit * 2 - 9 if digit * 2 > 9 else digit * 2
        total += digit
    return first9 + str((10 - total % 10) % 10)


def rows(lines: int, seed: int) -> Iterator[list[str]]:
    rng = random.Random(seed)
    providers = [(npi_with_check_digit(str(100000000 + rng.randrange(199999999))), rng.choice(CREDENTIALS))
                 for _ in range(200)]
    written = 0
    patient = 0
    while written < lines:
        patient += 1
        for visit in range(rng.randint(1, 12)):
            day = 1 + (visit * 7 + rng.randrange(7)) % 365
            date = f"2024-{1 + (day - 1) // 31 % 12:02d}-{1 + (day - 1) % 28:02d}"
            npi, credential = rng.choice(providers)
            for number in range(rng.randint(1, 4)):
                if written == lines:
                    return
                code = rng.choice(CODES)
                timed = code in ("97124", "97140", "97112", "97110")
                units = rng.randint(1, 5) if timed else 1
                charge = PRICES[code] * units
                yield [f"V{patient}-{visit}", f"P{patient:07d}", date, PAYER, npi, credential, code,
                       rng.choice(MODIFIERS) if code != "98940" else "", str(units),
                       str(units * 15 - rng.randrange(7)) if timed else "",
                       f"{charge // 100}.{charge % 100:02d}", rng.choice(DIAGNOSES),
                       rng.choice(["MD", "DO", "DC", ""])]
                written += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    out = open(args.output, "w", newline="") if args.output else sys.stdout
    writer = csv.writer(out)
    writer.writerow(HEADER)
    writer.writerows(rows(args.lines, args.seed))
    if args.output:
        out.close()


if __name__ == "__main__":
    main()
