"""Two versions of payer rules + the same sessions → every line judged differently, the rules
that made each change, and totals by kind of change, payer and rule.

Both versions judge the same batches of input with `runner.judge_batch`, the code path of
`payrules check`; nothing here decides a line. A version is a rule file or folder, or
`git:REV:PATH` (the rule files of a git revision, written to a temporary folder with their
relative paths kept, so includes resolve).

A line has changed when its status, its allowed amount or its reasons (rule, CARC and RARC)
differ. The rules that caused it are the rules whose reasons appear, disappear, or take another
amount; what each takes from the allowed amount adds up to the charge minus the allowed amount,
so the money by rule adds up to the money difference of the line.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import heapq
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import click

from payrules import ncci
from payrules.diagnostics import CompileError, Diagnostic, InputError
from payrules.fields import Batch, RecordError
from payrules.judging import History
from payrules.runner import Block, LineResult, Policies, Reason, SessionResult, policies_by_payer
from payrules.runtime import Session
from payrules.source import Source, Span

if TYPE_CHECKING:
    from payrules.compiler import Policy

GIT_PREFIX = "git:"
NOT_JUDGED = "not judged"
EXAMPLES = 3
"""Example sessions kept per kind of change and per rule."""

RuleKey = tuple[str | None, str, str, str, str | None, str]
"""(name, kind, statement text, CARC, RARC, severity): a rule as both versions can name it,
whatever file or line it is on."""


# --- the result ------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Rule:
    """A rule that gave a reason in one version; `location` is `file:line` in that version."""

    name: str | None
    kind: str
    text: str
    carc: str
    rarc: str | None
    severity: str
    location: str

    @property
    def key(self) -> RuleKey:
        return (self.name, self.kind, self.text, self.carc, self.rarc, self.severity)


@attrs.frozen(kw_only=True)
class Cause:
    """A rule whose reasons on a line differ between the versions."""

    change: str
    """`added` (its reason appears), `removed` (disappears) or `amount` (it takes another amount)."""
    rule: Rule
    """The rule as the new version has it (as the old one has it when `removed`)."""
    old_amount: int
    new_amount: int
    """Cents the rule took from the line's allowed amount in each version."""

    @property
    def difference(self) -> int:
        """What the rule's change did to the allowed amount, in cents."""
        return self.old_amount - self.new_amount


@attrs.frozen(kw_only=True)
class Decision:
    """One version's decision on a line: judged (status, allowed, reasons) or not (error)."""

    status: str
    """`paid`, `reduced`, `denied`, or `not judged`."""
    allowed: int | None
    reasons: tuple[Rule, ...] = ()
    error: str | None = None


@attrs.frozen(kw_only=True)
class LineChange:
    """A line that the two versions decide differently."""

    file: str
    row: int
    path: str
    session_id: str | None
    patient_id: str | None
    date: str | None
    payer: str | None
    line: int | None
    code: str | None
    modifiers: tuple[str, ...]
    units: int | None
    charge: int | None
    old: Decision
    new: Decision
    causes: tuple[Cause, ...]

    @property
    def kind(self) -> str:
        """`paid->denied`, `reduced->reduced` (another amount or other reasons), `paid->not judged`..."""
        return f"{self.old.status}->{self.new.status}"

    @property
    def difference(self) -> int:
        """New allowed minus old allowed in cents; 0 unless both versions judged the line."""
        if self.old.allowed is None or self.new.allowed is None:
            return 0
        return self.new.allowed - self.old.allowed

    @property
    def where(self) -> str:
        return f"{self.file}:{self.row}" + (f" {self.path}" if self.path else "")


@attrs.frozen(kw_only=True)
class Version:
    """How one version of the rules was given and what it holds."""

    label: str
    files: int
    payers: tuple[str, ...]


@attrs.frozen(kw_only=True)
class Sample:
    """What `--sample` kept: whole patients in the order of a keyed hash of their id."""

    requested: int
    seed: str
    sessions: int
    patients: int
    total_sessions: int
    total_patients: int
    errors_left_out: int
    """Lines not judged on reading whose session is not one of the sample's."""


