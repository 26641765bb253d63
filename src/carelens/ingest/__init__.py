"""Readers for the formats hospitals export: FHIR R4 bundles and Bulk Data NDJSON, clinical
notes (DocumentReference attachments, plain text), DICOM and VCF. Bad input is quarantined on
a ``BatchResult``; the rest of the batch goes on.
"""

from carelens.ingest.dicom import read_dicom_header
from carelens.ingest.fhir import FhirItem, read_fhir
from carelens.ingest.notes import Note, decode_note, read_text_note
from carelens.ingest.pipeline import IngestResult, Skipped, ingest
from carelens.ingest.vcf import read_vcf

__all__ = [
    "FhirItem",
    "IngestResult",
    "Note",
    "Skipped",
    "decode_note",
    "ingest",
    "read_dicom_header",
    "read_fhir",
    "read_text_note",
    "read_vcf",
]
