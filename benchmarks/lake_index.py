"""The workspace's patient index (``LakeData``) at lake size: the CPU of a list page, a name
search, an MRN search and a patient lookup, the process's memory (RSS) with the index open, what
opening costs (first build, or reuse of the index file by another worker), pages by offset
and by keyset (``after`` the row before the page) and what one committed batch of 100
patients costs to take in.

    .venv/bin/python benchmarks/lake_index.py --store DIR [--repeat 2000]

``DIR``: a store with ``carelens run`` outputs (written to: a batch is committed). Run it once
with the code before a change on ``PYTHONPATH`` and once after, on copies of the same store, and
write ``cat /proc/loadavg`` beside the numbers (CPU time, so little moved by load).
"""

from __future__ import annotations

import argparse
import random
import resource
import time
from pathlib import Path

from carelens.run import OutputStore
from carelens.run.index import index_row
from carelens.server.lake_data import LakeData


def rss_mb() -> float:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024


def cpu_ms(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    start = time.process_time()
    for _ in range(repeat):
        fn()
    return (time.process_time() - start) * 1000 / repeat


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    import duckdb  # noqa: F401  (imported before the baseline: both versions load it)
    import pyarrow.parquet  # noqa: F401

    base = rss_mb()
    data = LakeData(args.store)
    start = time.process_time()
    total = data.search("", limit=50)[1]
    print(
        f"patients {total}; first open {(time.process_time() - start) * 1000:.0f} ms CPU; "
        f"RSS +{rss_mb() - base:.1f} MB (peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)"
    )
    start = time.process_time()
    other = LakeData(args.store)
    other.search("", limit=50)
    print(f"second reader open {(time.process_time() - start) * 1000:.0f} ms CPU")
    rows = data.search("", limit=total)[0]
    assert data.search("", limit=50, after=rows[total - 51].id)[0] == data.search("", limit=50, offset=total - 50)[0]
    rng = random.Random(0)
    picks = [rng.choice(rows) for _ in range(50)]
    i = iter(range(10**9))
    checks = {
        "page (offset 0)": lambda: data.search("", limit=50),
        "page (middle)": lambda: data.search("", limit=50, offset=total // 2),
        "page (last)": lambda: data.search("", limit=50, offset=total - 50),
        "page after (mid)": lambda: data.search("", limit=50, after=rows[total // 2 - 1].id),
        "page after (last)": lambda: data.search("", limit=50, after=rows[total - 51].id),
        "name search": lambda: data.search(picks[next(i) % 50].name.split()[-1][1:5]),
        "MRN search": lambda: data.search(picks[next(i) % 50].mrn or "x"),
        "patient lookup": lambda: data.patient(picks[next(i) % 50].id),
    }
    time.sleep(2.1)  # past the window in which the manifests folder is listed on each call
    for name, fn in checks.items():
        print(f"{name:16s} {cpu_ms(fn, args.repeat):.3f} ms CPU")
    print(f"RSS after the queries +{rss_mb() - base:.1f} MB")
    ids = [f"bench-{total}-{n}" for n in range(100)]  # new patients, whatever ran before
    new = [(pid, "h" + pid, {"resourceType": "Patient", "id": pid, "birthDate": "1970-01-01",
                             "name": [{"given": ["Bench"], "family": pid}]}) for pid in ids]  # fmt: skip
    entries = [{"patient": p[0], "input_hash": p[1], "status": "done", "reason": None} for p in new]
    with OutputStore(args.store).writer() as writer:
        writer.commit({"patient_index": [index_row(*p) for p in new]}, entries)
    start = time.process_time()
    assert data.search("", limit=1)[1] == total + 100
    print(f"a committed batch of 100 taken in: {(time.process_time() - start) * 1000:.0f} ms CPU")


if __name__ == "__main__":
    main()
