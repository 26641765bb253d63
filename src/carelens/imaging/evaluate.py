"""Evaluating a model package on labelled data: metrics with 95% bootstrap intervals, per-subgroup
metrics, ROC and reliability plots, and JSON / Markdown / HTML reports."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from carelens.imaging.calibration import reliability_diagram
from carelens.imaging.data import ImageArrays, load_dataset
from carelens.imaging.engine import logits_to_proba, predict_logits, test_time_views
from carelens.imaging.metrics import roc_plot
from carelens.imaging.package import ModelPackage
from carelens.imaging.trainer import evaluation_metrics

CONTRACT_KEYS = (
    "auc",
    "accuracy",
    "sensitivity",
    "specificity",
    "ece",
    "ece_uncalibrated",
    "conformal_target",
    "conformal_coverage",
    "outside_rate",
    "n",
)
MIN_SUBGROUP = 10


def evaluate(
    package: ModelPackage,
    data: str | Path | ImageArrays,
    split: str = "test",
    out: Path | None = None,
    resamples: int = 1000,
) -> dict[str, Any]:
    """Metrics of ``package`` on one split of ``data``; with ``out``, also ROC and reliability PNGs there."""
    prep = package.preprocessing
    arrays = (
        data
        if isinstance(data, ImageArrays)
        else load_dataset(
            data,
            split,
            image_size=int(prep["image_size"]),
            channels=int(prep["channels"]),
            known_labels=package.labels,
            resize=True,
        )
    )
    from carelens.core import InputError

    if arrays.images.shape[1:] != (int(prep["channels"]), int(prep["image_size"]), int(prep["image_size"])):
        raise InputError(
            f"images are {'x'.join(map(str, arrays.images.shape[1:]))} but the model reads "
            f"{prep['channels']}x{prep['image_size']}x{prep['image_size']}"
        )
    if arrays.num_classes != len(package.labels) or arrays.task != package.task:
        raise InputError(
            f"data has {arrays.num_classes} classes ({arrays.task}) "
            f"but the model has {len(package.labels)} ({package.task})"
        )
    if arrays.label_names != package.labels and not all(n.startswith("class_") for n in arrays.label_names):
        raise InputError("the data's label names differ from the model's: evaluate on data with the same labels")
    logits = predict_logits(package.model, arrays, views=test_time_views(prep))
    result = evaluation_metrics(
        logits, arrays.labels, package.task, package.temperature, package.threshold, package.conformal, resamples
    )
    result["outside_rate"] = outside_rate(package, arrays.images)
    result = {**{k: result[k] for k in CONTRACT_KEYS}, **{k: v for k, v in result.items() if k not in CONTRACT_KEYS}}
    result["split"] = split
    result["model"] = {"id": package.id, "version": package.version, "name": package.meta.get("name")}
    result["labels"] = package.labels
    result["quarantined"] = [q.model_dump() for q in arrays.quarantined]
    result["subgroups"] = subgroup_metrics(arrays, logits, package)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        proba = logits_to_proba(logits, package.task, package.temperature)
        raw = logits_to_proba(logits, package.task)
        result["plots"] = {
            "roc": str(roc_plot(proba, arrays.labels, package.task, package.labels, out / "roc.png")),
            "reliability": str(
                reliability_diagram(
                    {"uncalibrated": raw, "temperature-scaled": proba},
                    arrays.labels,
                    package.task,
                    out / "reliability.png",
                )
            ),
        }
    return result


def outside_rate(package: ModelPackage, images: np.ndarray) -> float | None:
    """Share of ``images`` outside the model's validated population (``None`` without a shift reference)."""
    reference = package.shift
    if reference is None or not len(images):
        return None
    return float(np.mean(reference.image_scores(package.model, images) > reference.threshold))


def subgroup_metrics(arrays: ImageArrays, logits: np.ndarray, package: ModelPackage) -> dict[str, dict[str, Any]]:
    """Metrics per value of each metadata column (subgroups under ``MIN_SUBGROUP`` images are reported as too small)."""
    out: dict[str, dict[str, Any]] = {}
    for column, values in arrays.meta.items():
        groups: dict[str, Any] = {}
        for value in sorted({str(v) for v in values}):
            mask = np.array([str(v) == value for v in values])
            if mask.sum() < MIN_SUBGROUP:
                groups[value] = {"n": int(mask.sum()), "reason": f"fewer than {MIN_SUBGROUP} images"}
                continue
            m = evaluation_metrics(
                logits[mask],
                arrays.labels[mask],
                package.task,
                package.temperature,
                package.threshold,
                package.conformal,
                resamples=200,
            )
            groups[value] = {k: m[k] for k in CONTRACT_KEYS if k in m} | {"ci": m["ci"]}
        out[column] = groups
    return out


