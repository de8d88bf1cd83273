"""Judged sessions → an X12 835 (005010X221A1) remittance advice: what each payer would send back.

One interchange (ISA/GS) holds one 835 transaction (ST/SE) per payer, in payer id order; each
session is a claim (CLP) and each judged line a service (SVC) with its adjustments (CAS) and
remark codes (LQ). Lines not judged are not in the 835: `close` lists them on the `errors`
stream. The decisions behind the layout (group codes, the amount of each reason, BPR, payee,
dates and control numbers) are in the README, section "835 remittance output"; the comments
below say why.

An 835 is per payer, so claims are held until `close`. Each claim is kept as one line of
compact JSON (amounts already computed, no result objects), in a spooled temporary file per
payer: in memory up to `SPOOL_BYTES`, on disk beyond, deleted at `close`.
"""

from __future__ import annotations

import datetime
import functools
import json
import re
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import IO, Any, TextIO

from payrules.diagnostics import InternalError
from payrules.judging import DENIED, kept_of
from payrules.render import Fragment, Mask, Writer, _error_text, _summary_text
from payrules.runner import Block, LineResult, SessionResult, Summary

VERSION = "005010X221A1"
SEGMENT_END = "~\n"
"""`~` ends a segment; the line break after it is for people (X12 readers skip it)."""
ELEMENT, COMPONENT, REPETITION = "*", ":", "^"

SPOOL_BYTES = 1 << 20
"""Claims of one payer held in memory before they go to a temporary file."""

MAX_SERVICES = 999
"""Service lines per CLP loop (2110 repeats at most 999 times); a longer session is split
into several CLP loops with the same claim id, each balanced on its own."""
MAX_MODIFIERS = 4
"""Modifier places in the procedure composite (SVC01-03 to SVC01-06)."""
MAX_ADJUSTMENTS = 6
"""Reason/amount pairs per CAS segment; more of one group go in another CAS segment."""

PATIENT_CARCS = frozenset({"1", "2", "3"})
"""Deductible, coinsurance and co-payment: patient cost share, group PR by definition."""
OTHER_CARCS = frozenset({"18"})
"""Exact duplicate: its CARC text says to use it only with group OA."""

FILING_INDICATOR = "ZZ"
"""CLP06: rule files do not say which kind of plan a payer's policy is (commercial,
Medicare...), so the claim filing indicator is ZZ, mutually defined."""
PAYER_TAX_ID = "1000000000"
"""TRN03 is "1" and the payer's EIN; rule files have no EIN, so nine zeros (REF*2U carries
the payer id of the rule files)."""
NOT_GIVEN = "NOT GIVEN"
"""What the payer's address and technical contact read: the guide requires them, and rule
files do not give them."""

_NOT_ALLOWED = re.compile(r"""[^A-Za-z0-9!"&'()+,\-./;?= %@\[\]_{}\\|<>`#$]""")
"""Characters outside the X12 5010 extended character set, and the separators `*` `:` `^` `~`."""


