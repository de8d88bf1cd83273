"""benchmarks/polars_reference.py, the reference policy written by hand in polars: it must write
exactly the bytes of `payrules check --format csv`, or the benchmark's ratio compares unequal work.

Needs polars (the `bench` extra)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import polars  # noqa: F401  (the program under test needs it; fail here, plainly, when it is missing)
from syrupy.assertion import SnapshotAssertion

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
HEADER = ["session_id", "patient_id", "date", "payer", "provider_npi", "provider_credential", "code",
          "modifiers", "units", "minutes", "charge", "diagnoses", "prescription_by"]


def npi(first9: str) -> str:
    """A made-up NPI with a valid check digit (Luhn over 80840 + the first nine digits)."""
    total = 0
    for i, ch in enumerate(reversed("80840" + first9)):
        digit = int(ch)
        if i % 2 == 0:
            digit = digit * 2 - 9 if digit * 2 > 9 else digit * 2
        total += digit
    return first9 + str((10 - total % 10) % 10)


def both(folder: Path, sessions: str, rules: str) -> tuple[subprocess.CompletedProcess[bytes], ...]:
    """`payrules check --format csv` and the polars program on the same paths, run from `folder`
    (the paths as given are written into the output)."""
    checked = subprocess.run([sys.executable, "-m", "payrules", "check", sessions, "--rules", rules, "--format", "csv"],
                             cwd=folder, capture_output=True)
    by_hand = subprocess.run([sys.executable, str(BENCH / "polars_reference.py"), sessions, "--rules", rules],
                             cwd=folder, capture_output=True)
    return checked, by_hand


def test_generated_sessions_give_the_bytes_of_payrules_check(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(BENCH / "generate.py"), "--lines", "5000", "--seed", "11", "-o",
                    str(tmp_path / "sessions.csv")], check=True)
    (tmp_path / "reference.payer").write_bytes((BENCH / "reference.payer").read_bytes())
    checked, by_hand = both(tmp_path, "sessions.csv", "reference.payer")
    assert checked.returncode == 1, checked.stderr  # some lines are denied
    assert by_hand.returncode == checked.returncode, by_hand.stderr
    assert by_hand.stdout.count(b"\r\n") == 5001  # the header and one row per line, no footer
    assert by_hand.stdout == checked.stdout


def test_awkward_valid_input_gives_the_bytes_of_payrules_check(tmp_path: Path) -> None:
    """Cells that need quotes or a formula guard, padded and lower-case fields, amounts in the
    thousands and millions, a day of 1,002 CMT lines, sessions split over the file, a patient who
    comes back after another (the file is then judged whole) and paths with commas."""
    folder = tmp_path / "claims, march"
    folder.mkdir()
    (folder / "reference, copy.payer").write_bytes((BENCH / "reference.payer").read_bytes())
    first, second = npi("123456789"), npi("987654321")
    rows = [
        ['V"1,x', "=P1", "2024-03-04", "bench", first, "dc", " 97124 ", "xs;59 59", "6", "90", "12345.67", "M54.50", ""],
        ['V"1,x', "=P1", "2024-03-04", "bench", first, "dc", "97140", "", "", "", "45", "", "MD"],
        ['V"1,x', "=P1", "2024-03-04", "bench", first, "dc", "97140", "gp", "3", "", "1000.5", "", ""],
        *[["S2", "=P1", "2024-03-04", "bench", second, "", "98941", "", "1", "", "0.00" if i == 0 else "55.00", "",
           ""] for i in range(1002)],
        ["S3", "=P1", "2024-03-04", "bench", second, "", "97140", "", "2", "", "70.00", "", ""],
        ["S3", "=P1", "2024-03-04", "bench", second, "PT", "97124", "", "2", "", "0.00", "", ""],
        ["M1", "+P4", "2024-04-02", "BENCH", first, "PT", "97140", "", "5", "", "2500000.00", "", ""],
        ["M1", "+P4", "2024-04-02", "BENCH", first, "PT", "97010", "", "1", "", "15.00", "", ""],
        ["A1", "-P2", "2024-05-01", "BENCH", first, "MD", "97140", "", "5", "", "2000000.00", "", ""],
        ["A2", "-P2", "2024-05-01", "BENCH", first, "MD", "98940", "", "1", "", "45.00", "", ""],
        ["A1", "-P2", "2024-05-01", "BENCH", first, "MD", "97124", "", "1", "", "30.00", "", ""],
        ["A1", "-P2", "2024-05-01", "BENCH", first, "MD", "97010", "", "1", "", "15.00", "", ""],
        ["B1", "P3", "2024-06-01", "BENCH", second, "LMT", "97112", "", "1", "", "40.00", "", ""],
        ["A3", "-P2", "2024-05-01", "BENCH", second, "DC", "97140", "", "4", "", "140.00", "", ""],
    ]
    with open(folder / "sessions, march.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(rows)
    checked, by_hand = both(folder, "sessions, march.csv", "reference, copy.payer")
    assert checked.returncode == 1, checked.stderr
    assert by_hand.returncode == 1, by_hand.stderr
    assert by_hand.stdout == checked.stdout
    text = by_hand.stdout.decode()
    # The input exercises what it means to: quoted and guarded cells, grouped thousands, a later session cited.
    assert '"sessions, march.csv",2,"V""1,x",\'=P1,' in text
    assert "from $2,500,000.00 to $2,000,000.00" in text and "and 1,001 more such lines that day" in text
    assert "(in session A2, line 1)" in text.splitlines()[-1]


def test_a_file_of_only_a_header_gives_only_the_header(tmp_path: Path) -> None:
    (tmp_path / "sessions.csv").write_text(",".join(HEADER) + "\r\n")
    checked, by_hand = both(tmp_path, "sessions.csv", str(BENCH / "reference.payer"))
    assert (checked.returncode, by_hand.returncode) == (0, 0)
    assert by_hand.stdout == checked.stdout == b"file,row,session_id,patient_id,date,payer,line,code,modifiers,units," \
                                               b"charge,allowed,status,carc,rarc,rules,reasons\r\n"


def test_a_line_payrules_would_not_judge_is_refused_not_written(tmp_path: Path,
                                                               text_snapshot: SnapshotAssertion) -> None:
    good = ["V1", "P1", "2024-03-04", "BENCH", npi("123456789"), "DC", "97140", "", "1", "", "35.00", "", ""]
    bad_npi = [*good[:4], "1234567890", *good[5:]]
    with open(tmp_path / "sessions.csv", "w", newline="") as f:
        csv.writer(f).writerows([HEADER, good, good, bad_npi])
    checked, by_hand = both(tmp_path, "sessions.csv", str(BENCH / "reference.payer"))
    assert b"not judged" in checked.stdout  # payrules writes the line as an error row
    assert by_hand.returncode == 2
    assert by_hand.stdout == b""
    assert by_hand.stderr.decode() == text_snapshot


def test_other_rules_are_refused(tmp_path: Path, text_snapshot: SnapshotAssertion) -> None:
    (tmp_path / "sessions.csv").write_text(",".join(HEADER) + "\r\n")
    (tmp_path / "other.payer").write_text('payer BENCH "Benchmark payer"\n\ncovered: only 97140\n')
    _, by_hand = both(tmp_path, "sessions.csv", "other.payer")
    assert by_hand.returncode == 2
    assert by_hand.stderr.decode() == text_snapshot
