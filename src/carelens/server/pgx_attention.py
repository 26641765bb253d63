"""Pharmacogenomic results that bear on a drug the patient takes now, flagged for "Needs attention".

The rule (one item per active medication and CPIC drug):

* the drug: a CPIC recommendation in the patient's ``genome pgx`` report names a drug that an
  *active* item of the summary's medication section mentions (whole word, case-insensitive;
  recently stopped medications are left out);
* the genotype: at least one gene of that recommendation is called in the report and its
  phenotype is not normal or indeterminate. The phenotype is the report's own for the gene, else
  the recommendation's CPIC lookup value (HLA: "*57:01 positive"); "Normal ...", "Indeterminate",
  "No Result", an allele "negative" and a bare activity score with no phenotype do not flag.
  Rapid and ultrarapid metabolizers do flag: CPIC changes dosing for several drugs on them.

A DPWG recommendation (for a drug-gene pair CPIC has no guideline for) flags the same way unless
DPWG says it does not change the prescription. The item carries its evidence (every CPIC / DPWG
recommendation for the drug with source, strength and population, the genotype it rests on, the
medication order it concerns). It informs; the clinician decides.
"""

from __future__ import annotations

import re
from typing import Any

from carelens import __version__
from carelens.core.ids import stable_id
from carelens.server.items import ReviewItem, drug_name, medication_items, mentions, model_of

NOT_ACTIONABLE = re.compile(r"normal|indeterminate|no result|unknown|negative|^[\d.]+$", re.IGNORECASE)
CLINICIAN_DECIDES = (
    "Flagged because a CPIC (or DPWG) recommendation applies to a drug on the active medication list and the "
    "phenotype is not normal or indeterminate. The clinician decides whether to act on it."
)


def _genes(rec: dict[str, Any]) -> dict[str, str | None]:
    """Gene -> CPIC lookup value of a recommendation (older reports name a single ``gene``)."""
    genes = rec.get("genes")
    if isinstance(genes, dict):
        return {str(g): str(v) if v is not None else None for g, v in genes.items()}
    return {str(rec["gene"]): None} if rec.get("gene") else {}


def _actionable(rec: dict[str, Any], called: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The called genes of ``rec`` whose phenotype is neither normal nor indeterminate."""
    out = []
    for gene, lookup in _genes(rec).items():
        result = called.get(gene)
        if result is None:
            continue
        # HLA: the gene's phenotype lists every allele's presence; the drug's own allele is its CPIC lookup value
        own = lookup if gene.startswith("HLA-") and rec.get("source", "CPIC") == "CPIC" else None
        phenotype = own or result.get("phenotype") or lookup
        if phenotype and not NOT_ACTIONABLE.search(str(phenotype).strip()):
            out.append(
                {
                    "gene": gene,
                    "diplotypes": list(result.get("diplotypes") or []),
                    "phenotype": str(phenotype),
                    "activity_score": result.get("activity_score"),
                    "source": result.get("source") or "vcf",
                }
            )
    return out


def _recommendation(rec: dict[str, Any]) -> dict[str, Any]:
    return {
        "text": str(rec.get("recommendation") or rec.get("text") or ""),
        "strength": rec.get("strength"),
        "population": rec.get("population"),
        "guideline": rec.get("guideline"),
        "url": rec.get("url"),
        "source": rec.get("source") or "CPIC",  # CPIC or DPWG (both listed where both have a guideline)
        "version": rec.get("version"),
    }


def medication_pgx_items(report: dict[str, Any] | None, summary: dict[str, Any] | None) -> list[ReviewItem]:
    """Needs-attention items for active medications a non-normal pharmacogenomic result affects."""
    if not report or not summary:
        return []
    called = {str(g.get("gene")): g for g in report.get("genes", []) if g.get("diplotypes")}
    meds = [m for m in medication_items(summary) if m.get("status") in (None, "active")]
    by_drug: dict[str, list[dict[str, Any]]] = {}
    for rec in report.get("drugs", []):
        if drug := drug_name(rec):
            by_drug.setdefault(drug, []).append(rec)
    model_id, version = model_of(report, ("carelens-pgx", __version__))
    out: list[ReviewItem] = []
    for drug, recs in by_drug.items():
        # DPWG states whether its advice changes the prescription: "No" does not flag
        flagged = [(rec, genes) for rec in recs if rec.get("rx_change") != "No" and (genes := _actionable(rec, called))]
        if not flagged:
            continue
        first: dict[str, dict[str, Any]] = {}
        for _, genes in flagged:
            for g in genes:
                first.setdefault(g["gene"], g)  # CPIC's reading of a gene first, where both guidelines apply
        genotype = list(first.values())
        for med in (m for m in meds if mentions(drug, str(m.get("text", "")))):
            citations = [c if isinstance(c, dict) else {"resource": str(c)} for c in med.get("citations", [])]
            calls = "; ".join(f"{g['gene']} {', '.join(g['diplotypes'])} ({g['phenotype']})" for g in genotype)
            strengths = ", ".join(dict.fromkeys(str(r.get("strength") or "strength not stated") for r, _ in flagged))
            sources = "/".join(dict.fromkeys(str(r.get("source") or "CPIC") for r, _ in flagged))
            out.append(
                ReviewItem(
                    key=stable_id("pgx-medication", drug, med.get("text"), calls),
                    kind="pgx",
                    section="Pharmacogenomics",
                    text=f"{drug} (taken: {med.get('text')}) with {calls}: {sources} recommendation applies "
                    f"({strengths})",
                    citations=citations,
                    needs_attention=True,
                    model_id=model_id,
                    model_version=version,
                    detail={
                        "medication": {"text": med.get("text"), "citations": citations},
                        "drug": drug,
                        "genotype": genotype,
                        "recommendations": [_recommendation(r) for r, _ in flagged],
                        "rule": CLINICIAN_DECIDES,
                    },
                )
            )
    return out