@attrs.frozen(kw_only=True)
class KindTotal:
    kind: str
    old_status: str
    new_status: str
    lines: int
    difference: int
    examples: tuple[str, ...]


@attrs.frozen(kw_only=True)
class PayerTotal:
    payer: str
    lines: int
    difference: int


@attrs.frozen(kw_only=True)
class RuleTotal:
    """A rule's share of the changes: on how many lines its reason appeared, disappeared or
    took another amount, and what that did to the allowed amount."""

    rule: Rule
    old_location: str | None
    new_location: str | None
    added: int
    removed: int
    amount: int
    difference: int
    examples: tuple[str, ...]

    @property
    def lines(self) -> int:
        return self.added + self.removed + self.amount


@attrs.frozen(kw_only=True)
class Diff:
    """The two versions' decisions on the same sessions, and every difference."""

    old: Version
    new: Version
    sessions: tuple[str, ...]
    sample: Sample | None
    lines_read: int
    compared: int
    """Lines judged under both versions."""
    unchanged: int
    """Lines judged alike under both."""
    still_not_judged: int
    """Lines not judged under either version, for the same reason."""
    allowed_old: int
    allowed_new: int
    """Allowed totals over the lines judged under both versions."""
    changes: tuple[LineChange, ...]
    """Lines judged under both versions, decided differently, in input order."""
    unjudged: tuple[LineChange, ...]
    """Lines judged under one version only, or not judged under either with other errors."""

    @property
    def changed(self) -> bool:
        return bool(self.changes or self.unjudged)

    @property
    def difference(self) -> int:
        return self.allowed_new - self.allowed_old

    def kinds(self) -> list[KindTotal]:
        """Lines and money by kind of change (`paid->denied`...), most lines first."""
        found: dict[str, list[LineChange]] = defaultdict(list)
        for change in (*self.changes, *self.unjudged):
            found[change.kind].append(change)
        totals = [KindTotal(kind=kind, old_status=lines[0].old.status, new_status=lines[0].new.status,
                            lines=len(lines), difference=sum(c.difference for c in lines),
                            examples=_examples(lines)) for kind, lines in found.items()]
        return sorted(totals, key=lambda t: (-t.lines, t.kind))

    def payers(self) -> list[PayerTotal]:
        """Changed lines and money by payer id, as the sessions spell it, sorted by id."""
        lines: Counter[str] = Counter()
        money: Counter[str] = Counter()
        for change in (*self.changes, *self.unjudged):
            payer = change.payer or ""
            lines[payer] += 1
            money[payer] += change.difference
        return [PayerTotal(payer=p, lines=lines[p], difference=money[p]) for p in sorted(lines)]

    def rules(self) -> list[RuleTotal]:
        """Every rule that caused a change, the largest money difference first."""
        causes: dict[RuleKey, list[tuple[LineChange, Cause]]] = defaultdict(list)
        locations: dict[tuple[RuleKey, bool], str] = {}
        for change in self.changes:
            for cause in change.causes:
                causes[cause.rule.key].append((change, cause))
            for version, decision in ((False, change.old), (True, change.new)):
                for rule in decision.reasons:
                    locations.setdefault((rule.key, version), rule.location)
        totals = []
        for key, found in causes.items():
            kinds = Counter(cause.change for _, cause in found)
            totals.append(RuleTotal(rule=found[0][1].rule, old_location=locations.get((key, False)),
                                    new_location=locations.get((key, True)), added=kinds["added"],
                                    removed=kinds["removed"], amount=kinds["amount"],
                                    difference=sum(cause.difference for _, cause in found),
                                    examples=_examples(change for change, _ in found)))
        return sorted(totals, key=lambda t: (-abs(t.difference), -t.lines, t.rule.location, t.rule.text))


