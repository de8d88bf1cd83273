"""The decision service: answers equal to `payrules check --format json`, problems, reload, logs, load and faults."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from click.testing import CliRunner
from openapi_spec_validator import validate

from payrules.masking import PatientMask
from payrules.serve import create_app, serve_command

from conftest import EXAMPLES, ROOT, transcript

EXAMPLE_DIRS = sorted(p for p in EXAMPLES.iterdir() if (p / "sessions.json").exists())
JSON = {"content-type": "application/json"}
X12 = {"content-type": "application/x12"}
KEY = b"0123456789abcdef0123456789abcdef"


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://payrules.test")


def post(app: Any, body: bytes, headers: dict[str, str] = JSON, path: str = "/v1/check") -> httpx.Response:
    async def go() -> httpx.Response:
        async with client(app) as c:
            return await c.post(path, content=body, headers=headers)
    return asyncio.run(go())


def get(app: Any, path: str) -> httpx.Response:
    async def go() -> httpx.Response:
        async with client(app) as c:
            return await c.get(path)
    return asyncio.run(go())


def cli_json(sessions: str, rules: str, *extra: str) -> tuple[int, str]:
    code, out, _ = transcript(["check", sessions, "--rules", rules, "--format", "json", *extra])
    return code, out


def csv_as_json(path: Path) -> bytes:
    """A sessions CSV file written as the JSON input format: one object per session id."""
    sessions: dict[str, dict[str, Any]] = {}
    with open(path, encoding="utf-8", newline="") as stream:
        for row in csv.DictReader(stream):
            session = sessions.setdefault(row["session_id"], {
                "session_id": row["session_id"], "patient_id": row["patient_id"], "date": row["date"],
                "payer": row["payer"], "lines": []})
            line = {k: (v or None) for k, v in row.items() if k not in session}
            for field in ("modifiers", "diagnoses"):
                line[field] = [v for v in (row.get(field) or "").split(";") if v]
            session["lines"].append(line)
    return json.dumps({"sessions": list(sessions.values())}, indent=1).encode()


# --- the same answers as the command line ------------------------------------------------------------


@pytest.mark.parametrize("example", EXAMPLE_DIRS, ids=lambda p: p.name)
def test_check_answers_each_example_byte_for_byte_as_the_cli(example: Path, tmp_path: Path) -> None:
    app = create_app(Path(rel(example)))
    converted = tmp_path / "from-csv.json"
    converted.write_bytes(csv_as_json(example / "sessions.csv"))
    for sessions in (example / "sessions.json", converted):
        code, expected = cli_json(str(sessions), rel(example))
        response = post(app, sessions.read_bytes())
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.text == expected
        assert response.headers["payrules-exit-status"] == str(code)


def test_check_reads_an_837p_as_the_cli_does() -> None:
    folder = EXAMPLES / "claims-837p"
    app = create_app(Path(rel(folder)), payer_map=folder / "payers.toml")
    _, expected = cli_json(rel(folder / "claims.837"), rel(folder), "--payer-map", rel(folder / "payers.toml"))
    body = (folder / "claims.837").read_bytes()
    for content_type in ("application/x12", "application/EDI-X12"):
        # `name` stands for the file name in located errors; it is a name, never a path.
        response = post(app, body, {"content-type": content_type}, "/v1/check?name=claims.837")
        assert response.status_code == 200
        assert response.text == expected.replace(json.dumps(rel(folder / "claims.837")), '"claims.837"')
    assert post(app, body, X12, "/v1/check?name=a%2Fb.837").status_code == 400


def test_lines_not_judged_are_located_as_the_cli_locates_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rules = Path(rel(EXAMPLES / "chiro-clinic" / "rules.payer")).resolve()
    monkeypatch.chdir(tmp_path)
    body = json.dumps({"sessions": [
        {"session_id": "B-1", "patient_id": "P-9", "date": "2024-05-06", "payer": "MERIDIAN",
         "lines": [{"provider_npi": "1328719467", "provider_credential": "DC", "code": "97140", "units": "two",
                    "charge": "70.00", "diagnoses": ["M54.2"]}]},
        "not a session",
        {"session_id": "B-2", "patient_id": "P-9", "date": "2024-13-40", "payer": "MERIDIAN", "lines": []},
    ]}, indent=2).encode()
    (tmp_path / "bad.json").write_bytes(body)
    _, expected = cli_json("bad.json", str(rules))
    response = post(create_app(rules), body, path="/v1/check?name=bad.json")
    assert response.status_code == 200
    assert response.text == expected
    assert response.json()["summary"]["rejected"] == 3


# --- problems --------------------------------------------------------------------------------------


BAD_BODIES = {
    "invalid-json": (b'{"sessions": [', JSON),
    "not-utf8": (b'{"sessions": "\xff"}', JSON),
    "too-deep": (b"[" * 200 + b"]" * 200, JSON),
    "object-without-sessions": (b'{"visits": []}', JSON),
    "a-number": (b"42", JSON),
    "csv-content-type": (b"session_id\n", {"content-type": "text/csv"}),
    "no-content-type": (b"[]", {}),
    "latin1-charset": (b"[]", {"content-type": "application/json; charset=latin-1"}),
    "x12-that-is-not": (b"hello", X12),
    "x12-cut-short": (b"ISA*00*", X12),
}


@pytest.mark.parametrize("case", BAD_BODIES)
def test_a_bad_body_gets_a_worded_problem_never_a_500(case: str, json_snapshot: Any) -> None:
    body, headers = BAD_BODIES[case]
    response = post(create_app(Path("examples/chiro-clinic")), body, headers)
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"] == "application/problem+json"
    assert json_snapshot(name=case) == json.dumps(response.json(), indent=2) + "\n"


def test_routes_and_methods_that_do_not_exist_are_problems(json_snapshot: Any) -> None:
    app = create_app(Path("examples/chiro-clinic"))
    missing, wrong = get(app, "/v2/check"), get(app, "/v1/check")
    assert (missing.status_code, wrong.status_code) == (404, 405)
    assert wrong.headers["allow"] == "POST"
    assert json_snapshot(name="404") == json.dumps(missing.json(), indent=2) + "\n"
    assert json_snapshot(name="405") == json.dumps(wrong.json(), indent=2) + "\n"


def test_a_body_over_the_limit_gets_413_whether_declared_or_streamed() -> None:
    app = create_app(Path("examples/chiro-clinic"), max_body=1000)
    declared = post(app, b"[" + b" " * 2000 + b"]")
    assert declared.status_code == 413

    async def chunks() -> Any:
        for _ in range(100):
            yield b" " * 100

    async def go() -> httpx.Response:
        async with client(app) as c:
            return await c.post("/v1/check", content=chunks(), headers=JSON)
    streamed = asyncio.run(go())
    assert streamed.status_code == 413
    assert streamed.json()["where"] == "body"
    assert "1,000 bytes" in streamed.json()["detail"]


def test_a_fault_in_payrules_is_a_500_problem_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Path("examples/chiro-clinic"))

    def broken(*args: Any) -> Any:
        raise RuntimeError("secret internals /etc/payrules")
    app.state.service.judge = broken
    response = post(app, b"[]")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "secret" not in response.text and "Traceback" not in response.text
    assert "secret internals" in caplog.text  # the operator's log has it
    assert get(app, "/healthz").status_code == 200


# --- rule text ------------------------------------------------------------------------------------


RULE_TEXT = 'payer TEXT "Rules sent in the request"\nonly 97124\n'
TEXT_SESSION = [{"session_id": "T-1", "patient_id": "P-1", "date": "2024-05-06", "payer": "TEXT",
                 "lines": [{"provider_npi": "1548230675", "provider_credential": "LMT", "code": "97140",
                            "units": 1, "charge": "30.00", "diagnoses": ["M54.50"]}]}]


def test_rule_text_in_a_request_is_refused_unless_allowed(json_snapshot: Any) -> None:
    body = json.dumps({"rules": RULE_TEXT, "sessions": TEXT_SESSION}).encode()
    refused = post(create_app(Path("examples/chiro-clinic")), body)
    assert refused.status_code == 403
    assert json_snapshot(name="refused") == json.dumps(refused.json(), indent=2) + "\n"
    allowed = post(create_app(Path("examples/chiro-clinic"), allow_rule_text=True), body)
    assert allowed.status_code == 200
    [line] = allowed.json()["sessions"][0]["lines"]
    assert (line["status"], line["reasons"][0]["file"]) == ("denied", "<request rules>")


def test_rule_text_may_not_include_files_of_the_service(json_snapshot: Any) -> None:
    app = create_app(Path("examples/chiro-clinic"), allow_rule_text=True)
    body = json.dumps({"rules": 'payer X\ninclude "../../etc/secret"\n', "sessions": TEXT_SESSION}).encode()
    response = post(app, body)
    assert response.status_code == 422
    broken = post(app, json.dumps({"rules": "payer X\nonly 97124 or\n", "sessions": []}).encode())
    assert broken.status_code == 422
    assert json_snapshot(name="include") == json.dumps(response.json(), indent=2) + "\n"
    assert json_snapshot(name="errors") == json.dumps(broken.json(), indent=2) + "\n"


# --- payers, health, metrics, OpenAPI -----------------------------------------------------------------


def test_payers_name_each_rule_file_with_its_hash() -> None:
    folder = EXAMPLES / "claims-837p"
    data = get(create_app(Path(rel(folder))), "/v1/payers").json()
    assert data["generation"] == 1
    assert [(p["payer"], p["rules"]) for p in data["payers"]] == [
        ("BLUECREST", rel(folder / "bluecrest.payer")), ("CASCADE", rel(folder / "cascade.payer")),
        ("SUMMIT", rel(folder / "summit.payer"))]
    for payer in data["payers"]:
        assert payer["sha256"] == hashlib.sha256((ROOT / payer["rules"]).read_bytes()).hexdigest()
        assert set(payer) == {"payer", "name", "effective_from", "effective_to", "rules", "sha256"}


def test_metrics_count_requests_lines_and_latency() -> None:
    app = create_app(Path("examples/chiro-clinic"))
    body = (EXAMPLES / "chiro-clinic" / "sessions.json").read_bytes()
    for _ in range(3):
        post(app, body)
    post(app, b"{")
    assert get(app, "/healthz").json() == {"status": "ok", "generation": 1, "payers": 1}
    text = get(app, "/metrics").text
    assert 'payrules_requests_total{route="/v1/check",method="POST",status="200"} 3' in text
    assert 'payrules_requests_total{route="/v1/check",method="POST",status="400"} 1' in text
    assert 'payrules_lines_total{status="denied"} 9' in text
    assert 'payrules_request_duration_seconds_count{route="/v1/check"} 4' in text
    assert re.search(r'payrules_request_duration_seconds_bucket\{route="/v1/check",le="\+Inf"\} 4\n', text)
    for line in text.splitlines():  # the exposition format: comments, or name{labels} value
        assert line.startswith("# ") or re.fullmatch(r'[a-z_]+(\{[^}]*\})? [0-9.e+-]+', line), line


def test_the_openapi_document_is_valid_and_describes_every_route() -> None:
    app = create_app(Path("examples/chiro-clinic"))
    document = get(app, "/openapi.json").json()
    validate(document)
    routes = {route.path for route in app.routes}
    assert set(document["paths"]) == routes


# --- reload ------------------------------------------------------------------------------------------


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    target = tmp_path / "rules.payer"
    shutil.copy(EXAMPLES / "chiro-clinic" / "rules.payer", target)
    return target


def test_reload_puts_new_rules_in_force_and_keeps_old_ones_when_they_fail(rules_copy: Path,
                                                                          json_snapshot: Any) -> None:
    body = (EXAMPLES / "chiro-clinic" / "sessions.json").read_bytes()
    app = create_app(rules_copy, reload_endpoint=True)
    before = post(app, body).text
    rules_copy.write_text(rules_copy.read_text().replace("max $45 per session", "max $50 per session"))
    reloaded = post(app, b"", {}, "/v1/reload")
    assert reloaded.status_code == 200 and reloaded.json()["generation"] == 2
    after = post(app, body).text
    assert after != before and '"allowed": "50.00"' in after
    rules_copy.write_text(rules_copy.read_text() + "max 2.5 units per line\n")
    failed = post(app, b"", {}, "/v1/reload")
    assert failed.status_code == 422
    problem = failed.json()
    assert problem["generation"] == 2 and problem["diagnostics"][0]["code"].startswith("E")
    assert post(app, body).text == after
    problem["detail"] = problem["detail"].replace(str(rules_copy), "<rules>")
    problem["where"] = "<rules>"
    for d in problem["diagnostics"]:
        d["file"] = "<rules>"
    assert json_snapshot(name="reload-failed") == json.dumps(problem, indent=2) + "\n"
    assert 'payrules_reloads_total{result="failed"} 1' in get(app, "/metrics").text


def test_reload_is_off_unless_asked_for(rules_copy: Path) -> None:
    response = post(create_app(rules_copy), b"", {}, "/v1/reload")
    assert response.status_code == 403
    assert "--allow-reload" in response.json()["detail"]


# --- decision logs ---------------------------------------------------------------------------------------


def test_the_decision_log_has_a_line_per_request_with_patient_ids_masked(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    app = create_app(Path("examples/chiro-clinic"), decision_log=log, mask=PatientMask(KEY))
    body = (EXAMPLES / "chiro-clinic" / "sessions.json").read_bytes()
    answer = post(app, body)
    post(app, b"{")
    app.state.service.close()
    first, second = [json.loads(line) for line in log.read_text().splitlines()]
    assert first["decision_id"] == answer.headers["payrules-decision-id"]
    assert (first["route"], first["status"], first["payers"]) == ("/v1/check", 200, ["MERIDIAN"])
    assert first["counts"] == {"paid": 2, "reduced": 2, "denied": 3, "rejected": 0}
    assert first["rules"]["generation"] == 1
    unmasked = answer.json()
    assert first["decisions"] == PatientMask(KEY).decision(unmasked)
    assert "P-5001" in answer.text and "P-500" not in log.read_text()
    assert (second["status"], second["problem"]) == (400, "invalid-json")


# --- the command --------------------------------------------------------------------------------------


def test_importing_the_cli_does_not_import_the_web_framework() -> None:
    code = "import sys, payrules.cli, payrules.serve; assert 'starlette' not in sys.modules and 'uvicorn' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_serve_refuses_rule_files_with_errors_before_listening(tmp_path: Path, text_snapshot: Any) -> None:
    bad = tmp_path / "bad.payer"
    bad.write_text('payer BAD\nmax 2.5 units per line\n')
    result = CliRunner().invoke(serve_command, ["--rules", str(bad)], prog_name="payrules serve")
    assert result.exit_code == 2
    assert text_snapshot == result.stderr.replace(str(bad), "bad.payer")


def test_serve_help(text_snapshot: Any) -> None:
    result = CliRunner().invoke(serve_command, ["--help"], prog_name="payrules serve", terminal_width=100)
    assert result.exit_code == 0
    assert text_snapshot == result.stdout


# --- a real server: load, reload under load, faults ---------------------------------------------------------


class Server:
    """uvicorn on a free loopback port, in a background thread."""

    def __init__(self, app: Any) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error",
                                                    timeout_keep_alive=30))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(20)


@pytest.fixture(scope="module")
def expected_answers(tmp_path_factory: pytest.TempPathFactory) -> dict[bytes, str]:
    example = EXAMPLES / "chiro-clinic"
    data = json.loads((example / "sessions.json").read_text())
    bodies = [(example / "sessions.json").read_bytes()]
    bodies += [json.dumps([s]).encode() for s in data["sessions"]]
    bodies.append(json.dumps([{**data["sessions"][0], "date": "someday"}]).encode())
    folder = tmp_path_factory.mktemp("bodies")
    answers = {}
    for i, body in enumerate(bodies):
        file = folder / f"b{i}.json"
        file.write_bytes(body)
        code, out, _ = transcript(["check", str(file), "--rules", rel(example), "--format", "json"])
        # A request's lines are located as `request`, the default name.
        answers[body] = out.replace(json.dumps(str(file)), '"request"')
    assert any('"rejected": 1' in a for a in answers.values())
    return answers


async def hammer(base: str, bodies: list[bytes], requests: int, concurrency: int = 16) -> list[tuple[bytes, httpx.Response]]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(bodies[i % len(bodies)])
    got: list[tuple[bytes, httpx.Response]] = []
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as c:
        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                got.append((body, await c.post("/v1/check", content=body, headers=JSON)))
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return got


def test_two_thousand_requests_at_concurrency_16_all_answer_as_the_cli(expected_answers: dict[bytes, str]) -> None:
    with Server(create_app(Path(rel(EXAMPLES / "chiro-clinic")))) as base:
        got = asyncio.run(hammer(base, list(expected_answers), 2000))
    assert len(got) == 2000
    assert [r.status_code for _, r in got] == [200] * 2000
    assert all(r.text == expected_answers[body] for body, r in got)


def test_answers_during_reloads_come_from_the_old_or_the_new_rules(tmp_path: Path) -> None:
    rules = tmp_path / "rules.payer"
    old = (EXAMPLES / "chiro-clinic" / "rules.payer").read_text()
    new = old.replace("max $45 per session", "max $50 per session")
    body = (EXAMPLES / "chiro-clinic" / "sessions.json").read_bytes()
    answers = set()
    for text in (old, new):
        rules.write_text(text)
        answers.add(post(create_app(rules), body).text)
    assert len(answers) == 2
    rules.write_text(old)
    with Server(create_app(rules, reload_endpoint=True)) as base:
        async def reloads() -> list[int]:
            statuses = []
            async with httpx.AsyncClient(base_url=base, timeout=30) as c:
                for i in range(12):
                    rules.write_text([new, old, old + "max 2.5 units per line\n"][i % 3])
                    statuses.append((await c.post("/v1/reload")).status_code)
                    await asyncio.sleep(0.02)
            return statuses

        async def both() -> tuple[list[tuple[bytes, httpx.Response]], list[int]]:
            return await asyncio.gather(hammer(base, [body], 400), reloads())
        got, statuses = asyncio.run(both())
    assert statuses == [200, 200, 422] * 4
    assert [r.status_code for _, r in got] == [200] * 400
    assert {r.text for _, r in got} <= answers


def raw_request(port: int, head: bytes, body: bytes, *, close_after: float | None = None) -> bytes:
    """Send a request by hand and return the start of the answer; with `close_after`, hang up that many
    seconds after sending instead."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head + body)
        if close_after is not None:
            time.sleep(close_after)
            return b""
        return s.recv(65536)  # the status line and headers come in the first segment


