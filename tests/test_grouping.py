"""Grouping by patient: the first pass that decides whether input is grouped, and the reader,
see the same rows and the same patients, whatever the line endings and the whitespace; so the
order of a file's rows never changes a decision."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payrules.api import check_files
from payrules.records import read_blocks, scan

HEADER = ("session_id,patient_id,date,payer,provider_npi,provider_credential,code,modifiers,units,minutes,"
          "charge,diagnoses,prescription_by")
RULES_TEXT = "payer ACME\nno same day as 98940-98943\n"
NPI = "1328719467"


def row(session: str, patient: str, code: str, date: str = "2024-05-06", charge: str = "40.00") -> str:
    return f"{session},{patient},{date},ACME,{NPI},DC,{code},,1,,{charge},,"


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rules") / "acme.payer"
    path.write_text(RULES_TEXT)
    return path


def decisions(path: Path, rules: Path) -> dict[tuple[str, int], str]:
    """(session, line) → status for judged lines, and → "not judged" for the others."""
    report = check_files([path], rules)
    found = {(s.session_id, line.input.number): line.status for s in report.sessions for line in s.lines}
    found.update({(e.session_id or "", e.line or 0): "not judged" for e in report.errors})
    assert report.summary.lines_read == len(found)
    return found


# --- a patient who comes back after another patient, in every line-ending and padding ---------

ROWS = [row("A1", "P1", "98940", charge="50.00"), row("B1", "P2", "97140"), row("C1", "P1", "97140")]


@pytest.mark.parametrize("text", [
    pytest.param("\n".join([HEADER, *ROWS]) + "\n", id="lf"),
    pytest.param("\r".join([HEADER, *ROWS]) + "\r", id="cr-only"),
    pytest.param("\r\n".join([HEADER, *ROWS]) + "\r\n", id="crlf"),
    pytest.param(f"{HEADER}\n{ROWS[0]}\n{ROWS[1]}\r{ROWS[2]}\n", id="one-lone-cr"),
    pytest.param("\n".join([HEADER, ROWS[0].replace(",P1,", ",P1\u00a0,"), *ROWS[1:]]) + "\n", id="nbsp-after-id"),
    pytest.param("\n".join([HEADER, ROWS[0].replace(",P1,", ",\tP1 ,"), *ROWS[1:]]) + "\n", id="tab-before-id"),
    pytest.param("\n".join([HEADER, ROWS[0].replace(",P1,", ",P1\u2003,"), *ROWS[1:]]) + "\n", id="em-space"),
])
def test_same_day_denial_holds_when_a_patient_returns_after_another(text: str, rules: Path,
                                                                     tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_bytes(text.encode())
    assert not scan([path]).grouped
    assert decisions(path, rules) == {("A1", 1): "paid", ("B1", 1): "paid", ("C1", 1): "denied"}


def test_scan_and_reader_see_the_same_patient_blocks(tmp_path: Path) -> None:
    # P1 padded with NBSP, then plain P1: one patient, one block, in the scan and in the reader.
    path = tmp_path / "s.csv"
    rows = [HEADER, row("A1", "P1\u00a0", "98940"), row("C1", "P1", "97140"), row("B1", "P2", "97140")]
    path.write_bytes(("\r".join(rows) + "\r").encode())
    found = scan([path])
    assert found.grouped and found.lines == 3
    assert [[s.patient_id for s in b.sessions] for b in read_blocks([path])] == [["P1", "P1"], ["P2"]]


# --- the property: any order that keeps each session's lines in order gives the same decisions --

CODES = ["97140", "98940", "97124", "97110"]
ENDINGS = ["\n", "\r\n", "\r"]
PADS = ["", " ", "\t", "\u00a0", " \u00a0\t"]


@st.composite
def sessions_file(draw: st.DrawFn) -> list[list[str]]:
    """Sessions (each a list of rows, in order) for a few patients on a few days."""
    patients = draw(st.integers(1, 4))
    sessions: list[list[str]] = []
    for number in range(draw(st.integers(1, 8))):
        patient = f"P{draw(st.integers(1, patients))}"
        date = draw(st.sampled_from(["2024-05-06", "2024-05-07"]))
        codes = draw(st.lists(st.sampled_from(CODES), min_size=1, max_size=3))
        sessions.append([row(f"S{number}", patient, code, date) for code in codes])
    return sessions


def interleave(draw: st.DrawFn, sessions: list[list[str]]) -> list[str]:
    """The rows of all sessions, each session's in order, the sessions' rows mixed arbitrarily."""
    queues = [list(s) for s in sessions]
    out: list[str] = []
    while any(queues):
        queue = draw(st.sampled_from([q for q in queues if q]))
        out.append(queue.pop(0))
    return out


def padded(draw: st.DrawFn, line: str) -> str:
    """The row with whitespace (NBSP and tabs included) around its session and patient ids."""
    cells = line.split(",")
    for i in (0, 1):
        cells[i] = draw(st.sampled_from(PADS)) + cells[i] + draw(st.sampled_from(PADS))
    return ",".join(cells)


def written(draw: st.DrawFn, rows: list[str], mixed: bool) -> bytes:
    ending = draw(st.sampled_from(ENDINGS))
    text = HEADER
    for line in rows:
        text += (draw(st.sampled_from(ENDINGS)) if mixed else ending) + padded(draw, line)
    return (text + (draw(st.sampled_from(ENDINGS)) if mixed else ending)).encode()


RULES_DIR = Path(tempfile.mkdtemp(prefix="grouping-rules-"))
(RULES_DIR / "acme.payer").write_text(RULES_TEXT)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), sessions=sessions_file(), mixed=st.booleans())
def test_row_order_and_line_endings_never_change_a_decision(data: st.DataObject, sessions: list[list[str]],
                                                            mixed: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        original = Path(folder) / "original.csv"
        original.write_text("\n".join([HEADER, *(line for s in sessions for line in s)]) + "\n")
        shuffled = Path(folder) / "shuffled.csv"
        shuffled.write_bytes(written(data.draw, interleave(data.draw, sessions), mixed))
        expected = decisions(original, RULES_DIR)
        assert decisions(shuffled, RULES_DIR) == expected
    assert len(expected) == sum(len(s) for s in sessions)
