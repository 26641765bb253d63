"""One epoch of training and batched inference: the small steps the trainer and the partner network share."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from carelens.core.heap import heap_kept
from carelens.imaging.data import ImageArrays


def resolve_device(device: str = "auto") -> torch.device:
    """``auto``: CUDA when present, else CPU; ``cpu`` / ``cuda`` as named."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        from carelens.core import UsageError

        raise UsageError("--device cuda asked for but no CUDA GPU is available")
    return torch.device(device)


class Augmenter:
    """Batched augmentation for ``N x C x H x W`` tensors: left-right flips, small rotations, shifts
    and zooms (:func:`warp`: bilinear resampling, border padding), and intensity jitter.

    Drawn from its own seeded generator, so an epoch's augmentation is reproducible.
    """

    def __init__(self, seed: int = 0, rotate: float = 0.17, shift: float = 0.07, zoom: float = 0.1) -> None:
        self.gen = torch.Generator().manual_seed(seed)
        self.rotate, self.shift, self.zoom = rotate, shift, zoom

    def _uniform(self, n: int, half_width: float) -> torch.Tensor:
        return (torch.rand(n, generator=self.gen) * 2 - 1) * half_width

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        flip = torch.where(torch.rand(n, generator=self.gen) < 0.5, -1.0, 1.0)
        angle = self._uniform(n, self.rotate)
        scale = 1.0 + self._uniform(n, self.zoom)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0], theta[:, 0, 1] = cos, -sin
        theta[:, 1, 0], theta[:, 1, 1] = sin * flip, cos * flip
        theta[:, 0, 2], theta[:, 1, 2] = self._uniform(n, self.shift), self._uniform(n, self.shift)
        out = warp(x, theta.to(x.dtype))
        gain = 1.0 + self._uniform(n, 0.1).view(n, 1, 1, 1)
        bias = self._uniform(n, 0.05).view(n, 1, 1, 1)
        return torch.clamp(out * gain + bias, 0.0, 1.0)


def class_weights(arrays: ImageArrays) -> torch.Tensor:
    """Inverse-frequency weights (mean 1) for a loss that treats rare classes as much as common ones.

    For multi-label tasks, the positive-class weight per label (negatives / positives).
    """
    if arrays.task == "multilabel":
        pos = arrays.labels.sum(axis=0)
        neg = len(arrays) - pos
        return torch.tensor(neg / np.maximum(pos, 1.0), dtype=torch.float32)
    counts = np.bincount(arrays.labels, minlength=arrays.num_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1.0) / arrays.num_classes, 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def loss_function(task: str, weights: torch.Tensor | None = None) -> nn.Module:
    """Cross-entropy (binary, multi-class) or binary cross-entropy per label (multi-label), optionally weighted."""
    if task == "multilabel":
        return nn.BCEWithLogitsLoss(pos_weight=weights)
    return nn.CrossEntropyLoss(weight=weights)


@heap_kept()
def train_one_epoch(
    model: nn.Module,
    arrays: ImageArrays,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    lr: float = 1e-3,
    batch_size: int = 64,
    weighted: bool = True,
    augment: bool = True,
    seed: int = 0,
    device: str | torch.device = "cpu",
    scheduler: Any = None,
    deadline: float | None = None,
    progress_desc: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    regulariser: Callable[[nn.Module], torch.Tensor] | None = None,
    mixup: float = 0.0,
) -> float:
    """Train ``model`` for one pass over ``arrays`` (shuffled with ``seed``); returns the mean loss.

    Without an ``optimizer`` a fresh AdamW with ``lr`` is used (what a federated round wants).
    ``scheduler`` is stepped after each batch; ``deadline`` (a ``clock()`` value) stops the epoch
    early when ``clock`` reaches it. ``regulariser(model)`` is added to each batch's
    loss (e.g. FedProx's proximal term). ``mixup`` > 0: each batch is blended with a shuffled copy of itself at a
    ratio drawn from Beta(mixup, mixup), and so are the two losses (Zhang et al. 2018).
    """
    from carelens.core.progress import progress

    dev = torch.device(device) if isinstance(device, str) else device
    model.to(dev).train()
    if optimizer is None:
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    weights = class_weights(arrays).to(dev) if weighted else None
    criterion = loss_function(arrays.task, weights)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(arrays))
    aug = Augmenter(seed) if augment else None
    total, seen = 0.0, 0
    batches = range(0, len(order), batch_size)
    for start in progress(batches, desc=progress_desc or "train", total=len(batches), unit="batch"):
        if deadline is not None and clock() > deadline:
            break
        idx = order[start : start + batch_size]
        if len(idx) < 2:  # batch norm needs two samples
            continue
        x = torch.from_numpy(arrays.images[idx])
        if aug is not None:
            x = aug(x)
        x = x.to(dev)
        y = torch.from_numpy(arrays.labels[idx]).to(dev)
        optimizer.zero_grad(set_to_none=True)
        if mixup > 0:
            ratio, other = float(rng.beta(mixup, mixup)), torch.from_numpy(rng.permutation(len(idx))).to(dev)
            out = model(ratio * x + (1 - ratio) * x[other])
            loss = ratio * criterion(out, y) + (1 - ratio) * criterion(out, y[other])
        else:
            loss = criterion(model(x), y)
        if regulariser is not None:
            loss = loss + regulariser(model)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total += float(loss.item()) * len(idx)
        seen += len(idx)
    return total / max(seen, 1)


