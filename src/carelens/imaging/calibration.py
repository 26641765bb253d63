"""Calibration: temperature scaling fitted on validation logits, ECE, Brier score, reliability diagrams."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar

from carelens.core.plots import figure
from carelens.imaging.engine import logits_to_proba


def _nll(logits: np.ndarray, labels: np.ndarray, task: str, temperature: float) -> float:
    proba = np.clip(logits_to_proba(logits, task, temperature), 1e-12, 1 - 1e-12)
    if task == "multilabel":
        return float(-np.mean(labels * np.log(proba) + (1 - labels) * np.log(1 - proba)))
    return float(-np.mean(np.log(proba[np.arange(len(labels)), labels])))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, task: str) -> float:
    """The temperature ``T`` (0.05 to 20) minimising the negative log-likelihood of ``softmax(logits / T)``."""
    if len(labels) == 0:
        return 1.0
    result = minimize_scalar(
        lambda log_t: _nll(logits, labels, task, float(np.exp(log_t))),
        bounds=(np.log(0.05), np.log(20.0)),
        method="bounded",
    )
    return float(np.exp(result.x))


def _platt(margin: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Slope and intercept of a logistic regression of the label on the binary logit margin (Platt scaling)."""
    from scipy.optimize import minimize

    def nll(params: np.ndarray) -> float:
        z = params[0] * margin + params[1]
        return float(np.mean(np.logaddexp(0.0, z) - labels * z))

    slope, intercept = minimize(nll, np.array([1.0, 0.0]), method="L-BFGS-B").x
    return float(slope), float(intercept)


def cross_fitted_nll(logits: np.ndarray, labels: np.ndarray, task: str, folds: int = 5) -> dict[str, float]:
    """Held-out negative log-likelihood of temperature scaling and (binary tasks) Platt scaling: each fitted on
    ``folds - 1`` folds of the calibration points and scored on the last, averaged over the folds."""
    if task == "multilabel" or len(labels) < 2 * folds:
        return {}
    fold = np.random.default_rng(0).permutation(len(labels)) % folds
    out = {"temperature": 0.0} | ({"platt": 0.0} if task == "binary" else {})
    for k in range(folds):
        fit, held = fold != k, fold == k
        t = fit_temperature(logits[fit], labels[fit], task)
        out["temperature"] += _nll(logits[held], labels[held], task, t) * held.mean()
        if task == "binary":
            margin = logits[:, 1] - logits[:, 0]
            a, b = _platt(margin[fit], labels[fit])
            z = a * margin[held] + b
            out["platt"] += float(np.mean(np.logaddexp(0.0, z) - labels[held] * z)) * held.mean()
    return {k: round(v, 5) for k, v in out.items()}


def _confidence_and_correct(proba: np.ndarray, labels: np.ndarray, task: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-prediction confidence and whether it was right (each label separately for multi-label)."""
    if task == "multilabel":
        p = proba.reshape(-1)
        y = labels.reshape(-1)
        conf = np.maximum(p, 1 - p)
        return conf, ((p >= 0.5) == (y >= 0.5)).astype(np.float64)
    pred = proba.argmax(axis=1)
    return proba.max(axis=1), (pred == labels).astype(np.float64)


def expected_calibration_error(proba: np.ndarray, labels: np.ndarray, task: str = "binary", bins: int = 15) -> float:
    """ECE over ``bins`` equal-width confidence bins (top-label confidence, as in Guo et al. 2017)."""
    conf, correct = _confidence_and_correct(proba, labels, task)
    if conf.size == 0:
        return float("nan")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(ece)


def ece_if_calibrated(proba: np.ndarray, task: str = "binary", draws: int = 200, seed: int = 0) -> float:
    """The ECE a perfectly calibrated model with these probabilities would show on this many images (labels
    drawn from the probabilities themselves): the part of a measured ECE that is sampling noise."""
    if task == "multilabel" or not len(proba):
        return float("nan")
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(np.asarray(proba, dtype=np.float64), axis=1)
    values = []
    for _ in range(draws):
        drawn = (rng.random((len(proba), 1)) > cumulative).sum(axis=1).clip(max=proba.shape[1] - 1)
        values.append(expected_calibration_error(proba, drawn, task))
    return float(np.mean(values))


def brier_score(proba: np.ndarray, labels: np.ndarray, task: str = "binary") -> float:
    """Mean squared error of the probabilities: of the positive class for binary tasks, summed
    over classes for multi-class ones, averaged over labels for multi-label ones."""
    if task == "multilabel":
        return float(np.mean((proba - labels) ** 2))
    if task == "binary":
        return float(np.mean((proba[:, 1] - labels) ** 2))
    onehot = np.eye(proba.shape[1])[labels]
    return float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))


def reliability_diagram(
    curves: dict[str, np.ndarray],
    labels: np.ndarray,
    task: str,
    path: str | Path,
    bins: int = 15,
) -> Path:
    """Plot accuracy against confidence per bin for each named probability array (e.g. before
    and after temperature scaling), with each curve's ECE in the legend; writes a PNG."""
    path = Path(path)
    edges = np.linspace(0.0, 1.0, bins + 1)
    with figure(path, (4.5, 4.5)) as (_, ax):
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
        for name, proba in curves.items():
            conf, correct = _confidence_and_correct(proba, labels, task)
            which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
            xs, ys = [], []
            for b in range(bins):
                mask = which == b
                if mask.sum() >= 1:
                    xs.append(conf[mask].mean())
                    ys.append(correct[mask].mean())
            ece = expected_calibration_error(proba, labels, task, bins)
            ax.plot(xs, ys, marker="o", ms=3, label=f"{name} (ECE {ece:.3f})")
        ax.set_xlabel("confidence")
        ax.set_ylabel("observed accuracy")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title("Reliability diagram")
        ax.legend(loc="upper left", fontsize=8)
    return path
