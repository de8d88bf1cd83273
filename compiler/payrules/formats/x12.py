"""X12 837P (005010X222A1) claim files → flat records, one per SV1 service line, located by
transaction, claim, line, segment and element.

Segments are read by pyx12 (the `x12` extra), which honours the separators each ISA declares;
this module only follows the 837P loops (HL levels, NM1 entity codes, CLM, LX) to find what
each service line means. Every SV1 line gives exactly one record: a line to judge, or a line
with a structural problem that says what was wrong.
"""

from __future__ import annotations

import csv
import datetime
import functools
import hashlib
import io
import re
from collections.abc import Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from payrules.diagnostics import InputError
from payrules.fields import ALL_FIELDS, Problem, Record
from payrules.runtime import Origin

ISA_LENGTH = 106
"""An ISA segment is fixed-width: 106 characters, its last one the segment terminator."""

_BOM = b"\xef\xbb\xbf"
_UNIT_BASIS = {"UN": "units", "MJ": "minutes"}
_ICD10 = {"ABK", "ABF"}
_ICD9 = {"BK", "BF"}


_STARTS_X12 = re.compile(rb"ISA(?![A-Za-z0-9_])")
"""`ISA` and then its element separator (or nothing, in a file cut short): a CSV whose first
header merely begins with those letters (`ISACTIVE`) is not taken for X12."""


def sniff(head: bytes) -> bool:
    """Whether a file's first bytes are X12: `ISA` after an optional BOM and whitespace."""
    if head.startswith(_BOM):
        head = head[len(_BOM):]
    return _STARTS_X12.match(head.lstrip()) is not None


TAXONOMY = "taxonomy"
"""The key under which an 837P line's `Origin.headers` holds the taxonomy code (PRV03) its
credential was read from, "" when the claim names none for the line's provider (see
`taxonomy_named`)."""


def taxonomy_named(origin: Origin) -> str | None:
    """For a line read from an 837P file, the taxonomy code its credential came from, or ""
    when the claim names no taxonomy for its provider; None for a line of any other input.

    An 837P line without a credential is judged all the same; this says why it has none, so
    that an explanation can say "the claim names no taxonomy for the provider" (or name a
    taxonomy, such as a physician's, that no credential follows from)."""
    return origin.headers.get(TAXONOMY) if origin.headers else None


# --- the library ------------------------------------------------------------------------------


@functools.cache
def _reader_class() -> Any:
    """pyx12's segment reader, made tolerant: its envelope bookkeeping (SE counts, IEA/GE
    pairing) is advice we do not use, and on damaged files it can raise mid-stream, which
    would lose every later claim."""
    try:
        from pyx12.x12file import X12Reader  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError:
        raise InputError("reading X12 837P files needs the pyx12 library: "
                         "install payrules[x12] (pip install 'payrules[x12]')") from None

    class TolerantReader(X12Reader):  # type: ignore[misc]
        def _parse_segment(self, seg_data: Any) -> None:
            try:
                super()._parse_segment(seg_data)
            except Exception:  # noqa: BLE001 - envelope counters only; the segment is still read
                self.cur_line += 1

    return TolerantReader


def _x12_error() -> type[Exception]:
    from pyx12.errors import X12Error  # type: ignore[import-untyped, import-not-found, unused-ignore]

    error: type[Exception] = X12Error
    return error


# --- NUCC taxonomy → credential -----------------------------------------------------------------


