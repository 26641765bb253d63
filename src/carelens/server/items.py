"""Every AI output on a patient page becomes a ``ReviewItem`` a clinician can accept, edit
or reject: summary items, image reads, pharmacogenomic calls and genomic findings."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from carelens import __version__
from carelens.core.ids import stable_id

SUMMARY_MODEL = "carelens-record-summary"
MEDICATIONS = "10160-0"  # LOINC code of the IPS medication section
REFER = "uncertain: refer"
Kind = Literal["summary", "image", "pgx", "finding"]


class ReviewItem(BaseModel):
    """One AI statement with its evidence, its model and a stable key for decisions."""

    key: str
    kind: Kind
    section: str
    text: str
    citations: list[dict[str, Any]] = Field(default_factory=list)
    needs_attention: bool = False
    model_id: str
    model_version: str
    model_label: str = ""
    detail: dict[str, Any] = Field(default_factory=dict)


def model_of(obj: dict[str, Any], default: tuple[str, str]) -> tuple[str, str]:
    """(model id, version) from an output's ``provenance`` / ``model_id`` keys, else ``default``."""
    prov = obj.get("provenance") or (obj.get("evidence") or {}).get("provenance") or {}
    raw = obj.get("model")
    model: dict[str, Any] = raw if isinstance(raw, dict) else {"id": raw}
    model_id = prov.get("model_id") or obj.get("model_id") or model.get("id") or default[0]
    version = prov.get("model_version") or obj.get("model_version") or model.get("version") or default[1]
    return str(model_id), str(version)


def summary_model(summary: dict[str, Any]) -> tuple[str, str]:
    """The model that produced a summary (``SUMMARY_MODEL`` at this carelens version if unstated)."""
    return model_of(summary, (SUMMARY_MODEL, __version__))


def _summary_item(item: dict[str, Any], section: str, model: tuple[str, str], attention: bool) -> ReviewItem:
    citations = [c if isinstance(c, dict) else {"resource": str(c)} for c in item.get("citations", [])]
    text = str(item.get("text", ""))
    mid, version = model_of(item, model)
    key = stable_id("summary", text, [(c.get("resource"), c.get("note_span")) for c in citations])
    return ReviewItem(
        key=key,
        kind="summary",
        section=section,
        text=text,
        citations=citations,
        needs_attention=attention,
        model_id=mid,
        model_version=version,
        detail={"codes": item.get("codes", [])},
    )


def summary_items(summary: dict[str, Any]) -> list[ReviewItem]:
    """Summary items, "needs attention" ones flagged (and listed once)."""
    model = summary_model(summary)
    attention = [_summary_item(i, "Needs attention", model, True) for i in summary.get("needs_attention", [])]
    flagged = {i.key for i in attention}
    items: list[ReviewItem] = []
    seen: set[str] = set()
    for section in summary.get("sections", []):
        for raw in section.get("items", []):
            item = _summary_item(raw, str(section.get("title", "")), model, False)
            item.needs_attention = item.key in flagged
            if item.key not in seen:
                seen.add(item.key)
                items.append(item)
    extra = [i for i in attention if i.key not in seen]
    return extra + items


def image_items(predictions: list[dict[str, Any]]) -> list[ReviewItem]:
    """Image reads: finding, probability, conformal set; abstentions say "uncertain: refer"."""
    out = []
    for n, pred in enumerate(predictions):
        mid, version = model_of(pred, ("unknown-imaging-model", "unknown"))
        pset = pred.get("conformal_set") or pred.get("prediction_set") or []
        raw = pred.get("finding") or pred.get("label") or "?"
        raw = ", ".join(raw) or "no finding" if isinstance(raw, list) else str(raw)
        abstain = bool(pred.get("uncertain_refer") or pred.get("abstain")) or REFER in (raw, pred.get("status"))
        finding = REFER if abstain else raw
        prob = pred.get("probability")
        text = finding if prob is None else f"{finding} (p = {float(prob):.2f})"
        image = str(pred.get("source") or pred.get("image") or f"image {n + 1}")
        out.append(
            ReviewItem(
                key=stable_id("image", n, image, finding, prob),
                kind="image",
                section="Imaging",
                text=text,
                citations=[{"resource": str(pred["resource"])}] if pred.get("resource") else [],
                needs_attention=abstain,
                model_id=mid,
                model_version=version,
                model_label=str((pred.get("model") or {}).get("name") or "")
                if isinstance(pred.get("model"), dict)
                else "",
                detail={
                    "index": n,
                    "image": image,
                    "finding": finding,
                    "probability": prob,
                    "prediction_set": pset,
                    "abstain": abstain,
                    "has_heatmap": bool(pred.get("heatmap")),
                    "has_image": bool(pred.get("image_png") or pred.get("png")),
                },
            )
        )
    return out


