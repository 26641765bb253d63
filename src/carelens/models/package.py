"""A registered image model as a model package folder (``model.json`` + ``weights.pt``): what
``image predict``, ``image evaluate``, ``image adapt`` and ``carelens run`` read.

A FedBN entry (``training.site_local``) holds placeholders in its batch-norm layers: the package is
made at a training site, from that site's own layers (its site-state file), and refused without them.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import orjson

from carelens.core.errors import InputError
from carelens.core.ids import content_hash
from carelens.models.registry import WEIGHTS, Registry


def write_package(registry: Registry, ref: str, out: str | Path, site_state: str | Path | None = None) -> Path:
    """Write the entry ``ref`` as a package folder ``out`` (made atomically; kept if already there)."""
    entry = registry.entry(ref)
    if not entry.package.get("preprocessing"):
        raise InputError(f"model {entry.name} {entry.version}: no preprocessing block, not an image model package")
    weights = registry.weights_path(entry.id).read_bytes()
    local = entry.training.get("site_local") or None
    if local:
        if site_state is None:
            raise InputError(
                f"model {entry.name} {entry.version} keeps its batch-norm layers at each training site (FedBN): "
                "give that site's state file (--site-state: its site-local/<run id>.pt)"
            )
        weights = _with_site_layers(weights, Path(site_state), list(local.get("layers", [])))
    meta = {**entry.package, "id": content_hash(weights), "name": entry.name, "version": entry.version,
            "arch": entry.arch, "task": entry.task, "labels": entry.labels, "card": entry.card,
            "registry_id": entry.id}  # fmt: skip
    if local:
        meta["site_local"] = {**local, "site_state": Path(site_state).name}  # type: ignore[arg-type]
    folder = Path(out)
    if (folder / "model.json").is_file():
        return folder
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / WEIGHTS).write_bytes(weights)
    (tmp / "model.json").write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))
    try:
        os.rename(tmp, folder)
    except OSError:
        if not (folder / "model.json").is_file():
            raise InputError(f"{folder.name}: the package could not be written (the folder exists)") from None
    return folder


def _with_site_layers(weights: bytes, site_state: Path, layers: list[str]) -> bytes:
    """The registered state with the site's own batch-norm layers in place of the placeholders."""
    import torch

    try:
        local = torch.load(site_state, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as err:
        raise InputError(f"{site_state.name}: not a readable site-state file ({type(err).__name__})") from None
    state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    prefixes = tuple(f"{layer}." for layer in layers)
    expected = sorted(k for k in state if k.startswith(prefixes))
    if not isinstance(local, dict) or sorted(local) != expected:
        raise InputError(f"{site_state.name}: its layers are not this model's batch-norm layers")
    if any(tuple(local[k].shape) != tuple(state[k].shape) for k in expected):
        raise InputError(f"{site_state.name}: its layers do not have this model's shapes")
    buf = io.BytesIO()
    torch.save({**state, **local}, buf)
    return buf.getvalue()
