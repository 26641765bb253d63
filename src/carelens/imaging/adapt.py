"""Local validation and adaptation at a new site: recalibrate (temperature, operating threshold, conformal
thresholds, shift reference) on the site's labelled images, fine-tune when there are enough of them, and
validate on the site's held-out patients; the result is a new model package and registry entry whose
lineage names its parent and whose local validation is its evidence."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from carelens.core import InputError, UsageError
from carelens.imaging.calibration import cross_fitted_nll
from carelens.imaging.data import ImageArrays, concatenate, load_dataset, patient_bucket, patient_of
from carelens.imaging.engine import logits_to_proba, predict_logits
from carelens.imaging.metrics import auc
from carelens.imaging.package import load_package, write_package_files
from carelens.imaging.trainer import TrainConfig, fit_network, train

if TYPE_CHECKING:
    import torch

MIN_FINETUNE = 100  # labelled training images of the site needed to fine-tune; fewer: recalibrate only
# Cross-fitting: the site's training patients fall in this many folds; a network fine-tuned without each fold
# predicts it, and these out-of-fold predictions of every training image (with the validation split) calibrate
# the temperature and the per-class conformal thresholds of the final network, fine-tuned on all of them (the
# validation split alone, ~15% of patients, gives each class too few points for a stable 90% quantile).
FOLDS = 4
# Test-time views the adapted model may average (:data:`carelens.imaging.engine.TTA_VIEWS`), chosen by the
# cross-fitted NLL of the out-of-fold predictions: on PneumoniaMNIST eight views lowered the validation NLL but
# raised the test ECE (its test split is shifted from validation), so the choice is made per site on its own data.
VIEW_CHOICES = (2, 8)
# Where the site's network starts: the parent's weights (fine-tuning), fresh weights of the parent's architecture
# (training at the site alone), or ``auto``: whichever ranks the site's training patients better out of fold (at the
# adult site the pediatric parent's features rank adults worse than chance, so fine-tuning can start behind).
STARTS = ("parent", "scratch", "auto")


def validation_criteria() -> dict[str, float]:
    """The thresholds a local validation must meet (``validation_criteria.json``)."""
    text = resources.files("carelens.imaging").joinpath("validation_criteria.json").read_text(encoding="utf-8")
    return {k: v for k, v in json.loads(text).items() if k != "description"}


def judge(metrics: dict[str, Any], criteria: dict[str, float]) -> list[str]:
    """The criteria a validation fails (empty: passed)."""
    failed = []
    if metrics["n"] < criteria["min_n"]:
        failed.append(f"only {metrics['n']} held-out images (needs {criteria['min_n']:g})")
    if not metrics["auc"] >= criteria["min_auc"]:
        failed.append(f"AUC {metrics['auc']:.3f} < {criteria['min_auc']:g}")
    if not metrics["ece"] <= criteria["max_ece"]:
        failed.append(f"ECE {metrics['ece']:.3f} > {criteria['max_ece']:g}")
    if metrics.get("conformal_coverage") is not None:
        gap = abs(metrics["conformal_coverage"] - metrics["conformal_target"])
        if gap > criteria["max_coverage_gap"]:
            failed.append(f"conformal coverage off target by {gap:.3f} > {criteria['max_coverage_gap']:g}")
    outside = metrics.get("outside_rate")
    if outside is not None and outside > criteria["max_outside_rate"]:
        failed.append(f"{outside:.1%} of images outside the validated population > {criteria['max_outside_rate']:.0%}")
    return failed


def folds_of(arrays: ImageArrays, folds: int = FOLDS) -> np.ndarray:
    """Each image's cross-fitting fold (0 to ``folds - 1``), from its patient (hashed): a patient's images share one."""
    patients = [patient_of({"_file": source}) for source in arrays.sources]
    return np.array([patient_bucket(f"fold:{p}") % folds for p in patients], dtype=np.int64)


def _all_classes(arrays: ImageArrays, classes: int) -> bool:
    return arrays.task == "multilabel" or len(np.unique(arrays.labels)) == classes


def cross_fit(
    parent: torch.nn.Module | None,
    site_train: ImageArrays,
    site_val: ImageArrays,
    cfg: TrainConfig,
    folds: int = FOLDS,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[dict[int, np.ndarray], list[dict[str, Any]]] | None:
    """Out-of-fold logits of every training image, for each candidate number of test-time views
    (:data:`VIEW_CHOICES`): for each fold, ``parent`` fine-tuned on the other folds (early stopping on
    ``site_val``; ``None``: fresh weights of ``cfg.arch`` trained there) predicts that fold. None where a fold's
    complement is too small or lacks a class. ``clock`` measures each fit's share of ``cfg.time_budget``."""
    fold = folds_of(site_train, folds)
    classes = site_val.num_classes
    parts = [site_train.subset(fold != k) for k in range(folds)]
    if any(len(p) < MIN_FINETUNE or not _all_classes(p, classes) for p in parts) or len(np.unique(fold)) < folds:
        return None
    choices = VIEW_CHOICES if cfg.tta else (1,)
    logits = {v: np.zeros((len(site_train), classes)) for v in choices}
    runs = []
    for k, part in enumerate(parts):
        network, history, best_epoch, stopped = fit_network(part, site_val, cfg, clock, start_from=parent)
        for v in choices:
            logits[v][fold == k] = predict_logits(network, site_train.subset(fold == k), views=v)
        runs.append({"fold": k, "fit": len(part), "held_out": int((fold == k).sum()), "epochs_run": len(history),
                     "best_epoch": best_epoch, "stopped_because": stopped})  # fmt: skip
    return logits, runs


