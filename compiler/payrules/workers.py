"""Judging a large input in parts, side by side in worker processes, written in input order.

A grouped CSV file without quote characters is cut into parts at patient changes. Facts that
span sessions never cross patients, so each part is judged on its own: a worker reads, judges
and renders it, and the main process writes the rendered parts in input order. The output is
the same as when one process judges the whole input. The parts come from the scan
(`records.Scan.parts`), or, for one file judged into a file without a scan, from its bytes:
stretches of about `PART_BYTES`, each moved to the next change of patient. Each such part is
rendered into a file of its own and copied into the output; when a patient or a session id
turns up in two parts, the file was not grouped after all, and it is scanned (`ScanFirst`).

A CSV file that is not grouped by patient (a practice export sorted by date of service) is
cut by patient into buckets spilled to a temporary folder: each process cuts a stretch of the
bytes of a plain file into every bucket (or, for another file, reads it whole and keeps the
buckets of its share). Each bucket is then judged like a whole input of its own, patient by
patient; each session and each line not judged is rendered on its own. A session id used by
two patients, found in one bucket or across buckets, sends the whole input down the
one-process path. The workers then merge the rendered sessions into the order of the whole
input, a stretch of rows each (sessions by the row where their id first appears), and the
main process adds the lines not judged by row.
"""

from __future__ import annotations

import bisect
import functools
import gc
import heapq
import io
import itertools
import os
import pickle
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from payrules.api import CheckRun
from payrules.diagnostics import InputError
from payrules.fields import Batch, RecordError
from payrules.records import (Columns, NotGrouped, Part, ScanFirst, comes_back, csv_table, is_csv,
                              keyed_rows, patient_start, plain_rows, read_blocks, read_part, read_part_once,
                              read_patients, read_scanned, row_patients)
from payrules.render import CsvWriter, Fragment, JsonlWriter, JsonWriter, TextWriter, Writer
from payrules.runner import Judgement, Tally, judge_lines

MIN_LINES = 100_000
"""Below this, starting workers costs more than it saves."""

WORKERS_ENVIRONMENT = "PAYRULES_WORKERS"
"""At most this many processes judge (1: judge in this process); by default one per CPU. A
value that is not a positive whole number is ignored."""

_JOB: tuple[CheckRun, Writer] | None = None
"""The run and the main writer, inherited by forked workers (compiled rules are not pickled)."""


BUCKET_LINES = 15_000
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


def reads_once(paths: list[Path]) -> bool:
    """True when `payrules check` may judge `paths` without a scan first, into a file it can
    throw away (see `api.start_check`): in this process, or, for one CSV file, in parts cut by
    its bytes (see `write`)."""
    return one_process() or (len(paths) == 1 and is_csv(paths[0]))


def write(run: CheckRun, writer: Writer, tally: Tally) -> Iterator[int]:
    """Judge every line of `run` and write it with `writer`, in input order, counting into
    `tally`; yields the number of lines done after each step, for a progress bar.

    A run that was not scanned (`Scan.unread`) raises `records.ScanFirst` when it turns out
    that it must be scanned; what was written before then is to be thrown away."""
    if not run.scan.scanned and type(writer) in _MERGEABLE:
        cut = _byte_parts(run)
        if cut is not None:
            yield from _write_byte_parts(run, writer, tally, *cut)
            return
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


# --- one large CSV file, not scanned: cut by its bytes -----------------------------------------

PART_BYTES = 2 << 20
"""About how many bytes of a CSV file judged without a scan make one part."""

_SAMPLES, _SAMPLE_ROWS = 8, 2_000
"""Before a file is cut by its bytes, this many stretches of this many rows, spread over it, are
looked at for a patient who comes back: a file sorted by date of service shows one at once."""

_BYTE_PARTS: tuple[CheckRun, Writer, Any, list[tuple[int, int]], Path] | None = None
"""The run, the main writer, how the file is read, where its parts start and the folder of
their rendered texts, inherited by forked workers."""


