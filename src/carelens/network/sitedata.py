"""A site's own data, read and checked where it lives; it never leaves the site.

A site's data is a MedMNIST-style ``.npz`` (or a folder holding one): ``<split>_images`` and
``<split>_labels`` for ``train``, ``val`` and ``test``, and optionally per-image columns
``<split>_patient_id`` (for counting patients in small-cell suppression), ``<split>_sex`` and
``<split>_age_group`` (for subgroup metrics). Any other keys (names, MRNs, free text) are never
read.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from carelens.core.errors import InputError

SPLITS = ("train", "val", "test")
SUBGROUP_COLUMNS: dict[str, tuple[str, ...]] = {
    "sex": ("F", "M", "other", "unknown"),
    "age_group": ("0-17", "18-39", "40-64", "65+", "unknown"),
}
MIN_IMAGES = 10


@dataclass
class SiteSplit:
    """One split of a site's data: images ``N x C x H x W`` float32 in [0, 1], labels 0/1, and
    the optional per-image patient ids and subgroup values."""

    images: np.ndarray
    labels: np.ndarray
    patient_ids: np.ndarray | None = None
    subgroups: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def label_counts(self) -> dict[str, int]:
        return {str(k): int((self.labels == k).sum()) for k in (0, 1)}


@dataclass
class SiteData:
    """All splits a site holds (a split the file lacks is absent)."""

    name: str
    splits: dict[str, SiteSplit]

    def split(self, name: str) -> SiteSplit:
        if name not in self.splits:
            raise InputError(f"site data has no {name} split")
        return self.splits[name]

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.splits.items()}


def find_npz(path: str | Path) -> Path:
    """The ``.npz`` file at ``path`` or the single one inside the folder ``path``."""
    p = Path(path)
    if p.is_dir():
        found = sorted(p.glob("*.npz"))
        if len(found) != 1:
            raise InputError(f"site data folder {p.name}: expected one .npz file, found {len(found)}")
        return found[0]
    if not p.is_file():
        raise InputError(f"site data {p.name}: file not found")
    return p


def _subgroup_values(raw: np.ndarray, allowed: tuple[str, ...]) -> np.ndarray:
    """Map a column onto its fixed vocabulary; anything else becomes ``unknown`` (so no free
    text can ever become a subgroup name that leaves the site)."""
    values = np.asarray(raw).astype(str)
    return np.where(np.isin(values, allowed), values, "unknown")


def load_site_data(path: str | Path, site: str, image_shape: tuple[int, ...] = (1, 28, 28)) -> SiteData:
    """Read and schema-check a site's data; raises ``InputError`` naming what is wrong."""
    from carelens.imaging.data import normalise_images

    npz = find_npz(path)
    try:
        data = np.load(npz, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise InputError(f"site data {npz.name}: not a readable .npz file ({type(err).__name__})") from None
    splits: dict[str, SiteSplit] = {}
    with data:
        keys = set(data.files)
        for split in SPLITS:
            if f"{split}_images" not in keys and f"{split}_labels" not in keys:
                continue
            if f"{split}_images" not in keys or f"{split}_labels" not in keys:
                raise InputError(f"site data {npz.name}: {split} split needs both {split}_images and {split}_labels")
            try:
                images = normalise_images(data[f"{split}_images"])
            except InputError as err:
                raise InputError(f"site data {npz.name}: {split} images: {err}") from None
            labels = np.asarray(data[f"{split}_labels"]).reshape(-1)
            pids = np.asarray(data[f"{split}_patient_id"]).astype(str) if f"{split}_patient_id" in keys else None
            groups = {
                col: _subgroup_values(data[f"{split}_{col}"], vocab)
                for col, vocab in SUBGROUP_COLUMNS.items()
                if f"{split}_{col}" in keys
            }
            splits[split] = SiteSplit(images=images, labels=labels, patient_ids=pids, subgroups=groups)
    site_data = SiteData(name=site, splits=splits)
    check_schema(site_data, image_shape, source=npz.name)
    return site_data


def check_schema(data: SiteData, image_shape: tuple[int, ...], source: str = "site data") -> None:
    """The checks a site's data must pass before it trains or validates anything."""
    if not data.splits:
        raise InputError(f"{source}: no train, val or test split")
    for name, s in data.splits.items():
        n = len(s)
        if s.images.shape[0] != n:
            raise InputError(f"{source}: {name} split has {s.images.shape[0]} images but {n} labels")
        if tuple(s.images.shape[1:]) != tuple(image_shape):
            want = "x".join(map(str, image_shape))
            raise InputError(f"{source}: {name} images are {'x'.join(map(str, s.images.shape[1:]))}, expected {want}")
        if not np.isfinite(s.images).all():
            raise InputError(f"{source}: {name} images hold non-finite values")
        if not np.issubdtype(s.labels.dtype, np.number) or not np.isin(s.labels, (0, 1)).all():
            raise InputError(f"{source}: {name} labels must be 0 or 1 (binary task)")
        if n < MIN_IMAGES:
            raise InputError(f"{source}: {name} split has {n} images, fewer than {MIN_IMAGES}")
        for col, values in [("patient_id", s.patient_ids), *s.subgroups.items()]:
            if values is not None and len(values) != n:
                raise InputError(f"{source}: {name}_{col} has {len(values)} values for {n} images")
    data.splits = {k: _as_int_labels(v) for k, v in data.splits.items()}


def _as_int_labels(s: SiteSplit) -> SiteSplit:
    s.labels = s.labels.astype(np.int64)
    return s


def describe(data: SiteData) -> dict[str, Any]:
    """Counts only (what a site may say about its data): images per split and per label."""
    return {
        "counts": data.counts(),
        "label_counts": {k: v.label_counts() for k, v in data.splits.items()},
    }
