"""X12 837P input: the records it gives, the same decisions as CSV input, worded errors, damaged files."""

from __future__ import annotations

import builtins
import csv
import hashlib
import io
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from syrupy.assertion import SnapshotAssertion

from payrules import api
from payrules.diagnostics import InputError
from payrules.fields import ALL_FIELDS, Record, _Grouper
from payrules.formats import format_for, load_payer_map, x12
from payrules.records import records as csv_records
from payrules.render import report_text
from payrules.runner import Report, evaluate

from conftest import EXAMPLES, without_origins

EXAMPLE = EXAMPLES / "claims-837p"

RULES = """\
payer SUMMIT "Summit (test)"
set CMT = 98940-98942
set massage = 97124, 97140
only CMT, massage
subluxation: requires diagnosis M99.0* for CMT
massage-by: requires LMT or DC NPI for massage
massage-units: max 4 units of massage per session
massage-cap: max $150 per day for massage
units by cms rule for massage
"""

NPIS = ("1550000115", "1550000222", "1550000339", "1660000443")


# --- building 837P files and the equivalent CSV ----------------------------------------------------


def claim(claim_id: str, member: str, lines: Sequence[dict[str, str]], *, dx: Sequence[str] = ("M9903", "M5450"),
          payer: str = "SUMMIT", rendering: tuple[str, str] | None = (NPIS[1], "111N00000X")) -> dict[str, Any]:
    return {"id": claim_id, "member": member, "lines": list(lines), "dx": list(dx), "payer": payer,
            "rendering": rendering}


def line(code: str, charge: str, date: str, *, qty: str = "1", basis: str = "UN", mods: str = "",
         pointers: str = "1", npi: str = "", taxonomy: str = "") -> dict[str, str]:
    return {"code": code, "charge": charge, "date": date, "qty": qty, "basis": basis, "mods": mods,
            "pointers": pointers, "npi": npi, "taxonomy": taxonomy}


def segments(claims: Sequence[dict[str, Any]], *, el: str = "*", comp: str = ":") -> list[str]:
    """The segments of one 837P transaction (billing provider 1550000115, a chiropractic group)."""
    out = ["BHT*0019*00*0001*20240310*1430*CH", "NM1*41*2*TEST SUBMITTER*****46*S1", "NM1*40*2*TEST RECEIVER*****46*R1",
           "HL*1**20*1", "PRV*BI*PXC*111N00000X", f"NM1*85*2*TEST CLINIC*****XX*{NPIS[0]}"]
    for n, c in enumerate(claims, start=2):
        out += [f"HL*{n}*1*22*0", "SBR*P*18*******CI", f"NM1*IL*1*PATIENT*TEST****MI*{c['member']}",
                f"NM1*PR*2*THE PAYER*****PI*{c['payer']}", f"CLM*{c['id']}*100***11:B:1*Y*A*Y*Y",
                "HI*" + "*".join(("ABK:" if i == 0 else "ABF:") + d for i, d in enumerate(c["dx"]))]
        if c["rendering"]:
            out += [f"NM1*82*1*DOCTOR*TEST****XX*{c['rendering'][0]}", f"PRV*PE*PXC*{c['rendering'][1]}"]
        for i, ln in enumerate(c["lines"], start=1):
            composite = ":".join(["HC", ln["code"], *[m for m in ln["mods"].split(";") if m]])
            out += [f"LX*{i}", f"SV1*{composite}*{ln['charge']}*{ln['basis']}*{ln['qty']}***{ln['pointers']}",
                    f"DTP*472*D8*{ln['date'].replace('-', '')}"]
            if ln["npi"]:
                out.append(f"NM1*82*1*THERAPIST*TEST****XX*{ln['npi']}")
                if ln["taxonomy"]:
                    out.append(f"PRV*PE*PXC*{ln['taxonomy']}")
    return [s.replace("*", el).replace(":", comp) if (el, comp) != ("*", ":") else s for s in out]


def isa(control: str, *, el: str = "*", comp: str = ":", rep: str = "^") -> str:
    fields = ["00", " " * 10, "00", " " * 10, "ZZ", "SENDER".ljust(15), "ZZ", "RECEIVER".ljust(15), "240310", "1430",
              rep, "00501", control, "0", "T", comp]
    return "ISA" + el + el.join(fields)


