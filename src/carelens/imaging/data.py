"""Image data sets as plain arrays: MedMNIST-style ``.npz`` files and folders of images with a labels CSV.

Every loader returns :class:`ImageArrays`: images as float32 ``N x C x H x W`` in ``[0, 1]``,
labels, and the task kind read from the labels (binary, multi-class or multi-label).
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from carelens.core import InputError, Quarantined

Task = Literal["binary", "multiclass", "multilabel"]
SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".dcm", ".dicom"}

# Label names of the MedMNIST sets (the .npz files carry only integer labels).
MEDMNIST_LABELS: dict[str, list[str]] = {
    "pneumoniamnist": ["normal", "pneumonia"],
    "breastmnist": ["malignant", "normal, benign"],
    "chestmnist": [
        "atelectasis",
        "cardiomegaly",
        "effusion",
        "infiltration",
        "mass",
        "nodule",
        "pneumonia",
        "pneumothorax",
        "consolidation",
        "edema",
        "emphysema",
        "fibrosis",
        "pleural",
        "hernia",
    ],
}


@dataclass
class ImageArrays:
    """A labelled image set in memory.

    ``labels`` is ``(N,)`` int64 class indices for binary and multi-class tasks, ``(N, K)``
    float32 0/1 for multi-label ones. ``meta`` holds optional per-image columns (subgroups such
    as sex or site) for stratified evaluation; ``sources`` names where each image came from;
    ``quarantined`` lists the items that could not be used, with their reasons.
    """

    images: np.ndarray
    labels: np.ndarray
    task: Task
    label_names: list[str]
    meta: dict[str, np.ndarray] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def subset(self, index: np.ndarray) -> ImageArrays:
        """The images at ``index`` (an integer or boolean array)."""
        idx = np.asarray(index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return ImageArrays(
            images=self.images[idx],
            labels=self.labels[idx],
            task=self.task,
            label_names=list(self.label_names),
            meta={k: v[idx] for k, v in self.meta.items()},
            sources=[self.sources[i] for i in idx] if self.sources else [],
        )


def concatenate(a: ImageArrays, b: ImageArrays) -> ImageArrays:
    """The images of ``a`` then those of ``b`` (same task and labels)."""
    return ImageArrays(
        images=np.concatenate([a.images, b.images]),
        labels=np.concatenate([a.labels, b.labels]),
        task=a.task,
        label_names=a.label_names,
        sources=a.sources + b.sources,
    )


def detect_task(labels: np.ndarray) -> Task:
    """Binary, multi-class or multi-label, read from the label array's shape and values."""
    arr = np.asarray(labels)
    if arr.ndim == 2 and arr.shape[1] > 1:
        if not np.isin(arr, (0, 1)).all():
            raise InputError("labels have several columns but are not all 0/1: cannot read them as multi-label")
        return "multilabel"
    values = np.unique(arr.reshape(-1))
    if values.size < 2:
        raise InputError("labels hold a single class: a classifier needs at least two")
    if not np.issubdtype(values.dtype, np.integer) and not np.all(values == np.round(values)):
        raise InputError("labels are not integers: expected class indices")
    return "binary" if values.size == 2 else "multiclass"


