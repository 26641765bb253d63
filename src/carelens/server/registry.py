"""Model cards for the "model card" links, from the ``carelens.models`` registry of the store.

An AI output names its model by registry id, by name, or (image packages) by the SHA-256 of
its weights; all three lead to the same card.
"""

from __future__ import annotations

import hashlib
import re
import threading
from pathlib import Path
from typing import Any

from carelens.core.errors import CarelensError

MODEL_ID = re.compile(r"^[A-Za-z0-9_.@:+-]{1,128}$")
_weights_sha: dict[Path, str] = {}
_lock = threading.Lock()


def _registry(store: Path) -> Any:
    try:
        from carelens.models import Registry
    except ImportError:
        return None
    return Registry(store)


def list_models(store: Path) -> list[dict[str, Any]]:
    """One line per registered model (id, name, version, metrics, ...); empty without a registry."""
    registry = _registry(store)
    if registry is None:
        return []
    try:
        return list(registry.list())
    except (CarelensError, OSError, ValueError):
        return []


def _weights_digest(path: Path) -> str:
    with _lock:
        if path not in _weights_sha:
            _weights_sha[path] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        return _weights_sha[path]


def model_card(store: Path, ref: str) -> dict[str, Any] | None:
    """The exported registry entry (card, metrics, the 31 HTI-1 attributes) for ``ref``, or None."""
    registry = _registry(store)
    if registry is None:
        return None
    base = ref.split("@", 1)[0]
    try:
        for model_id in registry.ids():
            entry = registry.entry(model_id)
            weights = registry.root / model_id / "weights.pt"
            if base in (model_id, entry.name) or base == _weights_digest(weights):
                return dict(registry.export(model_id))
    except (CarelensError, OSError, ValueError):
        return None
    return None
