"""Reading one patient's stored resources from the lake at lake size: the catalog's patient -> parts
map (``Lake.patient_resources``) beside a scan of every resource part (the query it replaced), and
the whole ``stored_record`` (what ``carelens ask`` and the workspace's ask read), on the same random
patients of each store, in one run.

    .venv/bin/python benchmarks/record_read.py --store DIR [--store DIR2 ...] [--patients 30]

Wall milliseconds (each read opens its own DuckDB connection, as a request does); the load average
is printed beside them. The first call of a store brings its catalog up to date (an older catalog
gets its map then): timed apart.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

import numpy as np

from carelens.record.load import stored_record
from carelens.store import Lake

SCAN = (
    "SELECT DISTINCT ON (resource_type, id, content_hash) resource_type, id, json FROM resources"
    " WHERE patient_id = ? ORDER BY resource_type, id"
)


def wall_ms(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, action="append", required=True)
    parser.add_argument("--patients", type=int, default=30)
    args = parser.parse_args()
    print("| store | patients in lake | catalog refresh ms | map: median / p95 ms | scan: median / p95 ms"
          " | stored_record: median / p95 ms | load |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for store in args.store:
        lake = Lake(store)
        refresh = wall_ms(lambda: lake.query("SELECT 1"))  # noqa: B023
        ids = lake.query("SELECT DISTINCT patient_id FROM patient_parts ORDER BY 1").column(0).to_pylist()
        pick = random.Random(0).sample(ids, min(args.patients, len(ids)))
        times: dict[str, list[float]] = {"map": [], "scan": [], "record": []}
        for pid in pick:  # alternating, so that drift falls on all three alike
            times["map"].append(wall_ms(lambda: lake.patient_resources(pid)))  # noqa: B023
            times["scan"].append(wall_ms(lambda: lake.query(SCAN, [pid])))  # noqa: B023
            times["record"].append(wall_ms(lambda: stored_record(pid, store)))  # noqa: B023
        cells = [f"{np.median(t):.0f} / {np.percentile(t, 95):.0f}" for t in times.values()]
        load = " ".join(f"{v:.1f}" for v in os.getloadavg())
        print(f"| {store.name} | {len(ids):,} | {refresh:.0f} | {' | '.join(cells)} | {load} |")


if __name__ == "__main__":
    main()
