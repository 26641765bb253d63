"""Shift detection (check-site), patient-level splits, unknown labels, and adaptation to a second site."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from carelens.cli import app
from carelens.core import UsageError
from carelens.imaging.data import load_folder
from carelens.imaging.evaluate import evaluate
from carelens.imaging.package import load_package
from carelens.imaging.trainer import TrainConfig, train

from .conftest import TickClock, synthetic_arrays

runner = CliRunner()
NAMES = ("normal", "pneumonia")


@pytest.fixture(scope="module")
def squares_package(synthetic_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("squares") / "pkg"
    train(synthetic_npz, out, TrainConfig(max_epochs=3, seed=0, arch_options={"width": 8}, bootstrap=50))
    return out


def _site_folder(
    folder: Path, n: int, seed: int, shift: float, extra_rows: tuple[str, ...] = (), names: tuple[str, str] = NAMES
) -> Path:
    """A second site: NIH-style names <patient>_<follow-up>.png (2 images per patient), no split column."""
    folder.mkdir(parents=True)
    arrays = synthetic_arrays(n, seed)
    rows = ["filename,label"]
    for i, (img, lab) in enumerate(zip(arrays["images"], arrays["labels"][:, 0], strict=True)):
        name = f"{i // 2:08d}_{i % 2:03d}.png"
        shifted = np.clip(img.astype(np.float64) * (1 - shift) + 255 * shift * (np.arange(28) / 27), 0, 255)
        Image.fromarray(shifted.astype(np.uint8)).save(folder / name)
        rows.append(f"{name},{names[int(lab)]}")
    (folder / "labels.csv").write_text("\n".join([*rows, *extra_rows]) + "\n")
    return folder


def test_folder_splits_keep_each_patient_in_one_split(tmp_path: Path) -> None:
    folder = _site_folder(tmp_path / "site", 120, 11, 0.0)
    patients = {}
    for split in ("train", "val", "test"):
        arrays = load_folder(folder, split)
        for source in arrays.sources:
            patients.setdefault(source.split("_")[0], set()).add(split)
    assert len(patients) == 60 and all(len(splits) == 1 for splits in patients.values())


def test_cross_fitting_folds_keep_each_patient_in_one_fold(tmp_path: Path) -> None:
    from carelens.imaging.adapt import folds_of

    arrays = load_folder(_site_folder(tmp_path / "site", 400, 12, 0.0), "train")
    fold = folds_of(arrays, 4)
    assert set(fold.tolist()) == {0, 1, 2, 3} and all(0.1 < np.mean(fold == k) < 0.4 for k in range(4))
    by_patient: dict[str, set[int]] = {}
    for source, k in zip(arrays.sources, fold, strict=True):
        by_patient.setdefault(source.split("_")[0], set()).add(int(k))
    assert all(len(ks) == 1 for ks in by_patient.values())
    assert (folds_of(arrays, 4) == fold).all()  # deterministic


def test_cross_fitting_declines_folds_too_small_to_fine_tune(tmp_path: Path) -> None:
    from carelens.imaging.adapt import cross_fit
    from carelens.imaging.trainer import TrainConfig

    arrays = load_folder(_site_folder(tmp_path / "site", 120, 12, 0.0), "train")  # fold complements < 100 images
    assert cross_fit(None, arrays, arrays, TrainConfig(max_epochs=1), 4) is None  # type: ignore[arg-type]


def test_check_site_matches_own_data_and_flags_another_site(squares_package: Path, synthetic_npz: Path,
                                                            tmp_path: Path) -> None:  # fmt: skip
    own = runner.invoke(app, ["image", "check-site", str(squares_package), "--data", str(synthetic_npz),
                              "--split", "test", "--out", str(tmp_path / "own")])  # fmt: skip
    assert own.exit_code == 0, own.output
    mine = json.loads((tmp_path / "own" / "check-site.json").read_text())
    assert json.loads(own.stdout) == mine  # printed as well as kept beside the plot
    assert mine["verdict"] == "matches" and mine["n"] == 80 and mine["outside_rate"] <= 0.1
    assert (tmp_path / "own" / "check-site.png").read_bytes()[:4] == b"\x89PNG"
    other = _site_folder(tmp_path / "other", 80, 12, 0.6)
    result = runner.invoke(app, ["image", "check-site", str(squares_package), "--data", str(other),
                                 "--out", str(tmp_path / "o")])  # fmt: skip
    assert result.exit_code == 0, result.output
    theirs = json.loads((tmp_path / "o" / "check-site.json").read_text())
    assert theirs["verdict"] == "shifted" and theirs["outside_rate"] >= 0.9 and theirs["n"] == 80
    package = load_package(squares_package)
    assert evaluate(package, synthetic_npz, "test", resamples=20)["outside_rate"] == mine["outside_rate"]


def test_unknown_labels_are_quarantined_with_a_reason(squares_package: Path, tmp_path: Path) -> None:
    from carelens.imaging.data import load_dataset

    folder = _site_folder(tmp_path / "site", 40, 13, 0.0, extra_rows=("00000099_000.png,pneumothorax",))
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(folder / "00000099_000.png")
    loaded = [load_dataset(folder, s, known_labels=["normal", "pneumonia"]) for s in ("train", "val", "test")]
    reasons = [q.reason for arrays in loaded for q in arrays.quarantined if q.source == "00000099_000.png"]
    assert reasons and "label 'pneumothorax' is not one of the model's labels" in reasons[0]
    assert all("00000099_000.png" not in arrays.sources for arrays in loaded)


def test_adapt_recalibrates_fine_tunes_validates_and_registers(squares_package: Path, tmp_path: Path) -> None:
    from carelens.imaging.adapt import adapt
    from carelens.models.registry import Registry

    site = _site_folder(tmp_path / "hospital-b" / "images", 240, 14, 0.5, names=("class_0", "class_1"))
    parent = load_package(squares_package)
    meta = adapt(squares_package, site, tmp_path / "adapted", seed=1, store=tmp_path / "store", max_epochs=2)
    assert meta["lineage"]["parent"]["id"] == parent.id
    assert meta["lineage"]["method"].startswith("fine-tuned")
    counts = meta["training"]["counts"]  # every training image calibrates, predicted by a network that did not see it
    assert counts["out_of_fold"] == counts["train"] and "out-of-fold" in meta["calibration"]["fitted_on"]
    assert meta["conformal"]["n"] == meta["metrics"]["validation"]["n"] == counts["val"] + counts["train"]
    runs = meta["calibration"]["cross_fitting"]["runs"]
    assert len(runs) == 4 and sum(r["held_out"] for r in runs) == counts["train"]
    assert all(r["fit"] + r["held_out"] == counts["train"] for r in runs)
    crossed = meta["calibration"]["cross_fitting"]  # test-time views chosen by the out-of-fold NLL
    nll = {int(v): x["temperature"] for v, x in crossed["out_of_fold_nll_by_views"].items()}
    assert set(nll) == {2, 8} and crossed["views"] == min(nll, key=nll.__getitem__)
    assert meta["preprocessing"]["test_time_views"] == crossed["views"]
    assert [s["site"] for s in meta["lineage"]["sites"]][-1] == "hospital-b"
    validation = meta["site_validations"][0]
    assert validation["site"] == "hospital-b" and validation["n"] > 20
    assert validation["passed"] == (not validation["failed"])
    assert validation["before_adaptation"]["metrics"]["outside_rate"]["value"] > 0.5  # the parent did not know it
    assert validation["metrics"]["outside_rate"]["value"] <= 0.2  # the adapted model's reference is this site
    registry = Registry(tmp_path / "store")
    records = registry.records(meta["registry_id"])
    assert records[0]["kind"] == "validation" and records[0]["content"]["sites"][0]["site"] == "hospital-b"
    exported = registry.export(meta["registry_id"])
    assert "hospital-b" in exported["hti1"]["local_validity"]
    assert set(exported["plots"]) == {"roc", "reliability"}
    parent_entry = next(i for i in registry.ids() if i != meta["registry_id"])
    parent_card = registry.export(parent_entry)["hti1"]
    assert "hospital-b: auc" in parent_card["external_validity"]  # the unadapted model's result at the new site
    from carelens.models.card import render_html

    page = render_html(exported)
    assert page.count("data:image/png;base64") >= 3


def test_adapt_starts_where_the_sites_patients_are_ranked_better_out_of_fold(
    squares_package: Path, synthetic_npz: Path, tmp_path: Path
) -> None:
    """``auto`` cross-fits the parent's weights and fresh ones and keeps the higher out-of-fold AUC; a network
    trained at the site from fresh weights does not depend on the parent's weights, only on its architecture."""
    from carelens.imaging.adapt import adapt

    site = _site_folder(tmp_path / "clinic" / "images", 240, 16, 0.5, names=("class_0", "class_1"))
    meta = adapt(squares_package, site, tmp_path / "auto", seed=2, register=False, max_epochs=2, start="auto")
    crossed = meta["calibration"]["cross_fitting"]
    by_start = crossed["out_of_fold_auc_by_start"]
    assert set(by_start) == {"parent", "scratch"} and crossed["start"] == max(by_start, key=by_start.__getitem__)
    assert meta["lineage"]["method"].startswith("fine-tuned" if crossed["start"] == "parent" else "trained at the site")
    other = tmp_path / "other-parent"
    train(synthetic_npz, other, TrainConfig(max_epochs=1, seed=9, arch_options={"width": 8}, bootstrap=10))
    fresh = [
        adapt(parent, site, tmp_path / f"scratch-{k}", seed=2, register=False, max_epochs=2, folds=0, start="scratch")
        for k, parent in enumerate((squares_package, other))
    ]
    assert fresh[0]["id"] == fresh[1]["id"]  # same seed and site: the same network, whichever parent
    assert (
        fresh[0]["lineage"]["method"]
        == "trained at the site from fresh weights of the parent's architecture, and calibrated"
    )
    with pytest.raises(UsageError, match="unknown start"):
        adapt(squares_package, site, tmp_path / "x", register=False, start="elsewhere")


