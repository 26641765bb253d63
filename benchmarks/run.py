"""``carelens run`` benchmark: N demo patients, generate + ingest + run, one process beside Ray.

Run: .venv/bin/python benchmarks/run.py [--sizes 60 240] [--workers 2]
Each step runs as its own ``carelens`` command; its peak memory is the largest sum of the RSS of
the command's process tree (Ray's raylet and workers included), sampled every 0.2 s. The run step
runs twice on copies of the same ingested lake: ``--engine local`` and ``--engine ray --workers
N`` (embedded Ray), which must give the same ``outputs_digest``. No image model is registered
(training is ``benchmarks/imaging.py``'s subject): the per-patient work is the summary and IPS
document, PGx and ACMG findings for the patient's VCF and the research copy with its leak audit.
Goals (#16): Ray with 2 workers >= 1.8x one process; per-patient cost at the larger size within
1.2x of the smaller; peak memory flat.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

RAY_GOAL = 1.8
SCALE_GOAL = 1.2


def tree_rss(pid: int) -> int:
    """Bytes of resident memory of ``pid`` and every process below it (from /proc)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        parents[int(entry.name)] = int(fields.get("PPid", "0").strip())
        rss[int(entry.name)] = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(rss.get(p, 0) for p in tree)


def step(args: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Wall seconds, peak tree RSS and stdout of one ``carelens`` command."""
    peak = 0
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "carelens.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(proc.pid))
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode not in (0, 3):
        raise SystemExit(f"carelens {args[0]} failed ({proc.returncode})")
    return time.perf_counter() - started, peak, out


def one_size(n: int, workers: int, root: Path) -> dict[str, tuple[float, int]]:
    env = {**os.environ, "CARELENS_PROGRESS": "0"}
    cohort, store = root / f"cohort-{n}", root / f"store-{n}"
    results: dict[str, tuple[float, int]] = {}
    wall, peak, _ = step(["demo", "--generate-only", "--patients", str(n), "--out", str(cohort), "--store",
                          str(store)], env)  # fmt: skip
    results["generate"] = (wall, peak)
    vcfs = [str(p) for p in sorted((cohort / "genomics").glob("*.vcf.gz"))]
    wall, peak, _ = step(["ingest", str(cohort / "fhir"), str(cohort / "dicom"), *vcfs, "--store", str(store)], env)
    results["ingest"] = (wall, peak)
    from carelens.privacy import write_secret

    secret = root / f"secret-{n}.key"
    write_secret(secret)
    common = ["--clinvar", str(cohort / "genomics" / "clinvar-demo.vcf"), "--secret-file", str(secret),
              "--format", "json"]  # fmt: skip
    ray_store = root / f"store-{n}-ray"
    shutil.copytree(store, ray_store)
    digests = {}
    for engine, where, extra in (("local", store, []), ("ray", ray_store, ["--workers", str(workers)])):
        wall, peak, out = step(["run", "--store", str(where), "--engine", engine, *extra, *common], env)
        report = json.loads(out)
        assert report["processed"] == report["patients"] == n, report
        digests[engine] = report["outputs_digest"]
        results[f"run {engine}"] = (wall, peak)
    assert digests["local"] == digests["ray"], "the engines disagree"
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[60, 240])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")
    table: dict[int, dict[str, tuple[float, int]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            table[n] = one_size(n, args.workers, Path(tmp))
            print(f"size {n} done; load average {os.getloadavg()[0]:.2f}", file=sys.stderr)
    print(f"\n{'patients':>8} {'step':<10} {'wall s':>8} {'patients/s':>11} {'ms/patient':>11} {'peak MB':>8}")
    for n, steps in table.items():
        for name, (wall, peak) in steps.items():
            print(f"{n:>8} {name:<10} {wall:>8.1f} {n / wall:>11.2f} {1000 * wall / n:>11.0f} {peak / 2**20:>8.0f}")
    print(f"\n{'measure':<46} {'result':>8} {'goal':>8}  met")
    for n, steps in table.items():
        speedup = steps["run local"][0] / steps["run ray"][0]
        print(f"{f'Ray {args.workers} workers / one process, {n} patients':<46} {speedup:>8.2f} {RAY_GOAL:>8.1f}  "
              f"{speedup >= RAY_GOAL}")  # fmt: skip
    small, large = min(table), max(table)
    if small != large:
        for engine in ("local", "ray"):
            ratio = (table[large][f"run {engine}"][0] / large) / (table[small][f"run {engine}"][0] / small)
            label = f"per-patient cost {large} vs {small}, {engine}"
            print(f"{label:<46} {ratio:>8.2f} {SCALE_GOAL:>8.1f}  {ratio <= SCALE_GOAL}")
        for name in table[small]:
            ratio = table[large][name][1] / max(table[small][name][1], 1)
            print(f"{f'peak memory {large} vs {small}, {name}':<46} {ratio:>8.2f} {'flat':>8}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
