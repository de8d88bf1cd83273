"""The façade: load rule files into policies, read sessions, and judge them."""

from __future__ import annotations

import json
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import attrs

from payrules import formats
from payrules.accumulator_files import AccumulatorInputError, load_accumulators
from payrules.accumulators import AccumulatorError, Accumulators, accumulator_records, accumulators_of
from payrules.compiler import Policy, compile_file, compile_source, emit_python, read_source
from payrules.diagnostics import CompileError, Diagnostic, InputError, RulesError
from payrules.fields import RecordError, session_batch
from payrules.history import read_compact
from payrules.judging import History, covers, declared_fields, history_days, history_index
from payrules.lint import RuleFileDates, payer_overlaps
from payrules.records import Columns, Scan, read_blocks, read_scanned, read_sessions, scan
from payrules.runner import (
    Policies,
    Block,
    Report,
    SessionResult,
    Tally,
    evaluate,
    judge_batch,
    policies_by_payer,
)
from payrules.runtime import RuleInfo, Session
from payrules.testing import CaseResult, TestRun, case_files, run_cases
from payrules.render import printable
from payrules.source import Source

__all__ = ["CheckRun", "Columns", "NoPolicyError", "Policy", "Report", "RuleSet", "Statistics", "check", "check_files",
           "compile_file", "compile_source",
           "compile_text", "emit_python", "load", "load_policies", "read_source", "report_schema", "rule_files",
           "run_tests", "start_check"]


def report_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of `payrules check --format json`; `$defs/jsonlRecord`
    describes each line of `--format jsonl`."""
    text = resources.files("payrules").joinpath("schemas/report.schema.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def rule_files(path: Path) -> list[Path]:
    """A rule file, or every `*.payer` file under a folder, in sorted order."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.payer") if p.is_file())
        if not files:
            raise InputError(f"{path}: no .payer rule files in this folder")
        return files
    if not path.exists():
        raise InputError(f"{path}: no such rule file or folder")
    return [path]


def load_policies(path: Path) -> list[Policy]:
    """Compile every rule file under `path`; all diagnostics of all files are raised together."""
    policies: list[Policy] = []
    diagnostics: list[Diagnostic] = []
    for file in rule_files(path):
        try:
            policies.append(compile_file(file))
        except CompileError as error:
            diagnostics.extend(error.diagnostics)
    diagnostics += payer_overlaps(RuleFileDates(p.payer_id, p.effective_from, p.effective_to,
                                                read_source(Path(p.source))) for p in policies)
    if diagnostics:
        raise CompileError(diagnostics)
    return policies


def read_history(paths: list[Path], columns: Columns | None = None) -> History:
    """Earlier sessions, counted by same-day rules and period limits but never judged. They must be valid.
    Plain CSV files are kept compact (see `payrules.history`); other input is read whole."""
    try:
        compact = read_compact(paths, columns)
        return compact if compact is not None else history_index(read_sessions(paths, columns))
    except ValueError as error:
        raise InputError(str(error)) from None


@attrs.frozen
class CheckRun:
    """A check ready to stream: the compiled policies and what a first pass learnt of the input."""

    sessions: list[Path]
    policies: Policies
    columns: Columns | None
    scan: Scan
    history: History | None = None
    accumulators: Accumulators | None = None
    """What an accumulators file gives as already used of each limit (see `--accumulators`)."""

    def blocks(self) -> Iterator[Block]:
        """Judged blocks in input order: one per patient when the input is grouped by patient,
        else one for the whole input (held in memory)."""
        for batch in read_scanned(self.sessions, self.columns, self.scan):
            yield judge_batch(batch, self.policies, self.history, self.accumulators)


def start_check(sessions: list[Path], rules: Path, columns: Columns | None = None,
                history: list[Path] | None = None, accumulators: list[Path] | None = None,
                scan_sessions: bool = True) -> CheckRun:
    """Compile the rules, read the history and the accumulators and scan the sessions; raises
    before any output. The warnings of the accumulators are in `run.accumulators.warnings`.

    `scan_sessions=False` leaves the scan out (`Scan.unread`): the run is judged as if grouped
    by patient (in one process, or one CSV file in parts cut by its bytes, see
    `workers.write`), and `records.ScanFirst` is raised while it is judged if it turns out not
    to be (see `records.read_grouped`), so that its output must be held until the end."""
    _refuse_renamed_json(sessions + (history or []), columns)
    loaded = load_policies(rules)
    policies = policies_by_payer(loaded)
    names = declared_fields(loaded)
    if names or (columns is not None and columns.mapping):
        columns = (columns or Columns()).with_facts(names)
    # History lines are counted, never written: they need not have the kept columns.
    past = read_history(history, columns.without_keep() if columns else None) if history else None
    used = None
    if accumulators:
        used = load_accumulators(accumulators, policies, Path(columns.source) if columns and columns.source else None)
    found = scan(sessions, columns) if scan_sessions else Scan.unread()
    return CheckRun(sessions, policies, columns, found, past, used)


