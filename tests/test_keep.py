"""Caller ids (`--keep`, `keep=`, `?keep=`): carried unchanged from the input to every output."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from syrupy.assertion import SnapshotAssertion

import payrules
from payrules import api, records, workers
from payrules.lint import CheckDefaults
from conftest import EXAMPLES, ROOT, transcript

CHIRO = EXAMPLES / "chiro-clinic"
RULES = str((CHIRO / "rules.payer").relative_to(ROOT))
CLAIMS = EXAMPLES / "claims-837p"


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def shown(text: str, tmp: Path) -> str:
    return text.replace(str(tmp), "<tmp>")


def unread_batch(file: str) -> str:
    """The warning for the `batch` column of `ids_csv` when it is not kept: it is read by nothing."""
    return (f"warning: <tmp>/{file}: column `batch` is not read: it is not a session field, nor a field a rule "
            "file declares, nor mapped with --columns; declare it in a rule file (`field NAME: TYPE`) to use it, "
            "or keep it with --keep\n")


def ids_csv(tmp: Path, header: str = "Claim Line ID") -> Path:
    """The chiro-clinic sessions with an id column (one value a spreadsheet would run as a
    formula), and a row that is not judged."""
    rows = list(csv.reader((CHIRO / "sessions.csv").open(encoding="utf-8")))
    rows[0] += [header, "batch"]
    for i, row in enumerate(rows[1:], start=1):
        row += ["=SUM(A1)" if i == 3 else f"A-{i}", "b7"]
    rows.append(["C-9", "P-5009", "2024-13-01", "MERIDIAN", "1328719467", "DC", "97140", "", "1", "15", "40.00",
                 "M54.2", "", "B-ERR", "b7"])
    path = tmp / "ids.csv"
    with path.open("w", newline="", encoding="utf-8") as stream:
        csv.writer(stream).writerows(rows)
    return path


def check(*args: str) -> tuple[int, str, str]:
    return transcript(["check", *args, "--rules", RULES])


def kept_by_row(report: dict[str, Any]) -> dict[int, dict[str, str]]:
    """Row → its `keep` object, over judged lines and errors (CSV rows are sessions' rows)."""
    found: dict[int, dict[str, str]] = {}
    for session in report["sessions"]:
        for line in session["lines"]:
            found[len(found)] = line["keep"]
    for error in report["errors"]:
        found[len(found)] = error["keep"]
    return found


# --- CSV input, every output format -----------------------------------------------------------------


def test_csv_ids_reach_the_text_report(tmp_path: Path, text_snapshot: SnapshotAssertion) -> None:
    code, out, err = check(str(ids_csv(tmp_path)), "--keep", "claim-line-id", "--keep", "BATCH")
    assert (code, err) == (1, "")
    assert shown(out, tmp_path) == text_snapshot(name="text")


def test_csv_ids_reach_the_csv_report_as_safe_cells(tmp_path: Path, text_snapshot: SnapshotAssertion) -> None:
    code, out, err = check(str(ids_csv(tmp_path)), "--keep", "claim_line_id", "--format", "csv")
    assert (code, shown(err, tmp_path)) == (1, unread_batch("ids.csv"))
    assert shown(out, tmp_path) == text_snapshot(name="csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["claim_line_id"] for r in rows] == ["A-1", "A-2", "'=SUM(A1)", "A-4", "A-5", "A-6", "A-7", "B-ERR"]
    assert rows[-1]["status"] == "not judged"


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_csv_ids_reach_json_lines_and_errors_in_the_order_asked(tmp_path: Path, fmt: str) -> None:
    code, out, err = check(str(ids_csv(tmp_path)), "--keep", "batch", "--keep", "claim_line_id", "--format", fmt)
    assert (code, err) == (1, "")
    schema = payrules.report_schema()
    if fmt == "json":
        report = json.loads(out)
        jsonschema.validate(report, schema)
    else:
        items = [json.loads(line) for line in out.splitlines()]
        for item in items:
            jsonschema.validate(item, {"$defs": schema["$defs"], "$ref": "#/$defs/jsonlRecord"})
        report = {"sessions": [i for i in items if i["type"] == "session"],
                  "errors": [i for i in items if i["type"] == "error"]}
    kept = kept_by_row(report)
    assert [list(k) for k in kept.values()] == [["batch", "claim_line_id"]] * 8
    assert [k["claim_line_id"] for k in kept.values()] == ["A-1", "A-2", "=SUM(A1)", "A-4", "A-5", "A-6", "A-7",
                                                          "B-ERR"]
    assert report["errors"][0]["message"] == "date: `2024-13-01` is not a calendar date"


def test_835_carries_the_line_id_in_ref_6r(tmp_path: Path, text_snapshot: SnapshotAssertion) -> None:
    code, out, err = check(str(ids_csv(tmp_path)), "--format", "835", "--835-line-id", "Claim Line ID")
    assert code == 1
    segments = out.split("~\n")
    assert [s for s in segments if s.startswith("REF*6R")] == [
        "REF*6R*A-1", "REF*6R*A-2", "REF*6R*=SUM(A1)", "REF*6R*A-4", "REF*6R*A-5", "REF*6R*A-6", "REF*6R*A-7"]
    # In loop 2110 the line item control number follows the service's SVC, DTM and CAS.
    first = segments.index("REF*6R*A-1")
    assert segments[first - 3].startswith("SVC*") and segments[first - 2].startswith("DTM*472")
    assert shown(err, tmp_path) == text_snapshot(name="stderr")


def test_835_line_id_needs_format_835(tmp_path: Path) -> None:
    code, out, err = check(str(ids_csv(tmp_path)), "--835-line-id", "claim_line_id")
    assert (code, out) == (2, "")
    assert "--835-line-id applies to --format 835 only" in err


def test_without_keep_the_835_has_no_line_control_numbers(tmp_path: Path) -> None:
    code, out, _ = check(str(ids_csv(tmp_path)), "--format", "835")
    assert code == 1 and "REF*6R" not in out


def test_parquet_in_and_out_carry_the_ids(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = list(csv.DictReader(ids_csv(tmp_path).open(encoding="utf-8")))
    source = tmp_path / "ids.parquet"
    pq.write_table(pa.Table.from_pylist(rows), source)
    output = tmp_path / "out.parquet"
    code, out, err = check(str(source), "--keep", "claim_line_id", "--format", "parquet", "-o", str(output))
    assert (code, out, shown(err, tmp_path)) == (1, "", unread_batch("ids.parquet"))
    table = pq.read_table(output)
    assert table.column_names[-1] == "claim_line_id"
    assert table.column("claim_line_id").to_pylist() == ["A-1", "A-2", "'=SUM(A1)", "A-4", "A-5", "A-6", "A-7",
                                                         "B-ERR"]
    # The same cells as --format csv of the same input.
    _, csv_out, _ = check(str(source), "--keep", "claim_line_id", "--format", "csv")
    assert [r["claim_line_id"] for r in csv.DictReader(io.StringIO(csv_out))] == \
        table.column("claim_line_id").to_pylist()


# --- JSON input: session level and line level ---------------------------------------------------------


def test_json_ids_at_session_and_line_level(tmp_path: Path, json_snapshot: SnapshotAssertion) -> None:
    sessions = json.loads((CHIRO / "sessions.json").read_text(encoding="utf-8"))["sessions"]
    sessions[0]["Claim ID"] = "CLM-1"
    sessions[0]["lines"][0]["claim_line_id"] = 17  # a number is carried as its JSON text
    sessions[5]["claim_id"] = "CLM-6"
    sessions[5]["lines"][1]["claim_id"] = "CLM-6-override"
    sessions[5]["lines"][1]["claim_line_id"] = "L-2"
    sessions[1]["lines"][0]["units"] = "two"
    sessions[1]["claim_id"] = "CLM-2"
    path = tmp_path / "ids.json"
    path.write_text(json.dumps({"sessions": sessions}, indent=1), encoding="utf-8")
    code, out, err = check(str(path), "--keep", "claim_id", "--keep", "claim_line_id", "--format", "json")
    assert (code, err) == (1, "")
    report = json.loads(out)
    jsonschema.validate(report, payrules.report_schema())
    by_session = {s["session_id"]: [line["keep"] for line in s["lines"]] for s in report["sessions"]}
    assert by_session["C-1"] == [{"claim_id": "CLM-1", "claim_line_id": "17"}]
    assert by_session["C-6"] == [{"claim_id": "CLM-6", "claim_line_id": ""},
                                 {"claim_id": "CLM-6-override", "claim_line_id": "L-2"}]
    assert by_session["C-5"] == [{"claim_id": "", "claim_line_id": ""}]
    assert [e["keep"] for e in report["errors"]] == [{"claim_id": "CLM-2", "claim_line_id": ""}]
    assert shown(out, tmp_path) == json_snapshot(name="json")


def test_jsonl_input_keeps_ids_too(tmp_path: Path) -> None:
    sessions = json.loads((CHIRO / "sessions.json").read_text(encoding="utf-8"))["sessions"]
    for i, session in enumerate(sessions):
        session["row_key"] = f"k{i}"
    path = tmp_path / "ids.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in sessions), encoding="utf-8")
    code, out, _ = check(str(path), "--keep", "row_key", "--format", "json")
    assert code == 1
    assert [line["keep"]["row_key"] for s in json.loads(out)["sessions"] for line in s["lines"]] == \
        ["k0", "k1", "k2", "k3", "k4", "k5", "k5"]


# --- 837P input ------------------------------------------------------------------------------------------


def claims_with_line_control(tmp: Path) -> Path:
    text = (CLAIMS / "claims.837").read_text(encoding="utf-8")
    text = text.replace("DTP*472*D8*20240304~", "DTP*472*D8*20240304~\nREF*6R*LV1001-1~", 1)
    path = tmp / "claims.837"
    path.write_text(text, encoding="utf-8")
    return path


def test_837p_ids_claim_line_and_control_number(tmp_path: Path, text_snapshot: SnapshotAssertion) -> None:
    pytest.importorskip("pyx12")
    args = ["check", str(claims_with_line_control(tmp_path)), "--rules", rel(CLAIMS), "--payer-map",
            rel(CLAIMS / "payers.toml"), "--keep", "claim_id", "--keep", "line_number", "--keep", "line_control"]
    code, out, err = transcript([*args, "--format", "json"])
    assert (code, err) == (1, "")
    report = json.loads(out)
    first = report["sessions"][0]["lines"]
    assert [line["keep"] for line in first[:2]] == [
        {"claim_id": "LV1001", "line_number": "1", "line_control": "LV1001-1"},
        {"claim_id": "LV1001", "line_number": "2", "line_control": ""}]
    assert all(set(e["keep"]) == {"claim_id", "line_number", "line_control"} for e in report["errors"])
    assert report["errors"] and all(e["keep"]["claim_id"] for e in report["errors"])
    code, out, err = transcript([*args, "--format", "835", "--835-line-id", "line_control"])
    assert code == 1 and "REF*6R*LV1001-1~" in out and out.count("REF*6R") == 1
    code, out, err = transcript([*args])
    assert shown(out, tmp_path) == text_snapshot(name="text")


def test_837p_refuses_an_id_it_does_not_have(tmp_path: Path, text_snapshot: SnapshotAssertion) -> None:
    pytest.importorskip("pyx12")
    code, out, err = transcript(["check", str(claims_with_line_control(tmp_path)), "--rules", rel(CLAIMS),
                                 "--keep", "claim_line_id"])
    assert (code, out) == (2, "")
    assert shown(err, tmp_path) == text_snapshot(name="stderr")


# --- usage errors ------------------------------------------------------------------------------------------


def test_a_kept_name_that_is_a_field_is_a_usage_error(tmp_path: Path, text_snapshot: SnapshotAssertion) -> None:
    code, out, err = check(str(ids_csv(tmp_path)), "--keep", "Patient ID")
    assert (code, out) == (2, "")
    assert err == text_snapshot(name="stderr")


def test_a_kept_column_missing_from_the_header_stops_before_any_output(tmp_path: Path,
                                                                     text_snapshot: SnapshotAssertion) -> None:
    output = tmp_path / "out.csv"
    code, out, err = check(str(ids_csv(tmp_path)), "--keep", "line_ref", "--format", "csv", "-o", str(output))
    assert (code, out) == (2, "")
    assert not output.exists()
    assert shown(err, tmp_path) == text_snapshot(name="stderr")


def test_a_column_mapping_names_a_kept_column(tmp_path: Path) -> None:
    mapping = tmp_path / "columns.toml"
    mapping.write_text('[columns]\nline_ref = "Claim Line ID"\n', encoding="utf-8")
    code, out, _ = check(str(ids_csv(tmp_path)), "--keep", "line_ref", "--columns", str(mapping), "--format",
                         "csv")
    assert code == 1
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[0]["line_ref"] == "A-1"


def test_history_files_need_not_have_the_kept_columns(tmp_path: Path) -> None:
    code, out, err = check(str(ids_csv(tmp_path)), "--keep", "claim_line_id", "--history",
                           str(CHIRO / "sessions.csv"), "--format", "json")
    assert code == 1 and shown(err, tmp_path) == unread_batch("ids.csv")
    assert json.loads(out)["sessions"][0]["lines"][0]["keep"] == {"claim_line_id": "A-1"}


# --- defaults, bytes without --keep, workers -----------------------------------------------------------------


def test_keep_defaults_from_pyproject(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.payrules]\nrules = "{(CHIRO / "rules.payer").as_posix()}"\nkeep = ["claim_line_id"]\n',
        encoding="utf-8")
    assert CheckDefaults.load(tmp_path / "pyproject.toml").keep == ("claim_line_id",)
    sessions = ids_csv(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, out, _ = transcript(["check", str(sessions), "--format", "csv"])
    assert code == 1 and out.splitlines()[0].endswith(",reasons,claim_line_id")
    code, out, _ = transcript(["check", str(sessions), "--format", "csv", "--keep", "batch"])
    assert out.splitlines()[0].endswith(",reasons,batch"), "--keep wins over the default"


def test_keep_default_that_is_not_a_list_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.payrules]\nkeep = "claim_line_id"\n', encoding="utf-8")
    with pytest.raises(payrules.InputError, match=r"keep must be a list of column names"):
        CheckDefaults.load(tmp_path / "pyproject.toml")


@pytest.mark.parametrize("fmt", ["text", "json", "jsonl", "csv"])
def test_unasked_id_columns_change_no_byte(tmp_path: Path, fmt: str) -> None:
    _, plain, _ = check(rel(CHIRO / "sessions.csv"), "--format", fmt)
    _, with_columns, _ = check(str(ids_csv(tmp_path)), "--format", fmt)
    drop_extra_row = {
        "text": lambda t: re.sub(r"Lines not judged.*?\n\n", "", t, flags=re.S).splitlines()[:-1],
        "json": lambda t: [s for s in json.loads(t)["sessions"]],
        "jsonl": lambda t: [line for line in t.splitlines() if '"type": "session"' in line],
        "csv": lambda t: [row for row in t.splitlines() if ",not judged," not in row],
    }[fmt]
    normal = {"csv": lambda t: t.replace(str(tmp_path / "ids.csv"), rel(CHIRO / "sessions.csv"))}.get(
        fmt, lambda t: t)
    assert drop_extra_row(normal(with_columns)) == drop_extra_row(plain)
    assert "keep" not in with_columns and "claim_line_id" not in with_columns


def test_workers_give_the_same_ids_as_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = list(csv.reader((CHIRO / "sessions.csv").open(encoding="utf-8")))
    header, body = rows[0] + ["claim_line_id"], rows[1:]
    lines = [header]
    for copy in range(40):
        lines += [[f"{r[0]}-{copy}", f"{r[1]}-{copy}", *r[2:], f"K{copy}-{i}"] for i, r in enumerate(body)]
    path = tmp_path / "many.csv"
    with path.open("w", newline="", encoding="utf-8") as stream:
        csv.writer(stream).writerows(lines)
    monkeypatch.setenv(workers.WORKERS_ENVIRONMENT, "1")
    one = {fmt: check(str(path), "--keep", "claim_line_id", "--format", fmt)[1] for fmt in ("csv", "json", "text")}
    monkeypatch.setattr(workers, "MIN_LINES", 10)
    monkeypatch.setattr(records, "PART_LINES", 30)
    monkeypatch.setenv(workers.WORKERS_ENVIRONMENT, "3")
    run = api.start_check([path], Path(RULES), records.Columns().with_keep(["claim_line_id"]))
    assert workers.worker_count(run) >= 2, "the parts are judged side by side"
    many = {fmt: check(str(path), "--keep", "claim_line_id", "--format", fmt)[1] for fmt in ("csv", "json", "text")}
    assert many == one
    assert one["csv"].count(",K") == 40 * len(body)


# --- API and service -------------------------------------------------------------------------------------------


def test_api_check_carries_ids() -> None:
    rules = payrules.load(CHIRO / "rules.payer")
    session = {"session_id": "S1", "patient_id": "P1", "date": "2024-05-08", "payer": "MERIDIAN",
               "claim_id": "CLM-9",
               "lines": [{"provider_npi": "1328719467", "provider_credential": "DC", "code": "97140",
                          "units": 1, "charge": "40.00", "claim_line_id": "A-17"},
                         {"provider_npi": "1328719467", "code": "97140", "charge": "40.00", "units": "x",
                          "claim_line_id": "A-18"}]}
    report = rules.check(session, keep=("claim_line_id", "claim_id"))
    line = report.sessions[0].lines[0]
    assert line.kept == {"claim_line_id": "A-17", "claim_id": "CLM-9"}
    assert line.to_dict()["keep"] == {"claim_line_id": "A-17", "claim_id": "CLM-9"}
    assert report.to_dict()["errors"][0]["keep"] == {"claim_line_id": "A-18", "claim_id": "CLM-9"}
    jsonschema.validate(report.to_dict(), payrules.report_schema())
    assert "keep" not in rules.check(session).sessions[0].lines[0].to_dict()
    with pytest.raises(payrules.InputError, match="`code` is a session field"):
        rules.check(session, keep=["code"])


def test_service_answers_keep_as_the_cli_does(tmp_path: Path) -> None:
    pytest.importorskip("starlette")
    from payrules.serve import create_app

    sessions = json.loads((CHIRO / "sessions.json").read_text(encoding="utf-8"))["sessions"]
    for i, session in enumerate(sessions):
        session["claim_id"] = f"CLM-{i}"
        session["lines"][0]["claim_line_id"] = f"L-{i}"
    body = json.dumps(sessions).encode()
    path = tmp_path / "request"
    path.write_bytes(body)
    json_file = path.with_suffix(".json")
    json_file.write_bytes(body)
    app = create_app(Path(rel(CHIRO)))

    async def post(query: str) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://payrules.test") as c:
            return await c.post(f"/v1/check?name=request.json&{query}", content=body,
                                headers={"Content-Type": "application/json"})

    response = asyncio.run(post("keep=claim_line_id&keep=claim_id"))
    assert response.status_code == 200
    _, expected, _ = transcript(["check", str(json_file), "--rules", rel(CHIRO), "--format", "json",
                                 "--keep", "claim_line_id", "--keep", "claim_id"])
    assert response.text == expected.replace(str(json_file), "request.json")
    assert json.loads(response.text)["sessions"][0]["lines"][0]["keep"] == {"claim_line_id": "L-0",
                                                                            "claim_id": "CLM-0"}
    refused = asyncio.run(post("keep=payer"))
    assert refused.status_code == 400
    assert refused.json()["detail"].startswith("--keep `payer`: `payer` is a session field")