def _examples(changes: Iterable[LineChange]) -> tuple[str, ...]:
    """The first `EXAMPLES` distinct sessions of these changes, in input order."""
    found: list[str] = []
    for change in changes:
        session = change.session_id or change.where
        if session not in found:
            found.append(session)
            if len(found) == EXAMPLES:
                break
    return tuple(found)


# --- the versions of the rules ----------------------------------------------------------------


@attrs.frozen
class Rules:
    """One version's compiled policies, and how to show the names of its files."""

    version: Version
    policies: Policies
    renames: tuple[tuple[str, str], ...] = ()
    """(path prefix as compiled, as shown): a git version's temporary folder → `git:REV:`."""

    def show(self, text: str) -> str:
        for compiled, shown in self.renames:
            text = text.replace(compiled, shown)
        return text

    def relative(self, text: str) -> str:
        """`text` with this version's own prefix of file names taken out, to compare errors."""
        prefix = self.renames[0][1] if self.renames else ""
        return self.show(text).replace(prefix, "") if prefix else text


def load_rules(spec: str, scratch: contextlib.ExitStack) -> Rules:
    """A rule file or folder, or `git:REV:PATH`, compiled; the temporary folder of a git
    version lives as long as `scratch`."""
    from payrules import api

    if not spec.startswith(GIT_PREFIX):
        policies = api.load_policies(Path(spec))
        return Rules(_version(spec, policies), policies_by_payer(policies))
    rev, path = split_git(spec)
    tree = extract_git(rev, path, Path(scratch.enter_context(_temporary_folder())))
    renames = ((str(tree.base) + os.sep, f"{GIT_PREFIX}{rev}:"),
               (str(tree.root) + os.sep, f"{GIT_PREFIX}{rev}:{tree.up}"))
    rules = Rules(Version(label=spec, files=0, payers=()), {}, renames)
    try:
        policies = api.load_policies(tree.target)
    except CompileError as error:
        raise CompileError([_renamed(d, rules) for d in error.diagnostics]) from None
    except InputError as error:
        raise InputError(rules.show(str(error))) from None
    return attrs.evolve(rules, version=_version(spec, policies), policies=policies_by_payer(policies))


def _version(label: str, policies: list[Policy]) -> Version:
    payers = sorted({p.payer_id for p in policies})
    files = len({p.source for p in policies})
    return Version(label=label, files=files, payers=tuple(payers))


@contextlib.contextmanager
def _temporary_folder() -> Iterator[str]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="payrules-diff-") as folder:
        yield os.path.realpath(folder)


def _renamed(d: Diagnostic, rules: Rules) -> Diagnostic:
    """A diagnostic of a git version, shown under the file's `git:REV:PATH` name."""
    source = Source(rules.show(d.span.source.name), d.span.source.text)
    return attrs.evolve(d, span=Span(source, d.span.start, d.span.end), message=rules.show(d.message))


# --- git versions -------------------------------------------------------------------------------


def split_git(spec: str) -> tuple[str, str]:
    """`git:REV:PATH` → (REV, PATH); InputError when either is missing."""
    rev, colon, path = spec[len(GIT_PREFIX):].partition(":")
    if not rev or not colon or not path:
        raise InputError(f"`{spec}`: write a git version as git:REV:PATH, such as git:origin/main:payers or "
                         "git:HEAD~1:payers/acme.payer")
    if rev.startswith("-"):
        raise InputError(f"`{spec}`: `{rev}` is not a git revision")
    return rev, path


@attrs.frozen
class GitTree:
    """Rule files of a revision, written under `root` as they are in the repository."""

    root: Path
    """The temporary folder that stands for the repository's top folder."""
    base: Path
    """The folder that stands for the current folder (paths in `git:REV:PATH` are relative to it)."""
    up: str
    """`../` once per folder between the top folder and the current one."""
    target: Path
    """What PATH names: a rule file, or a folder."""


