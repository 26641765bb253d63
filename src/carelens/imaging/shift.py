"""Shift detection: does an image (or a site's images) come from the population the model was validated on?

A model package carries a description of its training distribution, per class of its training images: a
(Ledoit-Wolf) Gaussian of the network's description of an image (the image at 8 x 8 px, the mean and spread
of each stage's channels, the penultimate features) and of an input-level one (the image alone at 6 x 6 px,
which catches another body part, modality or acquisition whatever the network learned). Each distance is
standardised on the class's validation images; an image's score is the smallest sum over the classes (it
is inside when it resembles some class: Lee et al. 2018). Per class, because one Gaussian over all training
images is dominated by the larger class (74% pneumonia in PneumoniaMNIST) and flags the other class's images,
so the outside rate would follow a site's class mix. The threshold is a quantile of the validation images'
scores (:data:`DEFAULT_QUANTILE`), a rule on the training site alone. An image beyond it is "outside
validated population: refer". ``benchmarks/imaging.py --stages shift-alt`` measured this against the
alternatives (see ``benchmarks/results/imaging.md``); :func:`score_auroc` is the measure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from carelens.core.heap import heap_kept
from carelens.core.plots import figure

SHIFT_FILE = "shift.npz"
FORMAT = 2  # shift.npz layout: classes x descriptions of Gaussians (format 1: one Gaussian, raw distances)
OUTSIDE = "outside validated population: refer"
# Target outside rate on the training site's validation images: 3%. With the score per class, the rate on a later
# test split of the same site stays within about a point of it whatever the class mix, so 5% is not crossed.
DEFAULT_QUANTILE = 0.97


def _last_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("the network has no linear head to read penultimate features from")
    return linears[-1]


PIXEL_GRID = 8  # the image itself, averaged down to 8 x 8, is part of the description


@torch.no_grad()
@heap_kept()
def features_and_logits(
    model: nn.Module, images: np.ndarray, layers: list[str] | None = None, batch_size: int = 128
) -> tuple[np.ndarray, np.ndarray]:
    """An image description for shift detection (``N x D``) and the logits (``N x K``).

    Without ``layers``: the penultimate-layer features (the input of the last linear layer). With
    ``layers``: the image averaged to 8 x 8 px, the mean and spread per channel of each named layer's
    output, and the penultimate features, side by side (what the package's reference uses).
    """
    model.eval()
    named = dict(model.named_modules())
    captured: dict[str, torch.Tensor] = {}

    def keep(name: str):
        return lambda _m, _args, output: captured.__setitem__(name, output)

    handles = [_last_linear(model).register_forward_pre_hook(lambda _m, args: captured.__setitem__("_pen", args[0]))]
    handles += [named[name].register_forward_hook(keep(name)) for name in layers or []]
    feats, logits = [], []
    try:
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size], dtype=np.float32))
            out = model(x)
            parts = []
            if layers:
                parts.append(nn.functional.adaptive_avg_pool2d(x.mean(1, keepdim=True), PIXEL_GRID).flatten(1))
                for name in layers:
                    act = captured[name]
                    parts += [act.mean((2, 3)), act.std((2, 3))]
            parts.append(captured["_pen"].flatten(1))
            feats.append(torch.cat(parts, 1).double().numpy())
            logits.append(out.double().numpy())
    finally:
        for handle in handles:
            handle.remove()
    if not feats:
        return np.zeros((0, 0)), np.zeros((0, 0))
    return np.concatenate(feats), np.concatenate(logits)


def energy(logits: np.ndarray) -> np.ndarray:
    """Energy score ``-logsumexp(logits)``: higher means less like the training data."""
    z = np.asarray(logits, dtype=np.float64)
    top = z.max(axis=1, keepdims=True)
    return -(top[:, 0] + np.log(np.exp(z - top).sum(axis=1)))


INPUT_GRID = 6  # the input-level description: the image alone, averaged down to 6 x 6 px
MIN_GROUP = 20  # training images (and half as many validation images) a class needs for its own reference


def input_description(images: np.ndarray) -> np.ndarray:
    """The input-level description (``N x 36``): the image averaged to 6 x 6 px, intensities as the model reads them."""
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).mean(1, keepdim=True)
    return nn.functional.adaptive_avg_pool2d(x, INPUT_GRID).flatten(1).double().numpy()


@dataclass
class Gaussian:
    """One description of one class: standardisation, Ledoit-Wolf mean and precision, and the spread of the
    class's validation images' distances (to put descriptions on one scale)."""

    scale_mean: np.ndarray
    scale_std: np.ndarray
    mean: np.ndarray
    precision: np.ndarray
    val_mean: float = 0.0
    val_std: float = 1.0

    def distance(self, features: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each row to this class's training images."""
        d = (np.asarray(features, dtype=np.float64) - self.scale_mean) / self.scale_std - self.mean
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", d, self.precision, d), 0.0))

    def z(self, features: np.ndarray) -> np.ndarray:
        return (self.distance(features) - self.val_mean) / self.val_std


def fit_gaussian(features: np.ndarray) -> Gaussian:
    from sklearn.covariance import LedoitWolf

    feats = np.asarray(features, dtype=np.float64)
    scale_mean, scale_std = feats.mean(axis=0), np.maximum(feats.std(axis=0), 1e-6)
    lw = LedoitWolf().fit((feats - scale_mean) / scale_std)
    return Gaussian(scale_mean, scale_std, lw.location_, lw.precision_)


@dataclass
class ShiftReference:
    """Per class (``groups``) one Gaussian per description (``parts``), and the score threshold fitted on validation.

    The score of an image is, over the classes, the smallest sum over descriptions of its distance standardised
    by that class's validation images (Lee et al. 2018's class-conditional Mahalanobis score, with an
    input-level description beside the network's): an image is inside when it resembles the training images of
    some class. A reference from before classes and parts (one Gaussian of the ``features`` part, distances
    not standardised) still loads and scores as it did."""

    parts: list[str]
    groups: list[str]
    gaussians: list[list[Gaussian]]  # [group][part]
    layers: list[str]
    threshold: float
    quantile: float
    n_reference: int
    n_calibration: int
    calibration_scores: np.ndarray

    def describe(self, model: nn.Module, images: np.ndarray) -> dict[str, np.ndarray]:
        """Each description of the images (``N x C x H x W`` model input) this reference scores."""
        out = {"features": features_and_logits(model, images, self.layers)[0]} if "features" in self.parts else {}
        if "pixels" in self.parts:
            out["pixels"] = input_description(images)
        return out

    def score(self, descriptions: dict[str, np.ndarray]) -> np.ndarray:
        """The shift score of each row (higher: less like the training images)."""
        per_group = [
            sum(g.z(descriptions[part]) for part, g in zip(self.parts, row, strict=True)) for row in self.gaussians
        ]
        return np.min(np.stack(per_group), axis=0)

    def image_scores(self, model: nn.Module, images: np.ndarray) -> np.ndarray:
        """The shift score of each image (``N x C x H x W`` model input); beyond :attr:`threshold` is outside."""
        if not len(images):
            return np.zeros(0)
        return self.score(self.describe(model, images))

    @property
    def expected_outside_rate(self) -> float:
        """Share of the validation images beyond the threshold (what a matching site should show)."""
        if not len(self.calibration_scores):
            return 1.0 - self.quantile
        return max(float(np.mean(self.calibration_scores > self.threshold)), 1.0 - self.quantile)

    @property
    def method(self) -> str:
        if self.parts == ["features"] and len(self.groups) == 1:
            return "mahalanobis (Ledoit-Wolf) on the image at 8x8 px, pooled stage outputs and penultimate features"
        per = "per class (nearest class)" if len(self.groups) > 1 else "all classes together"
        return (
            f"class-conditional Mahalanobis (Ledoit-Wolf), {per}: the network's description (the image at 8x8 px, "
            f"pooled stage outputs, penultimate features) plus the image at {INPUT_GRID}x{INPUT_GRID} px, each "
            "standardised on the class's validation images"
        )

    def summary(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "parts": self.parts,
            "groups": self.groups,
            "layers": self.layers,
            "threshold": round(self.threshold, 4),
            "quantile": self.quantile,
            "n_reference": self.n_reference,
            "n_calibration": self.n_calibration,
            "file": SHIFT_FILE,
        }

    def save(self, folder: Path) -> None:
        arrays: dict[str, Any] = {}
        for i, row in enumerate(self.gaussians):
            for j, g in enumerate(row):
                for key in ("scale_mean", "scale_std", "mean", "precision"):
                    arrays[f"g{i}_p{j}_{key}"] = getattr(g, key)
                arrays[f"g{i}_p{j}_val"] = np.array([g.val_mean, g.val_std])
        np.savez(
            Path(folder) / SHIFT_FILE,
            format=np.array(FORMAT),
            parts=np.array(self.parts, dtype=str),
            groups=np.array(self.groups, dtype=str),
            layers=np.array(self.layers, dtype=str),
            threshold=self.threshold,
            quantile=self.quantile,
            n=np.array([self.n_reference, self.n_calibration]),
            calibration_scores=self.calibration_scores,
            **arrays,
        )


def _groups(
    labels: np.ndarray | None, val_labels: np.ndarray | None, n_train: int, n_val: int
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, training mask, validation mask) per class with enough images of both; one group otherwise."""
    if labels is not None and val_labels is not None and labels.ndim == 1:
        masks = [(str(int(c)), labels == c, val_labels == c) for c in np.unique(labels)]
        if len(masks) > 1 and all(t.sum() >= MIN_GROUP and v.sum() >= MIN_GROUP // 2 for _, t, v in masks):
            return masks
    return [("all", np.ones(n_train, bool), np.ones(n_val, bool))]


def fit_reference(
    train: dict[str, np.ndarray],
    val: dict[str, np.ndarray],
    quantile: float = DEFAULT_QUANTILE,
    layers: list[str] | None = None,
    train_labels: np.ndarray | None = None,
    val_labels: np.ndarray | None = None,
) -> ShiftReference:
    """Fit one Gaussian per class and description (``train``: name -> ``N x D``) on the training rows, put each
    on the scale of its class's validation distances, and set the threshold at ``quantile`` of the validation
    scores. Without labels (or with too few images of a class) all images form one group."""
    parts = list(train)
    n_train, n_val = len(next(iter(train.values()))), len(next(iter(val.values())))
    labels = None if train_labels is None else np.asarray(train_labels)
    groups = _groups(labels, None if val_labels is None else np.asarray(val_labels), n_train, n_val)
    gaussians = []
    for _, t_mask, v_mask in groups:
        row = []
        for part in parts:
            g = fit_gaussian(train[part][t_mask])
            d = g.distance(val[part][v_mask]) if v_mask.any() else np.zeros(0)
            if len(d) > 1:
                g.val_mean, g.val_std = float(d.mean()), float(max(d.std(), 1e-9))
            row.append(g)
        gaussians.append(row)
    ref = ShiftReference(
        parts=parts,
        groups=[name for name, _, _ in groups],
        gaussians=gaussians,
        layers=list(layers or []),
        threshold=float("inf"),
        quantile=quantile,
        n_reference=n_train,
        n_calibration=n_val,
        calibration_scores=np.zeros(0),
    )
    if n_val:
        ref.calibration_scores = ref.score(val)
        ref.threshold = float(np.quantile(ref.calibration_scores, quantile, method="higher"))
    return ref


def load_reference(folder: Path) -> ShiftReference | None:
    """The package's shift reference, or ``None`` for a package made before it had one."""
    path = Path(folder) / SHIFT_FILE
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as z:
        n = z["n"]
        layers = [str(name) for name in z["layers"]] if "layers" in z.files else []  # none: penultimate only
        rule = (float(z["threshold"]), float(z["quantile"]), int(n[0]), int(n[1]))
        if "format" not in z.files:  # format 1: one Gaussian of the network's description, raw distances
            scaled = "scale_mean" in z.files
            width = len(z["mean"])
            g = Gaussian(
                z["scale_mean"] if scaled else np.zeros(width), z["scale_std"] if scaled else np.ones(width),
                z["mean"], z["precision"],
            )  # fmt: skip
            return ShiftReference(["features"], ["all"], [[g]], layers, *rule, z["calibration_distances"])
        parts, groups = [str(p) for p in z["parts"]], [str(g) for g in z["groups"]]
        gaussians = []
        for i in range(len(groups)):
            row = []
            for j in range(len(parts)):
                key = f"g{i}_p{j}_"
                val_mean, val_std = (float(v) for v in z[key + "val"])
                row.append(Gaussian(z[key + "scale_mean"], z[key + "scale_std"], z[key + "mean"], z[key + "precision"],
                                    val_mean, val_std))  # fmt: skip
            gaussians.append(row)
        return ShiftReference(parts, groups, gaussians, layers, *rule, z["calibration_scores"])


def score_auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """How well a score separates two sites (AUROC, ``outside`` expected to score higher)."""
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.zeros(len(inside)), np.ones(len(outside))]
    return float(roc_auc_score(y, np.r_[inside, outside]))


