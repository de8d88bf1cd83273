"""HTTP requests → decisions: `payrules serve`, a decision service over the same judging path as `payrules check`.

Starlette and uvicorn are imported inside `create_app` and `serve_command` only, so that
`import payrules` and the other commands never need the `serve` extra.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import importlib.util
import io
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import click

from payrules import api, formats, render
from payrules.compiler import Policy, compile_source
from payrules.diagnostics import CompileError, InputError
from payrules.fields import Record, _session_records, clean, limited, normal_keys
from payrules.judging import declared_fields, error_dict
from payrules.masking import MaskKeyError, PatientMask, load_key
from payrules.parser import parse
from payrules.records import Columns, _batches, _json_layout, comes_back, _json_loads, refuse_x12_keep, with_kept
from payrules.runner import Block, Policies, Tally, judge_batch, policies_by_payer
from payrules.source import Source

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

DEFAULT_MAX_BODY = 4 * 1024 * 1024
"""Bytes a request body may hold: about 8,000 JSON service lines, or an 837P batch of that size."""

DEFAULT_READ_TIMEOUT = 30.0
"""Seconds a client has to send its whole body; a slower one gets 408 and frees its slot."""

JSON_TYPES = frozenset({"application/json"})
X12_TYPES = frozenset({"application/x12", "application/edi-x12"})
"""`application/EDI-X12` is the IANA name (RFC 1767); `application/x12` is what most tools send."""

NAME_PATTERN = re.compile(r"[A-Za-z0-9._@+-]{1,100}")
"""What `?name=` may be: it stands for the file name in the located errors of the report."""

EXIT_HEADER = "Payrules-Exit-Status"
"""The exit status `payrules check` would have had: 0 every line paid in full, else 1."""
DECISION_HEADER = "Payrules-Decision-Id"
"""The id of the request's line in the decision log (sent whether or not a log is kept)."""

INLINE_BODY = 16 * 1024
"""Bodies up to this size (a few dozen lines, about a millisecond) are judged on the event loop:
handing them to a worker thread would cost more than judging them."""

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LINE_STATUSES = ("paid", "reduced", "denied", "rejected")
CLIENT_GONE = 499
"""The status counted (never sent) when a client hangs up before its body is read; nginx's."""

log = logging.getLogger("payrules.serve")


# --- problems ------------------------------------------------------------------------------------


class Problem(Exception):
    """A request that cannot be answered with decisions: becomes an RFC 9457 problem+json body."""

    def __init__(self, status: int, kind: str, title: str, detail: str, where: str | None = None,
                 **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.kind, self.title, self.detail, self.where, self.extra = status, kind, title, detail, where, extra

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": f"urn:payrules:problem:{self.kind}", "title": self.title,
                                "status": self.status, "detail": self.detail}
        if self.where is not None:
            body["where"] = self.where
        return {**body, **self.extra}


# --- rules ---------------------------------------------------------------------------------------


@attrs.frozen
class RuleFile:
    """A rule file as loaded: what `/v1/payers` tells about it."""

    payer: str
    name: str
    effective_from: str | None
    effective_to: str | None
    rules: str
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"payer": self.payer, "name": self.name, "effective_from": self.effective_from,
                "effective_to": self.effective_to, "rules": self.rules, "sha256": self.sha256}


@attrs.frozen
class Loaded:
    """One generation of compiled rules; requests take one and judge with it to the end."""

    policies: Policies
    files: tuple[RuleFile, ...]
    payer_map: dict[str, str]
    generation: int
    loaded_at: str

    @property
    def sha256(self) -> str:
        """One hash of every rule file's name and hash: equal on two services with the same rules."""
        text = "".join(f"{f.rules}\0{f.sha256}\n" for f in sorted(self.files, key=lambda f: f.rules))
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def load_rules(rules: Path, payer_map: Path | None, generation: int) -> Loaded:
    """Compile the rule files (raising `CompileError` or `InputError` as `payrules check` does)."""
    files = api.rule_files(rules)
    # Hash what was read before compiling, so that a file edited meanwhile is not hashed as compiled.
    digests = {str(f): hashlib.sha256(_read_bytes(f)).hexdigest() for f in files}
    policies = api.load_policies(rules)
    found = tuple(RuleFile(p.payer_id, p.payer_name, p.effective_from, p.effective_to, p.source,
                           digests.get(p.source, "")) for p in policies)
    payers = formats.load_payer_map(payer_map) if payer_map is not None else {}
    return Loaded(policies_by_payer(policies), found, payers, generation, _now())


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror})") from None


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- judging: the path of `payrules check --format json` ---------------------------------------------