def _fmt(value: Any, ci: Any = None) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    text = f"{value:.3f}" if isinstance(value, float) else str(value)
    if ci and all(isinstance(c, float) and np.isfinite(c) for c in ci):
        text += f" ({ci[0]:.3f}–{ci[1]:.3f})"
    return text


def _rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    ci = result.get("ci", {})
    keys = ["auc", "accuracy", "sensitivity", "specificity", "ece", "ece_uncalibrated", "brier", "brier_uncalibrated"]
    rows = [(k, _fmt(result.get(k), ci.get(k))) for k in keys if k in result]
    if result.get("conformal_target") is not None:
        rows.append(
            ("conformal coverage", f"{_fmt(result['conformal_coverage'])} (target {result['conformal_target']})")
        )
        for label, value in zip(
            result.get("labels", []), result.get("conformal_coverage_per_class") or [], strict=False
        ):
            rows.append((f"conformal coverage, true {label}", _fmt(value)))
        rows.append(("mean set size", _fmt(result.get("mean_set_size"))))
        rows.append(("uncertain: refer rate", _fmt(result.get("refer_rate"))))
    rows.append(("operating threshold", _fmt(result.get("operating_threshold"))))
    rows.append(("n", str(result.get("n"))))
    return rows


def to_markdown(result: dict[str, Any]) -> str:
    """The evaluation as a Markdown report (metrics with 95% CIs, subgroups, plots)."""
    model = result.get("model", {})
    lines = [
        f"# Evaluation of {model.get('name')} {model.get('version')} on the {result.get('split')} split",
        "",
        f"Model id `{model.get('id')}`. Values in brackets are 95% bootstrap intervals.",
        "",
        "| metric | value |",
        "| --- | --- |",
    ]
    lines += [f"| {k} | {v} |" for k, v in _rows(result)]
    for column, groups in result.get("subgroups", {}).items():
        lines += [
            "",
            f"## By {column}",
            "",
            "| group | n | AUC | accuracy | sensitivity | specificity |",
            "| --- |" * 1 + " --- | --- | --- | --- | --- |",
        ]
        for value, m in groups.items():
            if "reason" in m:
                lines.append(f"| {value} | {m['n']} | {m['reason']} | | | |")
            else:
                c = m.get("ci", {})
                cells = [_fmt(m[k], c.get(k)) for k in ("auc", "accuracy", "sensitivity", "specificity")]
                lines.append(f"| {value} | {m['n']} | " + " | ".join(cells) + " |")
    for name, path in result.get("plots", {}).items():
        lines += ["", f"![{name}]({Path(path).name})"]
    return "\n".join(lines) + "\n"


def to_html(result: dict[str, Any]) -> str:
    """The evaluation as a self-contained HTML page (plots referenced next to it)."""
    model = result.get("model", {})
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in _rows(result))
    groups_html = ""
    for column, groups in result.get("subgroups", {}).items():
        body = ""
        for value, m in groups.items():
            if "reason" in m:
                reason = html.escape(m["reason"])
                body += f"<tr><td>{html.escape(value)}</td><td>{m['n']}</td><td colspan=4>{reason}</td></tr>"
            else:
                c = m.get("ci", {})
                cells = "".join(
                    f"<td>{html.escape(_fmt(m[k], c.get(k)))}</td>"
                    for k in ("auc", "accuracy", "sensitivity", "specificity")
                )
                body += f"<tr><td>{html.escape(value)}</td><td>{m['n']}</td>{cells}</tr>"
        groups_html += (
            f"<h2>By {html.escape(column)}</h2><table><tr><th>group</th><th>n</th><th>AUC</th><th>accuracy</th>"
            f"<th>sensitivity</th><th>specificity</th></tr>{body}</table>"
        )
    plots = "".join(
        f'<figure><img src="{html.escape(Path(p).name)}" alt="{html.escape(n)}">'
        f"<figcaption>{html.escape(n)}</figcaption></figure>"
        for n, p in result.get("plots", {}).items()
    )
    title = f"Evaluation of {model.get('name')} {model.get('version')} ({result.get('split')} split)"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}figure{display:inline-block}</style></head>"
        f"<body><h1>{html.escape(title)}</h1><p>Model id <code>{html.escape(str(model.get('id')))}</code>. "
        f"Brackets: 95% bootstrap intervals.</p><table>{rows}</table>{groups_html}{plots}</body></html>\n"
    )
