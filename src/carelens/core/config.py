"""Where carelens keeps its data (the settings themselves are in :mod:`carelens.core.settings`)."""

from __future__ import annotations

from pathlib import Path

from carelens.core.settings import DEFAULT_STORE, Settings, load_settings

__all__ = ["DEFAULT_STORE", "Settings", "load_settings", "research_store", "shared_data_dir"]


def research_store(store: Path | None = None) -> Path:
    """The research zone's store, ``<store>/research`` (de-identified data only; its lake is
    ``<store>/research/lake``, apart from the identified lake ``<store>/lake``)."""
    return (store if store is not None else load_settings().store) / "research"


def shared_data_dir() -> Path | None:
    """The public test and benchmark data (``CARELENS_SHARED_DATA``, else ``../shared/data``
    next to the repository), or None when it is not on this machine."""
    env = load_settings().shared_data
    candidates = [env] if env else []
    repo_root = Path(__file__).resolve().parents[3]
    candidates += [repo_root.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for path in candidates:
        if (path / "README.md").exists():
            return path
    return None
