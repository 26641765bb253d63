"""The researcher's cohort view, built from the research lake only (``<store>/research/lake``,
de-identified data that passed the leak audit), never from the identified bundles.

Every count, totals included, below the small-cell threshold (``CARELENS_SMALL_CELL``, default
11) is shown as ``"<11"``; complementary suppression then hides the next smallest cell of any
breakdown that sums to the total when exactly one of its cells is hidden, so no hidden cell can be
derived by subtraction. Queries run in the research SQL sandbox (:mod:`carelens.store.sandbox`).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from carelens import __version__
from carelens.core.settings import load_settings


def small_cell() -> int:
    """The threshold below which a count is hidden (``CARELENS_SMALL_CELL``, at least 2)."""
    return load_settings().small_cell


def suppress(counts: dict[str, int], k: int, total: int | None = None) -> dict[str, int | str]:
    """``counts`` with cells under ``k`` hidden; when the cells sum to a shown ``total`` and one
    alone is hidden, the next smallest is hidden too (complementary suppression)."""
    hidden = {key for key, n in counts.items() if n < k}
    partition = total is not None and sum(counts.values()) == total and total >= k
    if partition and len(hidden) == 1 and len(counts) > 1:
        rest = sorted((n, key) for key, n in counts.items() if key not in hidden)
        hidden.add(rest[0][1])
    return {key: (f"<{k}" if key in hidden else n) for key, n in sorted(counts.items())}


def _age_band(year: Any, today: date) -> str:
    if not isinstance(year, str) or not year[:4].isdecimal():
        return "unknown"
    age = today.year - int(year[:4])
    if age >= 90:
        return "90+"
    low = age // 10 * 10
    return f"{low}-{low + 9}"


def cohort(store: Path, k: int | None = None) -> dict[str, Any]:
    """De-identified counts from the research lake: patients, sex, age band, commonest conditions."""
    from carelens.core.config import research_store
    from carelens.store.lake import Lake

    k = k or small_cell()
    lake = Lake(research_store(store))
    sexes: dict[str, int] = {}
    ages: dict[str, int] = {}
    conditions: dict[str, int] = {}
    total = 0
    if not lake.is_empty():
        from carelens.store.sandbox import sandboxed_query

        today = date.today()
        people = sandboxed_query(lake, "SELECT json->>'$.gender' AS sex, json->>'$.birthDate' AS born FROM Patient")
        for row in people.to_pylist():
            total += 1
            sexes[row["sex"] or "unknown"] = sexes.get(row["sex"] or "unknown", 0) + 1
            band = _age_band(row["born"], today)
            ages[band] = ages.get(band, 0) + 1
        rows = sandboxed_query(
            lake,
            "SELECT coalesce(json->>'$.code.text', '(uncoded)') AS label, count(DISTINCT patient_id) AS n"
            " FROM Condition GROUP BY 1 ORDER BY n DESC, label LIMIT 15",
        )
        conditions = {str(r["label"]): int(r["n"]) for r in rows.to_pylist()}
    shown_total: int | str = total if total >= k else f"<{k}"
    small = total < k
    return {
        "patients": shown_total,
        "sex": {key: f"<{k}" for key in sexes} if small else suppress(sexes, k, total),
        "age_band": {key: f"<{k}" for key in ages} if small else suppress(ages, k, total),
        "conditions": suppress(conditions, k),
        "small_cell_threshold": k,
        "source": "research lake",
        "carelens_version": __version__,
    }
