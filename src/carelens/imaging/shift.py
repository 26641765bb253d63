"""Shift detection: does an image (or a site's images) come from the population the model was validated on?

A model package carries a description of its training distribution: the mean and (Ledoit-Wolf)
covariance of an image description on the training images (the image at 8 x 8 px, the mean and
spread of each network stage's channels, the penultimate-layer features; standardised), and a
threshold on the Mahalanobis distance set at a quantile of the validation images' distances. An image beyond the
threshold is "outside validated population: refer". The quantile (:data:`DEFAULT_QUANTILE`) is a rule on the
training site alone: 2% of its validation images fall outside, half the 5% a matching site may show, the other
half left for the gap between a validation split and a later test split of the same site.
``benchmarks/imaging.py`` measured this description against energy scores, penultimate features alone
and pixel statistics between two sites (see ``benchmarks/results/imaging.md``) and chose it;
:func:`score_auroc` is the measure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

SHIFT_FILE = "shift.npz"
OUTSIDE = "outside validated population: refer"
DEFAULT_QUANTILE = 0.98  # target outside rate on the training site's validation images: 2%


def _last_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("the network has no linear head to read penultimate features from")
    return linears[-1]


PIXEL_GRID = 8  # the image itself, averaged down to 8 x 8, is part of the description


@torch.no_grad()
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


@dataclass
class ShiftReference:
    """Mean and precision of the training features, and the distance threshold fitted on validation."""

    mean: np.ndarray
    precision: np.ndarray
    scale_mean: np.ndarray
    scale_std: np.ndarray
    layers: list[str]
    threshold: float
    quantile: float
    n_reference: int
    n_calibration: int
    calibration_distances: np.ndarray

    def distance(self, features: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each feature row to the training mean."""
        z = (np.asarray(features, dtype=np.float64) - self.scale_mean) / self.scale_std
        d = z - self.mean
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", d, self.precision, d), 0.0))

    def image_distances(self, model: nn.Module, images: np.ndarray) -> np.ndarray:
        """Distance of each image (``N x C x H x W`` model input) to the training images."""
        features, _ = features_and_logits(model, images, self.layers)
        return self.distance(features)

    @property
    def expected_outside_rate(self) -> float:
        """Share of the validation images beyond the threshold (what a matching site should show)."""
        if not len(self.calibration_distances):
            return 1.0 - self.quantile
        return max(float(np.mean(self.calibration_distances > self.threshold)), 1.0 - self.quantile)

    def summary(self) -> dict[str, Any]:
        return {
            "method": "mahalanobis (Ledoit-Wolf) on the image at 8x8 px, pooled stage outputs and penultimate features",
            "layers": self.layers,
            "threshold": round(self.threshold, 4),
            "quantile": self.quantile,
            "n_reference": self.n_reference,
            "n_calibration": self.n_calibration,
            "file": SHIFT_FILE,
        }

    def save(self, folder: Path) -> None:
        np.savez(
            folder / SHIFT_FILE,
            mean=self.mean,
            precision=self.precision,
            scale_mean=self.scale_mean,
            scale_std=self.scale_std,
            layers=np.array(self.layers, dtype=str),
            threshold=self.threshold,
            quantile=self.quantile,
            n=np.array([self.n_reference, self.n_calibration]),
            calibration_distances=self.calibration_distances,
        )


def fit_reference(
    train_features: np.ndarray,
    val_features: np.ndarray,
    quantile: float = DEFAULT_QUANTILE,
    layers: list[str] | None = None,
    max_reference: int = 5000,
) -> ShiftReference:
    """Fit the feature distribution on training features (standardised, Ledoit-Wolf covariance); the
    threshold is ``quantile`` of the validation images' distances."""
    from sklearn.covariance import LedoitWolf

    feats = np.asarray(train_features, dtype=np.float64)
    if len(feats) > max_reference:
        feats = feats[np.random.default_rng(0).choice(len(feats), max_reference, replace=False)]
    scale_mean, scale_std = feats.mean(axis=0), np.maximum(feats.std(axis=0), 1e-6)
    lw = LedoitWolf().fit((feats - scale_mean) / scale_std)
    ref = ShiftReference(
        mean=lw.location_,
        precision=lw.precision_,
        scale_mean=scale_mean,
        scale_std=scale_std,
        layers=list(layers or []),
        threshold=0.0,
        quantile=quantile,
        n_reference=len(feats),
        n_calibration=len(val_features),
        calibration_distances=np.zeros(0),
    )
    distances = ref.distance(val_features)
    ref.calibration_distances = distances
    ref.threshold = float(np.quantile(distances, quantile, method="higher")) if len(distances) else float("inf")
    return ref


def load_reference(folder: Path) -> ShiftReference | None:
    """The package's shift reference, or ``None`` for a package made before it had one."""
    path = Path(folder) / SHIFT_FILE
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as z:
        n = z["n"]
        return ShiftReference(
            mean=z["mean"],
            precision=z["precision"],
            scale_mean=z["scale_mean"],
            scale_std=z["scale_std"],
            layers=[str(name) for name in z["layers"]],
            threshold=float(z["threshold"]),
            quantile=float(z["quantile"]),
            n_reference=int(n[0]),
            n_calibration=int(n[1]),
            calibration_distances=z["calibration_distances"],
        )


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
    """Histogram of the site's distances beside the validation images', with the threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    hi = float(np.nanmax(np.r_[reference, site, threshold])) * 1.05
    bins = [float(b) for b in np.linspace(0.0, hi, 50)]
    ax.hist(reference, bins=bins, alpha=0.6, density=True, label="validation images (training site)")
    ax.hist(site, bins=bins, alpha=0.6, density=True, label=site_name)
    ax.axvline(threshold, color="black", linestyle="--", label="outside threshold")
    ax.set_xlabel("Mahalanobis distance to the training images")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
