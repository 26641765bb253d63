"""Site data schema checks, site metrics with small-cell suppression, pooling, DP accounting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from carelens.core.errors import InputError
from carelens.network.metrics import MIN_CELL, flatten, pooled, site_metrics, unflatten
from carelens.network.sitedata import load_site_data
from carelens.network.strategy import epsilon_spent

from .conftest import CANARY_NAMES, write_site


def test_site_data_loads_and_maps_free_text_subgroups_to_unknown(site_npz: Path) -> None:
    data = load_site_data(site_npz, "north")
    train = data.split("train")
    assert train.images.shape[1:] == (1, 28, 28) and train.images.dtype == np.float32
    assert set(train.subgroups["sex"]) <= {"F", "M", "unknown"}
    assert CANARY_NAMES[0] not in set(train.subgroups["sex"])
    assert data.counts() == {"train": 60, "val": 30, "test": 60}


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"train_labels": np.full((60, 1), 2)}, "labels must be 0 or 1"),
        ({"train_images": np.zeros((60, 32, 32), dtype=np.uint8)}, "expected 1x28x28"),
        ({"train_images": np.zeros((59, 28, 28), dtype=np.uint8)}, "59 images but 60 labels"),
        ({"test_patient_id": np.asarray(["a"] * 3)}, "test_patient_id has 3 values"),
    ],
)
def test_schema_failures_are_named_without_quoting_values(tmp_path: Path, overrides: dict, reason: str) -> None:
    path = write_site(tmp_path / "bad.npz", **overrides)
    with pytest.raises(InputError, match=reason) as info:
        load_site_data(path, "bad")
    assert "CANARY" not in str(info.value) and CANARY_NAMES[0] not in str(info.value)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        load_site_data(tmp_path / "nope.npz", "x")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a readable"):
        load_site_data(tmp_path / "junk.npz", "x")


def test_site_metrics_suppress_cells_under_eleven_patients(site_npz: Path) -> None:
    split = load_site_data(site_npz, "north").split("test")
    rng = np.random.default_rng(0)
    p1 = np.clip(split.labels * 0.6 + rng.random(len(split)) * 0.4, 0, 1)
    result = site_metrics(np.stack([1 - p1, p1], axis=1), split, resamples=50)
    assert result["metrics"]["auc"]["value"] > 0.8
    assert (
        result["metrics"]["auc"]["ci_low"] <= result["metrics"]["auc"]["value"] <= result["metrics"]["auc"]["ci_high"]
    )
    for row in result["subgroups"]:
        index = np.flatnonzero(split.subgroups[row["group"]] == row["value"])
        small = np.unique(split.patient_ids[index]).size < MIN_CELL
        assert bool(row.get("suppressed")) == small
        if small:
            assert set(row) == {"group", "value", "suppressed"}
    assert any(r.get("suppressed") for r in result["subgroups"])  # "unknown" sex is a small cell
    key = lambda r: (r["group"], r["value"])  # noqa: E731
    assert unflatten(flatten(result))["subgroups"] == sorted(result["subgroups"], key=key)


def test_pooling_weights_precise_sites_more() -> None:
    sites = [
        {"n": 100, "metrics": {"auc": {"value": 0.9, "ci_low": 0.88, "ci_high": 0.92}}},
        {"n": 20, "metrics": {"auc": {"value": 0.7, "ci_low": 0.5, "ci_high": 0.9}}},
    ]
    p = pooled(sites, "auc")
    assert p is not None and 0.89 < p["value"] < 0.9 and p["n"] == 120
    assert p["ci_low"] < p["value"] < p["ci_high"]


def test_epsilon_grows_with_rounds_and_shrinks_with_noise() -> None:
    assert epsilon_spent(1.0, 10) > epsilon_spent(1.0, 2) > epsilon_spent(2.0, 2) > 0
    assert epsilon_spent(0.0, 3) == float("inf")


def test_epsilon_is_the_tight_pld_value() -> None:
    # sigma 1, 3 rounds, delta 1e-5: the PLD accountant gives 8.39 (the old RDP hand formula 9.81)
    assert epsilon_spent(1.0, 3) == pytest.approx(8.385, abs=0.01)
