"""Per-patient summary latency against record size, one core.

Runs ``carelens.record.summarize_record`` (sections, note NLP, reconciliation, citation
checker) on the 40 Synthea bundles and the 10-patient bulk NDJSON set (with notes), and prints
p50 / p95 / max per data set, per record-size bucket, and the largest record's time, side by
side for three note modes (no notes, newest 10 notes = the default, all notes) against the
goal (p95 < 300 ms for records up to 5,000 resources). Loading (parsing the files) is timed
apart. Writes a latency-vs-size plot next to the results.

    .venv/bin/python benchmarks/summary.py [--out benchmarks/results/summary_latency.png]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from carelens.core import shared_data_dir  # noqa: E402
from carelens.record import PatientRecord, load_record, load_records, summarize_record  # noqa: E402

GOAL_MS = 300.0
MODES = {"no notes": {"notes": False}, "newest 10 notes": {"note_limit": 10}, "all notes": {"note_limit": None}}
BUCKETS = [(0, 500), (501, 1000), (1001, 2000), (2001, 5000), (5001, 10**9)]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def time_summaries(records: list[PatientRecord], repeats: int = 3) -> dict[str, dict[str, list[float]]]:
    """Per mode: CPU and wall milliseconds per record (the best of ``repeats`` runs; one run when
    reading all notes, the slow mode). CPU time
    (``time.process_time``, one thread) is the one-core cost; wall time also holds the waits
    of a shared machine."""
    out: dict[str, dict[str, list[float]]] = {}
    for mode, kwargs in MODES.items():
        cpu, wall = [], []
        for record in records:
            best_cpu = best_wall = float("inf")
            for _ in range(repeats if kwargs.get("note_limit", 0) is not None else 1):
                start_wall, start_cpu = time.perf_counter(), time.process_time()
                summarize_record(record, **kwargs)
                best_cpu = min(best_cpu, time.process_time() - start_cpu)
                best_wall = min(best_wall, time.perf_counter() - start_wall)
            cpu.append(best_cpu * 1000)
            wall.append(best_wall * 1000)
        out[mode] = {"cpu": cpu, "wall": wall}
    return out


def report(name: str, records: list[PatientRecord], times: dict[str, dict[str, list[float]]]) -> list[str]:
    sizes = [r.size for r in records]
    notes = [len(r.notes) for r in records]
    big = max(range(len(records)), key=lambda i: sizes[i])
    lines = [
        f"\n## {name}: {len(records)} patients, {min(sizes)}-{max(sizes)} resources, "
        f"{min(notes)}-{max(notes)} notes each",
        "",
        "| mode | clock | p50 ms | p95 ms | max ms | largest record (resources, notes): ms | goal p95 < 300 ms |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for mode, clocks in times.items():
        for clock, ms in clocks.items():
            ok = "met" if pct(ms, 0.95) < GOAL_MS else "NOT met"
            lines.append(
                f"| {mode} | {clock} | {statistics.median(ms):.0f} | {pct(ms, 0.95):.0f} | {max(ms):.0f} | "
                f"({sizes[big]}, {notes[big]}): {ms[big]:.0f} | {ok} |"
            )
    lines += [
        "",
        "| record size | n | " + " | ".join(f"{m} p95 ms (cpu / wall)" for m in times) + " |",
        "|---|---:|" + "---:|" * len(times),
    ]
    for lo, hi in BUCKETS:
        idx = [i for i, s in enumerate(sizes) if lo <= s <= hi]
        if idx:
            cells = " | ".join(
                " / ".join(f"{pct([times[m][clock][i] for i in idx], 0.95):.0f}" for clock in ("cpu", "wall"))
                for m in times
            )
            lines.append(f"| {lo}-{hi if hi < 10**9 else '...'} | {len(idx)} | {cells} |")
    return lines


def plot(series: dict[str, tuple[list[int], list[float]]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, (sizes, ms) in series.items():
        ax.scatter(sizes, ms, label=label, s=18)
    ax.axhline(GOAL_MS, color="red", linestyle="--", label="goal (300 ms)")
    ax.set_xlabel("record size (resources)")
    ax.set_ylabel("summary CPU time, default mode (ms)")
    ax.set_title("carelens summarize: latency vs record size (one core)")
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/summary_latency.png"))
    args = parser.parse_args()
    data = shared_data_dir()
    if data is None:
        print("shared data not found (set CARELENS_SHARED_DATA)", file=sys.stderr)
        return 1
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass

    start = time.perf_counter()
    from carelens.record.notes import pipeline

    pipeline()
    print(f"NLP pipeline load (once per process): {time.perf_counter() - start:.1f} s")

    bundles = sorted(p for p in (data / "fhir" / "synthea-r4").glob("*.json") if "Information" not in p.name)
    load_ms, synthea = [], []
    for path in bundles:
        start = time.perf_counter()
        synthea.append(load_record(path))
        load_ms.append((time.perf_counter() - start) * 1000)
    print(
        f"Synthea bundles: load (parse + index) p50 {statistics.median(load_ms):.0f} ms, "
        f"p95 {pct(load_ms, 0.95):.0f} ms, max {max(load_ms):.0f} ms"
    )
    print(f"load ({os.cpu_count()} CPUs here, load average {os.getloadavg()[0]:.1f} at start)")
    start = time.perf_counter()
    bulk = list(load_records(data / "fhir" / "bulk-10-patients"))
    print(f"Bulk NDJSON: load and split {len(bulk)} patients {time.perf_counter() - start:.1f} s")

    lines = ["# carelens summarize latency (one core)"]
    series = {}
    for name, records in (("Synthea R4 bundles", synthea), ("Bulk NDJSON (with notes)", bulk)):
        times = time_summaries(records)
        lines += report(name, records, times)
        series[name] = ([r.size for r in records], times["newest 10 notes"]["cpu"])
    print("\n".join(lines))
    plot(series, args.out)
    print(f"\nplot: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
