"""Judging a large input in parts, side by side in worker processes, written in input order.

A grouped CSV file without quote characters is cut into parts at patient changes (see
`records.Scan.parts`). Facts that span sessions never cross patients, so each part is judged
on its own: a worker reads, judges and renders it, and the main process writes the rendered
parts in input order. The output is the same as when one process judges the whole input.
"""

from __future__ import annotations

import io
import os
import signal
from collections.abc import Iterator

from payrules.api import CheckRun
from payrules.records import Part, read_blocks, read_part
from payrules.render import Fragment, Writer
from payrules.runner import Tally, judge_lines

MIN_LINES = 100_000
"""Below this, starting workers costs more than it saves."""

WORKERS_ENVIRONMENT = "PAYRULES_WORKERS"
"""At most this many processes judge (1: judge in this process); by default one per CPU. A
value that is not a positive whole number is ignored."""

_JOB: tuple[CheckRun, Writer] | None = None
"""The run and the main writer, inherited by forked workers (compiled rules are not pickled)."""


def worker_count(run: CheckRun) -> int:
    """How many processes judge `run`: 1 unless the input is large, cut into parts, and the
    system can fork processes that inherit the compiled rules."""
    if run.scan.lines < MIN_LINES or len(run.scan.parts) < 2:
        return 1
    wanted = os.environ.get(WORKERS_ENVIRONMENT, "").strip()
    limit = int(wanted) if wanted.isdigit() and int(wanted) > 0 else None
    if limit == 1:
        return 1
    import multiprocessing  # here, not at start-up: every payrules command imports this module

    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return min(limit or cpu_count(), cpu_count(), len(run.scan.parts))


def cpu_count() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def write(run: CheckRun, writer: Writer, tally: Tally) -> Iterator[int]:
    """Judge every line of `run` and write it with `writer`, in input order, counting into
    `tally`; yields the number of lines done after each step, for a progress bar."""
    workers = worker_count(run)
    if workers == 1:
        for batch in read_blocks(run.sessions, run.columns, grouped=run.scan.grouped):
            judgement = judge_lines(batch, run.policies, run.history)
            writer.judged(judgement)
            tally.add_judged(judgement)
            yield judgement.lines_read
        return
    import multiprocessing

    global _JOB
    _JOB = (run, writer)
    try:
        with multiprocessing.get_context("fork").Pool(workers, initializer=_leave_interrupts_to_main) as pool:
            for fragment, counted in pool.imap(_judge_part, run.scan.parts):
                writer.extend(fragment)
                tally.merge(counted)
                yield counted.lines_read
    finally:
        _JOB = None


def _leave_interrupts_to_main() -> None:
    """Ctrl-C stops the main process, which stops the workers; they print nothing of their own."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _judge_part(part: Part) -> tuple[Fragment, Tally]:
    assert _JOB is not None, "workers are started by write()"
    run, main = _JOB
    writer = main.continuation(io.StringIO())
    tally = Tally()
    for batch in read_part(part, run.columns):
        judgement = judge_lines(batch, run.policies, run.history)
        writer.judged(judgement)
        tally.add_judged(judgement)
    return writer.fragment(), tally
