"""The privacy boundary: one key service, and de-identification of notes, FHIR, DICOM and VCF
with one pseudonym and one date shift per patient; a leak audit for the output.

    keys = KeyService.from_env()
    ctx = PatientContext.from_fhir(patient_resource, keys)
    result = deidentify_text(note, ctx)          # result.text, result.spans
    deid_fhir(src, out, keys); deid_dicom(src, out, keys); deid_vcf(src, out_file, keys)
    report = audit(out, source)                  # report.leaks, report.clean
    gate_dicom(path)                             # why a DICOM's pixels may not enter the research zone, or None
"""

from __future__ import annotations

import importlib
from typing import Any

# Public name -> (module, attribute); imported on first use so that `carelens --help` stays fast.
_EXPORTS = {
    "AuditReport": ("audit", "AuditReport"),
    "Leak": ("audit", "Leak"),
    "audit": ("audit", "audit"),
    "gate_dicom": ("burned_in", "gate_dicom"),
    "PatientContext": ("context", "PatientContext"),
    "PhiSpan": ("detect", "PhiSpan"),
    "detect_phi": ("detect", "detect_phi"),
    "DicomOptions": ("dicom", "DicomOptions"),
    "deid_dicom": ("dicom", "deid_dicom_path"),
    "FhirDeidentifier": ("fhir", "FhirDeidentifier"),
    "Profile": ("fhir", "Profile"),
    "load_patients": ("fhir", "load_patients"),
    "deid_fhir": ("fhir", "deid_fhir_path"),
    "KeyService": ("keys", "KeyService"),
    "write_secret": ("keys", "write_secret"),
    "DeidSpan": ("text", "DeidSpan"),
    "TextResult": ("text", "TextResult"),
    "deid_text_path": ("text", "deid_text_path"),
    "deidentify_text": ("text", "deidentify_text"),
    "deid_vcf": ("vcf", "deid_vcf"),
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'carelens.privacy' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    return getattr(importlib.import_module(f"carelens.privacy.{module}"), attribute)


__all__ = [
    "AuditReport",
    "DeidSpan",
    "DicomOptions",
    "FhirDeidentifier",
    "KeyService",
    "Leak",
    "PatientContext",
    "PhiSpan",
    "Profile",
    "TextResult",
    "audit",
    "deid_dicom",
    "deid_fhir",
    "deid_text_path",
    "deid_vcf",
    "deidentify_text",
    "detect_phi",
    "gate_dicom",
    "load_patients",
    "write_secret",
]
