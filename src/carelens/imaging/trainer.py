"""Training a model package: seeded training under a time budget with early stopping on validation
AUC, then temperature scaling, an operating threshold and a conformal threshold fitted on validation."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from carelens import __version__
from carelens.core import UsageError
from carelens.imaging.calibration import (
    brier_score,
    cross_fitted_nll,
    ece_if_calibrated,
    expected_calibration_error,
    fit_temperature,
    reliability_diagram,
)
from carelens.imaging.clocks import clock_name
from carelens.imaging.conformal import (
    calibrate_conformal,
    coverage,
    coverage_per_class,
    empty_among_confident,
    prediction_sets,
    set_size_distribution,
)
from carelens.imaging.data import ImageArrays, load_dataset
from carelens.imaging.engine import logits_to_proba, predict_logits, resolve_device, train_one_epoch
from carelens.imaging.metrics import auc, bootstrap_ci, choose_threshold, discrimination, roc_plot
from carelens.imaging.networks import ARCHS, build_model, cam_layer, shift_layers
from carelens.imaging.package import save_weights, write_package_files
from carelens.imaging.shift import DEFAULT_QUANTILE, ShiftReference

# Imaging modality a MedMNIST set's images come from (used by the input checks at inference).
MEDMNIST_MODALITIES = {"pneumoniamnist": ["CR", "DX"], "chestmnist": ["CR", "DX"], "breastmnist": ["US"]}
# ... and the DICOM BodyPartExamined values its images show.
MEDMNIST_BODY_PARTS = {"pneumoniamnist": ["CHEST"], "chestmnist": ["CHEST"], "breastmnist": ["BREAST"]}


@dataclass
class TrainConfig:
    """Everything that shapes a training run (stored in ``model.json``)."""

    arch: str = "cnn"
    seed: int = 0
    time_budget: float | None = None
    max_epochs: int = 60
    patience: int = 10
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    augment: bool = True
    mixup: float = 0.0
    tta: bool = True
    tta_views: int = 2
    device: str = "cpu"
    conformal_target: float = 0.90
    conformal_method: str = "aps"
    class_conditional: bool = True
    threshold_rule: str = "youden"
    ood_z: float = 5.0
    shift_quantile: float = DEFAULT_QUANTILE
    bootstrap: int = 1000
    threads: int | None = None
    version: str = "1.0.0"
    arch_options: dict[str, Any] = field(default_factory=dict)
    modalities: list[str] | None = None
    image_size: int | None = None
    card_file: str | None = None


def views_of(cfg: TrainConfig) -> int:
    """The test-time views a package trained under ``cfg`` averages (:data:`carelens.imaging.engine.TTA_VIEWS`)."""
    return cfg.tta_views if cfg.tta else 1


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and ask torch (and cuDNN) for deterministic kernels."""
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    torch.use_deterministic_algorithms(True, warn_only=True)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block on ``threads`` torch CPU threads (None: as they are), then restore the process's count."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def pixel_statistics(images: np.ndarray) -> dict[str, float]:
    """Mean and spread of the per-image mean and standard deviation (what the out-of-distribution check compares)."""
    flat = images.reshape(len(images), -1)
    means, stds = flat.mean(axis=1), flat.std(axis=1)
    return {
        "mean_of_means": float(means.mean()),
        "std_of_means": float(max(means.std(), 1e-6)),
        "mean_of_stds": float(stds.mean()),
        "std_of_stds": float(max(stds.std(), 1e-6)),
    }


def preprocessing_block(
    image_size: int,
    channels: int,
    modalities: list[str] | None,
    body_parts: list[str] | None,
    pixel_stats: dict[str, float] | None,
    ood_z: float,
    tta: bool,
    views: int | None = None,
) -> dict[str, Any]:
    """The ``preprocessing`` block of a model package (what inference checks and applies); a
    federated entry has no ``pixel_stats`` (the hub never sees an image)."""
    return {
        "image_size": image_size,
        "channels": channels,
        "intensity": "scaled to [0, 1]; DICOM: modality LUT, VOI LUT/window, MONOCHROME1 inverted",
        "resize": "zero-pad to square, box-filter resize",
        "photometric": ["MONOCHROME2", "MONOCHROME1"] if channels == 1 else ["RGB"],
        "modalities": modalities,
        "body_parts": body_parts,
        "pixel_stats": pixel_stats,
        "ood_z_threshold": ood_z,
        "test_time_flip": tta,
        "test_time_views": views or (2 if tta else 1),
    }


