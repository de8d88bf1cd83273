"""The CMS 8-minute rule and the AMA midpoint rule against a plain reference written here from
the published rules, on random minutes across several sessions, codes and providers a day; and
the same answers whether a file is grouped by patient or sorted by date, and whatever the
number of worker processes."""

from __future__ import annotations

import csv
import io
import json
import os
import random
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from conftest import transcript
from helpers import line, run
from hypothesis import given
from hypothesis import strategies as st

from payrules import api, records, workers
from payrules.runtime import Line

TIMED = ("97110", "97112", "97140", "97530")
CODES = (*TIMED, "97010")
NPIS = ("1000000004", "1184029555")
MODIFIERS = ("", "GP", "GO", "GP 59", "GN")
THERAPY = {"GP", "GO", "GN"}

Row = dict[str, Any]
"""One service line as the reference reads it."""
Session = list[Row]


# --- the reference -----------------------------------------------------------------------------


def units_for_total(minutes: int) -> int:
    """CMS's table, read literally: 1 unit from 8 minutes, one more at 23, 38, 53, ... minutes."""
    units = 0
    while minutes >= 15 * units + 8:
        units += 1
    return units


def share_out(minutes: list[int]) -> list[int]:
    """The total units of the pooled minutes, shared out: each line one unit per full 15 minutes,
    then one more unit each to the lines with the most minutes left over, the first on a tie."""
    units = [m // 15 for m in minutes]
    extra = units_for_total(sum(minutes)) - sum(units)
    given_to: set[int] = set()
    for _ in range(extra):
        best = None
        for j, m in enumerate(minutes):
            if j not in given_to and (best is None or m % 15 > minutes[best] % 15):
                best = j
        assert best is not None
        given_to.add(best)
        units[best] += 1
    return units


def supported(method: str, day_lines: list[Row]) -> dict[tuple[str, int], int]:
    """Units supported per (session, line number) for one patient's day, its lines in day order.

    CMS: the timed minutes of one provider and discipline on the day, pooled. AMA: each code's
    own minutes of one provider and discipline on the day."""
    pools: dict[tuple[str, ...], list[Row]] = {}
    for row in day_lines:
        if row["code"] not in TIMED or row["minutes"] is None:
            continue
        discipline = "+".join(sorted(set(row["modifiers"].split()) & THERAPY))
        key = (row["npi"], discipline, row["code"] if method == "ama" else "")
        pools.setdefault(key, []).append(row)
    found = {}
    for members in pools.values():
        for row, units in zip(members, share_out([r["minutes"] for r in members])):
            found[(row["session"], row["number"])] = units
    return found


def expected(method: str, sessions: list[Session], history: list[Session]) -> list[tuple[str, int, int]]:
    """(status, allowed cents, units paid) per judged line, in input order."""
    days: dict[tuple[str, str], list[Row]] = {}
    for session in history + sessions:
        for row in session:
            days.setdefault((row["patient"], row["date"]), []).append(row)
    units: dict[tuple[str, int], int] = {}
    for day in days.values():
        units.update(supported(method, day))
    out = []
    for session in sessions:
        for row in session:
            n = units.get((row["session"], row["number"]))
            if n is None or n >= row["units"]:
                out.append(("paid", row["charge"], row["units"]))
            elif n == 0:
                out.append(("denied", 0, 0))
            else:
                # The share n/u of the charge, to the nearest cent, halves up.
                out.append(("reduced", (2 * row["charge"] * n + row["units"]) // (2 * row["units"]), n))
    return out


# --- random days --------------------------------------------------------------------------------


@st.composite
def days(draw: st.DrawFn) -> tuple[list[Session], list[Session]]:
    """Sessions of two patients over two dates, several a day by two providers, and some of them
    as history; each line a dict the reference reads."""
    sessions: list[Session] = []
    history: list[Session] = []
    for n in range(draw(st.integers(1, 6))):
        patient, date = draw(st.sampled_from(["P1", "P2"])), draw(st.sampled_from(["2024-03-04", "2024-03-05"]))
        npi = draw(st.sampled_from(NPIS[:1] * 3 + NPIS[1:]))
        rows = []
        for number in range(1, draw(st.integers(1, 4)) + 1):
            billed = draw(st.integers(1, 5))
            rows.append({"session": f"S{n}", "patient": patient, "date": date, "npi": npi, "number": number,
                         "code": draw(st.sampled_from(CODES[:3] * 2 + CODES[3:])),
                         "modifiers": draw(st.sampled_from(("", "", "GP") + MODIFIERS)),
                         "units": billed, "minutes": draw(st.none() | st.integers(0, 70)),
                         "charge": draw(st.integers(100, 20_000))})
        (history if draw(st.integers(0, 4)) == 0 else sessions).append(rows)
    return sessions, history


def as_lines(sessions: list[Session]) -> tuple[Line, ...]:
    return tuple(line(r["code"], f"{r['charge'] // 100}.{r['charge'] % 100:02d}", session=r["session"],
                      patient=r["patient"], date=r["date"], npi=r["npi"], credential="PT",
                      modifiers=r["modifiers"], units=r["units"], minutes=r["minutes"])
                 for session in sessions for r in session)


@pytest.mark.parametrize("method", ["cms", "ama"])
@given(drawn=days())
def test_units_paid_match_the_reference(method: str, drawn: tuple[list[Session], list[Session]]) -> None:
    sessions, history = drawn
    report = run(f"units by {method} rule for {', '.join(TIMED)}", *as_lines(sessions), history=as_lines(history))
    found = [(l.status, l.allowed, l.units_paid) for s in report.sessions for l in s.lines]
    assert found == expected(method, sessions, history)


def test_the_reference_reproduces_cms_worked_examples() -> None:
    assert share_out([24, 23]) == [2, 1]
    assert sorted(share_out([20, 20])) == [1, 2]
    assert share_out([33, 7]) == [2, 1]
    assert [units_for_total(m) for m in (7, 8, 22, 23, 37, 38, 127, 128)] == [0, 1, 1, 2, 2, 3, 8, 9]


# --- the same answers however the file is ordered and cut ------------------------------------------


RULES = "payer BENCH\nunits by cms rule for 97110, 97112, 97140, 97530\nmax 60 minutes per session\n" \
        "max 4 units per session\nmax $30 per unit for 97140\n"


def sessions_csv(seed: int) -> list[list[str]]:
    """Rows grouped by patient: several sessions a day, by two providers, with random minutes."""
    rng = random.Random(seed)
    rows = []
    for patient in range(1, 120):
        for day in rng.sample(range(1, 20), rng.randint(1, 3)):
            for visit in range(rng.randint(1, 3)):
                npi = rng.choice(NPIS)
                for _ in range(rng.randint(1, 3)):
                    code = rng.choice(CODES)
                    units = rng.randint(1, 5)
                    rows.append([f"V{patient}-{day}-{visit}", f"P{patient:04d}", f"2024-03-{day:02d}", "BENCH", npi,
                                 "PT", code, rng.choice(MODIFIERS), str(units), str(rng.randint(0, 80)),
                                 f"{30 * units}.00"])
    return rows


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["session_id", "patient_id", "date", "payer", "provider_npi", "provider_credential", "code",
                     "modifiers", "units", "minutes", "charge"])
    writer.writerows(rows)
    path.write_text(text.getvalue())
    return path


def decisions(out: str) -> dict[tuple[str, int], tuple[str, str, int, list[str]]]:
    report = json.loads(out)
    return {(s["session_id"], l["line"]): (l["status"], l["allowed"], l["units_paid"],
                                           [r["message"] for r in l["reasons"]])
            for s in report["sessions"] for l in s["lines"]}


def test_grouped_date_sorted_and_worker_runs_give_the_same_answers(tmp_path: Path) -> None:
    rules = tmp_path / "bench.payer"
    rules.write_text(RULES)
    rows = sessions_csv(3)
    grouped = write_csv(tmp_path / "grouped.csv", rows)
    by_date = write_csv(tmp_path / "by-date.csv", sorted(rows, key=lambda row: row[2]))  # stable within a date
    with mock.patch.dict(os.environ, {"PAYRULES_WORKERS": "1"}), \
            mock.patch.object(workers, "PARTITION_MIN_LINES", 10 ** 12):
        code, whole, err = transcript(["check", str(grouped), "--rules", str(rules), "--format", "json"])
    answers = decisions(whole)
    assert (code, err, len(answers)) == (1, "", len(rows))  # lines reduced and denied, none rejected
    # Days with several sessions, and lines whose units the pooled minutes lowered, are there.
    assert any("across 2 sessions" in m or "across 3 sessions" in m for *_, ms in answers.values() for m in ms)
    # Sorted by date, the file is cut into buckets by patient: each patient's days stay whole.
    cut = mock.Mock(wraps=workers._cut)
    with mock.patch.object(workers, "PARTITION_MIN_LINES", 0), mock.patch.object(workers, "BUCKET_LINES", 60), \
            mock.patch.object(workers, "_cut", cut), mock.patch.dict(os.environ, {"PAYRULES_WORKERS": "1"}):
        _, bucketed, _ = transcript(["check", str(by_date), "--rules", str(rules), "--format", "json"])
    assert cut.called
    assert decisions(bucketed) == answers
    # Grouped, it is cut into parts at patient changes, judged by two worker processes.
    with mock.patch.object(records, "PART_LINES", 50), mock.patch.object(workers, "MIN_LINES", 0), \
            mock.patch.object(workers, "cpu_count", lambda: 2), mock.patch.dict(os.environ, {"PAYRULES_WORKERS": "2"}):
        started = api.start_check([grouped], rules)
        assert workers.worker_count(started) == 2
        _, in_parts, _ = transcript(["check", str(grouped), "--rules", str(rules), "--format", "json"])
    assert in_parts == whole


def test_dask_pools_a_patients_day_as_check_does(tmp_path: Path) -> None:
    dd = pytest.importorskip("dask.dataframe", reason="needs the dask extra")
    import dask
    import pandas

    from payrules import frames
    from payrules.dask import judge

    rules = tmp_path / "bench.payer"
    rules.write_text(RULES)
    rows = sorted(sessions_csv(5), key=lambda row: row[2])  # by date: a patient's lines spread over partitions
    path = write_csv(tmp_path / "by-date.csv", rows)
    code, out, _ = transcript(["check", str(path), "--rules", str(rules), "--format", "csv"])
    assert code == 1
    cli = {int(r["row"]): tuple(r[c] for c in frames.DECISION_COLUMNS) for r in csv.DictReader(io.StringIO(out))}
    header = ["session_id", "patient_id", "date", "payer", "provider_npi", "provider_credential", "code", "modifiers",
              "units", "minutes", "charge"]
    lines = pandas.DataFrame(rows, columns=header, dtype=object)
    lines["csv_row"] = range(2, len(rows) + 2)
    with dask.config.set(scheduler="threads", num_workers=2):
        result = judge(dd.from_pandas(lines, npartitions=7, sort=False), rules, order="csv_row").compute()
    found = {int(r["csv_row"]): tuple(r[c] for c in frames.DECISION_COLUMNS) for r in result.to_dict("records")}
    assert found == cli
    # The comparison holds pools over several sessions of a day, spread over partitions.
    assert any("across 2 sessions" in d[frames.DECISION_COLUMNS.index("reasons")] for d in found.values())
