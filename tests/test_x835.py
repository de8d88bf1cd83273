"""The 835 remittance writer: valid X12 by pyx12's validator, balanced on every line and claim."""

from __future__ import annotations

import datetime
import io
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion

from payrules import api
from payrules.fields import Batch
from payrules.formats import x835
from payrules.formats.x835 import X835Writer
from payrules.masking import PatientMask
from payrules.runner import Block, Report, Tally, evaluate, policies_by_payer
from payrules.runtime import Line

from conftest import EXAMPLES
from helpers import NPI_DC, NPI_LMT, line, run, sessions_of
from x12_helpers import assert_valid, check_balances, money, segments, services, validator_errors


CHIRO = EXAMPLES / "chiro-clinic"


# --- helpers --------------------------------------------------------------------------------


def write(report: Report, **options: object) -> tuple[str, str]:
    """The 835 of `report` and what the writer says on its errors stream."""
    out, errors = io.StringIO(), io.StringIO()
    writer = X835Writer(out, errors=errors, **options)  # type: ignore[arg-type]
    writer.block(Block(sessions=report.sessions, errors=report.errors, lines_read=report.summary.lines_read))
    writer.close(report.summary)
    return out.getvalue(), errors.getvalue()


def chiro_report() -> Report:
    return api.check_files([CHIRO / "sessions.csv"], CHIRO)


def judge(policies: list[str], *lines: Line) -> Report:
    """Judge `lines` with several rule files (text after their `payer` line, which each gives)."""
    from payrules.compiler import compile_source
    from payrules.source import Source

    compiled = [compile_source(Source(f"{text.split()[1].lower()}.payer", text)) for text in policies]
    batch = Batch(sessions=sessions_of(lines), lines_read=len(lines))
    return evaluate(batch, policies_by_payer(compiled))


# --- the example ----------------------------------------------------------------------------


def test_chiro_clinic_835(text_snapshot: SnapshotAssertion) -> None:
    text, errors = write(chiro_report())
    assert text_snapshot(name="835") == text
    assert text_snapshot(name="stderr") == errors


def test_chiro_clinic_835_passes_the_validator_and_balances() -> None:
    text, _ = write(chiro_report())
    assert assert_valid(text) == {"services": 7, "claims": 6, "transactions": 1}


def test_chiro_clinic_835_pays_what_the_report_allows() -> None:
    report = chiro_report()
    text, _ = write(report)
    bpr = next(s for s in segments(text) if s[0] == "BPR")
    assert money(bpr[2]) * 100 == report.summary.allowed
    paid = [(svc[0][1], money(svc[0][3]) * 100, int(svc[0][5])) for svc in services(text)]
    expected = [(":".join(["HC", line.code, *line.modifiers]), line.allowed, line.units_paid)
                for session in report.sessions for line in session.lines]
    assert paid == expected


# --- adjustments ------------------------------------------------------------------------------


def test_denied_line_charges_its_first_denying_reason_and_remarks_the_later_ones() -> None:
    report = run("only 97140\nrequires DC NPI", line("98940", "50.01"))
    assert [(r.carc, r.rarc, r.amount) for r in report.sessions[0].lines[0].reasons] == \
        [("204", None, 5001), ("170", "N95", 0)]
    text, _ = write(report)
    assert_valid(text)
    (svc,) = services(text)
    assert svc[0][:6] == ["SVC", "HC:98940", "50.01", "0", "", "0"]
    # The first denying rule of the file takes the whole charge; the later one adjusts nothing
    # but its remark code still tells the provider what else is wrong.
    assert [s for s in svc if s[0] == "CAS"] == [["CAS", "CO", "204", "50.01"]]
    assert ["LQ", "HE", "N95"] in svc
    assert next(s for s in segments(text) if s[0] == "CLP")[2] == "4", "a claim paying nothing is denied"


def test_reduced_line_gives_each_reason_what_it_took() -> None:
    report = run("max $60 per line carc 45\nmax $45 per session carc 119", line("97140", "70.00"))
    assert [(l.allowed, [(r.carc, r.amount) for r in l.reasons]) for s in report.sessions for l in s.lines] == \
        [(4500, [("45", 1000), ("119", 1500)])]
    text, _ = write(report)
    assert_valid(text)
    (svc,) = services(text)
    # $70 → $60 by the first cap (10), $60 → $45 by the second (15).
    assert [s for s in svc if s[0] == "CAS"] == [["CAS", "CO", "45", "10", "", "119", "15"]]