@functools.cache
def taxonomy_table() -> tuple[dict[str, str], tuple[tuple[str, str], ...]]:
    """The shipped taxonomy table: exact codes → credential, and (prefix, credential) pairs,
    longest prefix first."""
    text = resources.files("payrules").joinpath("data/nucc_taxonomy.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(line for line in io.StringIO(text) if not line.startswith("#"))
    exact: dict[str, str] = {}
    prefixes: list[tuple[str, str]] = []
    for row in rows:
        code, credential = row["taxonomy"].strip().upper(), row["credential"].strip().upper()
        if code.endswith("*"):
            prefixes.append((code[:-1], credential))
        else:
            exact[code] = credential
    prefixes.sort(key=lambda p: -len(p[0]))
    return exact, tuple(prefixes)


def credential_for(taxonomy: str) -> str:
    """The credential a NUCC taxonomy code names, or "" when it names none (or is unknown)."""
    code = taxonomy.strip().upper()
    if len(code) != 10 or not code.endswith("X"):
        return ""
    exact, prefixes = taxonomy_table()
    if code in exact:
        return exact[code]
    return next((credential for prefix, credential in prefixes if code.startswith(prefix)), "")


# --- reading ----------------------------------------------------------------------------------------


@attrs.frozen
class Seg:
    """One segment as read: its number in the file (from 1), its id and elements."""

    number: int
    tag: str
    elements: tuple[tuple[str, ...], ...]
    """Elements from 01, each split into its components."""

    def get(self, element: int, component: int = 1) -> str:
        """Element `element` (1-based), component `component` (1-based); "" when absent."""
        if element > len(self.elements):
            return ""
        parts = self.elements[element - 1]
        return parts[component - 1].strip() if component <= len(parts) else ""


KEEP_NAMES = ("claim_id", "line_number", "line_control")
"""The ids `--keep` can carry from an 837P: the claim's id (CLM01), the line's number (LX01)
and its line item control number (REF*6R of the line, which an 835 sends back)."""


def records(path: Path, payers: Mapping[str, str] | None = None, *, ids: bool = False) -> Iterator[Record]:
    """Every SV1 line of an 837P file as a flat record, in file order; with `ids`, each origin
    offers the line's ids (see `KEEP_NAMES`)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such sessions file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder; give an .837, .x12 or .edi file") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror})") from None
    return read_text(data.decode("utf-8", errors="replace"), str(path), payers, ids=ids)


def read_text(text: str, file: str, payers: Mapping[str, str] | None = None, *,
              ids: bool = False) -> Iterator[Record]:
    """The records of 837P text; `file` names it in origins and errors. Raises `InputError` at
    once when the text is not X12 at all. With `ids`, each origin offers the line's ids."""
    text = text.removeprefix("\ufeff").lstrip()
    if not text.startswith("ISA"):
        found = text[:20].split("\n", 1)[0]
        raise InputError(f"{file}: not an X12 file: it must start with an ISA segment, "
                         f"found `{found}`" if found else f"{file}: not an X12 file: it is empty")
    chunks = list(_interchanges(text))
    first_problem = _header_problem(chunks[0])
    if first_problem:
        raise InputError(f"{file}: not a readable X12 file: {first_problem}")
    return _Claims(file, payers or {}, ids).read(chunks)


_KNOWN_SEGMENTS = frozenset(
    "ISA GS ST BHT NM1 N2 N3 N4 REF PER PRV HL SBR PAT DMG CUR CLM DTP PWK CN1 AMT K3 NTE CR1 CR2 CRC HI HCP "
    "CAS OI MOA MIA LX SV1 SV5 CR3 QTY MEA PS1 HSD LIN CTP LQ FRM SVD SE GE IEA".split())
"""Every segment tag of an 837P 005010X222A1 file."""


def _header_problem(chunk: str) -> str | None:
    if len(chunk) < ISA_LENGTH:
        return f"the ISA segment is cut short ({len(chunk)} of {ISA_LENGTH} characters)"
    element = chunk[3]
    if chunk[:ISA_LENGTH - 1].count(element) != 16:
        return (f"the ISA segment must be {ISA_LENGTH} characters with 16 elements separated by "
                f"`{element}`; this one is not (fixed-width fields padded with spaces)")
    component, terminator = chunk[ISA_LENGTH - 2], chunk[ISA_LENGTH - 1]
    # A space (or tab) cannot separate anything: names and padded ISA fields are full of them.
    # A line break may end segments; some senders write one segment per line with no `~`.
    if (component.isalnum() or terminator.isalnum() or len({element, component, terminator}) < 3
            or component.isspace() or (terminator.isspace() and terminator not in "\r\n")
            or chunk[ISA_LENGTH - 3] != element):
        return (f"the ISA segment must end with its component separator and segment terminator at "
                f"characters 105 and 106; found `{component}{terminator}`")
    version = chunk[84:89]
    if version not in ("00401", "00501"):
        return f"ISA12 version `{version}` is not one payrules reads (00501, or 00401)"
    body = chunk[ISA_LENGTH:].strip()
    if body and terminator not in body and _NEXT_SEGMENT.search(body):
        # Read with the terminator it declares, the rest of the file would be one segment, and
        # every service line in it would be lost without a word.
        return (f"the ISA declares `{terminator}` as the segment terminator (character 106), but the "
                "segments after it do not end with it")
    return None


_NEXT_SEGMENT = re.compile(r"[^A-Za-z0-9\s]\s*(?:GS|ST|BHT|HL|NM1|CLM|LX|SV1|SE|GE|IEA)[^A-Za-z0-9\s]")
"""A segment that starts after some other terminator (used only when the declared one is absent)."""


def _interchanges(text: str) -> Iterator[str]:
    """The text cut at each ISA, so each interchange is read with the separators it declares."""
    start = 0
    while True:
        terminator = text[start + ISA_LENGTH - 1] if len(text) >= start + ISA_LENGTH else "~"
        # The next interchange may declare other separators: any punctuation after its `ISA`.
        after = re.compile(re.escape(terminator) + r"\s*(?=ISA[^A-Za-z0-9\s])")
        found = after.search(text, start + ISA_LENGTH)
        if found is None:
            yield text[start:]
            return
        yield text[start:found.end()]
        start = found.end()


def _clean(chunk: str) -> str:
    """One interchange, its segments one after another: empty segments dropped and a final
    terminator added, because pyx12 stops reading at an empty segment and never gives back a
    last segment that lacks its terminator (a truncated file)."""
    terminator = chunk[ISA_LENGTH - 1]
    body = chunk[ISA_LENGTH:]
    body = re.sub(r"(?:\s*" + re.escape(terminator) + r")+\s*", lambda _: terminator, body)
    # The ISA ends with the terminator already: one more right after it is an empty segment too.
    body = body.lstrip().removeprefix(terminator).lstrip()
    if body.rstrip() and not body.rstrip().endswith(terminator):
        body = body.rstrip() + terminator
    return chunk[:ISA_LENGTH] + body


def _segments(chunk: str, first: int, fallback: tuple[str, str, str] | None) -> tuple[list[Seg], str | None]:
    """The segments of one interchange, numbered from `first`; and a problem when it cannot be
    read. `fallback` (element, component separators) reads an interchange whose ISA is damaged
    with the separators of the one before it."""
    problem = _header_problem(chunk)
    if problem is not None:
        if fallback is None:
            return [], problem
        element, component, terminator = fallback
        chunk = "ISA" + element + element.join(["00", " " * 10, "00", " " * 10, "ZZ", " " * 15, "ZZ", " " * 15,
                                                   "000101", "0000", "^", "00501", "000000000", "0", "P",
                                                   component]) + terminator + chunk
    stand_in, problem = problem is not None, None
    text = _clean(chunk)
    reader_class, x12_error = _reader_class(), _x12_error()
    segments: list[Seg] = []
    number = first
    try:
        for number, raw in enumerate(reader_class(io.StringIO(text)), start=first):
            segments.append(Seg(number, (raw.get_seg_id() or "").strip().upper(),
                                tuple(tuple(e.get_value() for e in c.elements) for c in raw.elements)))
    except x12_error as error:
        return [], str(error)
    except Exception as error:  # noqa: BLE001 - a library fault on damaged input must not lose the file
        problem = f"reading stopped after segment {number} ({type(error).__name__}: {error})"
    if stand_in:
        segments = [attrs.evolve(s, number=s.number - 1) for s in segments[1:]]
    return segments, problem


# --- the claim walk -----------------------------------------------------------------------------


@attrs.define
class _Provider:
    npi: str = ""
    taxonomy: str = ""
    loop: str = ""


@attrs.define
class _Dependent:
    """What tells a dependent patient (2000C/2010CA) apart from the others on the subscriber's policy."""

    birth: str = ""
    sex: str = ""
    relationship: str = ""
    """PAT01, the patient's relationship to the subscriber."""
    member: str = ""
    """The patient's own id (NM109 of NM1*QC), which 5010 leaves out and older senders give."""

    def suffix(self) -> str:
        """What follows the subscriber's member id in the patient id.

        5010 gives a dependent no member id of their own. Birth date, sex and relationship tell
        dependents apart, but written out they would put a birth date into every output; a short
        hash of them is as stable and reveals neither (same-sex twins on one policy share it)."""
        if self.member:
            return f"-{self.member}"
        key = f"{self.birth}|{self.sex}|{self.relationship}".upper()
        return "-D" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:8].upper()


