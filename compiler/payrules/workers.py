"""Judging a large input in parts, side by side in worker processes, written in input order.

A grouped CSV file without quote characters is cut into parts at patient changes (see
`records.Scan.parts`). Facts that span sessions never cross patients, so each part is judged
on its own: a worker reads, judges and renders it, and the main process writes the rendered
parts in input order. The output is the same as when one process judges the whole input.

A CSV file that is not grouped by patient (a practice export sorted by date of service) is
cut by patient into buckets spilled to a temporary folder. Every process reads the whole file
and spills only the buckets of its share, checking the session ids of its share (a session id
used by two patients sends the whole input down the one-process path). Each bucket is then
judged like a whole input of its own, patient by patient; each session and each line not
judged is rendered on its own, and the main process merges them into the order of the whole
input: sessions by the row where their id first appears, then the lines not judged by row.
"""

from __future__ import annotations

import bisect
import heapq
import io
import os
import pickle
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from payrules.api import CheckRun
from payrules.fields import Batch, RecordError
from payrules.records import (Columns, Part, csv_table, is_csv, keyed_records, keyed_rows, plain_rows,
                              read_blocks, read_part, read_patients, read_scanned)
from payrules.render import CsvWriter, Fragment, JsonlWriter, JsonWriter, TextWriter, Writer
from payrules.runner import Judgement, Tally, judge_lines

MIN_LINES = 100_000
"""Below this, starting workers costs more than it saves."""

WORKERS_ENVIRONMENT = "PAYRULES_WORKERS"
"""At most this many processes judge (1: judge in this process); by default one per CPU. A
value that is not a positive whole number is ignored."""

_JOB: tuple[CheckRun, Writer] | None = None
"""The run and the main writer, inherited by forked workers (compiled rules are not pickled)."""


BUCKET_LINES = 40_000
"""About how many lines each bucket of an ungrouped file holds: a bucket is held whole while
it is judged, so this bounds the memory of each process."""

PARTITION_MIN_LINES = 50_000
"""Below this, an ungrouped file is judged whole: it fits in memory and cutting costs more."""

_SPILL_ITEMS = 2_000
"""Rows (or rendered items) per pickled chunk of a spill file."""


def one_process() -> bool:
    """True when `payrules check` judges in this process whatever the input (`PAYRULES_WORKERS=1`,
    one CPU, or no `fork`)."""
    return _allowed_workers(2) == 1


def worker_count(run: CheckRun) -> int:
    """How many processes judge `run`: 1 unless the input is large, cut into parts, and the
    system can fork processes that inherit the compiled rules."""
    if run.scan.lines < MIN_LINES or len(run.scan.parts) < 2:
        return 1
    return _allowed_workers(len(run.scan.parts))


def _allowed_workers(jobs: int) -> int:
    """Processes for `jobs` independent jobs: `PAYRULES_WORKERS`, the CPUs, and `fork` allowing."""
    wanted = os.environ.get(WORKERS_ENVIRONMENT, "").strip()
    limit = int(wanted) if wanted.isdigit() and int(wanted) > 0 else None
    if limit == 1:
        return 1
    import multiprocessing  # here, not at start-up: every payrules command imports this module

    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return min(limit or cpu_count(), cpu_count(), jobs)


def cpu_count() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def write(run: CheckRun, writer: Writer, tally: Tally) -> Iterator[int]:
    """Judge every line of `run` and write it with `writer`, in input order, counting into
    `tally`; yields the number of lines done after each step, for a progress bar."""
    if partitionable(run, writer):
        yield from _write_partitioned(run, writer, tally)
        return
    workers = worker_count(run)
    if workers == 1:
        yield from _write_here(read_scanned(run.sessions, run.columns, run.scan), run, writer, tally)
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