def test_warning_adjusts_nothing() -> None:
    report = run("max 1 unit of 97124 per session warn", line("97124", "80.00", units=2))
    assert report.sessions[0].lines[0].reasons, "the warning is given"
    text, _ = write(report)
    assert_valid(text)
    (svc,) = services(text)
    assert svc[0][:6] == ["SVC", "HC:97124", "80", "80", "", "2"]
    assert [s[0] for s in svc] == ["SVC", "DTM"], "no CAS and no LQ for a warning"


def test_units_cut_by_a_limit_give_units_paid_and_units_billed() -> None:
    report = run("max 2 units of 97124 per session", line("97124", "120.00", units=4))
    text, _ = write(report)
    assert_valid(text)
    (svc,) = services(text)
    assert svc[0] == ["SVC", "HC:97124", "120", "60", "", "2", "", "4"]
    assert svc[2][:2] == ["CAS", "CO"] and money(svc[2][3]) == 60


def test_duplicate_goes_with_group_oa() -> None:
    report = run("no duplicate same day", line("97124", session="S1", npi=NPI_LMT),
                 line("97124", session="S2", npi=NPI_DC, credential="DC"))
    text, _ = write(report)
    assert_valid(text)
    cas = [s for svc in services(text) for s in svc if s[0] == "CAS"]
    assert cas == [["CAS", "OA", "18", "50"]]


def test_patient_cost_share_carc_goes_with_group_pr_and_into_clp05() -> None:
    report = run("max $45 per session carc 2", line("97140", "70.00"))
    text, _ = write(report)
    assert_valid(text)
    clp = next(s for s in segments(text) if s[0] == "CLP")
    assert clp[3:6] == ["70", "45", "25"]
    assert [s for svc in services(text) for s in svc if s[0] == "CAS"] == [["CAS", "PR", "2", "25"]]


def test_more_than_six_reasons_of_a_group_take_several_cas_segments() -> None:
    caps = [("69", "45"), ("68", "119"), ("67", "151"), ("66", "B7"), ("65", "204"), ("64", "96"), ("63", "97")]
    rules = "\n".join(f"max ${cap} per line carc {carc}" for cap, carc in caps)
    text, _ = write(run(rules, line("97140", "70.00")))
    assert_valid(text)
    (svc,) = services(text)
    cas = [s for s in svc if s[0] == "CAS"]
    assert [len(s[2:]) for s in cas] == [17, 2], "six reasons, then one"
    assert [s[2] for s in cas] == ["45", "97"] and all(s[1] == "CO" for s in cas)


def test_rendering_provider_named_when_not_the_payee() -> None:
    report = run("only 97124, 97140",
                 line("97124", session="S1", npi=NPI_LMT), line("97124", session="S2", npi=NPI_LMT),
                 line("97140", session="S3", npi=NPI_DC), line("97124", session="S3", npi=NPI_LMT))
    text, _ = write(report)
    assert_valid(text)
    segs = segments(text)
    assert ["N1", "PE", f"NPI {NPI_LMT}", "XX", NPI_LMT] in segs, "the NPI of most lines is the payee"
    assert ["NM1", "82", "1", "", "", "", "", "", "XX", NPI_DC] in segs
    assert segs.count(["REF", "HPI", NPI_LMT]) == 1, "the line of another provider than its claim's"


def test_payee_and_dates_from_options() -> None:
    options = {"date": datetime.date(2024, 6, 30), "time": "1405", "control_number": 42,
               "payee_npi": NPI_DC, "payee_name": "Example Chiropractic", "sender": "ACME", "receiver": "CLINIC"}
    text, _ = write(chiro_report(), **options)
    assert_valid(text)
    segs = segments(text)
    assert segs[0][6:14] == ["ACME           ", "ZZ", "CLINIC         ", "240630", "1405", "^", "00501",
                             "000000042"]
    assert segs[1] == ["GS", "HP", "ACME", "CLINIC", "20240630", "1405", "42", "X", "005010X221A1"]
    assert ["N1", "PE", "Example Chiropractic", "XX", NPI_DC] in segs
    assert segs[3][-1] == "20240630" and segs[-1] == ["IEA", "1", "000000042"]