def site_name_of(data: str | Path) -> str:
    """A site's name from its data path (``.../nih-adult-dev/images`` -> ``nih-adult-dev``)."""
    path = Path(data)
    return path.parent.name if path.name in ("images", "data") and path.parent.name else path.stem


def adapt(
    model_dir: str | Path,
    data: str | Path,
    out: str | Path,
    time_budget: float | None = None,
    seed: int = 0,
    image_size: int | None = None,
    site: str | None = None,
    store: str | Path | None = None,
    register: bool = True,
    max_epochs: int = 80,
    lr: float = 3e-3,
    patience: int = 20,
    folds: int = FOLDS,
    start: str = "parent",
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Adapt the package at ``model_dir`` to the site whose labelled images are ``data`` (its train, val and
    test splits; folders split by patient). Returns the new package's ``model.json`` contents.

    Fine-tuning defaults (80 epochs, lr 3e-3, patience 20) were chosen on the adult site's validation and
    calibration images (``benchmarks/results/imaging.md``): with patience 8 on ~80 validation images training
    stopped before the small site's model had converged. ``folds``: cross-fitting folds for calibration (0 or 1:
    calibrate on the validation split alone); ``time_budget`` is shared by the ``folds`` fits and the final one.
    ``start``: see :data:`STARTS`; ``auto`` cross-fits both starts and keeps the one with the higher out-of-fold AUC
    (the parent where there are too few images to cross-fit). ``clock`` measures ``time_budget`` (the benchmark passes
    ``time.process_time``: CPU seconds)."""
    from carelens.imaging.evaluate import evaluate

    if start not in STARTS:
        raise UsageError(f"unknown start {start!r}: choose {', '.join(STARTS)}")

    parent = load_package(model_dir)
    prep = parent.preprocessing
    size = image_size or int(prep["image_size"])
    site = site or site_name_of(data)

    def load(split: str) -> ImageArrays:
        arrays = load_dataset(
            data, split, image_size=size, channels=int(prep["channels"]), known_labels=parent.labels, resize=True
        )
        if arrays.task != parent.task:
            raise InputError(f"the site's labels make a {arrays.task} task but the model is {parent.task}")
        return arrays

    site_train, site_val, site_test = load("train"), load("val"), load("test")
    before = evaluate(parent, site_test, "test", resamples=200) if size == int(prep["image_size"]) else None
    classes_seen = parent.task == "multilabel" or len(np.unique(site_train.labels)) == len(parent.labels)
    fine_tune = len(site_train) >= MIN_FINETUNE and classes_seen
    if start == "scratch" and not fine_tune:
        raise UsageError(f"training at the site needs at least {MIN_FINETUNE} labelled training images of every class")
    cross = fine_tune and folds > 1
    starts = ("parent", "scratch") if start == "auto" and cross else ("scratch",) if start == "scratch" else ("parent",)
    fits = folds * len(starts) + 1 if cross else 1
    cfg = TrainConfig(
        arch=str(parent.meta["arch"]),
        arch_options=dict(parent.meta.get("arch_options") or {}),
        seed=seed,
        time_budget=time_budget / fits if time_budget else None,
        max_epochs=max_epochs if fine_tune else 0,
        patience=patience,
        lr=lr,
        tta=bool(prep.get("test_time_flip", True)),
        conformal_target=parent.conformal.target if parent.conformal else 0.9,
        conformal_method=parent.conformal.method if parent.conformal else "aps",
        modalities=prep.get("modalities"),
        version=f"{parent.version}-{site}",
    )
    crossed = {
        s: cross_fit(parent.model if s == "parent" else None, site_train, site_val, cfg, folds, clock)
        for s in (starts if cross else ())
    }
    auc_by_start = {
        s: auc(logits_to_proba(x[0][min(x[0])], parent.task), site_train.labels, parent.task)
        for s, x in crossed.items()
        if x is not None
    }
    chosen = max(auc_by_start, key=auc_by_start.__getitem__) if auc_by_start else starts[0]  # a tie: the parent
    fitted = crossed.get(chosen)
    pair = (site_train, site_val) if fine_tune else (site_train, concatenate(site_train, site_val))
    oof, nll_by_views = None, {}
    if fitted is not None:
        nll_by_views = {v: cross_fitted_nll(x, site_train.labels, parent.task) for v, x in fitted[0].items()}
        cfg.tta_views = min(fitted[0], key=lambda v: nll_by_views[v].get("temperature", 0.0))
        oof = (fitted[0][cfg.tta_views], site_train.labels)
    meta = train(pair, out, cfg, clock, parent.model if chosen == "parent" else None, oof)
    if fitted is not None:
        meta["calibration"]["cross_fitting"] = {
            "folds": folds, "by": "patient", "runs": fitted[1], "views": cfg.tta_views,
            "out_of_fold_nll_by_views": {str(v): x for v, x in nll_by_views.items()},
            "start": chosen, "out_of_fold_auc_by_start": {k: round(v, 4) for k, v in auc_by_start.items()},
        }  # fmt: skip
    out = Path(out)
    adapted = load_package(out)
    local = evaluate(adapted, site_test, "test", resamples=500)
    criteria = validation_criteria()
    failed = judge(local, criteria)
    validation = site_validation(site, local, criteria, failed)
    validation["before_adaptation"] = None if before is None else site_validation(site, before, criteria, [])
    parent_sites = (parent.meta.get("lineage") or {}).get("sites") or [
        {"site": "training", "data": parent.meta.get("training", {}).get("data")}
    ]
    meta["name"] = f"{parent.meta.get('name', 'carelens-imaging')}@{site}"
    meta["lineage"] = {
        "parent": {"id": parent.id, "version": parent.version, "name": parent.meta.get("name")},
        "method": (
            "recalibrated (too few labels to fine-tune)"
            if not fine_tune
            else "fine-tuned and recalibrated"
            if chosen == "parent"
            else "trained at the site from fresh weights of the parent's architecture, and calibrated"
            + (" (out-of-fold AUC above fine-tuning's)" if len(auc_by_start) > 1 else "")
        ),
        "sites": [*parent_sites, {"site": site, "data": str(Path(data).name), "counts": meta["training"]["counts"]}],
    }
    meta["site_validations"] = [validation]
    meta["metrics"]["local_test"] = {k: v for k, v in local.items() if k not in ("subgroups", "quarantined")}
    meta["card"] = {**(parent.meta.get("card") or {}), **_adapted_card(meta["card"], site, validation)}
    write_package_files(out, meta)
    if register:
        from carelens.models.registry import Registry

        registry = Registry(store)
        entry = registry.register(out)
        registry.append_record(
            entry.id,
            "validation",
            {"process": "carelens image adapt: held-out patients of the site", "sites": [validation]},
        )
        meta["registry_id"] = entry.id
        if before is not None:  # the parent's external validation at this site, whatever it showed
            parent_entry = registry.register(model_dir)
            registry.append_record(
                parent_entry.id,
                "validation",
                {
                    "process": "carelens image adapt: the unadapted model on the site's held-out patients",
                    "sites": [validation["before_adaptation"]],
                },
            )
    return meta


def site_validation(site: str, result: dict[str, Any], criteria: dict[str, float], failed: list[str]) -> dict[str, Any]:
    """A registry validation record's site entry: metrics with their intervals, subgroups, verdict."""
    cis = result.get("ci", {})
    metrics: dict[str, Any] = {}
    for key in ("auc", "accuracy", "sensitivity", "specificity", "ece", "conformal_coverage", "outside_rate"):
        value = result.get(key)
        if value is None:
            continue
        ci = cis.get(key) or [None, None]
        metrics[key] = {"value": round(float(value), 4), "ci_low": ci[0], "ci_high": ci[1]}
    subgroups = [
        {"group": column, "value": value, "n": m.get("n"), "auc": m.get("auc"), "suppressed": "reason" in m}
        for column, groups in result.get("subgroups", {}).items()
        for value, m in groups.items()
    ]
    return {
        "site": site,
        "split": "test (patients held out of adaptation)",
        "n": result["n"],
        "metrics": metrics,
        "conformal_target": result.get("conformal_target"),
        "set_size_distribution": result.get("set_size_distribution"),
        "subgroups": subgroups,
        "demographics": ", ".join(result.get("subgroups", {})) or None,
        "criteria": criteria,
        "passed": not failed,
        "failed": failed,
    }


def _adapted_card(card: dict[str, Any], site: str, validation: dict[str, Any]) -> dict[str, Any]:
    m = {k: v["value"] for k, v in validation["metrics"].items()}
    m["conformal_target"] = validation["conformal_target"]
    verdict = "passed" if validation["passed"] else "did not pass (" + "; ".join(validation["failed"]) + ")"
    return {
        "intended_patient_population": (
            f"Patients at {site} like its labelled images used for adaptation; the parent model's population: "
            + str(card.get("intended_patient_population", "as in its training data"))
        ),
        "data": card.get("data", "") + f" Adapted at site {site}.",
        "local_validation": (
            f"At {site}, on {validation['n']} held-out images (patients not used in adaptation): AUC {m['auc']:.3f}, "
            f"ECE {m['ece']:.3f}, conformal coverage {m['conformal_coverage']:.3f} (target {m['conformal_target']}); "
            f"the local validation {verdict}."
        ),
    }
