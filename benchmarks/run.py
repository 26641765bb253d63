"""``carelens run`` benchmark: N demo patients, generate + ingest + run, one process beside Ray.

Run: .venv/bin/python benchmarks/run.py [--sizes 1000 10000] [--workers 2] [--run-limit 1000] [--work DIR]
Each step runs as its own ``carelens`` command; its peak memory is the largest sum of the RSS of
the command's process tree (Ray's raylet and workers included), sampled every 0.2 s, and the
load average is read before and after it. The run step runs twice on copies of the same ingested
lake: ``--engine local`` and ``--engine ray --workers N`` (embedded Ray), which must give the same
``outputs_digest``. ``--run-limit M``: each run processes M of the lake's patients (``carelens
run --limit``), so that the per-patient cost of the same M patients is compared in a lake of N.
``--work DIR`` keeps the cohorts and stores there; a cohort already generated there is reused
(its generate step is then not measured). No image model is registered (training is
``benchmarks/imaging.py``'s subject): the per-patient work is the summary and IPS document, PGx
and ACMG findings for the patient's VCF and the research copy with its leak audit.
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


Step = tuple[float, int, str]  # wall s, peak bytes, load average before -> after


def step(args: list[str], env: dict[str, str]) -> tuple[float, int, str, str]:
    """Wall seconds, peak tree RSS, the load around it and stdout of one ``carelens`` command."""
    peak = 0
    load = f"{os.getloadavg()[0]:.1f}"
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
    return time.perf_counter() - started, peak, f"{load}->{os.getloadavg()[0]:.1f}", out


def one_size(n: int, workers: int, root: Path, limit: int | None) -> dict[str, tuple[Step, int]]:
    """Per step: (wall, peak, load) and how many patients it handled."""
    env = {**os.environ, "CARELENS_PROGRESS": "0"}
    cohort, store = root / f"cohort-{n}", root / f"store-{n}"
    results: dict[str, tuple[Step, int]] = {}
    if not (cohort / "planted.json").is_file():
        wall, peak, load, _ = step(["demo", "--generate-only", "--patients", str(n), "--out", str(cohort)], env)
        results["generate"] = ((wall, peak, load), n)
    if store.exists():
        shutil.rmtree(store)
    vcfs = [str(p) for p in sorted((cohort / "genomics").glob("*.vcf.gz"))]
    wall, peak, load, _ = step(["ingest", str(cohort / "fhir"), str(cohort / "dicom"), *vcfs, "--store", str(store)],
                               env)  # fmt: skip
    results["ingest"] = ((wall, peak, load), n)
    from carelens.privacy import write_secret

    secret = root / f"secret-{n}.key"
    if not secret.exists():
        write_secret(secret)
    common = ["--clinvar", str(cohort / "genomics" / "clinvar-demo.vcf"), "--secret-file", str(secret),
              "--format", "json"] + (["--limit", str(limit)] if limit else [])  # fmt: skip
    ray_store = root / f"store-{n}-ray"
    if ray_store.exists():
        shutil.rmtree(ray_store)
    shutil.copytree(store, ray_store)
    digests = {}
    for engine, where, extra in (("local", store, []), ("ray", ray_store, ["--workers", str(workers)])):
        wall, peak, load, out = step(["run", "--store", str(where), "--engine", engine, *extra, *common], env)
        report = json.loads(out)
        assert report["processed"] == min(n, limit or n), report
        digests[engine] = report["outputs_digest"]
        results[f"run {engine}"] = ((wall, peak, load), report["processed"])
        reasons = sorted({f["reason"].split(":")[0] + ": " + f["reason"].split(":")[1] for f in report["failed"]})
        print(f"  {n} run {engine}: {wall:.1f} s, {report['processed']} patients, {len(report['failed'])} with a"
              f" failed step {reasons}", file=sys.stderr)  # fmt: skip
    assert digests["local"] == digests["ray"], "the engines disagree"
    shutil.rmtree(ray_store)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[60, 240])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--run-limit", type=int, default=None, help="patients each run processes (default: all)")
    parser.add_argument("--work", type=Path, default=None, help="keep cohorts and stores here (reused)")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")
    table: dict[int, dict[str, tuple[Step, int]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = args.work or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        for n in args.sizes:
            table[n] = one_size(n, args.workers, root, args.run_limit)
            print(f"size {n} done; load average {os.getloadavg()[0]:.2f}", file=sys.stderr)
    print(f"\n{'lake':>6} {'step':<10} {'patients':>8} {'wall s':>8} {'patients/s':>10} {'ms/patient':>10} "
          f"{'peak MB':>8} {'load':>10}")  # fmt: skip
    for n, steps in table.items():
        for name, ((wall, peak, load), count) in steps.items():
            print(f"{n:>6} {name:<10} {count:>8} {wall:>8.1f} {count / wall:>10.2f} {1000 * wall / count:>10.0f} "
                  f"{peak / 2**20:>8.0f} {load:>10}")  # fmt: skip
    print(f"\n{'measure':<46} {'result':>8} {'goal':>8}  met")
    for n, steps in table.items():
        speedup = steps["run local"][0][0] / steps["run ray"][0][0]
        print(f"{f'Ray {args.workers} workers / one process, lake {n}':<46} {speedup:>8.2f} {RAY_GOAL:>8.1f}  "
              f"{speedup >= RAY_GOAL}")  # fmt: skip
    small, large = min(table), max(table)
    if small != large:
        for name in ("ingest", "run local", "run ray"):
            (big, nb), (little, nl) = table[large][name], table[small][name]
            ratio = (big[0] / nb) / (little[0] / nl)
            label = f"per-patient cost {name}, lake {large} vs {small}"
            print(f"{label:<46} {ratio:>8.2f} {SCALE_GOAL:>8.1f}  {ratio <= SCALE_GOAL}")
        for name in table[small]:
            if name in table[large]:
                ratio = table[large][name][0][1] / max(table[small][name][0][1], 1)
                print(f"{f'peak memory {name}, lake {large} vs {small}':<46} {ratio:>8.2f} {'flat':>8}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
