"""``carelens run`` benchmark: N demo patients, generate + ingest + run, one process beside Ray.

Run: .venv/bin/python benchmarks/run.py [--sizes 1000 10000] [--workers 2] [--run-limit 1000] [--work DIR]
         [--engines local ray] [--reuse-store]
Each step runs as its own ``carelens`` command; its peak memory is the largest sum of the RSS of
the command's process tree (Ray's raylet and workers included), sampled every 0.2 s, beside it
the largest sum of their proportional anonymous and shared memory, sampled every 5 s (heap
and shared memory such as Ray's object store, a page shared with a forked helper counted once;
library code and mapped files left out, as other programs share them: the memory the command
holds), and the load average is read before and after it. **CPU seconds** of a step: user +
system of the whole process tree, the larger of ``getrusage(RUSAGE_CHILDREN)`` (every process the
command waited for) and the sum over every process seen in the tree of its last sampled CPU time
(Ray's daemons, which are not waited for, up to their last 0.2 s). Unlike wall time it hardly
moves with what else the machine runs, so per-patient CPU is the comparison to read on a shared
box.
The run step runs once per engine, each on its own copy of the same ingested lake:
``--engine local`` and ``--engine ray --workers N`` (embedded Ray), which must give the same
``outputs_digest``; the speed-up is given over the whole command and from its first committed
batch on (the run's own "K/N patients done" lines), which leaves out the start-up of each;
``steady``: CPU ms a patient from the first batch to the last (the tree's CPU read at each).
**By process**: each run's CPU seconds per process of its tree (the driver, Ray's daemons, its
workers), in all and up to the first batch, and per patient after it; beside them this sampler's
own CPU, which the command's processes do not have while it runs; the cores a run kept busy from
its first batch to its last, and the seconds after its last batch (compaction, digest, shut-down).
``--run-limit M``: each run processes M of the lake's patients (``carelens run --limit``), so
that the per-patient cost of the same M patients is compared in a lake of N. ``--work DIR``
keeps the cohorts and stores there; a cohort already generated there is reused (its generate
step is then not measured), and with ``--reuse-store`` the ingested store too (only the run
steps are measured). No image model is registered (training is ``benchmarks/imaging.py``'s
subject): the per-patient work is the summary and IPS document, PGx and ACMG findings for the
patient's VCF and the research copy with its leak audit.
Goals (#16): Ray with 2 workers >= 1.8x one process; per-patient cost at the larger size within
1.2x of the smaller; peak memory flat.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

RAY_GOAL = 1.8
SCALE_GOAL = 1.2
PAGE = os.sysconf("SC_PAGE_SIZE")
HELD = ("Pss_Anon:", "Pss_Shmem:")
# a process of a run's tree by its program and script (first match): Ray's daemons and workers
ROLES = (("ray::", "workers"), ("default_worker.py", "workers"), ("dashboard/agent.py", "dashboard agent"),
         ("runtime_env/agent", "runtime_env agent"), ("log_monitor", "log_monitor"), ("monitor.py", "monitor"),
         ("dashboard.py", "dashboard"), ("gcs_server", "gcs_server"), ("raylet", "raylet"))  # fmt: skip


def role(pid: int, driver: int) -> str:
    """What the process ``pid`` of a run's tree is (:data:`ROLES`; the command itself: driver)."""
    if pid == driver:
        return "driver"
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "other"
    text = b" ".join(args[:3]).decode(errors="replace")  # the program and its script, not the options
    return next((name for key, name in ROLES if key in text), "other")


