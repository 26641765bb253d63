"""Results where clinicians see them: a DICOM Structured Report (TID 1500, highdicom) and a FHIR R4
DiagnosticReport with Observations, each carrying the finding, probability, conformal set and model identity."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from carelens.core import InputError
from carelens.imaging.package import ModelPackage
from carelens.imaging.predict import ImagePrediction

LOCAL_SCHEME = "99CARELENS"
# SNOMED CT codes for label names we know.
SNOMED = {"pneumonia": ("233604007", "Pneumonia"), "normal": ("17621005", "Normal")}
LOCAL_CODES = {
    "conformal_set": "Conformal prediction set member",
    "conformal_target": "Conformal coverage target",
    "decision": "Decision support status",
    "refer": "Uncertain: refer for review",
    "confident": "Single-label conformal set",
}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "label"


def _label_code(label: str):
    from highdicom.sr import CodedConcept

    if label.lower() in SNOMED:
        value, meaning = SNOMED[label.lower()]
        return CodedConcept(value, "SCT", meaning)
    return CodedConcept(_slug(label)[:16], LOCAL_SCHEME, label[:64])


def _local(key: str):
    from highdicom.sr import CodedConcept

    return CodedConcept(key.replace("_", "-")[:16], LOCAL_SCHEME, LOCAL_CODES[key])


def write_dicom_sr(prediction: ImagePrediction, source: Path, package: ModelPackage, out: Path) -> Path:
    """A Comprehensive 3D SR (TID 1500 Measurement Report) referencing ``source`` (a DICOM image),
    with the finding, its probability, the conformal set, the refer flag and the model as
    algorithm identification. Written to ``out``."""
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    if prediction.image is None or prediction.image.kind != "dicom":
        raise InputError("a DICOM SR must reference a DICOM source image; this input is not DICOM")
    src = pydicom.dcmread(source, stop_before_pixels=True)
    algorithm = hd.sr.AlgorithmIdentification(
        name=str(package.meta.get("name", "carelens image model")),
        version=package.version,
        parameters=[f"model_id={package.id}", f"temperature={package.temperature:.4f}"],
        manufacturer="carelens",
    )
    device = hd.sr.ObserverContext(
        observer_type=codes.cid270.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(entropy_srcs=[package.id]),
            name="carelens",
            model_name=f"{package.meta.get('name', 'model')} {package.version}",
        ),
    )
    finding = prediction.finding if isinstance(prediction.finding, str) else ", ".join(prediction.finding)
    qualitative = [hd.sr.QualitativeEvaluation(codes.DCM.Finding, _label_code(finding))]
    for label in prediction.conformal_set or []:
        qualitative.append(hd.sr.QualitativeEvaluation(_local("conformal_set"), _label_code(label)))
    qualitative.append(
        hd.sr.QualitativeEvaluation(_local("decision"), _local("refer" if prediction.uncertain_refer else "confident"))
    )
    unit = hd.sr.CodedConcept("1", "UCUM", "no units")
    measurements = [hd.sr.Measurement(name=codes.DCM.Probability, value=float(prediction.probability), unit=unit)]
    if prediction.conformal_target is not None:
        measurements.append(hd.sr.Measurement(_local("conformal_target"), float(prediction.conformal_target), unit))
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=f"carelens {finding}"[:64]),
        finding_type=_label_code(finding),
        algorithm_id=algorithm,
        measurements=measurements,
        qualitative_evaluations=qualitative,
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(src)],
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=codes.SCT.ImagingProcedure,
        imaging_measurements=[group],
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[src],
        content=report[0],
        series_instance_uid=generate_uid(),
        series_number=900,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="carelens",
        is_complete=True,
        is_final=False,
        is_verified=False,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    sr.save_as(out)
    return out


def fhir_diagnostic_report(prediction: ImagePrediction, package: ModelPackage) -> dict[str, Any]:
    """A FHIR R4 DiagnosticReport (status preliminary: a clinician must confirm) with contained
    Observations for the finding, its probability, the conformal set and the refer flag."""
    finding = prediction.finding if isinstance(prediction.finding, str) else ", ".join(prediction.finding)
    device_text = f"carelens {package.meta.get('name', 'image model')} {package.version} (model id {package.id[:16]})"
    method = {"text": f"{device_text}; temperature-scaled probability; split-conformal prediction set"}
    note = [{"text": f"input sha256 {prediction.input_hash}"}]
    code = _fhir_code(finding)
    observations = [
        _observation("finding", {"text": "AI finding"}, method, note, valueCodeableConcept=code),
        _observation(
            "probability",
            {
                "coding": [
                    {
                        "system": "http://dicom.nema.org/resources/ontology/DCM",
                        "code": "122157",
                        "display": "Probability",
                    }
                ],
                "text": f"Probability of {prediction.probability_of}",
            },
            method,
            note,
            valueQuantity={
                "value": float(prediction.probability),
                "unit": "1",
                "system": "http://unitsofmeasure.org",
                "code": "1",
            },
        ),
    ]
    if prediction.conformal_set is not None:
        observations.append(
            _observation(
                "conformal-set",
                {"text": f"Conformal prediction set at {prediction.conformal_target:.0%} coverage"},
                method,
                note,
                valueString=", ".join(prediction.conformal_set) or "(empty)",
                component=[{"code": {"text": label}, "valueBoolean": True} for label in prediction.conformal_set],
            )
        )
        observations.append(
            _observation(
                "decision",
                {"text": "Decision support status"},
                method,
                note,
                valueString=prediction.status if prediction.uncertain_refer else "single-label conformal set",
            )
        )
    conclusion = f"{finding} (probability {prediction.probability:.2f})" + (
        f"; {prediction.status}: conformal set {{{', '.join(prediction.conformal_set or [])}}}"
        if prediction.uncertain_refer
        else ""
    )
    report: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": f"carelens-{prediction.input_hash[:16]}",
        "status": "preliminary",
        "category": [
            {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD", "display": "Radiology"}
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": "18748-4", "display": "Diagnostic imaging study"}]},
        "contained": observations,
        "result": [{"reference": f"#{obs['id']}"} for obs in observations],
        "conclusion": conclusion,
        "conclusionCode": [code],
    }
    if prediction.image is not None and prediction.image.dicom.get("StudyInstanceUID"):
        uid = prediction.image.dicom["StudyInstanceUID"]
        report["imagingStudy"] = [{"identifier": {"system": "urn:dicom:uid", "value": f"urn:oid:{uid}"}}]
    return report


def _fhir_code(label: str) -> dict[str, Any]:
    if label.lower() in SNOMED:
        value, meaning = SNOMED[label.lower()]
        return {"coding": [{"system": "http://snomed.info/sct", "code": value, "display": meaning}], "text": label}
    return {"text": label}


def _observation(oid: str, code: dict, method: dict, note: list, **value: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "preliminary",
        "category": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "imaging"}]}
        ],
        "code": code,
        "method": method,
        "note": note,
        **value,
    }


def validate_fhir(resource: dict[str, Any]) -> None:
    """Parse with fhir.resources (R4B models, identical to R4 for these resources); raise InputError if invalid."""
    from fhir.resources.R4B.diagnosticreport import DiagnosticReport

    try:
        DiagnosticReport.model_validate(resource)
    except Exception as err:
        raise InputError(f"generated FHIR DiagnosticReport is invalid ({type(err).__name__})") from None
