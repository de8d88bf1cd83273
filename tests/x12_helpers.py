"""Reading an X12 835 in tests: pyx12's validator, the guide's balancing rules, and its services."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from decimal import Decimal

import pyx12.params
import pyx12.x12n_document as pyx12_document


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def validator_errors(text: str) -> list[str]:
    """What pyx12's validator finds wrong with `text` (it logs each error and returns False)."""
    handler = _Collect()
    logger = logging.getLogger("pyx12")
    logger.addHandler(handler)
    try:
        valid = pyx12_document.x12n_document(param=pyx12.params.params(), src_file=io.StringIO(text), fd_997=None,
                                             fd_html=None)
    finally:
        logger.removeHandler(handler)
    return handler.messages if handler.messages or valid else ["the validator rejected the 835"]


def segments(text: str) -> list[list[str]]:
    """The 835 as segments of elements, read with the separators its ISA declares."""
    element, terminator = text[3], text[105]
    return [s.strip().split(element) for s in text.split(terminator) if s.strip()]


def money(value: str) -> Decimal:
    return Decimal(value or "0")


def check_balances(text: str) -> dict[str, int]:
    """Check every balancing rule of the 835 guide, and the counts of the envelopes; return how
    many services, claims and transactions were checked."""
    segs = segments(text)
    counts = {"services": 0, "claims": 0, "transactions": 0}
    groups = transactions_in_group = 0
    i = 0
    while i < len(segs):
        seg = segs[i]
        if seg[0] == "GS":
            groups += 1
            transactions_in_group = 0
        elif seg[0] == "GE":
            assert int(seg[1]) == transactions_in_group, f"GE01 {seg[1]} != {transactions_in_group} transactions"
        elif seg[0] == "IEA":
            assert int(seg[1]) == groups
        elif seg[0] == "ST":
            end = next(j for j in range(i, len(segs)) if segs[j][0] == "SE")
            _check_transaction(segs[i:end + 1], counts)
            transactions_in_group += 1
            counts["transactions"] += 1
            i = end
        i += 1
    return counts


def _check_transaction(segs: list[list[str]], counts: dict[str, int]) -> None:
    st, se = segs[0], segs[-1]
    assert int(se[1]) == len(segs) and se[2] == st[2], f"SE {se} for {len(segs)} segments of ST {st[2]}"
    bpr = segs[1]
    assert bpr[0] == "BPR"
    claims = [k for k, s in enumerate(segs) if s[0] == "CLP"]
    paid = Decimal(0)
    for start, end in zip(claims, [*claims[1:], len(segs) - 1]):
        paid += _check_claim(segs[start:end], counts)
    assert money(bpr[2]) == paid, f"BPR02 {bpr[2]} != sum of CLP04 {paid}"
    assert (bpr[1], bpr[4]) == (("I", "CHK") if paid else ("H", "NON"))


def _check_claim(segs: list[list[str]], counts: dict[str, int]) -> Decimal:
    clp = segs[0]
    services = [k for k, s in enumerate(segs) if s[0] == "SVC"]
    assert services, f"claim {clp[1]} has no service line"
    assert all(s[0] != "CAS" for s in segs[:services[0]]), "adjustments are at line level only"
    charged = paid = patient = Decimal(0)
    for start, end in zip(services, [*services[1:], len(segs)]):
        svc = segs[start]
        adjusted = Decimal(0)
        for cas in (s for s in segs[start:end] if s[0] == "CAS"):
            for k in range(2, len(cas), 3):
                adjusted += money(cas[k + 1])
                patient += money(cas[k + 1]) if cas[1] == "PR" else 0
        assert money(svc[2]) - money(svc[3]) == adjusted, f"claim {clp[1]} {svc}: CAS add up to {adjusted}"
        charged += money(svc[2])
        paid += money(svc[3])
        counts["services"] += 1
    assert money(clp[3]) == charged, f"CLP03 {clp[3]} != sum of SVC02 {charged}"
    assert money(clp[4]) == paid, f"CLP04 {clp[4]} != sum of SVC03 {paid}"
    assert money(clp[5] if len(clp) > 5 else "") == patient, f"CLP05 of {clp[1]} != PR adjustments {patient}"
    counts["claims"] += 1
    return paid


def assert_valid(text: str) -> dict[str, int]:
    assert validator_errors(text) == []
    return check_balances(text)


def services(text: str) -> Iterator[list[list[str]]]:
    """Each SVC with the segments of its loop."""
    segs = segments(text)
    starts = [k for k, s in enumerate(segs) if s[0] == "SVC"]
    for start in starts:
        end = next((j for j in range(start + 1, len(segs)) if segs[j][0] in ("SVC", "CLP", "SE")), len(segs))
        yield segs[start:end]
