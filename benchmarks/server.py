"""Workspace under load: 50 concurrent clients on loopback against the patient summary API and
the patient page for 30 s, side by side with /healthz (the floor: the same server and HTTP
stack doing no work). Prints requests per second, p50/p95/p99 latency and errors per target.

    .venv/bin/python benchmarks/server.py [--clients 50] [--seconds 30] [--patients 10] [--client-procs 2] [--workers 2]

The store is built in a temporary folder from the Synthea bundles of the shared data (real
summaries from ``carelens.record.summarize``, cached by input hash after the warm-up); every
request is authenticated (bearer token or session cookie) and audited, as in production.
Goal: p95 < 200 ms with zero errors on the 2-core machine.

The load generator shares the machine's cores with the server, so it is kept lean: the clients
are spread over ``--client-procs`` processes, each a plain asyncio (uvloop) HTTP/1.1 client, one
keep-alive connection per client (as httpx's pool gave). A request's latency runs from sending
it to reading its whole body; anything but a 200, a dropped connection or a 30 s timeout is
an error. (An httpx client spent ~10 ms of CPU per request, as much as the server.)
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from carelens.core.config import shared_data_dir

PASSWORD = "benchmark password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(base: str, tries: int = 300) -> None:
    """Poll ``/healthz`` until the server answers (about 0.2 s between tries)."""
    for _ in range(tries):
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)


def cli(env: dict[str, str], *args: str, stdin: str = "") -> str:
    done = subprocess.run(
        [sys.executable, "-m", "carelens.cli", *args], input=stdin, capture_output=True, text=True, env=env, check=True
    )
    return done.stdout.strip()


def prepare(root: Path, patients: int) -> tuple[Path, dict[str, str]]:
    data = shared_data_dir()
    if data is None:
        sys.exit("shared data not found: set CARELENS_SHARED_DATA")
    store = root / "store"
    (store / "fhir").mkdir(parents=True)
    bundles = sorted((data / "fhir" / "synthea-r4").glob("*.json"))
    bundles = [b for b in bundles if "hospital" not in b.name.lower() and "practitioner" not in b.name.lower()]
    for bundle in bundles[:patients]:
        (store / "fhir" / bundle.name).symlink_to(bundle)
    env = {**os.environ, "CARELENS_STORE": str(store)}
    env.pop("CARELENS_DB_URL", None)
    cli(env, "users", "add", "bench", "--role", "clinician", stdin=PASSWORD + "\n")
    env["BENCH_TOKEN"] = cli(env, "users", "token", "bench")
    return store, env


def login(base: str) -> str:
    with httpx.Client(base_url=base) as client:
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
        assert token
        form = {"username": "bench", "password": PASSWORD, "csrf_token": token.group(1)}
        r = client.post("/login", data=form, headers={"Origin": base})  # as a browser's form post
        assert r.status_code == 303, r.status_code
        return "; ".join(f"{k}={v}" for k, v in client.cookies.items())


Target = tuple[str, str, dict[str, str]]
Results = dict[str, tuple[list[float], int]]
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length: *(\d+)", re.IGNORECASE)


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> bool:
    """Send one keep-alive GET and read the whole response; True for a 200."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = CONTENT_LENGTH.search(head)
    if length is None:
        raise ConnectionError("response without content-length")
    await reader.readexactly(int(length.group(1)))
    return head[9:12] == b"200"


async def _client(port: int, requests: list[tuple[str, bytes]], first: int, stop: float, results: Results) -> None:
    """One closed-loop client on its own keep-alive connection, reconnecting after an error."""
    i, conn = first, None
    while time.time() < stop:
        name, request = requests[i % len(requests)]
        i += 1
        start = time.perf_counter()
        try:
            async with asyncio.timeout(30):
                conn = conn or await asyncio.open_connection("127.0.0.1", port)
                ok = await _get(*conn, request)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            ok, conn = False, None
        took = time.perf_counter() - start
        times, errors = results[name]
        if ok:
            times.append(took)
        else:
            results[name] = (times, errors + 1)