@attrs.define
class Statistics:
    """Counts over judged blocks for `payrules check --statistics`: lines by payer and status,
    and the reasons given, by rule and by CARC."""

    by_payer: Counter[tuple[str, str]] = attrs.field(factory=Counter)
    """(payer id, status) → judged lines."""
    by_rule: Counter[tuple[str, str]] = attrs.field(factory=Counter)
    """(`file:line`, rule name or statement text) → reasons given."""
    by_carc: Counter[str] = attrs.field(factory=Counter)
    """CARC → reasons given."""
    rejected: int = 0
    """Lines not judged (a line not judged has no payer that judged it)."""

    def add(self, block: Block) -> None:
        for session in block.sessions:
            for line in session.lines:
                self.by_payer[(session.payer, line.status)] += 1
                for reason in line.reasons:
                    self.by_rule[(reason.location, reason.rule or reason.text)] += 1
                    self.by_carc[reason.carc] += 1
        self.rejected += len(block.errors)

    def text(self) -> str:
        """What `--statistics` prints: counts, largest first (ties by name), each table under a heading."""
        out: list[str] = []
        payers: dict[str, dict[str, int]] = {}
        for (payer, status), n in self.by_payer.items():
            payers.setdefault(payer, {})[status] = n
        rows = [(sum(by.values()), payer, ", ".join(f"{by[s]} {s}" for s in ("paid", "reduced", "denied") if s in by))
                for payer, by in payers.items()]
        out.append("lines by payer:")
        out += [f"{n:>7}  {payer} ({detail})" for n, payer, detail in sorted(rows, key=lambda r: (-r[0], r[1]))]
        if self.rejected:
            out.append(f"{self.rejected:>7}  rejected (not judged)")
        if not rows and not self.rejected:
            out.append("         none")
        out.append("reasons by CARC:")
        out += [f"{n:>7}  CARC {carc}" for carc, n in sorted(self.by_carc.items(), key=lambda i: (-i[1], i[0]))]
        if not self.by_carc:
            out.append("         none")
        out.append("reasons by rule:")
        out += [f"{n:>7}  {where} {name}" for (where, name), n in
                sorted(self.by_rule.items(), key=lambda i: (-i[1], i[0]))]
        if not self.by_rule:
            out.append("         none")
        return "".join(printable(line) + "\n" for line in out)


# --- sessions read from stdin ---------------------------------------------------------------------

STDIN_NAME = "<stdin>"
"""What outputs and messages call the sessions, or the rule file, read from stdin."""


