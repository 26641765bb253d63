"""Checking a new site's images against a model's validated population before any read is shown there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from carelens.core import InputError
from carelens.imaging.data import ImageArrays, load_dataset
from carelens.imaging.package import ModelPackage
from carelens.imaging.shift import distance_plot, site_verdict


def load_site_images(path: str | Path, split: str, image_size: int, channels: int) -> ImageArrays:
    """One split of ``path`` (``all``: train, val and test together), at the model's input size."""
    if split != "all":
        return load_dataset(path, split, image_size=image_size, channels=channels, resize=True)
    parts = []
    for name in ("train", "val", "test"):
        try:
            parts.append(load_dataset(path, name, image_size=image_size, channels=channels, resize=True))
        except InputError:
            continue
    if not parts:
        raise InputError(f"{Path(path).name}: no usable images in any split")
    first = parts[0]
    return ImageArrays(
        images=np.concatenate([p.images for p in parts]),
        labels=np.concatenate([p.labels for p in parts]),
        task=first.task,
        label_names=first.label_names,
        sources=[s for p in parts for s in p.sources],
        quarantined=[q for p in parts for q in p.quarantined],
    )


def check_site(
    package: ModelPackage, data: str | Path | ImageArrays, split: str = "all", plot: Path | None = None
) -> dict[str, Any]:
    """How many of a site's images fall outside the model's validated population, and the verdict."""
    reference = package.shift
    if reference is None:
        raise InputError(f"model {package.id[:12]} carries no shift reference: retrain or adapt it with this carelens")
    prep = package.preprocessing
    arrays = (
        data
        if isinstance(data, ImageArrays)
        else load_site_images(data, split, int(prep["image_size"]), int(prep["channels"]))
    )
    distances = reference.image_distances(package.model, arrays.images)
    rate = float(np.mean(distances > reference.threshold))
    expected = reference.expected_outside_rate
    verdict, p_value = site_verdict(rate, len(distances), expected)
    out: dict[str, Any] = {
        "n": len(distances),
        "outside_rate": round(rate, 4),
        "verdict": verdict,
        "expected_outside_rate": round(expected, 4),
        "p_value": float(f"{p_value:.3g}"),
        "method": reference.summary()["method"],
        "threshold": round(reference.threshold, 4),
        "median_distance": round(float(np.median(distances)), 4) if len(distances) else None,
        "split": split,
        "model": {"id": package.id, "version": package.version},
        "quarantined": [q.model_dump() for q in arrays.quarantined],
    }
    if plot is not None:
        name = Path(str(data)).name if not isinstance(data, ImageArrays) else "site"
        out["plot"] = str(distance_plot(reference.calibration_distances, distances, reference.threshold, plot, name))
    return out
