"""Validity and fairness monitoring of a model in use, from the workspace's clinician feedback.

Every AI output in the workspace is accepted, edited or rejected by a clinician (CDS Hooks cards:
accepted or overridden). Per model and site, the share of outputs overridden (edited or rejected)
is the monitored validity signal, with its Wilson 95% interval, and the same share per patient
subgroup (sex, age group) the fairness signal; subgroups with fewer than ``MIN_CELL`` patients are
suppressed. These fill the HTI-1 attributes ``validity_monitoring`` and ``fairness_monitoring``.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

MIN_CELL = 11
ACCEPTED = ("accept", "accepted")
OVERRIDDEN = ("edit", "reject", "overridden")
AGE_GROUPS = ((18, "0-17"), (40, "18-39"), (65, "40-64"), (200, "65+"))


def age_group(birth_date: str | None, today: date | None = None) -> str:
    """The age group of a birth date (``YYYY[-MM-DD]``), ``unknown`` without one."""
    if not birth_date or not birth_date[:4].isdecimal():
        return "unknown"
    today = today or date.today()
    born = birth_date[:10]
    years = today.year - int(born[:4]) - (1 if len(born) == 10 and today.strftime("%m-%d") < born[5:] else 0)
    return next(label for limit, label in AGE_GROUPS if years < limit)


def wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson 95% interval of a proportion ``k / n``."""
    if n == 0:
        return (0.0, 1.0)
    z, p = 1.959964, k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def _rates(rows: list[dict[str, Any]]) -> dict[str, Any]:
    overridden = sum(1 for r in rows if r["action"] in OVERRIDDEN)
    low, high = wilson(overridden, len(rows))
    return {
        "decisions": len(rows),
        "patients": len({r.get("patient") for r in rows}),
        "accepted": sum(1 for r in rows if r["action"] in ACCEPTED),
        "overridden": overridden,
        "override_rate": round(overridden / len(rows), 4) if rows else None,
        "override_ci": [round(low, 4), round(high, 4)],
    }


def summarise_feedback(decisions: list[dict[str, Any]], site: str | None) -> dict[str, Any]:
    """One site's monitoring summary of one model from its decisions (``{"action", "patient", "sex",
    "age_group", "at"}`` each): override rate overall and per subgroup (small cells suppressed)."""
    rows = [d for d in decisions if d.get("action") in ACCEPTED + OVERRIDDEN]
    stamps = sorted(str(d["at"]) for d in rows if d.get("at"))
    subgroups: list[dict[str, Any]] = []
    for column in ("sex", "age_group"):
        for value in sorted({str(r.get(column) or "unknown") for r in rows}):
            cell = [r for r in rows if str(r.get(column) or "unknown") == value]
            patients = len({r.get("patient") for r in cell})
            if patients < MIN_CELL:
                subgroups.append({"group": column, "value": value, "suppressed": True})
            else:
                subgroups.append({"group": column, "value": value, **_rates(cell)})
    return {"site": site or "unnamed site", **_rates(rows), "first": stamps[0] if stamps else None,
            "last": stamps[-1] if stamps else None, "subgroups": subgroups}  # fmt: skip


def _validity_text(s: dict[str, Any]) -> str:
    if not s["decisions"]:
        return f"{s['site']}: no clinician decisions on this model's outputs yet"
    low, high = s["override_ci"]
    return (
        f"{s['site']}: {s['overridden']} of {s['decisions']} outputs overridden ({s['override_rate']:.1%}, 95% CI "
        f"{low:.1%}-{high:.1%}; {s['patients']} patients; {s['first']} to {s['last']})"
    )


def _fairness_text(s: dict[str, Any]) -> str:
    cells = []
    for row in s["subgroups"]:
        name = f"{row['group']}={row['value']}"
        if row.get("suppressed"):
            cells.append(f"{name}: suppressed (fewer than {MIN_CELL} patients)")
        else:
            cells.append(f"{name}: {row['override_rate']:.1%} overridden (n={row['decisions']})")
    return f"{s['site']}: " + ("; ".join(cells) if cells else "no clinician decisions yet")


def monitoring_attributes(summaries: list[dict[str, Any]]) -> dict[str, str]:
    """``validity_monitoring`` and ``fairness_monitoring`` from per-site summaries (none: nothing)."""
    if not summaries:
        return {}
    return {
        "validity_monitoring": "Measured from clinician feedback (override: edited or rejected): "
        + "; ".join(_validity_text(s) for s in summaries)
        + ".",
        "fairness_monitoring": "Measured override rate per patient subgroup, small cells suppressed: "
        + " | ".join(_fairness_text(s) for s in summaries)
        + ".",
    }


def newest_per_site(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest monitoring summary of each site among a model's registry records."""
    found: dict[str, dict[str, Any]] = {}
    for record in records:
        if record.get("kind") == "monitoring":
            for summary in record.get("content", {}).get("sites", []):
                found[str(summary.get("site"))] = summary
    return [found[k] for k in sorted(found)]
