"""Benchmark: carelens image models at two sites, PneumoniaMNIST (pediatric, 28 px) and NIH adult radiographs.

One run, three stages (each can run alone with ``--stages``; parts are kept as JSON so that stages
run in separate processes can be reported together):

- ``pneumonia``: the default network trained on PneumoniaMNIST at each seed (``--seeds``) under a
  wall-clock budget; test AUC, accuracy, ECE, conformal coverage, set sizes, outside rate.
- ``shift``: the seed-0 PneumoniaMNIST model's shift detectors compared (AUROC between its own test
  images and the adult site's held-out images) and the chosen one's outside rate at each site.
- ``adult``: nih-adult-dev split by patient (70/15/15 by hashed patient id): the unadapted model,
  the model adapted at the site (``image adapt``) at 28 px and at ``--size``, and local models
  trained on the site alone at 28 px and at ``--size`` (cnn and resnet18: the architecture
  choice), all on the held-out patients.

    .venv/bin/python benchmarks/imaging.py [--budget 240] [--seeds 0,1,2] [--size 128] [--stages ...]

Goals (issue #17): unadapted outside_rate >= 0.90 on adult images and <= 0.05 on its own test split;
adapted model on held-out adult images AUC >= 0.90, ECE <= 0.05, coverage within 0.03; PneumoniaMNIST
AUC >= 0.97, ECE <= 0.03, coverage within 0.02 at every seed. Writes benchmarks/results/imaging.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from carelens.core.config import shared_data_dir  # noqa: E402

KEYS = ("n", "auc", "accuracy", "ece", "conformal_coverage", "outside_rate")


def load_average() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _row(name: str, result: dict, extra: dict | None = None) -> dict:
    row = {"model": name, **{k: result.get(k) for k in KEYS}}
    row["set_sizes"] = result.get("set_size_distribution")
    row["load"] = load_average()
    return row | (extra or {})


def stage_pneumonia(npz: Path, seeds: list[int], budget: float, work: Path) -> list[dict]:
    from carelens.imaging.evaluate import evaluate
    from carelens.imaging.package import load_package
    from carelens.imaging.trainer import TrainConfig, train

    rows = []
    for seed in seeds:
        out = work / f"pneumonia-seed{seed}"
        started = time.monotonic()
        meta = train(npz, out, TrainConfig(seed=seed, time_budget=budget, threads=1))
        train_s = time.monotonic() - started
        result = evaluate(load_package(out), npz, "test", resamples=200)
        t = meta["training"]
        extra = {"seed": seed, "train_s": round(train_s), "epochs": t["epochs_run"], "stopped": t["stopped_because"]}
        rows.append(_row(f"cnn 28 px, seed {seed}", result, extra))
        print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def stage_shift(npz: Path, adult: Path, work: Path) -> dict:
    """Detectors compared on the seed-0 model: site 1 test images against the adult site's test patients."""
    from carelens.imaging.data import load_dataset
    from carelens.imaging.networks import shift_layers
    from carelens.imaging.package import load_package
    from carelens.imaging.shift import DEFAULT_QUANTILE, energy, features_and_logits, fit_reference, score_auroc

    package = load_package(work / "pneumonia-seed0")
    size = int(package.preprocessing["image_size"])
    sets = {s: load_dataset(npz, s) for s in ("train", "val", "test")}
    site2 = load_dataset(adult, "test", image_size=size)
    pick = np.random.default_rng(0).choice(len(sets["train"]), min(4000, len(sets["train"])), replace=False)
    train_images = sets["train"].images[np.sort(pick)]
    out: dict = {"n_site1_test": len(sets["test"]), "n_site2_test": len(site2), "quantile": DEFAULT_QUANTILE}
    out["detectors"] = []
    layers = shift_layers(str(package.meta["arch"]), size)
    for name, use in (
        ("penultimate features (Mahalanobis)", None),
        ("chosen: image 8x8 + stages + penultimate", layers),
    ):
        ftr, _ = features_and_logits(package.model, train_images, use)
        fva, _ = features_and_logits(package.model, sets["val"].images, use)
        ref = fit_reference(ftr, fva, DEFAULT_QUANTILE, use)
        d1 = ref.distance(features_and_logits(package.model, sets["test"].images, use)[0])
        d2 = ref.distance(features_and_logits(package.model, site2.images, use)[0])
        out["detectors"].append(
            {
                "detector": name,
                "auroc": score_auroc(d1, d2),
                "outside_site1_test": float(np.mean(d1 > ref.threshold)),
                "outside_site2_test": float(np.mean(d2 > ref.threshold)),
            }
        )
    logit = {k: features_and_logits(package.model, x)[1] for k, x in (("va", sets["val"].images),
             ("te", sets["test"].images), ("ad", site2.images))}  # fmt: skip
    e = {k: energy(v) for k, v in logit.items()}
    thr = float(np.quantile(e["va"], DEFAULT_QUANTILE))
    out["detectors"].append(
        {
            "detector": "energy score",
            "auroc": score_auroc(e["te"], e["ad"]),
            "outside_site1_test": float(np.mean(e["te"] > thr)),
            "outside_site2_test": float(np.mean(e["ad"] > thr)),
        }
    )
    stats = package.preprocessing["pixel_stats"]

    def pixel_z(x: np.ndarray) -> np.ndarray:
        flat = x.reshape(len(x), -1)
        return np.maximum(
            np.abs(flat.mean(1) - stats["mean_of_means"]) / stats["std_of_means"],
            np.abs(flat.std(1) - stats["mean_of_stds"]) / stats["std_of_stds"],
        )

    zva = pixel_z(sets["val"].images)
    thr = float(np.quantile(zva, DEFAULT_QUANTILE))
    z1, z2 = pixel_z(sets["test"].images), pixel_z(site2.images)
    out["detectors"].append(
        {
            "detector": "pixel mean/contrast z-score",
            "auroc": score_auroc(z1, z2),
            "outside_site1_test": float(np.mean(z1 > thr)),
            "outside_site2_test": float(np.mean(z2 > thr)),
        }
    )
    out["load"] = load_average()
    return out


