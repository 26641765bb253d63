"""Training: networks, a sane result on an easy task, reproducibility, the model package, the time budget."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from carelens.core import InputError, UsageError
from carelens.imaging import build_model, load_npz, predict_proba, train_one_epoch
from carelens.imaging.package import load_package
from carelens.imaging.trainer import TrainConfig, train

from .conftest import TickClock

FAST = {"width": 8}


@pytest.mark.parametrize("arch", ["cnn", "resnet18", "densenet121"])
def test_networks_give_logits_per_class(arch: str) -> None:
    model = build_model(arch, in_channels=1, num_classes=3, image_size=28).eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 3)


def test_unknown_architecture() -> None:
    with pytest.raises(UsageError, match="unknown architecture"):
        build_model("vgg99")


def test_train_one_epoch_learns_easy_task(synthetic_npz: Path) -> None:
    torch.manual_seed(0)
    train_set, val_set = load_npz(synthetic_npz, "train"), load_npz(synthetic_npz, "val")
    model = build_model("cnn", width=8)
    before = predict_proba(model, val_set)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = [train_one_epoch(model, train_set, optimizer, seed=e, augment=False) for e in range(4)]
    after = predict_proba(model, val_set)
    from sklearn.metrics import roc_auc_score

    assert losses[-1] < losses[0]
    assert roc_auc_score(val_set.labels, after[:, 1]) > 0.8
    assert after.shape == before.shape == (len(val_set), 2)
    np.testing.assert_allclose(after.sum(axis=1), 1.0, atol=1e-6)


def test_mixup_is_seeded_and_still_learns(synthetic_npz: Path) -> None:
    from sklearn.metrics import roc_auc_score

    train_set, val_set = load_npz(synthetic_npz, "train"), load_npz(synthetic_npz, "val")

    def run(mixup: float) -> tuple[list[float], np.ndarray]:
        torch.manual_seed(0)
        model = build_model("cnn", width=8)
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
        losses = [train_one_epoch(model, train_set, optimizer, seed=e, augment=False, mixup=mixup) for e in range(4)]
        return losses, predict_proba(model, val_set)[:, 1]

    losses, proba = run(0.4)
    assert run(0.4)[0] == losses  # same seed: same blends, same losses
    assert run(0.0)[0] != losses
    assert roc_auc_score(val_set.labels, proba) > 0.8


def test_train_writes_a_reproducible_package(synthetic_npz: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(max_epochs=2, seed=3, arch_options=FAST, modalities=["CR"], bootstrap=100)
    meta = train(synthetic_npz, tmp_path / "a", cfg)
    again = train(
        synthetic_npz, tmp_path / "b", TrainConfig(max_epochs=2, seed=3, arch_options=FAST, modalities=["CR"])
    )
    assert meta["id"] == again["id"]  # same seed, data and epochs: same weights
    weights = (tmp_path / "a" / "weights.pt").read_bytes()
    assert meta["id"] == hashlib.sha256(weights).hexdigest()
    on_disk = json.loads((tmp_path / "a" / "model.json").read_text())
    for key in ("id", "version", "arch", "labels", "preprocessing", "metrics", "calibration", "conformal",
                "training", "created_at", "carelens_version", "card"):  # fmt: skip
        assert key in on_disk, key
    assert on_disk["conformal"]["target"] == 0.9
    assert on_disk["training"]["counts"] == {"train": 160, "val": 80}
    assert on_disk["training"]["epochs_run"] == 2
    assert set(on_disk["card"]) >= {"intended_use", "data", "performance", "limitations"}
    assert on_disk["metrics"]["validation"]["auc"] > 0.6  # better than chance after two epochs on an easy task
    assert len(on_disk["metrics"]["validation"]["ci"]["auc"]) == 2
    card = (tmp_path / "a" / "MODEL_CARD.md").read_text()
    assert card.startswith("# Model card")
    labels = on_disk["labels"]
    assert all(f"conformal coverage, true {label} |" in card for label in labels)  # a shift shows per class
    assert (tmp_path / "a" / "reliability.png").exists() and (tmp_path / "a" / "checkpoint.pt").exists()
    different = train(synthetic_npz, tmp_path / "c", TrainConfig(max_epochs=2, seed=4, arch_options=FAST))
    assert different["id"] != meta["id"]


def test_test_time_views_are_fixed_per_image_and_recorded(synthetic_npz: Path, tmp_path: Path) -> None:
    """The averaged views are the same for every image: a read does not depend on the batch it came in; the
    package records how many it averages, and packages from before the key keep their flip."""
    from carelens.imaging.engine import TTA_VIEWS, predict_logits, test_time_views

    torch.manual_seed(0)
    model = build_model("cnn", width=8).eval()
    images = load_npz(synthetic_npz, "val").images[:9]
    batch = predict_logits(model, images, views=8)
    alone = np.concatenate([predict_logits(model, images[i : i + 1], views=8) for i in range(len(images))])
    np.testing.assert_allclose(batch, alone, atol=1e-5)
    flipped = images[..., ::-1].copy()
    np.testing.assert_allclose(predict_logits(model, images, views=2), predict_logits(model, images, tta=True))
    np.testing.assert_allclose(
        predict_logits(model, images, views=2), (predict_logits(model, images) + predict_logits(model, flipped)) / 2,
        atol=1e-5,
    )  # fmt: skip
    assert not np.allclose(batch, predict_logits(model, images, views=2))  # the other six views count
    assert len(TTA_VIEWS) == 8 and test_time_views({"test_time_flip": True}) == 2
    assert test_time_views({"test_time_flip": False}) == 1
    assert (
        train(synthetic_npz, tmp_path / "f", TrainConfig(max_epochs=1, arch_options=FAST, bootstrap=10))[
            "preprocessing"
        ]["test_time_views"]
        == 2
    )  # the image and its flip by default
    cfg = TrainConfig(max_epochs=1, arch_options=FAST, bootstrap=10, tta_views=8)
    meta = train(synthetic_npz, tmp_path / "p", cfg)
    assert meta["preprocessing"]["test_time_views"] == 8
    no_tta = train(synthetic_npz, tmp_path / "q", TrainConfig(max_epochs=1, arch_options=FAST, bootstrap=10, tta=False))
    assert no_tta["preprocessing"]["test_time_views"] == 1


def test_time_budget_stops_training(synthetic_npz: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(max_epochs=500, patience=500, time_budget=30.0, arch_options=FAST, bootstrap=10)
    meta = train(synthetic_npz, tmp_path / "p", cfg, clock=TickClock())
    assert meta["training"]["stopped_because"] == "time_budget"
    assert 1 <= meta["training"]["epochs_run"] < 10  # each epoch reads the clock a handful of times


def test_a_passed_deadline_stops_an_epoch_before_any_step(synthetic_npz: Path) -> None:
    model = build_model("cnn", width=8)
    before = [p.detach().clone() for p in model.parameters()]
    loss = train_one_epoch(model, load_npz(synthetic_npz, "train"), deadline=5.0, clock=lambda: 10.0)
    assert loss == 0.0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_tampered_weights_are_refused(synthetic_npz: Path, tmp_path: Path) -> None:
    train(synthetic_npz, tmp_path / "p", TrainConfig(max_epochs=1, arch_options=FAST))
    package = load_package(tmp_path / "p")
    assert package.task == "binary"
    weights = tmp_path / "p" / "weights.pt"
    weights.write_bytes(weights.read_bytes() + b"x")
    with pytest.raises(InputError, match="do not match the model id"):
        load_package(tmp_path / "p")
    with pytest.raises(InputError, match="not a model package"):
        load_package(tmp_path)


def test_cli_train_on_an_image_folder(tmp_path: Path) -> None:
    import json

    from PIL import Image
    from typer.testing import CliRunner

    from carelens.cli import app

    from .conftest import synthetic_arrays

    folder = tmp_path / "images"
    folder.mkdir()
    rows = ["filename,label,split"]
    for split, n, seed in (("train", 64, 7), ("val", 32, 8)):
        arrays = synthetic_arrays(n, seed)
        for i, (img, lab) in enumerate(zip(arrays["images"], arrays["labels"][:, 0], strict=True)):
            name = f"{split}{i}.png"
            Image.fromarray(img).save(folder / name)
            rows.append(f"{name},{'square' if lab else 'plain'},{split}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    args = ["image", "train", "--data", str(folder), "--out", str(tmp_path / "pkg"), "--max-epochs", "1", "--seed", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["labels"] == ["plain", "square"]
    assert out["training"]["counts"] == {"train": 64, "val": 32}
    assert load_package(tmp_path / "pkg").id == out["id"]


def _banded(n: int, task: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Three bright horizontal bands, one per class: one band (multi-class) or any of them (multi-label)."""
    one_each = np.eye(3, dtype=bool)[rng.integers(0, 3, n)]
    present = one_each if task == "multiclass" else rng.random((n, 3)) < 0.5
    images = rng.normal(60, 15, (n, 28, 28))
    for k in range(3):
        images[present[:, k], 3 + 8 * k : 9 + 8 * k, 4:24] += 150
    labels = present.argmax(axis=1)[:, None] if task == "multiclass" else present.astype(np.uint8)
    return np.clip(images, 0, 255).astype(np.uint8), labels