@attrs.define
class _Line:
    lx: str
    segment: Seg | None = None
    """The SV1 segment."""
    date: Seg | None = None
    """The line's DTP*472."""
    rendering: _Provider | None = None
    """2420A, when the line names its own rendering provider."""
    numbered: int = 0
    """Segment number of the LX."""
    control: str = ""
    """The line item control number (REF*6R of the line), when the claim gives one."""


@attrs.define
class _Claim:
    transaction: str
    segment: Seg
    billing: _Provider
    patient: str
    patient_loop: str
    payer: str
    rendering: _Provider | None = None
    date: Seg | None = None
    diagnoses: list[tuple[str, str, Seg, int]] = attrs.field(factory=list)
    """(qualifier, code, HI segment, element) in HI order."""
    lines: list[_Line] = attrs.field(factory=list)

    @property
    def id(self) -> str:
        return self.segment.get(1)


class _Claims:
    """Walks the segments of a file and gives back its claims' records."""

    def __init__(self, file: str, payers: Mapping[str, str], ids: bool = False) -> None:
        self.ids = ids
        """Whether origins offer the lines' ids (`--keep`); without, they stay as they were."""
        self.file = file
        self.payers = {key.strip().casefold(): value for key, value in payers.items()}
        self.transaction = ""
        self.billing = _Provider(loop="2010AA")
        self.level = ""
        self.subscriber = ""
        self.dependent = _Dependent()
        self.patient_loop = "2010BA"
        self.payer = ""
        self.claim: _Claim | None = None
        self.last_nm1 = ""

    def read(self, chunks: Sequence[str]) -> Iterator[Record]:
        number = 1
        separators: tuple[str, str, str] | None = None
        for chunk in chunks:
            segments, problem = _segments(chunk, number, separators)
            for seg in segments:
                yield from self._segment(seg)
            number = segments[-1].number + 1 if segments else number
            if problem is not None:
                yield from self._close()
                yield self._unreadable(number, problem)
                number += 1
            elif _header_problem(chunk) is None:
                separators = (chunk[3], chunk[ISA_LENGTH - 2], chunk[ISA_LENGTH - 1])
        yield from self._close()

    def payer_id(self, found: str) -> str:
        """The rule files' id for a payer id of the file: mapped, else as the file spells it."""
        return self.payers.get(found.casefold(), found)

    def _unreadable(self, number: int, problem: str) -> Record:
        origin = Origin(self.file, number, "ISA")
        return [""] * len(ALL_FIELDS), origin, Problem("ISA", "", f"an interchange that cannot be read: {problem}; "
                                                                   "its service lines are not judged")

    def _segment(self, seg: Seg) -> Iterator[Record]:
        kind = seg.tag
        if kind not in _KNOWN_SEGMENTS:
            # A damaged segment (a tag no 837P has) may have been the HL or CLM that starts the
            # next claim: the service lines after it are not given to the claim before it, but
            # reported as outside any claim until the next CLM.
            yield from self._close()
            return
        if kind in ("ISA", "GS", "ST", "SE", "GE", "IEA", "HL"):
            yield from self._close()
            if kind == "ST":
                self.transaction = seg.get(2)
                self.billing, self.level = _Provider(loop="2010AA"), ""
                self.subscriber = self.payer = ""
                self.dependent = _Dependent()
            elif kind == "HL":
                self.level = seg.get(3)
                if self.level == "20":
                    self.billing = _Provider(loop="2010AA")
                    self.subscriber = self.payer = ""
                    self.dependent = _Dependent()
                elif self.level == "22":
                    self.subscriber = self.payer = ""
                    self.dependent = _Dependent()
                    self.patient_loop = "2010BA"
                elif self.level == "23":
                    self.dependent, self.patient_loop = _Dependent(), "2010CA"
            return
        claim = self.claim
        line = claim.lines[-1] if claim and claim.lines else None
        if kind == "CLM":
            yield from self._close()
            patient = self.subscriber
            if self.patient_loop == "2010CA" and self.subscriber:
                patient += self.dependent.suffix()
            self.claim = _Claim(self.transaction, seg, self.billing, patient, self.patient_loop, self.payer)
        elif kind == "NM1":
            self.last_nm1 = seg.get(1)
            npi = seg.get(9) if seg.get(8) == "XX" else ""
            if claim is None:
                self._header_nm1(seg, npi)
            elif self.last_nm1 == "82":
                provider = _Provider(npi=npi, loop="2420A" if line else "2310B")
                if line:
                    line.rendering = provider
                else:
                    claim.rendering = provider
        elif kind == "PRV":
            named = (line.rendering if line else claim.rendering) if claim else None
            if claim is None and seg.get(1) == "BI":
                self.billing.taxonomy = seg.get(3)
            elif named is not None and seg.get(1) == "PE" and self.last_nm1 == "82":
                named.taxonomy = seg.get(3)
        elif kind == "DMG" and claim is None and self.level == "23":
            self.dependent.birth, self.dependent.sex = seg.get(2), seg.get(3)
        elif kind == "PAT" and claim is None and self.level == "23":
            self.dependent.relationship = seg.get(1)
        elif kind == "HI" and claim is not None and line is None:
            for i, element in enumerate(seg.elements, start=1):
                qualifier = element[0].strip().upper() if element else ""
                if qualifier in _ICD10 or qualifier in _ICD9:
                    claim.diagnoses.append((qualifier, element[1].strip() if len(element) > 1 else "", seg, i))
        elif kind == "DTP" and claim is not None and seg.get(1) == "472":
            if line is not None:
                line.date = seg
            else:
                claim.date = seg
        elif kind == "REF" and line is not None and seg.get(1) == "6R":
            line.control = seg.get(2)
        elif kind == "LX" and claim is not None:
            claim.lines.append(_Line(seg.get(1), numbered=seg.number))
        elif kind == "SV1":
            if claim is None:
                yield self._orphan(seg)
            elif line is None or line.segment is not None:
                claim.lines.append(_Line("", segment=seg, numbered=seg.number))
            else:
                line.segment = seg

    def _header_nm1(self, seg: Seg, npi: str) -> None:
        entity = seg.get(1)
        if entity == "85":
            self.billing.npi = npi
        elif entity == "IL":
            self.subscriber = seg.get(9)
        elif entity == "PR":
            self.payer = seg.get(9)
        elif entity == "QC" and seg.get(9):
            # 5010 leaves the patient loop's id out; a file that sends one gets it used as is.
            self.dependent.member = seg.get(9)

    def _orphan(self, seg: Seg) -> Record:
        origin = Origin(self.file, seg.number, f"ST {self.transaction} / SV1")
        return [""] * len(ALL_FIELDS), origin, Problem("CLM", "", "a service line (SV1) outside any claim (CLM)")

    def _close(self) -> Iterator[Record]:
        claim, self.claim = self.claim, None
        if claim is None:
            return
        lines = [line for line in claim.lines if line.segment is not None]
        if not lines:
            return
        built = [_LineRecord(self, claim, line) for line in lines]
        dates = {b.date for b in built if b.date}
        for b in built:
            yield b.record(several_dates=len(dates) > 1)


