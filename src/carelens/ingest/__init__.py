"""Readers for the formats hospitals export: FHIR R4 bundles and Bulk Data NDJSON, clinical
notes (DocumentReference attachments, plain text), DICOM and VCF. Bad input is quarantined on
a ``BatchResult``; the rest of the batch goes on.

Names are imported on first use: a command that reads one format (``deid text`` its notes) does not
load the lake writer (pyarrow, DuckDB) or the other readers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from carelens.core.lazy import lazy_exports

if TYPE_CHECKING:
    from carelens.ingest.dicom import read_dicom_header
    from carelens.ingest.fhir import FhirItem, read_fhir
    from carelens.ingest.notes import Note, decode_note, read_text_note
    from carelens.ingest.pipeline import IngestResult, Skipped, ingest
    from carelens.ingest.vcf import read_vcf

_HOMES = {
    "read_dicom_header": "carelens.ingest.dicom",
    "FhirItem": "carelens.ingest.fhir",
    "read_fhir": "carelens.ingest.fhir",
    "Note": "carelens.ingest.notes",
    "decode_note": "carelens.ingest.notes",
    "read_text_note": "carelens.ingest.notes",
    "IngestResult": "carelens.ingest.pipeline",
    "Skipped": "carelens.ingest.pipeline",
    "ingest": "carelens.ingest.pipeline",
    "read_vcf": "carelens.ingest.vcf",
}
__getattr__ = lazy_exports(__name__, _HOMES)

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
