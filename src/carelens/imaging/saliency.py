"""Grad-CAM heatmaps (MONAI's) with a model-randomisation sanity check (Adebayo et al. 2018).

A heatmap is shown only if it depends on what the network learned: the map computed with
randomly re-initialised weights must differ from it (Spearman rank correlation below a
threshold). Otherwise it is withheld, with the reason.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from carelens.core.plots import figure

SANITY_MAX_SPEARMAN = 0.5


@dataclass
class Saliency:
    """A Grad-CAM map (``H x W`` in [0, 1]) when it passed the sanity check, else ``None`` and the reason."""

    heatmap: np.ndarray | None
    spearman_vs_random: float | None
    reason: str | None

    @property
    def shown(self) -> bool:
        return self.heatmap is not None


def gradcam(model: torch.nn.Module, image: np.ndarray, layer: str, class_idx: int | None = None) -> np.ndarray:
    """Grad-CAM (Selvaraju et al., 2017) of ``image`` (``C x H x W``) for ``class_idx`` (default: the predicted
    class) at ``layer``: the layer's channels weighted by the class score's mean gradient over them, ReLU, enlarged
    bilinearly to the image and scaled to [0, 1], 1 where the evidence for the class is strongest. (MONAI's
    ``GradCAM`` scales by default the other way round, 1 where the evidence is weakest.)"""
    modules = dict(model.named_modules())
    if layer not in modules:
        raise ValueError(f"the model has no layer {layer!r} for Grad-CAM")
    model.eval()
    seen: list[torch.Tensor] = []
    hook = modules[layer].register_forward_hook(lambda _module, _inputs, output: seen.append(output))
    x = torch.from_numpy(np.ascontiguousarray(image[None], dtype=np.float32))
    try:
        with torch.enable_grad():
            logits = model(x)
            target = int(logits[0].argmax()) if class_idx is None else class_idx
            (grads,) = torch.autograd.grad(logits[0, target], seen[-1])
    finally:
        hook.remove()
    activations = seen[-1].detach()
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * activations).sum(dim=1, keepdim=True))
    cam = torch.nn.functional.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False)[0, 0]
    cam = cam - cam.min()
    top = float(cam.max())
    return np.asarray((cam / top if top > 0 else cam).numpy(), dtype=np.float64)


def randomised(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """A copy of ``model`` with every layer's weights re-initialised at random (cascading randomisation
    of all layers) and batch-norm statistics reset."""
    torch.manual_seed(seed)
    clone = copy.deepcopy(model)
    for module in clone.modules():
        for method in ("reset_running_stats", "reset_parameters"):
            reset = getattr(module, method, None)
            if callable(reset):
                reset()
    return clone.eval()


def explain(
    model: torch.nn.Module,
    image: np.ndarray,
    layer: str,
    class_idx: int | None = None,
    max_spearman: float = SANITY_MAX_SPEARMAN,
) -> Saliency:
    """Grad-CAM for one image, shown only if it passes the model-randomisation check."""
    heatmap = gradcam(model, image, layer, class_idx)
    if not np.isfinite(heatmap).all() or np.ptp(heatmap) < 1e-6:
        return Saliency(None, None, "heatmap withheld: Grad-CAM map is flat (no class evidence at this layer)")
    random_map = gradcam(randomised(model), image, layer, class_idx)
    flat_random = np.ptp(random_map) < 1e-6
    rho = 0.0 if flat_random else float(spearmanr(heatmap.reshape(-1), random_map.reshape(-1)).statistic)
    if not np.isfinite(rho) or abs(rho) >= max_spearman:
        return Saliency(
            None,
            rho if np.isfinite(rho) else None,
            f"heatmap withheld: failed the randomisation sanity check (Spearman {rho:.2f} with a randomised model, "
            f"limit {max_spearman:g}), so it does not reflect what the model learned",
        )
    return Saliency(heatmap, rho, None)


def overlay_png(image: np.ndarray, heatmap: np.ndarray, path: str | Path, title: str = "", legend: str = "") -> Path:
    """The image in grey with the heatmap over it (jet, semi-transparent) as a PNG; ``legend`` names the colour bar."""
    path = Path(path)
    base = image[0] if image.ndim == 3 and image.shape[0] == 1 else np.moveaxis(image, 0, -1)
    with figure(path, (3.2, 3.4)) as (fig, ax):
        ax.imshow(base, cmap="gray", vmin=0, vmax=1)
        shown = ax.imshow(heatmap, cmap="jet", alpha=0.4, vmin=0, vmax=1)
        bar = fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
        if legend:
            bar.set_label(legend, fontsize=7)
        ax.set_axis_off()
        if title:
            ax.set_title(title, fontsize=8)
    return path