@attrs.frozen
class Judged:
    """A report as `payrules check --format json` writes it, and what the logs and metrics need."""

    text: str
    tally: Tally
    blocks: tuple[Block, ...]


def judge_records(found: Sequence[Record], policies: Policies, keep: tuple[str, ...] = ()) -> Judged:
    """Group, judge and write records exactly as `payrules check` does for one input file: one
    block per patient when the input is grouped by patient, else one block."""
    out = io.StringIO()
    writer = render.JsonWriter(out, keep=keep)
    tally = Tally()
    blocks = []
    for batch in _batches(iter(found), _grouped(found)):
        block = judge_batch(batch, policies)
        writer.block(block)
        tally.add(block)
        blocks.append(block)
    writer.close(tally.summary())
    return Judged(out.getvalue(), tally, tuple(blocks))


def _grouped(found: Sequence[Record]) -> bool:
    """Whether every patient's records are contiguous (`records.scan` for one JSON or 837P input)."""
    return not comes_back((clean(raw[1]) for raw, _, _ in found), set())


def json_records(body: bytes, name: str, keep: tuple[str, ...] = (), facts: tuple[str, ...] = ()) -> list[Record]:
    """The records of a JSON sessions body, read as `payrules check` reads a `.json` file named `name`."""
    text = _utf8(body, name)
    try:
        data, starts = _json_loads(text, Path(name), 1)
    except InputError as error:
        raise Problem(400, "invalid-json", "The body is not valid JSON", str(error), _place(str(error), name)) from None
    if isinstance(data, dict):
        data = normal_keys(data)[0].get("sessions")
    if not isinstance(data, list):
        raise Problem(422, "wrong-shape", "The body is not a list of sessions",
                      'expected a list of sessions, or an object with a "sessions" list', "sessions")
    if starts is None:
        starts, _ = _json_layout(text)
    rows = starts if len(starts) == len(data) else [1] * len(data)
    return [r for i, session in enumerate(data)
            for r in _session_records(session, name, rows[i], f"sessions[{i}]", keep, facts)]


def x12_records(body: bytes, name: str, payers: dict[str, str], keep: tuple[str, ...] = ()) -> list[Record]:
    """The records of an 837P body, read as `payrules check` reads an `.837` file named `name`."""
    if importlib.util.find_spec("pyx12") is None:
        raise Problem(415, "unsupported-media-type", "X12 is not read by this service",
                      "reading X12 837P bodies needs payrules[x12] installed where the service runs",
                      "Content-Type header")
    from payrules.formats import x12

    found: list[Record] = []
    try:
        refuse_x12_keep(name, keep)
    except InputError as error:
        raise Problem(400, "bad-parameter", "Bad keep parameter", str(error), "keep query parameter") from None
    try:
        # As `records._format_records` does for a claim file: fields over the limit are emptied.
        for raw, origin, problem in x12.read_text(body.decode("utf-8", errors="replace"), name, payers,
                                                     ids=bool(keep)):
            kept, late = limited(raw)
            found.append((kept, with_kept(origin, keep), problem or late))
    except InputError as error:
        raise Problem(400, "invalid-x12", "The body is not a readable 837P", str(error), name) from None
    return found


def _utf8(body: bytes, name: str) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise Problem(400, "invalid-json", "The body is not UTF-8 text",
                      f"{name}: not UTF-8 text (byte {error.start})", f"{name}: byte {error.start}") from None


def _place(message: str, name: str) -> str:
    """`name:line:col` from the start of an `InputError` message, or the name alone."""
    head = message.split(": ", 1)[0]
    return head if head.startswith(name) else name


def request_rules(text: Any) -> Policies:
    """Rule text sent in a request (only with --allow-rule-text), compiled on its own. It may
    include only the shipped `stdlib/` files: a request must not make the service read its disk."""
    if not isinstance(text, str):
        raise Problem(422, "wrong-shape", "The rule text is not a string",
                      "`rules` must be the text of one rule file", "rules")
    source = Source("<request rules>", text.replace("\r\n", "\n"))
    module, _ = parse(source)
    for include in module.includes:
        if not include.path.value.startswith("stdlib/") or ".." in include.path.value.split("/"):
            raise Problem(422, "rule-text-include", "The rule text includes a file",
                          f"`include \"{include.path.value}\"`: rule text from a request may include only "
                          "stdlib/ files", f"rules:{include.span.line}:{include.span.column}")
    try:
        return policies_by_payer([compile_source(source)])
    except CompileError as error:
        raise Problem(422, "rule-text-errors", "The rule text has errors", render.diagnostics(error.diagnostics),
                      "rules", diagnostics=json.loads(render.diagnostics_json(error.diagnostics))["diagnostics"]) from None


