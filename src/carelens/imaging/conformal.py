"""Split-conformal prediction sets: with probability at least the target coverage, the set holds the true label.

The set is, by definition, every label whose nonconformity score is within its calibrated
threshold: ``{y : s(x, y) <= q_y}``. With ``class_conditional`` (Mondrian conformal), ``q_y`` is
fitted on the calibration images whose true label is ``y``, so coverage holds for each true class
separately (and so also when the mix of classes shifts); otherwise one ``q`` serves every label.
The p-values come from crepes' ``ConformalClassifier`` (Mondrian categories = the candidate label);
``q_y`` is kept beside them for the model card and for packages without stored scores.

Scores: ``lac`` (1 - probability of the label, crepes' hinge; the default) and ``aps`` (probability
mass of the labels ranked above it; the most probable label scores 0, so its sets are never empty).
A set with more than one label, or none, means "uncertain: refer". A LAC set is empty only when no
label is probable enough, i.e. on images the model is unsure of, never on confident ones (for two
classes: only when the top probability lies between ``1 - q`` bounds, near 0.5).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from carelens.core import UsageError

METHODS = ("lac", "aps")


@dataclass(frozen=True)
class ConformalThreshold:
    """The calibrated threshold(s) for ``method`` at ``target`` coverage, from ``n`` examples.

    ``qhat_per_class`` holds the class-conditional thresholds when fitted per class;
    ``scores``/``score_labels`` are the calibration scores and their true labels (what crepes
    computes p-values from)."""

    method: str
    target: float
    qhat: float
    n: int
    qhat_per_class: list[float] | None = None
    scores: list[float] | None = None
    score_labels: list[int] | None = None

    def qhat_for(self, k: int) -> float:
        return self.qhat_per_class[k] if self.qhat_per_class else self.qhat

    def to_dict(self) -> dict:
        return asdict(self)


def label_scores(proba: np.ndarray, method: str) -> np.ndarray:
    """Nonconformity score of every label for every row (``N x K``): low means the label conforms."""
    proba = np.asarray(proba, dtype=np.float64)
    if method == "lac":
        from crepes.extras import hinge

        return np.asarray(hinge(proba), dtype=np.float64)
    order = np.argsort(-proba, axis=1, kind="stable")
    sorted_p = np.take_along_axis(proba, order, axis=1)
    before = np.cumsum(sorted_p, axis=1) - sorted_p
    out = np.empty_like(proba)
    np.put_along_axis(out, order, before, axis=1)
    return out


def _quantile(scores: np.ndarray, target: float) -> float:
    """The ceil((n + 1) * target)-th smallest score; 1.0 (every label) when there are too few."""
    n = len(scores)
    k = int(np.ceil((n + 1) * target - 1e-9))
    if n == 0 or k > n:
        return 1.0
    return float(np.sort(scores)[k - 1])


def calibrate_conformal(
    proba: np.ndarray,
    labels: np.ndarray,
    target: float = 0.90,
    method: str = "lac",
    class_conditional: bool = False,
) -> ConformalThreshold:
    """Fit the threshold(s) on held-out (validation) probabilities and labels."""
    if method not in METHODS:
        raise UsageError(f"unknown conformal method {method!r}: choose {' or '.join(METHODS)}")
    if not 0.0 < target < 1.0:
        raise UsageError("conformal coverage must be between 0 and 1")
    n = len(labels)
    if n == 0:
        raise UsageError("conformal calibration needs at least one labelled example")
    labels = np.asarray(labels, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    scores = label_scores(proba, method)[np.arange(n), labels]
    per_class = None
    if class_conditional:
        per_class = [_quantile(scores[labels == k], target) for k in range(proba.shape[1])]
    return ConformalThreshold(
        method=method,
        target=float(target),
        qhat=_quantile(scores, target),
        n=n,
        qhat_per_class=per_class,
        scores=[float(s) for s in scores],
        score_labels=[int(y) for y in labels],
    )


def p_values(proba: np.ndarray, threshold: ConformalThreshold) -> np.ndarray:
    """Conformal p-value of every label for every row (``N x K``; crepes, non-smoothed, so deterministic)."""
    from crepes import ConformalClassifier

    if threshold.scores is None or threshold.score_labels is None:
        raise UsageError("this conformal threshold carries no calibration scores: recalibrate the model")
    alphas = label_scores(proba, threshold.method)
    cal = np.asarray(threshold.scores)
    cal_labels = np.asarray(threshold.score_labels)
    rows = len(alphas)
    cc = ConformalClassifier()
    if threshold.qhat_per_class is None:
        cc.fit(cal)
        return np.asarray(cc.predict_p(alphas, smoothing=False))
    cc.fit(cal, bins=cal_labels)
    columns = []
    for k in range(alphas.shape[1]):
        if not np.any(cal_labels == k):  # no calibration example of this class: always include it
            columns.append(np.ones(rows))
            continue
        columns.append(np.asarray(cc.predict_p(alphas, np.full(rows, k), smoothing=False))[:, k])
    return np.stack(columns, axis=1)


def prediction_sets(proba: np.ndarray, threshold: ConformalThreshold) -> list[list[int]]:
    """The conformal set ``{y : s(x, y) <= q_y}`` (class indices, most probable first) for each row of ``proba``."""
    proba = np.asarray(proba, dtype=np.float64)
    if threshold.scores is not None:
        inside = p_values(proba, threshold) > 1.0 - threshold.target + 1e-12
    else:
        q = np.array([threshold.qhat_for(k) for k in range(proba.shape[1])])
        inside = label_scores(proba, threshold.method) <= q[None, :]
    sets = []
    for row, keep in zip(proba, inside, strict=True):
        order = np.argsort(-row, kind="stable")
        sets.append([int(k) for k in order if keep[k]])
    return sets


def coverage(sets: list[list[int]], labels: np.ndarray) -> float:
    """Fraction of examples whose set holds the true label."""
    if not sets:
        return float("nan")
    return float(np.mean([int(y) in s for s, y in zip(sets, labels, strict=True)]))


def coverage_per_class(sets: list[list[int]], labels: np.ndarray, classes: int) -> list[float]:
    """:func:`coverage` among the examples of each true class (NaN for a class with none)."""
    labels = np.asarray(labels)
    return [
        coverage([s for s, y in zip(sets, labels, strict=True) if y == k], labels[labels == k]) for k in range(classes)
    ]


def set_size_distribution(sets: list[list[int]]) -> dict[str, float]:
    """Share of sets of each size (``"0"`` = empty, ``"1"`` = a decided read, ``"2"`` ...)."""
    if not sets:
        return {}
    sizes = np.bincount([len(s) for s in sets])
    return {str(k): round(float(c) / len(sets), 4) for k, c in enumerate(sizes) if c}


def empty_among_confident(sets: list[list[int]], proba: np.ndarray, confident: float = 0.9) -> float:
    """Share of empty sets among the images whose top probability is at least ``confident`` (should be 0)."""
    top = np.asarray(proba).max(axis=1) >= confident
    if not top.any():
        return 0.0
    return float(np.mean([len(s) == 0 for s, t in zip(sets, top, strict=True) if t]))
