"""The PGx report as a FHIR R4 bundle following HL7 Genomics Reporting (STU3): a genomics DiagnosticReport, per
called gene a diplotype (genotype profile) Observation and a phenotype (therapeutic implication) Observation, and a
medication implication Observation per CPIC recommendation; validated with fhir.resources."""

from __future__ import annotations

from typing import Any

from carelens.core.errors import InputError
from carelens.core.ids import stable_id
from carelens.genomics.pgx import DrugRecommendation, GeneResult, PgxReport

GR = "http://hl7.org/fhir/uv/genomics-reporting/StructureDefinition/"
TBD = "http://hl7.org/fhir/uv/genomics-reporting/CodeSystem/tbd-codes-cs"
LOINC = "http://loinc.org"
CATEGORY = [
    {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]},
    {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "GE", "display": "Genetics"}]},
]


def _loinc(code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": LOINC, "code": code, "display": display}]}


def _gene_studied(gene: str) -> dict[str, Any]:
    return {
        "code": _loinc("48018-6", "Gene studied [ID]"),
        "valueCodeableConcept": {"coding": [{"system": "http://www.genenames.org", "display": gene}], "text": gene},
    }


def _observation(uid: str, profile: str, code: dict[str, Any], subject: str, **fields: Any) -> dict[str, Any]:
    return {
        "fullUrl": f"urn:uuid:{uid}",
        "resource": {
            "resourceType": "Observation",
            "id": uid,
            "meta": {"profile": [GR + profile]},
            "status": "final",
            "category": CATEGORY,
            "code": code,
            "subject": {"reference": subject},
            **fields,
        },
    }


def _uuid(*parts: object) -> str:
    h = stable_id(*parts, length=32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _gene_entries(report: PgxReport, g: GeneResult, subject: str) -> list[dict[str, Any]]:
    base = report.provenance.input_hash if report.provenance else report.sample
    dip_id = _uuid(base, g.gene, "diplotype")
    entries = [
        _observation(
            dip_id,
            "genotype",
            _loinc("84413-4", "Genotype display name"),
            subject,
            valueCodeableConcept={"text": " or ".join(f"{g.gene} {d}" for d in g.diplotypes)},
            component=[_gene_studied(g.gene)],
            method={"text": "CPIC allele definitions matched as PharmCAT does" if g.source == "vcf" else g.source},
            **({"note": [{"text": w} for w in g.warnings[:20]]} if g.warnings else {}),
        )
    ]
    if g.phenotype:
        components = [_gene_studied(g.gene)]
        if g.activity_score:
            components.append({"code": {"text": "activity score"}, "valueString": g.activity_score})
        entries.append(
            _observation(
                _uuid(base, g.gene, "phenotype"),
                "therapeutic-implication",
                _loinc("53040-2", "Genetic variation's effect on drug metabolism"),
                subject,
                valueCodeableConcept={"text": g.phenotype},
                derivedFrom=[{"reference": f"urn:uuid:{dip_id}"}],
                component=components,
            )
        )
    return entries


def _drug_entry(report: PgxReport, rec: DrugRecommendation, subject: str, derived: list[str]) -> dict[str, Any]:
    base = report.provenance.input_hash if report.provenance else report.sample
    components: list[dict[str, Any]] = [
        {"code": _loinc("51963-7", "Medication assessed [ID]"), "valueCodeableConcept": {"text": rec.drug}},
        *({"code": {"text": f"{gene} lookup"}, "valueString": key} for gene, key in rec.genes.items()),
    ]
    if rec.strength:
        components.append(
            {"code": _loinc("93044-6", "Level of evidence"), "valueCodeableConcept": {"text": rec.strength}}
        )
    return _observation(
        _uuid(base, rec.drug, rec.population, rec.recommendation, rec.source, rec.guideline_id or ""),
        "therapeutic-implication",
        {"coding": [{"system": TBD, "code": "therapeutic-implication", "display": "Therapeutic implication"}]},
        subject,
        valueString=rec.recommendation,
        component=components,
        derivedFrom=[{"reference": r} for r in derived],
        note=[
            {
                "text": f"{rec.source}: {rec.guideline} ({rec.url or rec.source})"
                + (f"; version {rec.version}" if rec.version else "")
                + (f"; PharmGKB {rec.guideline_id}" if rec.guideline_id else "")
                + (f", group {rec.group_id}" if rec.group_id else "")
                + (f"; population: {rec.population}" if rec.population else "")
            }
        ],
    )


def pgx_fhir(report: PgxReport, patient: str | None = None) -> dict[str, Any]:
    """A FHIR R4 ``collection`` Bundle of the report (validated); ``patient`` is the Patient id to refer to."""
    subject = f"Patient/{patient or stable_id(report.sample)}"
    entries: list[dict[str, Any]] = []
    phenotype_refs: dict[str, str] = {}
    for g in report.genes:
        if not g.diplotypes:
            continue
        made = _gene_entries(report, g, subject)
        entries.extend(made)
        phenotype_refs[g.gene] = made[-1]["fullUrl"]
    for rec in report.drugs:
        derived = [phenotype_refs[gene] for gene in rec.genes if gene in phenotype_refs]
        entries.append(_drug_entry(report, rec, subject, derived))
    base = report.provenance.input_hash if report.provenance else report.sample
    report_id = _uuid(base, "report")
    diagnostic = {
        "fullUrl": f"urn:uuid:{report_id}",
        "resource": {
            "resourceType": "DiagnosticReport",
            "id": report_id,
            "meta": {"profile": [GR + "genomics-report"]},
            "status": "final",
            "category": [CATEGORY[1]],
            "code": _loinc("51969-4", "Genetic analysis report"),
            "subject": {"reference": subject},
            "result": [{"reference": e["fullUrl"]} for e in entries],
            "conclusion": "; ".join(
                f"{g.gene} {' or '.join(g.diplotypes)}: {g.phenotype or 'no phenotype'}"
                for g in report.genes
                if g.diplotypes
            ),
        },
    }
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [diagnostic, *entries]}
    validate_bundle(bundle)
    return bundle


def validate_bundle(bundle: dict[str, Any]) -> None:
    """Parse with fhir.resources (R4B models); raise InputError when the bundle is not valid FHIR."""
    from fhir.resources.R4B.bundle import Bundle

    try:
        Bundle.model_validate(bundle)
    except Exception as err:
        first = " ".join(str(err).split())[:160]
        raise InputError(f"generated FHIR bundle is invalid ({type(err).__name__}: {first})") from None
