"""Training and scoring at one site (plain torch around ``carelens.imaging.build_model``).

The weights that travel are the model's floating-point state (parameters and batch-norm
statistics) in ``state_dict`` order; integer counters stay local. Under FedBN (site-local batch
norm) the batch-norm layers never travel: each site keeps their affine parameters and statistics.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from carelens.imaging.data import ImageArrays
from carelens.network.sitedata import SiteSplit


def new_model(arch: str = "cnn", image_size: int = 28, seed: int = 0) -> nn.Module:
    """The federation's network, initialised from ``seed`` (every site and the hub agree)."""
    from carelens.imaging import build_model

    torch.manual_seed(seed)
    return build_model(arch, in_channels=1, num_classes=2, image_size=image_size)


def site_local_layers(model: nn.Module) -> list[str]:
    """The batch-norm layers (names in ``model.named_modules()``): what FedBN keeps at each site."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def site_local_keys(model: nn.Module) -> list[str]:
    """The state entries of :func:`site_local_layers` (affine parameters and running statistics)."""
    layers = tuple(f"{name}." for name in site_local_layers(model))
    return [k for k in model.state_dict() if k.startswith(layers)] if layers else []


def _float_keys(model: nn.Module, site_local: bool = False) -> list[str]:
    local = set(site_local_keys(model)) if site_local else set()
    return [k for k, v in model.state_dict().items() if v.is_floating_point() and k not in local]


def get_weights(model: nn.Module, site_local: bool = False) -> list[np.ndarray]:
    """The weights that travel; with ``site_local`` (FedBN) the batch-norm layers stay out."""
    state = model.state_dict()
    return [state[k].detach().cpu().numpy().astype(np.float32) for k in _float_keys(model, site_local)]


def set_weights(model: nn.Module, weights: list[np.ndarray], site_local: bool = False) -> None:
    keys = _float_keys(model, site_local)
    if len(keys) != len(weights):
        raise ValueError(f"expected {len(keys)} weight arrays, got {len(weights)}")
    state = model.state_dict()
    for k, w in zip(keys, weights, strict=True):
        if tuple(state[k].shape) != tuple(w.shape):
            raise ValueError(f"weight array {k} has shape {tuple(w.shape)}, expected {tuple(state[k].shape)}")
        state[k] = torch.from_numpy(np.asarray(w, dtype=np.float32).copy())
    model.load_state_dict(state)


def get_local_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The site-local state (FedBN: every batch-norm entry, counters included), on CPU."""
    state = model.state_dict()
    return {k: state[k].detach().cpu().clone() for k in site_local_keys(model)}


def set_local_state(model: nn.Module, local: dict[str, torch.Tensor]) -> None:
    keys = site_local_keys(model)
    if sorted(local) != sorted(keys):
        raise ValueError("the site-local state does not fit this network's batch-norm layers")
    model.load_state_dict({**model.state_dict(), **local})


def weight_shapes(model: nn.Module, site_local: bool = False) -> list[tuple[int, ...]]:
    return [tuple(w.shape) for w in get_weights(model, site_local)]


def as_arrays(split: SiteSplit) -> ImageArrays:
    """A site split as the imaging package's :class:`ImageArrays` (binary task)."""
    return ImageArrays(images=split.images, labels=split.labels, task="binary", label_names=["normal", "pneumonia"])


def local_epochs(n_train: int, epochs: int = 1, steps: int = 0, batch_size: int = 64) -> int:
    """Local epochs of a round: ``epochs``, or with ``steps`` > 0 as many as make at least that many
    batches (a small site then makes as many optimiser steps per round as a large one)."""
    if steps <= 0:
        return max(1, epochs)
    return max(1, math.ceil(steps / max(1, math.ceil(n_train / batch_size))))


def fit(
    model: nn.Module,
    split: SiteSplit,
    epochs: int = 1,
    lr: float = 1e-3,
    batch_size: int = 64,
    proximal_mu: float = 0.0,
    seed: int = 0,
    augment: bool = True,
) -> dict[str, Any]:
    """Local epochs of class-weighted cross-entropy with AdamW and the radiograph augmentation of
    ``image train`` (:func:`carelens.imaging.engine.train_one_epoch`); with ``proximal_mu`` > 0 the
    FedProx term ``mu/2 * ||w - w_global||^2`` keeps the site close to the global model."""
    from carelens.imaging.engine import train_one_epoch

    torch.manual_seed(seed)
    global_params = [p.detach().clone() for p in model.parameters()]
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)

    def proximal(m: nn.Module) -> torch.Tensor:
        prox = sum(((p - g) ** 2).sum() for p, g in zip(m.parameters(), global_params, strict=True))
        return proximal_mu / 2 * prox  # type: ignore[return-value]

    arrays = as_arrays(split)
    losses = [
        train_one_epoch(
            model, arrays, optimiser, batch_size=batch_size, augment=augment, seed=seed * 1000 + epoch,
            progress_desc=f"local epoch {epoch + 1}", regulariser=proximal if proximal_mu > 0 else None,
        )
        for epoch in range(epochs)
    ]  # fmt: skip
    return {"loss": float(np.mean(losses)) if losses else float("nan"), "n": len(split)}


@torch.no_grad()
def predict(model: nn.Module, split: SiteSplit, batch_size: int = 256) -> np.ndarray:
    """Class probabilities ``N x 2``."""
    model.eval()
    out = []
    for start in range(0, len(split), batch_size):
        x = torch.from_numpy(split.images[start : start + batch_size])
        out.append(torch.softmax(model(x), dim=1).numpy())
    return np.concatenate(out).astype(np.float64)