def _git(args: list[str], what: str, data: bytes | None = None) -> bytes:
    """Run git in the current folder (never over the network); InputError when it fails."""
    import subprocess

    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"}
    try:
        done = subprocess.run(["git", *args], input=data, capture_output=True, env=env, check=False)
    except FileNotFoundError:
        raise InputError(f"{what}: git is not installed, or not on PATH") from None
    except OSError as error:
        raise InputError(f"{what}: cannot run git ({error.strerror})") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise InputError(f"{what}: git says: {message[-1] if message else f'exit status {done.returncode}'}")
    return done.stdout


def extract_git(rev: str, path: str, folder: Path) -> GitTree:
    """Write the `.payer` files of `rev` (every one, so includes outside PATH resolve too), the NCCI
    tables their `apply ncci` lines name, and PATH itself when it is a file, under `folder`,
    keeping their paths in the repository."""
    spec = f"{GIT_PREFIX}{rev}:{path}"
    try:
        _git(["rev-parse", "--is-inside-work-tree"], f"`{spec}`")
    except InputError as error:
        if "not a git repository" not in str(error):
            raise
        raise InputError(f"`{spec}`: the current folder is not inside a git repository") from None
    prefix = _git(["rev-parse", "--show-prefix"], f"`{spec}`").decode("utf-8", "surrogateescape").strip()
    try:
        _git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"], f"`{spec}`")
    except InputError:
        raise InputError(f"`{spec}`: `{rev}` is not a commit, branch or tag of this repository") from None
    wanted = os.path.normpath(os.path.join(prefix, path)).replace(os.sep, "/")
    if wanted == ".." or wanted.startswith("../") or os.path.isabs(path):
        raise InputError(f"`{spec}`: `{path}` is outside the repository")
    listing = _git(["ls-tree", "-r", "-z", "--full-tree", rev], f"`{spec}`")
    blobs: dict[str, str] = {}
    for entry in listing.split(b"\0"):
        if not entry:
            continue
        info, _, name_bytes = entry.partition(b"\t")
        mode, kind, sha = info.decode("ascii").split()
        name = name_bytes.decode("utf-8", "surrogateescape")
        if kind == "blob" and mode != "120000":  # symbolic links are not followed
            blobs[name] = sha
    is_file = wanted in blobs
    is_folder = wanted == "." or any(name.startswith(wanted + "/") for name in blobs)
    if not (is_file or is_folder):
        raise InputError(f"`{spec}`: revision `{rev}` has no file or folder `{path}`")
    names = [n for n in sorted(blobs) if n.endswith(".payer") or n == wanted]
    while names:  # the rule files, then the NCCI tables they apply
        contents = _git(["cat-file", "--batch"], f"`{spec}`", "".join(blobs[n] + "\n" for n in names).encode())
        at = 0
        tables: set[str] = set()
        for name in names:
            header_end = contents.index(b"\n", at)
            size = int(contents[at:header_end].split()[2])
            body = contents[header_end + 1: header_end + 1 + size]
            at = header_end + 1 + size + 1
            written = folder.joinpath(*name.split("/"))
            written.parent.mkdir(parents=True, exist_ok=True)
            written.write_bytes(body)
            if name.endswith(".payer"):
                tables |= ncci.tables_named(name, body.decode("utf-8", "replace"))
        names = sorted(t for t in tables if t in blobs and not folder.joinpath(*t.split("/")).exists())
    base = folder.joinpath(*[p for p in prefix.strip("/").split("/") if p])
    target = folder if wanted == "." else folder.joinpath(*wanted.split("/"))
    if is_folder:
        target.mkdir(parents=True, exist_ok=True)
    up = "../" * len([p for p in prefix.strip("/").split("/") if p])
    return GitTree(root=folder, base=base, up=up, target=target)


# --- sampling --------------------------------------------------------------------------------


def _patient_order(seed: str, patient: str) -> bytes:
    return hashlib.sha256(f"{seed}\0{patient}".encode("utf-8", "surrogatepass")).digest()