def _write_here(batches: Iterator[Batch], run: CheckRun, writer: Writer, tally: Tally) -> Iterator[int]:
    """Judge `batches` in this process and write them with `writer`, counting into `tally`;
    yields the number of lines done after each."""
    for batch in batches:
        judgement = judge_lines(batch, run.policies, run.history, run.accumulators)
        writer.judged(judgement)
        tally.add_judged(judgement)
        yield judgement.lines_read


def _leave_interrupts_to_main() -> None:
    """Ctrl-C stops the main process, which stops the workers; they print nothing of their own."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _judge_part(part: Part) -> tuple[Fragment, Tally]:
    assert _JOB is not None, "workers are started by write()"
    run, main = _JOB
    writer = main.continuation(io.StringIO())
    tally = Tally()
    for batch in read_part(part, run.columns):
        judgement = judge_lines(batch, run.policies, run.history, run.accumulators)
        writer.judged(judgement)
        tally.add_judged(judgement)
    return writer.fragment(), tally


# --- input not grouped by patient --------------------------------------------------------------


_MERGEABLE = (TextWriter, JsonWriter, JsonlWriter, CsvWriter)
"""Writers whose output is the concatenation of what continuations write for each session and
each line not judged (see `Writer.extend`). The 835 and Parquet writers, and the counting of
`--statistics`, see the whole input in one process."""


def bucketable(run: CheckRun) -> bool:
    """True when `run` is one large CSV file not grouped by patient: with a writer that can be
    merged, it is judged bucket by bucket (unless a session id has two patients)."""
    return (not run.scan.grouped and run.scan.lines >= PARTITION_MIN_LINES and len(run.sessions) == 1
            and is_csv(run.sessions[0]))


def partitionable(run: CheckRun, writer: Writer) -> bool:
    """True when `run` is judged bucket by bucket with `writer` (see `bucketable`)."""
    return bucketable(run) and type(writer) in _MERGEABLE


_BUCKETS: tuple[CheckRun, Writer, Path, Any, int, int] | None = None
"""The run, the main writer, the spill folder, how the file is read, the number of buckets and
of shares of the cut, inherited by forked workers."""


def _write_partitioned(run: CheckRun, writer: Writer, tally: Tally) -> Iterator[int]:
    global _BUCKETS
    with tempfile.TemporaryDirectory(prefix="payrules-buckets-") as name:
        folder = Path(name)
        buckets = -(-run.scan.lines // BUCKET_LINES)
        workers = _allowed_workers(buckets)
        buckets = -(-buckets // workers) * workers  # a whole number of rounds of workers
        table = csv_table(run.sessions[0], run.columns or Columns())
        _BUCKETS = (run, writer, folder, table, buckets, workers)
        try:
            if workers == 1:
                whole = _cut(table, run.columns or Columns(), folder, buckets)
                judged = map(_judge_bucket, range(buckets)) if whole else iter(())
                for counted in judged:
                    tally.merge(counted)
                    yield counted.lines_read
            else:
                import multiprocessing

                with multiprocessing.get_context("fork").Pool(workers, initializer=_leave_interrupts_to_main) as pool:
                    # Every process reads the whole file and keeps the buckets of its share: this
                    # one the first, each worker another.
                    others = pool.map_async(_cut_share, range(1, workers))
                    whole = _cut(table, run.columns or Columns(), folder, buckets, 0, workers)
                    whole = all(others.get()) and whole
                    if whole:
                        for counted in pool.imap(_judge_bucket, range(buckets)):
                            tally.merge(counted)
                            yield counted.lines_read
        finally:
            _BUCKETS = None
        if not whole:  # a session id has two patients: only the whole input can say so
            yield from _write_here(read_blocks(run.sessions, run.columns, grouped=False), run, writer, tally)
            return
        # Sessions in the order their ids first appear, then the lines not judged by row: the
        # order in which one process writes the whole input (see `runner.judge_lines`).
        window = max(_SPILL_ITEMS, run.scan.lines // MERGE_WINDOWS)
        for pieces, count in _merged([_Spilled(folder / f"sessions{i}") for i in range(buckets)], window):
            writer.extend(Fragment("".join(pieces), [], count))
        # Items compare by their first value alone: no two lines not judged share a row.
        merged = heapq.merge(*[_chunks(folder / f"errors{i}") for i in range(buckets)])
        texts: list[str] = []
        held: list[RecordError] = []
        for _, text, errors in merged:
            texts.append(text)
            held.extend(errors)
        writer.extend(Fragment("".join(texts), held, 0))


MERGE_WINDOWS = 100
"""The rendered sessions of the buckets are put back in order this many stretches of rows at a time."""


class _Spilled:
    """The items of a spill file sorted by their first value, taken a stretch at a time."""

    def __init__(self, path: Path) -> None:
        self.chunks = _chunk_lists(path)
        self.chunk: list[Any] = next(self.chunks, [])
        self.at = 0

    def below(self, bound: int, into: list[Any]) -> None:
        """Add to `into` the items whose first value is below `bound` that were not taken yet."""
        while self.chunk:
            chunk, at = self.chunk, self.at
            if chunk[-1][0] < bound:
                into.extend(chunk[at:] if at else chunk)
                self.chunk, self.at = next(self.chunks, []), 0
                continue
            end = bisect.bisect_left(chunk, bound, at, key=_first)
            into.extend(chunk[at:end])
            self.at = end
            return


def _merged(spills: list[_Spilled], window: int) -> Iterator[tuple[list[str], int]]:
    """The texts of the items of `spills` in the order of their first values (rows, none twice),
    a window of rows at a time: each window's items are gathered from every spill (each
    already in order) and sorted together."""
    bound = 0
    while any(spill.chunk for spill in spills):
        bound += window
        items: list[Any] = []
        for spill in spills:
            spill.below(bound, items)
        items.sort()  # by row alone: no two items share one
        yield [text for _, text, _ in items], len(items)


def _first(item: tuple[Any, ...]) -> Any:
    return item[0]


def _cut_share(share: int) -> bool:
    """`_cut` of one share, in a worker."""
    assert _BUCKETS is not None, "buckets are cut by write()"
    run, _, folder, table, buckets, shares = _BUCKETS
    return _cut(table, run.columns or Columns(), folder, buckets, share, shares)


def _cut(table: Any, columns: Columns, folder: Path, buckets: int, share: int = 0, shares: int = 1) -> bool:
    """Spill the rows of the file `table` reads into `buckets` files by patient, each in input
    order, keeping those of the buckets of `share` (bucket % shares == share); False when a
    session id is used by two patients. The sessions of a share (by their id) are checked by
    the process that cuts it, so that together the shares check every session.

    Buckets and shares go by `hash`: the processes that cut are forked from one, so they hash
    alike, and the output does not depend on which bucket holds a patient. The rows of a file
    read without the csv module are spilled as their number and text, a line each; others as
    pickled records."""
    owners: dict[str, str] = {}
    held: list[list[Any] | None] = [[] if i % shares == share else None for i in range(buckets)]
    sinks = {i: open(folder / f"rows{i}", "wb") for i in range(share, buckets, shares)}
    plain = plain_rows(table)
    last: tuple[str, str] | None = None  # the session and patient of the row before
    pending: list[Any] | None = None
    index = 0
    try:
        for patient, session, number, row in keyed_rows(table, columns):
            if last is None or session != last[0] or patient != last[1]:  # else checked and placed already
                if session and (shares == 1 or hash(session) % shares == share) \
                        and owners.setdefault(session, patient) != patient:
                    return False
                last = (session, patient)
                index = hash(patient) % buckets
                pending = held[index]
            if pending is None:
                continue
            # NUL and line breaks are in no cell of a plain file: they part the spilled values.
            pending.append(f"{number}\0{patient}\0{session}\0{row[1]}\n" if plain else (patient, session, number, row))
            if len(pending) >= _SPILL_ITEMS:
                _write_rows(sinks[index], pending, plain)
                pending.clear()
        for index, sink in sinks.items():
            rest = held[index]
            if rest:
                _write_rows(sink, rest, plain)
    finally:
        for sink in sinks.values():
            sink.close()
    return True


def _write_rows(sink: Any, rows: list[Any], plain: bool) -> None:
    if plain:
        sink.write("".join(rows).encode("utf-8"))
    else:
        pickle.dump(rows, sink, pickle.HIGHEST_PROTOCOL)


def _bucket_patients(path: Path, table: Any) -> tuple[list[Any], dict[str, int]]:
    """The rows `_cut` spilled to `path`, in the compact form of `keyed_rows`, put in the order
    of their patients' first rows (each patient's rows in input order); and the row where each
    session id first appears (blank rows included: they have none)."""
    by_patient: dict[str, list[Any]] = {}
    first: dict[str, int] = {}
    if plain_rows(table):
        lines = path.read_bytes().decode("utf-8").split("\n")
        lines.pop()  # after the last line break
        for line in lines:
            number, patient, session, text = line.split("\0", 3)
            row = int(number)
            found = by_patient.get(patient)
            if found is None:
                found = by_patient[patient] = []
            found.append((row, text))
            if session not in first:
                first[session] = row
    else:
        for patient, session, row, record in _chunks(path):
            by_patient.setdefault(patient, []).append(record)
            first.setdefault(session, row)
    return [row for rows in by_patient.values() for row in rows], first


def _chunks(path: Path) -> Iterator[Any]:
    """The items of a spill file, chunk by chunk."""
    for chunk in _chunk_lists(path):
        yield from chunk


def _chunk_lists(path: Path) -> Iterator[list[Any]]:
    """The pickled chunks (lists of items) of a spill file."""
    with open(path, "rb") as stream:
        while True:
            try:
                yield pickle.load(stream)
            except EOFError:
                return


def _judge_bucket(index: int) -> Tally:
    """Judge one bucket as a whole input of its own, patient by patient (its rows put in the
    order of their patients' first rows: each patient's rows stay in input order, so every
    session and day is as in the whole input), and spill each session's and each error's
    rendering with its place in the output of the whole input, in that order."""
    assert _BUCKETS is not None, "buckets are judged by write()"
    run, main, folder, table, _, _ = _BUCKETS
    source = folder / f"rows{index}"
    ordered, first = _bucket_patients(source, table)
    source.unlink()
    tally = Tally()
    sink = _Pieces()
    writer = main.continuation(sink)
    sessions: list[tuple[int, str, tuple[()]]] = []
    errors: list[tuple[tuple[int, str], str, list[RecordError]]] = []
    for batch in read_patients(keyed_records(table, ordered)):
        judgement = judge_lines(batch, run.policies, run.history, run.accumulators)
        tally.add_judged(judgement)
        for judged, text in zip(judgement.sessions, writer.session_texts(judgement)):
            sessions.append((first[judged[0].session_id], text, ()))
        for error in judgement.errors:
            writer.judged(Judgement([], (error,), 0))
            errors.append(((error.origin.row, error.origin.path), sink.take(), writer.held))
            writer.held = []
    del ordered
    sessions.sort()
    _spill(folder / f"sessions{index}", sessions)
    del sessions
    errors.sort(key=_first)  # never compares the errors themselves
    _spill(folder / f"errors{index}", errors)
    return tally


class _Pieces(io.StringIO):
    """The output of a continuation, taken piece by piece."""

    def __init__(self) -> None:
        super().__init__()
        self.pieces: list[str] = []

    def write(self, text: str) -> int:
        self.pieces.append(text)
        return len(text)

    def take(self) -> str:
        text = "".join(self.pieces)
        self.pieces.clear()
        return text


def _spill(path: Path, items: list[Any]) -> None:
    with open(path, "wb") as sink:
        for at in range(0, len(items), _SPILL_ITEMS):
            pickle.dump(items[at:at + _SPILL_ITEMS], sink, pickle.HIGHEST_PROTOCOL)
