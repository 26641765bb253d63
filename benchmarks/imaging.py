"""Benchmark: carelens image models at two sites, PneumoniaMNIST (pediatric, 28 px) and NIH adult radiographs.

One run, three stages (each can run alone with ``--stages``; parts are kept as JSON so that stages
run in separate processes can be reported together):

- ``pneumonia``: the default network trained on PneumoniaMNIST at each seed (``--seeds``) under a
  budget of CPU seconds (the process's, one torch thread: the same epochs whatever the machine's load); test AUC,
  accuracy, ECE, conformal coverage, set sizes, outside rate, and a development proxy read on validation only
  (ECE over perturbed validation images).
- ``shift``: the seed-0 PneumoniaMNIST model's shift detectors compared (AUROC between its own test
  images and the adult site's held-out images) and the chosen one's outside rate at each site.
- ``shift-select``: shift descriptions compared on the training site alone (its validation images against generic
  perturbations of them: gamma, contrast, blur, noise, half resolution), then measured on the adult images.
- ``federated``: one model trained by the Flower network across both sites (each holding only its own images)
  against a model trained on each site alone for the same epochs, all scored on each site's test split.
- ``fedbn``: FedAvg against FedBN (batch norm kept at each site) against each site alone, in this process with
  the nodes' own training code, each recalibrated per site (temperature, conformal thresholds on its validation
  split); ``--finetune N``: each site then fine-tunes the federated model alone.
- ``shift-alt``: alternative shift scores (Mahalanobis, energy, kNN, combined) for the unadapted model
  (``--package``), chosen on the adult development patients, reported on the held-out ones.
- ``calibration-shift``: PneumoniaMNIST packages' temperature fit on validation against one fit on validation plus
  perturbations of it (chosen by the ECE on a perturbation left out of the fit), test split beside it.
- ``shift-cc``: per-class shift references (network description, image at 6x6 px, both) against the pooled one,
  chosen on the adult development patients, the shipped one then confirmed on the held-out patients.
- ``adapt``: ``image adapt`` of a PneumoniaMNIST package (``--package``) at the adult site at each seed,
  calibrated on cross-fitted out-of-fold predictions (``--folds``), with bootstrap intervals on the held-out patients.
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


def stage_pneumonia(npz: Path, seeds: list[int], budget: float, work: Path, mixup: float = 0.0) -> list[dict]:
    from carelens.imaging.evaluate import evaluate
    from carelens.imaging.package import load_package
    from carelens.imaging.trainer import TrainConfig, train

    rows = []
    for seed in seeds:
        out = work / f"pneumonia-seed{seed}"
        started, cpu_started = time.monotonic(), time.process_time()
        # the budget counts this process's CPU seconds (one torch thread), so the epochs do not depend on the load
        meta = train(npz, out, TrainConfig(seed=seed, time_budget=budget, threads=1, mixup=mixup), time.process_time)
        train_s, cpu_s = time.monotonic() - started, time.process_time() - cpu_started
        package = load_package(out)
        result = evaluate(package, npz, "test", resamples=200)
        t = meta["training"]
        extra = {"seed": seed, "train_s": round(train_s), "train_cpu_s": round(cpu_s), "epochs": t["epochs_run"]}
        extra |= {"stopped": t["stopped_because"], "val_ece": meta["metrics"]["validation"]["ece"]}
        extra |= {"val_nll": meta["calibration"]["cross_fitted_nll"], "perturbed_val_ece": perturbed_ece(package, npz)}
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
        ref = fit_reference({"features": ftr}, {"features": fva}, DEFAULT_QUANTILE, use)
        d1 = ref.score({"features": features_and_logits(package.model, sets["test"].images, use)[0]})
        d2 = ref.score({"features": features_and_logits(package.model, site2.images, use)[0]})
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


def stage_shift_alt(npz: Path, adult: Path, package_dir: Path) -> dict:
    """Alternative shift scores for the unadapted PneumoniaMNIST model, each fitted on (3,000 of) its training
    images and thresholded at the 95% / 98% point of its validation images: the current description (Mahalanobis),
    penultimate Mahalanobis, energy, kNN distances (normalised penultimate features; standardised description),
    and sums of validation-standardised scores. Chosen on the adult development patients (train + val splits);
    the adult test patients (held out) are reported, not used."""
    from sklearn.covariance import LedoitWolf

    from carelens.imaging.data import load_dataset
    from carelens.imaging.networks import shift_layers
    from carelens.imaging.package import load_package
    from carelens.imaging.shift import energy, features_and_logits, score_auroc

    package = load_package(package_dir)
    sets = {s: load_dataset(npz, s).images for s in ("train", "val", "test")}
    sets["train"] = sets["train"][np.sort(np.random.default_rng(0).choice(len(sets["train"]), 3000, replace=False))]
    sets["adult_dev"] = np.concatenate([load_dataset(adult, s, image_size=28).images for s in ("train", "val")])
    sets["adult_heldout"] = load_dataset(adult, "test", image_size=28).images
    layers = shift_layers(str(package.meta["arch"]), 28)
    desc = {k: features_and_logits(package.model, x, layers) for k, x in sets.items()}
    pen = {k: features_and_logits(package.model, x)[0] for k, x in sets.items()}

    def standardise(ref: np.ndarray):
        m, sd = ref.mean(0), np.maximum(ref.std(0), 1e-6)
        return lambda x: (x - m) / sd

    def mahalanobis(feats: dict) -> dict:
        z = standardise(feats["train"])
        lw = LedoitWolf().fit(z(feats["train"]))
        d = {k: z(v) - lw.location_ for k, v in feats.items()}
        return {k: np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", v, lw.precision_, v), 0)) for k, v in d.items()}

    def knn(feats: dict, k: int, normalise: bool) -> dict:
        unit = (lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)) if normalise else standardise(feats["train"])
        ref = unit(feats["train"])
        out = {}
        for name, x in feats.items():
            q = unit(x)
            dist = np.sqrt(np.maximum((q**2).sum(1)[:, None] + (ref**2).sum(1)[None] - 2 * q @ ref.T, 0))
            out[name] = np.sort(dist, 1)[:, k - (name == "train")]  # a training image is not its own neighbour
        return out

    scores = {"current: image 8x8 + stages + penultimate, Mahalanobis": mahalanobis({k: v[0] for k, v in desc.items()})}
    scores["penultimate, Mahalanobis"] = mahalanobis(pen)
    scores["energy"] = {k: energy(v[1]) for k, v in desc.items()}
    for k in (1, 10, 50):
        scores[f"kNN k={k}, normalised penultimate"] = knn(pen, k, True)
    scores["kNN k=10, standardised current description"] = knn({k: v[0] for k, v in desc.items()}, 10, False)

    def zval(s: dict) -> dict:
        return {k: (v - s["val"].mean()) / (s["val"].std() + 1e-9) for k, v in s.items()}

    current = zval(scores["current: image 8x8 + stages + penultimate, Mahalanobis"])
    for other in ("kNN k=10, normalised penultimate", "energy"):
        add = zval(scores[other])
        scores[f"current + {other} (sum of validation z-scores)"] = {k: current[k] + add[k] for k in current}
    rows = []
    for name, s in scores.items():
        row = {"detector": name, "auroc_dev": score_auroc(s["val"], s["adult_dev"])}
        row["auroc_heldout"] = score_auroc(s["test"], s["adult_heldout"])
        for q in (0.95, 0.98):
            t = np.quantile(s["val"], q, method="higher")
            row[f"q{q}"] = {k: float(np.mean(s[k] > t)) for k in ("val", "test", "adult_dev", "adult_heldout")}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return {"rows": rows, "package": package_dir.name, "load": load_average()}


def stage_shift_cc(npz: Path, adult: Path, packages: list[Path]) -> dict:
    """Per-class shift references against the pooled one, for unadapted PneumoniaMNIST models (``--package``, a
    comma-separated list). Each is fitted on the model's training images (labels for the per-class ones) and
    thresholded at a quantile of its validation images; nothing adult sets a threshold. Candidates are compared on
    the adult development patients (train + val splits) and the own test split; the shipped one
    (``trainer.fit_shift_reference``, the code ``image train`` and ``image adapt`` run) is then scored once on the
    adult held-out patients (test split)."""
    from carelens.imaging.data import load_dataset
    from carelens.imaging.networks import shift_layers
    from carelens.imaging.package import load_package
    from carelens.imaging.shift import (
        DEFAULT_QUANTILE,
        features_and_logits,
        fit_reference,
        input_description,
        score_auroc,
    )
    from carelens.imaging.trainer import fit_shift_reference

    sets = {s: load_dataset(npz, s) for s in ("train", "val", "test")}
    dev = np.concatenate([load_dataset(adult, s, image_size=28).images for s in ("train", "val")])
    held_out = load_dataset(adult, "test", image_size=28).images
    out: dict = {"rows": [], "n": {"val": len(sets["val"]), "test": len(sets["test"]), "adult_dev": len(dev),
                                   "adult_heldout": len(held_out)}}  # fmt: skip
    for package_dir in packages:
        package = load_package(package_dir)
        layers = shift_layers(str(package.meta["arch"]), 28)
        images = {
            "train": sets["train"].images,
            "val": sets["val"].images,
            "test": sets["test"].images,
            "adult_dev": dev,
        }
        desc = {k: {"features": features_and_logits(package.model, x, layers)[0], "pixels": input_description(x)}
                for k, x in images.items()}  # fmt: skip
        y_train, y_val = sets["train"].labels, sets["val"].labels
        candidates = {
            "pooled: network description (shipped before)": (["features"], False),
            "per class: network description": (["features"], True),
            "per class: image 6x6 px": (["pixels"], True),
            "per class: network description + image 6x6 px": (["features", "pixels"], True),
        }
        for name, (use, per_class) in candidates.items():
            part = {k: {p: v[p] for p in use} for k, v in desc.items()}
            labels = (y_train, y_val) if per_class else (None, None)
            scores = None
            for q in (0.95, 0.97, 0.98):
                ref = fit_reference(part["train"], part["val"], q, layers, *labels)
                scores = scores or {k: ref.score(v) for k, v in part.items() if k != "train"}
                row = {"package": package_dir.name, "score": name, "quantile": q,
                       "auroc_dev": score_auroc(scores["val"], scores["adult_dev"])}  # fmt: skip
                row |= {k: float(np.mean(v > ref.threshold)) for k, v in scores.items()}
                row["val_by_class"] = [float(np.mean(scores["val"][y_val == c] > ref.threshold)) for c in (0, 1)]
                out["rows"].append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
        started = time.monotonic()
        shipped = fit_shift_reference(package.model, sets["train"], sets["val"], layers, DEFAULT_QUANTILE)
        fit_s = time.monotonic() - started
        started = time.monotonic()
        ho = shipped.image_scores(package.model, held_out)
        check_s = time.monotonic() - started
        confirm = {"package": package_dir.name, "method": shipped.method, "quantile": DEFAULT_QUANTILE,
                   "val": float(np.mean(shipped.calibration_scores > shipped.threshold)),
                   "test": float(np.mean(shipped.image_scores(package.model, sets["test"].images) > shipped.threshold)),
                   "adult_dev": float(np.mean(shipped.image_scores(package.model, dev) > shipped.threshold)),
                   "adult_heldout": float(np.mean(ho > shipped.threshold)),
                   "auroc_heldout": score_auroc(shipped.image_scores(package.model, sets["test"].images), ho),
                   "fit_s": round(fit_s, 1), "check_s_per_image": check_s / len(held_out),
                   "load": load_average()}  # fmt: skip
        out.setdefault("shipped", []).append(confirm)
        print(json.dumps(confirm), file=sys.stderr, flush=True)
    out["load"] = load_average()
    return out


def perturbed_ece(package, npz: Path) -> float:
    """Development proxy for calibration under shift: the mean ECE over :func:`perturbations` of the validation
    split, with the package's own temperature (no test image is read)."""
    from carelens.imaging.calibration import expected_calibration_error
    from carelens.imaging.data import load_npz
    from carelens.imaging.engine import logits_to_proba, predict_logits, test_time_views

    val = load_npz(npz, "val")
    views = test_time_views(package.preprocessing)
    eces = [
        expected_calibration_error(
            logits_to_proba(predict_logits(package.model, images, views=views), package.task, package.temperature),
            val.labels,
            package.task,
        )
        for images in perturbations(val.images).values()
    ]
    return round(float(np.mean(eces)), 4)