class _LineRecord:
    """One SV1 line of a claim, mapped to a flat record."""

    def __init__(self, walk: _Claims, claim: _Claim, line: _Line) -> None:
        assert line.segment is not None
        self.walk, self.claim, self.line, self.sv1 = walk, claim, line, line.segment
        self.problem: tuple[Seg, str, str, str, str] | None = None
        """(segment, element, field, value, message) of the first structural problem."""
        self.date = self._date()

    def _fail(self, seg: Seg, element: str, field: str, value: str, message: str) -> None:
        if self.problem is None:
            self.problem = (seg, element, field, value, message)

    def _date(self) -> str:
        seg = self.line.date or self.claim.date
        if seg is None:
            self._fail(self.sv1, "", "date", "", "the line has no date of service (DTP*472, in the line "
                                                 "or the claim)")
            return ""
        qualifier, value = seg.get(2).upper(), seg.get(3)
        if qualifier == "D8":
            return self._day(seg, value)
        if qualifier == "RD8":
            start, _, end = value.partition("-")
            first, last = self._day(seg, start), self._day(seg, end)
            if first and last and first != last:
                self._fail(seg, "03", "date", value, f"the line covers {first} to {last}; payrules judges "
                                                     "each date of service on its own, so bill one line per date")
                return ""
            return first
        self._fail(seg, "02", "date", qualifier, f"unknown date format `{qualifier}`; expected D8 or RD8")
        return ""

    def _day(self, seg: Seg, value: str) -> str:
        try:
            if len(value) == 8 and value.isdigit():
                return datetime.date(int(value[:4]), int(value[4:6]), int(value[6:])).isoformat()
        except ValueError:
            self._fail(seg, "03", "date", value, f"`{value}` is not a calendar date")
            return ""
        self._fail(seg, "03", "date", value, f"expected a date as CCYYMMDD, found `{value}`")
        return ""

    def record(self, several_dates: bool) -> Record:
        claim, sv1 = self.claim, self.sv1
        session = f"{claim.id}@{self.date}" if several_dates and self.date else claim.id
        code, modifiers = self._procedure()
        units, minutes = self._quantity()
        npi, taxonomy, provider_loop = self._provider()
        diagnoses = self._diagnoses()
        payer = self.walk.payer_id(claim.payer)
        # Place of service: the line's SV105 when given, else the claim's CLM05-1.
        place = sv1.get(5) or claim.segment.get(5, 1)
        raw = (session, claim.patient, self.date, payer, npi, credential_for(taxonomy), code, modifiers, units, minutes,
               sv1.get(2), diagnoses, "", place)
        where = f"ST {claim.transaction} / CLM {claim.id} / LX {self.line.lx or '?'}"
        if self.problem is not None:
            seg, element, field, value, message = self.problem
            label = "DTP*472" if seg.tag == "DTP" else seg.tag
            path = f"{where} / {label}-{element}" if element else f"{where} / {label}"
            return raw, Origin(self.walk.file, seg.number, path, kept=self._kept()), Problem(field, value, message)
        # A taxonomy code has 10 characters; a damaged one is kept only as far as a message needs it.
        headers = _headers(claim.patient_loop, provider_loop, self.line.date is not None, taxonomy.upper()[:40])
        return raw, Origin(self.walk.file, sv1.number, f"{where} / SV1", headers, self._kept()), None

    def _kept(self) -> tuple[tuple[str, str], ...]:
        """The ids `--keep` can carry from a claim line (see `KEEP_NAMES`), when asked for;
        `records.with_kept` keeps those asked for."""
        if not self.walk.ids:
            return ()
        return (("claim_id", self.claim.id), ("line_number", self.line.lx), ("line_control", self.line.control))

    def _procedure(self) -> tuple[str, str]:
        qualifier, code = self.sv1.get(1, 1).upper(), self.sv1.get(1, 2)
        if qualifier != "HC":
            found = qualifier or "nothing"
            self._fail(self.sv1, "01-1", "code", qualifier, f"procedure qualifier is {found}; payrules judges "
                                                            "HCPCS/CPT codes (HC)")
        modifiers = [self.sv1.get(1, i) for i in range(3, 7)]
        return code, ";".join(m for m in modifiers if m)

    def _quantity(self) -> tuple[str, str]:
        basis, amount = self.sv1.get(3).upper(), self.sv1.get(4)
        if basis not in _UNIT_BASIS:
            found = f"`{basis}`" if basis else "nothing"
            self._fail(self.sv1, "03", "units", basis, f"unit basis is {found}; expected UN (units) or MJ (minutes)")
            return "", ""
        if not amount:
            self._fail(self.sv1, "04", _UNIT_BASIS[basis], "", f"no quantity of {_UNIT_BASIS[basis]}")
            return "", ""
        whole = _whole(amount)
        if whole is None:
            self._fail(self.sv1, "04", _UNIT_BASIS[basis], amount,
                       f"expected a whole number of {_UNIT_BASIS[basis]} such as 1 or 1.00, found `{amount}`")
            return "", ""
        if basis == "UN":
            return whole, ""
        # One line's minutes give its units by the midpoint rule, which the CMS and AMA methods
        # share for a single line; at least 1, so a short line is judged rather than rejected.
        return str(max(1, (int(whole) + 7) // 15)), whole

    def _provider(self) -> tuple[str, str, str]:
        """The line's rendering NPI, the taxonomy code its credential comes from ("" when none
        is named), and the loop that named the provider."""
        claim = self.claim
        chosen = self.line.rendering or claim.rendering or claim.billing
        taxonomy = chosen.taxonomy
        # A rendering provider without a taxonomy takes the billing provider's only when it is the
        # billing provider: a group's taxonomy says nothing about who rendered the line.
        if not taxonomy and chosen.npi == claim.billing.npi:
            taxonomy = claim.billing.taxonomy
        return chosen.npi, taxonomy.strip(), chosen.loop

    def _diagnoses(self) -> str:
        listed = self.claim.diagnoses
        principal = next((i for i, (qualifier, *_) in enumerate(listed) if qualifier == "ABK"), None)
        codes: list[str] = []
        for i in range(1, 5):
            pointer = self.sv1.get(7, i)
            if not pointer:
                continue
            if not pointer.isdigit() or not 1 <= int(pointer) <= len(listed):
                have = f"the claim lists {len(listed)} diagnos{'i' if len(listed) == 1 else 'e'}s"
                self._fail(self.sv1, f"07-{i}", "diagnoses", pointer, f"pointer `{pointer}` names no diagnosis; {have}")
                continue
            qualifier, code, seg, element = listed[int(pointer) - 1]
            if qualifier in _ICD9:
                self._fail(seg, f"{element:02d}-1", "diagnoses", f"{qualifier}:{code}",
                           f"`{code}` is an ICD-9-CM code ({qualifier}); payrules judges "
                           "ICD-10-CM diagnoses (ABK, ABF)")
                continue
            if int(pointer) - 1 == principal:
                # The claim's principal diagnosis (its ABK code) is the line's primary diagnosis
                # (`primary diagnosis` in a rule file), so it goes first; the others keep their
                # pointer order.
                codes.insert(0, _with_dot(code))
            else:
                codes.append(_with_dot(code))
        return ";".join(codes)


def _whole(amount: str) -> str | None:
    """`1.00` → `1`; None for a fraction or for text that is not a number."""
    whole, dot, fraction = amount.partition(".")
    if not whole.isdigit() or (dot and fraction.strip("0") and not fraction.isdigit()):
        return None
    if fraction.strip("0"):
        return None
    return str(int(whole))


def _with_dot(code: str) -> str:
    code = code.strip().upper()
    return f"{code[:3]}.{code[3:]}" if len(code) > 3 and "." not in code else code


@functools.lru_cache(maxsize=1024)
def _headers(patient_loop: str, provider_loop: str, line_date: bool, taxonomy: str) -> Mapping[str, str]:
    """Field → where in the 837P it was read, so a bad field names its segment and element; and
    the taxonomy the credential came from, under `TAXONOMY` (see `taxonomy_named`)."""
    return {"session_id": "CLM01", "patient_id": f"{patient_loop} NM109", "date": f"{'2400' if line_date else '2300'}"
            " DTP03", "payer": "2010BB NM109", "provider_npi": f"{provider_loop} NM109",
            "provider_credential": "PRV03", "code": "SV101-2", "modifiers": "SV101-3..6", "units": "SV104",
            "minutes": "SV104", "charge": "SV102", "diagnoses": "HI (SV107 pointers)",
            "place_of_service": "SV105 (else CLM05-1)", TAXONOMY: taxonomy}
