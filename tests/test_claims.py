"""837P claim files through the command line: judged from the README command, every service line
once, the 835 it writes (valid, balanced, committed), payer maps, and damaged files."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from syrupy.assertion import SnapshotAssertion

from payrules import api, records, workers
from payrules.formats import x12

from conftest import EXAMPLES, ROOT, render_transcript, transcript
from x12_helpers import assert_valid, check_balances, money, services

EXAMPLE = EXAMPLES / "claims-837p"
CLAIMS = "examples/claims-837p/claims.837"
COMMAND = ["check", CLAIMS, "--rules", "examples/claims-837p", "--payer-map", "examples/claims-837p/payers.toml"]
TEXT = (EXAMPLE / "claims.837").read_text(encoding="utf-8")


def sv1_lines(text: str) -> Counter[str]:
    """How many SV1 lines each claim (CLM01) of a file with one segment per line has."""
    found: Counter[str] = Counter()
    claim = ""
    for segment in text.split("~"):
        segment = segment.strip()
        if segment.startswith("CLM*"):
            claim = segment.split("*")[1]
        elif segment.startswith("SV1*"):
            found[claim] += 1
    return found


def accounted(report: dict[str, Any]) -> Counter[str]:
    """How many lines of each claim a JSON report judged or listed as not judged."""
    found: Counter[str] = Counter()
    for session in report["sessions"]:
        found[session["session_id"].split("@")[0]] += len(session["lines"])
    for error in report["errors"]:
        found[(error["session_id"] or "").split("@")[0]] += 1
    return found


# --- the example, from the README command -------------------------------------------------------------


def test_example_command_text(text_snapshot: SnapshotAssertion) -> None:
    assert text_snapshot == render_transcript(COMMAND)


def test_example_command_json(json_snapshot: SnapshotAssertion) -> None:
    code, out, err = transcript([*COMMAND, "--format", "json"])
    assert (code, err) == (1, "")
    assert json_snapshot == out


def test_example_every_service_line_once_as_a_decision_or_an_error() -> None:
    code, out, _ = transcript([*COMMAND, "--format", "json"])
    report = json.loads(out)
    expected = sv1_lines(TEXT)
    assert accounted(report) == expected
    summary = report["summary"]
    assert summary["lines_read"] == summary["judged"] + summary["rejected"] == sum(expected.values()) == 12
    # The CSV output locates every judged line at its own SV1 segment, each once.
    _, out, _ = transcript([*COMMAND, "--format", "csv"])
    rows = [line.split(",")[1] for line in out.splitlines()[1:] if ",not judged," not in line]
    segments = [n for n, segment in enumerate(TEXT.split("~\n"), start=1) if segment.startswith("SV1*")]
    assert len(rows) == len(set(rows)) == summary["judged"] and {int(r) for r in rows} <= set(segments)


def test_committed_835_is_what_the_command_writes(tmp_path: Path) -> None:
    written = tmp_path / "remit.835"
    code, out, err = transcript([*COMMAND, "--format", "835", "-o", str(written)])
    assert code == 1 and out == ""
    assert err.startswith("Lines not judged (not in the 835; fix them and run again):\n")
    assert err.endswith("12 lines read: 10 judged (4 paid, 3 reduced, 3 denied), 2 rejected (not judged). "
                        "Charged $865.00, allowed $525.00.\n")
    assert written.read_text(encoding="utf-8") == (EXAMPLE / "remit.835").read_text(encoding="utf-8")


def test_example_835_passes_the_validator_and_adjusts_charge_minus_allowed_on_every_line() -> None:
    text = (EXAMPLE / "remit.835").read_text(encoding="utf-8")
    counts = assert_valid(text)
    assert counts == {"services": 10, "claims": 7, "transactions": 3}
    _, out, _ = transcript([*COMMAND, "--format", "json"])
    judged = [ln for s in json.loads(out)["sessions"] for ln in s["lines"]]
    lines = list(services(text))
    assert len(lines) == len(judged)
    for loop in lines:
        svc = loop[0]
        adjusted = sum((money(cas[k + 1]) for cas in loop if cas[0] == "CAS" for k in range(2, len(cas), 3)),
                       Decimal(0))
        assert money(svc[2]) - money(svc[3]) == adjusted
    # The 835 lists claims by payer; as amounts, its lines are the judged lines.
    assert sorted((money(loop[0][2]), money(loop[0][3])) for loop in lines) == sorted(
        (Decimal(ln["charge"]), Decimal(ln["allowed"])) for ln in judged)


def test_835_to_stdout_keeps_diagnostics_on_stderr_and_takes_its_options() -> None:
    code, out, err = transcript([*COMMAND, "--format", "835", "--payee-npi", "1550000115", "--payee-name",
                                 "Lakeview Chiropractic", "--835-date", "2024-04-02",
                                 "--interchange-control-number", "42"])
    assert code == 1 and "Lines not judged" in err and "ISA" not in err
    assert_valid(out)
    assert out.startswith("ISA*00*          *00*          *ZZ*PAYRULES       *ZZ*PROVIDER       *240402*0000*^*"
                          "00501*000000042*0*T*:~\nGS*HP*PAYRULES*PROVIDER*20240402*0000*42*X*005010X221A1~\n")
    assert out.count("N1*PE*Lakeview Chiropractic*XX*1550000115~") == 3


def test_835_options_are_checked(text_snapshot: SnapshotAssertion) -> None:
    runs = [
        [*COMMAND, "--format", "835", "--payee-npi", "1550000116"],
        [*COMMAND, "--format", "835", "--835-date", "2024-02-30"],
        [*COMMAND, "--format", "835", "--interchange-control-number", "1000000000"],
        [*COMMAND, "--payee-name", "Lakeview", "--835-date", "2024-04-02"],
    ]
    output = "\n".join(render_transcript(args) for args in runs)
    assert all("exit_code: 2" in part and "----- stdout -----\n----- stderr -----" in part
               for part in output.split("$ payrules")[1:])
    assert text_snapshot == output


# --- payer maps ---------------------------------------------------------------------------------------


def payers_judged(args: list[str]) -> set[str]:
    code, out, err = transcript([*args, "--format", "json"])
    assert code in (0, 1), err
    return {s["payer"] for s in json.loads(out)["sessions"]}


def test_payer_map_wins_over_the_columns_file_payers(tmp_path: Path) -> None:
    columns = tmp_path / "columns.toml"
    columns.write_text('[payers]\nSX101 = "BLUECREST"\nBCX22 = "BLUECREST"\n', encoding="utf-8")
    payer_map = tmp_path / "payers.toml"
    payer_map.write_text('[payers]\nSX101 = "SUMMIT"\n', encoding="utf-8")
    base = ["check", CLAIMS, "--rules", "examples/claims-837p"]
    # A columns file with only a [payers] table is valid and maps the payers.
    assert payers_judged([*base, "--columns", str(columns)]) == {"BLUECREST", "CASCADE"}
    assert payers_judged([*base, "--columns", str(columns), "--payer-map", str(payer_map)]) == {
        "SUMMIT", "BLUECREST", "CASCADE"}
    code, out, err = transcript([*base, "--format", "json"])
    unmapped = json.loads(out)["errors"]
    assert sum("no rule file for payer `SX101`" in e["message"] for e in unmapped) == 7


def test_bad_payer_maps_get_worded_errors(tmp_path: Path, text_snapshot: SnapshotAssertion) -> None:
    files = {"no-table.toml": "[columns]\n", "bad-value.toml": "[payers]\nSX101 = 5\n", "not-toml.toml": "[payers\n",
             "nothing.toml": "title = 'x'\n"}
    for name, content in files.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
    base = ["check", CLAIMS, "--rules", "examples/claims-837p"]
    runs = [[*base, "--payer-map", str(tmp_path / name)] for name in ("no-table.toml", "bad-value.toml",
                                                                      "not-toml.toml", "absent.toml")]
    runs += [[*base, "--columns", str(tmp_path / "nothing.toml")], [*base, "--columns", str(tmp_path / "bad-value.toml")]]
    output = "\n".join(render_transcript(args) for args in runs).replace(str(tmp_path), "<tmp>")
    assert all("exit_code: 2" in part and "----- stdout -----\n----- stderr -----\nerror: " in part
               for part in output.split("$ payrules")[1:])
    assert text_snapshot == output


# --- recognising 837P files ----------------------------------------------------------------------------


def test_837p_is_read_by_content_whatever_its_name(tmp_path: Path) -> None:
    for name in ("claims.txt", "claims", "claims.dat"):
        (tmp_path / name).write_text("\ufeff\n  " + TEXT, encoding="utf-8")
        code, out, _ = transcript([*COMMAND[:1], str(tmp_path / name), *COMMAND[2:], "--format", "json"])
        assert code == 1 and accounted(json.loads(out)) == sv1_lines(TEXT)


def test_unknown_format_names_the_x12_extensions(tmp_path: Path, text_snapshot: SnapshotAssertion) -> None:
    (tmp_path / "visits.txt").write_text("session_id,patient_id\n", encoding="utf-8")
    (tmp_path / "isactive.txt").write_text("ISACTIVE,patient_id\n", encoding="utf-8")
    runs = [["check", str(tmp_path / name), "--rules", "examples/claims-837p"] for name in ("visits.txt",
                                                                                           "isactive.txt")]
    runs.append(["check", str(tmp_path), "--rules", "examples/claims-837p"])
    output = "\n".join(render_transcript(args) for args in runs).replace(str(tmp_path), "<tmp>")
    assert text_snapshot == output


def test_history_reads_837p_files_too(tmp_path: Path) -> None:
    # A yearly visit limit of one: an earlier 837P visit of the same patient uses it up.
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "summit.payer").write_text('payer SUMMIT "Summit (test)"\nmax 1 visits per calendar year\n',
                                        encoding="utf-8")
    header = TEXT[:TEXT.index("ST*837*0001")]
    billing = TEXT[TEXT.index("ST*837*0002"):TEXT.index("HL*2*1*22*0~\nSBR*P*18*******BL")]
    kr2003 = TEXT[TEXT.index("HL*4*1*22*0"):]
    earlier = header + billing + kr2003.replace("KR2003", "KR1999").replace("20240311", "20240105")
    (tmp_path / "earlier.837").write_text(earlier, encoding="utf-8")
    (tmp_path / "later.x12").write_text(header + billing + kr2003, encoding="utf-8")
    base = ["check", str(tmp_path / "later.x12"), "--rules", str(rules), "--payer-map",
            "examples/claims-837p/payers.toml", "--format", "json"]
    alone = json.loads(transcript(base)[1])
    with_history = json.loads(transcript([*base, "--history", str(tmp_path / "earlier.837")])[1])
    kr = [s for s in alone["sessions"] if s["session_id"] == "KR2003"]
    assert [ln["status"] for s in kr for ln in s["lines"]] == ["paid"]
    kr = [s for s in with_history["sessions"] if s["session_id"] == "KR2003"]
    assert [ln["status"] for s in kr for ln in s["lines"]] == ["denied"]


def test_a_line_without_a_taxonomy_says_so_in_its_origin() -> None:
    found = {origin.row: x12.taxonomy_named(origin) for _, origin, problem in
             records.records([EXAMPLE / "claims.837"], records.Columns(payers={"SX101": "SUMMIT"})) if problem is None}
    assert found[37] == ""  # LV1001 line 4: 2420A names NPI 1770000556 and no PRV
    assert found[26] == "111N00000X" and found[32] == "225700000X"
    assert x12.taxonomy_named(next(iter(records.records([EXAMPLES / "only-97140" / "sessions.csv"])))[1]) is None


# --- damaged files through the command line --------------------------------------------------------------


SV1_STARTS = [m.start() + 1 for m in re.finditer(r"\nSV1\*", TEXT)]
ISA_END = TEXT.index("~") + 1
CLM_STARTS = {m.group(1): m.start() for m in re.finditer(r"\nCLM\*([^*]+)\*", TEXT)}
_CLMS = list(CLM_STARTS.items())
REACH = {claim: (_CLMS[i - 1][1] if i else 0,
                 TEXT.index("~", _CLMS[i + 1][1]) if i + 1 < len(_CLMS) else len(TEXT))
         for i, (claim, _) in enumerate(_CLMS)}
"""What damage can reach a claim's lines: everything from the claim before it to the end of the
CLM segment after it (a damaged HL, SE or CLM there can move lines between neighbours)."""


def run_damaged(text: str) -> tuple[int, dict[str, Any] | None, str]:
    """Judge `text` as a claim file through the CLI: exit code, JSON report (None when nothing
    was judged), stderr."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "damaged.837"
        path.write_text(text, encoding="utf-8")
        code, out, err = transcript([*COMMAND[:1], str(path), *COMMAND[2:], "--format", "json"])
    assert code in (0, 1, 2), f"exit {code}: {err}"
    if code == 2:
        assert out == "" and err.count("\n") == 1 and err.startswith("error: ") and "X12" in err
        return code, None, err
    report = json.loads(out)
    summary = report["summary"]
    lines = sum(len(s["lines"]) for s in report["sessions"])
    assert summary["lines_read"] == lines + len(report["errors"]) == summary["judged"] + summary["rejected"]
    return code, report, err


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(min_value=0, max_value=len(TEXT)))
def test_truncated_837p_never_exits_3_and_accounts_for_every_line_begun(cut: int) -> None:
    code, report, _ = run_damaged(TEXT[:cut])
    if report is None:
        assert cut < ISA_END  # only a file cut inside its first ISA is not X12 at all
        return
    assert report["summary"]["lines_read"] == sum(1 for start in SV1_STARTS if start + 3 <= cut)
    # The claims that end before the cut: those before the last HL it leaves whole.
    whole = sv1_lines(TEXT if cut == len(TEXT) else TEXT[:max(0, TEXT.rfind("\nHL*", 0, cut))])
    found = accounted(report)
    assert all(found[claim] == count for claim, count in whole.items())


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(st.integers(min_value=0, max_value=len(TEXT) - 1),
                                st.sampled_from(["", "~", "*", ":", "~~", "ISA*", "\n", "SE*", "GE*1*1~GE*",
                                                 "IEA~", "HL*", "LX*", "CLM*", "SV1*", "\x00", "é", " ", "\ufeff"])),
                      min_size=1, max_size=6))