def stage_calibration_shift(npz: Path, packages: list[Path]) -> list[dict]:
    """The shipped temperature (fit on validation) against one fit on validation plus :func:`perturbations` of it
    (Tomani et al., CVPR 2021), with each package's conformal thresholds refit on validation. Rule, on validation
    only: the perturbed fit is preferred where its ECE on each perturbation left out of the fit is lower on average;
    the test split is scored for the record beside it."""
    from sklearn.metrics import roc_auc_score

    from carelens.imaging.calibration import expected_calibration_error as ece
    from carelens.imaging.calibration import fit_temperature
    from carelens.imaging.conformal import calibrate_conformal, coverage, prediction_sets
    from carelens.imaging.data import load_npz
    from carelens.imaging.engine import logits_to_proba, predict_logits, test_time_views
    from carelens.imaging.package import load_package

    val, test = load_npz(npz, "val"), load_npz(npz, "test")
    shifted = perturbations(val.images)
    rows = []
    for path in packages:
        package = load_package(path)
        task, views = package.task, test_time_views(package.preprocessing)
        val_logits, test_logits = (predict_logits(package.model, x, views=views) for x in (val.images, test.images))
        perturbed = {k: predict_logits(package.model, x, views=views) for k, x in shifted.items()}
        # per perturbation: the temperature fit without it, and the ECE on it
        left_out = {k: [val_logits, *(v for j, v in perturbed.items() if j != k)] for k in perturbed}
        fits = {
            k: fit_temperature(np.concatenate(ls), np.concatenate([val.labels] * len(ls)), task)
            for k, ls in left_out.items()
        }
        proxy = {
            "validation": np.mean([ece(logits_to_proba(v, task, package.temperature), val.labels, task)
                                   for v in perturbed.values()]),
            "validation + perturbed": np.mean([ece(logits_to_proba(v, task, fits[k]), val.labels, task)
                                               for k, v in perturbed.items()]),
        }  # fmt: skip
        everything = [val_logits, *perturbed.values()]
        temperatures = {
            "validation": package.temperature,
            "validation + perturbed": fit_temperature(
                np.concatenate(everything), np.concatenate([val.labels] * len(everything)), task
            ),
        }
        for name, temperature in temperatures.items():
            val_proba = logits_to_proba(val_logits, task, temperature)
            test_proba = logits_to_proba(test_logits, task, temperature)
            conformal = calibrate_conformal(val_proba, val.labels, 0.90, "aps", class_conditional=True)
            row = {"package": path.name, "temperature fit on": name, "temperature": round(temperature, 3),
                   "val_ece": round(ece(val_proba, val.labels, task), 4),
                   "left_out_perturbation_ece": round(float(proxy[name]), 4),
                   "test_auc": round(float(roc_auc_score(test.labels, test_proba[:, 1])), 4),
                   "test_ece": round(ece(test_proba, test.labels, task), 4),
                   "test_coverage": round(coverage(prediction_sets(test_proba, conformal), test.labels), 4),
                   "load": load_average()}  # fmt: skip
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def perturbations(images: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Generic acquisition changes of a site's own images (fixed before any comparison): gamma, contrast, blur,
    noise and a resolution loss. A detector is chosen by how many of these it flags, never by the adult images."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(images.astype(np.float32))
    rng = np.random.default_rng(seed)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    kernel = torch.tensor([1.0, 2.0, 1.0])
    kernel = (kernel[:, None] * kernel[None, :] / 16).view(1, 1, 3, 3)
    size = images.shape[-1]
    down_up = F.interpolate(F.avg_pool2d(x, 2), size=size, mode="bilinear", align_corners=False)
    out = {
        "gamma 0.5": x.clamp(0, 1) ** 0.5,
        "gamma 2": x.clamp(0, 1) ** 2.0,
        "contrast x0.6": (x - mean) * 0.6 + mean,
        "blur (3x3 binomial)": F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel),
        "noise sd 0.08": x + torch.from_numpy(rng.normal(0, 0.08, images.shape).astype(np.float32)),
        "half resolution": down_up,
    }
    return {k: v.clamp(0, 1).numpy() for k, v in out.items()}


