"""Temperature scaling, ECE, Brier, reliability diagrams and split-conformal prediction sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from carelens.core import UsageError
from carelens.imaging.calibration import (
    brier_score,
    expected_calibration_error,
    fit_temperature,
    reliability_diagram,
)
from carelens.imaging.conformal import (
    calibrate_conformal,
    coverage,
    empty_among_confident,
    label_scores,
    prediction_sets,
    set_size_distribution,
)
from carelens.imaging.engine import logits_to_proba


def _overconfident(n: int, seed: int, factor: float = 3.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z); the model reports factor * z (too sure of itself)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, (n, 3))
    p = logits_to_proba(z, "multiclass")
    labels = np.array([rng.choice(3, p=row) for row in p])
    return z * factor, labels, p


def test_temperature_recovers_overconfidence() -> None:
    logits, labels, _ = _overconfident(4000, 0)
    t = fit_temperature(logits, labels, "multiclass")
    assert 2.5 < t < 3.5
    before = expected_calibration_error(logits_to_proba(logits, "multiclass"), labels, "multiclass")
    after = expected_calibration_error(logits_to_proba(logits, "multiclass", t), labels, "multiclass")
    assert before > 0.1
    assert after < 0.03


def test_brier_known_values() -> None:
    proba = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])
    labels = np.array([1, 1, 0])
    assert brier_score(proba, labels, "binary") == pytest.approx((0 + 1 + 0.25) / 3)
    assert expected_calibration_error(np.array([[0.2, 0.8]] * 10), np.array([1] * 8 + [0] * 2)) == pytest.approx(0.0)


def test_reliability_diagram_png(tmp_path: Path) -> None:
    logits, labels, _ = _overconfident(500, 1)
    path = reliability_diagram({"raw": logits_to_proba(logits, "multiclass")}, labels, "multiclass", tmp_path / "r.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("method", ["lac", "aps"])
def test_conformal_coverage_holds_on_exchangeable_data(method: str) -> None:
    _, cal_labels, cal_p = _overconfident(3000, 2)
    _, test_labels, test_p = _overconfident(3000, 3)
    threshold = calibrate_conformal(cal_p, cal_labels, target=0.9, method=method)
    sets = prediction_sets(test_p, threshold)
    assert abs(coverage(sets, test_labels) - 0.9) < 0.02
    sizes = [len(s) for s in sets]
    assert 1 in sizes and max(sizes) > 1  # some decided, some "uncertain: refer"
    assert all(s[0] == int(np.argmax(p)) for s, p in zip(sets, test_p, strict=True) if s)


def test_conformal_higher_target_gives_larger_sets() -> None:
    _, labels, p = _overconfident(2000, 4)
    small = prediction_sets(p, calibrate_conformal(p, labels, 0.8))
    large = prediction_sets(p, calibrate_conformal(p, labels, 0.95))
    assert np.mean([len(s) for s in large]) > np.mean([len(s) for s in small])


def test_conformal_rejects_bad_settings() -> None:
    p = np.array([[0.3, 0.7]])
    with pytest.raises(UsageError, match="between 0 and 1"):
        calibrate_conformal(p, np.array([1]), target=1.5)
    with pytest.raises(UsageError, match="unknown conformal method"):
        calibrate_conformal(p, np.array([1]), method="raps")


def test_class_conditional_conformal_survives_label_shift() -> None:
    """Per-class thresholds keep coverage when the test set has a different class mix than calibration."""
    _, cal_labels, cal_p = _overconfident(4000, 5)
    _, test_labels, test_p = _overconfident(12000, 6)
    rare = np.flatnonzero(test_labels == 0)
    shifted = np.concatenate([rare, np.flatnonzero(test_labels != 0)[: len(rare) // 4]])  # class 0 now dominates
    mondrian = calibrate_conformal(cal_p, cal_labels, 0.9, class_conditional=True)
    assert mondrian.qhat_per_class is not None and len(mondrian.qhat_per_class) == 3
    for k in range(3):
        in_k = test_labels == k
        assert coverage(prediction_sets(test_p[in_k], mondrian), test_labels[in_k]) > 0.88
    assert abs(coverage(prediction_sets(test_p[shifted], mondrian), test_labels[shifted]) - 0.9) < 0.02


@pytest.mark.parametrize("method", ["lac", "aps"])
@pytest.mark.parametrize("mondrian", [True, False])
def test_conformal_set_is_every_label_within_its_threshold(method: str, mondrian: bool) -> None:
    """The sets (crepes p-values) are exactly {y : s(x, y) <= q_y}: no label is skipped after one fails."""
    rng = np.random.default_rng(4)
    p = rng.dirichlet([1, 1, 1, 1], size=400)
    labels = np.array([rng.choice(4, p=row) for row in p])
    threshold = calibrate_conformal(p[:200], labels[:200], 0.85, method, class_conditional=mondrian)
    scores = label_scores(p[200:], method)
    expected = [sorted(k for k in range(4) if scores[i, k] <= threshold.qhat_for(k)) for i in range(200)]
    assert [sorted(s) for s in prediction_sets(p[200:], threshold)] == expected
    assert any(len(s) > 1 for s in expected) and any(len(s) == 1 for s in expected)


def test_a_confident_image_never_gets_an_empty_set() -> None:
    rng = np.random.default_rng(5)
    top = rng.uniform(0.5, 1.0, 2000)
    labels = (rng.uniform(size=2000) > top).astype(int)  # calibrated: class 0 true with probability `top`
    p = np.stack([top, 1 - top], axis=1)
    for method in ("lac", "aps"):
        threshold = calibrate_conformal(p[:1000], labels[:1000], 0.9, method, class_conditional=True)
        sets = prediction_sets(p[1000:], threshold)
        assert empty_among_confident(sets, p[1000:], 0.9) == 0.0
        distribution = set_size_distribution(sets)
        assert abs(sum(distribution.values()) - 1.0) < 1e-3
        if method == "aps":
            assert "0" not in distribution  # the most probable label always scores 0


def test_ece_noise_floor_and_intervals_of_ece_and_coverage() -> None:
    from carelens.imaging.calibration import ece_if_calibrated
    from carelens.imaging.conformal import calibrate_conformal
    from carelens.imaging.trainer import evaluation_metrics

    rng = np.random.default_rng(0)
    top = rng.uniform(0.5, 1.0, 20000)
    proba = np.c_[top, 1 - top]
    # a perfectly calibrated model still shows an ECE on few images; it shrinks with more
    small, large = ece_if_calibrated(proba[:120]), ece_if_calibrated(proba)
    assert small > 0.03 and large < 0.01 and small > 4 * large
    labels = (rng.random(20000) > top).astype(int)  # drawn from the probabilities: calibrated
    assert expected_calibration_error(proba, labels) < 0.02

    logits = np.log(proba[:300])
    conformal = calibrate_conformal(proba[300:1300], labels[300:1300], 0.9, "aps", True)
    out = evaluation_metrics(logits, labels[:300], "binary", 1.0, 0.5, conformal, resamples=200)
    assert out["ece_if_calibrated"] > 0.0
    for key in ("ece", "conformal_coverage", "auc"):
        low, high = out["ci"][key]
        assert low <= out[key] <= high and high - low > 0.0


def test_cross_fitted_nll_prefers_platt_only_where_the_logits_carry_a_bias() -> None:
    from carelens.imaging.calibration import cross_fitted_nll

    rng = np.random.default_rng(1)
    margin = rng.normal(0, 3, 2000)
    logits = np.stack([np.zeros_like(margin), margin], axis=1)
    biased = (rng.random(2000) < 1 / (1 + np.exp(-(0.5 * margin + 1.0)))).astype(int)
    unbiased = (rng.random(2000) < 1 / (1 + np.exp(-0.5 * margin))).astype(int)
    with_bias = cross_fitted_nll(logits, biased, "binary")
    without = cross_fitted_nll(logits, unbiased, "binary")
    assert with_bias["platt"] < with_bias["temperature"] - 0.05  # a bias only Platt scaling can remove
    assert abs(without["platt"] - without["temperature"]) < 0.005  # nothing to gain: the same fit
    assert cross_fitted_nll(logits[:4], unbiased[:4], "binary") == {}  # too few points to cross-fit
