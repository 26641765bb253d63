"""The shift threshold rule: set on the training site's validation images alone, and the site verdict."""

from __future__ import annotations

import numpy as np

from carelens.imaging.shift import DEFAULT_QUANTILE, fit_reference, site_verdict


def _gaussian(n: int, seed: int, offset: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = np.eye(6) + 0.3 * np.ones((6, 6))
    return rng.normal(size=(n, 6)) @ mix + offset * np.array([1, -1, 1, -1, 1, -1])  # against the correlation


def test_threshold_targets_two_percent_of_the_validation_images() -> None:
    ref = fit_reference(_gaussian(3000, 0), _gaussian(1000, 1))
    assert ref.quantile == DEFAULT_QUANTILE == 0.98
    val_rate = float(np.mean(ref.calibration_distances > ref.threshold))
    assert 0.015 <= val_rate <= 0.02
    assert ref.expected_outside_rate == max(val_rate, 1 - DEFAULT_QUANTILE)
    same_site = float(np.mean(ref.distance(_gaussian(2000, 2)) > ref.threshold))
    other_site = float(np.mean(ref.distance(_gaussian(500, 3, offset=2.5)) > ref.threshold))
    assert same_site <= 0.05 and other_site >= 0.9


def test_verdict_tolerates_twice_the_expected_rate_and_flags_more() -> None:
    # A test split of the training site may show up to twice the validation rate outside (0.043 of 624 here).
    verdict, p = site_verdict(27 / 624, 624, 0.02)
    assert verdict == "matches" and p > 0.01
    verdict, p = site_verdict(0.80, 631, 0.02)
    assert verdict == "shifted" and p < 1e-30
    assert site_verdict(0.10, 50, 0.02)[0] == "matches"  # 5 of 50: too few images to tell
    assert site_verdict(0.0, 0, 0.02) == ("matches", 1.0)