def test_corrupted_837p_never_exits_3_and_accounts_for_every_line_of_untouched_claims(
        edits: list[tuple[int, str]]) -> None:
    text = TEXT
    for position, inserted in sorted(edits, reverse=True):
        text = text[:position] + inserted + text[position + 1:]
    code, report, _ = run_damaged(text)
    if report is None:
        assert any(position < ISA_END for position, _ in edits)  # the first ISA itself was damaged
        return
    found = accounted(report)
    expected = sv1_lines(TEXT)
    untouched = [claim for claim, (start, end) in REACH.items()
                 if not any(start <= position <= end for position, _ in edits)]
    assert all(found[claim] == expected[claim] for claim in untouched)


# --- the 835 from worker processes ----------------------------------------------------------------------


def test_835_written_by_workers_is_what_one_process_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "sessions.csv"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "generate.py"), "--lines", "3000", "--seed", "7",
                    "-o", str(path)], check=True)
    rules = str(ROOT / "benchmarks" / "reference.payer")
    monkeypatch.setattr(records, "PART_LINES", 250)
    monkeypatch.setattr(workers, "MIN_LINES", 0)
    monkeypatch.setattr(workers, "cpu_count", lambda: 2)
    assert workers.worker_count(api.start_check([path], Path(rules))) == 2
    args = ["check", str(path), "--rules", rules, "--format", "835", "--payee-npi", "1550000115"]
    by_workers = transcript(args)
    monkeypatch.setattr(workers, "MIN_LINES", 10**9)
    by_one = transcript(args)
    assert by_workers == by_one
    assert check_balances(by_one[1])["services"] > 2000
