"""Ingest speed: resources per second of carelens ingest vs the bare JSON parsing floor.

Run: ``.venv/bin/python benchmarks/ingest.py [--repeat N]``. The floor is reading and parsing
the same 40 Synthea bundles with orjson (the fastest JSON parser for Python), nothing else,
with the garbage collector on and off (the faster counts). Wall and CPU seconds are both shown:
on a machine shared with other work, CPU seconds are the steadier comparison. carelens ingest (the library
function, in this process) parses, normalises references, hashes, writes Parquet and refreshes
the DuckDB catalog into a fresh store each time. The command line (a new process, so Python
start-up and imports included) is timed once for information. Best of N runs each.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from carelens.core.config import shared_data_dir
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


def carelens_run(folder: Path, scratch: Path) -> tuple[float, float, int]:
    """Wall and CPU seconds (all threads of this process) of one ingest into a fresh store."""
    store = scratch / "store"
    shutil.rmtree(store, ignore_errors=True)
    wall, cpu = time.perf_counter(), time.process_time()
    result = ingest([folder], store)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
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
        for _ in range(args.repeat):  # interleaved, so both see the same machine load
            floors += [floor(files, True), floor(files, False)]
            runs.append(carelens_run(folder, scratch))
        cli = cli_run(folder, scratch)
    floor_wall, floor_cpu = min(f[0] for f in floors), min(f[1] for f in floors)
    run_wall, run_cpu = min(r[0] for r in runs), min(r[1] for r in runs)
    resources = runs[0][2]
    print(f"{len(files)} Synthea bundles, {size:.1f} MB, {resources} resources; best of {args.repeat}")
    print(f"{'':32}{'wall s':>9}{'resources/s':>13}{'x floor':>9}{'CPU s':>9}{'x floor':>9}")
    rows = [
        ("orjson parse (floor)", floor_wall, floor_cpu),
        ("carelens ingest (library)", run_wall, run_cpu),
        ("carelens ingest (CLI, 1 run)", cli, None),
    ]
    for name, wall, cpu in rows:
        cpu_cols = f"{cpu:9.3f}{cpu / floor_cpu:9.2f}" if cpu is not None else f"{'':>9}{'':>9}"
        print(f"{name:32}{wall:9.3f}{resources / wall:13,.0f}{wall / floor_wall:9.2f}{cpu_cols}")
    ratio = run_wall / floor_wall
    verdict = "met" if ratio <= 2 else "NOT met"
    print(f"goal: ingest within 2x of the floor -> wall {ratio:.2f}x, CPU {run_cpu / floor_cpu:.2f}x: {verdict}")


if __name__ == "__main__":
    main()