def sniff_stdin(head: bytes, raw: Path) -> str:
    """The format of sessions piped in without --stdin-format: Parquet and X12 by their first
    bytes, JSON when the text starts with `[`, or with `{` and the first line is not a whole
    object (else JSONL), and CSV otherwise."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"PAR1"):
        return "parquet"
    if text.startswith(b"ISA"):
        return "x12"
    if text.startswith(b"["):
        return "json"
    if text.startswith(b"{"):
        with open(raw, "rb") as stream:
            first = stream.readline()
        try:
            json.loads(first)
        except ValueError:
            return "json"
        return "jsonl"
    return "csv"


if TYPE_CHECKING:
    _ConcretePath = Path
else:
    _ConcretePath = type(Path())  # PosixPath or WindowsPath: Path itself cannot be subclassed here


class StdinPath(_ConcretePath):
    """A temporary copy of stdin that shows as `<stdin>`: `str()` (what outputs and messages
    print) is the name; `os.fspath()` (what `open` uses) is the copy."""

    _shown: str

    def __new__(cls, real: Path) -> StdinPath:
        made: StdinPath = super().__new__(cls, real)
        made._shown = STDIN_NAME
        return made

    def __str__(self) -> str:
        shown: str | None = getattr(self, "_shown", None)  # paths derived from this one have none
        return shown or Path.__str__(self)

    def __fspath__(self) -> str:
        return Path.__str__(self)


def check_files(sessions: list[Path], rules: Path, columns: Columns | None = None,
                history: list[Path] | None = None, accumulators: list[Path] | None = None) -> Report:
    """Judge the sessions in `sessions` against the rule files under `rules`, into one `Report`."""
    run = start_check(sessions, rules, columns, history, accumulators)
    results: list[SessionResult] = []
    errors: list[RecordError] = []
    tally = Tally()
    for block in run.blocks():
        results.extend(block.sessions)
        errors.extend(block.errors)
        tally.add(block)
    return Report(sessions=tuple(results), errors=tuple(errors), summary=tally.summary())


# --- embedding ---------------------------------------------------------------------------------

SessionInput = Mapping[str, Any] | Session
"""A session as a dict in the JSON input format (with its `lines`), or a typed `Session`."""


def _as_policies(policies: Policies) -> Policies:
    return MappingProxyType({payer: tuple(found) for payer, found in policies.items()})


@attrs.frozen
class RuleSet:
    """Compiled payer policies by payer id. Immutable, and safe to share between threads."""

    policies: Policies = attrs.field(converter=_as_policies)
    """Policies keyed by payer id in lower case; a payer has one per effective date range."""

    @property
    def payers(self) -> tuple[str, ...]:
        """The payer ids, as their rule files spell them, sorted."""
        return tuple(sorted(found[0].payer_id for found in self.policies.values()))

    def policy(self, payer: str, date: str | None = None) -> Policy:
        """The policy of one payer (case-insensitive) in effect on `date` (YYYY-MM-DD), or its
        first when no date is given; `NoPolicyError` (a `KeyError`) naming the payers there are
        when there is none."""
        found = self.policies.get(payer.casefold()) if isinstance(payer, str) else None
        if not found:
            known = ", ".join(f"`{p}`" for p in self.payers) or "none"
            raise NoPolicyError(f"no rules for payer `{payer}`; the payers are {known}")
        for policy in found:
            if date is None or covers(policy, date):
                return policy
        ranges = "; ".join(f"{p.effective_from or 'any date'} to {p.effective_to or 'any date'}" for p in found)
        raise NoPolicyError(f"no rules for payer `{found[0].payer_id}` on {date}; its rules cover {ranges}")

    def check(self, sessions: SessionInput | Iterable[SessionInput], *,
              history: SessionInput | Iterable[SessionInput] = (), keep: Iterable[str] = (),
              accumulators: Iterable[Mapping[str, Any]] | Accumulators = ()) -> Report:
        """Judge one session or a list of them. Dicts are validated like a JSON sessions file (a
        bad line comes back in `Report.errors`, located as `<sessions>` row N); typed `Session`
        values are used as they are. `history` sessions count for same-day and period rules but
        are not judged; a bad history record raises `InputError`. Anything but a session or an
        iterable of them raises `TypeError`. `keep` names keys of the session dicts (or of their
        lines, which win) whose values each line and error carries, as `check --keep` does
        (`LineResult.kept`, and `"keep"` in `to_dict()`); a name that is a session field raises
        `InputError`. `accumulators` are rows as dicts, with the fields of an accumulators file
        (located as `<accumulators>` row N), or `accumulators()` of them: the use of each limit
        the payer has already counted; a bad row raises `InputError`, and what is not read is
        said with `warnings.warn`."""
        if isinstance(keep, str):
            keep = (keep,)
        kept = Columns().with_keep(tuple(keep)).keep
        given = _session_list(sessions, "sessions")
        try:
            past = history_days(_session_list(history, "history"))
        except ValueError as error:
            raise InputError(str(error)) from None
        used = accumulators if isinstance(accumulators, Accumulators) else self.accumulators(accumulators)
        facts = declared_fields([p for found in self.policies.values() for p in found])
        return evaluate(session_batch(given, "<sessions>", kept, facts), self.policies, past, used or None)

    def accumulators(self, rows: Iterable[Mapping[str, Any]]) -> Accumulators:
        """Accumulator rows (dicts with the fields of an accumulators file) checked against these
        rules, to give to `check` again and again; `InputError` listing every problem, and a
        `warnings.warn` for each key or figure that is not counted."""
        if isinstance(rows, Mapping) or isinstance(rows, (str, bytes)) or not isinstance(rows, Iterable):
            raise TypeError(f"accumulators must be a list of dicts, not {type(rows).__name__}")
        try:
            found, notes = accumulator_records(list(rows), "<accumulators>")
            used = accumulators_of(found, self.policies, notes)
        except AccumulatorError as error:
            raise AccumulatorInputError(error.problems) from None
        for note in used.warnings:
            warnings.warn(note, AccumulatorWarning, stacklevel=2)
        return used


class AccumulatorWarning(UserWarning):
    """Part of an accumulators row that is not counted: a key that is no field, or a figure
    (visits, units, amount) that the rule it names does not count."""


class NoPolicyError(RulesError, KeyError):
    """`RuleSet.policy` found no rules for the payer (or date) asked for; the message names
    the payers there are. A `KeyError` too, as a missing key of a mapping is."""

    def __str__(self) -> str:
        # KeyError would show the message quoted, as a key.
        return str(self.args[0]) if self.args else ""


def _refuse_renamed_json(paths: list[Path], columns: Columns | None) -> None:
    """A `[columns]` mapping renames the columns of CSV (and Parquet) files; JSON and JSONL
    fields have fixed names, so a mapping given with them would be silently ignored: refuse it."""
    if columns is None or not columns.mapping:
        return
    for path in paths:
        if path.suffix.lower() in (".json", ".jsonl") and formats.format_for(path) is None:
            raise InputError(f"{path}: --columns renames the columns of CSV files, but this is a "
                             f"{path.suffix.lower()[1:].upper()} file, whose fields have fixed names (see "
                             f"\"Session records\"); leave --columns out, or give a file with only a [payers] "
                             f"table")


def _session_list(given: object, what: str) -> list[Any]:
    """One session (a dict or a `Session`) as a list of one; a list, tuple or other iterable of
    sessions as a list. Entries are validated later, as a JSON file's are; the container itself
    must be one of these, or `TypeError` says what it was."""
    if isinstance(given, (Session, dict)):
        return [given]
    if isinstance(given, Mapping):
        return [dict(given)]
    if isinstance(given, (str, bytes, bytearray)) or not isinstance(given, Iterable):
        kind = type(given).__name__
        shown = repr(given) if len(repr(given)) <= 40 else repr(given)[:37] + "..."
        raise TypeError(f"{what} must be a session (a dict in the JSON input shape, or a payrules.Session) or a "
                        f"list of them, not {kind} {shown}")
    return [dict(item) if isinstance(item, Mapping) and not isinstance(item, dict) else item for item in given]


def check(sessions: SessionInput | Iterable[SessionInput], rules: str | Path | RuleSet, *,
          history: SessionInput | Iterable[SessionInput] = (), keep: Iterable[str] = (),
          accumulators: Iterable[Mapping[str, Any]] | Accumulators = ()) -> Report:
    """Judge one session or a list of them against `rules`: a `RuleSet`, or a `.payer` file or a
    folder of them (compiled rules are cached on disk, so loading again is cheap). The same as
    `payrules.load(rules).check(sessions, history=history, keep=keep, accumulators=accumulators)`."""
    ruleset = rules if isinstance(rules, RuleSet) else load(rules)
    return ruleset.check(sessions, history=history, keep=keep, accumulators=accumulators)


def load(path: str | Path) -> RuleSet:
    """Compile a `.payer` file, or every one under a folder. Raises `CompileError` (with every
    diagnostic of every file) or `InputError` (missing or unreadable files)."""
    return RuleSet(policies_by_payer(load_policies(Path(path))))


def compile_text(text: str, name: str = "<rules>") -> RuleSet:
    """Compile rule text; `name` is the file name used in diagnostics and explanations."""
    return RuleSet(policies_by_payer([compile_source(Source(name, text))]))


# --- payrules test -------------------------------------------------------------------------------


def run_tests(paths: list[Path]) -> TestRun:
    """Run every case file under `paths` against the rule files of its folder."""
    results: list[CaseResult] = []
    rules: dict[tuple[str, int], RuleInfo] = {}
    loaded: dict[Path, Policies] = {}
    files = [f for path in paths for f in case_files(path)]
    if not files:
        raise InputError(f"no *.cases.csv files under {', '.join(str(p) for p in paths)}")
    for file in files:
        folder = file.parent
        if folder not in loaded:
            loaded[folder] = policies_by_payer(load_policies(folder))
            for found in loaded[folder].values():
                for policy in found:
                    rules.update({(r.file, r.line): r for r in policy.rules})
        results.extend(run_cases(file, loaded[folder]))
    exercised = frozenset((r.file, r.line) for case in results for outcome in case.outcomes
                          if outcome.actual is not None for r in outcome.actual.reasons)
    return TestRun(cases=tuple(results), rules=tuple(rules.values()), exercised=exercised)