def rule_text_of(body: bytes) -> Any:
    """The `rules` member of a JSON object body, or None; the body is parsed again only when it
    names one, which a sessions body never needs to."""
    if b'"rules"' not in body:
        return None
    try:
        data = json.loads(body.decode("utf-8-sig"))
    except ValueError:
        return None  # the sessions reader reports it, with its place
    return data.get("rules") if isinstance(data, dict) else None


# --- metrics ---------------------------------------------------------------------------------------


class Metrics:
    """Counters and a latency histogram in Prometheus text format; safe to update from threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = {}
        self.lines = dict.fromkeys(LINE_STATUSES, 0)
        self.latency: dict[str, list[int]] = {}
        self.latency_sum: dict[str, float] = {}
        self.reloads = {"ok": 0, "failed": 0}
        self.log_errors = 0

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (route, method, status)
            self.requests[key] = self.requests.get(key, 0) + 1
            counts = self.latency.setdefault(route, [0] * (len(LATENCY_BUCKETS) + 1))
            for i, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    counts[i] += 1
            counts[-1] += 1
            self.latency_sum[route] = self.latency_sum.get(route, 0.0) + seconds

    def judged(self, tally: Tally) -> None:
        with self._lock:
            for status in LINE_STATUSES:
                self.lines[status] += getattr(tally, status)

    def reloaded(self, ok: bool) -> None:
        with self._lock:
            self.reloads["ok" if ok else "failed"] += 1

    def log_failed(self) -> None:
        with self._lock:
            self.log_errors += 1

    def text(self, loaded: Loaded) -> str:
        with self._lock:
            out = [
                "# HELP payrules_requests_total HTTP requests answered, by route, method and status.",
                "# TYPE payrules_requests_total counter",
                *(f'payrules_requests_total{{route="{r}",method="{m}",status="{s}"}} {n}'
                  for (r, m, s), n in sorted(self.requests.items())),
                "# HELP payrules_lines_total Service lines judged, by status (rejected: not judged).",
                "# TYPE payrules_lines_total counter",
                *(f'payrules_lines_total{{status="{s}"}} {self.lines[s]}' for s in LINE_STATUSES),
                "# HELP payrules_request_duration_seconds Time from request to response, by route.",
                "# TYPE payrules_request_duration_seconds histogram",
            ]
            for route, counts in sorted(self.latency.items()):
                bounds = [*(f"{b:g}" for b in LATENCY_BUCKETS), "+Inf"]
                out += [f'payrules_request_duration_seconds_bucket{{route="{route}",le="{b}"}} {c}'
                        for b, c in zip(bounds, counts)]
                out += [f'payrules_request_duration_seconds_sum{{route="{route}"}} {self.latency_sum[route]:.6f}',
                        f'payrules_request_duration_seconds_count{{route="{route}"}} {counts[-1]}']
            out += [
                "# HELP payrules_reloads_total Rule reloads, by result (failed: the old rules kept serving).",
                "# TYPE payrules_reloads_total counter",
                *(f'payrules_reloads_total{{result="{k}"}} {v}' for k, v in self.reloads.items()),
                "# HELP payrules_decision_log_errors_total Decision log lines that could not be written.",
                "# TYPE payrules_decision_log_errors_total counter",
                f"payrules_decision_log_errors_total {self.log_errors}",
                "# HELP payrules_rules_generation How many times the rules were loaded, counting the first.",
                "# TYPE payrules_rules_generation gauge",
                f"payrules_rules_generation {loaded.generation}",
                "# HELP payrules_payers Payers whose rules are loaded.",
                "# TYPE payrules_payers gauge",
                f"payrules_payers {len(loaded.policies)}",
            ]
        return "\n".join(out) + "\n"


# --- the service -------------------------------------------------------------------------------------


class Service:
    """The state behind the routes: the rules in force, reloads, metrics and the decision log."""

    def __init__(self, rules: Path, *, payer_map: Path | None, allow_rule_text: bool, max_body: int,
                 read_timeout: float, decision_log: Path | None, mask: PatientMask | None,
                 reload_endpoint: bool) -> None:
        self.rules_path, self.payer_map_path = rules, payer_map
        self.allow_rule_text, self.max_body, self.read_timeout = allow_rule_text, max_body, read_timeout
        self.mask, self.reload_endpoint = mask, reload_endpoint
        self.loaded = load_rules(rules, payer_map, 1)
        self.metrics = Metrics()
        self._reload_lock = threading.Lock()
        self._log_lock = threading.Lock()
        self._log = open(decision_log, "a", encoding="utf-8") if decision_log is not None else None

    def reload(self) -> dict[str, Any]:
        """Compile the rule files again and put them in force at once; when they fail to compile
        the rules in force stay, and the problem says why (also on the log)."""
        with self._reload_lock:
            before = self.loaded
            try:
                fresh = load_rules(self.rules_path, self.payer_map_path, before.generation + 1)
            except CompileError as error:
                self.metrics.reloaded(False)
                text = render.diagnostics(error.diagnostics)
                log.error("reload failed; generation %d keeps serving:\n%s", before.generation, text.rstrip())
                raise Problem(422, "reload-failed", "The rule files have errors; the rules in force keep serving",
                              text, str(self.rules_path), generation=before.generation,
                              diagnostics=json.loads(render.diagnostics_json(error.diagnostics))["diagnostics"]) from None
            except InputError as error:
                self.metrics.reloaded(False)
                log.error("reload failed; generation %d keeps serving: %s", before.generation, error)
                raise Problem(422, "reload-failed", "The rule files cannot be read; the rules in force keep serving",
                              render.printable(str(error)), str(self.rules_path), generation=before.generation) from None
            self.loaded = fresh  # one reference swap: a request sees the old rules or the new, never a mix
            self.metrics.reloaded(True)
            log.warning("rules reloaded: generation %d, %d payers", fresh.generation, len(fresh.policies))
            return {"generation": fresh.generation, "loaded_at": fresh.loaded_at, "sha256": fresh.sha256,
                    "payers": [f.to_dict() for f in fresh.files]}

    def payers(self) -> dict[str, Any]:
        loaded = self.loaded
        return {"generation": loaded.generation, "loaded_at": loaded.loaded_at, "sha256": loaded.sha256,
                "payers": [f.to_dict() for f in loaded.files]}

    def judge(self, body: bytes, content_type: str, name: str,
              keep: tuple[str, ...] = ()) -> tuple[Judged, Loaded, bool]:
        """The report for one body, the rules it was judged with, and whether they came with it."""
        loaded = self.loaded
        policies = loaded.policies
        own = False
        if content_type in JSON_TYPES:
            text = rule_text_of(body)
            if text is not None:
                if not self.allow_rule_text:
                    raise Problem(403, "rule-text-refused", "This service does not accept rule text",
                                  "the body has a `rules` member; this service judges only with the rule files it "
                                  "was started with (start it with --allow-rule-text to accept rule text)", "rules")
                policies, own = request_rules(text), True
            # The fields the rule files declare are read from the sessions' keys.
            facts = declared_fields(p for found_ in policies.values() for p in found_)
            found = json_records(body, name, keep, facts)
        else:
            found = x12_records(body, name, loaded.payer_map, keep)
        return judge_records(found, policies, keep), loaded, own

    @property
    def logging(self) -> bool:
        """Whether a decision log is kept."""
        return self._log is not None

    def write_log(self, entry: dict[str, Any]) -> None:
        if self._log is None:
            return
        line = json.dumps(entry) + "\n"
        try:
            with self._log_lock:
                self._log.write(line)
                self._log.flush()
        except OSError as error:
            self.metrics.log_failed()
            log.error("decision log: cannot write (%s)", error.strerror)

    def log_entry(self, decision: str, status: int, loaded: Loaded, judged: Judged | None, own: bool,
                  content_type: str | None, problem: Problem | None = None) -> dict[str, Any]:
        """One decision log line: when, what, with which rules, and the decisions (masked if asked)."""
        entry: dict[str, Any] = {"decision_id": decision, "time": _now(), "route": "/v1/check", "status": status,
                                 "content_type": content_type,
                                 "rules": "<request rules>" if own else {"generation": loaded.generation,
                                                                        "sha256": loaded.sha256}}
        if judged is not None:
            sessions = [s.to_dict() for b in judged.blocks for s in b.sessions]
            errors = [error_dict(e) for b in judged.blocks for e in b.errors]
            decisions = {"sessions": sessions, "errors": errors, "summary": judged.tally.summary().to_dict()}
            entry["payers"] = sorted({s["payer"] for s in sessions})
            entry["counts"] = {s: getattr(judged.tally, s) for s in LINE_STATUSES}
            entry["decisions"] = self.mask.decision(decisions) if self.mask else decisions
        if problem is not None:
            entry["problem"] = problem.kind
        return entry

    def close(self) -> None:
        if self._log is not None:
            self._log.close()


# --- the app ---------------------------------------------------------------------------------------------


def create_app(rules: Path, *, allow_rule_text: bool = False, max_body: int = DEFAULT_MAX_BODY,
               decision_log: Path | None = None, mask: PatientMask | None = None, reload_endpoint: bool = False,
               payer_map: Path | None = None, read_timeout: float = DEFAULT_READ_TIMEOUT,
               reload_on_sighup: bool = False) -> Starlette:
    """The decision service as an ASGI app; the rules are compiled here, once (raising
    `CompileError` or `InputError` as `payrules check` would)."""
    import contextlib
    import signal

    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    service = Service(rules, payer_map=payer_map, allow_rule_text=allow_rule_text, max_body=max_body,
                      read_timeout=read_timeout, decision_log=decision_log, mask=mask, reload_endpoint=reload_endpoint)

    def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response:
        return JSONResponse(problem.to_dict(), status_code=problem.status, media_type="application/problem+json",
                            headers=headers)

    Endpoint = Callable[[Request], Awaitable[Response]]

    def guarded(route: str, endpoint: Endpoint) -> Endpoint:
        """Count and time the request; a fault in payrules becomes a 500 problem without a
        traceback in the response (the traceback goes to the service's log)."""
        async def wrapped(request: Request) -> Response:
            start = time.perf_counter()
            try:
                response = await endpoint(request)
            except Problem as problem:
                response = problem_response(problem)
            except ClientDisconnect:
                service.metrics.request(route, request.method, CLIENT_GONE, time.perf_counter() - start)
                return Response(status_code=400)  # nobody is listening; uvicorn drops it
            except Exception:  # noqa: BLE001 - the last line of defence for one request
                log.exception("internal error on %s %s", request.method, route)
                response = problem_response(Problem(500, "internal-error", "Internal error",
                                                    "payrules failed on this request; the service log has the "
                                                    "details, and the service goes on serving"))
            service.metrics.request(route, request.method, response.status_code, time.perf_counter() - start)
            return response
        return wrapped

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > service.max_body:
            raise _too_large(service.max_body)
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(service.read_timeout):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > service.max_body:
                        raise _too_large(service.max_body)
                    chunks.append(chunk)
        except TimeoutError:
            raise Problem(408, "body-timeout", "The body came too slowly",
                          f"the whole body must arrive within {service.read_timeout:g} seconds", "body") from None
        return b"".join(chunks)

    async def check(request: Request) -> Response:
        decision = str(uuid.uuid4())
        content_type = request.headers.get("content-type")
        media = (content_type or "").split(";", 1)[0].strip().lower()
        loaded = service.loaded
        try:
            if media not in JSON_TYPES | X12_TYPES:
                raise Problem(415, "unsupported-media-type", "Unsupported content type",
                              f"send sessions as application/json or an 837P as application/x12; got "
                              f"{json.dumps(content_type) if content_type else 'no Content-Type'}",
                              "Content-Type header")
            charset = re.search(r"charset\s*=\s*\"?([\w-]+)", content_type or "", re.I)
            if charset and charset.group(1).lower() not in ("utf-8", "utf8"):
                raise Problem(415, "unsupported-media-type", "Unsupported charset",
                              f"send UTF-8 text; got charset={charset.group(1)}", "Content-Type header")
            name = request.query_params.get("name", "request")
            if not NAME_PATTERN.fullmatch(name):
                raise Problem(400, "bad-parameter", "Bad name parameter",
                              "`name` stands for the input's file name in located errors: 1 to 100 letters, "
                              "digits and ._@+-", "name query parameter")
            keep = _keep_parameter(request.query_params.getlist("keep"))
            body = await read_body(request)
            if len(body) <= INLINE_BODY:
                judged, loaded, own = service.judge(body, media, name, keep)
            else:  # in a worker thread, so that the event loop goes on reading other requests
                judged, loaded, own = await run_in_threadpool(service.judge, body, media, name, keep)
        except Problem as problem:
            if service.logging:
                await run_in_threadpool(service.write_log, service.log_entry(
                    decision, problem.status, loaded, None, False, content_type, problem))
            return problem_response(problem, {DECISION_HEADER: decision})
        service.metrics.judged(judged.tally)
        if service.logging:
            await run_in_threadpool(service.write_log,
                                    service.log_entry(decision, 200, loaded, judged, own, content_type))
        paid = judged.tally.paid == judged.tally.lines_read
        return Response(judged.text, media_type="application/json",
                        headers={EXIT_HEADER: "0" if paid else "1", DECISION_HEADER: decision})

    async def payers(request: Request) -> Response:
        return JSONResponse(service.payers())

    async def healthz(request: Request) -> Response:
        loaded = service.loaded
        return JSONResponse({"status": "ok", "generation": loaded.generation, "payers": len(loaded.policies)})

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(service.metrics.text(service.loaded),
                                 media_type="text/plain; version=0.0.4; charset=utf-8")

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document(reload_endpoint))

    async def reload(request: Request) -> Response:
        if not service.reload_endpoint:
            raise Problem(403, "reload-off", "Reload is off",
                          "this service reloads its rules only on SIGHUP; start it with --allow-reload to "
                          "reload them with POST /v1/reload", "/v1/reload")
        return JSONResponse(await run_in_threadpool(service.reload))

    async def not_found(request: Request, error: Exception) -> Response:
        status = error.status_code if isinstance(error, HTTPException) else 500
        service.metrics.request("other", request.method, status, 0.0)
        detail = {404: f"no route {request.url.path}; see /openapi.json",
                  405: f"{request.method} is not allowed on {request.url.path}; see /openapi.json"}
        return problem_response(Problem(status, "not-found" if status == 404 else "method-not-allowed",
                                        "Not found" if status == 404 else "Method not allowed",
                                        detail.get(status, "the request cannot be served"), request.url.path),
                                headers=getattr(error, "headers", None))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        loop = asyncio.get_running_loop()
        if reload_on_sighup and hasattr(signal, "SIGHUP"):
            def on_hangup() -> None:
                loop.run_in_executor(None, _reload_quietly, service)
            loop.add_signal_handler(signal.SIGHUP, on_hangup)
        try:
            yield
        finally:
            if reload_on_sighup and hasattr(signal, "SIGHUP"):
                loop.remove_signal_handler(signal.SIGHUP)
            service.close()

    routes = [
        Route("/v1/check", guarded("/v1/check", check), methods=["POST"]),
        Route("/v1/payers", guarded("/v1/payers", payers), methods=["GET"]),
        Route("/v1/reload", guarded("/v1/reload", reload), methods=["POST"]),
        Route("/healthz", guarded("/healthz", healthz), methods=["GET"]),
        Route("/metrics", guarded("/metrics", metrics), methods=["GET"]),
        Route("/openapi.json", guarded("/openapi.json", openapi), methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found}, lifespan=lifespan)
    app.state.service = service
    return app


