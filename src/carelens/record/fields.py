"""Small readers of FHIR fields: codes, display names, dates, statuses, quantities."""

from __future__ import annotations

import re
from typing import Any

_SEMANTIC_TAG = re.compile(
    r"\s*\((disorder|finding|procedure|situation|substance|product|morphologic abnormality|"
    r"observable entity|regime/therapy|qualifier value|physical object|event)\)\s*$",
    re.I,
)


def codings(concept: Any) -> list[dict[str, Any]]:
    """The codings of a CodeableConcept (empty for anything else)."""
    if not isinstance(concept, dict):
        return []
    return [c for c in concept.get("coding") or [] if isinstance(c, dict)]


def codes(concept: Any) -> list[str]:
    """``system|code`` strings of a CodeableConcept."""
    return [f"{c.get('system', '')}|{c['code']}" for c in codings(concept) if c.get("code")]


def display(concept: Any, default: str = "unnamed") -> str:
    """A readable name: ``text``, else the first coding's display, without SNOMED semantic tags."""
    if not isinstance(concept, dict):
        return default
    name = concept.get("text") or next((c.get("display") for c in codings(concept) if c.get("display")), None)
    if not name:
        name = next((c.get("code") for c in codings(concept) if c.get("code")), None)
    return _SEMANTIC_TAG.sub("", str(name)).strip() if name else default


def has_code(concept: Any, system_suffix: str, code: str) -> bool:
    """True when a coding of ``concept`` has ``code`` in a system ending with ``system_suffix``."""
    return any(c.get("code") == code and str(c.get("system", "")).endswith(system_suffix) for c in codings(concept))


def status_code(concept: Any) -> str | None:
    """The code of a status CodeableConcept (clinicalStatus, verificationStatus)."""
    if isinstance(concept, str):
        return concept
    return next((str(c["code"]) for c in codings(concept) if c.get("code")), None)


def day(value: Any) -> str | None:
    """``YYYY-MM-DD`` (or shorter partial date) of a FHIR date/dateTime string."""
    return value[:10] if isinstance(value, str) and len(value) >= 4 else None


def first_day(resource: dict[str, Any], *names: str) -> str | None:
    """The first date found among ``names`` (``xPeriod`` fields give their start)."""
    for name in names:
        value = resource.get(name)
        if isinstance(value, dict):
            value = value.get("start") or value.get("end")
        if day(value):
            return day(value)
    return None


def fmt_number(value: float) -> str:
    """A number as written in a summary: at most 2 decimals, no trailing zeros."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text if text != "-0" else "0"


def quantity(q: Any) -> str | None:
    """``value unit`` of a Quantity."""
    if not isinstance(q, dict) or not isinstance(q.get("value"), int | float):
        return None
    unit = q.get("unit") or q.get("code") or ""
    return f"{fmt_number(float(q['value']))} {unit}".strip()


def categories(resource: dict[str, Any]) -> set[str]:
    """Category codes of a resource (Observation, Condition, ...)."""
    cats = resource.get("category")
    concepts = cats if isinstance(cats, list) else [cats]
    return {str(c.get("code")) for concept in concepts for c in codings(concept)} | {
        str(c) for c in concepts if isinstance(c, str)
    }