def test_bad_options_are_refused() -> None:
    for options, message in [({"control_number": 10**9}, "9 digits"), ({"time": "2460"}, "HHMM"),
                             ({"payee_npi": "123"}, "10 digits")]:
        with pytest.raises(ValueError, match=message):
            X835Writer(io.StringIO(), **options)  # type: ignore[arg-type]


# --- several payers, odd input, size ----------------------------------------------------------


def test_one_transaction_per_payer_in_payer_id_order() -> None:
    report = judge(['payer ZED "Zed Health"\nmax $40 per session', "payer ACME\nonly 97140"],
                   line("97140", "70.00", session="A", payer="ZED"),
                   line("97124", session="B", payer="ACME"),
                   line("97140", "30.00", session="C", payer="ACME", patient="P2"))
    text, _ = write(report)
    assert assert_valid(text) == {"services": 3, "claims": 3, "transactions": 2}
    segs = segments(text)
    headers = [(s[0], s[1:3]) for s in segs if s[0] in ("ST", "N1") and s[1] in ("835", "PR")]
    assert headers == [("ST", ["835", "0001"]), ("N1", ["PR", "ACME"]),
                       ("ST", ["835", "0002"]), ("N1", ["PR", "Zed Health"])]
    assert [s[1:3] for s in segs if s[0] == "BPR"] == [["I", "30"], ["I", "40"]]
    assert ["GE", "2", "1"] in segs


def test_payer_paying_nothing_sends_a_notification() -> None:
    text, _ = write(run("only 97140", line("97124")))
    assert_valid(text)
    bpr = next(s for s in segments(text) if s[0] == "BPR")
    assert bpr[1:5] == ["H", "0", "C", "NON"]


def test_lines_not_judged_are_left_out_and_listed(tmp_path: Path, text_snapshot: SnapshotAssertion) -> None:
    rows = (CHIRO / "sessions.csv").read_text(encoding="utf-8").splitlines()
    rows[2] = rows[2].replace("1764203810", "1764203811")  # a wrong check digit
    rows.append("C-7,P-5006,2024-05-09,ELSEWHERE,1328719467,DC,97140,,1,15,40.00,M54.2,")
    sessions = tmp_path / "sessions.csv"
    sessions.write_text("\n".join(rows) + "\n", encoding="utf-8")
    report = api.check_files([sessions], CHIRO)
    text, errors = write(report)
    assert_valid(text)
    claims = [s[1] for s in segments(text) if s[0] == "CLP"]
    assert claims == ["C-1", "C-3", "C-4", "C-5", "C-6"]
    assert text_snapshot == errors.replace(str(tmp_path), "<tmp>")


def test_nothing_judged_writes_no_835() -> None:
    report = run("only 97140", line("97140", payer="OTHER"))
    text, errors = write(report)
    assert text == "" and "no rule file for payer `OTHER`" in errors


def test_user_text_never_breaks_the_segments() -> None:
    odd = "Ünïcode*claim~with:separators^and a very long id beyond 38 characters"
    report = judge(['payer "X*Y" "Payer ~ with * separators and ünïcode: \u65e5\u672c"\nonly 97140'],
                   line("97140", session=odd, patient="7", payer="X*Y"))
    text, _ = write(report)
    assert_valid(text)
    segs = segments(text)
    clp = next(s for s in segs if s[0] == "CLP")
    assert clp[1] == "Unicode?claim?with?separators?and a ve" and len(clp[1]) == 38
    assert ["NM1", "QC", "1", "", "", "", "", "", "MI", "07"] in segs
    assert ["N1", "PR", "Payer ? with ? separators and unicode? ??"] in segs
    assert ["REF", "2U", "X?Y"] in segs


def test_long_session_is_split_into_claims_of_999_lines() -> None:
    lines = [line("97140", f"{1 + k % 7}.{k % 100:02d}") for k in range(1001)]
    text, _ = write(run("max $1000 per session", *lines))
    assert assert_valid(text) == {"services": 1001, "claims": 2, "transactions": 1}
    assert [s[1] for s in segments(text) if s[0] == "CLP"] == ["S1", "S1"]


def test_masked_patient_ids() -> None:
    mask = PatientMask(b"k" * 32)
    text, _ = write(chiro_report(), mask=mask)
    assert_valid(text)
    ids = [s[9] for s in segments(text) if s[:2] == ["NM1", "QC"]]
    assert ids[0] == mask("P-5001") and all(i.startswith("p_") for i in ids)


