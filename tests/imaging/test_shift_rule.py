"""The shift reference: per-class Gaussians of each description, the threshold rule set on the training
site's validation images alone, old package files, and the site verdict."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from carelens.imaging.shift import DEFAULT_QUANTILE, fit_reference, load_reference, site_verdict

MIX = np.eye(6) + 0.3 * np.ones((6, 6))
AGAINST = np.array([1, -1, 1, -1, 1, -1])  # against the correlation


def _gaussian(n: int, seed: int, offset: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 6)) @ MIX + offset * AGAINST


def _two_classes(n0: int, n1: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Class 1 sits apart from class 0 in the features; the pixels part is shared noise."""
    rng = np.random.default_rng(seed)
    labels = np.r_[np.zeros(n0, int), np.ones(n1, int)]
    feats = rng.normal(size=(n0 + n1, 6)) @ MIX + 3.0 * labels[:, None] * np.ones(6)
    return {"features": feats, "pixels": rng.normal(size=(n0 + n1, 4))}, labels


def test_threshold_targets_the_quantile_of_the_validation_images() -> None:
    ref = fit_reference({"features": _gaussian(3000, 0)}, {"features": _gaussian(1000, 1)})
    assert ref.quantile == DEFAULT_QUANTILE == 0.97 and ref.groups == ["all"]
    val_rate = float(np.mean(ref.calibration_scores > ref.threshold))
    assert 0.02 <= val_rate <= 0.03
    assert ref.expected_outside_rate == max(val_rate, 1 - DEFAULT_QUANTILE)
    same_site = float(np.mean(ref.score({"features": _gaussian(2000, 2)}) > ref.threshold))
    other_site = float(np.mean(ref.score({"features": _gaussian(500, 3, offset=2.5)}) > ref.threshold))
    assert same_site <= 0.05 and other_site >= 0.9


def test_per_class_reference_keeps_the_outside_rate_whatever_the_class_mix() -> None:
    # Training and validation are 80% class 0; a later split of the same site is 50/50.
    train, y_train = _two_classes(2400, 600, 0)
    val, y_val = _two_classes(800, 200, 1)
    later, y_later = _two_classes(500, 500, 2)
    pooled = fit_reference(train, val)
    per_class = fit_reference(train, val, train_labels=y_train, val_labels=y_val)
    assert per_class.groups == ["0", "1"] and per_class.parts == ["features", "pixels"]

    def rate(ref, cls):
        rows = {k: v[y_later == cls] for k, v in later.items()}
        return float(np.mean(ref.score(rows) > ref.threshold))

    assert rate(per_class, 0) <= 0.06 and rate(per_class, 1) <= 0.06
    assert rate(pooled, 1) > rate(per_class, 1)  # one Gaussian over both flags the smaller class more
    # an image like neither class is outside
    far = {"features": _gaussian(300, 4, offset=2.5) + 1.5, "pixels": np.random.default_rng(5).normal(size=(300, 4))}
    assert float(np.mean(per_class.score(far) > per_class.threshold)) >= 0.9


def test_saved_reference_scores_the_same_and_old_files_still_load(tmp_path: Path) -> None:
    train, y_train = _two_classes(600, 300, 0)
    val, y_val = _two_classes(200, 100, 1)
    ref = fit_reference(train, val, layers=["a.b"], train_labels=y_train, val_labels=y_val)
    ref.save(tmp_path)
    back = load_reference(tmp_path)
    assert back is not None and back.groups == ref.groups and back.layers == ["a.b"]
    assert np.allclose(back.score(val), ref.score(val)) and back.threshold == ref.threshold
    # format 1 (one Gaussian of the network's description, raw distances) from earlier packages
    one = fit_reference({"features": train["features"]}, {"features": val["features"]}).gaussians[0][0]
    old = tmp_path / "old"
    old.mkdir()
    np.savez(
        old / "shift.npz", mean=one.mean, precision=one.precision, scale_mean=one.scale_mean,
        scale_std=one.scale_std, layers=np.array(["a.b"]), threshold=2.5, quantile=0.98,
        n=np.array([900, 300]), calibration_distances=np.linspace(0, 3, 300),
    )  # fmt: skip
    legacy = load_reference(old)
    assert legacy is not None and legacy.parts == ["features"] and legacy.threshold == 2.5
    assert np.allclose(legacy.score({"features": val["features"]}), one.distance(val["features"]))
    assert "mahalanobis" in legacy.method and legacy.summary()["quantile"] == 0.98
    # the first files: penultimate features only, not standardised
    np.savez(old / "shift.npz", mean=one.mean, precision=one.precision, threshold=2.5, quantile=0.98,
             n=np.array([900, 300]), calibration_distances=np.linspace(0, 3, 300))  # fmt: skip
    first = load_reference(old)
    assert first is not None and first.layers == [] and first.threshold == 2.5
    d = val["features"] - one.mean  # the first files' Gaussian reads the features unscaled
    assert np.allclose(first.score(val), np.sqrt(np.einsum("ij,jk,ik->i", d, one.precision, d)))


def test_verdict_tolerates_twice_the_expected_rate_and_flags_more() -> None:
    # A test split of the training site may show up to twice the validation rate outside (0.043 of 624 here).
    verdict, p = site_verdict(27 / 624, 624, 0.02)
    assert verdict == "matches" and p > 0.01
    verdict, p = site_verdict(0.80, 631, 0.02)
    assert verdict == "shifted" and p < 1e-30
    assert site_verdict(0.10, 50, 0.02)[0] == "matches"  # 5 of 50: too few images to tell
    assert site_verdict(0.0, 0, 0.02) == ("matches", 1.0)
