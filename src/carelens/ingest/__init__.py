"""Readers for the formats hospitals export: FHIR R4 bundles and Bulk Data NDJSON, clinical
notes (DocumentReference attachments, plain text), DICOM and VCF. Bad input is quarantined on
a ``BatchResult``; the rest of the batch goes on.
"""

from carelens.ingest.fhir import FhirItem, read_fhir
from carelens.ingest.notes import Note, decode_note, read_text_note

__all__ = ["FhirItem", "Note", "decode_note", "read_fhir", "read_text_note"]