def normalise_images(images: np.ndarray) -> np.ndarray:
    """Any ``N x H x W``, ``N x H x W x C`` or ``N x C x H x W`` array to float32 ``N x C x H x W`` in [0, 1]."""
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim == 4 and arr.shape[-1] in (1, 3) and arr.shape[1] not in (1, 3):
        arr = arr.transpose(0, 3, 1, 2)
    elif arr.ndim != 4:
        raise InputError(f"images have {arr.ndim} dimensions: expected N x H x W or N x H x W x C")
    if np.issubdtype(arr.dtype, np.integer):
        scale = float(np.iinfo(arr.dtype).max) if arr.dtype != np.uint8 else 255.0
        return (arr.astype(np.float32) / scale).astype(np.float32)
    arr = arr.astype(np.float32)
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        arr = (arr - lo) / max(hi - lo, 1e-8)
    return arr


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """``N x C x H x W`` images resized to ``size`` px (area averaging down, bilinear up)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    mode = "area" if size < images.shape[-1] else "bilinear"
    kwargs = {} if mode == "area" else {"align_corners": False}
    out = torch.nn.functional.interpolate(x, size=(size, size), mode=mode, **kwargs)
    return out.clamp(0.0, 1.0).numpy().astype(np.float32)


def load_npz(path: str | Path, split: str = "train", label_names: list[str] | None = None) -> ImageArrays:
    """One split (``train``, ``val`` or ``test``) of a MedMNIST-style ``.npz`` file.

    The file holds ``<split>_images`` and ``<split>_labels``; the task kind is read from the
    labels of the train split (so every split of one file has the same classes).
    """
    path = Path(path)
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"{path.name}: file not found") from None
    except (OSError, ValueError) as err:
        raise InputError(f"{path.name}: not a readable .npz file ({type(err).__name__})") from None
    with data:
        keys = set(data.files)
        needed = {f"{split}_images", f"{split}_labels"}
        if not needed <= keys:
            raise InputError(f"{path.name}: no {split} split (needs keys {', '.join(sorted(needed))})")
        images = normalise_images(data[f"{split}_images"])
        raw = data[f"{split}_labels"]
        reference = data["train_labels"] if "train_labels" in keys else raw
    if len(images) != len(raw):
        raise InputError(f"{path.name}: {len(images)} images but {len(raw)} labels in the {split} split")
    task = detect_task(reference)
    labels = raw.astype(np.float32) if task == "multilabel" else raw.reshape(-1).astype(np.int64)
    n_classes = reference.shape[1] if task == "multilabel" else int(np.max(reference)) + 1
    names = label_names or MEDMNIST_LABELS.get(path.stem.lower().split("_")[0])
    if not names or len(names) != n_classes:
        names = [f"class_{i}" for i in range(n_classes)]
    sources = [f"{path.name}:{split}[{i}]" for i in range(len(images))]
    return ImageArrays(images=images, labels=labels, task=task, label_names=list(names), sources=sources)


def patient_of(row: dict) -> str:
    """The patient an image belongs to: a ``patient``/``patient_id`` column, else the file name before its
    last ``_<number>`` (NIH ChestX-ray names are ``<patient>_<follow-up>.png``), else the file name."""
    for key in ("patient", "patient_id", "patientid"):
        if row.get(key):
            return str(row[key])
    stem = Path(row["_file"]).stem
    match = re.fullmatch(r"(.+)_\d+", stem)
    return match.group(1) if match else row["_file"]


def patient_bucket(key: str) -> int:
    """A deterministic bucket 0-99 of a patient key (a patient's images all share it)."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 100


def split_of(name: str) -> str:
    """A deterministic 70/15/15 train/val/test split by patient (``name``: the key from :func:`patient_of`),
    used when the CSV has no split column, so that no patient's images fall in two splits."""
    bucket = patient_bucket(name)
    return "train" if bucket < 70 else "val" if bucket < 85 else "test"


def load_folder(
    folder: str | Path,
    split: str = "train",
    labels_csv: str | Path | None = None,
    image_size: int = 28,
    channels: int = 1,
    known_labels: list[str] | None = None,
) -> ImageArrays:
    """A folder of PNG/JPEG/DICOM images with a labels CSV (``labels.csv`` in the folder by default).

    The CSV has a ``filename`` (or ``file``/``image``/``path``) column and a ``label`` column
    (class names or indices; several labels separated by ``|`` make a multi-label task), an
    optional ``split`` column and any other columns as subgroup metadata. Images missing from
    the CSV, rows whose file is missing and unreadable images are quarantined with a reason;
    the rest load. With ``known_labels`` (a model's labels), those are the classes, in that order, and
    a row with any other label is quarantined.
    """
    from carelens.imaging.io import prepare_image, read_image

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder.name}: not a folder")
    csv_path = Path(labels_csv) if labels_csv else _find_labels_csv(folder)
    rows = _read_labels_csv(csv_path)
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES}
    quarantined: list[Quarantined] = []
    listed = {row["_file"] for row in rows}
    for name in sorted(on_disk - listed):
        quarantined.append(Quarantined(source=name, where=csv_path.name, reason="image has no row in the labels file"))
    all_names = known_labels or sorted({lab for row in rows for lab in row["_labels"]}, key=_label_sort_key)
    multilabel = any(len(row["_labels"]) != 1 for row in rows)
    images: list[np.ndarray] = []
    labels: list[list[str]] = []
    sources: list[str] = []
    meta_rows: list[dict[str, str]] = []
    for row in rows:
        name = row["_file"]
        row_split = row.get("split") or split_of(patient_of(row))
        if row_split != split:
            continue
        unknown = [lab for lab in row["_labels"] if lab not in all_names]
        if unknown:
            quarantined.append(
                Quarantined(
                    source=name,
                    where=f"{csv_path.name} line {row['_line']}",
                    reason=f"label {unknown[0]!r} is not one of the model's labels ({', '.join(all_names)})",
                )
            )
            continue
        if name not in on_disk:
            quarantined.append(
                Quarantined(
                    source=name,
                    where=f"{csv_path.name} line {row['_line']}",
                    reason="file listed in the labels file is missing",
                )
            )
            continue
        try:
            img = read_image(folder / name)
            images.append(prepare_image(img.pixels, image_size=image_size, channels=channels))
        except InputError as err:
            quarantined.append(Quarantined(source=name, where="", reason=err.reason))
            continue
        labels.append(row["_labels"])
        sources.append(name)
        meta_rows.append({k: v for k, v in row.items() if not k.startswith("_") and k not in ("split",)})
    if not images:
        reason = quarantined[0].reason if quarantined else "no labelled images"
        raise InputError(f"{folder.name}: no usable images in the {split} split ({reason})")
    index = {lab: i for i, lab in enumerate(all_names)}
    if multilabel:
        label_arr = np.zeros((len(labels), len(all_names)), dtype=np.float32)
        for i, labs in enumerate(labels):
            for lab in labs:
                label_arr[i, index[lab]] = 1.0
        task: Task = "multilabel"
    else:
        label_arr = np.asarray([index[labs[0]] for labs in labels]).astype(np.int64)
        task = "binary" if len(all_names) == 2 else "multiclass"
        if len(all_names) < 2:
            raise InputError(f"{csv_path.name}: labels hold a single class: a classifier needs at least two")
    meta = {k: np.array([m.get(k, "") for m in meta_rows], dtype=object) for k in (meta_rows[0] if meta_rows else {})}
    return ImageArrays(
        images=np.stack(images).astype(np.float32),
        labels=label_arr,
        task=task,
        label_names=all_names,
        meta=meta,
        sources=sources,
        quarantined=quarantined,
    )