def _byte_parts(run: CheckRun) -> tuple[Any, list[tuple[int, int]]] | None:
    """How the one CSV file of `run`, not scanned, is read, and the (byte offset, row) of the
    start of each of its stretches of about `PART_BYTES`, then of its end, when it is judged in
    parts cut by its bytes: a plain file (`plain_rows`) of at least `MIN_LINES` rows, with
    processes to judge them. Each part is moved to the next change of patient (see
    `_judge_byte_part`). `ScanFirst` when a look at a few stretches shows that it is not
    grouped by patient."""
    if len(run.sessions) != 1 or not is_csv(run.sessions[0]) or _allowed_workers(2) == 1:
        return None
    table = csv_table(run.sessions[0], run.columns or Columns())
    if not plain_rows(table):
        return None
    offsets = _row_offsets(table.path, None)
    if len(offsets) < 3:  # fewer than two parts
        return None
    if _comes_back(table, offsets):
        raise ScanFirst("a patient comes back")
    starts, rows = _numbered(table.path, offsets)
    return (table, starts) if rows >= MIN_LINES else None


def _row_starts(path: Path, count: int | None) -> tuple[list[tuple[int, int]], int]:
    """The (byte offset, row) of the start of each of `count` stretches of about equal bytes
    of the rows of a plain CSV file (by default stretches of about `PART_BYTES`), each at the
    start of a row, then of the end of the file; and the number of line breaks after the header."""
    return _numbered(path, _row_offsets(path, count))