def stage_shift_select(npz: Path, adult: Path, work: Path) -> dict:
    """Shift descriptions compared on the training site alone (its validation images against generic perturbations
    of them); the chosen one is then measured once on the adult images (all 631) and on the site's own test."""
    from carelens.imaging.data import load_dataset
    from carelens.imaging.networks import shift_layers
    from carelens.imaging.package import load_package
    from carelens.imaging.shift import DEFAULT_QUANTILE, features_and_logits, fit_reference
    from carelens.imaging.site import load_site_images

    package = load_package(work / "pneumonia-seed0")
    layers = shift_layers(str(package.meta["arch"]), 28)
    sets = {s: load_dataset(npz, s) for s in ("train", "val", "test")}
    pick = np.sort(np.random.default_rng(0).choice(len(sets["train"]), min(4000, len(sets["train"])), replace=False))
    val = sets["val"].images
    half = len(val) // 2  # threshold on one half of val; perturb the other half
    images = {"train": sets["train"].images[pick], "val_fit": val[:half], "val_held": val[half:],
              "test": sets["test"].images, "adult": load_site_images(adult, "all", 28, 1).images}  # fmt: skip
    images |= {f"perturbed: {k}": v for k, v in perturbations(val[half:]).items()}
    feats = {k: features_and_logits(package.model, v, layers)[0] for k, v in images.items()}
    width = feats["train"].shape[1]
    pen = package.model.state_dict()[[k for k in package.model.state_dict() if k.endswith("weight")][-1]].shape[1]
    columns = {"pixels 8x8": slice(0, 64), "stage statistics": slice(64, width - pen),
               "penultimate": slice(width - pen, width), "all (current)": slice(0, width)}  # fmt: skip
    rows = []
    for name, cols in columns.items():
        ref = fit_reference({"f": feats["train"][:, cols]}, {"f": feats["val_fit"][:, cols]}, DEFAULT_QUANTILE)
        rates = {
            k: float(np.mean(ref.score({"f": f[:, cols]}) > ref.threshold)) for k, f in feats.items() if k != "train"
        }
        perturbed = [v for k, v in rates.items() if k.startswith("perturbed")]
        rows.append({"description": name, "mean_perturbed_outside": float(np.mean(perturbed)), **rates})
    chosen = max(rows, key=lambda r: r["mean_perturbed_outside"] - r["val_held"])
    return {"rows": rows, "chosen": chosen["description"], "rule": "max mean perturbed outside rate - held val rate",
            "load": load_average()}  # fmt: skip


