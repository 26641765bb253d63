"""Fixtures for the imaging tests: small data slices, a synthetic easy task, and one small trained package."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

# One thread: on a few shared cores, more threads only wait on each other.
torch.set_num_threads(1)


class TickClock:
    """A fake clock: every reading is one second after the last, whatever the machine's speed."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def synthetic_arrays(n: int, seed: int) -> dict[str, np.ndarray]:
    """An easy binary task: noisy 28 px images, class 1 has a bright square at a random place."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n).astype(np.uint8)
    images = rng.normal(110, 20, (n, 28, 28))
    for i in np.flatnonzero(labels):
        r, c = rng.integers(4, 18, 2)
        images[i, r : r + 7, c : c + 7] += 90
    return {"images": np.clip(images, 0, 255).astype(np.uint8), "labels": labels[:, None]}


@pytest.fixture(scope="session")
def synthetic_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synthetic") / "squares.npz"
    parts = {}
    for split, n, seed in (("train", 160, 1), ("val", 80, 2), ("test", 80, 3)):
        arrays = synthetic_arrays(n, seed)
        parts[f"{split}_images"], parts[f"{split}_labels"] = arrays["images"], arrays["labels"]
    np.savez(path, **parts)
    return path


@pytest.fixture(scope="session")
def pneumonia_small(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded random slice of PneumoniaMNIST: 200 train, 100 val, 100 test images."""
    source = np.load(shared_data / "imaging" / "pneumoniamnist.npz")
    rng = np.random.default_rng(0)
    parts = {}
    for split, n in (("train", 200), ("val", 100), ("test", 100)):
        idx = np.sort(rng.choice(len(source[f"{split}_labels"]), n, replace=False))
        parts[f"{split}_images"] = source[f"{split}_images"][idx]
        parts[f"{split}_labels"] = source[f"{split}_labels"][idx]
    path = tmp_path_factory.mktemp("pneumonia") / "pneumoniamnist.npz"
    np.savez(path, **parts)
    return path


@pytest.fixture(scope="session")
def package_dir(pneumonia_small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model package trained for two epochs on the PneumoniaMNIST slice (accepts CR/DX DICOM)."""
    from carelens.imaging.trainer import TrainConfig, train

    out = tmp_path_factory.mktemp("package") / "pneumonia-cnn"
    train(pneumonia_small, out, TrainConfig(max_epochs=2, seed=0, arch_options={"width": 16}))
    return out