def _label_sort_key(label: str) -> tuple[int, object]:
    return (0, int(label)) if label.isdecimal() else (1, label)


def _find_labels_csv(folder: Path) -> Path:
    for name in ("labels.csv", "labels.tsv"):
        if (folder / name).exists():
            return folder / name
    csvs = sorted(folder.glob("*.csv"))
    if len(csvs) == 1:
        return csvs[0]
    raise InputError(f"{folder.name}: no labels file (expected labels.csv with filename and label columns)")


def _read_labels_csv(path: Path) -> list[dict]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path.name}: cannot read the labels file ({type(err).__name__})") from None
    dialect = "excel-tab" if path.suffix == ".tsv" else "excel"
    reader = csv.DictReader(text.splitlines(), dialect=dialect)
    fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    file_col = next((f for f in ("filename", "file", "image", "path") if f in fields), None)
    if file_col is None or "label" not in fields:
        raise InputError(f"{path.name}: labels file needs a filename column and a label column")
    rows = []
    for line, raw in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        if not row.get(file_col):
            continue
        labs = [lab.strip() for lab in row["label"].split("|") if lab.strip()]
        if not labs:
            raise InputError(f"{path.name} line {line}: empty label")
        row["_file"] = Path(row.pop(file_col)).as_posix()
        row.pop("label")
        row["_labels"] = labs
        row["_line"] = line
        rows.append(row)
    if not rows:
        raise InputError(f"{path.name}: labels file has no rows")
    return rows


def load_dataset(
    path: str | Path,
    split: str = "train",
    image_size: int = 28,
    channels: int = 1,
    known_labels: list[str] | None = None,
    resize: bool = False,
) -> ImageArrays:
    """An ``.npz`` file or an image folder with a labels CSV, whichever ``path`` is.

    Folder images are read at ``image_size``; with ``resize``, an ``.npz`` file's images are resized too.
    """
    path = Path(path)
    if path.is_dir():
        return load_folder(path, split, image_size=image_size, channels=channels, known_labels=known_labels)
    if path.suffix.lower() == ".npz":
        arrays = load_npz(path, split)
        if resize and arrays.images.shape[-1] != image_size:
            arrays.images = resize_images(arrays.images, image_size)
        return arrays
    if not path.exists():
        raise InputError(f"{path.name}: not found")
    raise InputError(f"{path.name}: expected a .npz file or a folder of images with a labels CSV")