def stage_adult(npz: Path, adult: Path, size: int, budget: float, work: Path) -> list[dict]:
    """The adult site: the PneumoniaMNIST model unadapted and adapted (28 px and ``size``), and models trained on
    the site alone, each within ``budget`` CPU seconds (``time.process_time``; ``train_s`` is wall seconds)."""
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
            meta = adapt(parent, adult, out, time_budget=budget, seed=0, image_size=px, register=False,
                         clock=time.process_time)  # fmt: skip
            v = meta["site_validations"][0]
            result = evaluate(load_package(out), adult, "test", resamples=200)
            extra = {"train_s": round(time.monotonic() - started), "passed": v["passed"], "failed": v["failed"]}
            rows.append(_row(f"adapted from PneumoniaMNIST, {px} px", result, extra))
            print(json.dumps(rows[-1]), file=sys.stderr)
    for arch, px in (("cnn", 28), ("cnn", size), ("resnet18", size)):
        out = work / f"local-{arch}-{px}"
        started = time.monotonic()
        cfg = TrainConfig(arch=arch, seed=0, time_budget=budget, threads=1, image_size=px)
        meta = train(adult, out, cfg, time.process_time)
        result = evaluate(load_package(out), adult, "test", resamples=200)
        t = meta["training"]
        extra = {"train_s": round(time.monotonic() - started), "epochs": t["epochs_run"]}
        rows.append(_row(f"adult site alone, {arch} {px} px", result, extra))
        print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def stage_adapt(
    adult: Path,
    parent: Path,
    seeds: list[int],
    folds: int,
    work: Path,
    start: str = "parent",
    size: int | None = None,
    budget: float | None = None,
) -> list[dict]:
    """`image adapt` of ``parent`` at the adult site (cross-fitted calibration over ``folds`` folds of its training
    patients; 0: validation alone; ``start``: see ``carelens.imaging.adapt.STARTS``; ``size``: px, default the
    parent's) at each seed, within ``budget`` CPU seconds (all its fits together; this process's
    ``time.process_time``, one torch thread), scored on the held-out patients with 95% bootstrap intervals."""
    from carelens.imaging.adapt import adapt
    from carelens.imaging.evaluate import evaluate
    from carelens.imaging.package import load_package

    rows = []
    for seed in seeds:
        out = work / f"adapted-folds{folds}-{size or 'parent'}px-seed{seed}"
        started, cpu_started, load_before = time.monotonic(), time.process_time(), load_average()
        meta = adapt(parent, adult, out, budget, seed, size, register=False, folds=folds, start=start,
                     clock=time.process_time)  # fmt: skip
        seconds, cpu_s = time.monotonic() - started, time.process_time() - cpu_started
        r = evaluate(load_package(out), adult, "test", resamples=1000)
        cal = meta["calibration"]
        rows.append(
            {"seed": seed, "folds": folds, "n": r["n"], "auc": r["auc"], "ece": r["ece"],
             "ece_if_calibrated": r["ece_if_calibrated"], "coverage": r["conformal_coverage"],
             "coverage_per_class": r["conformal_coverage_per_class"], "set_sizes": r["set_size_distribution"],
             "outside_rate": r["outside_rate"], "ci": {k: r["ci"][k] for k in ("auc", "ece", "conformal_coverage")},
             "temperature": cal["temperature"], "cross_fitted_nll": cal.get("cross_fitted_nll"),
             "calibration_n": meta["metrics"]["validation"]["n"], "seconds": round(seconds), "cpu_s": round(cpu_s),
             "image_size": meta["preprocessing"]["image_size"], "arch": meta["arch"],
             "start": cal.get("cross_fitting", {}).get("start"),
             "out_of_fold_auc_by_start": cal.get("cross_fitting", {}).get("out_of_fold_auc_by_start"),
             "load": f"{load_before} / {load_average()}"}
        )  # fmt: skip
        print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def stage_federated(
    npz: Path,
    adult: Path,
    rounds: int,
    work: Path,
    weighting: str = "examples",
    strategy: str = "fedavg",
    local_steps: int = 0,
) -> dict:
    """One model trained by the Flower network (loopback hub, one node per site, SecAgg+, FedAvg) across the
    pediatric site (PneumoniaMNIST) and the adult site (nih-adult-dev split by patient, 28 px), against a model
    trained on each site alone for the same number of epochs (with ``examples`` weighting only: they do not
    depend on it); every model scored on each site's test split. ``weighting``: by training images or equal."""
    from carelens.network.local import fit, new_model, predict
    from carelens.network.metrics import site_metrics
    from carelens.network.prepare import prepare_site
    from carelens.network.runtime import loopback_network, run_job
    from carelens.network.sitedata import load_site_data

    adult_npz = work / "sites" / "adult.npz"
    prepare_site(adult, adult_npz, image_size=28)
    files = {"pediatric": npz, "adult": adult_npz}
    data = {name: load_site_data(path, name) for name, path in files.items()}
    rows: list[dict] = []
    metric_names = ("auc", "ece", "sensitivity", "specificity")

    def scored(model_name: str, model, seconds: float) -> None:
        for site, d in data.items():
            m = site_metrics(predict(model, d.split("test")), d.split("test"), resamples=200)["metrics"]
            values = {k: m[k]["value"] for k in metric_names}
            row = {"model": model_name, "site": site, "n": len(d.split("test")), "seconds": round(seconds)}
            rows.append({**row, "load": load_average(), **values})
            print(json.dumps(rows[-1]), file=sys.stderr)

    for site, d in data.items() if weighting == "examples" else ():
        started = time.monotonic()
        model = new_model("cnn", 28, 0)
        fit(model, d.split("train"), epochs=rounds, lr=1e-3, seed=0)
        scored(f"{site} site alone ({rounds} epochs)", model, time.monotonic() - started)

    store = work / "federated-store"
    with loopback_network(store, files, threads=1, grace=2) as net:
        started = time.monotonic()
        settings = {"rounds": rounds, "min-sites": 2, "expected-sites": 2, "timeout": 600, "local-epochs": 1,
                    "site-weighting": weighting, "strategy": strategy, "proximal-mu": 0.1, "local-steps": local_steps,
                    "cohort": "PneumoniaMNIST (pediatric) + nih-adult-dev (adult, split by patient)"}  # fmt: skip
        result = run_job(net.address, store, settings, timeout=3000, quiet=True)
        seconds = time.monotonic() - started
    for s in result.get("sites", []):
        m = s.get("metrics", {})
        method = {"fedavg": "FedAvg", "fedbn": "FedBN"}.get(strategy, "FedProx (mu 0.1)")
        name = f"federated, {method} + SecAgg+, sites weighted by {weighting} ({rounds} rounds x 1 local epoch)"
        row = {"model": name, "site": s["site"]}
        row |= {"n": s.get("n"), "seconds": round(seconds), "load": load_average(), "passed": s.get("passed")}
        rows.append(row | {k: (m.get(k) or {}).get("value") for k in metric_names})
    keep = ("model_id", "failures", "rounds_adopted", "bytes_per_round")
    return {"rows": rows, **{k: result.get(k) for k in keep}}