# --- streaming and workers --------------------------------------------------------------------


def _many_payers() -> Report:
    lines = [line("97140" if k % 3 else "97124", f"{40 + k % 9}.{k % 100:02d}", session=f"S{k // 2}",
                  patient=f"P{k // 4}", payer=("A", "B", "C")[k % 3], npi=(NPI_DC, NPI_LMT)[k % 2],
                  date=f"2024-03-{1 + k % 28:02d}") for k in range(300)]
    payers = ['payer A\nmax $45 per session', 'payer B\nonly 97140\nmax 1 unit of 97140 per session',
              'payer C\nmax $30 per line carc 45\nmax $50 per session carc 119']
    by_session: dict[str, list[Line]] = {}
    for item in lines:  # a session has one payer: keep its first line's
        first = by_session.setdefault(item.session_id, [item])[0]
        if item is not first:
            by_session[item.session_id].append(item._replace(payer=first.payer))
    return judge(payers, *[item for found in by_session.values() for item in found])


def test_continuations_give_the_same_835_as_one_writer() -> None:
    report = _many_payers()
    whole, _ = write(report)
    assert assert_valid(whole)["transactions"] == 3
    out = io.StringIO()
    main = X835Writer(out)
    for start in range(0, len(report.sessions), 17):  # parts judged side by side, then extended in order
        part = main.continuation(io.StringIO())
        part.block(Block(sessions=report.sessions[start:start + 17], errors=(), lines_read=0))
        main.extend(part.fragment())
    main.close(report.summary)
    assert out.getvalue() == whole


def test_claims_spilled_to_disk_give_the_same_835(monkeypatch: pytest.MonkeyPatch) -> None:
    report = _many_payers()
    in_memory, _ = write(report)
    monkeypatch.setattr(x835, "SPOOL_BYTES", 200)
    on_disk, _ = write(report)
    assert on_disk == in_memory


def test_block_by_block_gives_the_same_835_as_one_block() -> None:
    report = _many_payers()
    whole, _ = write(report)
    out = io.StringIO()
    writer = X835Writer(out)
    tally = Tally()
    for session in report.sessions:
        block = Block(sessions=(session,), errors=(), lines_read=len(session.lines))
        writer.block(block)
        tally.add(block)
    writer.close(tally.summary())
    assert out.getvalue() == whole


# --- values -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("cents", "value"), [(0, "0"), (7000, "70"), (4550, "45.5"), (1234, "12.34"),
                                              (5, "0.05"), (-2501, "-25.01"), (10**9, "10000000")])
def test_amounts_have_no_trailing_zeros(cents: int, value: str) -> None:
    assert x835.amount(cents) == value


@pytest.mark.parametrize(("carc", "group"), [("45", "CO"), ("204", "CO"), ("18", "OA"), ("1", "PR"), ("2", "PR"),
                                             ("3", "PR"), ("B15", "CO")])
def test_group_codes(carc: str, group: str) -> None:
    assert x835.group_code(carc) == group



# --- the checks above catch what they check ------------------------------------------------------


@pytest.mark.parametrize(("good", "bad"), [("SE*45*0001", "SE*44*0001"), ("CLP*C-1*1*", "CLP*C-1*9*"),
                                           ("N3*NOT GIVEN~\n", ""), ("CAS*CO*45*25", "CAS*XX*45*25"),
                                           ("MI*P-5001", "MI*P"), ("DTM*472*20240506", "DTM*472*20240532")])
def test_validator_finds_a_broken_835(good: str, bad: str) -> None:
    text, _ = write(chiro_report())
    assert good in text
    assert validator_errors(text.replace(good, bad, 1))


@pytest.mark.parametrize(("good", "bad", "message"), [
    ("CAS*CO*45*25", "CAS*CO*45*24", "CAS add up to 24"),
    ("CLP*C-1*1*70*45", "CLP*C-1*1*71*45", "CLP03 71"),
    ("CLP*C-6*1*60*45", "CLP*C-6*1*60*44", "CLP04 44"),
    ("BPR*I*130", "BPR*I*131", "BPR02 131"),
])
def test_balance_check_finds_an_unbalanced_835(good: str, bad: str, message: str) -> None:
    text, _ = write(chiro_report())
    assert good in text
    with pytest.raises(AssertionError, match=message):
        check_balances(text.replace(good, bad, 1))
