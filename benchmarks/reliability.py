"""The reliability benchmark: inputs whose shape could make payrules super-linear, each timed in
one run against a control of the same size, with a PASS/FAIL against its target.

    python benchmarks/reliability.py              # every measurement, a few minutes on 2 cores
    python benchmarks/reliability.py --timeout 60 # give up sooner on a measurement that hangs

1. Generates the inputs into a temporary folder (fixed seed, so every run judges the same files).
2. Runs each `payrules check` (or `compile`) in a fresh process with PAYRULES_NO_CACHE=1, and
   takes its wall time and peak resident memory (of that process and the workers it waited for).
3. Prints a table: each case, its control, the ratio and the target; exits 1 if a target is missed.
A run that passes its timeout is stopped and counts as missing its target.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import NamedTuple

HEADER = ("session_id,patient_id,date,payer,provider_npi,provider_credential,code,modifiers,units,minutes,charge,"
          "diagnoses,prescription_by\n")
NPIS = [("1328719467", "DC"), ("1764203810", "LMT"), ("1184029555", "DC"), ("1548230675", "LMT")]
CODES = ["97124", "97140", "98940", "97110"]
# Every kind of same-day and period rule, so that each has its share of the work.
POLICY = """payer FZ "Reliability payer"
set massage = 97124, 97140
set cmt = 98940-98943
units by cms rule for 97110, 97112, 97124, 97140
no massage same day as cmt unless modifier 59, XS
one of 97124, 97140 per day
no duplicate same day
visits: max 3 visits per 30 days for massage, cmt
weekly: max $150 per week for massage
yearly-units: max 20 units of massage per calendar year
plan: max $1,000 per plan year from July 1
session-cap: max $95 per session
requires prescription from MD or DO or DC for massage
requires diagnosis M54.5*, M62.83*, M99.0* for massage
"""
GIB = 1024 ** 3


class Run(NamedTuple):
    seconds: float
    peak_bytes: int
    exit_code: int | None  # None: stopped at the timeout
    stdout_bytes: int


class Row(NamedTuple):
    name: str
    value: str
    control: str
    ratio: str
    target: str
    ok: bool


def run(args: list[str], cwd: Path, timeout: float) -> Run:
    """One payrules command in a fresh process: wall time, and peak RSS from wait4 (this child and the
    workers it waited for, not the other children of this process)."""
    env = {**os.environ, "PAYRULES_NO_CACHE": "1"}
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "payrules", *args], cwd=cwd, env=env, stdout=out,
                                stderr=subprocess.DEVNULL)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - start > timeout:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = -9
                out.seek(0, os.SEEK_END)
                return Run(time.perf_counter() - start, usage.ru_maxrss * 1024, None, out.tell())
            time.sleep(0.02)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0, os.SEEK_END)
        return Run(seconds, usage.ru_maxrss * 1024, proc.returncode, out.tell())


def check_args(sessions: str, rules: str, *extra: str) -> list[str]:
    return ["check", sessions, "--rules", rules, "--format", "csv", "--output", os.devnull, *extra]


# --- inputs ----------------------------------------------------------------------------------------

def row(rng: random.Random, session: str, patient: str, day: str, payer: str = "FZ") -> str:
    npi, credential = rng.choice(NPIS)
    return f"{session},{patient},{day},{payer},{npi},{credential},{rng.choice(CODES)},,1,15,30.00,M54.50,MD\n"


def generate(folder: Path, seed: int, sessions: int, history: int) -> None:
    """Every input file of the benchmark, from one seeded generator."""
    rng = random.Random(seed)
    (folder / "policy.payer").write_text(POLICY)
    # One patient-day of one-line sessions, and the same rows spread over one patient each.
    (folder / "one-day.csv").write_text(HEADER + "".join(row(rng, f"S{i}", "P1", "2024-05-06") for i in range(sessions)))
    rng = random.Random(seed)
    (folder / "many-patients.csv").write_text(
        HEADER + "".join(row(rng, f"S{i}", f"P{i}", "2024-05-06") for i in range(sessions)))
    # The same sessions as one .json document and as .jsonl.
    objects = []
    for i in range(sessions):
        npi, credential = rng.choice(NPIS)
        objects.append({"session_id": f"J{i}", "patient_id": f"P{i}", "date": "2024-05-06", "payer": "FZ",
                        "provider_npi": npi, "provider_credential": credential,
                        "lines": [{"code": rng.choice(CODES), "units": 1, "charge": "30.00", "diagnoses": ["M54.50"],
                                   "prescription_by": "MD"}]})
    (folder / "sessions.json").write_text(json.dumps({"sessions": objects}, indent=1))
    (folder / "sessions.jsonl").write_text("".join(json.dumps(o) + "\n" for o in objects))
    # 500 lines of P1 judged against `history` earlier rows of P1, or of other patients.
    days = [(date(2021, 1, 1) + timedelta(days=(i * 3) % 1090)).isoformat() for i in range(history)]
    (folder / "current.csv").write_text(
        HEADER + "".join(row(rng, f"C{i}", "P1", f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}") for i in range(500)))
    (folder / "history-same.csv").write_text(HEADER + "".join(row(rng, f"H{i}", "P1", d) for i, d in enumerate(days)))
    (folder / "history-other.csv").write_text(
        HEADER + "".join(row(rng, f"H{i}", f"Q{i}", d) for i, d in enumerate(days)))
    # 400 rules, each a distinct 10,000-code range, and 200 lines to judge with them.
    (folder / "ranges.payer").write_text("payer BIG\n" + "".join(
        f"r{i}: not covered {10000 + 10 * i}-{19999 + 10 * i}\n" for i in range(400)))
    (folder / "ranges.csv").write_text(HEADER + "".join(
        f"S{i},P{i},2024-05-06,BIG,1328719467,DC,{10000 + rng.randrange(14000)},,1,,30.00,,\n" for i in range(200)))
    (folder / "one-range.payer").write_text("payer BIG\nr0: not covered 10000-19999\n")
    # A 16 KB rule file: an 8,000-character set name and an unknown 8,000-character reference to it.
    (folder / "long-names.payer").write_text(f"payer ACME\nset {'a' * 8000} = 97140\nonly {'a' * 7999}b\n")
    (folder / "short-names.payer").write_text("payer ACME\nset a = 97140\nonly b\n")
    # 200 sessions of an unknown payer id, of 10,000 characters or of 3, against 12 payers' rule files.
    payers = folder / "payers"
    payers.mkdir()
    for i in range(12):
        (payers / f"p{i}.payer").write_text(f"payer PAYER-{i:02d}-{'X' * rng.randrange(5, 40)}\nonly 97140\n")
    for name, payer in (("long-payer.csv", "Z" * 10_000), ("short-payer.csv", "ZZZ")):
        (folder / name).write_text(HEADER + "".join(row(rng, f"S{i}", f"P{i}", "2024-05-06", payer) for i in range(200)))


# --- measurements ----------------------------------------------------------------------------------

def seconds(r: Run) -> str:
    return f"{r.seconds:.2f} s" if r.exit_code is not None else f">{r.seconds:.0f} s (stopped)"


def ratio_row(name: str, case: Run, control: Run, target: float) -> Row:
    ratio = case.seconds / control.seconds
    ok = case.exit_code is not None and control.exit_code is not None and ratio <= target
    return Row(name, seconds(case), seconds(control), f"{ratio:.1f}x", f"<= {target:g}x", ok)


def measure(folder: Path, timeout: float, say: Callable[[str], None]) -> list[Row]:
    def go(*args: str) -> Run:
        result = run(list(args), folder, timeout)
        say(f"  {' '.join(a if len(a) < 40 else a[:12] + '...' for a in args)}: {seconds(result)}, "
            f"{result.peak_bytes / 2**20:.0f} MiB, exit {result.exit_code}")
        return result

    rows: list[Row] = []
    case, control = go(*check_args("one-day.csv", "policy.payer")), go(*check_args("many-patients.csv", "policy.payer"))
    rows.append(ratio_row("one patient-day of one-line sessions vs one patient each", case, control, 3))
    case, control = go(*check_args("sessions.json", "policy.payer")), go(*check_args("sessions.jsonl", "policy.payer"))
    rows.append(ratio_row(".json vs .jsonl, same sessions", case, control, 2))
    case = go(*check_args("current.csv", "policy.payer", "--history", "history-same.csv"))
    control = go(*check_args("current.csv", "policy.payer", "--history", "history-other.csv"))
    rows.append(ratio_row("--history rows of the same patient vs of others", case, control, 2))

    case, control = go(*check_args("ranges.csv", "ranges.payer")), go(*check_args("ranges.csv", "one-range.payer"))
    generated = go("compile", "ranges.payer")
    rows.append(Row(f"400 distinct 10,000-code ranges: peak RSS (Python {generated.stdout_bytes / 2**20:.1f} MiB)",
                    f"{case.peak_bytes / 2**20:.0f} MiB", f"{control.peak_bytes / 2**20:.0f} MiB (1 range)",
                    f"{case.peak_bytes / control.peak_bytes:.1f}x", "< 1024 MiB",
                    case.exit_code is not None and case.peak_bytes < GIB))

    case, control = go("compile", "long-names.payer"), go("compile", "short-names.payer")
    rows.append(Row("16 KB rule file of long names: compile time over a tiny file", seconds(case), seconds(control),
                    f"+{case.seconds - control.seconds:.2f} s", "< 1 s",
                    case.exit_code is not None and case.seconds - control.seconds < 1))
    case, control = go(*check_args("long-payer.csv", "payers")), go(*check_args("short-payer.csv", "payers"))
    rows.append(ratio_row("unknown 10,000-char payer id vs 3-char, 200 sessions", case, control, 2))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=8_000, help="sessions in the patient-day and json cases")
    parser.add_argument("--history", type=int, default=80_000, help="history rows in the history case")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=120, help="seconds before a run is stopped")
    parser.add_argument("--quiet", action="store_true", help="print only the table")
    args = parser.parse_args()

    def say(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        generate(folder, args.seed, args.sessions, args.history)
        say(f"inputs in {folder}: {args.sessions:,} sessions, {args.history:,} history rows, seed {args.seed}")
        rows = measure(folder, args.timeout, say)

    print(f"machine: {platform.python_implementation()} {platform.python_version()}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs; total {time.perf_counter() - started:.0f} s")
    cells = [[r.name, r.value, r.control, r.ratio, r.target] for r in rows]
    widths = [max(len(c[i]) for c in [["case", "measured", "control", "ratio", "target"], *cells]) for i in range(5)]
    print("  ".join(h.ljust(w) for h, w in zip(("case", "measured", "control", "ratio", "target"), widths)) + "  result")
    for r, c in zip(rows, cells):
        print("  ".join(v.ljust(w) for v, w in zip(c, widths)) + ("  PASS" if r.ok else "  FAIL"))
    failed = sum(not r.ok for r in rows)
    print(f"{len(rows) - failed} of {len(rows)} targets met")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
