"""Data loading: MedMNIST .npz files, image folders with a labels CSV, task detection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from carelens.core import InputError
from carelens.imaging import detect_task, load_dataset, load_folder, load_npz


def test_load_npz_reads_pneumoniamnist_as_binary(shared_data: Path) -> None:
    arrays = load_npz(shared_data / "imaging" / "pneumoniamnist.npz", "test")
    assert arrays.images.shape == (624, 1, 28, 28)
    assert arrays.images.dtype == np.float32
    assert arrays.images.min() >= 0.0 and arrays.images.max() <= 1.0
    assert arrays.task == "binary"
    assert arrays.label_names == ["normal", "pneumonia"]
    assert np.bincount(arrays.labels).tolist() == [234, 390]


def test_task_detection_from_labels() -> None:
    assert detect_task(np.array([[0], [1], [1]])) == "binary"
    assert detect_task(np.array([0, 2, 1, 3])) == "multiclass"
    assert detect_task(np.array([[0, 1, 1], [1, 0, 0]])) == "multilabel"
    with pytest.raises(InputError, match="single class"):
        detect_task(np.array([1, 1, 1]))
    with pytest.raises(InputError, match="not all 0/1"):
        detect_task(np.array([[0, 2], [1, 0]]))


def test_npz_multiclass_and_multilabel(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (12, 28, 28), dtype=np.uint8)
    multi = tmp_path / "multi.npz"
    np.savez(multi, train_images=images, train_labels=np.arange(12)[:, None] % 4)
    arrays = load_npz(multi, "train")
    assert arrays.task == "multiclass" and arrays.num_classes == 4
    ml = tmp_path / "ml.npz"
    np.savez(ml, train_images=images, train_labels=rng.integers(0, 2, (12, 3)))
    arrays = load_npz(ml, "train")
    assert arrays.task == "multilabel" and arrays.labels.shape == (12, 3)


def test_npz_missing_split_and_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "only_train.npz"
    np.savez(path, train_images=np.zeros((4, 28, 28), np.uint8), train_labels=np.array([0, 1, 0, 1]))
    with pytest.raises(InputError, match="no test split"):
        load_npz(path, "test")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a readable"):
        load_npz(bad, "train")
    text = tmp_path / "x.txt"
    text.write_text("x")
    with pytest.raises(InputError, match=r"expected a \.npz file or a folder"):
        load_dataset(text, "train")


def _png(path: Path, value: int, size: int = 32) -> None:
    arr = np.full((size, size), value, dtype=np.uint8)
    arr[: size // 2] = 255 - value
    Image.fromarray(arr).save(path)


def test_folder_with_labels_csv_quarantines_mismatches(tmp_path: Path) -> None:
    for i in range(6):
        _png(tmp_path / f"img{i}.png", 20 * i)
    (tmp_path / "unlisted.png").write_bytes((tmp_path / "img0.png").read_bytes())
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    rows = ["filename,label,split,sex"]
    rows += [f"img{i}.png,{'pneumonia' if i % 2 else 'normal'},train,{'F' if i < 3 else 'M'}" for i in range(6)]
    rows += ["missing.png,normal,train,F", "corrupt.png,normal,train,M"]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    arrays = load_folder(tmp_path, "train", image_size=28)
    assert len(arrays) == 6
    assert arrays.images.shape == (6, 1, 28, 28)
    assert arrays.task == "binary" and arrays.label_names == ["normal", "pneumonia"]
    assert arrays.labels.tolist() == [0, 1, 0, 1, 0, 1]
    assert arrays.meta["sex"].tolist() == ["F", "F", "F", "M", "M", "M"]
    reasons = {q.source: q.reason for q in arrays.quarantined}
    assert reasons["unlisted.png"] == "image has no row in the labels file"
    assert reasons["missing.png"] == "file listed in the labels file is missing"
    assert "corrupt" in reasons["corrupt.png"]
    # counts in = loaded + quarantined (8 rows + 1 unlisted image)
    assert len(arrays) + len(arrays.quarantined) == 9


def test_folder_labels_file_without_label_column_is_refused(tmp_path: Path) -> None:
    _png(tmp_path / "a.png", 10)
    (tmp_path / "labels.csv").write_text("filename,diagnosis\na.png,normal\n")
    with pytest.raises(InputError, match="needs a filename column and a label column"):
        load_folder(tmp_path, "train")


def test_folder_multilabel_and_default_split(tmp_path: Path) -> None:
    names = [f"x{i}.png" for i in range(40)]
    for i, name in enumerate(names):
        _png(tmp_path / name, 5 * i)
    labels = ["effusion|nodule", "effusion", "nodule", "mass"]
    (tmp_path / "labels.csv").write_text(
        "file,label\n" + "".join(f"{n},{labels[i % 4]}\n" for i, n in enumerate(names))
    )
    splits = {s: load_folder(tmp_path, s) for s in ("train", "val", "test")}
    assert sum(len(a) for a in splits.values()) == 40
    train = splits["train"]
    assert train.task == "multilabel"
    assert train.label_names == ["effusion", "mass", "nodule"]
    assert train.labels.shape[1] == 3