def federate(
    data: dict, rounds: int, fedbn: bool, weighting: str, local_steps: int, seed: int = 0, start: dict | None = None
) -> dict:
    """FedAvg (or FedBN: batch norm kept at each site) over ``data``'s sites in this process, with the
    nodes' own code (``network.local``: the same local training, weights and site-local layers the
    Flower client uses); each round every site trains from the average, then updates are averaged
    (by training images or equally). The round kept is the one with the best mean validation AUC over
    the sites (each site's validation split: no test image chooses). ``start``: a model per site to
    start from (one site: fine-tuning a federated model there). Returns each site's model."""
    from sklearn.metrics import roc_auc_score

    from carelens.network.local import (
        fit,
        get_local_state,
        get_weights,
        local_epochs,
        new_model,
        predict,
        set_local_state,
        set_weights,
    )  # fmt: skip

    def site_model(site: str, shared: list) -> object:
        model = new_model("cnn", 28, seed)
        set_weights(model, shared, site_local=fedbn)
        if fedbn:
            set_local_state(model, local[site])
        return model

    first = start[next(iter(data))] if start else new_model("cnn", 28, seed)
    shared = get_weights(first, site_local=fedbn)
    local = {site: get_local_state(start[site] if start else first) for site in data}
    best: dict = {"val_auc": -1.0}
    log = []
    for r in range(1, rounds + 1):
        updates = []
        for site, d in data.items():
            model = site_model(site, shared)
            train = d.split("train")
            fit(model, train, epochs=local_epochs(len(train), 1, local_steps), lr=1e-3, seed=seed + r)
            local[site] = get_local_state(model)
            updates.append((get_weights(model, site_local=fedbn), 1.0 if weighting == "equal" else float(len(train))))
        total = sum(w for _, w in updates)
        shared = [sum(u[k] * w for u, w in updates) / total for k in range(len(shared))]
        models = {site: site_model(site, shared) for site in data}
        val = {s: float(roc_auc_score(d.split("val").labels, predict(models[s], d.split("val"))[:, 1]))
               for s, d in data.items()}  # fmt: skip
        log.append({"round": r, **{f"val_auc_{s}": round(v, 3) for s, v in val.items()}})
        print(json.dumps(log[-1]), file=sys.stderr, flush=True)
        if np.mean(list(val.values())) > best["val_auc"]:
            best = {"val_auc": float(np.mean(list(val.values()))), "round": r, "models": models}
    return {"models": best["models"], "round": best["round"], "log": log}


