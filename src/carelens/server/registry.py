"""Model cards for the "model card" links, from the ``carelens.models`` registry of the store.

An AI output names its model by registry id, by name, or (image packages) by the SHA-256 of
its weights; all three lead to the same card.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from carelens.core.errors import CarelensError
from carelens.server.builtin_cards import builtin_card, builtin_list

MODEL_ID = re.compile(r"^[A-Za-z0-9_.@:+-]{1,128}$")
_weights_sha: dict[Path, str] = {}
_names: dict[tuple[Path, str], str] = {}
_lock = threading.Lock()


def _registry(store: Path) -> Any:
    try:
        from carelens.models import Registry
    except ImportError:
        return None
    return Registry(store)


def list_models(store: Path) -> list[dict[str, Any]]:
    """One line per registered model (id, name, version, metrics, ...), then the built-in components."""
    registry = _registry(store)
    try:
        registered = list(registry.list()) if registry is not None else []
    except (CarelensError, OSError, ValueError):
        registered = []
    return registered + builtin_list()


def _weights_digest(path: Path) -> str:
    with _lock:
        if path not in _weights_sha:
            _weights_sha[path] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        return _weights_sha[path]


def model_card(
    store: Path, ref: str, monitoring: Callable[[str], list[dict[str, Any]]] | None = None
) -> dict[str, Any] | None:
    """The exported registry entry (card, metrics, the 31 HTI-1 attributes) for ``ref``, the
    built-in component's card, or None; ``monitoring(registry id)`` gives the live feedback summaries."""
    registry = _registry(store)
    if registry is None:
        return builtin_card(ref)
    base = ref.split("@", 1)[0]
    try:
        for model_id in registry.ids():
            entry = registry.entry(model_id)
            weights = registry.root / model_id / "weights.pt"
            if base in (model_id, entry.name) or base == _weights_digest(weights):
                return dict(registry.export(model_id, monitoring(model_id) if monitoring else None))
    except (CarelensError, OSError, ValueError):
        return builtin_card(ref)
    return builtin_card(ref)


def registry_stamp(store: Path) -> tuple[int, ...]:
    """Changes whenever an entry or a record (a validation) is added: part of a cached page's state."""
    root = store / "models"
    try:
        folders = [e for e in os.scandir(root) if e.is_dir()]
        return (root.stat().st_mtime_ns, *(os.stat(Path(e.path) / "records").st_mtime_ns for e in folders))
    except OSError:
        return ()


def registry_id(store: Path, ref: str) -> str | None:
    """The registry id ``ref`` names (an id, a name or, for image packages, the weights' SHA-256), or None."""
    registry = _registry(store)
    if registry is None:
        return None
    base = ref.split("@", 1)[0]
    try:
        for model_id in registry.ids():
            weights = registry.root / model_id / "weights.pt"
            if base in (model_id, registry.entry(model_id).name) or base == _weights_digest(weights):
                return str(model_id)
    except (CarelensError, OSError, ValueError):
        return None
    return None


def site_status(store: Path, ref: str, site: str | None) -> dict[str, Any]:
    """Whether the model ``ref`` names has passed a local validation at ``site`` (see
    ``carelens.models.site_status``); a model the registry does not hold never has."""
    from carelens.models.registry import NOT_VALIDATED
    from carelens.models.registry import site_status as status_of

    model_id = registry_id(store, ref)
    if model_id is None:
        reason = "the model is not in this store's registry, so it has no validation here"
        return {"site": site, "validated": False, "mark": NOT_VALIDATED, "record": None, "reason": reason}
    return status_of(_registry(store).records(model_id), site)


def model_name(store: Path, ref: str) -> str | None:
    """The card's model name for ``ref`` (remembered once found), or None without a card."""
    key = (store, ref)
    if key not in _names:
        card = model_card(store, ref)
        if card is None:
            return None
        _names[key] = str(card.get("name") or ref)
    return _names[key]