@pytest.mark.parametrize("task", ["multiclass", "multilabel"])
def test_train_and_predict_multiclass_and_multilabel(tmp_path: Path, task: str) -> None:
    from PIL import Image

    from carelens.imaging.predict import predict_image

    rng = np.random.default_rng(0)
    parts = {}
    for split, n in (("train", 96), ("val", 48)):
        parts[f"{split}_images"], parts[f"{split}_labels"] = _banded(n, task, rng)
    np.savez(tmp_path / "bands.npz", **parts)
    meta = train(tmp_path / "bands.npz", tmp_path / "pkg", TrainConfig(max_epochs=2, arch_options=FAST, bootstrap=50))
    assert meta["task"] == task and len(meta["labels"]) == 3
    assert (meta["conformal"] is None) == (task == "multilabel")
    assert 0.0 <= meta["metrics"]["validation"]["ece"] <= 1.0
    Image.fromarray(parts["train_images"][0]).save(tmp_path / "one.png")  # an image of the validated population
    pred = predict_image(load_package(tmp_path / "pkg"), tmp_path / "one.png")
    assert set(pred.probabilities) == set(meta["labels"])
    if task == "multiclass":
        assert isinstance(pred.finding, str) and pred.conformal_set and pred.finding in meta["labels"]
    else:
        assert isinstance(pred.finding, list) and pred.conformal_set is None and not pred.uncertain_refer