def calibrated_scores(model, d) -> dict:
    """A site's test figures for ``model``: AUC, ECE before and after a temperature fitted on the site's
    validation split, and class-conditional APS conformal sets (target 0.90) calibrated there too."""
    from carelens.imaging.calibration import expected_calibration_error, fit_temperature
    from carelens.imaging.conformal import calibrate_conformal, coverage, prediction_sets, set_size_distribution
    from carelens.imaging.engine import logits_to_proba, predict_logits
    from carelens.imaging.metrics import auc

    val, test = d.split("val"), d.split("test")
    val_logits, test_logits = predict_logits(model, val.images), predict_logits(model, test.images)
    temperature = fit_temperature(val_logits, val.labels, "binary")
    conformal = calibrate_conformal(logits_to_proba(val_logits, "binary", temperature), val.labels, 0.90, "aps", True)
    raw, scaled = logits_to_proba(test_logits, "binary"), logits_to_proba(test_logits, "binary", temperature)
    sets = prediction_sets(scaled, conformal)
    return {
        "n": len(test), "auc": auc(scaled, test.labels, "binary"),
        "ece_raw": expected_calibration_error(raw, test.labels, "binary"),
        "ece": expected_calibration_error(scaled, test.labels, "binary"), "temperature": round(temperature, 3),
        "coverage": coverage(sets, test.labels), "set_sizes": set_size_distribution(sets),
    }  # fmt: skip