@attrs.define
class _Patient:
    order: bytes
    position: int
    sessions: list[Session]
    errors: list[RecordError]

    def __lt__(self, other: _Patient) -> bool:  # a max-heap on the hash: the last one kept first
        return (self.order, self.position) > (other.order, other.position)


def sample_batches(batches: Iterable[Batch], count: int, seed: str) -> tuple[Batch, Sample]:
    """Whole patients, taken in the order of SHA-256(seed, NUL, patient id) until they hold at
    least `count` sessions, as one batch in input order. Only the kept patients are held in
    memory; a line not judged on reading is kept when its session id is one of theirs."""
    heap: list[_Patient] = []
    kept_sessions = total_sessions = position = errors_total = 0
    patients: set[str] = set()
    for batch in batches:
        groups: dict[str, _Patient] = {}
        for session in batch.sessions:
            group = groups.get(session.patient_id)
            if group is None:
                group = groups[session.patient_id] = _Patient(_patient_order(seed, session.patient_id), position,
                                                               [], [])
                position += 1
            group.sessions.append(session)
        owner = {s.session_id: groups[s.patient_id] for s in batch.sessions}
        for error in batch.errors:
            errors_total += 1
            found = owner.get(error.session_id or "")
            if found is not None:
                found.errors.append(error)
        patients.update(groups)
        total_sessions += len(batch.sessions)
        for group in groups.values():
            heapq.heappush(heap, group)
            kept_sessions += len(group.sessions)
            while heap and kept_sessions - len(heap[0].sessions) >= count:
                kept_sessions -= len(heapq.heappop(heap).sessions)
    kept = sorted(heap, key=lambda g: g.position)
    sessions = [s for g in kept for s in g.sessions]
    errors = [e for g in kept for e in g.errors]
    lines = sum(len(s.lines) for s in sessions) + len(errors)
    sample = Sample(requested=count, seed=seed, sessions=len(sessions), patients=len(kept),
                    total_sessions=total_sessions, total_patients=len(patients),
                    errors_left_out=errors_total - len(errors))
    return Batch(sessions, errors, lines), sample


# --- comparing ----------------------------------------------------------------------------------


LineKey = tuple[str, int, str, int | None]


@attrs.define
class _Tally:
    lines_read: int = 0
    compared: int = 0
    unchanged: int = 0
    still_not_judged: int = 0
    allowed_old: int = 0
    allowed_new: int = 0
    changes: list[LineChange] = attrs.Factory(list)
    unjudged: list[LineChange] = attrs.Factory(list)


