"""Synthetic chest-radiograph-like images: body, lung fields, ribs, spine, heart shadow and
diaphragm drawn with numpy, optionally with a focal opacity (the finding) in one lung."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter


def _ellipse(yy: np.ndarray, xx: np.ndarray, cy: object, cx: object, ry: object, rx: object) -> np.ndarray:
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2


def synth_batch(
    rng: np.random.Generator, opacity: np.ndarray, size: int = 64, strength: np.ndarray | None = None
) -> np.ndarray:
    """``len(opacity)`` images as float32 Nx size x size in [0, 1] (bright = dense, MONOCHROME2).

    ``opacity[i]`` plants a focal opacity in one lung of image i; ``strength`` scales its contrast
    (small values make hard cases).
    """
    n = len(opacity)
    opacity = np.asarray(opacity, bool).reshape(n, 1, 1)
    strength = np.ones(n, np.float32) if strength is None else np.asarray(strength, np.float32)

    def draw(loc: float, scale: float) -> np.ndarray:
        return rng.normal(loc, scale, (n, 1, 1)).astype(np.float32)

    grid = np.mgrid[0:size, 0:size].astype(np.float32) / size
    yy, xx = grid[0][None], grid[1][None]
    xx = xx + draw(0, 0.02) * (yy - 0.5)
    img = np.full((n, size, size), 0.08, np.float32)
    inside = _ellipse(yy, xx, 0.55, 0.5, 0.62, draw(0.46, 0.02)) < 1
    img += 0.45 * inside
    lung_h, gap = draw(0.30, 0.02), draw(0.09, 0.01)
    lungs = np.zeros(img.shape, bool)
    for side in (-1, 1):
        lungs |= _ellipse(yy, xx, 0.47, 0.5 + side * (gap + 0.13), lung_h, draw(0.14, 0.01)) < 1
    img -= 0.32 * lungs
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1)).astype(np.float32)
    ribs = 0.5 + 0.5 * np.sin(2 * np.pi * (yy * 9.5 + 4.8 * (xx - 0.5) ** 2) + phase)
    img += 0.10 * (ribs > 0.75) * lungs
    img += 0.16 * (np.abs(xx - 0.5) < 0.04) * inside
    heart = _ellipse(yy, xx, 0.63, draw(0.55, 0.015), draw(0.15, 0.01), 0.17)
    img += 0.17 * (heart < 1) * (yy < 0.8)
    img += 0.2 * (yy > 0.78 + 0.05 * np.cos(np.pi * (xx - 0.5) * 2)) * inside
    flip = rng.choice([-1.0, 1.0], (n, 1, 1)).astype(np.float32)
    cy = rng.uniform(0.35, 0.62, (n, 1, 1)).astype(np.float32)
    cx = 0.5 + flip * rng.uniform(0.17, 0.26, (n, 1, 1)).astype(np.float32)
    r = rng.uniform(0.06, 0.11, (n, 1, 1)).astype(np.float32)
    blob = np.exp(-_ellipse(yy, xx, cy, cx, r, r * rng.uniform(0.8, 1.3, (n, 1, 1)).astype(np.float32)) * 1.5)
    contrast = strength.reshape(n, 1, 1) * rng.uniform(0.2, 0.3, (n, 1, 1)).astype(np.float32)
    img += opacity * contrast * blob * lungs
    img = gaussian_filter(img, sigma=(0, size / 128, size / 128))
    img += rng.normal(0, 0.025, img.shape).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32)


def synth_chest(rng: np.random.Generator, size: int = 256, opacity: bool = False, strength: float = 1.0) -> np.ndarray:
    """One image as float32 in [0, 1]."""
    return synth_batch(rng, np.array([opacity]), size, np.array([strength]))[0]


def training_set(
    seed: int, size: int = 64, n_train: int = 2400, n_val: int = 400, n_test: int = 600
) -> dict[str, np.ndarray]:
    """A MedMNIST-style split (``{split}_images`` uint8 NxHxW, ``{split}_labels`` Nx1, label 1 =
    opacity), half positive, with opacities of varying strength."""
    rng = np.random.default_rng([seed, 7])
    out: dict[str, np.ndarray] = {}
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        labels = rng.permutation(np.arange(n) % 2).astype(np.uint8)
        chunks = []
        for start in range(0, n, 200):
            part = labels[start : start + 200]
            strength = rng.uniform(0.5, 1.0, len(part))
            chunks.append(np.round(synth_batch(rng, part.astype(bool), size, strength) * 255).astype(np.uint8))
        out[f"{split}_images"] = np.concatenate(chunks)
        out[f"{split}_labels"] = labels.reshape(-1, 1)
    return out