def stage_fedbn(
    npz: Path, adult: Path, rounds: int, work: Path, weighting: str, local_steps: int, only: str = "", finetune: int = 0
) -> dict:
    """FedAvg against FedBN against each site alone (:func:`federate`, same rounds, same local steps), each
    recalibrated per site (temperature and conformal thresholds on the site's validation split), scored on
    each site's test split (the adult one: the 120 held-out patients). ``only``: the runs to make (comma-separated
    names, default all); ``finetune`` > 0: each site then fine-tunes a federated model alone for that many rounds."""
    from carelens.network.prepare import prepare_site
    from carelens.network.sitedata import load_site_data

    adult_npz = work / "sites" / "adult.npz"
    if not adult_npz.exists():
        prepare_site(adult, adult_npz, image_size=28)
    data = {"pediatric": load_site_data(npz, "pediatric"), "adult": load_site_data(adult_npz, "adult")}
    runs = [("FedAvg", False, data), ("FedBN", True, data)]
    runs += [(f"{site} site alone", False, {site: d}) for site, d in data.items()]
    rows = []

    def scored(name: str, models: dict, round_kept: int, seconds: float) -> None:
        for site, d in data.items():
            model = models.get(site) or next(iter(models.values()))
            row = {"model": name, "site": site, "round": round_kept, "seconds": round(seconds)}
            rows.append(row | calibrated_scores(model, d) | {"load": load_average()})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)

    for name, fedbn, sites in [r for r in runs if r[0] in only.split(",")] if only else runs:
        started = time.monotonic()
        result = federate(sites, rounds, fedbn, weighting, local_steps)
        scored(name, result["models"], result["round"], time.monotonic() - started)
        if finetune and len(sites) > 1:  # then each site fine-tunes the federated model on its own images
            started = time.monotonic()
            tuned = {
                s: federate({s: d}, finetune, False, weighting, local_steps, start=result["models"])
                for s, d in sites.items()
            }
            models = {s: t["models"][s] for s, t in tuned.items()}
            scored(f"{name}, then {finetune} rounds at each site alone", models, 0, time.monotonic() - started)
    return {"rows": rows, "rounds": rounds, "weighting": weighting, "local_steps": local_steps}


def _f(v: object) -> str:
    return f"{v:.3f}" if isinstance(v, float) else "" if v is None else str(v)


