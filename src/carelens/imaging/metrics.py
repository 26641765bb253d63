"""Discrimination metrics at an operating threshold, with 95% bootstrap intervals, and ROC plots."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score, roc_curve

from carelens.core.plots import figure


def choose_threshold(proba: np.ndarray, labels: np.ndarray, rule: str = "youden") -> float:
    """The operating threshold on the positive-class probability of a binary task, chosen on
    validation data: ``youden`` (max sensitivity + specificity - 1, independent of prevalence)
    or ``accuracy`` (max accuracy at the validation prevalence)."""
    p = proba[:, 1]
    if len(np.unique(labels)) < 2:
        return 0.5
    if rule == "youden":
        fpr, tpr, thresholds = roc_curve(labels, p)
        best = int(np.argmax(tpr - fpr))
        return float(min(1.0, thresholds[best]))
    candidates = np.unique(p)
    accs = [np.mean((p >= t) == labels) for t in candidates]
    return float(candidates[int(np.argmax(accs))])


def predicted_classes(proba: np.ndarray, task: str, threshold: float = 0.5) -> np.ndarray:
    """Class decisions: positive when p >= threshold (binary), argmax (multi-class), per label p >= 0.5."""
    if task == "binary":
        return (proba[:, 1] >= threshold).astype(np.int64)
    if task == "multilabel":
        return (proba >= 0.5).astype(np.int64)
    return proba.argmax(axis=1)


def binary_auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties averaged; NaN when one class is absent."""
    pos = truth.astype(bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auc(proba: np.ndarray, labels: np.ndarray, task: str) -> float:
    """ROC AUC (binary), one-vs-rest macro AUC (multi-class), macro AUC over labels (multi-label)."""
    try:
        if task == "binary":
            return binary_auc(proba[:, 1], labels)
        if task == "multilabel":
            keep = [k for k in range(labels.shape[1]) if 0 < labels[:, k].sum() < len(labels)]
            return float(np.mean([roc_auc_score(labels[:, k], proba[:, k]) for k in keep])) if keep else float("nan")
        present = np.unique(labels)
        if len(present) < 2:
            return float("nan")
        scores = [roc_auc_score(labels == k, proba[:, k]) for k in present]
        return float(np.mean(scores))
    except ValueError:
        return float("nan")


def _rates(pred: np.ndarray, labels: np.ndarray, task: str) -> dict[str, float]:
    if task == "multilabel":
        tp = float(((pred == 1) & (labels == 1)).sum())
        tn = float(((pred == 0) & (labels == 0)).sum())
        pos, neg = float((labels == 1).sum()), float((labels == 0).sum())
        acc = float((pred == labels).mean())
        return {"accuracy": acc, "sensitivity": tp / pos if pos else np.nan, "specificity": tn / neg if neg else np.nan}
    acc = float(np.mean(pred == labels))
    if task == "binary":
        pos, neg = labels == 1, labels == 0
        sens = float(np.mean(pred[pos] == 1)) if pos.any() else float("nan")
        spec = float(np.mean(pred[neg] == 0)) if neg.any() else float("nan")
        return {"accuracy": acc, "sensitivity": sens, "specificity": spec}
    sens_k, spec_k = [], []
    for k in np.unique(labels):
        pos = labels == k
        sens_k.append(np.mean(pred[pos] == k))
        if (~pos).any():
            spec_k.append(np.mean(pred[~pos] != k))
    return {"accuracy": acc, "sensitivity": float(np.mean(sens_k)), "specificity": float(np.mean(spec_k))}


def discrimination(proba: np.ndarray, labels: np.ndarray, task: str, threshold: float = 0.5) -> dict[str, float]:
    """AUC, accuracy, sensitivity and specificity (macro-averaged over classes or labels where several)."""
    pred = predicted_classes(proba, task, threshold)
    return {"auc": auc(proba, labels, task), **_rates(pred, labels, task)}


def bootstrap_ci(
    statistic: Callable[[np.ndarray], dict[str, float]],
    n: int,
    resamples: int = 1000,
    seed: int = 0,
) -> dict[str, list[float]]:
    """95% percentile intervals of each value ``statistic(index)`` returns, over bootstrap resamples."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        for key, value in statistic(idx).items():
            draws.setdefault(key, []).append(value)
    out = {}
    for key, values in draws.items():
        arr = np.asarray(values, dtype=np.float64)
        arr = arr[~np.isnan(arr)]
        out[key] = [float(np.percentile(arr, 2.5)), float(np.percentile(arr, 97.5))] if arr.size else [np.nan, np.nan]
    return out


def roc_plot(proba: np.ndarray, labels: np.ndarray, task: str, label_names: list[str], path: str | Path) -> Path:
    """ROC curve(s) with AUC in the legend (the positive class for binary tasks, each class otherwise); PNG."""
    path = Path(path)
    if task == "binary":
        curves = [(label_names[1], labels == 1, proba[:, 1])]
    elif task == "multilabel":
        curves = [(name, labels[:, k] == 1, proba[:, k]) for k, name in enumerate(label_names)]
    else:
        curves = [(name, labels == k, proba[:, k]) for k, name in enumerate(label_names)]
    with figure(path, (4.5, 4.5)) as (_, ax):
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
        for name, truth, score in curves:
            if 0 < truth.sum() < len(truth):
                fpr, tpr, _ = roc_curve(truth, score)
                ax.plot(fpr, tpr, lw=1.5, label=f"{name} (AUC {roc_auc_score(truth, score):.3f})")
        ax.set_xlabel("1 - specificity")
        ax.set_ylabel("sensitivity")
        ax.set_title("ROC")
        ax.legend(loc="lower right", fontsize=8)
    return path
