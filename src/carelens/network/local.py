"""Training and scoring at one site (plain torch around ``carelens.imaging.build_model``).

The weights that travel are the model's floating-point state (parameters and batch-norm
statistics) in ``state_dict`` order; integer counters stay local.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from carelens.network.sitedata import SiteSplit


def new_model(arch: str = "cnn", image_size: int = 28, seed: int = 0) -> nn.Module:
    """The federation's network, initialised from ``seed`` (every site and the hub agree)."""
    from carelens.imaging import build_model

    torch.manual_seed(seed)
    return build_model(arch, in_channels=1, num_classes=2, image_size=image_size)


def _float_keys(model: nn.Module) -> list[str]:
    return [k for k, v in model.state_dict().items() if v.is_floating_point()]


def get_weights(model: nn.Module) -> list[np.ndarray]:
    state = model.state_dict()
    return [state[k].detach().cpu().numpy().astype(np.float32) for k in _float_keys(model)]


def set_weights(model: nn.Module, weights: list[np.ndarray]) -> None:
    keys = _float_keys(model)
    if len(keys) != len(weights):
        raise ValueError(f"expected {len(keys)} weight arrays, got {len(weights)}")
    state = model.state_dict()
    for k, w in zip(keys, weights, strict=True):
        if tuple(state[k].shape) != tuple(w.shape):
            raise ValueError(f"weight array {k} has shape {tuple(w.shape)}, expected {tuple(state[k].shape)}")
        state[k] = torch.from_numpy(np.asarray(w, dtype=np.float32).copy())
    model.load_state_dict(state)


def weight_shapes(model: nn.Module) -> list[tuple[int, ...]]:
    return [tuple(w.shape) for w in get_weights(model)]


def fit(
    model: nn.Module,
    split: SiteSplit,
    epochs: int = 1,
    lr: float = 1e-3,
    batch_size: int = 64,
    proximal_mu: float = 0.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Local epochs of class-weighted cross-entropy with AdamW; with ``proximal_mu`` > 0 the
    FedProx term ``mu/2 * ||w - w_global||^2`` keeps the site close to the global model."""
    torch.manual_seed(seed)
    model.train()
    global_params = [p.detach().clone() for p in model.parameters()]
    counts = np.bincount(split.labels, minlength=2).astype(np.float64)
    weights = torch.tensor(counts.sum() / (2 * np.maximum(counts, 1)), dtype=torch.float32)
    criterion = nn.CrossEntropyLoss(weight=weights)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    rng = np.random.default_rng(seed)
    x_all = torch.from_numpy(split.images)
    y_all = torch.from_numpy(split.labels)
    losses = []
    for _epoch in range(epochs):
        order = rng.permutation(len(split))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < 2:
                continue
            x, y = x_all[idx], y_all[idx]
            if rng.random() < 0.5:
                x = torch.flip(x, dims=[-1])
            loss = criterion(model(x), y)
            if proximal_mu > 0:
                prox = sum(((p - g) ** 2).sum() for p, g in zip(model.parameters(), global_params, strict=True))
                loss = loss + proximal_mu / 2 * prox
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
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
