"""`carelens image evaluate` (JSON contract, Markdown/HTML reports, subgroups) and every command's --help."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from carelens.cli import app
from carelens.core import InputError, UsageError
from carelens.imaging.evaluate import CONTRACT_KEYS, evaluate
from carelens.imaging.fetch import medmnist_url
from carelens.imaging.package import load_package

runner = CliRunner()


def test_evaluate_json_contract(package_dir: Path, pneumonia_small: Path) -> None:
    result = runner.invoke(
        app, ["image", "evaluate", str(package_dir), "--data", str(pneumonia_small), "--split", "test"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(CONTRACT_KEYS) <= set(out)
    assert list(out)[: len(CONTRACT_KEYS)] == list(CONTRACT_KEYS)
    assert out["n"] == 100
    for key in ("auc", "accuracy", "sensitivity", "specificity", "ece", "ece_uncalibrated", "conformal_coverage"):
        assert 0.0 <= out[key] <= 1.0, key
    assert out["conformal_target"] == 0.9
    lo, hi = out["ci"]["auc"]
    assert lo <= out["auc"] <= hi
    assert "brier" in out and out["model"]["id"] == json.loads((package_dir / "model.json").read_text())["id"]
    labels = np.load(pneumonia_small)["test_labels"][:, 0]
    per_class = out["conformal_coverage_per_class"]
    assert len(per_class) == 2 and out["labels"] == ["normal", "pneumonia"]
    overall = sum(c * np.mean(labels == k) for k, c in enumerate(per_class))
    assert overall == pytest.approx(out["conformal_coverage"])  # the classes' coverages add up to the whole


@pytest.mark.parametrize(
    ("fmt", "name", "marker"), [("markdown", "evaluation.md", "| auc |"), ("html", "evaluation.html", "<table>")]
)
def test_evaluate_reports_with_plots(
    package_dir: Path, pneumonia_small: Path, tmp_path: Path, fmt: str, name: str, marker: str
) -> None:
    args = [
        "image",
        "evaluate",
        str(package_dir),
        "--data",
        str(pneumonia_small),
        "--format",
        fmt,
        "--out",
        str(tmp_path),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    text = (tmp_path / name).read_text()
    assert marker in text and "roc.png" in text and "reliability.png" in text
    assert "conformal coverage, true normal" in text
    for png in ("roc.png", "reliability.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


def test_subgroup_metrics_from_folder_metadata(package_dir: Path, pneumonia_small: Path, tmp_path: Path) -> None:
    data = np.load(pneumonia_small)
    rows = ["filename,label,split,site"]
    for i, (img, lab) in enumerate(zip(data["test_images"][:60], data["test_labels"][:60, 0], strict=True)):
        Image.fromarray(img).save(tmp_path / f"t{i}.png")
        rows.append(f"t{i}.png,{'pneumonia' if lab else 'normal'},test,{'A' if i < 45 else 'B'}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    result = evaluate(load_package(package_dir), tmp_path, "test", resamples=50)
    assert result["n"] == 60
    assert result["subgroups"]["site"]["A"]["n"] == 45 and "auc" in result["subgroups"]["site"]["A"]
    assert result["subgroups"]["site"]["B"]["n"] == 15


def test_evaluate_refuses_mismatched_data(package_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "four.npz"
    rng = np.random.default_rng(0)
    np.savez(path, test_images=rng.integers(0, 255, (8, 28, 28), dtype=np.uint8), test_labels=np.arange(8) % 4)
    with pytest.raises(InputError, match="4 classes"):
        evaluate(load_package(package_dir), path, "test")


def test_bad_usage_is_reported() -> None:
    result = runner.invoke(app, ["image", "evaluate", "nowhere", "--data", "x.npz", "--format", "pdf"])
    assert result.exit_code == 2 and "pdf" in result.output  # refused when the command line is parsed
    result = runner.invoke(app, ["image", "predict", "nowhere", "a.dcm", "--format", "dicom-sr"])
    assert isinstance(result.exception, UsageError) and "--out" in str(result.exception)
    result = runner.invoke(app, ["image", "predict", "nowhere", "a.dcm"])
    assert isinstance(result.exception, InputError) and "not a model package" in str(result.exception)


def test_medmnist_fetch_names_without_network() -> None:
    assert medmnist_url("pneumoniamnist").endswith("pneumoniamnist.npz?download=1")
    assert "pneumoniamnist_64.npz" in medmnist_url("pneumoniamnist", 64)
    with pytest.raises(UsageError, match="unknown MedMNIST set"):
        medmnist_url("pneumonia")
    with pytest.raises(UsageError, match="sizes"):
        medmnist_url("pneumoniamnist", 32)


@pytest.mark.parametrize(
    "command",
    [["image"], ["image", "train"], ["image", "evaluate"], ["image", "predict"], ["data", "fetch", "medmnist"]],
)
def test_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output and len(result.output.splitlines()) > 3