def test_adapt_shares_its_budget_on_the_clock_it_is_given(squares_package: Path, tmp_path: Path) -> None:
    """Every cross-fitting fit and the final one stop on ``time_budget`` as read from ``clock`` (the benchmark passes
    CPU seconds); a fake clock that ticks once per reading makes the stops independent of the machine's speed."""
    from carelens.imaging.adapt import adapt

    site = _site_folder(tmp_path / "clinic" / "images", 240, 17, 0.5, names=("class_0", "class_1"))
    meta = adapt(squares_package, site, tmp_path / "a", time_budget=100.0, seed=3, register=False, max_epochs=40,
                 patience=40, clock=TickClock())  # fmt: skip
    runs = meta["calibration"]["cross_fitting"]["runs"]
    assert len(runs) == 4 and all(r["stopped_because"] == "time_budget" and r["epochs_run"] < 40 for r in runs)
    assert meta["training"]["stopped_because"] == "time_budget" and meta["training"]["time_budget_s"] == 20.0


def test_cli_adapt_with_no_cross_fitting_calibrates_on_validation(squares_package: Path, tmp_path: Path) -> None:
    site = _site_folder(tmp_path / "clinic" / "images", 240, 15, 0.5, names=("class_0", "class_1"))
    result = runner.invoke(app, ["image", "adapt", str(squares_package), "--data", str(site), "--out",
                                 str(tmp_path / "a"), "--folds", "0", "--no-register"])  # fmt: skip
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["local_validation"]["site"] == "clinic" and printed["registry_id"] is None
    meta = json.loads((tmp_path / "a" / "model.json").read_text())
    assert "cross_fitting" not in meta["calibration"] and meta["calibration"]["fitted_on"] == "validation"
    assert meta["conformal"]["n"] == meta["training"]["counts"]["val"]
    bad = runner.invoke(app, ["image", "adapt", str(squares_package), "--data", str(site), "--out",
                              str(tmp_path / "b"), "--folds", "-1"])  # fmt: skip
    assert bad.exit_code != 0
    nowhere = runner.invoke(app, ["image", "adapt", str(squares_package), "--data", str(site), "--out",
                                  str(tmp_path / "c"), "--start", "elsewhere"])  # fmt: skip
    assert nowhere.exit_code != 0 and "unknown start 'elsewhere'" in str(nowhere.exception)
    assert not (tmp_path / "c").exists()  # refused before any fit


