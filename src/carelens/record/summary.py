"""The patient summary: IPS sections in IPS order, a needs-attention block, notes reconciled,
every item checked against its citations."""

from __future__ import annotations

from pathlib import Path

from carelens import __version__
from carelens.core import Citation
from carelens.record import attention, sections
from carelens.record.checker import check_summary
from carelens.record.load import load_record
from carelens.record.model import PatientRecord
from carelens.record.schema import NotesRead, Section, Summary, SummaryItem

#: IPS sections in IPS order: (LOINC, title).
PROBLEMS = ("11450-4", "Problems")
MEDICATIONS = ("10160-0", "Medications")
ALLERGIES = ("48765-2", "Allergies and intolerances")
IMMUNIZATIONS = ("11369-6", "Immunizations")
RESULTS = ("30954-2", "Results")
VITAL_SIGNS = ("8716-3", "Vital signs")
PROCEDURES = ("47519-4", "Procedures")
DEVICES = ("46264-8", "Medical devices")
PAST_ILLNESS = ("11348-0", "Past illness")
SOCIAL_HISTORY = ("29762-2", "Social history")
PLAN_OF_CARE = ("18776-5", "Plan of care")
ENCOUNTERS = ("46240-8", "Recent encounters")

#: The NLP reads the newest notes only (it is the slow part of a summary).
DEFAULT_NOTE_LIMIT = 10


def _section(spec: tuple[str, str], items: list[SummaryItem], omitted: int = 0) -> Section:
    return Section(
        code=spec[0], title=spec[1], items=items, omitted=omitted, empty_reason=None if items else "no information"
    )


def _required(spec: tuple[str, str], items: list[SummaryItem], absence: tuple[str, list[Citation]]) -> Section:
    """A required IPS section: when empty, it says "no known ..." (citing the statement) or "no information"."""
    reason, cited = (None, []) if items else absence
    return Section(code=spec[0], title=spec[1], items=items, empty_reason=reason, empty_citations=cited)


def summarize_record(record: PatientRecord, notes: bool = True, note_limit: int | None = DEFAULT_NOTE_LIMIT) -> Summary:
    """Summarise a loaded record (see :func:`summarize`)."""
    problems = sections.problems(record)
    meds = sections.medications(record)
    allergy_items = sections.allergies(record)
    results, result_attention = sections.results(record)
    past, past_omitted = sections.past_illness(record)
    procs, procs_omitted = sections.procedures(record)

    summary = Summary(
        patient=record.patient_id,
        generated_by=f"carelens {__version__}",
        sections=[
            _required(PROBLEMS, problems, sections.problems_absence(record)),
            _required(MEDICATIONS, meds, sections.medications_absence(record)),
            _required(ALLERGIES, allergy_items, sections.allergies_absence(record)),
            _section(IMMUNIZATIONS, sections.immunizations(record)),
            _section(RESULTS, results),
            _section(VITAL_SIGNS, sections.vital_signs(record)),
            _section(PROCEDURES, procs, procs_omitted),
            _section(DEVICES, sections.devices(record)),
            _section(PAST_ILLNESS, past, past_omitted),
            _section(SOCIAL_HISTORY, sections.social_history(record)),
            _section(PLAN_OF_CARE, sections.plan_of_care(record)),
            _section(ENCOUNTERS, sections.encounters(record)),
        ],
        needs_attention=[
            *attention.high_risk_allergies(record, allergy_items),
            *attention.allergy_medication_conflicts(allergy_items, meds),
            *attention.high_alert_medicines(meds),
            *result_attention,
        ],
        warnings=list(record.warnings),
        notes=NotesRead(total=len(record.notes)),
    )
    if notes and record.notes:
        from carelens.record.notes import reconcile_notes

        reconcile_notes(record, summary, note_limit)
    return check_summary(summary, record)


def summarize(
    source: str | Path | PatientRecord,
    patient: str | None = None,
    notes: bool = True,
    note_limit: int | None = DEFAULT_NOTE_LIMIT,
) -> Summary:
    """Summarise a patient: ``source`` is a FHIR bundle or NDJSON file, a folder (with
    ``patient`` when it holds several), a stored patient id, or a loaded record.

    ``notes``: read the notes with NLP (the newest ``note_limit``; None reads all) and
    reconcile what they say with the structured data.
    """
    record = source if isinstance(source, PatientRecord) else load_record(source, patient)
    return summarize_record(record, notes=notes, note_limit=note_limit)
