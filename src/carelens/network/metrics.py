"""Aggregate performance a site computes on its own data: AUC, calibration (ECE), sensitivity,
specificity, with bootstrap CIs, per subgroup; cells with fewer than 11 patients are suppressed.
The hub pools site estimates by fixed-effect (inverse-variance) meta-analysis."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from carelens.network.sitedata import SiteSplit

MIN_CELL = 11
METRICS = ("auc", "ece", "sensitivity", "specificity", "accuracy")


def _point(proba: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    from carelens.imaging.calibration import expected_calibration_error
    from carelens.imaging.metrics import discrimination

    out = discrimination(proba, labels, "binary", threshold)
    out["ece"] = expected_calibration_error(proba, labels, "binary")
    return {k: float(out[k]) for k in METRICS}


def _patients(split: SiteSplit, index: np.ndarray) -> int:
    if split.patient_ids is None:
        return int(index.size)
    return int(np.unique(split.patient_ids[index]).size)


def site_metrics(
    proba: np.ndarray, split: SiteSplit, threshold: float = 0.5, resamples: int = 200, seed: int = 0
) -> dict[str, Any]:
    """Metrics of one site: ``{"n", "patients", "n_pos", "metrics": {name: {value, ci_low, ci_high}},
    "subgroups": [{group, value, n, auc, sensitivity, specificity, ece} | {group, value, suppressed}]}``."""
    from carelens.imaging.metrics import bootstrap_ci

    labels = split.labels
    everyone = np.arange(len(labels))
    point = _point(proba, labels, threshold)
    cis = bootstrap_ci(lambda idx: _point(proba[idx], labels[idx], threshold), len(labels), resamples, seed)
    metrics = {
        k: {"value": point[k], "ci_low": cis[k][0], "ci_high": cis[k][1]} for k in METRICS if not math.isnan(point[k])
    }
    subgroups: list[dict[str, Any]] = []
    for group, values in split.subgroups.items():
        for value in sorted(set(values.tolist())):
            index = np.flatnonzero(values == value)
            if _patients(split, index) < MIN_CELL:
                subgroups.append({"group": group, "value": value, "suppressed": True})
                continue
            sub = _point(proba[index], labels[index], threshold)
            subgroups.append({"group": group, "value": value, "n": int(index.size), **_finite(sub)})
    return {
        "n": len(labels),
        "patients": _patients(split, everyone),
        "n_pos": int(labels.sum()),
        "metrics": metrics,
        "subgroups": subgroups,
    }


def _finite(values: dict[str, float]) -> dict[str, float | None]:
    return {k: (None if math.isnan(v) else v) for k, v in values.items()}


def flatten(result: dict[str, Any]) -> dict[str, float]:
    """The flat, numeric key/value form that travels (keys the outbound guard allows)."""
    flat: dict[str, float] = {"n": result["n"], "patients": result["patients"], "n_pos": result["n_pos"]}
    for name, m in result["metrics"].items():
        flat[name] = m["value"]
        flat[f"{name}_ci_low"] = m["ci_low"]
        flat[f"{name}_ci_high"] = m["ci_high"]
    for row in result["subgroups"]:
        prefix = f"sg.{row['group']}.{row['value']}"
        if row.get("suppressed"):
            flat[f"{prefix}.suppressed"] = 1
            continue
        flat[f"{prefix}.n"] = row["n"]
        for k in METRICS:
            if row.get(k) is not None:
                flat[f"{prefix}.{k}"] = row[k]
    return {k: float(v) for k, v in flat.items() if v is not None and not math.isnan(float(v))}


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """Back from the travelling form to ``site_metrics``' shape (at the hub)."""
    metrics: dict[str, dict[str, float | None]] = {}
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for key, value in flat.items():
        if key.startswith("sg."):
            _, group, rest = key.split(".", 2)
            sub_value, name = rest.rsplit(".", 1)
            row = groups.setdefault((group, sub_value), {"group": group, "value": sub_value})
            if name == "suppressed":
                row["suppressed"] = True
            else:
                row[name] = int(value) if name == "n" else float(value)
        elif key in METRICS:
            metrics.setdefault(key, {})["value"] = float(value)
        elif key.endswith(("_ci_low", "_ci_high")) and key.rsplit("_ci_", 1)[0] in METRICS:
            name, bound = key.rsplit("_ci_", 1)
            metrics.setdefault(name, {})[f"ci_{bound}"] = float(value)
    return {
        "n": int(flat.get("n", 0)),
        "patients": int(flat.get("patients", 0)),
        "n_pos": int(flat.get("n_pos", 0)),
        "metrics": {k: {"ci_low": None, "ci_high": None, **v} for k, v in metrics.items() if "value" in v},
        "subgroups": sorted(groups.values(), key=lambda r: (r["group"], r["value"])),
    }


def pooled(sites: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    """Fixed-effect inverse-variance pooling of one metric over sites (SE from each 95% CI)."""
    weights, values = [], []
    for s in sites:
        m = s.get("metrics", {}).get(name)
        if not m or m.get("ci_low") is None or m.get("ci_high") is None:
            continue
        se = (m["ci_high"] - m["ci_low"]) / (2 * 1.96)
        if se <= 0:
            se = 1e-3
        weights.append(1 / se**2)
        values.append(m["value"])
    if not weights:
        return None
    w = np.asarray(weights)
    est = float(np.sum(w * np.asarray(values)) / w.sum())
    se = float(1 / math.sqrt(w.sum()))
    low, high = est - 1.96 * se, est + 1.96 * se
    if name != "ece":  # proportions and AUC live in [0, 1]
        low, high = max(low, 0.0), min(high, 1.0)
    return {"value": est, "ci_low": low, "ci_high": high, "n": sum(s["n"] for s in sites)}