def test_garbage_huge_slow_and_vanishing_clients_never_stop_the_service(expected_answers: dict[bytes, str]) -> None:
    app = create_app(Path(rel(EXAMPLES / "chiro-clinic")), max_body=64 * 1024, read_timeout=1.0)
    with Server(app) as base:
        port = int(base.rsplit(":", 1)[1])
        results: dict[str, bytes] = {}

        def slow() -> None:
            head = b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(head)
                for _ in range(30):  # a byte every 0.1 s: 50 s for the whole body
                    try:
                        s.sendall(b" ")
                    except OSError:
                        break
                    time.sleep(0.1)
                results["slow"] = s.recv(65536)

        def vanishing() -> None:
            head = b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
            raw_request(port, head, b'{"sessions": [', close_after=0.2)

        def huge() -> None:
            head = (b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 1000000000\r\n\r\n")
            results["huge"] = raw_request(port, head, b"[" * 8192)

            def endless() -> Iterator[bytes]:
                for _ in range(1000):
                    yield b"[" * 8192
            results["huge-streamed"] = httpx.post(base + "/v1/check", content=endless(), headers=JSON).content

        def garbage() -> None:
            results["garbage"] = raw_request(port, b"\x16\x03\x01 not http at all\r\n\r\n", b"")

        faults = [threading.Thread(target=f) for f in (slow, vanishing, huge, garbage) for _ in range(2)]
        for t in faults:
            t.start()
        got = asyncio.run(hammer(base, list(expected_answers), 300))
        for t in faults:
            t.join(30)
        health = httpx.get(base + "/healthz")
        metrics = httpx.get(base + "/metrics").text
    assert [r.status_code for _, r in got] == [200] * 300
    assert all(r.text == expected_answers[body] for body, r in got)
    assert results["slow"].startswith(b"HTTP/1.1 408")
    assert results["huge"].startswith(b"HTTP/1.1 413")
    assert json.loads(results["huge-streamed"])["status"] == 413
    assert results["garbage"].startswith(b"HTTP/1.1 400")
    assert health.status_code == 200
    assert 'status="5' not in metrics
    assert 'route="/v1/check",method="POST",status="499"} 2' in metrics


def test_sighup_reloads_the_rules_of_a_running_service(rules_copy: Path) -> None:
    import signal

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = "from payrules.serve import serve_command; serve_command(prog_name='payrules serve')"
    server = subprocess.Popen([sys.executable, "-c", code, "--rules", str(rules_copy), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"

    def generation() -> int | None:
        try:
            return int(httpx.get(base + "/healthz", timeout=2).json()["generation"])
        except httpx.TransportError:
            return None
    try:
        deadline = time.monotonic() + 30
        while generation() != 1:
            assert time.monotonic() < deadline and server.poll() is None, "the service did not start"
            time.sleep(0.1)
        rules_copy.write_text(rules_copy.read_text() + "max 2.5 units per line\n")
        server.send_signal(signal.SIGHUP)
        time.sleep(1)
        assert generation() == 1  # rules with errors: the old ones keep serving
        rules_copy.write_text(rules_copy.read_text().replace("max 2.5 units per line\n", ""))
        server.send_signal(signal.SIGHUP)
        while generation() != 2:
            assert time.monotonic() < deadline, "SIGHUP did not reload the rules"
            time.sleep(0.1)
    finally:
        server.terminate()
        _, err = server.communicate(timeout=20)
    assert b"reload failed; generation 1 keeps serving" in err and b"E208" in err
