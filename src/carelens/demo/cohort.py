"""The demo cohort generator: ``generate_cohort(out, patients=20, seed=0)``.

Deterministic per seed: the same seed writes byte-identical files (every random draw comes
from ``random.Random``/``numpy`` generators and a Faker seeded per patient; dates are anchored
to ``REFERENCE_DATE`` = 2025-06-30, never to the clock). Different seeds give different cohorts.

Layout under ``out``::

    fhir/<patient-id>.json          FHIR R4 transaction bundle per patient (urn:uuid fullUrls, POST
                                    requests): Patient, Encounter, Condition, MedicationRequest,
                                    AllergyIntolerance, Observation, Procedure, Immunization,
                                    ImagingStudy, DocumentReference (base64 text/plain notes)
    notes/<document-id>.txt         each note's text (identical to its DocumentReference attachment)
    notes/<document-id>.phi.json    gold PHI spans [{"start", "end", "type", "text"}], offsets into
                                    the .txt; types NAME DATE PHONE FAX EMAIL URL IP SSN MRN ACCOUNT
                                    HEALTHPLAN LICENSE DEVICE VEHICLE ADDRESS CITY STATE ZIP HOSPITAL
                                    ORGANIZATION AGE (only ages over 89) ID
    dicom/<patient-id>/image-N.dcm  chest radiographs, DX MONOCHROME2 uint16 256x256, identifying
                                    headers (PatientName, PatientID = MRN, birth date, accession,
                                    institution, referring physician, address, phone, SSN in
                                    OtherPatientIDs, name in StudyDescription, private tags
                                    (0011,xx "CARELENS DEMO") with name, MRN and a phone); some with
                                    name/MRN/date burned into the pixels (BurnedInAnnotation YES)
    imaging/demo-cxr.npz            MedMNIST-style training set: {train,val,test}_images uint8
                                    Nx64x64 and *_labels Nx1 (1 = opacity), 2400/400/600
    genomics/<patient-id>.vcf.gz    BGZF GRCh38 VCF, sample name = the MRN (needs the shared data
                                    for the PharmCAT definitions; skipped without it)
    genomics/clinvar-demo.vcf       a ClinVar-layout extract (CLNSIG, GENEINFO, ...) with the planted
                                    pathogenic variants, for ``carelens genome findings --clinvar``
    planted.json                    the CohortManifest below

Planted facts (``planted.json``, one ``PlantedPatient`` each), for checking later capabilities:

- problems: active chronic Conditions (SNOMED; clinicalStatus active) and resolved acute ones
  (with abatement); each active one is an active Condition in the bundle and vice versa.
- medications: active and stopped MedicationRequests (RxNorm ingredient codes, dosage text and
  doseAndRate); high-alert ones flagged (``anticoagulant`` warfarin/apixaban, ``insulin``,
  ``opioid``); a patient with an allergy is never prescribed the drug it forbids.
- allergies, or ``no_known_allergies``; patient 0 always has penicillin anaphylaxis (criticality high).
- mentions: negated findings ("denies chest pain"), family history ("mother had breast cancer")
  and uncertain diagnoses ("rule out PE"), with their offsets in the note; none of them is a
  Condition of the patient, so none may become a problem.
- critical_results: Observations with interpretation HH/LL (potassium 6.5 mmol/L); eGFR
  declines over the years for patients with CKD (``egfr_declining``); smoking status.
- pgx: the diplotype per gene (CYP2C19, CYP2C9, VKORC1, SLCO1B1, DPYD) as PharmCAT names it; all
  defining positions of those genes are genotyped (0|0 included), alleles from the definitions.
- pathogenic_variants: BRCA1 c.68_69del or MUTYH c.1187G>A (homozygous; ACMG SF genes), and a
  pathogenic ISG15 variant from the shared ClinVar example file (not an ACMG gene: must not be
  reported as a secondary finding).
- images: per DICOM file, the opacity label and whether text is burned in.
- phi: the canaries (name, MRN, SSN, phones, email, address, birth date, relatives) that must
  never reach the research zone.

The first three patients have fixed archetypes (see ``story.ARCHETYPES``): 0 on warfarin with
declining eGFR, a critical potassium and CYP2C9 \\*1/\\*3 + VKORC1 variant; 1 aged over 89 on
clopidogrel and insulin, CYP2C19 \\*2/\\*2, SLCO1B1 \\*5/\\*15, no allergies; 2 with colon cancer on
capecitabine and oxycodone, DPYD c.1905+1G>A carrier. The rest are drawn at random.
"""

from __future__ import annotations

import io
import json
import random
import sys
import zipfile
from pathlib import Path

import numpy as np
import orjson
from faker import Faker

