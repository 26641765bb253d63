"""The model card as a readable HTML page: a CHAI-style applied model card with a small
"nutrition label" (performance with confidence intervals, subgroup table, a plot), the 31 HTI-1
source attributes (missing ones marked), lineage, code version and the validation history."""

from __future__ import annotations

import base64
import io
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from carelens.core.plots import figure
from carelens.models.hti1 import HTI1_ATTRIBUTES


def performance_plot(data: dict[str, Any]) -> str | None:
    """A PNG (base64) of each metric with its CI, training test set and each validating site."""
    rows: list[tuple[str, float, float | None, float | None]] = []
    auc = data.get("metrics", {}).get("auc")
    if auc:
        rows.append(("held-out test", auc["value"], auc.get("ci_low"), auc.get("ci_high")))
    validations = [r["content"] for r in data.get("records", []) if r.get("kind") == "validation"]
    for site in validations[-1].get("sites", []) if validations else []:
        m = site.get("metrics", {}).get("auc")
        if isinstance(m, dict) and isinstance(m.get("value"), int | float):
            rows.append((f"site {site['site']}", m["value"], m.get("ci_low"), m.get("ci_high")))
    if not rows:
        return None
    buf = io.BytesIO()
    with figure(buf, (5, 0.45 * len(rows) + 1)) as (_, ax):
        for i, (_label, value, low, high) in enumerate(rows):
            err = [[value - low], [high - value]] if low is not None and high is not None else None
            ax.errorbar(value, i, xerr=err, fmt="o", color="#1f5f8b", capsize=4)
        ax.set_yticks(range(len(rows)), [r[0] for r in rows])
        ax.set_xlim(0.5, 1.0)
        ax.set_xlabel("AUC (95% CI)")
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
    return base64.b64encode(buf.getvalue()).decode()


def rounded(value: Any) -> Any:
    """Floats to 3 decimals, inside lists and dicts too (a card prints numbers a reader can take in)."""
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def render_html(data: dict[str, Any]) -> str:
    """The HTML model card of an exported entry (``Registry.export``)."""
    env = Environment(loader=PackageLoader("carelens.models", "templates"), autoescape=select_autoescape())
    env.filters["num"] = rounded
    validations = [r for r in data.get("records", []) if r.get("kind") == "validation"]
    return env.get_template("card.html.j2").render(
        m=data,
        attributes=HTI1_ATTRIBUTES,
        plot=performance_plot(data),
        validations=validations,
    )
