"""`payrules diff` against one `payrules check` over the same generated sessions, against the
target of at most 2.5 times the check's wall time.

    python benchmarks/diff.py                  # 200,000 lines
    python benchmarks/diff.py --lines 50000    # a quicker run

Generates the sessions (benchmarks/generate.py, fixed seed) into a temporary folder, copies
benchmarks/reference.payer as OLD and writes NEW with its session cap lowered from $90 to $80,
then times `payrules check SESSIONS --rules OLD` and `payrules diff OLD NEW --sessions
SESSIONS` once each, in fresh processes, with the compiled-rule cache off (PAYRULES_NO_CACHE=1)
and output to files. Prints both, the ratio and PASS or MISS; exits 1 on a MISS.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = 2.5
"""`payrules diff` may take at most this many times one `payrules check`."""


def timed(command: list[str], env: dict[str, str], ok: tuple[int, ...]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode not in ok:
        sys.exit(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr.decode(errors='replace')}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    payrules = str(Path(sys.executable).with_name("payrules"))
    env = {**os.environ, "PAYRULES_NO_CACHE": "1"}
    with tempfile.TemporaryDirectory(prefix="payrules-diff-bench-") as scratch:
        folder = Path(scratch)
        sessions = folder / "sessions.csv"
        subprocess.run([sys.executable, str(HERE / "generate.py"), "--lines", str(args.lines), "--seed",
                        str(args.seed), "-o", str(sessions)], check=True)
        old, new = folder / "old.payer", folder / "new.payer"
        shutil.copyfile(HERE / "reference.payer", old)
        text = old.read_text(encoding="utf-8")
        edited = text.replace("session-cap: max $90 per session", "session-cap: max $80 per session")
        if edited == text:
            sys.exit("benchmarks/reference.payer has no `session-cap: max $90 per session` line to edit")
        new.write_text(edited, encoding="utf-8")
        check = timed([payrules, "check", str(sessions), "--rules", str(old), "--format", "csv",
                       "-o", str(folder / "decisions.csv")], env, ok=(0, 1))
        diff = timed([payrules, "diff", str(old), str(new), "--sessions", str(sessions),
                      "-o", str(folder / "diff.txt")], env, ok=(0, 1))
        changed = (folder / "diff.txt").read_text(encoding="utf-8").count("\n")
    ratio = diff / check
    verdict = "PASS" if ratio <= TARGET else "MISS"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"
    print(f"{args.lines:,} lines, {os.cpu_count()} CPUs, load average {load}")
    print(f"payrules check (csv)      {check:8.2f} s")
    print(f"payrules diff OLD NEW     {diff:8.2f} s   ({changed:,} lines of report)")
    print(f"ratio diff / check        {ratio:8.2f}x  target <= {TARGET}x  {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
