"""The decision service benchmark: `payrules serve` on loopback, N requests at a concurrency, requests/s and latency.

    python benchmarks/serve.py                      # 5,000 requests at concurrency 16
    python benchmarks/serve.py --requests 20000 --concurrency 32

1. Starts `payrules serve --rules examples/chiro-clinic` in its own process on a free loopback port.
2. Sends the example's sessions (7 lines in 6 sessions) as JSON from an httpx AsyncClient, each
   request timed from send to the end of the answer; every answer must equal the first one,
   which must equal `payrules check --format json` on the same file.
3. Prints requests/s, lines/s and p50/p90/p99/max latency; exits 1 on any error or difference.
Needs payrules[serve] (starlette, uvicorn, httpx).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "chiro-clinic"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start(port: int) -> subprocess.Popen[bytes]:
    code = "from payrules.serve import serve_command; serve_command(prog_name='payrules serve')"
    return subprocess.Popen([sys.executable, "-c", code, "--rules", "examples/chiro-clinic", "--port", str(port)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server stopped at start (exit {server.returncode})")
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    sys.exit("the server did not answer /healthz within 30 s")


async def load(base: str, body: bytes, requests: int, concurrency: int, expected: str) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    remaining = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        async def worker() -> None:
            nonlocal errors
            for _ in remaining:
                start = time.perf_counter()
                try:
                    response = await client.post("/v1/check", content=body,
                                                 headers={"content-type": "application/json"})
                    ok = response.status_code == 200 and response.text == expected
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - start)
                errors += not ok
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    body = (EXAMPLE / "sessions.json").read_bytes()
    expected = subprocess.run([sys.executable, "-m", "payrules", "check", "examples/chiro-clinic/sessions.json",
                               "--rules", "examples/chiro-clinic", "--format", "json"],
                              cwd=ROOT, capture_output=True, text=True).stdout
    lines = json.loads(expected)["summary"]["lines_read"]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start(port)
    try:
        wait_ready(base, server)
        asyncio.run(load(base, body, 200, args.concurrency, expected))  # warm up
        began = time.perf_counter()
        latencies, errors = asyncio.run(load(base, body, args.requests, args.concurrency, expected))
        elapsed = time.perf_counter() - began
    finally:
        server.terminate()
        server.wait(10)
    rate = args.requests / elapsed
    print(f"payrules serve on 127.0.0.1, {platform.python_implementation()} {platform.python_version()}, "
          f"{len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} CPUs; "
          f"client and server on the same machine")
    print(f"{args.requests} requests of {lines} lines at concurrency {args.concurrency} in {elapsed:.2f} s: "
          f"{rate:,.0f} requests/s, {rate * lines:,.0f} lines/s")
    print("latency ms: " + ", ".join(f"p{p} {percentile(latencies, p) * 1000:.1f}" for p in (50, 90, 99))
          + f", max {max(latencies) * 1000:.1f}")
    print(f"errors or answers unlike `payrules check --format json`: {errors}")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