def evaluation_metrics(
    logits: np.ndarray,
    labels: np.ndarray,
    task: str,
    temperature: float,
    threshold: float,
    conformal: Any,
    resamples: int = 1000,
) -> dict[str, Any]:
    """The evaluation report's numbers for one split (keys as in the ``image evaluate`` contract)."""
    proba_raw = logits_to_proba(logits, task, 1.0)
    proba = logits_to_proba(logits, task, temperature)
    out: dict[str, Any] = discrimination(proba, labels, task, threshold)
    out["ece"] = expected_calibration_error(proba, labels, task)
    out["ece_uncalibrated"] = expected_calibration_error(proba_raw, labels, task)
    out["brier"] = brier_score(proba, labels, task)
    out["brier_uncalibrated"] = brier_score(proba_raw, labels, task)
    hits = None
    if conformal is not None and task != "multilabel":
        sets = prediction_sets(proba, conformal)
        hits = np.array([int(y) in cs for cs, y in zip(sets, labels, strict=True)], dtype=np.float64)
        out["conformal_target"] = conformal.target
        out["conformal_coverage"] = coverage(sets, labels)
        out["conformal_coverage_per_class"] = coverage_per_class(sets, labels, proba.shape[1])
        out["conformal_method"] = conformal.method
        out["mean_set_size"] = float(np.mean([len(s) for s in sets]))
        out["refer_rate"] = float(np.mean([len(s) != 1 for s in sets]))
        out["set_size_distribution"] = set_size_distribution(sets)
        out["empty_sets_among_confident"] = empty_among_confident(sets, proba)
    else:
        out["conformal_target"] = None
        out["conformal_coverage"] = None
    out["n"] = len(labels)
    out["operating_threshold"] = threshold

    out["ece_if_calibrated"] = ece_if_calibrated(proba, task)

    def stat(idx: np.ndarray) -> dict[str, float]:
        values = discrimination(proba[idx], labels[idx], task, threshold)
        values["ece"] = expected_calibration_error(proba[idx], labels[idx], task)
        return values | ({"conformal_coverage": float(hits[idx].mean())} if hits is not None else {})

    out["ci"] = bootstrap_ci(stat, len(labels), resamples=resamples) if len(labels) > 1 else {}
    return out