def stage_adult(npz: Path, adult: Path, size: int, budget: float, work: Path) -> list[dict]:
    from carelens.imaging.adapt import adapt
    from carelens.imaging.evaluate import evaluate
    from carelens.imaging.package import load_package
    from carelens.imaging.trainer import TrainConfig, train

    rows = []
    parent = work / "pneumonia-seed0"
    if parent.exists():
        result = evaluate(load_package(parent), adult, "test", resamples=200)
        rows.append(_row("PneumoniaMNIST cnn 28 px, unadapted", result))
        for px in (28, size):
            out = work / f"adapted-{px}"
            started = time.monotonic()
            meta = adapt(parent, adult, out, time_budget=budget, seed=0, image_size=px, register=False)
            v = meta["site_validations"][0]
            result = evaluate(load_package(out), adult, "test", resamples=200)
            extra = {"train_s": round(time.monotonic() - started), "passed": v["passed"], "failed": v["failed"]}
            rows.append(_row(f"adapted from PneumoniaMNIST, {px} px", result, extra))
            print(json.dumps(rows[-1]), file=sys.stderr)
    for arch, px in (("cnn", 28), ("cnn", size), ("resnet18", size)):
        out = work / f"local-{arch}-{px}"
        started = time.monotonic()
        meta = train(adult, out, TrainConfig(arch=arch, seed=0, time_budget=budget, threads=1, image_size=px))
        result = evaluate(load_package(out), adult, "test", resamples=200)
        t = meta["training"]
        extra = {"train_s": round(time.monotonic() - started), "epochs": t["epochs_run"]}
        rows.append(_row(f"adult site alone, {arch} {px} px", result, extra))
        print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def _f(v: object) -> str:
    return f"{v:.3f}" if isinstance(v, float) else "" if v is None else str(v)


def report(parts: dict, args: argparse.Namespace) -> str:
    lines = [
        "# Imaging benchmark: two sites (issue #17)",
        "",
        f"Run {datetime.now(UTC).isoformat(timespec='minutes')} on {platform.machine()} "
        f"({os.cpu_count()} cores shared with other engineers), torch 1 thread, training budget "
        f"{args.budget:.0f} s per model. Load averages are recorded per row.",
        "",
    ]
    cols = ["model", *KEYS, "set_sizes", "train_s", "epochs", "load"]
    tables = (
        ("PneumoniaMNIST test split", parts.get("pneumonia")),
        ("Adult site (nih-adult-dev), held-out patients (test split)", parts.get("adult")),
    )
    for title, rows in tables:
        if not rows:
            continue
        lines += [f"## {title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(_f(r.get(c)) for c in cols) + " |" for r in rows]
        lines.append("")
    shift = parts.get("shift")
    if shift:
        lines += [
            f"## Shift detection: site 1 test (n={shift['n_site1_test']}) vs adult test patients "
            f"(n={shift['n_site2_test']}), threshold at the {shift.get('quantile', 0.99):.0%} point of site 1 val",
            "",
            "| detector | AUROC | outside rate, site 1 test | outside rate, adult |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {d['detector']} | {d['auroc']:.3f} | {d['outside_site1_test']:.3f} | {d['outside_site2_test']:.3f} |"
            for d in shift["detectors"]
        ]
        lines += ["", f"load: {shift['load']}", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=240.0, help="training wall-clock budget per model, s")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--size", type=int, default=128, help="the higher resolution compared with 28 px")
    parser.add_argument("--stages", default="pneumonia,shift,adult")
    parser.add_argument(
        "--work", type=Path, default=ROOT / "benchmarks" / "out" / "imaging", help="model packages and JSON parts"
    )
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "imaging.md")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    data = shared_data_dir() / "imaging"
    npz, adult = data / "pneumoniamnist.npz", data / "nih-adult-dev" / "images"
    if not npz.exists() or not adult.exists():
        sys.exit(f"needs {npz} and {adult}")
    args.work.mkdir(parents=True, exist_ok=True)
    for stage in args.stages.split(","):
        if stage == "pneumonia":
            part: object = stage_pneumonia(npz, [int(s) for s in args.seeds.split(",")], args.budget, args.work)
        elif stage == "shift":
            part = stage_shift(npz, adult, args.work)
        elif stage == "adult":
            part = stage_adult(npz, adult, args.size, args.budget, args.work)
        else:
            sys.exit(f"unknown stage {stage}")
        (args.work / f"{stage}.json").write_text(json.dumps(part, indent=1))
    parts = {p.stem: json.loads(p.read_text()) for p in args.work.glob("*.json")}
    text = report(parts, args)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
