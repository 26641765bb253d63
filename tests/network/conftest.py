"""Fixtures for the partner-network tests: small site data files, with planted canaries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

CANARY_NAMES = ["Zebulon Canaryfield", "Quintessa Canaryworth"]
CANARY_MRNS = ["MRN-CANARY-8675309", "MRN-CANARY-1234567"]


def write_site(path: Path, n: int = 60, seed: int = 0, canaries: bool = True, **overrides: np.ndarray) -> Path:
    """A site .npz with learnable synthetic images (a bright square means label 1), patient ids
    that are canary MRNs, and extra identifying columns the site must never send."""
    rng = np.random.default_rng(seed)
    payload: dict[str, np.ndarray] = {}
    for split, size in (("train", n), ("val", n // 2), ("test", n)):
        labels = rng.integers(0, 2, size)
        images = rng.random((size, 28, 28)).astype(np.float32) * 0.3
        images[labels == 1, 8:20, 8:20] += 0.6
        payload[f"{split}_images"] = (np.clip(images, 0, 1) * 255).astype(np.uint8)
        payload[f"{split}_labels"] = labels.reshape(-1, 1)
        mrns = np.asarray([CANARY_MRNS[i % 2] + f"-{i}" for i in range(size)])
        payload[f"{split}_patient_id"] = mrns
        payload[f"{split}_sex"] = rng.choice(np.asarray(["F", "M", CANARY_NAMES[0]]), size, p=[0.45, 0.45, 0.1])
        payload[f"{split}_age_group"] = rng.choice(np.asarray(["18-39", "40-64", "65+"]), size)
        if canaries:
            payload[f"{split}_patient_name"] = np.asarray([CANARY_NAMES[i % 2] for i in range(size)])
    payload.update(overrides)
    np.savez(path, **payload)
    return path


@pytest.fixture
def site_npz(tmp_path: Path) -> Path:
    return write_site(tmp_path / "site.npz")