@functools.lru_cache(maxsize=20_000)
def amount(cents: int) -> str:
    """Cents as an X12 decimal: 7000 → `70`, 4550 → `45.5`, 1234 → `12.34` (no trailing zeros)."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    if part == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{part // 10}" if part % 10 == 0 else f"{sign}{whole}.{part:02d}"


def text(value: str, limit: int, least: int = 1) -> str:
    """User text as an X12 value: accents dropped, other characters outside the character set
    (separators included) as `?`, at most `limit` characters, padded to `least` with leading 0s."""
    if least <= len(value) <= limit and value.isascii() and not _NOT_ALLOWED.search(value) \
            and value.strip() == value:
        return value  # nearly every id
    folded = "".join(c for c in unicodedata.normalize("NFKD", value) if not unicodedata.combining(c))
    cleaned = _NOT_ALLOWED.sub("?", folded).strip()[:limit].strip() or "?"
    return cleaned.rjust(least, "0")


def group_code(carc: str) -> str:
    """The CAS group of a reason code: PR for patient cost share, OA for duplicates, else CO."""
    if carc in PATIENT_CARCS:
        return "PR"
    if carc in OTHER_CARCS:
        return "OA"
    return "CO"


Adjustment = tuple[str, str, int]
"""(group code, CARC, cents) of one CAS reason."""


def adjustments(line: LineResult) -> list[Adjustment]:
    """The CAS reasons of a line: each reason with the cents it took (`Reason.amount`), reasons
    with the same group and CARC added into one, in the order of the line's reasons. Reasons
    that took nothing (a later denial of a line already denied, a warning) are left out. The
    amounts add up to charge minus paid exactly: the engine records them so."""
    merged: dict[tuple[str, str], int] = {}
    for reason in line.reasons:
        if reason.amount:
            key = (group_code(reason.carc), reason.carc)
            merged[key] = merged.get(key, 0) + reason.amount
    total = line.charge - line.allowed
    if sum(merged.values()) != total:
        raise InternalError(f"line {line.line} of {line.input.session_id} is adjusted by {total} cents but its "
                            f"reasons took {sum(merged.values())}")
    return [(group, carc, cents) for (group, carc), cents in merged.items()]


def remarks(line: LineResult) -> list[str]:
    """The RARCs of the line's reasons, each once, in order: of the reasons that adjust it, and
    of the denying or reducing reasons that took nothing (a later denial still tells the
    provider what else is wrong). Warnings give none: they change nothing."""
    return list(dict.fromkeys(r.rarc for r in line.reasons if r.rarc and (r.amount or r.severity != "warn")))


# --- claims as compact records --------------------------------------------------------------

# A claim record: [session id, patient id, date, [service, ...]], and a service:
# [code, [modifiers], units billed, units paid, charge, paid, NPI, denied, [[group, CARC, cents]], [RARC],
#  line item control number or ""].
Claim = list[Any]


def claim_record(session: SessionResult, line_id: str | None = None) -> Claim:
    """The compact record of a judged session; `line_id` names the kept id (`--keep`) that
    each service's REF*6R carries."""
    services = []
    for line in session.lines:
        given = line.input
        control = dict(kept_of(given.origin)).get(line_id, "") if line_id else ""
        services.append([given.code, list(line.modifiers), given.units, line.units_paid, given.charge, line.allowed,
                         given.provider_npi, line.status == DENIED, [list(a) for a in adjustments(line)],
                         remarks(line), control])
    return [session.session_id, session.patient_id, session.date, services]


class _Payer:
    """One payer's claims so far, spooled, and the counts its transaction header needs."""

    def __init__(self, payer_id: str, name: str) -> None:
        self.payer_id = payer_id
        self.name = name
        self.claims: IO[str] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, mode="w+", encoding="utf-8",
                                                             newline="\n")
        self.npis: Counter[str] = Counter()
        """Service lines by rendering NPI, to pick the payee."""
        self.paid = 0
        """Cents paid on all the claims, for BPR02."""

    def add(self, claim: Claim) -> None:
        self.claims.write(json.dumps(claim, separators=(",", ":")) + "\n")
        self.npis.update(service[6] for service in claim[3])
        self.paid += sum(service[5] for service in claim[3])

    def read(self) -> Iterator[Claim]:
        self.claims.seek(0)
        for row in self.claims:
            yield json.loads(row)

    def payee(self) -> str:
        """The NPI on most of the payer's lines (the smallest on a tie)."""
        return min(self.npis, key=lambda npi: (-self.npis[npi], npi))