def _load_part(
    port: int, targets: list[Target], cookie: str, first: int, clients: int, start: float, stop: float
) -> Results:
    """The clients ``first..first+clients-1`` of the run, in this process (uvloop when installed)."""
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    requests = []
    for name, path, headers in targets:
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Cookie: {cookie}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        requests.append((name, ("\r\n".join(lines) + "\r\n\r\n").encode()))
    results: Results = {name: ([], 0) for name, _, _ in targets}

    async def run() -> None:
        await asyncio.sleep(max(0.0, start - time.time()))
        await asyncio.gather(*(_client(port, requests, n, stop, results) for n in range(first, first + clients)))

    asyncio.run(run())
    return results


def run_load(port: int, targets: list[Target], clients: int, seconds: float, cookie: str, procs: int) -> Results:
    """``clients`` closed-loop clients spread over ``procs`` load-generator processes, all
    starting and stopping at the same wall-clock times; their results merged."""
    start = time.time() + 1.0 + 0.2 * procs
    shares = [clients // procs + (k < clients % procs) for k in range(procs)]
    firsts = [sum(shares[:k]) for k in range(procs)]
    with ProcessPoolExecutor(procs, mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = [
            pool.submit(_load_part, port, targets, cookie, first, n, start, start + seconds)
            for first, n in zip(firsts, shares, strict=True)
        ]
        merged: Results = {name: ([], 0) for name, _, _ in targets}
        for part in parts:
            for name, (times, errors) in part.result().items():
                merged[name] = (merged[name][0] + times, merged[name][1] + errors)
    return merged


def table(results: dict[str, tuple[list[float], int]], seconds: float) -> str:
    lines = [
        "| target | requests | req/s | p50 ms | p95 ms | p99 ms | errors | goal p95 < 200 ms, 0 errors |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, (times, errors) in results.items():
        ms = np.array(times) * 1000 if times else np.array([np.nan])
        p50, p95, p99 = np.percentile(ms, [50, 95, 99])
        met = "met" if p95 < 200 and errors == 0 else "not met"
        goal = met if name != "healthz (floor)" else "(reference)"
        lines.append(
            f"| {name} | {len(times)} | {len(times) / seconds:.1f} | {p50:.1f} | {p95:.1f} | {p99:.1f} | "
            f"{errors} | {goal} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--patients", type=int, default=10)
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="carelens serve --workers")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="carelens-bench-") as tmp:
        store, env = prepare(Path(tmp), args.patients)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "carelens.cli",
                "serve",
                "--port",
                str(port),
                "--store",
                str(store),
                "--workers",
                str(args.workers),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_healthy(base)
            bearer = {"Authorization": f"Bearer {env['BENCH_TOKEN']}"}
            pids = [p["id"] for p in httpx.get(f"{base}/api/patients", headers=bearer).json()["patients"]]
            cookies = login(base)
            started = time.perf_counter()
            rounds = 1 if args.workers == 1 else 6 * args.workers  # new connections: every process sees each patient
            for _ in range(rounds):  # each server process computes a summary once per input hash
                for pid in pids:
                    httpx.get(f"{base}/api/patients/{pid}/summary", headers=bearer, timeout=120)
                    httpx.get(f"{base}/patients/{pid}", headers={"Cookie": cookies}, timeout=120)
            warm = time.perf_counter() - started
            targets = [("summary API", f"/api/patients/{pid}/summary", bearer) for pid in pids]
            targets += [("patient page", f"/patients/{pid}", {}) for pid in pids]
            targets += [("healthz (floor)", "/healthz", {})]
            results = run_load(port, targets, args.clients, args.seconds, cookies, args.client_procs)
            verify = subprocess.run(
                [sys.executable, "-m", "carelens.cli", "audit", "verify"], env=env, capture_output=True, text=True
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(
        f"carelens serve --workers {args.workers}, {len(pids)} Synthea patients, {args.clients} concurrent "
        f"clients, {args.seconds:.0f} s; summaries warmed in {warm:.1f} s (real summariser, then cached by "
        f"input hash); every request authenticated and audited"
    )
    print()
    print(table(results, args.seconds))
    print()
    print(f"audit verify after the run: {(verify.stdout or verify.stderr).strip()}")


if __name__ == "__main__":
    main()
