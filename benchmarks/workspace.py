"""The workspace at lake size: 50 concurrent clients against ``carelens serve`` over a store whose
run outputs cover every patient of a large lake: patient list pages, searches by name and MRN,
summaries and patient pages, beside /healthz (the floor). Prints p50/p95/p99 beside the goal.

    .venv/bin/python benchmarks/workspace.py --store DIR [--clients 50] [--seconds 30] [--fill]

``DIR``: a store with an ingested lake and a ``carelens run`` over some or all of its patients
(``benchmarks/run.py --work`` leaves one). ``--fill``: each patient of the lake that the run has
not reached gets outputs copied from a processed patient (its summary and IPS under their id) and
its real patient-list row (name, MRN, birth date from its Patient resource), committed through
the run's own writer and compacted, so the list and every summary cover the whole lake. (The data
layer's cost depends on the rows and parts, not on what a summary says.) Goal (#16): p95 < 200 ms
at 50 clients with 10,000 patients. The HTTP client and the server share the machine's cores
(the client of ``benchmarks/server.py``: lean asyncio processes, one keep-alive connection each).
The server's CPU time per request is printed too: unlike the latencies, it does not depend on
what else the machine runs.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from carelens.run import OutputStore
from carelens.run.index import index_row
from carelens.store import Lake
from run import proc_tree
from server import cli, free_port, run_load, table, wait_healthy

USER, PASSWORD = "bench", "a long load-test passphrase"


def fill(store: Path, batch: int = 500) -> int:
    """Outputs for every patient of the lake the run has not reached (see the module doc)."""
    outputs = OutputStore(store)
    done = outputs.state()
    if not done:
        raise SystemExit("no run outputs in this store: carelens run first")
    lake = Lake(store)
    table = lake.query("SELECT DISTINCT ON (id) id, json FROM resources WHERE resource_type = 'Patient' ORDER BY id")
    todo = [(pid, raw) for pid, raw in zip(*(table.column(i).to_pylist() for i in range(2)), strict=True)
            if pid not in done]  # fmt: skip
    template_id = next(iter(done))
    import duckdb

    sql = outputs.current_sql("outputs", "kind, key, model, content_hash, json")
    rows = duckdb.sql(f"{sql} WHERE patient_id = ? AND kind IN ('summary', 'ips')", params=[template_id]).fetchall()
    with outputs.writer() as writer:
        for start in range(0, len(todo), batch):
            part = todo[start : start + batch]
            out: dict[str, list[tuple[object, ...]]] = {"outputs": [], "patient_index": []}
            for pid, raw in part:
                for kind, key, model, digest, text in rows:
                    out["outputs"].append((pid, "filled", kind, key, model, digest, text.replace(template_id, pid)))
                out["patient_index"].append(index_row(pid, "filled", orjson.loads(raw)))
            entries = [{"patient": pid, "input_hash": "filled", "status": "done", "reason": None} for pid, _ in part]
            writer.commit(out, entries)
        outputs.compact()
    return len(todo)


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and the processes below it."""
    return sum(cpu for _, cpu in proc_tree(pid).values())


def login(base: str) -> str:
    """A session cookie from the login form, as a browser gets one."""
    with httpx.Client(base_url=base) as client:
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
        assert token
        form = {"username": USER, "password": PASSWORD, "csrf_token": token.group(1)}
        r = client.post("/login", data=form, headers={"Origin": base})
        assert r.status_code == 303, r.status_code
        return "; ".join(f"{k}={v}" for k, v in client.cookies.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="carelens serve --workers")
    parser.add_argument("--fill", action="store_true")
    args = parser.parse_args()
    store = args.store.absolute()
    if args.fill:
        started = time.perf_counter()
        print(f"filled {fill(store)} patients in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    env = {**os.environ, "CARELENS_STORE": str(store), "CARELENS_PROGRESS": "0"}
    env.pop("CARELENS_DB_URL", None)
    subprocess.run(
        [sys.executable, "-m", "carelens.cli", "users", "add", USER, "--role", "clinician"],
        input=PASSWORD + "\n",
        text=True,
        env=env,
        capture_output=True,
    )  # an existing user is fine
    bearer = {"Authorization": f"Bearer {cli(env, 'users', 'token', USER)}"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "carelens.cli", "serve", "--port", str(port), "--store", str(store)]
    server = subprocess.Popen([*cmd, "--workers", str(args.workers)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    load_before = os.getloadavg()[0]
    try:
        wait_healthy(base, 600)
        first = httpx.get(f"{base}/api/patients?limit=1000", headers=bearer, timeout=120).json()
        assert "total" in first, first
        total, rows = first["total"], first["patients"]
        rng = random.Random(0)
        sample = rng.sample(rows, min(40, len(rows)))
        cookies = login(base)
        targets = []
        for i, row in enumerate(sample):
            targets.append(("list page (50)", f"/api/patients?limit=50&offset={rng.randrange(0, max(1, total - 50))}",
                            bearer))  # fmt: skip
            targets.append(("search name", f"/api/patients?q={row['name'].split()[-1][:5]}", bearer))
            targets.append(("search MRN", f"/api/patients?q={row['mrn']}", bearer))
            targets.append(("list page HTML (100)", f"/patients?offset={rng.randrange(0, max(1, total - 100))}", {}))
            targets.append(("summary API", f"/api/patients/{row['id']}/summary", bearer))
            targets.append(("patient page", f"/patients/{row['id']}", {}))
            if i % 5 == 0:
                targets.append(("healthz (floor)", "/healthz", {}))
        for _, path, headers in targets:  # each server process opens its data once before the clock
            for _ in range(2 * args.workers):
                httpx.get(base + path, headers={**headers, "Cookie": cookies}, timeout=120)
        cpu_before = tree_cpu(server.pid)
        results = run_load(port, targets, args.clients, args.seconds, cookies, args.client_procs)
        cpu = tree_cpu(server.pid) - cpu_before
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"carelens serve --workers {args.workers}, {total} patients in the list, {args.clients} concurrent clients,"
          f" {args.seconds:.0f} s; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
          f" ({os.cpu_count()} cores)\n")  # fmt: skip
    print(table(results, args.seconds))
    served = sum(len(times) for times, _ in results.values())
    print(f"\nserver CPU: {cpu:.1f} s for {served} requests = {1000 * cpu / max(served, 1):.2f} ms a request"
          f" (user + system of the server's processes; the load generator's not counted)")  # fmt: skip


if __name__ == "__main__":
    main()
