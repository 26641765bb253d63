"""`carelens node prepare-site`: a site's images and labels become the data file a node reads."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from carelens.cli import app
from carelens.network.sitedata import load_site_data


def _images(folder: Path, patients: int = 60, per_patient: int = 3) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    with (folder / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "label", "patient_id", "sex", "age_group", "name"])
        for p in range(patients):
            label = "pneumonia" if p % 2 else "normal"
            for i in range(per_patient):
                pixels = (rng.random((32, 32)) * 120 + (100 if label == "pneumonia" else 0)).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"p{p}_{i}.png")
                writer.writerow([f"p{p}_{i}.png", label, f"MRN{p:04d}", "F" if p % 3 else "M", "40-64", "Zed Canary"])
    (folder / "stray.png").write_bytes(b"not an image")  # not in the labels: left out with a reason
    return folder


def test_prepare_site_writes_a_file_a_node_accepts(tmp_path: Path) -> None:
    folder = _images(tmp_path / "site")
    out = tmp_path / "north.npz"
    res = CliRunner().invoke(app, ["node", "prepare-site", str(folder), "--out", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["labels"] == {"0": "normal", "1": "pneumonia"}
    assert sum(report["counts"].values()) == 180 and set(report["counts"]) == {"train", "val", "test"}
    assert [d["source"] for d in report["left_out"]] == ["stray.png"]
    data = load_site_data(out, "north")
    patients = {s: set(data.splits[s].patient_ids.tolist()) for s in ("train", "val", "test")}
    assert not (patients["train"] & patients["val"]) and not (patients["train"] & patients["test"])  # by patient
    assert set(data.splits["train"].subgroups["sex"].tolist()) == {"F", "M"}
    with np.load(out) as raw:
        assert not any("name" in key for key in raw.files)  # columns a node never needs stay behind


def test_prepare_site_refuses_what_a_node_could_not_use(tmp_path: Path) -> None:
    folder = tmp_path / "one-class"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "a.png")
    (folder / "labels.csv").write_text("filename,label\na.png,normal\n")
    res = CliRunner().invoke(app, ["node", "prepare-site", str(folder), "--out", str(tmp_path / "x.npz")])
    assert res.exit_code != 0 and "exactly two classes" in res.exception.reason  # type: ignore[union-attr]
    assert not (tmp_path / "x.npz").exists()
    tiny = _images(tmp_path / "tiny", patients=4, per_patient=1)
    res = CliRunner().invoke(app, ["node", "prepare-site", str(tiny), "--out", str(tmp_path / "t.npz")])
    assert res.exit_code != 0 and not (tmp_path / "t.npz").exists()


def test_prepare_site_splits_nih_style_names_by_patient_as_image_train_does(tmp_path: Path) -> None:
    """Without a patient_id column the patient is the file name before ``_<n>`` (NIH ChestX-ray14):
    the split is the one ``image train``/``image adapt`` make, so no patient is in two splits."""
    from carelens.imaging.data import load_folder

    folder = tmp_path / "nih"
    folder.mkdir()
    rng = np.random.default_rng(1)
    with (folder / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "label"])
        for p in range(80):
            for i in range(3):
                Image.fromarray((rng.random((16, 16)) * 255).astype(np.uint8)).save(folder / f"{p:08d}_{i:03d}.png")
                writer.writerow([f"{p:08d}_{i:03d}.png", "pneumonia" if p % 2 else "normal"])
    out = tmp_path / "adult.npz"
    prepare_site_report = CliRunner().invoke(app, ["node", "prepare-site", str(folder), "--out", str(out)])
    assert prepare_site_report.exit_code == 0, prepare_site_report.output
    data = load_site_data(out, "adult")
    patients = {s: set(data.splits[s].patient_ids.tolist()) for s in ("train", "val", "test")}
    assert not (patients["train"] & patients["test"]) and not (patients["val"] & patients["test"])
    assert all(len(v) > 0 for v in patients.values())
    for split in ("train", "test"):  # the same images image train/adapt put in this split
        assert len(data.splits[split]) == len(load_folder(folder, split, image_size=28))


def test_prepare_site_writes_nothing_naming_patients_to_the_shared_temp_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The split labels (patient ids, names) are written beside the output while the images load."""
    import tempfile

    import carelens.imaging.data as image_data
    from carelens.network.prepare import prepare_site

    shared_tmp = tmp_path / "shared-tmp"
    shared_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(shared_tmp))
    seen: list[Path] = []
    load_folder = image_data.load_folder

    def watched(*args: Any, **kw: Any) -> Any:
        seen.extend(shared_tmp.rglob("*"))
        assert "MRN0001" in Path(kw["labels_csv"]).read_text()  # the file the images load with
        return load_folder(*args, **kw)

    monkeypatch.setattr(image_data, "load_folder", watched)
    out = tmp_path / "out" / "north.npz"
    prepare_site(_images(tmp_path / "site"), out)
    assert seen == [] and sorted(p.name for p in out.parent.iterdir()) == ["north.npz"]