class _Comparer:
    """Pairs the lines of two judged blocks of the same batch and records what differs."""

    def __init__(self, old: Rules, new: Rules, files: list[str]) -> None:
        self.old, self.new = old, new
        self.files = {name: i for i, name in enumerate(files)}
        self.tally = _Tally()
        self.keys: dict[Reason, RuleKey] = {}
        self.rules: dict[tuple[bool, Reason], Rule] = {}

    def add(self, old: Block, new: Block) -> None:
        tally = self.tally
        tally.lines_read += old.lines_read
        left = _entries(old)
        right = _entries(new)
        for key in sorted(left.keys() | right.keys(), key=self._order):
            olds, news = left.get(key, []), right.get(key, [])
            for a, b in zip(olds, news):
                self._pair(a, b)
            # Never expected (each input line is judged or rejected once per version); kept
            # so that a line is never lost from the report.
            for a in olds[len(news):]:
                self._pair(a, None)
            for b in news[len(olds):]:
                self._pair(None, b)

    def _order(self, key: LineKey) -> tuple[int, int, str, int]:
        return (self.files.get(key[0], len(self.files)), key[1], key[2], key[3] or 0)

    def _pair(self, a: _Entry | None, b: _Entry | None) -> None:
        tally = self.tally
        if a is not None and b is not None and isinstance(a[1], LineResult) and isinstance(b[1], LineResult):
            x, y = a[1], b[1]
            tally.compared += 1
            tally.allowed_old += x.allowed
            tally.allowed_new += y.allowed
            if x.status == y.status and x.allowed == y.allowed and self._same_reasons(x.reasons, y.reasons):
                tally.unchanged += 1
                return
            tally.changes.append(self._change(a, b))
            return
        if (a is not None and b is not None and isinstance(a[1], RecordError) and isinstance(b[1], RecordError)
                and self.old.relative(a[1].message) == self.new.relative(b[1].message)):
            tally.still_not_judged += 1
            return
        tally.unjudged.append(self._change(a, b))

    def _same_reasons(self, old: tuple[Reason, ...], new: tuple[Reason, ...]) -> bool:
        if len(old) != len(new):
            return False
        left, right = list(map(self._key, old)), list(map(self._key, new))
        return left == right or Counter(left) == Counter(right)

    def _key(self, reason: Reason) -> RuleKey:
        key = self.keys.get(reason)
        if key is None:
            key = self.keys[reason] = (reason.rule, reason.kind, reason.text, reason.carc, reason.rarc,
                                       reason.severity)
        return key

    def _rule(self, reason: Reason, new: bool) -> Rule:
        rule = self.rules.get((new, reason))
        if rule is None:
            version = self.new if new else self.old
            rule = self.rules[(new, reason)] = Rule(name=reason.rule, kind=reason.kind, text=reason.text,
                                                    carc=reason.carc, rarc=reason.rarc, severity=reason.severity,
                                                    location=version.show(reason.location))
        return rule

    def _decision(self, entry: _Entry | None, new: bool) -> Decision:
        if entry is None:
            return Decision(status=NOT_JUDGED, allowed=None, error="not read")
        found = entry[1]
        if isinstance(found, RecordError):
            version = self.new if new else self.old
            return Decision(status=NOT_JUDGED, allowed=None, error=version.show(found.message))
        return Decision(status=found.status, allowed=found.allowed,
                        reasons=tuple(self._rule(r, new) for r in found.reasons))

    def _change(self, a: _Entry | None, b: _Entry | None) -> LineChange:
        entries = [entry for entry in (a, b) if entry is not None]
        # The side that judged the line knows its session and its line; an error may not.
        session, found = next((e for e in entries if isinstance(e[1], LineResult)), entries[0])
        causes: tuple[Cause, ...] = ()
        if a is not None and b is not None and isinstance(a[1], LineResult) and isinstance(b[1], LineResult):
            causes = self._causes(a[1].reasons, b[1].reasons)
        number: int | None
        code: str | None
        units: int | None
        charge: int | None
        if isinstance(found, LineResult):
            line = found.input
            origin, number, code, modifiers, units, charge = (line.origin, line.number, line.code,
                                                              tuple(sorted(line.modifiers)), line.units, line.charge)
            session_id: str | None = line.session_id
        else:
            origin, number, code, modifiers, units, charge = found.origin, found.line, found.code, (), None, None
            session_id = found.session_id
        return LineChange(file=origin.file, row=origin.row, path=origin.path,
                          session_id=session.session_id if session else session_id,
                          patient_id=session.patient_id if session else None,
                          date=session.date if session else None, payer=session.payer if session else None,
                          line=number, code=code, modifiers=modifiers, units=units, charge=charge,
                          old=self._decision(a, False), new=self._decision(b, True), causes=causes)

    def _causes(self, old: tuple[Reason, ...], new: tuple[Reason, ...]) -> tuple[Cause, ...]:
        sides: dict[RuleKey, list[int]] = {}
        shown: dict[RuleKey, Rule] = {}
        for index, (version, reasons) in enumerate(((False, old), (True, new))):
            for reason in reasons:
                key = self._key(reason)
                counts = sides.setdefault(key, [0, 0, 0, 0])
                counts[index] += 1
                counts[2 + index] += reason.amount
                if version or key not in shown:
                    shown[key] = self._rule(reason, version)
        causes = []
        for key, (old_count, new_count, old_amount, new_amount) in sides.items():
            if old_count == new_count and old_amount == new_amount:
                continue
            change = "added" if not old_count else "removed" if not new_count else "amount"
            causes.append(Cause(change=change, rule=shown[key], old_amount=old_amount, new_amount=new_amount))
        return tuple(causes)