def _row_offsets(path: Path, count: int | None) -> list[int]:
    """The byte offsets of `_row_starts`, without their rows."""
    with open(path, "rb") as stream:
        first = len(stream.readline())
        size = stream.seek(0, os.SEEK_END)
        count = count or max(1, (size - first) // PART_BYTES)
        offsets = [first]
        for k in range(1, count):  # each stretch starts at the row that starts at or after its share of bytes
            stream.seek(first + (size - first) * k // count - 1)
            offset = stream.tell() + len(stream.readline())
            if offset > offsets[-1]:
                offsets.append(offset)
        if size > offsets[-1]:
            offsets.append(size)
    return offsets


def _numbered(path: Path, offsets: list[int]) -> tuple[list[tuple[int, int]], int]:
    """`offsets` (the first after the header) with the row that starts at each, counting the
    line breaks before them; and the line breaks after the header."""
    starts: list[tuple[int, int]] = []
    row = 2
    with open(path, "rb") as stream:
        stream.seek(offsets[0])
        for begin, end in zip(offsets, offsets[1:] + [offsets[-1]]):
            starts.append((begin, row))
            while begin < end:
                block = stream.read(min(end - begin, 1 << 20))
                row += block.count(b"\n")
                begin += len(block)
    return starts, row - 2


def _write_byte_parts(run: CheckRun, writer: Writer, tally: Tally, table: Any,
                      starts: list[tuple[int, int]]) -> Iterator[int]:
    """Judge the parts of one CSV file cut by its bytes side by side and write them in order;
    `ScanFirst` when a patient or a session id turns up in two parts (the file is not grouped
    by patient, or a session id has two patients) or a part cannot be read so (a row the
    reader refuses, which the scan says first)."""
    import multiprocessing

    global _BYTE_PARTS
    with tempfile.TemporaryDirectory(prefix="payrules-parts-") as folder:
        _BYTE_PARTS = (run, writer, table, starts, Path(folder))
        try:
            with multiprocessing.get_context("fork").Pool(_allowed_workers(len(starts) - 1),
                                                          initializer=_leave_interrupts_to_main) as pool:
                patients: set[int] = set()
                sessions: set[int] = set()
                for found in pool.imap(_judge_byte_part, range(len(starts) - 1)):
                    if found is None:
                        raise ScanFirst("a part cannot be read on its own")
                    fragment, rendered, counted, own_patients, own_sessions = found
                    if not (patients.isdisjoint(own_patients) and sessions.isdisjoint(own_sessions)):
                        raise ScanFirst("a patient or a session is in two parts")
                    patients |= own_patients
                    sessions |= own_sessions
                    writer.extend_from(fragment, rendered)
                    rendered.unlink()
                    tally.merge(counted)
                    yield counted.lines_read
        finally:
            _BYTE_PARTS = None


def _comes_back(table: Any, offsets: list[int]) -> bool:
    """True when a patient comes back in `_SAMPLES` stretches of at most `_SAMPLE_ROWS` rows,
    from some of `offsets` (starts of rows, then the end of the file) spread over the file: it
    is not grouped by patient."""
    seen: set[str] = set()
    picks = sorted({offsets[(len(offsets) - 1) * i // _SAMPLES] for i in range(_SAMPLES)})
    try:
        for offset, bound in zip(picks, [*picks[1:], offsets[-1]]):
            # Each stretch looked at starts where a patient starts: a patient of a grouped file
            # is never seen in two of them. (Rows are not numbered here.)
            offset, _ = patient_start(table, offsets[0], offset, 0)
            rows = itertools.islice(row_patients(table, offset, 0), _SAMPLE_ROWS)
            within = itertools.takewhile(lambda found: found[0] < bound, rows)  # before the next stretch looked at
            if comes_back((patient for _, _, patient in within), seen):
                return True
    except UnicodeDecodeError:
        return True  # the reader says where, after a scan
    return False


def _judge_byte_part(index: int) -> tuple[Fragment, Path, Tally, set[int], set[int]] | None:
    """Judge stretch `index` of the file, from its first change of patient to the next
    stretch's, writing it to a file of its own: (the rest of what was rendered, that file, the
    counts, the hashes of its patients and of its session ids), or None when the part cannot
    be judged on its own (a patient comes back within it, or a row the reader refuses)."""
    assert _BYTE_PARTS is not None, "byte parts are judged by write()"
    run, main, table, starts, folder = _BYTE_PARTS
    first = starts[0][0]
    rendered = folder / f"part{index}"
    tally = Tally()
    patients: set[str] = set()
    sessions: set[str] = set()
    with open(rendered, "w", encoding="utf-8", newline="") as out:
        writer = main.continuation(out)
        try:
            start, row = patient_start(table, first, *starts[index])
            end, _ = patient_start(table, first, *starts[index + 1])
            if start < end:
                for batch in read_part_once(Part(table.path, start, end, row, 0), run.columns, patients, sessions):
                    judgement = judge_lines(batch, run.policies, run.history, run.accumulators)
                    writer.judged(judgement)
                    tally.add_judged(judgement)
        except (NotGrouped, InputError, UnicodeDecodeError):
            return None
    return Fragment("", writer.held, writer.sessions), rendered, tally, _hashes(patients), _hashes(sessions)


def _hashes(ids: set[str]) -> set[int]:
    """The hashes of `ids`: what the main process compares across parts or buckets, cheaper to
    send than the ids. Two ids that hash alike only send the input down a slower path."""
    return set(map(hash, ids))


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


_Task = TypeVar("_Task", bound=Callable[..., Any])


def _uncollected(task: _Task) -> _Task:
    """`task` run with the cycle collector off. Cutting, judging and merging buckets hold many
    rows or rendered sessions at once, which the collector would walk again and again, and
    they make no cycles; what they leave is freed as they go."""
    @functools.wraps(task)
    def uncollected(*args: Any) -> Any:
        collecting = gc.isenabled()
        gc.disable()
        try:
            return task(*args)
        finally:
            if collecting:
                gc.enable()
    return uncollected  # type: ignore[return-value]


_BUCKETS: tuple[CheckRun, Writer, Path, Any, int, int, list[tuple[int, int]] | None] | None = None
"""The run, the main writer, the spill folder, how the file is read, the number of buckets,
of pieces of the cut, and where the stretches of a plain file start (see `_row_starts`),
inherited by forked workers."""


def _write_partitioned(run: CheckRun, writer: Writer, tally: Tally) -> Iterator[int]:
    global _BUCKETS
    with tempfile.TemporaryDirectory(prefix="payrules-buckets-") as name:
        folder = Path(name)
        buckets = -(-run.scan.lines // BUCKET_LINES)
        workers = _allowed_workers(buckets)
        buckets = -(-buckets // workers) * workers  # a whole number of rounds of workers
        table = csv_table(run.sessions[0], run.columns or Columns())
        # A plain file is cut by its bytes, a stretch per process into every bucket; another is
        # read whole by every process, which keeps the buckets of its share.
        stretches = _row_starts(table.path, workers)[0] if plain_rows(table) else None
        _BUCKETS = (run, writer, folder, table, buckets, workers, stretches)
        counted: list[tuple[Tally, list[tuple[int, int]]]] = []
        whole = False
        # Sessions in the order their ids first appear, then the lines not judged by row: the
        # order in which one process writes the whole input (see `runner.judge_lines`).
        window = max(_SPILL_ITEMS, run.scan.lines // MERGE_WINDOWS)
        try:
            if workers == 1:
                _cut_piece(0)
                for done in _checked(map(_judge_bucket, range(buckets)), counted):
                    yield done
                whole = len(counted) == buckets
                if whole:
                    for pieces, count in _merged([_Spilled(folder / f"sessions{i}") for i in range(buckets)], window):
                        writer.extend(Fragment("".join(pieces), [], count))
            else:
                import multiprocessing

                with multiprocessing.get_context("fork").Pool(workers, initializer=_leave_interrupts_to_main) as pool:
                    others = pool.map_async(_cut_piece, range(1, workers))  # and this process the first
                    _cut_piece(0)
                    others.get()
                    for done in _checked(pool.imap(_judge_bucket, range(buckets)), counted):
                        yield done
                    whole = len(counted) == buckets
                    if whole:  # each worker puts a stretch of rows in order, into a file of its own
                        jobs = _merge_jobs([chunks for _, chunks in counted], workers, run.scan.lines, window)
                        for count, rendered in pool.imap(_merge_rows, jobs):
                            writer.extend_from(Fragment("", [], count), rendered)
                            rendered.unlink()
        finally:
            _BUCKETS = None
        if not whole:  # a session id has two patients: only the whole input can say so
            yield from _write_here(read_blocks(run.sessions, run.columns, grouped=False), run, writer, tally)
            return
        for one, _ in counted:
            tally.merge(one)
        # Items compare by their first value alone: no two lines not judged share a row.
        merged = heapq.merge(*[_chunks(folder / f"errors{i}") for i in range(buckets)])
        texts: list[str] = []
        held: list[RecordError] = []
        for _, text, errors in merged:
            texts.append(text)
            held.extend(errors)
        writer.extend(Fragment("".join(texts), held, 0))


def _checked(judged: Iterator[tuple[Tally, set[int], list[tuple[int, int]]] | None],
             counted: list[tuple[Tally, list[tuple[int, int]]]]) -> Iterator[int]:
    """The buckets `judged`, each's counts and chunks added to `counted`, until a session id
    turns up with two patients: in one bucket (None), or in two; yields the lines of each
    bucket."""
    sessions: set[int] = set()
    for found in judged:
        if found is None or not sessions.isdisjoint(found[1]):
            return
        sessions |= found[1]
        counted.append((found[0], found[2]))
        yield found[0].lines_read


MERGE_WINDOWS = 100
"""The rendered sessions of the buckets are put back in order this many stretches of rows at a time."""


class _Spilled:
    """The items of a spill file sorted by their first value, taken a stretch at a time."""

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.chunks = _chunk_lists(path, offset)
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


def _merged(spills: list[_Spilled], window: int, start: int = 0,
            end: int | None = None) -> Iterator[tuple[list[str], int]]:
    """The texts of the items of `spills` in the order of their first values (rows, none twice),
    a window of rows at a time: each window's items are gathered from every spill (each
    already in order) and sorted together. Only the items from row `start` (those before are
    skipped) to row `end` (when given)."""
    for spill in spills:
        spill.below(start, [])
    bound = start
    while (end is None or bound < end) and any(spill.chunk for spill in spills):
        bound = bound + window if end is None else min(bound + window, end)
        items: list[Any] = []
        for spill in spills:
            spill.below(bound, items)
        items.sort()  # by row alone: no two items share one
        yield [text for _, text in items], len(items)


_MergeJob = tuple[int, int, "int | None", list[int], int]
"""(number, first row, row after the last or None for the rest, the byte offset in each
bucket's spill of the chunk that holds the first row, window) of `_merge_rows`."""


def _merge_jobs(chunks: list[list[tuple[int, int]]], jobs: int, lines: int, window: int) -> list[_MergeJob]:
    """`jobs` stretches of rows of about equal lines, for `_merge_rows`, from where the chunks
    of each bucket's spilled sessions start (see `_spill`)."""
    found: list[_MergeJob] = []
    for job in range(jobs):
        start = 2 + lines * job // jobs
        end = 2 + lines * (job + 1) // jobs if job < jobs - 1 else None
        offsets = [index[max(0, bisect.bisect_right(index, start, key=_first) - 1)][1] if index else 0
                   for index in chunks]
        found.append((job, start, end, offsets, window))
    return found


@_uncollected
def _merge_rows(job: _MergeJob) -> tuple[int, Path]:
    """The rendered sessions of every bucket whose first rows are in the stretch of `job`, in
    order, written to a file of their own: (how many, that file)."""
    assert _BUCKETS is not None, "buckets are merged by write()"
    folder = _BUCKETS[2]
    number, start, end, offsets, window = job
    spills = [_Spilled(folder / f"sessions{i}", offset) for i, offset in enumerate(offsets)]
    merged = folder / f"merged{number}"
    count = 0
    with open(merged, "w", encoding="utf-8", newline="") as sink:
        for pieces, items in _merged(spills, window, start, end):
            sink.write("".join(pieces))
            count += items
    return count, merged


def _first(item: tuple[Any, ...]) -> Any:
    return item[0]


@_uncollected
def _cut_piece(piece: int) -> None:
    """Cut piece `piece` of the file into buckets (see `_write_partitioned`): its stretch of
    rows into every bucket, or, for a file that is not plain, the whole file into the buckets
    of that share."""
    assert _BUCKETS is not None, "buckets are cut by write()"
    run, _, folder, table, buckets, shares, stretches = _BUCKETS
    columns = run.columns or Columns()
    if stretches is None:
        _cut(keyed_rows(table, columns), False, folder, buckets, piece, piece, shares)
    else:
        (start, row), (end, _) = stretches[piece], stretches[piece + 1]
        _cut(keyed_rows(table, columns, (start, end, row)), True, folder, buckets, piece)


def _cut(rows: Iterator[tuple[str, str, int, Any]], plain: bool, folder: Path, buckets: int, piece: int,
         share: int = 0, shares: int = 1) -> None:
    """Spill `rows` (from `keyed_rows`) into `buckets` files by patient, the files `rows{B}.{piece}`,
    each in input order, keeping those of the buckets of `share` (bucket % shares == share).

    Buckets go by `hash`: the processes that cut are forked from one, so they hash alike, and
    the output does not depend on which bucket holds a patient. The rows of a plain file are
    spilled as their number, patient, session and text, a line each; others as pickled records."""
    held: list[list[Any] | None] = [[] if i % shares == share else None for i in range(buckets)]
    sinks = {i: open(folder / f"rows{i}.{piece}", "wb") for i in range(share, buckets, shares)}
    last: str | None = None  # the patient of the row before
    pending: list[Any] | None = None
    index = 0
    try:
        for patient, session, number, row in rows:
            if patient != last:  # else placed already
                last = patient
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


def _write_rows(sink: Any, rows: list[Any], plain: bool) -> None:
    if plain:
        sink.write("".join(rows).encode("utf-8"))
    else:
        pickle.dump(rows, sink, pickle.HIGHEST_PROTOCOL)


def _bucket_patients(paths: list[Path], table: Any) -> tuple[list[Any], dict[str, tuple[int, str]]] | None:
    """The rows `_cut` spilled to `paths` (in order), in the compact form of `keyed_rows`, put
    in the order of their patients' first rows (each patient's rows in input order); and the
    row where each session id first appears (blank rows included: they have none), with its
    patient. None when a session id has two patients."""
    by_patient: dict[str, list[Any]] = {}
    first: dict[str, tuple[int, str]] = {}
    last = ("", "")  # the session and patient of the row before
    plain = plain_rows(table)
    for path in paths:
        found: Iterator[Any]
        if plain:
            lines = path.read_bytes().decode("utf-8").split("\n")
            lines.pop()  # after the last line break
            found = (line.split("\0", 3) for line in lines)
        else:
            found = ((row, patient, session, record) for patient, session, row, record in _chunks(path))
        for number, patient, session, text in found:
            row = int(number) if plain else number
            rows = by_patient.get(patient)
            if rows is None:
                rows = by_patient[patient] = []
            rows.append((row, text) if plain else text)
            if session != last[0] or patient != last[1]:
                last = (session, patient)
                known = first.get(session)
                if known is None:
                    first[session] = (row, patient)
                elif known[1] != patient and session:
                    return None
    return [row for rows in by_patient.values() for row in rows], first


def _chunks(path: Path) -> Iterator[Any]:
    """The items of a spill file, chunk by chunk."""
    for chunk in _chunk_lists(path):
        yield from chunk


def _chunk_lists(path: Path, offset: int = 0) -> Iterator[list[Any]]:
    """The pickled chunks (lists of items) of a spill file, from the one at byte `offset`."""
    with open(path, "rb") as stream:
        stream.seek(offset)
        while True:
            try:
                yield pickle.load(stream)
            except EOFError:
                return


@_uncollected
def _judge_bucket(index: int) -> tuple[Tally, set[int], list[tuple[int, int]]] | None:
    """Judge one bucket as a whole input of its own, patient by patient (its rows put in the
    order of their patients' first rows: each patient's rows stay in input order, so every
    session and day is as in the whole input), and spill each session's and each error's
    rendering with its place in the output of the whole input, in that order. Its counts, the
    hashes of its session ids (for the caller to check that no other bucket has them) and where
    the chunks of its sessions start (see `_spill`); None when a session id has two patients in
    it."""
    assert _BUCKETS is not None, "buckets are judged by write()"
    run, main, folder, table, _, shares, _ = _BUCKETS
    sources = [path for piece in range(shares) if (path := folder / f"rows{index}.{piece}").exists()]
    found = _bucket_patients(sources, table)
    for source in sources:
        source.unlink()
    if found is None:
        return None
    ordered, first = found
    tally = Tally()
    sink = _Pieces()
    writer = main.continuation(sink)
    sessions: list[tuple[int, str]] = []
    errors: list[tuple[tuple[int, str], str, list[RecordError]]] = []
    for batch in read_patients(table, ordered):
        judgement = judge_lines(batch, run.policies, run.history, run.accumulators)
        tally.add_judged(judgement)
        sessions.extend(zip([first[judged[0].session_id][0] for judged in judgement.sessions],
                            writer.session_texts(judgement)))
        for error in judgement.errors:
            writer.judged(Judgement([], (error,), 0))
            errors.append(((error.origin.row, error.origin.path), sink.take(), writer.held))
            writer.held = []
    del ordered
    sessions.sort()
    chunks = _spill(folder / f"sessions{index}", sessions)
    del sessions
    errors.sort(key=_first)  # never compares the errors themselves
    _spill(folder / f"errors{index}", errors)
    first.pop("", None)  # rows without a session id
    return tally, _hashes(set(first)), chunks


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


def _spill(path: Path, items: list[Any]) -> list[tuple[Any, int]]:
    """Spill `items` in chunks; the first value of each chunk's first item, and its byte offset."""
    index = []
    with open(path, "wb") as sink:
        for at in range(0, len(items), _SPILL_ITEMS):
            index.append((items[at][0], sink.tell()))
            pickle.dump(items[at:at + _SPILL_ITEMS], sink, pickle.HIGHEST_PROTOCOL)
    return index
