"""The image model ``carelens run`` reads with: the newest registered image model of the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def registered_image_model(store: Path) -> str | None:
    """The registry id of the newest registered image model, or None when none is registered."""
    from carelens.models import Registry

    registry = Registry(store)
    if not registry.root.is_dir():
        return None
    entries = [registry.entry(i) for i in registry.ids()]
    # a FedBN entry reads only at a training site, with that site's own layers (``models package --site-state``)
    images = [e for e in entries if e.package.get("preprocessing") and not e.training.get("site_local")]
    return max(images, key=lambda e: (e.created_at, e.id)).id if images else None


def load_registered(store: Path, model_id: str) -> Any:
    """The registered model as an imaging package (materialised once under ``<store>/run/models``)."""
    from carelens.imaging.package import load_package
    from carelens.models import Registry
    from carelens.models.package import write_package

    registry = Registry(store)
    entry = registry.entry(model_id)
    return load_package(write_package(registry, entry.id, store / "run" / "models" / entry.id))
