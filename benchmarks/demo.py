"""Demo benchmark: how long ``carelens demo`` takes, stage by stage, next to its goals.

Run: .venv/bin/python benchmarks/demo.py [--patients 20] [--image-epochs N] [--image-budget S] [--skip STAGE ...]
(the image model's training as ``carelens demo`` does it by default unless given).
Goals: the cohort generator writes 20 patients in a few seconds (<= 10 s CPU); the whole demo of
20 patients, every stage but serving, runs in a few minutes (<= 300 s) on 2 cores.
Wall-clock and CPU seconds are both printed: on a shared machine the CPU column is the stable one.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from carelens.demo import generate_cohort
from carelens.demo.pipeline import DemoOptions, run_demo

GENERATOR_GOAL_S = 10.0
DEMO_GOAL_S = 300.0


def cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--image-epochs", type=int, default=DemoOptions.image_epochs)
    parser.add_argument("--image-budget", type=float, default=None, help="cap on the image training, s")
    parser.add_argument("--skip", action="append", default=[])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0, c0 = time.perf_counter(), cpu()
        generate_cohort(root / "gen-only", patients=args.patients, seed=0)
        gen_wall, gen_cpu = time.perf_counter() - t0, cpu() - c0

        t0 = time.perf_counter()
        options = DemoOptions(out=root / "cohort", store=root / "store", patients=args.patients, seed=0,
                              image_epochs=args.image_epochs, image_budget_s=args.image_budget,
                              skip=frozenset(args.skip))  # fmt: skip
        summary = run_demo(options)
        total = time.perf_counter() - t0

    cap = f", at most {args.image_budget:.0f} s" if args.image_budget else ""
    print(f"\ncarelens demo, {args.patients} patients, image model {args.image_epochs} epochs{cap}")
    print(f"{'stage':<12} {'status':<8} {'wall s':>8} {'cpu s':>8}")
    for name, stage in summary["stages"].items():
        print(f"{name:<12} {stage['status']:<8} {stage['seconds']:>8.1f} {stage.get('cpu_seconds', 0.0):>8.1f}")
    cpu_total = sum(s.get("cpu_seconds", 0.0) for s in summary["stages"].values())
    print(f"{'all stages':<12} {'':<8} {total:>8.1f} {cpu_total:>8.1f}")
    print(f"\n{'measure':<34} {'carelens':>10} {'goal':>10}  met")
    print(f"{'generator, CPU s':<34} {gen_cpu:>10.1f} {GENERATOR_GOAL_S:>10.0f}  {gen_cpu <= GENERATOR_GOAL_S}")
    print(f"{'generator, wall s':<34} {gen_wall:>10.1f} {GENERATOR_GOAL_S:>10.0f}  {gen_wall <= GENERATOR_GOAL_S}")
    print(f"{'whole demo (no serve), wall s':<34} {total:>10.1f} {DEMO_GOAL_S:>10.0f}  {total <= DEMO_GOAL_S}")
    print(f"{'whole demo (no serve), CPU s':<34} {cpu_total:>10.1f} {DEMO_GOAL_S:>10.0f}  {cpu_total <= DEMO_GOAL_S}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
