"""Workspace under load: 50 concurrent clients on loopback against the patient summary API and
the patient page for 30 s, side by side with /healthz (the floor: the same server and HTTP
stack doing no work). Prints requests per second, p50/p95/p99 latency and errors per target.

    .venv/bin/python benchmarks/server.py [--clients 50] [--seconds 30] [--patients 10]

The store is built in a temporary folder from the Synthea bundles of the shared data (real
summaries from ``carelens.record.summarize``, cached by input hash after the warm-up); every
request is authenticated (bearer token or session cookie) and audited, as in production.
Goal: p95 < 200 ms with zero errors on the 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from carelens.core.config import shared_data_dir

PASSWORD = "benchmark password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def login(base: str) -> httpx.Cookies:
    with httpx.Client(base_url=base) as client:
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
        assert token
        r = client.post("/login", data={"username": "bench", "password": PASSWORD, "csrf_token": token.group(1)})
        assert r.status_code == 303, r.status_code
        return client.cookies


async def run_load(
    base: str, targets: list[tuple[str, str, dict[str, str]]], clients: int, seconds: float, cookies: httpx.Cookies
) -> dict[str, tuple[list[float], int]]:
    results: dict[str, tuple[list[float], int]] = {name: ([], 0) for name, _, _ in targets}
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def worker(n: int, client: httpx.AsyncClient) -> None:
        i = n
        while time.perf_counter() < stop:
            name, path, headers = targets[i % len(targets)]
            i += 1
            start = time.perf_counter()
            try:
                r = await client.get(path, headers=headers)
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            took = time.perf_counter() - start
            times, errors = results[name]
            if ok:
                times.append(took)
            else:
                results[name] = (times, errors + 1)

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30, cookies=cookies) as client:
        await asyncio.gather(*(worker(n, client) for n in range(clients)))
    return results


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
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            bearer = {"Authorization": f"Bearer {env['BENCH_TOKEN']}"}
            pids = [p["id"] for p in httpx.get(f"{base}/api/patients", headers=bearer).json()["patients"]]
            cookies = login(base)
            started = time.perf_counter()
            for pid in pids:  # the server computes each summary once per input hash
                httpx.get(f"{base}/api/patients/{pid}/summary", headers=bearer, timeout=120)
            warm = time.perf_counter() - started
            targets = [("summary API", f"/api/patients/{pid}/summary", bearer) for pid in pids]
            targets += [("patient page", f"/patients/{pid}", {}) for pid in pids]
            targets += [("healthz (floor)", "/healthz", {})]
            results = asyncio.run(run_load(base, targets, args.clients, args.seconds, cookies))
            verify = subprocess.run(
                [sys.executable, "-m", "carelens.cli", "audit", "verify"], env=env, capture_output=True, text=True
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(
        f"carelens serve (one process), {len(pids)} Synthea patients, {args.clients} concurrent "
        f"clients, {args.seconds:.0f} s; summaries warmed in {warm:.1f} s (real summariser, then cached by "
        f"input hash); every request authenticated and audited"
    )
    print()
    print(table(results, args.seconds))
    print()
    print(f"audit verify after the run: {(verify.stdout or verify.stderr).strip()}")


if __name__ == "__main__":
    main()