def test_medmnist_file_names_set_the_accepted_modalities(synthetic_npz: Path, tmp_path: Path) -> None:
    """A MedMNIST+ file at another size (pneumoniamnist_64.npz) still names its modality for the input checks."""
    import shutil

    data = shutil.copy(synthetic_npz, tmp_path / "pneumoniamnist_64.npz")
    meta = train(data, tmp_path / "p", TrainConfig(max_epochs=1, arch_options=FAST, bootstrap=20))
    assert meta["preprocessing"]["modalities"] == ["CR", "DX"]


def test_early_stopping_waits_for_the_second_half_of_the_schedule(synthetic_npz: Path, tmp_path: Path) -> None:
    meta = train(synthetic_npz, tmp_path / "p", TrainConfig(max_epochs=8, patience=1, arch_options=FAST, bootstrap=10))
    history = meta["training"]["history"]
    aucs = [row["val_auc"] for row in history]
    stale_early = [e for e in range(1, 4) if aucs[e] <= max(aucs[:e])]  # a no-better epoch among epochs 2-4
    assert stale_early, aucs  # patience 1 alone would have stopped there
    assert len(history) >= 5  # no stop before the schedule's second half (epoch 5 of 8)
    assert meta["training"]["stopped_because"] in ("early_stopping", "schedule_done")
