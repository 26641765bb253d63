"""Ingest speed: resources per second of carelens ingest vs the bare JSON parsing floor.

Run: ``.venv/bin/python benchmarks/ingest.py [--repeat N]``. The floor is reading and parsing
the same 40 Synthea bundles with orjson (the fastest JSON parser for Python), nothing else,
with the garbage collector on and off (the faster counts). carelens ingest (the library
function, in this process) parses, normalises references, hashes, writes Parquet and refreshes
the DuckDB catalog into a fresh store each time: as it runs by default (one process per CPU
core, the FHIR files shared out to forked helpers) and in this process alone. The goal is on
wall time; CPU seconds count every process and thread (helpers included), so they show the
work done, not the time taken. The command line (a new process, so Python start-up and
imports included) is timed once for information. Best of N runs each.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from carelens.core.config import shared_data_dir
from carelens.core.forked import can_fork, spare_cores
from carelens.ingest import ingest


def floor(files: list[Path], collect: bool) -> tuple[float, float]:
    """Wall and CPU seconds to read and parse every file with orjson."""
    if not collect:
        gc.disable()
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        for path in files:
            orjson.loads(path.read_bytes())
        return time.perf_counter() - wall, time.process_time() - cpu
    finally:
        gc.enable()


def cpu_seconds() -> float:
    """CPU seconds of this process and of its ended children (the helper processes)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def carelens_run(folder: Path, scratch: Path, processes: int | None) -> tuple[float, float, int]:
    """Wall and CPU seconds (all processes and threads) of one ingest into a fresh store."""
    store = scratch / "store"
    shutil.rmtree(store, ignore_errors=True)
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = ingest([folder], store, processes=processes)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    resources = sum(v for k, v in result.done.items() if k not in ("notes", "dicom", "variants"))
    return wall, cpu, resources


def cli_run(folder: Path, scratch: Path) -> float:
    store = scratch / "cli-store"
    shutil.rmtree(store, ignore_errors=True)
    start = time.perf_counter()
    code = "from carelens.cli import main; main()"
    subprocess.run(
        [sys.executable, "-c", code, "ingest", str(folder), "--store", str(store)], check=True, capture_output=True
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    data = shared_data_dir()
    if data is None:
        sys.exit("shared data not found (set CARELENS_SHARED_DATA)")
    folder = data / "fhir" / "synthea-r4"
    files = sorted(folder.glob("*.json"))
    size = sum(p.stat().st_size for p in files) / 1e6
    with tempfile.TemporaryDirectory(prefix="carelens-bench-") as tmp:
        scratch = Path(tmp)
        floor(files, True)  # warm the page cache
        floors: list[tuple[float, float]] = []
        runs: list[tuple[float, float, int]] = []
        alone: list[tuple[float, float, int]] = []
        for _ in range(args.repeat):  # interleaved, so all see the same machine load
            floors += [floor(files, True), floor(files, False)]
            runs.append(carelens_run(folder, scratch, None))
            alone.append(carelens_run(folder, scratch, 1))
        cli = cli_run(folder, scratch)
    floor_wall, floor_cpu = min(f[0] for f in floors), min(f[1] for f in floors)
    run_wall, run_cpu = min(r[0] for r in runs), min(r[1] for r in runs)
    resources = runs[0][2]
    processes = min(spare_cores() + 1, 4) if can_fork() else 1
    print(f"{len(files)} Synthea bundles, {size:.1f} MB, {resources} resources; best of {args.repeat}")
    print(f"{'':40}{'wall s':>9}{'resources/s':>13}{'x floor':>9}{'CPU s':>9}{'x floor':>9}")
    rows = [
        ("orjson parse (floor)", floor_wall, floor_cpu),
        (f"carelens ingest (library, {processes} processes)", run_wall, run_cpu),
        ("carelens ingest (library, 1 process)", min(r[0] for r in alone), min(r[1] for r in alone)),
        ("carelens ingest (CLI, 1 run)", cli, None),
    ]
    for name, wall, cpu in rows:
        cpu_cols = f"{cpu:9.3f}{cpu / floor_cpu:9.2f}" if cpu is not None else f"{'':>9}{'':>9}"
        print(f"{name:40}{wall:9.3f}{resources / wall:13,.0f}{wall / floor_wall:9.2f}{cpu_cols}")
    ratio = run_wall / floor_wall
    verdict = "met" if ratio <= 2 else "NOT met"
    print(f"goal: ingest within 2x of the floor (wall time) -> {ratio:.2f}x: {verdict}")


if __name__ == "__main__":
    main()