from carelens.core.config import shared_data_dir
from carelens.core.progress import progress
from carelens.demo.catalog import NOTE_TYPES
from carelens.demo.cxr import training_set
from carelens.demo.dicom import uid_from, write_image
from carelens.demo.fhir import ImagePlan, NoteDoc, build_bundle
from carelens.demo.manifest import (
    CohortCounts,
    CohortManifest,
    PhiCanary,
    PlantedImage,
    PlantedMention,
    PlantedNote,
    PlantedPatient,
    PlantedPgx,
    PlantedVariant,
)
from carelens.demo.notes import write_notes
from carelens.demo.story import REFERENCE_DATE, Story, make_story, new_id
from carelens.demo.vcf import bgzf, planted_variant, render_clinvar, render_vcf

GENERATOR_VERSION = "1"
LAYOUT = {
    "fhir": "fhir/<patient-id>.json",
    "notes": "notes/<document-id>.txt",
    "phi": "notes/<document-id>.phi.json",
    "dicom": "dicom/<patient-id>/image-<n>.dcm",
    "genomics": "genomics/<patient-id>.vcf.gz",
    "training_images": "imaging/demo-cxr.npz",
    "clinvar": "genomics/clinvar-demo.vcf",
}


def _image_plans(story: Story, rng: random.Random) -> list[ImagePlan]:
    encs = [(e, e.reason == "pneumonia") for e in story.encounters if e.reason in ("pneumonia", "bronchitis")]
    last = [e for e in story.encounters if e.kind == "ambulatory"][-1]
    encs.append((last, story.opacity))
    plans = []
    for n, (enc, opacity) in enumerate(encs):
        burned = (story.index == 0 and n == len(encs) - 1) or rng.random() < 0.35
        plans.append(
            ImagePlan(
                encounter=enc,
                opacity=opacity,
                burned_in=burned,
                study_uid=uid_from(new_id(rng)),
                series_uid=uid_from(new_id(rng)),
                sop_uid=uid_from(new_id(rng)),
                accession=f"A{rng.randint(10_000_000, 99_999_999)}",
                imaging_study_id=new_id(rng),
            )
        )
    return plans


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` without the clock in the zip headers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue(), compresslevel=1)


def _write(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)


def _patient(index: int, seed: int, fake: Faker, out: Path, genomics: Path | None) -> PlantedPatient:
    story = make_story(index, seed, fake)
    rng = random.Random(f"carelens-demo-render:{seed}:{index}")
    nrng = np.random.default_rng([seed, index, 11])
    images = _image_plans(story, rng)
    notes = write_notes(story, rng)
    docs = [NoteDoc(new_id(rng), n.kind, n.encounter, n.text) for n in notes]
    result = build_bundle(story, docs, images, rng)
    _write(out / "fhir" / f"{story.id}.json", orjson.dumps(result.bundle, option=orjson.OPT_INDENT_2) + b"\n")

    planted_notes, mentions = [], []
    for note, doc in zip(notes, docs, strict=True):
        _write(out / "notes" / f"{doc.document_id}.txt", note.text)
        _write(
            out / "notes" / f"{doc.document_id}.phi.json", json.dumps(note.spans, indent=1, ensure_ascii=False) + "\n"
        )
        planted_notes.append(
            PlantedNote(
                note_id=doc.document_id,
                document_id=doc.document_id,
                loinc=NOTE_TYPES[note.kind][0],
                kind=note.kind,
                date=note.encounter.start.isoformat(),
                all_caps=note.all_caps,
                phi_spans=len(note.spans),
            )
        )
        mentions += [
            PlantedMention(
                kind=m.kind,
                concept=m.concept,
                snomed=m.snomed,
                note_id=doc.document_id,
                start=m.start,
                end=m.end,
                text=m.text,
            )
            for m in note.mentions
        ]

    planted_images = []
    for n, plan in enumerate(images, start=1):
        rel = f"dicom/{story.id}/image-{n}.dcm"
        write_image(story, plan, out / rel, nrng)
        planted_images.append(
            PlantedImage(
                path=rel,
                sop_instance_uid=plan.sop_uid,
                study_instance_uid=plan.study_uid,
                accession_number=plan.accession,
                opacity=plan.opacity,
                burned_in_text=plan.burned_in,
                study_date=plan.encounter.start.isoformat(),
            )
        )

    vcf_rel: str | None = None
    pgx: list[PlantedPgx] = []
    variants: list[PlantedVariant] = []
    if genomics is not None:
        variants = [v for g in story.variants if (v := planted_variant(genomics, g)) is not None]
        text, pgx = render_vcf(story.mrn, story.pgx, variants, genomics / "pharmcat", REFERENCE_DATE.strftime("%Y%m%d"))
        vcf_rel = f"genomics/{story.id}.vcf.gz"
        _write(out / vcf_rel, bgzf(text.encode()))

    p = story.patient
    return PlantedPatient(
        patient_id=story.id,
        mrn=story.mrn,
        sex=story.sex,
        age=story.age,
        fhir=f"fhir/{story.id}.json",
        vcf=vcf_rel,
        problems=result.problems,
        medications=result.medications,
        allergies=result.allergies,
        no_known_allergies=not result.allergies,
        mentions=mentions,
        critical_results=result.critical,
        egfr_declining=story.egfr_declining,
        smoking_status=story.smoking,
        pgx=pgx,
        pathogenic_variants=variants,
        images=planted_images,
        notes=planted_notes,
        phi=PhiCanary(
            name=p.full,
            given=p.given,
            family=p.family,
            mrn=story.mrn,
            ssn=story.ssn,
            phone=story.phone,
            email=story.email,
            address=story.street,
            city=story.city,
            zip=story.zip,
            birth_date=story.birth_date.isoformat(),
            relatives=[r.full for r in story.relatives],
        ),
    )


def write_cohort(
    out: Path, patients: int = 20, seed: int = 0, shared_data: Path | None = None, training_images: bool = True
) -> CohortCounts:
    """Write a synthetic cohort of ``patients`` under ``out``, one patient at a time, and count it.

    ``planted.json`` is streamed: each patient's entry is written as soon as its files are, so
    the memory held does not grow with the cohort (the process, one patient's files and models,
    and the set of distinct planted ClinVar variants, a fixed catalog). The bytes are those of
    ``CohortManifest.model_dump_json(indent=1)`` of the whole cohort. ``shared_data`` (default:
    :func:`carelens.core.config.shared_data_dir`) provides the PharmCAT allele definitions and the
    ClinVar/ACMG tables for the VCFs; without it no VCF is written. ``training_images=False``
    skips the (few-second) image training set.
    """
    if patients < 1:
        raise ValueError("patients must be at least 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shared = shared_data or shared_data_dir()
    genomics = shared / "genomics" if shared and (shared / "genomics" / "pharmcat").is_dir() else None
    if genomics is None:
        print("demo: shared data not found, no VCFs written (set CARELENS_SHARED_DATA)", file=sys.stderr)
    npz = "imaging/demo-cxr.npz"
    clinvar = "genomics/clinvar-demo.vcf" if genomics is not None else ""
    head = CohortManifest(seed=seed, reference_date=REFERENCE_DATE.isoformat(), generator_version=GENERATOR_VERSION,
                          layout=LAYOUT, training_images=npz if training_images else "", clinvar=clinvar,
                          patients=[]).model_dump_json(indent=1)  # fmt: skip
    empty = '"patients": []\n}'
    assert head.endswith(empty), "planted.json: the patients must be the manifest's last field"
    fake = Faker("en_US")
    counts = CohortCounts()
    known: dict[tuple[str, int], PlantedVariant] = {}
    partial = out / "planted.json.partial"
    with partial.open("w", encoding="utf-8") as manifest:
        manifest.write(head[: -len(empty)] + '"patients": [')
        for i in progress(range(patients), desc="demo cohort", total=patients, unit="patient"):
            planted = _patient(i, seed, fake, out, genomics)
            counts.add(planted)
            for v in planted.pathogenic_variants:
                known.setdefault((v.chrom, v.pos), v)
            entry = planted.model_dump_json(indent=1).replace("\n", "\n  ")  # nested two levels deep
            manifest.write(("," if i else "") + "\n  " + entry)
        manifest.write("\n ]\n}\n")
    if genomics is not None:
        for gene in ("BRCA1", "MUTYH", "ISG15"):  # the extract lists them even when no patient carries one
            if (extra := planted_variant(genomics, gene)) is not None:
                known.setdefault((extra.chrom, extra.pos), extra)
        _write(out / clinvar, render_clinvar(list(known.values()), REFERENCE_DATE.strftime("%Y%m%d")))
    if training_images:
        _write_npz(out / npz, training_set(seed))
    partial.replace(out / "planted.json")  # last: a cohort with planted.json is complete
    return counts


def generate_cohort(
    out: Path, patients: int = 20, seed: int = 0, shared_data: Path | None = None, training_images: bool = True
) -> CohortManifest:
    """Write a synthetic cohort (:func:`write_cohort`) and return what was planted, read whole.

    The manifest holds every patient (~76 KB each): for large cohorts use :func:`write_cohort`
    and :func:`carelens.demo.manifest.planted_patients`, which stream.
    """
    write_cohort(out, patients, seed, shared_data, training_images)
    return CohortManifest.load(out)