_Entry = tuple[Session | None, LineResult | RecordError]


def _entries(block: Block) -> dict[LineKey, list[_Entry]]:
    """Every line of a judged block (judged or not) by where it was read."""
    found: dict[LineKey, list[_Entry]] = defaultdict(list)
    for result in block.sessions:
        session = _session_of(result)
        for line in result.lines:
            origin = line.input.origin
            found[(origin.file, origin.row, origin.path, line.input.number)].append((session, line))
    for error in block.errors:
        found[(error.origin.file, error.origin.row, error.origin.path, error.line)].append((None, error))
    return found


def _session_of(result: SessionResult) -> Session:
    return Session(result.session_id, result.patient_id, result.date, result.payer, ())


def compare(old: Rules, new: Rules, batches: Iterable[Batch], files: list[str],
            history: History | None = None, figures: tuple[Any, Any] = (None, None)) -> _Tally:
    """Judge each batch under both versions (`runner.judge_batch`, as `payrules check` does)
    and collect what differs. `figures`: the accumulators checked against each version."""
    from payrules.runner import judge_batch

    comparer = _Comparer(old, new, files)
    for batch in batches:
        comparer.add(judge_batch(batch, old.policies, history, figures[0]),
                     judge_batch(batch, new.policies, history, figures[1]))
    return comparer.tally


def _figures(paths: list[Path], rules: Rules, which: str, columns: Any) -> Any:
    """The accumulators of `paths` checked against one version of the rules: a row must fit
    both versions, and each problem says which one it does not fit."""
    from payrules.accumulator_files import AccumulatorInputError, load_accumulators

    try:
        return load_accumulators(paths, rules.policies, Path(columns.source) if columns and columns.source else None)
    except AccumulatorInputError as error:
        raise AccumulatorInputError([f"{rules.show(p)} (with the {which} rules, {rules.version.label})"
                                     for p in error.problems]) from None


def diff(old: str, new: str, sessions: list[Path], *, columns: object = None, history: list[Path] | None = None,
         sample: int | None = None, seed: str = "0", accumulators: list[Path] | None = None,
         warn: Callable[[str], None] | None = None) -> Diff:
    """Judge `sessions` under the rules `old` and `new` (paths or `git:REV:PATH`) and report
    every line decided differently. Raises `CompileError` or `InputError` before judging.
    `accumulators` files are checked against both versions; `warn` is given each warning of
    theirs once."""
    from payrules import api
    from payrules.records import Columns, read_blocks, scan

    assert columns is None or isinstance(columns, Columns)
    with contextlib.ExitStack() as scratch:
        before = load_rules(old, scratch)
        after = load_rules(new, scratch)
        found = scan(sessions, columns)
        past = api.read_history(history, columns) if history else None
        figures: tuple[Any, Any] = (None, None)
        if accumulators:
            figures = (_figures(accumulators, before, "OLD", columns), _figures(accumulators, after, "NEW", columns))
            for note in dict.fromkeys([*figures[0].warnings, *figures[1].warnings]):
                if warn is not None:
                    warn(note)
        batches: Iterable[Batch] = read_blocks(sessions, columns, grouped=found.grouped)
        chosen = None
        if sample is not None:
            batch, chosen = sample_batches(batches, sample, seed)
            batches = [batch]
        tally = compare(before, after, batches, [str(p) for p in sessions], past, figures)
    return Diff(old=before.version, new=after.version, sessions=tuple(str(p) for p in sessions), sample=chosen,
                lines_read=tally.lines_read, compared=tally.compared, unchanged=tally.unchanged,
                still_not_judged=tally.still_not_judged, allowed_old=tally.allowed_old,
                allowed_new=tally.allowed_new, changes=tuple(tally.changes), unjudged=tuple(tally.unjudged))