def test_validate_records_a_site_verdict_that_decides_the_site_mark(
    squares_package: Path, synthetic_npz: Path, tmp_path: Path, store: Path
) -> None:
    """`image validate` (check-site + evaluation, no change to the model) records its verdict; at a shifted
    site it fails (exit 1) naming check-site; the registry's site status follows the newest validation
    naming the site (the workspace's mark: tests/server/test_site_mark.py)."""
    from carelens.models.registry import Registry

    same = runner.invoke(app, ["image", "validate", str(squares_package), "--data", str(synthetic_npz),
                               "--site", "hospital-a"])  # fmt: skip
    ok = json.loads(same.stdout)
    assert same.exit_code == (0 if ok["passed"] else 1) and ok["passed"] == (not ok["failed"])
    assert ok["site"] == "hospital-a" and ok["check_site"]["verdict"] == "matches" and ok["record"] == 1
    assert not any("check-site" in f for f in ok["failed"])  # the training site's own images are not shifted
    registry = Registry(store)
    assert registry.site_status(ok["registry_id"], "hospital-a")["validated"] is ok["passed"]
    assert registry.site_status(ok["registry_id"], "hospital-b")["mark"] == "not validated at this site"

    other = _site_folder(tmp_path / "other", 120, 15, 0.6, names=("class_0", "class_1"))
    shifted = runner.invoke(app, ["image", "validate", str(squares_package), "--data", str(other),
                                  "--site", "hospital-a"])  # fmt: skip
    assert shifted.exit_code == 1
    bad = json.loads(shifted.stdout)
    assert not bad["passed"] and any("check-site" in f for f in bad["failed"]) and bad["record"] == 2
    status = registry.site_status(ok["registry_id"], "hospital-a")
    assert status["validated"] is False and "check-site" in status["reason"]