def interchange(claims: Sequence[dict[str, Any]], control: str = "000000001", *, el: str = "*", comp: str = ":",
                rep: str = "^", seg: str = "~", eol: str = "\n", transactions: int = 1) -> str:
    """One interchange holding the claims, spread over `transactions` transactions."""
    segs = [isa(control, el=el, comp=comp, rep=rep), el.join(["GS", "HC", "S", "R", "20240310", "1430", "1", "X",
                                                     "005010X222A1"])]
    share = -(-len(claims) // transactions) if claims else 0
    for t in range(transactions):
        body = segments(claims[t * share:(t + 1) * share], el=el, comp=comp)
        number = f"{t + 1:04d}"
        segs += [el.join(["ST", "837", number, "005010X222A1"]), *body, el.join(["SE", str(len(body) + 2), number])]
    segs += [el.join(["GE", str(transactions), "1"]), el.join(["IEA", "1", control])]
    return "".join(s + seg + eol for s in segs)


def as_csv(claims: Sequence[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(ALL_FIELDS)
    credentials = {"111N00000X": "DC", "225700000X": "LMT", "": ""}
    for c in claims:
        dates = {ln["date"] for ln in c["lines"]}
        for ln in c["lines"]:
            npi, taxonomy = (ln["npi"], ln["taxonomy"]) if ln["npi"] else c["rendering"] or (NPIS[0], "111N00000X")
            pointers = ln["pointers"].split(":")  # the ABK code (pointer 1) first, then pointer order
            dx = [x12._with_dot(c["dx"][int(p) - 1]) for p in sorted(pointers, key=lambda p: p != "1")]
            minutes = ln["qty"] if ln["basis"] == "MJ" else ""
            units = str(max(1, (int(minutes) + 7) // 15)) if minutes else str(int(float(ln["qty"])))
            session = f"{c['id']}@{ln['date']}" if len(dates) > 1 else c["id"]
            writer.writerow([session, c["member"], ln["date"], c["payer"], npi, credentials[taxonomy], ln["code"],
                             ln["mods"], units, minutes, ln["charge"], ";".join(dx), ""])
    return out.getvalue()


def judge(found: Iterator[Record]) -> Report:
    grouper = _Grouper()
    for raw, origin, problem in found:
        grouper.add(raw, origin, problem)
    return evaluate(grouper.take(), api.compile_text(RULES, "rules.payer").policies)


def read(text: str, payers: dict[str, str] | None = None) -> list[Record]:
    return list(x12.read_text(text, "claims.837", payers))


CLAIMS = [
    claim("C1", "M100", [line("98941", "65.00", "2024-03-04", mods="AT"),
                         line("97140", "70.00", "2024-03-04", mods="GP;59", pointers="1:2"),
                         line("97124", "90.00", "2024-03-04", qty="3.00", npi=NPIS[2], taxonomy="225700000X")]),
    claim("C2", "M200", [line("98940", "55", "2024-03-05", pointers="2"),
                         line("97124", "120.00", "2024-03-05", basis="MJ", qty="38", npi=NPIS[2],
                              taxonomy="225700000X"),
                         line("97140", "60.00", "2024-03-07", qty="6", npi=NPIS[3])]),
    claim("C3", "M100", [line("97140", "75.00", "2024-03-04")], rendering=None),
    claim("C4", "M300", [line("97124", "40.00", f"2024-04-{d:02d}", mods="GP") for d in (1, 1, 2, 3)],
          dx=("M6283", "M5450")),
]


def csv_report(claims: Sequence[dict[str, Any]], tmp_path: Path) -> Report:
    path = tmp_path / "claims.csv"
    path.write_text(as_csv(claims), encoding="utf-8")
    return judge(csv_records([path]))


LAYOUTS = {
    "one segment per line": lambda c: interchange(c),
    "all on one line": lambda c: interchange(c, eol=""),
    "windows line ends": lambda c: interchange(c, eol="\r\n"),
    "other separators": lambda c: interchange(c, el="|", comp=">", seg="'", eol=""),
    "newline as terminator": lambda c: interchange(c, seg="\n", eol=""),
    "several transactions": lambda c: interchange(c, transactions=3),
    "repeated ISA envelopes, each with its own separators": lambda c: "".join(
        interchange([one], f"{i:09d}", el="*|^"[i % 3], comp=":>!"[i % 3], rep="^^{"[i % 3], seg="~'\n"[i % 3],
                    eol="\n" if i % 2 else "") for i, one in enumerate(c, start=1)),
    "byte-order mark and leading blank lines": lambda c: "\ufeff\n\n" + interchange(c),
}


def same_decisions(from_x12: Report, from_csv: Report) -> None:
    """The two reports decide alike, word for word, except that a credential reason on an 837P
    line says why the credential is not known (the claim names no taxonomy), where the CSV line
    has no credential column value."""
    x12, csv = without_origins(from_x12.to_dict()), without_origins(from_csv.to_dict())
    for session_x12, session_csv in zip(x12["sessions"], csv["sessions"]):
        for line_x12, line_csv in zip(session_x12["lines"], session_csv["lines"]):
            for reason_x12, reason_csv in zip(line_x12["reasons"], line_csv["reasons"]):
                if reason_x12["message"] != reason_csv["message"]:
                    assert reason_x12["kind"] == "requires_credential"
                    assert "the claim names no taxonomy for the provider" in reason_x12["message"]
                    assert "a provider with no credential on record" in reason_csv["message"]
                    reason_x12["message"] = reason_csv["message"]
    assert x12 == csv


@pytest.mark.parametrize("layout", LAYOUTS, ids=list(LAYOUTS))
def test_layouts_decide_like_csv(layout: str, tmp_path: Path) -> None:
    text = LAYOUTS[layout](CLAIMS)
    from_x12 = judge(iter(read(text)))
    from_csv = csv_report(CLAIMS, tmp_path)
    assert from_x12.summary.lines_read == 11 and from_x12.summary.rejected == 0
    same_decisions(from_x12, from_csv)
    statuses = {ln.status for s in from_x12.sessions for ln in s.lines}
    assert statuses == {"paid", "reduced", "denied"}


def test_claim_with_fifty_service_lines_decides_like_csv(tmp_path: Path) -> None:
    lines = [line("97124" if i % 2 else "97140", f"{20 + i}.00", f"2024-05-{1 + i % 5:02d}", qty=str(1 + i % 3))
             for i in range(50)]
    claims = [claim("BIG1", "M900", lines)]
    found = read(interchange(claims, eol=""))
    assert len(found) == 50 and all(problem is None for _, _, problem in found)
    assert [origin.path.split(" / ")[2] for _, origin, _ in found] == [f"LX {i}" for i in range(1, 51)]
    from_x12, from_csv = judge(iter(found)), csv_report(claims, tmp_path)
    assert len(from_x12.sessions) == 5
    same_decisions(from_x12, from_csv)


# --- the mapping, field by field -----------------------------------------------------------------------


def test_a_line_maps_to_the_flat_record() -> None:
    (raw, origin, problem), *_ = read(interchange(CLAIMS[:1]))
    assert dict(zip(ALL_FIELDS, raw)) == {
        "session_id": "C1", "patient_id": "M100", "date": "2024-03-04", "payer": "SUMMIT",
        "provider_npi": NPIS[1], "provider_credential": "DC", "code": "98941", "modifiers": "AT", "units": "1",
        "minutes": "", "charge": "65.00", "diagnoses": "M99.03", "prescription_by": "",
        "place_of_service": "11"}
    assert problem is None
    assert (origin.file, origin.row, origin.path) == ("claims.837", 19, "ST 0001 / CLM C1 / LX 1 / SV1")
    assert origin.column("provider_npi") == "2310B NM109" and origin.column("charge") == "SV102"


def test_rendering_provider_comes_from_the_line_then_the_claim_then_the_billing_provider() -> None:
    found = read(interchange(CLAIMS[:3]))
    npis = [(raw[4], raw[5], origin.column("provider_npi")) for raw, origin, _ in found]
    assert npis[2] == (NPIS[2], "LMT", "2420A NM109")  # line level, with its own taxonomy
    assert npis[0] == (NPIS[1], "DC", "2310B NM109")  # claim level
    assert npis[5] == (NPIS[3], "", "2420A NM109")  # line level without a taxonomy: no credential
    assert npis[6] == (NPIS[0], "DC", "2010AA NM109")  # the billing provider and its PRV*BI


def test_payer_map_renames_payers_and_leaves_others_as_the_file_spells_them() -> None:
    claims = [claim("P1", "M1", [line("97140", "10", "2024-01-02")], payer="87726"),
              claim("P2", "M2", [line("97140", "10", "2024-01-02")], payer="OTHER")]
    assert [raw[3] for raw, _, _ in read(interchange(claims), {"87726": "SUMMIT"})] == ["SUMMIT", "OTHER"]


def dependent_claims(*dependents: tuple[str, str, str]) -> str:
    """The first claim of CLAIMS once per dependent (birth date, sex, PAT01) of member M100."""
    text = ""
    for i, (birth, sex, relationship) in enumerate(dependents, start=1):
        text += interchange([claim(f"D{i}", "M100", CLAIMS[0]["lines"])], f"{i:09d}").replace(
            "HL*2*1*22*0~\nSBR*P*18*******CI~\nNM1*IL*1*PATIENT*TEST****MI*M100~\nNM1*PR*2*THE PAYER*****PI*SUMMIT~\n",
            "HL*2*1*22*1~\nSBR*P*******CI~\nNM1*IL*1*PATIENT*TEST****MI*M100~\nNM1*PR*2*THE PAYER*****PI*SUMMIT~\n"
            f"HL*3*2*23*0~\nPAT*{relationship}~\nNM1*QC*1*CHILD*ANNA~\nDMG*D8*{birth}*{sex}~\n")
    return text


def test_dependent_patient_id_reveals_neither_name_nor_birth_date() -> None:
    found = read(dependent_claims(("20150304", "F", "19")))
    # The documented definition: member id, `-D`, 8 hex digits of SHA-256 over DMG02|DMG03|PAT01.
    digest = hashlib.sha256(b"20150304|F|19").hexdigest()[:8].upper()
    assert {raw[1] for raw, _, _ in found} == {f"M100-D{digest}"}
    assert {origin.column("patient_id") for _, origin, _ in found} == {"2010CA NM109"}
    assert not any("2015" in raw[1] or "ANNA" in raw[1] for raw, _, _ in found)


def test_dependents_of_one_subscriber_get_ids_that_tell_them_apart_and_stay_stable() -> None:
    dependents = [("20150304", "F", "19"), ("20150304", "M", "19"), ("20170101", "F", "19"),
                  ("20150304", "F", "01")]
    ids = [{raw[1] for raw, _, _ in read(dependent_claims(d))} for d in dependents]
    assert all(len(found) == 1 for found in ids) and len(set.union(*ids)) == len(dependents)
    assert [{raw[1] for raw, _, _ in read(dependent_claims(d))} for d in dependents] == ids
    # Same-sex twins on one policy share birth date, sex and relationship, and so their id.
    twins = read(dependent_claims(dependents[0], dependents[0]))
    assert len({raw[1] for raw, _, _ in twins}) == 1


def test_minutes_line_without_units_gets_units_by_the_midpoint() -> None:
    def units(minutes: str) -> tuple[str, str]:
        (raw, _, _), = read(interchange([claim("T", "M", [line("97140", "50", "2024-01-02", basis="MJ",
                                                                qty=minutes)])]))
        return raw[8], raw[9]

    assert [units(m) for m in ("5", "8", "22", "23", "38.00")] == [
        ("1", "5"), ("1", "8"), ("1", "22"), ("2", "23"), ("3", "38")]


def test_a_one_day_date_range_is_that_day() -> None:
    text = interchange(CLAIMS[2:3]).replace("DTP*472*D8*20240304", "DTP*472*RD8*20240304-20240304")
    (raw, _, problem), = read(text)
    assert raw[2] == "2024-03-04" and problem is None


def test_diagnoses_with_their_dot_the_principal_first_then_in_pointer_order() -> None:
    c = claim("D", "M", [line("97140", "50", "2024-01-02", pointers="3:1:2")], dx=("M5450", "M6283", "S134XXA"))
    (raw, _, _), = read(interchange([c]))
    assert raw[11] == "M54.50;S13.4XXA;M62.83"


def test_a_line_that_does_not_point_to_the_principal_diagnosis_keeps_its_pointer_order() -> None:
    c = claim("D", "M", [line("97140", "50", "2024-01-02", pointers="3:2")], dx=("M5450", "M6283", "S134XXA"))
    (raw, _, _), = read(interchange([c]))
    assert raw[11] == "S13.4XXA;M62.83"


@pytest.mark.parametrize(("taxonomy", "credential"), [
    ("225700000X", "LMT"), ("111N00000X", "DC"), ("111NR0200X", "DC"), ("225100000X", "PT"), ("2251X0800X", "PT"),
    ("225200000X", "PTA"), ("225X00000X", "OT"), ("224Z00000X", "OTA"), ("171100000X", "LAC"),
    ("2255A2300X", "ATC"), ("207Q00000X", ""), ("261QP2000X", ""), ("", ""), ("banana", "")])
def test_taxonomy_gives_credential(taxonomy: str, credential: str) -> None:
    assert x12.credential_for(taxonomy) == credential


# --- worded errors ---------------------------------------------------------------------------------


BAD = [
    claim("E1", "M1", [line("97140", "50", "2024-01-02"), line("97140", "50", "2024-02-30")]),
    claim("E2", "M2", [line("97140", "50", "2024-01-02", basis="F2"), line("97140", "50", "2024-01-02", qty="1.5"),
                       line("97140", "50", "2024-01-02", qty=""), line("97140", "50", "2024-01-02", pointers="1:4")]),
    claim("E3", "M3", [line("98940", "50", "2024-01-02")], dx=("7242",)),
    claim("E4", "M4", [line("97140", "50", "2024-01-02", npi="1234567890"), line("9714", "5.005", "2024-01-02")]),
    claim("E5", "", [line("97140", "50", "2024-01-08")], payer=""),
    claim("E6", "M6", [line("97110", "50", "2024-01-08"), line("97140", "50", "2024-01-08")]),
    claim("E7", "M7", [line("97140", "50", "2024-01-09")]),
]


def bad_file() -> str:
    text = interchange(BAD)
    text = text.replace("HI*ABK:7242", "HI*BK:7242")
    text = text.replace("DTP*472*D8*20240109", "DTP*472*RD8*20240109-20240112")
    text = text.replace("SV1*HC:97110", "SV1*IV:97110")
    return text.replace("LX*1~\nSV1*HC:97140*50*UN*1***1~\nDTP*472*D8*20240102~\nLX*2~\nSV1*HC:97140*50*UN*1***1~\n"
                        "DTP*472*D8*20240230", "LX*1~\nSV1*HC:97140*50*UN*1***1~\nLX*2~\nSV1*HC:97140*50*UN*1***1~\n"
                        "DTP*472*D8*20240230")


def test_every_line_is_judged_or_a_located_worded_error(text_snapshot: SnapshotAssertion) -> None:
    report = judge(iter(read(bad_file())))
    assert report.summary.lines_read == 13 and report.summary.judged == 1
    assert report.summary.judged + report.summary.rejected == 13
    assert text_snapshot == report_text(report)


def test_a_file_that_is_not_x12_gets_one_worded_error(text_snapshot: SnapshotAssertion) -> None:
    messages = []
    for text in ("session_id,patient_id\n1,2\n", "", "ISA*00*short~GS*HC~", isa("000000001").replace("00501", "00301") + "~"):
        with pytest.raises(InputError) as error:
            read(text)
        messages.append(str(error.value))
    assert text_snapshot == "\n".join(messages) + "\n"


def test_missing_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_pyx12(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("pyx12"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    x12._reader_class.cache_clear()
    monkeypatch.setattr(builtins, "__import__", no_pyx12)
    try:
        with pytest.raises(InputError, match=r"install payrules\[x12\]"):
            read(interchange(CLAIMS[:1]))
    finally:
        monkeypatch.undo()
        x12._reader_class.cache_clear()


def test_unreadable_later_interchange_is_one_error_and_the_others_are_read() -> None:
    text = interchange(CLAIMS[:1], "000000001") + "ISA*broken~\n" + interchange(CLAIMS[2:3], "000000002")
    found = read(text)
    assert [raw[0] for raw, _, problem in found if problem is None] == ["C1", "C1", "C1", "C3"]


# --- damaged files ------------------------------------------------------------------------------------


GOOD = interchange(CLAIMS, eol="")
SV1_STARTS = [i for i in range(len(GOOD)) if GOOD.startswith("SV1*", i)]
CLAIM_SPANS = {s: (GOOD.rfind("~HL*", 0, s), min(GOOD.find(t, s) % len(GOOD) for t in ("~LX*", "~HL*", "~SE*")))
               for s in SV1_STARTS}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(min_value=0, max_value=len(GOOD)))
def test_truncated_file_never_fails_and_keeps_every_line_before_the_cut(cut: int) -> None:
    text = GOOD[:cut]
    try:
        found = read(text)
    except InputError:
        assert cut < 106  # only a file cut inside its first ISA is not X12 at all
        return
    # Each SV1 that starts before the cut is a record (whole, or with a problem when cut short).
    assert len(found) == sum(1 for start in SV1_STARTS if start + 3 <= cut)
    complete = [s for s in SV1_STARTS if GOOD.find("~", GOOD.find("~", s) + 1) < cut and GOOD.find("~", s) < cut]
    assert sum(1 for _, _, problem in found if problem is None) >= len(complete) - 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(st.integers(min_value=0, max_value=len(GOOD) - 1),
                                st.sampled_from(["", "~", "*", ":", "~~", "ISA*", "\n", "SE*", "GE*1*1~GE*",
                                                 "IEA~", "HL*", "LX*", "CLM*", "\x00", "é", " "])),
                      min_size=1, max_size=6))
def test_corrupted_file_never_fails_and_judges_what_it_can(edits: list[tuple[int, str]]) -> None:
    text = GOOD
    for position, inserted in sorted(edits, reverse=True):
        text = text[:position] + inserted + text[position + 1:]
    try:
        found = read(text)
    except InputError:
        return  # the ISA header itself was damaged: one worded error
    report = judge(iter(found))
    assert report.summary.lines_read == len(found)
    assert report.summary.judged + report.summary.rejected == len(found)
    # A line whose claim (from its subscriber's HL to the end of the line) and whose file header
    # (envelope and billing provider) are intact is read whole, whatever happened elsewhere.
    header_end = GOOD.find("HL*2*")
    untouched = [s for s, (start, end) in CLAIM_SPANS.items()
                 if all(not (start <= p <= end or p <= header_end) for p, _ in edits)]
    assert sum(1 for _, _, problem in found if problem is None) >= len(untouched)


# --- registry and payer maps -------------------------------------------------------------------------


def test_format_is_found_by_extension_or_by_content(tmp_path: Path) -> None:
    for name, content in [("a.837", "x"), ("b.X12", "x"), ("c.edi", "x"), ("d.txt", "\ufeff \n" + GOOD),
                          ("e", GOOD)]:
        (tmp_path / name).write_text(content, encoding="utf-8")
        found = format_for(tmp_path / name)
        assert found is not None and found.name == "X12 837P"
    (tmp_path / "f.csv").write_text("session_id\n", encoding="utf-8")
    assert format_for(tmp_path / "f.csv") is None and format_for(tmp_path / "missing.txt") is None


def test_payer_map_file_errors_are_worded(tmp_path: Path, text_snapshot: SnapshotAssertion) -> None:
    messages = []
    for name, content in [("no-table.toml", "[columns]\n"), ("bad-value.toml", "[payers]\n87726 = 5\n"),
                          ("not-toml.toml", "[payers\n")]:
        (tmp_path / name).write_text(content, encoding="utf-8")
        with pytest.raises(InputError) as error:
            load_payer_map(tmp_path / name)
        messages.append(str(error.value).replace(str(tmp_path), "<tmp>"))
    with pytest.raises(InputError) as error:
        load_payer_map(tmp_path / "absent.toml")
    messages.append(str(error.value).replace(str(tmp_path), "<tmp>"))
    assert text_snapshot == "\n".join(messages) + "\n"


# --- the example ---------------------------------------------------------------------------------------


def example_report() -> Report:
    payers = load_payer_map(Path("examples/claims-837p/payers.toml"))
    grouper = _Grouper()
    for raw, origin, problem in x12.records(Path("examples/claims-837p/claims.837"), payers):
        grouper.add(raw, origin, problem)
    return evaluate(grouper.take(), api.load("examples/claims-837p").policies)


def test_example_every_service_line_once(text_snapshot: SnapshotAssertion, json_snapshot: SnapshotAssertion) -> None:
    report = example_report()
    sv1_lines = (EXAMPLE / "claims.837").read_text(encoding="utf-8").count("\nSV1*")
    judged = [(ln.input.origin.row) for s in report.sessions for ln in s.lines]
    rows = judged + [e.origin.row for e in report.errors]
    assert len(rows) == len(set(rows)) == sv1_lines == report.summary.lines_read
    assert text_snapshot(name="text") == report_text(report)
    assert json_snapshot(name="json") == json.dumps(report.to_dict(), indent=2) + "\n"
