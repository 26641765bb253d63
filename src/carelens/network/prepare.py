"""Make a site's data file for the partner network from the site's own labelled images.

The input is what ``carelens image train`` reads: a folder of PNG/JPEG/DICOM images with a
labels CSV (``filename``, ``label`` with two classes; optional ``split``, ``patient_id``,
``sex``, ``age_group``). Without a ``split`` column, images are split 70/15/15 by patient
(``patient_id``; else the patient in an NIH-style file name ``<patient>_<n>.png``; else the file name),
the same split ``carelens image train`` and ``image adapt`` make, so no patient is in two splits and
a site's federated test split holds the patients its local validation holds out. The output is
the ``.npz`` a node reads (see :mod:`carelens.network.sitedata`), checked before it is kept.
"""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from carelens.core.errors import InputError
from carelens.network.sitedata import SPLITS, SUBGROUP_COLUMNS, describe, load_site_data


def prepare_site(
    folder: str | Path, out: str | Path, labels_csv: str | Path | None = None, image_size: int = 28
) -> dict[str, Any]:
    """Write ``out`` (a site ``.npz``) from ``folder``; returns counts, the label mapping and the
    images left out (each with its reason)."""
    from carelens.imaging.data import _find_labels_csv, _read_labels_csv, load_folder

    folder, out = Path(folder), Path(out)
    if not folder.is_dir():
        raise InputError(f"{folder.name}: not a folder of images")
    source_csv = Path(labels_csv) if labels_csv else _find_labels_csv(folder)
    rows = _read_labels_csv(source_csv)
    classes = sorted({label for row in rows for label in row["_labels"]})
    if len(classes) != 2 or any(len(row["_labels"]) != 1 for row in rows):
        raise InputError(f"{source_csv.name}: a site's data needs exactly two classes, one label per image")
    payload: dict[str, np.ndarray] = {}
    left_out: dict[tuple[str, str], None] = {}
    out.parent.mkdir(parents=True, exist_ok=True)
    # the split labels name patients: they stay beside the output, never in the shared temp folder
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".prepare-") as tmp:
        split_csv = _with_splits(rows, Path(tmp) / "labels.csv")
        for split in SPLITS:
            try:
                arrays = load_folder(folder, split, labels_csv=split_csv, image_size=image_size, channels=1)
            except InputError as err:
                left_out[(f"{split} split", err.reason)] = None
                continue
            left_out.update({(q.source, q.reason): None for q in arrays.quarantined})
            payload[f"{split}_images"] = arrays.images
            payload[f"{split}_labels"] = arrays.labels.reshape(-1, 1)
            for column in ("patient_id", *SUBGROUP_COLUMNS):
                if column in arrays.meta:
                    payload[f"{split}_{column}"] = np.asarray(arrays.meta[column]).astype(str)
    partial = out.with_name(out.name + ".partial.npz")
    np.savez_compressed(partial, **payload)
    try:
        summary = describe(load_site_data(partial, "site", (1, image_size, image_size)))
    except InputError:
        partial.unlink()
        raise
    partial.replace(out)
    dropped = [{"source": source, "reason": reason} for source, reason in left_out]
    return {"out": str(out), **summary, "labels": {"0": classes[0], "1": classes[1]}, "left_out": dropped}


def _with_splits(rows: list[dict[str, Any]], path: Path) -> Path:
    """The labels as a CSV with a ``split`` column (the given one, else 70/15/15 by patient)."""
    from carelens.imaging.data import patient_of, split_of

    extra = sorted({k for row in rows for k in row if not k.startswith("_") and k not in ("split", "patient_id")})
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "label", "split", "patient_id", *extra])
        for row in rows:
            patient = patient_of(row)
            split = row.get("split") or split_of(patient)
            writer.writerow([row["_file"], row["_labels"][0], split, patient, *(row.get(k, "") for k in extra)])
    return path
