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

from carelens.core.lazy import lazy_exports

# Public name -> its module, or (module, attribute) where the names differ; imported on first use
# so that `carelens --help` stays fast.
_EXPORTS: dict[str, str | tuple[str, str]] = {
    "AuditReport": "carelens.privacy.audit",
    "Leak": "carelens.privacy.audit",
    "audit": "carelens.privacy.audit",
    "gate_dicom": "carelens.privacy.burned_in",
    "PatientContext": "carelens.privacy.context",
    "PhiSpan": "carelens.privacy.detect",
    "detect_phi": "carelens.privacy.detect",
    "DicomOptions": "carelens.privacy.dicom",
    "deid_dicom": ("carelens.privacy.dicom", "deid_dicom_path"),
    "FhirDeidentifier": "carelens.privacy.fhir",
    "Profile": "carelens.privacy.fhir",
    "load_patients": "carelens.privacy.fhir",
    "deid_fhir": ("carelens.privacy.fhir", "deid_fhir_path"),
    "KeyService": "carelens.privacy.keys",
    "write_secret": "carelens.privacy.keys",
    "DeidSpan": "carelens.privacy.text",
    "TextResult": "carelens.privacy.text",
    "deid_text_path": "carelens.privacy.text",
    "deidentify_text": "carelens.privacy.text",
    "deid_vcf": "carelens.privacy.vcf",
}

__getattr__ = lazy_exports(__name__, _EXPORTS)

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
