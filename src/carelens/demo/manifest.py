"""What the demo generator planted, as plain data (written to ``planted.json``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ijson
from pydantic import BaseModel, Field


class PlantedProblem(BaseModel):
    """A Condition in the FHIR: ``status`` is ``active`` or ``resolved``."""

    condition_id: str
    snomed: str
    display: str
    status: str
    onset: str
    abatement: str | None = None


class PlantedMedication(BaseModel):
    """A MedicationRequest: ``status`` is ``active`` or ``stopped``; ``high_alert`` is
    ``anticoagulant``, ``insulin``, ``opioid`` or None."""

    request_id: str
    rxnorm: str
    name: str
    status: str
    sig: str
    authored_on: str
    high_alert: str | None = None


class PlantedAllergy(BaseModel):
    allergy_id: str
    system: str
    code: str
    substance: str
    criticality: str
    reaction: str
    severity: str


class PlantedMention(BaseModel):
    """A statement in a note that must NOT become a problem of the patient.

    kind: ``negated`` ("denies chest pain"), ``family`` ("mother had breast cancer") or
    ``uncertain`` ("rule out PE"). ``start``/``end`` locate ``text`` in the note.
    """

    kind: str
    concept: str
    snomed: str
    note_id: str
    start: int
    end: int
    text: str


class PlantedResult(BaseModel):
    """An Observation with a critical value (interpretation HH or LL)."""

    observation_id: str
    loinc: str
    name: str
    value: float
    unit: str
    date: str
    interpretation: str


class PlantedPgx(BaseModel):
    """The diplotype the VCF encodes for one gene (names as in the PharmCAT definitions)."""

    gene: str
    diplotype: str
    alleles: list[str]
    phenotype: str | None = None
    positions: int


class PlantedVariant(BaseModel):
    """A variant planted in the VCF; ``acmg`` when the gene is on the ACMG SF v3.1 list.

    source ``clinvar-example`` variants are in ``genomics/clinvar/*.vcf`` of the shared data;
    ``builtin`` ones carry their ClinVar variation id.
    """

    gene: str
    chrom: str
    pos: int
    ref: str
    alt: str
    genotype: str
    hgvs: str
    significance: str
    acmg: bool
    source: str
    clinvar_id: str | None = None


class PlantedImage(BaseModel):
    """A DICOM file (path relative to the cohort root) and its ground truth."""

    path: str
    sop_instance_uid: str
    study_instance_uid: str
    accession_number: str
    opacity: bool
    burned_in_text: bool
    study_date: str


class PhiCanary(BaseModel):
    """Identifiers of one patient that must never reach the research zone."""

    name: str
    given: str
    family: str
    mrn: str
    ssn: str
    phone: str
    email: str
    address: str
    city: str
    zip: str
    birth_date: str
    relatives: list[str] = Field(default_factory=list)


class PlantedNote(BaseModel):
    note_id: str
    document_id: str
    loinc: str
    kind: str
    date: str
    all_caps: bool
    phi_spans: int


class PlantedPatient(BaseModel):
    """Every fact later capabilities are checked against, for one patient."""

    patient_id: str
    mrn: str
    sex: str
    age: int
    fhir: str
    vcf: str | None
    problems: list[PlantedProblem]
    medications: list[PlantedMedication]
    allergies: list[PlantedAllergy]
    no_known_allergies: bool
    mentions: list[PlantedMention]
    critical_results: list[PlantedResult]
    egfr_declining: bool
    smoking_status: str
    pgx: list[PlantedPgx]
    pathogenic_variants: list[PlantedVariant]
    images: list[PlantedImage]
    notes: list[PlantedNote]
    phi: PhiCanary


class CohortManifest(BaseModel):
    """The generated cohort: where its files are and what was planted in them.

    ``root`` is not written to ``planted.json`` (the file stays identical wherever it lands).
    """

    seed: int
    reference_date: str
    generator_version: str
    root: Path | None = Field(default=None, exclude=True)
    layout: dict[str, str]
    training_images: str
    clinvar: str = ""
    patients: list[PlantedPatient]

    def patient(self, patient_id: str) -> PlantedPatient:
        for p in self.patients:
            if p.patient_id == patient_id:
                return p
        raise KeyError(patient_id)

    @classmethod
    def load(cls, root: Path) -> CohortManifest:
        """Read ``root/planted.json``."""
        manifest = cls.model_validate_json((Path(root) / "planted.json").read_bytes())
        manifest.root = Path(root)
        return manifest


def planted_patients(root: Path) -> Iterator[PlantedPatient]:
    """The patients of ``root/planted.json`` one at a time, in order, without reading the file whole."""
    with (Path(root) / "planted.json").open("rb") as f:
        for item in ijson.items(f, "patients.item", use_float=True):
            yield PlantedPatient.model_validate(item)


@dataclass
class CohortCounts:
    """How many patients, notes, DICOM files and VCFs a cohort has (``carelens demo``'s generate stage)."""

    patients: int = 0
    notes: int = 0
    dicom: int = 0
    vcf: int = 0

    def add(self, patient: PlantedPatient) -> None:
        self.patients += 1
        self.notes += len(patient.notes)
        self.dicom += len(patient.images)
        self.vcf += patient.vcf is not None
