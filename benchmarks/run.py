"""The payrules benchmark: compiled evaluation against a hand-written baseline, in one run,
and `payrules check` end to end on a large CSV.

    python benchmarks/run.py                      # 1,000,000 lines end to end
    python benchmarks/run.py --lines 200000       # a quicker run

1. Generates synthetic sessions (benchmarks/generate.py, fixed seed) grouped by patient.
2. Evaluation: loads the first --eval-lines lines, then times the compiled policy's `judge`
   and benchmarks/baseline.py's `judge` over the same sessions (best of --repeat runs each),
   after checking that both give exactly the same decisions.
3. End to end: runs `payrules check` on the whole CSV in a fresh process, writing --format to
   a file, and reports its wall time and peak memory (resident set size of the largest of its
   processes: the input is judged in parts by one worker process per CPU).
"""

from __future__ import annotations

import argparse
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import baseline  # noqa: E402

from payrules.api import compile_file  # noqa: E402
from payrules.records import read_blocks  # noqa: E402
from payrules.runtime import Line, Session  # noqa: E402
from payrules.workers import cpu_count  # noqa: E402


def sessions_with_days(path: Path, limit: int) -> list[tuple[Session, list[Line]]]:
    pairs: list[tuple[Session, list[Line]]] = []
    count = 0
    for batch in read_blocks([path], grouped=True):
        days: dict[tuple[str, str], list[Line]] = defaultdict(list)
        for session in batch.sessions:
            days[(session.patient_id, session.date)].extend(session.lines)
        for session in batch.sessions:
            pairs.append((session, days[(session.patient_id, session.date)]))
            count += len(session.lines)
        if count >= limit:
            break
    return pairs


def best_times(judges: list[object], pairs: list[tuple[Session, list[Line]]], repeat: int) -> list[float]:
    """Best time of each judge over all pairs; the judges take turns, so that a slow spell of
    the machine does not fall on one of them only."""
    best = [float("inf")] * len(judges)
    for _ in range(repeat):
        for i, judge in enumerate(judges):
            start = time.perf_counter()
            for session, day in pairs:
                judge(session, day, [])  # type: ignore[operator]
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines in the end-to-end CSV")
    parser.add_argument("--eval-lines", type=int, default=300_000, help="lines timed in the evaluation benchmark")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--format", default="csv", choices=["text", "json", "jsonl", "csv"])
    args = parser.parse_args()

    rules = HERE / "reference.payer"
    policy = compile_file(rules)
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "sessions.csv"
        subprocess.run([sys.executable, str(HERE / "generate.py"), "--lines", str(args.lines), "--seed",
                        str(args.seed), "-o", str(csv_path)], check=True)

        # End to end first: a child process started later would count this process's memory.
        out = Path(tmp) / f"decisions.{args.format}"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "payrules", "check", str(csv_path), "--rules", str(rules),
                        "--format", args.format, "--output", str(out)], check=False)
        wall = time.perf_counter() - start
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

        pairs = sessions_with_days(csv_path, args.eval_lines)
        lines = sum(len(session.lines) for session, _ in pairs)
        for session, day in pairs:
            if policy.judge(session, day, []) != baseline.judge(session, day, []):
                sys.exit(f"the compiled policy and the baseline disagree on session {session.session_id}")
        compiled, hand = best_times([policy.judge, baseline.judge], pairs, args.repeat)

    print(f"machine: {platform.python_implementation()} {platform.python_version()}, {platform.machine()}, "
          f"{cpu_count()} CPUs")
    print(f"evaluation ({lines:,} lines, same decisions, best of {args.repeat}):")
    print(f"  compiled payrules   {lines / compiled:>12,.0f} lines/s")
    print(f"  hand-written Python {lines / hand:>12,.0f} lines/s")
    print(f"  ratio               {hand / compiled:>12.2f}x the hand-written speed")
    print(f"end to end: payrules check, {args.lines:,} lines, --format {args.format}")
    print(f"  wall time           {wall:>12.1f} s  ({args.lines / wall:,.0f} lines/s)")
    print(f"  peak memory         {peak_mib:>12.0f} MiB")


if __name__ == "__main__":
    main()