def _keep_parameter(names: list[str]) -> tuple[str, ...]:
    """The ids `?keep=NAME` asks to carry, as `check --keep` takes them."""
    try:
        return Columns().with_keep(names).keep
    except InputError as error:
        raise Problem(400, "bad-parameter", "Bad keep parameter", str(error), "keep query parameter") from None


def _too_large(limit: int) -> Problem:
    return Problem(413, "body-too-large", "The body is too large",
                   f"the body is over {limit:,} bytes, the most this service reads (--max-body-bytes); "
                   "send the sessions in several requests", "body")


def _reload_quietly(service: Service) -> None:
    """A SIGHUP reload: its outcome goes to the log only."""
    try:
        service.reload()
    except Problem:
        pass  # already logged; the old rules keep serving


# --- OpenAPI ------------------------------------------------------------------------------------------


def _problem_responses(*codes: int) -> dict[str, Any]:
    words = {400: "Bad JSON, bad X12 or a bad parameter", 403: "Refused", 408: "The body came too slowly",
             413: "The body is too large", 415: "Unsupported content type", 422: "Wrong shape or rule errors",
             500: "Internal error (no details in the response)"}
    return {str(c): {"description": words[c],
                     "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
            for c in codes}


def openapi_document(reload_endpoint: bool = False) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the service; the report schema is the one `payrules check` ships."""
    report = api.report_schema()
    report_defs = report.pop("$defs", {})
    report.pop("$schema", None)
    report.pop("$id", None)
    json_schema: dict[str, Any] = {"$ref": "#/components/schemas/Report"}
    schemas: dict[str, Any] = {
        "Report": _rebased(report),
        **{name: _rebased(schema) for name, schema in report_defs.items()},
        "Problem": {"type": "object", "required": ["type", "title", "status", "detail"], "properties": {
            "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
            "detail": {"type": "string"}, "where": {"type": "string", "description": "The field or place at fault"}}},
        "RuleFile": {"type": "object", "required": ["payer", "name", "rules", "sha256"], "properties": {
            "payer": {"type": "string"}, "name": {"type": "string"},
            "effective_from": {"type": ["string", "null"], "format": "date"},
            "effective_to": {"type": ["string", "null"], "format": "date"},
            "rules": {"type": "string", "description": "The rule file as the service was given it"},
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}},
        "Payers": {"type": "object", "required": ["generation", "loaded_at", "sha256", "payers"], "properties": {
            "generation": {"type": "integer"}, "loaded_at": {"type": "string", "format": "date-time"},
            "sha256": {"type": "string"}, "payers": {"type": "array", "items": {"$ref": "#/components/schemas/RuleFile"}}}},
        "Sessions": {"oneOf": [{"type": "array", "items": {"type": "object"}},
                               {"type": "object", "required": ["sessions"], "properties": {
                                   "sessions": {"type": "array", "items": {"type": "object"}},
                                   "rules": {"type": "string", "description": "Rule text; only with --allow-rule-text"}}}],
                     "description": "The JSON input format of `payrules check`"},
    }
    ok_report = {"description": "The report of `payrules check --format json`, also when lines are denied",
                 "headers": {EXIT_HEADER: {"schema": {"type": "string", "enum": ["0", "1"]},
                                           "description": "0 every line paid in full, else 1"},
                             DECISION_HEADER: {"schema": {"type": "string"}}},
                 "content": {"application/json": {"schema": json_schema}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "payrules decision service", "version": _version(),
                 "description": "Judges service lines against the payer rule files the service was started with."},
        "paths": {
            "/v1/check": {"post": {
                "operationId": "check", "summary": "Judge sessions (JSON) or an 837P (X12)",
                "parameters": [{"name": "name", "in": "query", "required": False,
                                "description": "The file name that located errors give (default `request`)",
                                "schema": {"type": "string", "pattern": NAME_PATTERN.pattern}},
                               {"name": "keep", "in": "query", "required": False, "explode": True,
                                "description": "A key of the sessions or lines (for an 837P: claim_id, "
                                               "line_number or line_control) whose value each line and error "
                                               "carries in `keep`, as `payrules check --keep` (repeatable)",
                                "schema": {"type": "array", "items": {"type": "string"}}}],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Sessions"}},
                    "application/x12": {"schema": {"type": "string"}},
                    "application/edi-x12": {"schema": {"type": "string"}}}},
                "responses": {"200": ok_report, **_problem_responses(400, 403, 408, 413, 415, 422, 500)}}},
            "/v1/payers": {"get": {"operationId": "payers", "summary": "The payers loaded and their rule files",
                                   "responses": {"200": {"description": "The rules in force", "content": {
                                       "application/json": {"schema": {"$ref": "#/components/schemas/Payers"}}}}}}},
            "/v1/reload": {"post": {
                "operationId": "reload",
                "summary": "Compile the rule files again" + ("" if reload_endpoint else " (off: start with --allow-reload)"),
                "responses": {"200": {"description": "The new rules are in force", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Payers"}}}},
                    **_problem_responses(403, 422, 500)}}},
            "/healthz": {"get": {"operationId": "health", "summary": "Liveness", "responses": {"200": {
                "description": "Serving", "content": {"application/json": {"schema": {"type": "object", "properties": {
                    "status": {"const": "ok"}, "generation": {"type": "integer"}, "payers": {"type": "integer"}}}}}}}}},
            "/metrics": {"get": {"operationId": "metrics", "summary": "Prometheus metrics", "responses": {"200": {
                "description": "Prometheus text format 0.0.4",
                "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/openapi.json": {"get": {"operationId": "openapi", "summary": "This document", "responses": {"200": {
                "description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        },
        "components": {"schemas": schemas},
    }


def _rebased(schema: Any) -> Any:
    """A schema of the report with its `#/$defs/` references pointed at the OpenAPI components."""
    if isinstance(schema, dict):
        return {k: (v.replace("#/$defs/", "#/components/schemas/") if k == "$ref" and isinstance(v, str)
                    else _rebased(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_rebased(v) for v in schema]
    return schema


def _version() -> str:
    from payrules import __version__

    return __version__


# --- the command --------------------------------------------------------------------------------------


@click.command(name="serve")
@click.option("--rules", "rules", required=True, type=click.Path(path_type=Path),
              help="A .payer rule file, or a folder searched for them.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="The address to listen on; other than loopback, put TLS and authentication in front.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--payer-map", "payer_map", type=click.Path(path_type=Path, dir_okay=False),
              help="A TOML file whose [payers] table maps 837P payer ids to the rule files' payer ids.")
@click.option("--max-body-bytes", "max_body", default=DEFAULT_MAX_BODY, show_default=True,
              type=click.IntRange(1), help="The largest request body read; larger ones get 413.")
@click.option("--read-timeout", "read_timeout", default=DEFAULT_READ_TIMEOUT, show_default=True,
              type=click.FloatRange(0.1), help="Seconds a client has to send its whole body; slower ones get 408.")
@click.option("--decision-log", "decision_log", type=click.Path(path_type=Path, dir_okay=False),
              help="Append one JSON line per /v1/check request to this file.")
@click.option("--mask-patient-ids", "mask_ids", is_flag=True,
              help="Write patient ids in the decision log as a keyed hash (HMAC-SHA256); the key comes from "
              "--mask-key-file or $PAYRULES_MASK_KEY.")
@click.option("--mask-key-file", "mask_key_file", type=click.Path(path_type=Path, dir_okay=False),
              help="A file holding the secret key for --mask-patient-ids (at least 16 bytes).")
@click.option("--allow-reload", "allow_reload", is_flag=True,
              help="Accept POST /v1/reload (SIGHUP always reloads).")
@click.option("--allow-rule-text", "allow_rule_text", is_flag=True,
              help="Accept rule text in a request's `rules` member (trusted clients only).")
@click.pass_context
def serve_command(ctx: click.Context, rules: Path, host: str, port: int, payer_map: Path | None, max_body: int,
                  read_timeout: float, decision_log: Path | None, mask_ids: bool, mask_key_file: Path | None,
                  allow_reload: bool, allow_rule_text: bool) -> None:
    """Serve decisions over HTTP: POST sessions to /v1/check and get the report of
    `payrules check --format json`. Needs payrules[serve].

    Rules load once; SIGHUP (or POST /v1/reload with --allow-reload) compiles them again, and
    rules that fail to compile leave the old ones serving.

    Exit status: 0 stopped, 2 bad usage, rule files with errors or a missing extra.
    """
    if importlib.util.find_spec("starlette") is None or importlib.util.find_spec("uvicorn") is None:
        raise click.UsageError("payrules serve needs the serve extra: pip install 'payrules[serve]'", ctx)
    if mask_key_file is not None and not mask_ids:
        raise click.UsageError("--mask-key-file is given but --mask-patient-ids is not; add --mask-patient-ids "
                               "to mask patient ids", ctx)
    try:
        mask = PatientMask(load_key(mask_key_file)) if mask_ids else None
    except MaskKeyError as error:
        raise click.UsageError(render.printable(str(error)), ctx) from None
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    try:
        app = create_app(rules, allow_rule_text=allow_rule_text, max_body=max_body, decision_log=decision_log,
                         mask=mask, reload_endpoint=allow_reload, payer_map=payer_map, read_timeout=read_timeout,
                         reload_on_sighup=True)
    except CompileError as error:
        click.echo(render.diagnostics(error.diagnostics), err=True, nl=False)
        ctx.exit(2)
    except (InputError, OSError) as error:
        click.echo(f"error: {render.printable(str(error))}", err=True)
        ctx.exit(2)
    if host not in ("127.0.0.1", "::1", "localhost"):
        click.echo(f"note: listening on {render.printable(host)}, beyond this machine; the service has no TLS and no "
                   "authentication of its own", err=True)
    uvicorn.run(app, host=host, port=port, server_header=False, timeout_keep_alive=5, log_level="info")
    ctx.exit(0)