class _Segments:
    """Segments for a stream, counted for SE01; `flush` writes those not written yet."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.count = 0
        self.pending: list[str] = []

    def put(self, *elements: str) -> None:
        end = len(elements)
        while end and elements[end - 1] == "":  # trailing empty elements are left out
            end -= 1
        self.pending.append(ELEMENT.join(elements[:end]) + SEGMENT_END)
        self.count += 1

    def flush(self) -> None:
        self.out.write("".join(self.pending))
        self.pending.clear()


# --- the writer -----------------------------------------------------------------------------


class X835Writer(Writer):
    """One 835 transaction per payer in one interchange, written at `close`.

    `date` is the payment date and the interchange date; without it, the latest date of service
    among the judged claims, so the same input always gives the same 835. `control_number`
    numbers the interchange and its group (transactions are numbered 0001 on). `payee_npi`
    and `payee_name` name the payee of every transaction; without them each payer's payee is
    the rendering NPI on most of its lines. Lines not judged, and the summary, go to `errors`.
    """

    def __init__(self, out: TextIO, *, continued: bool = False, date: datetime.date | None = None,
                 time: str = "0000", control_number: int = 1, sender: str = "PAYRULES",
                 receiver: str = "PROVIDER", payee_npi: str | None = None, payee_name: str | None = None,
                 errors: TextIO | None = None, mask: Mask | None = None, keep: tuple[str, ...] = (),
                 line_id: str | None = None) -> None:
        super().__init__(out, continued=continued, mask=mask, keep=keep)
        if not 1 <= control_number <= 999_999_999:
            raise ValueError(f"an interchange control number has at most 9 digits, got {control_number}")
        if not re.fullmatch(r"([01]\d|2[0-3])[0-5]\d", time):
            raise ValueError(f"a time is HHMM, got `{time}`")
        if payee_npi is not None and not re.fullmatch(r"\d{10}", payee_npi):
            raise ValueError(f"an NPI has 10 digits, got `{payee_npi}`")
        self.date, self.time, self.control_number = date, time, control_number
        self.sender, self.receiver = text(sender, 15), text(receiver, 15)
        self.payee_npi, self.payee_name = payee_npi, payee_name
        self.errors = errors
        self.line_id = line_id
        """The kept id (one of `keep`) that REF*6R of each SVC carries, the line item control
        number a provider matches the 835 to its own lines by."""
        self.payers: dict[str, _Payer] = {}
        self.last_date = ""

    def _write_block(self, block: Block) -> None:
        for session in block.sessions:
            claim = claim_record(session, self.line_id)
            if self.continued:
                # A worker's part goes back to the main writer as records, in input order (see `extend`).
                self.out.write(json.dumps([session.payer, session.payer_name, claim], separators=(",", ":")) + "\n")
            else:
                self._add(session.payer, session.payer_name, claim)
            self.sessions += 1
        self.held.extend(block.errors)

    def _add(self, payer_id: str, name: str, claim: Claim) -> None:
        key = payer_id.casefold()
        payer = self.payers.get(key)
        if payer is None:
            payer = self.payers[key] = _Payer(payer_id, name)
        payer.add(claim)
        self.last_date = max(self.last_date, claim[2])

    def continuation(self, out: TextIO) -> Writer:
        return X835Writer(out, continued=True, date=self.date, time=self.time, control_number=self.control_number,
                          sender=self.sender, receiver=self.receiver, payee_npi=self.payee_npi,
                          payee_name=self.payee_name, mask=self.mask, keep=self.keep, line_id=self.line_id)

    def extend(self, fragment: Fragment) -> None:
        for row in fragment.text.splitlines():
            payer_id, name, claim = json.loads(row)
            self._add(payer_id, name, claim)
        self.held.extend(fragment.held)
        self.sessions += fragment.sessions

    def close(self, summary: Summary) -> None:
        if self.errors is not None:
            if self.held:
                self.errors.write("Lines not judged (not in the 835; fix them and run again):\n")
                self.errors.write("".join(f"  {_error_text(e)}\n" for e in self.held))
            self.errors.write(_summary_text(summary) + "\n")
        if not self.payers:
            return  # no claim judged: no remittance to write
        try:
            self._interchange()
        finally:
            for payer in self.payers.values():
                payer.claims.close()

    def _interchange(self) -> None:
        day = self.date.isoformat() if self.date else self.last_date
        date8 = day.replace("-", "")
        control = f"{self.control_number:09d}"
        out = _Segments(self.out)
        out.put("ISA", "00", " " * 10, "00", " " * 10, "ZZ", self.sender.ljust(15), "ZZ", self.receiver.ljust(15),
                date8[2:], self.time, REPETITION, "00501", control, "0", "T", COMPONENT)
        out.put("GS", "HP", self.sender, self.receiver, date8, self.time, str(self.control_number), "X", VERSION)
        out.flush()
        keys = sorted(self.payers)
        for number, key in enumerate(keys, start=1):
            self._transaction(self.payers[key], f"{number:04d}", date8, control)
        out.put("GE", str(len(keys)), str(self.control_number))
        out.put("IEA", "1", control)
        out.flush()

    def _transaction(self, payer: _Payer, st02: str, date8: str, control: str) -> None:
        out = _Segments(self.out)
        paid = payer.paid
        out.put("ST", "835", st02)
        # Money does not move: nothing paid is a notification (H, NON); otherwise the remittance
        # is information whose payment goes separately, by check (X12 RFI 2228 and the BPR01 notes).
        method = ("I", "CHK") if paid else ("H", "NON")
        out.put("BPR", method[0], amount(paid), "C", method[1], *[""] * 11, date8)
        out.put("TRN", "1", f"{control}{st02}", PAYER_TAX_ID)
        out.put("N1", "PR", text(payer.name, 60))
        out.put("N3", NOT_GIVEN)
        out.put("N4", NOT_GIVEN)
        out.put("REF", "2U", text(payer.payer_id, 50))
        out.put("PER", "BL", NOT_GIVEN)
        payee = self.payee_npi or payer.payee()
        out.put("N1", "PE", text(self.payee_name or f"NPI {payee}", 60), "XX", payee)
        out.put("LX", "1")
        for claim in payer.read():
            session_id, patient_id, day, services = claim
            for start in range(0, len(services), MAX_SERVICES):
                self._claim(out, session_id, patient_id, day, services[start:start + MAX_SERVICES], payee)
            out.flush()
        out.put("SE", str(out.count + 1), st02)
        out.flush()

    def _claim(self, out: _Segments, session_id: str, patient_id: str, day: str, services: Sequence[Any],
               payee: str) -> None:
        charged = sum(s[4] for s in services)
        paid = sum(s[5] for s in services)
        patient_share = sum(cents for s in services for group, _, cents in s[8] if group == "PR")
        status = "4" if all(s[7] for s in services) else "1"
        claim_id = text(session_id, 38)
        out.put("CLP", claim_id, status, amount(charged), amount(paid),
                amount(patient_share) if patient_share else "", FILING_INDICATOR, claim_id)
        out.put("NM1", "QC", "1", "", "", "", "", "", "MI", text(patient_id, 80, least=2))
        rendering = services[0][6]
        if rendering != payee:
            out.put("NM1", "82", "1", "", "", "", "", "", "XX", rendering)
        date8 = day.replace("-", "")
        for code, modifiers, units, units_paid, charge, line_paid, npi, _, adjusted, rarcs, control in services:
            procedure = COMPONENT.join(["HC", code, *modifiers[:MAX_MODIFIERS]])
            # SVC07 (units billed) only when fewer units were paid, as the guide asks.
            out.put("SVC", procedure, amount(charge), amount(line_paid), "", str(units_paid), "",
                    str(units) if units != units_paid else "")
            out.put("DTM", "472", date8)
            for group in dict.fromkeys(g for g, _, _ in adjusted):
                pairs = [(carc, cents) for g, carc, cents in adjusted if g == group]
                for start in range(0, len(pairs), MAX_ADJUSTMENTS):
                    elements = [group]
                    for carc, cents in pairs[start:start + MAX_ADJUSTMENTS]:
                        elements += [carc, amount(cents), ""]
                    out.put("CAS", *elements)
            if control.strip():
                # Loop 2110 orders REF*6R (line item control number) before REF*HPI.
                out.put("REF", "6R", text(control, 50))
            if npi != rendering:
                out.put("REF", "HPI", npi)
            for rarc in rarcs:
                out.put("LQ", "HE", rarc)