def pgx_items(report: dict[str, Any] | None) -> list[ReviewItem]:
    """One item per gene of a ``genome pgx`` report."""
    if not report:
        return []
    mid, version = model_of(report, ("carelens-pgx", __version__))
    out = []
    for gene in report.get("genes", []):
        if not gene.get("diplotypes"):
            continue  # no call: listed in the table with its reason, nothing to decide on
        diplos = ", ".join(gene.get("diplotypes") or []) or "no call"
        text = f"{gene.get('gene')}: {diplos} ({gene.get('phenotype') or 'phenotype unknown'})"
        out.append(
            ReviewItem(
                key=stable_id("pgx", text),
                kind="pgx",
                section="Pharmacogenomics",
                text=text,
                model_id=mid,
                model_version=version,
                detail={**gene, "drugs": [d for d in report.get("drugs", []) if _drug_gene(d) == gene.get("gene")]},
            )
        )
    return out


def _drug_gene(drug: Any) -> Any:
    if not isinstance(drug, dict):
        return None
    genes = drug.get("genes")
    return next(iter(genes), None) if isinstance(genes, dict) and len(genes) == 1 else drug.get("gene")


def finding_items(findings: list[dict[str, Any]]) -> list[ReviewItem]:
    """Secondary findings (e.g. a pathogenic variant in an ACMG gene): always need attention."""
    out = []
    for f in findings:
        mid, version = model_of(f, ("carelens-findings", __version__))
        where = f"{f['chrom']}:{f['pos']} {f.get('ref')}>{f.get('alt')}" if f.get("chrom") and f.get("pos") else None
        parts = [f.get("gene"), f.get("variant") or f.get("hgvs") or where, f.get("significance"), f.get("zygosity")]
        text = " ".join(str(p) for p in parts if p) or "genomic finding"
        out.append(
            ReviewItem(
                key=stable_id("finding", text),
                kind="finding",
                section="Genomic findings",
                text=text,
                needs_attention=bool(f.get("reportable", True)),
                model_id=mid,
                model_version=version,
                detail=f,
            )
        )
    return out


def medication_items(summary: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The items of the summary's IPS medication section (active first, then recently stopped)."""
    return [i for s in (summary or {}).get("sections", []) if s.get("code") == MEDICATIONS for i in s.get("items", [])]


def mentions(drug: str, text: str) -> bool:
    """Whether ``text`` names ``drug`` as a whole word (case-insensitive)."""
    return bool(drug) and re.search(rf"\b{re.escape(drug.lower())}\b", text.lower()) is not None


def drug_name(rec: Any) -> str:
    """The drug a PGx recommendation is about ("" when it names none)."""
    return str(rec.get("drug") or rec.get("name") or "") if isinstance(rec, dict) else ""


def split_drugs(drugs: list[Any], summary: dict[str, Any] | None) -> tuple[list[Any], list[Any]]:
    """PGx drug recommendations split into (drugs on the summary's medication list, the rest)."""
    meds = " | ".join(str(i.get("text", "")) for i in medication_items(summary))
    current: list[Any] = []
    other: list[Any] = []
    for d in drugs:
        (current if mentions(drug_name(d), meds) else other).append(d)
    return current, other
