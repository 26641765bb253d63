"""The "needs attention" block: high-risk allergies and high-alert medicines (critical or
worsening results come from :func:`carelens.record.sections.results`, conflicts from notes)."""

from __future__ import annotations

import re

from carelens.record.fields import codings
from carelens.record.model import PatientRecord
from carelens.record.schema import SummaryItem
from carelens.record.sections import is_active_allergy, no_known_allergy
from carelens.record.vocab import ANAPHYLAXIS, HIGH_ALERT

_HIGH_ALERT = re.compile(r"\b(" + "|".join(sorted(map(re.escape, HIGH_ALERT), key=len, reverse=True)) + r")\b", re.I)


def high_alert_class(name: str) -> str | None:
    """The ISMP high-alert class of a medicine name (``anticoagulant``, ``opioid``, ...), or None."""
    match = _HIGH_ALERT.search(name)
    return HIGH_ALERT[match.group(1).lower()] if match else None


def high_alert_medicines(medications: list[SummaryItem]) -> list[SummaryItem]:
    """Active medications that are ISMP high-alert medicines."""
    out = []
    for item in medications:
        kind = high_alert_class(item.text) if item.status == "active" else None
        if kind:
            out.append(
                item.model_copy(
                    update={
                        "text": f"High-alert medicine ({kind}): {item.text}",
                        "flags": [*item.flags, "high-alert", kind],
                    }
                )
            )
    return out


def high_risk_allergies(record: PatientRecord, allergy_items: list[SummaryItem]) -> list[SummaryItem]:
    """Active allergies with high criticality, a severe reaction or anaphylaxis."""
    out = []
    for item in allergy_items:
        res = record.resources.get(item.citations[0].resource) if item.citations else None
        if res is None or not is_active_allergy(res) or no_known_allergy(res):
            continue
        reactions = res.get("reaction") or []
        anaphylaxis = any(
            c.get("code") == ANAPHYLAXIS for r in reactions for m in r.get("manifestation") or [] for c in codings(m)
        )
        severe = any(r.get("severity") == "severe" for r in reactions)
        if res.get("criticality") == "high" or anaphylaxis or severe:
            out.append(
                item.model_copy(update={"text": f"High-risk allergy: {item.text}", "flags": [*item.flags, "high-risk"]})
            )
    return out


def _substance_words(name: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]{4,}", name.lower())} - {"allergy", "allergic", "substance", "product"}


def allergy_medication_conflicts(allergy_items: list[SummaryItem], medications: list[SummaryItem]) -> list[SummaryItem]:
    """An active medication whose name contains the substance of an active allergy."""
    out = []
    for allergy in allergy_items:
        allergen = allergy.text.split(" (")[0]
        for med in medications:
            drug = re.split(r" — |, started ", med.text)[0]
            if med.status != "active" or not _substance_words(allergen) & _substance_words(drug):
                continue
            out.append(
                SummaryItem(
                    text=f"Conflict: allergy {allergen}; active medication {drug}",
                    codes=allergy.codes + med.codes,
                    citations=allergy.citations + med.citations,
                    flags=["conflict"],
                )
            )
    return out
