"""The image model ``carelens run`` reads with: the newest registered image model of the store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from carelens.core.errors import InputError
from carelens.core.ids import content_hash


def registered_image_model(store: Path) -> str | None:
    """The registry id of the newest registered image model, or None when none is registered."""
    from carelens.models import Registry

    registry = Registry(store)
    if not registry.root.is_dir():
        return None
    entries = [registry.entry(i) for i in registry.ids()]
    images = [e for e in entries if e.package.get("preprocessing")]
    return max(images, key=lambda e: (e.created_at, e.id)).id if images else None


def load_registered(store: Path, model_id: str) -> Any:
    """The registered model as an imaging package (materialised once under ``<store>/run/models``)."""
    from carelens.imaging.package import load_package
    from carelens.models import Registry

    registry = Registry(store)
    entry = registry.entry(model_id)
    folder = store / "run" / "models" / entry.id
    if not (folder / "model.json").is_file():
        weights = registry.weights_path(entry.id).read_bytes()
        meta = {**entry.package, "id": content_hash(weights), "name": entry.name, "version": entry.version,
                "arch": entry.arch, "task": entry.task, "labels": entry.labels, "card": entry.card}  # fmt: skip
        tmp = folder.with_name(f".{entry.id}.{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "weights.pt").write_bytes(weights)
        (tmp / "model.json").write_bytes(orjson.dumps(meta))
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / "model.json").is_file():
                raise InputError("the registered image model could not be prepared") from None
    return load_package(folder)