# --- command line ------------------------------------------------------------------------------


class DiffFormat(enum.Enum):
    TEXT = "text"
    JSON = "json"
    CSV = "csv"


EXIT_SAME, EXIT_CHANGED, EXIT_USAGE = 0, 1, 2


@click.command(name="diff")
@click.argument("old")
@click.argument("new")
@click.option("--sessions", "sessions", multiple=True, required=True,
              type=click.Path(path_type=Path, dir_okay=False),
              help="Sessions to judge under both versions, in any input format (repeatable).")
@click.option("--format", "output_format", type=click.Choice([f.value for f in DiffFormat]),
              default=DiffFormat.TEXT.value, show_default=True,
              help="text for people, json for programs, csv with one row per changed line.")
@click.option("--sample", "sample", type=click.IntRange(min=1), metavar="N",
              help="Judge only a sample of about N sessions: whole patients, chosen by a hash of their id "
              "and --seed, so the same input gives the same sample.")
@click.option("--seed", "seed", default="0", show_default=True, help="Changes which patients --sample picks.")
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the report to this file instead of stdout.")
@click.option("--columns", "columns_file", type=click.Path(path_type=Path, dir_okay=False),
              help="A TOML file mapping session fields to the CSV's own headers, as for `payrules check`.")
@click.option("--payer-map", "payer_map_file", type=click.Path(path_type=Path, dir_okay=False),
              help="A TOML file whose [payers] table maps the payer ids of 837P files to the rule files'.")
@click.option("--history", "history", multiple=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Earlier sessions that same-day rules and period limits count but that are not judged "
              "(repeatable).")
@click.option("--accumulators", "accumulators", multiple=True, type=click.Path(path_type=Path, dir_okay=False),
              help="What the payer has already counted of each named limit, as for `payrules check`; each row "
              "must fit both versions (repeatable).")
@click.pass_context
def diff_command(ctx: click.Context, old: str, new: str, sessions: tuple[Path, ...], output_format: str,
                 sample: int | None, seed: str, output: Path | None, columns_file: Path | None,
                 payer_map_file: Path | None, history: tuple[Path, ...], accumulators: tuple[Path, ...]) -> None:
    """Judge the same sessions under two versions of payer rules, OLD and NEW, and report every
    line whose status, allowed amount or reasons change, with the rules that made each change.

    \b
    OLD and NEW are each a .payer rule file, a folder searched for them, or
    git:REV:PATH, the rule files at PATH in git revision REV (such as
    git:origin/main:payers), read with the git of the current repository.

    Exit status: 0 nothing changed, 1 some line changed, 2 bad usage or unreadable input
    (including rule files with errors or an unknown revision).
    """
    from payrules import diff_render, formats
    from payrules.records import Columns
    from payrules.render import diagnostics, open_output, printable

    try:
        columns = Columns.load(columns_file) if columns_file else None
        if payer_map_file is not None:
            columns = (columns or Columns()).with_payers(formats.load_payer_map(payer_map_file))
        result = diff(old, new, list(sessions), columns=columns, history=list(history), sample=sample, seed=seed,
                      accumulators=list(accumulators),
                      warn=lambda note: click.echo(f"warning: {printable(note)}", err=True))
        render: Callable[[Diff], str] = {DiffFormat.TEXT: diff_render.text, DiffFormat.JSON: diff_render.json_text,
                                         DiffFormat.CSV: diff_render.csv_text}[DiffFormat(output_format)]
        with open_output(output) as out:
            out.write(render(result))
    except CompileError as error:
        click.echo(diagnostics(error.diagnostics), err=True, nl=False)
        ctx.exit(EXIT_USAGE)
    except InputError as error:
        for part in getattr(error, "lines", None) or [str(error)]:  # one line per problem (accumulators)
            click.echo(f"error: {printable(part)}", err=True)
        ctx.exit(EXIT_USAGE)
    ctx.exit(EXIT_CHANGED if result.changed else EXIT_SAME)