# Test-time views: (left-right flip, rotation in radians, zoom, shift along the height, shift along the width, as
# fractions of the half-size), within the training augmentation's ranges and the same for every image, so that a
# read does not depend on the batch it came in. The first is the image itself, the second its flip.
TTA_VIEWS = (
    (False, 0.0, 1.0, 0.0, 0.0),
    (True, 0.0, 1.0, 0.0, 0.0),
    (False, 0.1, 1.0, 0.0, 0.0),
    (True, -0.1, 1.0, 0.0, 0.0),
    (False, 0.0, 1.08, 0.05, 0.0),
    (True, 0.0, 0.93, -0.05, 0.0),
    (False, -0.1, 1.0, 0.0, 0.05),
    (True, 0.1, 1.0, 0.0, -0.05),
)


def test_time_views(preprocessing: dict[str, Any]) -> int:
    """How many of :data:`TTA_VIEWS` a package averages (packages before ``test_time_views``: 2 with the
    test-time flip, else 1)."""
    return int(preprocessing.get("test_time_views") or (2 if preprocessing.get("test_time_flip") else 1))


def warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """``N x C x H x W`` images resampled (bilinear, border padding) through the normalised affine maps ``theta``
    (``N x 2 x 3``, rows and columns in image order: row, then column), as MONAI's ``AffineTransform(normalized=True)``
    does, in plain torch (no MONAI import for predicting)."""
    in_xy = theta[:, [1, 0]][:, :, [1, 0, 2]]  # torch's grids are (x, y): column first
    grid = nn.functional.affine_grid(in_xy, list(x.shape), align_corners=False)
    return nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _view(x: torch.Tensor, view: tuple[bool, float, float, float, float]) -> torch.Tensor:
    flip, angle, zoom, dx, dy = view
    if (angle, zoom, dx, dy) == (0.0, 1.0, 0.0, 0.0):
        return torch.flip(x, dims=[-1]) if flip else x
    cos, sin, sign = np.cos(angle) / zoom, np.sin(angle) / zoom, -1.0 if flip else 1.0
    theta = torch.tensor([[cos, -sin, dx], [sin * sign, cos * sign, dy]], dtype=x.dtype).expand(x.shape[0], 2, 3)
    return warp(x, theta)


@torch.no_grad()
@heap_kept()
def predict_logits(
    model: nn.Module,
    images: np.ndarray | ImageArrays,
    *,
    batch_size: int = 256,
    tta: bool = False,
    views: int | None = None,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Raw network outputs ``N x K``; with ``tta`` the mean over the image and its left-right flip; with ``views``
    (1 to 8) the mean over the first ``views`` of :data:`TTA_VIEWS` (overrides ``tta``)."""
    data = images.images if isinstance(images, ImageArrays) else np.asarray(images, dtype=np.float32)
    dev = torch.device(device) if isinstance(device, str) else device
    chosen = TTA_VIEWS[: max(1, min(views or (2 if tta else 1), len(TTA_VIEWS)))]
    model.to(dev).eval()
    out = []
    for start in range(0, len(data), batch_size):
        x = torch.from_numpy(data[start : start + batch_size]).to(dev)
        logits = sum(model(_view(x, view)) for view in chosen) / len(chosen)
        out.append(logits.float().cpu().numpy())
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(out).astype(np.float64)


def logits_to_proba(logits: np.ndarray, task: str, temperature: float = 1.0) -> np.ndarray:
    """Softmax (binary, multi-class) or sigmoid (multi-label) of ``logits / temperature``."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    if task == "multilabel":
        return 1.0 / (1.0 + np.exp(-z))
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def predict_proba(
    model: nn.Module,
    arrays: ImageArrays | np.ndarray,
    *,
    temperature: float = 1.0,
    task: str | None = None,
    tta: bool = False,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Class probabilities ``N x K`` (softmax; sigmoid per label for multi-label tasks), after
    dividing the logits by ``temperature`` (1 = uncalibrated)."""
    kind = task or (arrays.task if isinstance(arrays, ImageArrays) else "multiclass")
    logits = predict_logits(model, arrays, batch_size=batch_size, tta=tta, device=device)
    return logits_to_proba(logits, kind, temperature)
