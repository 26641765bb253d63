"""Split-conformal prediction sets: with probability at least the target coverage, the set holds the true label.

A set with more than one label (or none) means the model cannot decide at that coverage:
the image is reported as "uncertain: refer". Scores: ``lac`` (1 - probability of the true
class; smallest sets) and ``aps`` (probability mass of the classes ranked above the true one plus
half its own: adaptive sets; the half replaces APS's random draw so that an image always gets
the same set). With ``class_conditional`` (Mondrian conformal), one threshold per class: the
coverage then holds for each true class separately, and so also when the mix of classes differs
between the calibration data and the images read later (label shift).

Training defaults to class-conditional APS. On PneumoniaMNIST, whose test images differ from
the validation images within a class (normal radiographs look more like pneumonia to the
model), class-conditional LAC left many test normals with an empty set (coverage 0.81-0.85 at a
0.90 target), while APS, whose sets always grow from the most probable label, stayed within
0.02 of the target (``benchmarks/results/imaging.md`` shows all four variants per model).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from carelens.core import UsageError

METHODS = ("lac", "aps")


@dataclass(frozen=True)
class ConformalThreshold:
    """The calibrated score threshold ``qhat`` for ``method`` at ``target`` coverage, from ``n``
    examples; ``qhat_per_class`` holds the class-conditional thresholds when fitted per class."""

    method: str
    target: float
    qhat: float
    n: int
    qhat_per_class: list[float] | None = None

    def qhat_for(self, k: int) -> float:
        return self.qhat_per_class[k] if self.qhat_per_class else self.qhat

    def to_dict(self) -> dict:
        return asdict(self)


def _scores(proba: np.ndarray, labels: np.ndarray, method: str) -> np.ndarray:
    idx = np.arange(len(labels))
    if method == "lac":
        return 1.0 - proba[idx, labels]
    order = np.argsort(-proba, axis=1, kind="stable")
    sorted_p = np.take_along_axis(proba, order, axis=1)
    before = np.cumsum(sorted_p, axis=1) - sorted_p
    rank = np.argmax(order == labels[:, None], axis=1)
    return before[idx, rank] + 0.5 * sorted_p[idx, rank]


def _quantile(scores: np.ndarray, target: float) -> float:
    n = len(scores)
    if n == 0:
        return 1.0  # no calibration examples of this class: always include it
    level = min(1.0, np.ceil((n + 1) * target) / n)
    return float(np.quantile(scores, level, method="higher"))


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
    scores = _scores(np.asarray(proba), labels, method)
    per_class = None
    if class_conditional:
        per_class = [_quantile(scores[labels == k], target) for k in range(np.asarray(proba).shape[1])]
    return ConformalThreshold(
        method=method, target=float(target), qhat=_quantile(scores, target), n=n, qhat_per_class=per_class
    )


def prediction_sets(proba: np.ndarray, threshold: ConformalThreshold) -> list[list[int]]:
    """The conformal set (class indices, most probable first) for each row of ``proba``."""
    proba = np.asarray(proba)
    sets: list[list[int]] = []
    for row in proba:
        order = np.argsort(-row, kind="stable")
        if threshold.method == "lac":
            chosen = [int(k) for k in order if 1.0 - row[k] <= threshold.qhat_for(int(k))]
        else:
            chosen, before = [], 0.0
            for k in order:
                if before + 0.5 * float(row[k]) > threshold.qhat_for(int(k)):
                    break
                chosen.append(int(k))
                before += float(row[k])
        sets.append(chosen)
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