def site_verdict(outside_rate: float, n: int, expected: float, alpha: float = 0.01) -> tuple[str, float]:
    """``shifted`` when significantly more than twice the reference's expected rate of images fall outside
    (one-sided binomial test at ``alpha`` against ``2 * expected``: a site matching the training site may
    show up to that much, as a test split does beside its validation split); else ``matches``. Returns the
    verdict and p-value."""
    from scipy.stats import binomtest

    if n == 0:
        return "matches", 1.0
    k = round(outside_rate * n)
    p = float(binomtest(k, n, min(2 * expected, 1.0), alternative="greater").pvalue)
    return ("shifted" if p < alpha else "matches"), p


def distance_plot(reference: np.ndarray, site: np.ndarray, threshold: float, path: Path, site_name: str) -> Path:
    """Histogram of the site's shift scores beside the validation images', with the threshold."""
    values = np.r_[reference, site, threshold]
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    bins = [float(b) for b in np.linspace(lo - 0.05 * abs(lo), hi + 0.05 * abs(hi), 50)]
    with figure(path, (6, 3.5), dpi=100) as (_, ax):
        ax.hist(reference, bins=bins, alpha=0.6, density=True, label="validation images (training site)")
        ax.hist(site, bins=bins, alpha=0.6, density=True, label=site_name)
        ax.axvline(threshold, color="black", linestyle="--", label="outside threshold")
        ax.set_xlabel("shift score (standardised Mahalanobis distance to the nearest class)")
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    return path