def report(parts: dict, args: argparse.Namespace) -> str:
    lines = [
        "# Imaging benchmark: two sites (issue #17)",
        "",
        f"Run {datetime.now(UTC).isoformat(timespec='minutes')} on {platform.machine()} "
        f"({os.cpu_count()} cores shared with other engineers), torch 1 thread, training budget "
        f"{args.budget or 240:.0f} s per model (PneumoniaMNIST: CPU s). Load averages are recorded per row.",
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
    for key in sorted(k for k in parts if k.startswith("federated")):
        fed = parts[key]
        fcols = ["model", "site", "n", "auc", "ece", "sensitivity", "specificity", "passed", "seconds", "load"]
        lines += [
            f"## Federated across the two sites ({key}) against each site alone (each site's test split)",
            "",
            "| " + " | ".join(fcols) + " |",
            "|" + "---|" * len(fcols),
        ]
        lines += ["| " + " | ".join(_f(r.get(c)) for c in fcols) + " |" for r in fed["rows"]]
        lines += ["", f"registry entry {fed['model_id']}; rounds adopted {fed['rounds_adopted']}; failures "
                  f"{fed['failures'] or 'none'}", ""]  # fmt: skip
    for key in sorted(k for k in parts if k.startswith("adapt-")):
        lines += [
            f"## `image adapt` at the adult site ({key}), held-out patients, 95% bootstrap intervals",
            "",
            "| seed | AUC | ECE | ECE if calibrated | coverage | per class | sets | outside | T | calibrated on "
            "| cross-fitted NLL | s | load |",
            "|" + "---|" * 13,
        ]
        for r in parts[key]:
            ci = r["ci"]
            lines.append(
                f"| {r['seed']} | {r['auc']:.3f} ({ci['auc'][0]:.3f}-{ci['auc'][1]:.3f}) | {r['ece']:.3f} "
                f"({ci['ece'][0]:.3f}-{ci['ece'][1]:.3f}) | {r['ece_if_calibrated']:.3f} | {r['coverage']:.3f} "
                f"({ci['conformal_coverage'][0]:.3f}-{ci['conformal_coverage'][1]:.3f}) | {r['coverage_per_class']} "
                f"| {r['set_sizes']} | {r['outside_rate']:.3f} | {r['temperature']:.2f} | {r['calibration_n']} "
                f"| {r['cross_fitted_nll']} | {r['seconds']} | {r['load']} |"
            )
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
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="training budget per model, s (pneumonia: CPU s, default 240; adult: wall, 240; adapt: CPU s, none)",
    )
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument(
        "--size", type=int, default=None, help="adult: the higher resolution compared with 28 px (128); adapt: px"
    )
    parser.add_argument("--stages", default="pneumonia,shift,adult,federated")
    parser.add_argument("--rounds", type=int, default=5, help="federated rounds (= epochs of each site-alone model)")
    parser.add_argument("--site-weighting", default="examples", choices=("examples", "equal"))
    parser.add_argument("--strategy", default="fedavg", choices=("fedavg", "fedprox", "fedbn"))
    parser.add_argument("--local-steps", type=int, default=0, help="fedbn stage: batches per site per round")
    parser.add_argument(
        "--package",
        default=None,
        help="shift-alt, shift-cc, calibration-shift: PneumoniaMNIST model package(s), commas",
    )
    parser.add_argument("--only", default="", help="fedbn stage: the runs to make (e.g. FedBN)")
    parser.add_argument("--mixup", type=float, default=0.0, help="pneumonia stage: mixup's Beta parameter")
    parser.add_argument("--start", default="parent", help="adapt stage: parent, scratch or auto")
    parser.add_argument("--folds", type=int, default=4, help="adapt stage: cross-fitting folds (0: val alone)")
    parser.add_argument("--finetune", type=int, default=0, help="fedbn stage: rounds of fine-tuning at each site")
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
    seeds = [int(s) for s in args.seeds.split(",")]
    for stage in args.stages.split(","):
        if stage == "pneumonia":
            part: object = stage_pneumonia(npz, seeds, args.budget or 240.0, args.work, args.mixup)
        elif stage == "shift":
            part = stage_shift(npz, adult, args.work)
        elif stage == "federated":
            part = stage_federated(
                npz, adult, args.rounds, args.work, args.site_weighting, args.strategy, args.local_steps
            )
            stage = f"federated-{args.strategy}-{args.site_weighting}-{args.local_steps}"
        elif stage == "fedbn":
            part = stage_fedbn(
                npz, adult, args.rounds, args.work, args.site_weighting, args.local_steps, args.only, args.finetune
            )
            stage = f"fedbn-{args.site_weighting}-{args.local_steps}-{args.only or 'all'}-{args.finetune}"
        elif stage == "shift-alt":
            part = stage_shift_alt(npz, adult, Path(args.package) if args.package else args.work / "pneumonia-seed0")
        elif stage == "shift-cc":
            packages = (
                [Path(p) for p in str(args.package).split(",")] if args.package else [args.work / "pneumonia-seed0"]
            )
            part = stage_shift_cc(npz, adult, packages)
        elif stage == "calibration-shift":
            packages = (
                [Path(p) for p in str(args.package).split(",")]
                if args.package
                else [args.work / f"pneumonia-seed{seed}" for seed in seeds]
            )
            part = stage_calibration_shift(npz, packages)
        elif stage == "shift-select":
            part = stage_shift_select(npz, adult, args.work)
        elif stage == "adapt":
            parent = Path(args.package) if args.package else args.work / "pneumonia-seed0"
            part = stage_adapt(adult, parent, seeds, args.folds, args.work, args.start, args.size, args.budget)
            stage = f"adapt-folds{args.folds}-{args.start}" + (f"-{args.size}px" if args.size else "")
        elif stage == "adult":
            part = stage_adult(npz, adult, args.size or 128, args.budget or 240.0, args.work)
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