def train(
    data: str | Path | tuple[ImageArrays, ImageArrays],
    out: str | Path,
    config: TrainConfig | None = None,
    clock: Callable[[], float] = time.monotonic,
    start_from: torch.nn.Module | None = None,
    out_of_fold: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Train, calibrate and write a model package to ``out``; return its ``model.json`` contents.

    ``data`` is an ``.npz`` file or image folder (its train and val splits), or a
    ``(train, val)`` pair of :class:`ImageArrays`. ``clock`` measures the time budget (tests pass
    a fake one, so that what they check does not depend on the machine's speed). ``start_from``: a
    network (of ``cfg.arch``) whose weights training starts from (fine-tuning) instead of random ones.
    ``out_of_fold``: (logits, labels) of training images from networks that did not train on them (cross-fitting,
    see :func:`carelens.imaging.adapt.cross_fit`); they join the validation logits for the temperature, threshold and
    conformal thresholds (not the shift reference, which needs images the final network has not seen).
    """
    cfg = config or TrainConfig()
    if cfg.arch not in ARCHS:
        raise UsageError(f"unknown architecture {cfg.arch!r}: choose one of {', '.join(ARCHS)}")
    if isinstance(data, tuple):
        train_set, val_set = data
        data_name = "in-memory arrays"
    else:
        size = cfg.image_size or 28
        if not 28 <= size <= 512:
            raise UsageError(f"--image-size must be between 28 and 512, not {size}")
        train_set = load_dataset(data, "train", image_size=size, resize=cfg.image_size is not None)
        val_set = load_dataset(data, "val", image_size=size, resize=cfg.image_size is not None)
        data_name = Path(data).name
    if len(val_set) < 2:
        raise UsageError("the validation split needs at least two images (early stopping and calibration use it)")
    with torch_threads(cfg.threads):  # calibration and the shift reference run on them too
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        started = clock()
        device = resolve_device(cfg.device)
        image_size = int(train_set.images.shape[-1])
        channels = int(train_set.images.shape[1])
        model, history, best_epoch, stop_reason = fit_network(train_set, val_set, cfg, clock, start_from, out)
        val_logits = predict_logits(model, val_set, views=views_of(cfg))
        cal_labels = val_set.labels
        if out_of_fold is not None:
            val_logits = np.concatenate([val_logits, out_of_fold[0]])
            cal_labels = np.concatenate([cal_labels, out_of_fold[1]])
        task = val_set.task
        temperature = fit_temperature(val_logits, cal_labels, task)
        val_proba = logits_to_proba(val_logits, task, temperature)
        threshold = choose_threshold(val_proba, cal_labels, cfg.threshold_rule) if task == "binary" else 0.5
        conformal = (
            calibrate_conformal(
                val_proba, cal_labels, cfg.conformal_target, cfg.conformal_method, cfg.class_conditional
            )
            if task != "multilabel"
            else None
        )
        val_metrics = evaluation_metrics(val_logits, cal_labels, task, temperature, threshold, conformal, cfg.bootstrap)
        reliability_diagram(
            {"uncalibrated": logits_to_proba(val_logits, task), "temperature-scaled": val_proba},
            cal_labels,
            task,
            out / "reliability.png",
        )
        roc_plot(val_proba, cal_labels, task, val_set.label_names, out / "roc.png")
        shift = fit_shift_reference(model, train_set, val_set, shift_layers(cfg.arch, image_size), cfg.shift_quantile)
        shift.save(out)
        model_id = save_weights(model, out)
        meta = _model_json(
            model_id, cfg, train_set, val_set, data_name, temperature, threshold, conformal, val_metrics,
            history, best_epoch, stop_reason, clock() - started, clock_name(clock), device, image_size, channels,
        )  # fmt: skip
        meta["shift"] = shift.summary()
        meta["calibration"]["cross_fitted_nll"] = cross_fitted_nll(val_logits, cal_labels, task)
        if out_of_fold is not None:
            meta["training"]["counts"] |= {"out_of_fold": len(out_of_fold[1])}
            meta["calibration"]["fitted_on"] = "validation split and out-of-fold predictions of the training images"
        write_package_files(out, meta)
        return meta


def fit_network(
    train_set: ImageArrays,
    val_set: ImageArrays,
    cfg: TrainConfig,
    clock: Callable[[], float] = time.monotonic,
    start_from: torch.nn.Module | None = None,
    out: Path | None = None,
) -> tuple[torch.nn.Module, list[dict[str, float]], int, str]:
    """Seeded training under ``cfg`` (time budget, cosine schedule, early stopping on validation AUC in the
    schedule's second half): the best epoch's network (on the CPU, in eval mode), the history, the best epoch and why
    training stopped. With ``out``, the best epoch's weights and optimizer state are checkpointed there."""
    with torch_threads(cfg.threads):
        started = clock()
        seed_everything(cfg.seed)
        device = resolve_device(cfg.device)
        image_size = int(train_set.images.shape[-1])
        channels = int(train_set.images.shape[1])
        model = (
            copy.deepcopy(start_from)
            if start_from is not None
            else build_model(cfg.arch, channels, train_set.num_classes, image_size, **cfg.arch_options)
        ).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps_per_epoch = max(1, math.ceil(len(train_set) / cfg.batch_size))
        plan = {"epochs": cfg.max_epochs}
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(1.0, step / (plan["epochs"] * steps_per_epoch))))
        )
        # leave a little of the budget for calibration and writing the package
        deadline = started + 0.93 * cfg.time_budget if cfg.time_budget else None
        history: list[dict[str, float]] = []
        best_auc, best_state, best_epoch, stale = -1.0, copy.deepcopy(model.state_dict()), 0, 0
        stop_reason = "max_epochs"
        for epoch in range(1, cfg.max_epochs + 1):
            epoch_start = clock()
            loss = train_one_epoch(
                model,
                train_set,
                optimizer,
                batch_size=cfg.batch_size,
                augment=cfg.augment,
                seed=cfg.seed * 1000 + epoch,
                device=device,
                scheduler=scheduler,
                deadline=deadline,
                progress_desc=f"epoch {epoch}",
                clock=clock,
                mixup=cfg.mixup,
            )
            val_logits = predict_logits(model, val_set, tta=cfg.tta, device=device)
            val_auc = auc(logits_to_proba(val_logits, val_set.task), val_set.labels, val_set.task)
            history.append({"epoch": epoch, "loss": round(loss, 5), "val_auc": round(val_auc, 5)})
            if val_auc > best_auc:
                best_auc, best_state, best_epoch, stale = val_auc, copy.deepcopy(model.state_dict()), epoch, 0
                if out is not None:
                    torch.save(
                        {"epoch": epoch, "model": best_state, "optimizer": optimizer.state_dict()},
                        out / "checkpoint.pt",
                    )
            else:
                stale += 1
            epoch_time = clock() - epoch_start
            if deadline is not None:
                if epoch == 1:  # fit the cosine schedule to the epochs the budget allows
                    plan["epochs"] = max(2, min(cfg.max_epochs, int((deadline - started) // epoch_time)))
                if clock() + epoch_time > deadline:
                    stop_reason = "time_budget"
                    break
            # early stopping waits for the schedule's second half: at a high learning rate the validation AUC of a
            # near-separable split swings by chance (a mixup run stopped at epoch 18 of 58 with the rate at 80%)
            if stale >= cfg.patience and epoch > plan["epochs"] // 2:
                stop_reason = "early_stopping"
                break
            if epoch >= plan["epochs"]:
                stop_reason = "schedule_done"
                break
        model.load_state_dict(best_state)
        model.cpu().eval()
        return model, history, best_epoch, stop_reason


def fit_shift_reference(
    model: torch.nn.Module, train_set: ImageArrays, val_set: ImageArrays, layers: list[str], quantile: float
) -> ShiftReference:
    """The package's description of its training distribution (see :mod:`carelens.imaging.shift`)."""
    from carelens.imaging.shift import features_and_logits, fit_reference, input_description

    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(len(train_set.images), min(len(train_set.images), 5000), replace=False))

    def describe(images: np.ndarray) -> dict[str, np.ndarray]:
        return {"features": features_and_logits(model, images, layers)[0], "pixels": input_description(images)}

    return fit_reference(
        describe(train_set.images[pick]), describe(val_set.images), quantile, layers,
        train_set.labels[pick], val_set.labels,
    )  # fmt: skip


def _model_json(
    model_id: str,
    cfg: TrainConfig,
    train_set: ImageArrays,
    val_set: ImageArrays,
    data_name: str,
    temperature: float,
    threshold: float,
    conformal: Any,
    val_metrics: dict[str, Any],
    history: list[dict[str, float]],
    best_epoch: int,
    stop_reason: str,
    elapsed: float,
    budget_clock: str,
    device: torch.device,
    image_size: int,
    channels: int,
) -> dict[str, Any]:
    labels = train_set.label_names
    counts = _class_counts(train_set)
    stem = data_name.lower().split(".")[0].split("_")[0]  # pneumoniamnist_64.npz: pneumoniamnist
    modalities = cfg.modalities if cfg.modalities is not None else MEDMNIST_MODALITIES.get(stem)
    vm = val_metrics
    ci = vm.get("ci", {}).get("auc", [None, None])
    positive = labels[1] if train_set.task == "binary" else None
    performance = (
        f"On the validation split (n={vm['n']}): AUC {vm['auc']:.3f}"
        + (f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if ci[0] is not None else "")
        + f", accuracy {vm['accuracy']:.3f}, sensitivity {vm['sensitivity']:.3f}, specificity {vm['specificity']:.3f}"
        f" at threshold {threshold:.3f}; ECE {vm['ece']:.3f} after temperature scaling "
        f"({vm['ece_uncalibrated']:.3f} before). The validation split also chose the threshold, the temperature and "
        "the conformal threshold, so these numbers are optimistic: run `carelens image evaluate` on held-out test data."
    )
    return {
        "id": model_id,
        "name": f"carelens-imaging-{cfg.arch}",
        "version": cfg.version,
        "kind": "image-classifier",
        "arch": cfg.arch,
        "arch_options": cfg.arch_options,
        "task": train_set.task,
        "labels": labels,
        "positive_label": positive,
        "preprocessing": preprocessing_block(
            image_size,
            channels,
            modalities,
            MEDMNIST_BODY_PARTS.get(stem),
            pixel_statistics(train_set.images),
            cfg.ood_z,
            cfg.tta,
            views_of(cfg),
        ),
        "operating_threshold": threshold,
        "threshold_rule": cfg.threshold_rule if train_set.task == "binary" else "argmax",
        "calibration": {"method": "temperature scaling", "temperature": temperature, "fitted_on": "validation"},
        "conformal": conformal.to_dict() if conformal else None,
        "metrics": {"validation": vm},
        "saliency": {"method": "Grad-CAM", "layer": cam_layer(cfg.arch, image_size)},
        "training": {
            "data": data_name,
            "counts": {"train": len(train_set), "val": len(val_set)},
            "class_counts": counts,
            "seed": cfg.seed,
            "epochs_run": len(history),
            "best_epoch": best_epoch,
            "stopped_because": stop_reason,
            "time_budget_s": cfg.time_budget,
            "budget_clock": budget_clock,
            "elapsed_s": round(elapsed, 1),
            "device": device.type,
            "optimizer": f"AdamW lr {cfg.lr} weight decay {cfg.weight_decay}, cosine schedule",
            "batch_size": cfg.batch_size,
            "augmentation": "flips, rotation ±10°, shift ±7%, zoom ±10%, intensity ±10%" if cfg.augment else "none",
            "class_weighting": "inverse frequency",
            "mixup": cfg.mixup or None,
            "history": history,
        },
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "carelens_version": __version__,
        "files": {
            "weights": "weights.pt",
            "card": "MODEL_CARD.md",
            "reliability": "reliability.png",
            "roc": "roc.png",
            "shift": "shift.npz",
        },
        "card": {
            **model_card_file(cfg.card_file, stem),
            "data": (
                f"Trained on {len(train_set)} images from {data_name} "
                f"({', '.join(f'{k}: {v}' for k, v in counts.items())}); "
                f"{len(val_set)} validation images for early stopping, temperature scaling, threshold and conformal "
                f"calibration. Images at {image_size}x{image_size} px, {channels} channel(s)."
            ),
            "performance": performance,
            "limitations": [
                *(
                    [f"Low resolution ({image_size} px): fine findings may be invisible to the model."]
                    * (image_size < 128)
                ),
                "Trained on one public data set; performance at another site, scanner or population is unknown until "
                "validated there.",
                "Conformal coverage holds on average over images like the calibration data, not for each patient or "
                "subgroup.",
                "Grad-CAM heatmaps show where the network looked, not why; they are withheld when they fail the "
                "randomisation sanity check.",
            ],
        },
    }


def model_card_file(path: str | None, data_stem: str) -> dict[str, Any]:
    """The developer's model card (HTI-1 source attributes): ``path``, else the card shipped for the data set
    (``imaging/cards/<data>.json``, e.g. PneumoniaMNIST), else the default card."""
    import json
    from importlib import resources

    if path:
        try:
            card = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise UsageError(f"{Path(path).name}: not a readable model-card JSON file ({type(err).__name__})") from None
        if not isinstance(card, dict):
            raise UsageError(f"{Path(path).name}: a model card is a JSON object of attribute: text")
        return card
    cards = resources.files("carelens.imaging").joinpath("cards")
    shipped = cards.joinpath(f"{data_stem}.json")
    chosen = shipped if shipped.is_file() else cards.joinpath("default.json")
    return dict(json.loads(chosen.read_text(encoding="utf-8")))


def _class_counts(arrays: ImageArrays) -> dict[str, int]:
    if arrays.task == "multilabel":
        return {name: int(arrays.labels[:, k].sum()) for k, name in enumerate(arrays.label_names)}
    counts = np.bincount(arrays.labels, minlength=arrays.num_classes)
    return {name: int(c) for name, c in zip(arrays.label_names, counts, strict=True)}