def proc_stats(pids: Iterable[int]) -> dict[int, tuple[int, float]]:
    """Resident bytes and CPU seconds (user + system) of these processes (those still running)."""
    tick, usage = os.sysconf("SC_CLK_TCK"), {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        usage[pid] = (int(fields[21]) * PAGE, (int(fields[11]) + int(fields[12])) / tick)
    return usage


def proc_tree(pid: int) -> dict[int, tuple[int, float]]:
    """:func:`proc_stats` of ``pid`` and every process below it (a scan of /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [c for c, p in parents.items() if p == parent and c not in tree]
        tree.update(children)
        frontier += children
    return proc_stats(tree)


def held(pids: Iterable[int]) -> int:
    """Proportional anonymous and shared memory of these processes, in bytes (``Pss_Anon`` +
    ``Pss_Shmem``): a forked helper's copy-on-write pages counted once in all, unlike the RSS sum,
    and no library pages, whose share moves with what else the machine runs."""
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        total += sum(int(line.split()[1]) * 1024 for line in text.splitlines() if line.startswith(HELD))
    return total


def children_cpu() -> float:
    """CPU seconds of this process's finished children and of the descendants they waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Step:
    """One command: wall and CPU seconds, peak memory of its process tree, the load around it."""

    wall: float
    cpu: float
    peak: int
    peak_held: int
    load: str
    count: int = 0  # patients it handled
    done: list[tuple[float, float, int]] = field(default_factory=list)  # per batch: wall s, CPU s, patients done
    roles: dict[str, tuple[float, float]] = field(default_factory=dict)  # CPU s by role: at the first batch, in all
    sampler: float = 0.0  # CPU s of this benchmark's own process while it measured the command

    def steady(self) -> tuple[float, float, float] | None:
        """From the first committed batch to the last: seconds before it, patients a second and CPU
        seconds a patient (what the start-up and the lake-sized fixed costs leave out)."""
        if len(self.done) < 2 or self.done[-1][0] <= self.done[0][0]:
            return None
        (t0, c0, n0), (t1, c1, n1) = self.done[0], self.done[-1]
        return t0, (n1 - n0) / (t1 - t0), (c1 - c0) / (n1 - n0)


def step(args: list[str], env: dict[str, str]) -> tuple[Step, str]:
    """Measure one ``carelens`` command (see the module doc); its stdout too."""
    peak, peak_held, seen, roles = 0, 0, {}, {}
    first: dict[int, float] = {}  # CPU s of each process at the first committed batch
    load = f"{os.getloadavg()[0]:.1f}"
    cpu_before, started, own = children_cpu(), time.perf_counter(), time.process_time()
    proc = subprocess.Popen([sys.executable, "-m", "carelens.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    done = threading.Event()
    progress: list[tuple[float, float, int]] = []

    def watch() -> None:  # ``carelens run`` says "run: K/N patients done" after each committed batch
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith("run: ") and line.rstrip().endswith(" patients done"):
                tree = proc_tree(proc.pid)
                cpu = sum(cpu for _, cpu in tree.values())
                if not progress:
                    first.update({p: c for p, (_, c) in tree.items()})
                progress.append((time.perf_counter() - started, cpu, int(line[5:].split("/")[0])))

    def sample() -> None:
        nonlocal peak, peak_held
        members: Iterable[int] = ()
        for tick in itertools.count():
            if done.is_set():
                return
            # new processes looked for each second, the known ones read each tick: the sampler takes
            # cores from the command (a scan of /proc ~3 ms; smaps of a 1.7 GB process ~30 ms)
            tree = proc_tree(proc.pid) if tick % 5 == 0 else proc_stats(members)
            members = list(tree)
            peak = max(peak, sum(rss for rss, _ in tree.values()))
            if tick % 25 == 0:
                peak_held = max(peak_held, held(tree))
            seen.update({p: cpu for p, (_, cpu) in tree.items()})
            roles.update({p: role(p, proc.pid) for p in tree if p not in roles})
            done.wait(0.2)

    threads = [threading.Thread(target=sample, daemon=True), threading.Thread(target=watch, daemon=True)]
    for thread in threads:
        thread.start()
    assert proc.stdout is not None
    out = proc.stdout.read()
    proc.wait()
    done.set()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 3):
        raise SystemExit(f"carelens {args[0]} failed ({proc.returncode})")
    cpu = max(children_cpu() - cpu_before, sum(seen.values()))
    by_role: dict[str, tuple[float, float]] = {}
    for pid, name in roles.items():
        before, total = by_role.get(name, (0.0, 0.0))
        by_role[name] = (before + first.get(pid, 0.0), total + seen.get(pid, 0.0))
    sampler = time.process_time() - own
    load = f"{load}->{os.getloadavg()[0]:.1f}"
    return Step(wall, cpu, peak, peak_held, load, done=progress, roles=by_role, sampler=sampler), out


def one_size(n: int, args: argparse.Namespace, root: Path) -> dict[str, Step]:
    """The steps of one lake size, by name."""
    env = {**os.environ, "CARELENS_PROGRESS": "0"}
    cohort, store = root / f"cohort-{n}", root / f"store-{n}"
    results: dict[str, Step] = {}
    if not (cohort / "planted.json").is_file():
        results["generate"], _ = step(["demo", "--generate-only", "--patients", str(n), "--out", str(cohort)], env)
        results["generate"].count = n
    if not (args.reuse_store and (store / "lake").is_dir()):
        shutil.rmtree(store, ignore_errors=True)
        folders = [str(cohort / name) for name in ("fhir", "dicom", "genomics")]  # ingest skips the ClinVar extract
        results["ingest"], _ = step(["ingest", *folders, "--store", str(store)], env)
        results["ingest"].count = n
    from carelens.privacy import write_secret

    secret = root / f"secret-{n}.key"
    if not secret.exists():
        write_secret(secret)
    common = ["--clinvar", str(cohort / "genomics" / "clinvar-demo.vcf"), "--secret-file", str(secret),
              "--format", "json"] + (["--limit", str(args.run_limit)] if args.run_limit else [])  # fmt: skip
    digests = {}
    for engine in args.engines:  # each on its own copy of the ingested lake: both start from the same state
        where = root / f"store-{n}-{engine}"
        shutil.rmtree(where, ignore_errors=True)
        shutil.copytree(store, where)
        extra = ["--workers", str(args.workers)] if engine == "ray" else []
        result, out = step(["run", "--store", str(where), "--engine", engine, *extra, *common], env)
        shutil.rmtree(where)
        report = json.loads(out)
        assert report["processed"] == min(n, args.run_limit or n), report
        digests[engine] = report["outputs_digest"]
        result.count = report["processed"]
        results[f"run {engine}"] = result
        reasons = sorted({f["reason"].split(":")[0] + ": " + f["reason"].split(":")[1] for f in report["failed"]})
        print(f"  {n} run {engine}: {result.wall:.1f} s, {result.cpu:.1f} CPU s, {report['processed']} patients, "
              f"{len(report['failed'])} with a failed step {reasons}, outputs_digest {report['outputs_digest']}",
              file=sys.stderr)  # fmt: skip
    assert len(set(digests.values())) <= 1, "the engines disagree"
    return results


def ratio_line(label: str, value: float, goal: float | str, met: bool | str = "") -> str:
    goal_text = f"{goal:.1f}" if isinstance(goal, float) else goal
    return f"{label:<52} {value:>8.2f} {goal_text:>8}  {met}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[60, 240])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--engines", nargs="+", choices=["local", "ray"], default=["local", "ray"])
    parser.add_argument("--run-limit", type=int, default=None, help="patients each run processes (default: all)")
    parser.add_argument("--work", type=Path, default=None, help="keep cohorts and stores here (reused)")
    parser.add_argument("--reuse-store", action="store_true", help="reuse an ingested store in --work (no ingest)")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")
    table: dict[int, dict[str, Step]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = args.work or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        for n in args.sizes:
            table[n] = one_size(n, args, root)
            print(f"size {n} done; load average {os.getloadavg()[0]:.2f}", file=sys.stderr)
    print(f"\n{'lake':>6} {'step':<10} {'patients':>8} {'wall s':>8} {'patients/s':>10} {'ms/patient':>10} "
          f"{'CPU s':>8} {'CPU ms/pt':>9} {'steady':>7} {'peak MB':>8} {'held MB':>7} {'load':>10}")  # fmt: skip
    for n, steps in table.items():
        for name, s in steps.items():
            steady = f"{1000 * st[2]:.0f}" if (st := s.steady()) else "-"
            print(f"{n:>6} {name:<10} {s.count:>8} {s.wall:>8.1f} {s.count / s.wall:>10.2f} "
                  f"{1000 * s.wall / s.count:>10.0f} {s.cpu:>8.1f} {1000 * s.cpu / s.count:>9.0f} {steady:>7} "
                  f"{s.peak / 2**20:>8.0f} {s.peak_held / 2**20:>7.0f} {s.load:>10}")  # fmt: skip
    print(f"\n{'lake':>6} {'run':<10} {'process':<18} {'CPU s':>8} {'to 1st batch':>12} {'after, ms/pt':>12}")
    for n, steps in table.items():
        for name, s in steps.items():
            after = s.count - (s.done[0][2] if s.done else 0)
            for what, (before, total) in sorted(s.roles.items(), key=lambda r: -r[1][1]):
                per = f"{1000 * (total - before) / after:.1f}" if after else "-"
                print(f"{n:>6} {name:<10} {what:<18} {total:>8.1f} {before:>12.1f} {per:>12}")
            print(f"{n:>6} {name:<10} {'(this sampler)':<18} {s.sampler:>8.1f}")
    print(f"\n{'measure':<52} {'result':>8} {'goal':>8}  met")
    for n, steps in table.items():
        if "run local" in steps and "run ray" in steps:
            local, ray = steps["run local"], steps["run ray"]
            speedup = local.wall / ray.wall
            print(ratio_line(f"Ray {args.workers} workers / one process (wall), lake {n}", speedup, RAY_GOAL,
                             speedup >= RAY_GOAL))  # fmt: skip
            if (a := local.steady()) and (b := ray.steady()):
                speedup = b[1] / a[1]
                print(ratio_line(f"  from the first batch on (start-up {a[0]:.0f} s vs {b[0]:.0f} s)", speedup,
                                 RAY_GOAL, speedup >= RAY_GOAL))  # fmt: skip
                print(ratio_line("  CPU a patient from the first batch on, Ray / one process", b[2] / a[2], "<= 1"))
                for what, st in (("one process", local), ("Ray", ray)):  # the cores it kept busy; after its last batch
                    (t0, c0, _), (t1, c1, _) = st.done[0], st.done[-1]
                    print(ratio_line(f"  cores busy from the first batch on, {what} (then {st.wall - t1:.1f} s)",
                                     (c1 - c0) / (t1 - t0), "-"))  # fmt: skip
            print(ratio_line(f"CPU a patient, Ray / one process, lake {n}", ray.cpu / local.cpu, "<= 1"))
    small, large = min(table), max(table)
    for name in ("ingest", "run local", "run ray"):
        if small != large and name in table[small] and name in table[large]:
            big, little = table[large][name], table[small][name]
            for what, b, s in (("wall", big.wall, little.wall), ("CPU", big.cpu, little.cpu)):
                ratio = (b / big.count) / (s / little.count)
                label = f"per-patient {what} {name}, lake {large} vs {small}"
                print(ratio_line(label, ratio, SCALE_GOAL, ratio <= SCALE_GOAL))
            if (a := little.steady()) and (b := big.steady()):
                label = f"  CPU a patient from the first batch on, {large} vs {small}"
                print(ratio_line(label, b[2] / a[2], SCALE_GOAL, b[2] / a[2] <= SCALE_GOAL))
    for name in table[small]:
        if small != large and name in table[large]:
            big, little = table[large][name], table[small][name]
            print(ratio_line(f"peak memory {name}, lake {large} vs {small}", big.peak / max(little.peak, 1), "flat"))
            ratio = big.peak_held / max(little.peak_held, 1)
            print(ratio_line(f"  peak held (anonymous) {name}, lake {large} vs {small}", ratio, "flat"))
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
