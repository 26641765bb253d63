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
    scores = reference.image_scores(package.model, arrays.images)
    rate = float(np.mean(scores > reference.threshold))
    expected = reference.expected_outside_rate
    verdict, p_value = site_verdict(rate, len(scores), expected)
    out: dict[str, Any] = {
        "n": len(scores),
        "outside_rate": round(rate, 4),
        "verdict": verdict,
        "expected_outside_rate": round(expected, 4),
        "p_value": float(f"{p_value:.3g}"),
        "method": reference.method,
        "threshold": round(reference.threshold, 4),
        "median_distance": round(float(np.median(scores)), 4) if len(scores) else None,
        "split": split,
        "model": {"id": package.id, "version": package.version},
        "quarantined": [q.model_dump() for q in arrays.quarantined],
    }
    if plot is not None:
        name = Path(str(data)).name if not isinstance(data, ImageArrays) else "site"
        out["plot"] = str(distance_plot(reference.calibration_scores, scores, reference.threshold, plot, name))
    return out


def validate_at_site(
    model_dir: str | Path,
    data: str | Path,
    site: str | None = None,
    split: str = "test",
    store: str | Path | None = None,
    register: bool = True,
) -> dict[str, Any]:
    """Local validation of a model package at a site, without changing the model: ``check-site`` and an
    evaluation on the site's labelled ``split`` (held-out patients), judged by ``validation_criteria.json``
    and, with ``register``, appended to the model's registry entry as a validation record naming the site
    (the workspace shows the model's reads as validated there only once one has passed)."""
    from carelens.imaging.adapt import judge, site_name_of, site_validation, validation_criteria
    from carelens.imaging.evaluate import evaluate
    from carelens.imaging.package import load_package

    package = load_package(model_dir)
    site = site or site_name_of(data)
    prep = package.preprocessing
    arrays = load_dataset(
        data, split, image_size=int(prep["image_size"]), channels=int(prep["channels"]),
        known_labels=package.labels, resize=True,
    )  # fmt: skip
    shift = check_site(package, arrays)
    result = evaluate(package, arrays, split, resamples=500)
    criteria = validation_criteria()
    failed = judge(result, criteria)
    if shift["verdict"] != "matches":
        failed.append(f"check-site: {shift['outside_rate']:.1%} of the site's images outside ({shift['verdict']})")
    validation = site_validation(site, result, criteria, failed)
    validation["split"] = f"{split} (the site's labelled images; folders split by patient)"
    keep = ("n", "outside_rate", "verdict", "expected_outside_rate", "p_value")
    validation["check_site"] = {k: shift[k] for k in keep}
    out: dict[str, Any] = {"site": site, "model": {"id": package.id, "version": package.version}, **validation}
    if register:
        from carelens.models.registry import Registry

        registry = Registry(store)
        entry = registry.register(model_dir)
        record = registry.append_record(
            entry.id,
            "validation",
            {"process": "carelens image validate: check-site and evaluation on the site's held-out patients",
             "sites": [validation]},
        )  # fmt: skip
        out["registry_id"], out["record"] = entry.id, record["seq"]
    return out
