"""Chest radiographs as DICOM DX files with identifying headers (and, for some, the patient's
name and MRN burned into the pixels), for the DICOM de-identification and imaging work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian

from carelens.demo.cxr import synth_chest
from carelens.demo.fhir import ImagePlan
from carelens.demo.story import Story, age_on

DX_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
PRIVATE_CREATOR = "CARELENS DEMO"
SIZE = 256


def _burn_in(pixels: np.ndarray, lines: list[str]) -> np.ndarray:
    """Draw ``lines`` into the top-left corner at full intensity."""
    mask = Image.new("L", (pixels.shape[1], pixels.shape[0]), 0)
    draw = ImageDraw.Draw(mask)
    font = ImageFont.load_default(size=12)
    for i, line in enumerate(lines):
        draw.text((6, 4 + 14 * i), line, fill=255, font=font)
    out = pixels.copy()
    out[np.asarray(mask) > 127] = 4095
    return out


def uid_from(text: str) -> str:
    """A valid UID under the 2.25 root from a UUID string."""
    return "2.25." + str(int(text.replace("-", ""), 16))


def write_image(story: Story, plan: ImagePlan, path: Path, rng: np.random.Generator) -> None:
    """Render ``plan`` for ``story`` and write it to ``path``."""
    pixels = np.round(synth_chest(rng, SIZE, plan.opacity) * 4095).astype(np.uint16)
    p, e = story.patient, plan.encounter
    if plan.burned_in:
        pixels = _burn_in(
            pixels, [f"{p.family.upper()}, {p.given.upper()}", f"MRN {story.mrn}", e.start.strftime("%m/%d/%Y")]
        )

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(DX_FOR_PRESENTATION)
    meta.MediaStorageSOPInstanceUID = UID(plan.sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = DX_FOR_PRESENTATION
    ds.SOPInstanceUID = plan.sop_uid
    day = e.start.strftime("%Y%m%d")
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = day
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "101500"
    ds.AccessionNumber = plan.accession
    ds.Modality = "DX"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Manufacturer = "carelens synthetic"
    ds.InstitutionName = e.hospital
    ds.InstitutionAddress = f"{story.city}, {story.state}"
    ds.ReferringPhysicianName = f"{e.clinician.family}^{e.clinician.given}"
    ds.StudyDescription = f"XR CHEST PA {p.family.upper()}, {p.given.upper()}"
    ds.SeriesDescription = "PA"
    ds.OperatorsName = f"{story.clinicians[1].family}^{story.clinicians[1].given}"
    ds.PatientName = f"{p.family}^{p.given}^{story.middle}"
    ds.PatientID = story.mrn
    ds.IssuerOfPatientID = story.hospitals[0]
    ds.PatientBirthDate = story.birth_date.strftime("%Y%m%d")
    ds.PatientSex = story.sex[0].upper()
    ds.PatientAge = f"{age_on(story.birth_date, e.start):03d}Y"
    ds.OtherPatientIDs = story.ssn
    ds.PatientAddress = f"{story.street}, {story.city}, {story.state} {story.zip}"
    ds.PatientTelephoneNumbers = story.phone
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.StudyInstanceUID = plan.study_uid
    ds.SeriesInstanceUID = plan.series_uid
    ds.StudyID = plan.accession[-6:]
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.PatientOrientation = ["L", "F"]
    ds.BurnedInAnnotation = "YES" if plan.burned_in else "NO"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.ImagerPixelSpacing = [1.4, 1.4]
    ds.WindowCenter = 2048
    ds.WindowWidth = 4096
    ds.PixelData = pixels.tobytes()
    block = ds.private_block(0x0011, PRIVATE_CREATOR, create=True)
    block.add_new(0x01, "LO", p.full)
    block.add_new(0x02, "LO", story.mrn)
    block.add_new(0x03, "LO", f"Ordered by Dr. {e.clinician.full}, call {story.work_phone}")
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
