"""Ingest speed: resources per second of carelens ingest vs the bare JSON parsing floor.

Run: ``.venv/bin/python benchmarks/ingest.py [--repeat N]``. The floor is reading and parsing
the same 40 Synthea bundles with orjson (the fastest JSON parser for Python), nothing else,
with the garbage collector on and off (the faster counts). carelens ingest (the library
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


def floor(files: list[Path], collect: bool) -> float:
    """Seconds to read and parse every file with orjson."""
    if not collect:
        gc.disable()
    try:
        start = time.perf_counter()
        for path in files:
            orjson.loads(path.read_bytes())
        return time.perf_counter() - start
    finally:
        gc.enable()


def carelens_run(folder: Path, scratch: Path) -> tuple[float, int]:
    store = scratch / "store"
    shutil.rmtree(store, ignore_errors=True)
    start = time.perf_counter()
    result = ingest([folder], store)
    seconds = time.perf_counter() - start
    resources = sum(v for k, v in result.done.items() if k not in ("notes", "dicom", "variants"))
    return seconds, resources


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
        floors, runs = [], []
        for _ in range(args.repeat):  # interleaved, so both see the same machine load
            floors.append(min(floor(files, True), floor(files, False)))
            runs.append(carelens_run(folder, scratch))
        cli = cli_run(folder, scratch)
    best_floor = min(floors)
    best_run, resources = min(runs)
    print(f"{len(files)} Synthea bundles, {size:.1f} MB, {resources} resources; best of {args.repeat}")
    print(f"{'':34}{'seconds':>10}{'resources/s':>14}{'x floor':>10}")
    rows = [
        ("orjson parse (floor)", best_floor),
        ("carelens ingest (library)", best_run),
        ("carelens ingest (CLI, 1 run)", cli),
    ]
    for name, seconds in rows:
        print(f"{name:34}{seconds:10.3f}{resources / seconds:14,.0f}{seconds / best_floor:10.2f}")
    ratio = best_run / best_floor
    print(f"goal: ingest within 2x of the floor -> {ratio:.2f}x, {'met' if ratio <= 2 else 'NOT met'}")


if __name__ == "__main__":
    main()
