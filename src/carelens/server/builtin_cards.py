"""Model cards of carelens' own rule-based components (record summary, pharmacogenomics,
secondary findings), which are code rather than trained weights and so have no registry entry.

The performance lines quote the measurements kept in ``BENCHMARKS.md`` and
``benchmarks/results/``; the HTI-1 attributes a card does not state stay "missing".
"""

from __future__ import annotations

from typing import Any

from carelens import __version__

DEVELOPER = "The carelens project (open source); contact: the team that runs this carelens installation."
_COMMON = {
    "developer": DEVELOPER,
    "funding_source": "Not stated (open-source project).",
    "intended_users": "Licensed clinicians reviewing a patient in the carelens workspace.",
    "intended_decision_role": "Informs: every output is checked against its source and accepted, edited or "
    "rejected by a clinician before it enters the signed record.",
    "demographic_input_features": "None: sex, race, ethnicity, language and age are not used to produce the output.",
    "update_process": "Updated with carelens releases; the version is the carelens version that produced the output.",
}

_CARDS: dict[str, dict[str, Any]] = {
    "carelens-record-summary": {
        "name": "carelens record summary",
        "arch": "rule-based extraction from FHIR resources and note NLP (negation, family history, uncertainty)",
        "task": "summary",
        "card": {
            **_COMMON,
            "output_value": "An International Patient Summary-style overview (problems, medications, allergies, "
            "results, ...) in which every statement cites the resource or note span it comes from; "
            "a 'needs attention' list of items to check first.",
            "output_type": "analysis (extraction and summary with citations)",
            "intended_use": "Give a clinician meeting a new patient a cited overview of decades of records.",
            "intended_patient_population": "Any patient with a FHIR R4 record.",
            "performance": "Synthetic demo cohort (20 patients): 61/61 planted active problems listed, 0 negated, "
            "family-history or uncertain mentions listed as problems (benchmarks/results/demo.md); "
            "p95 118 ms per patient, newest 10 notes read (benchmarks/results/summary.md).",
            "limitations": "Validated only on synthetic records (Synthea and generated notes). It can miss a problem "
            "worded unusually in free text and does not judge clinical relevance: open the citation before "
            "relying on an item.",
            "out_of_scope_use": "Not a diagnosis and not a substitute for reading the record.",
        },
    },
    "carelens.genomics.pgx": {
        "name": "carelens pharmacogenomics",
        "arch": "star-allele matching against PharmVar / CPIC definitions",
        "task": "genotype calling",
        "card": {
            **_COMMON,
            "output_value": "Diplotypes and phenotypes per pharmacogene, with the CPIC recommendation per drug. "
            "In the workspace, a drug on the active medication list with a CPIC recommendation whose phenotype is "
            "not normal or indeterminate is flagged under 'Needs attention' with the recommendation, its strength "
            "and the genotype; the clinician decides.",
            "output_type": "classification (diplotype and phenotype) and recommendation (CPIC)",
            "intended_use": "Show how a patient's genotype affects drug choice and dosing.",
            "intended_patient_population": "Patients with a germline VCF.",
            "performance": "Synthetic demo cohort: 100/100 planted diplotypes called (benchmarks/results/demo.md); "
            "PharmCAT test VCFs in the genomics tests.",
            "limitations": "Calls only what the VCF covers: positions not in it are listed as not assayed, never "
            "assumed reference. CYP2D6 (copy number, hybrids) and HLA are not called from a VCF. Confirm in an "
            "accredited laboratory before prescribing on it.",
            "out_of_scope_use": "Somatic (tumour) VCFs.",
        },
    },
    "carelens.genomics.findings": {
        "name": "carelens secondary findings",
        "arch": "ClinVar lookup in the ACMG SF v3.2 gene list",
        "task": "variant filtering",
        "card": {
            **_COMMON,
            "output_value": "ClinVar pathogenic / likely pathogenic variants in ACMG secondary-finding genes.",
            "output_type": "classification (reportable secondary finding)",
            "intended_use": "Flag actionable secondary findings for genetic counselling.",
            "intended_patient_population": "Patients with a germline VCF who consented to secondary findings.",
            "performance": "Synthetic demo cohort: 3/3 planted ACMG variants reported, the non-ACMG ClinVar variant "
            "not (benchmarks/results/demo.md).",
            "limitations": "Only variants ClinVar has classified; no interpretation of novel variants. Confirm in an "
            "accredited laboratory and refer to genetic counselling before acting.",
            "out_of_scope_use": "Diagnostic testing of a symptomatic patient.",
        },
    },
}
ALIASES = {"carelens-pgx": "carelens.genomics.pgx", "carelens-findings": "carelens.genomics.findings"}


def builtin_card(ref: str) -> dict[str, Any] | None:
    """The card of a built-in component by id or alias (``@version`` ignored), or None."""
    from carelens.models import hti1_attributes

    base = ref.split("@", 1)[0]
    model_id = ALIASES.get(base, base)
    found = _CARDS.get(model_id)
    if found is None:
        return None
    hti1, missing = hti1_attributes(found["card"], {})
    return {
        "id": model_id,
        "version": __version__,
        "labels": [],
        "metrics": {},
        **found,
        "hti1": hti1,
        "missing": missing,
    }


def builtin_list() -> list[dict[str, Any]]:
    """One ``models list``-shaped line per built-in component."""
    return [
        {"id": mid, "name": c["name"], "version": __version__, "arch": c["arch"], "created_at": "", "metrics": {}}
        for mid, c in _CARDS.items()
    ]
