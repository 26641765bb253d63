"""Command-line commands of carelens.privacy: ``carelens deid ...`` (registered by carelens.cli)."""

from __future__ import annotations

from pathlib import Path

import typer

from carelens.core.errors import InputError, UsageError
from carelens.core.options import format_option

deid = typer.Typer(help="De-identify notes, FHIR, DICOM and VCF behind one key; audit the output for leaks.",
                   no_args_is_help=True)  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add the ``deid`` command group to the main app."""
    app.add_typer(deid, name="deid")


def _keys(required: bool):
    from carelens.privacy.keys import KeyService

    try:
        return KeyService.from_env()
    except UsageError:
        if required:
            raise
        typer.echo("warning: no site secret (CARELENS_SECRET_FILE): using a one-off key; surrogates and date "
                   "shifts will not link to other runs", err=True)  # fmt: skip
        return KeyService.ephemeral()


def _exists(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path} does not exist")


def _finish(result, json_out: bool = True) -> None:
    from carelens.core.output import emit_json

    emit_json({"done": dict(result.done), "quarantined": result.quarantined})
    if result.quarantined:
        raise typer.Exit(3)


@deid.command("keygen")
def keygen(
    path: Path = typer.Argument(..., help="Where to write the new site secret (created with 0600 permissions)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing secret (re-derives every pseudonym)."),
    format: str = format_option("json", ("json", "text"), 'json ({"path", "fingerprint"}) or text.'),
) -> None:
    """Write a new random site secret; point CARELENS_SECRET_FILE at it. Keep it out of the lake."""
    from carelens.core.output import emit_json
    from carelens.privacy.keys import KeyService, write_secret

    write_secret(path, overwrite=force)
    fingerprint = KeyService.from_file(path).fingerprint
    if format == "json":
        emit_json({"path": str(path), "fingerprint": fingerprint})
    else:
        typer.echo(f"wrote {path} (key fingerprint {fingerprint})")


@deid.command("text")
def text_cmd(
    src: Path = typer.Argument(..., help="A .txt note or a folder of them."),
    out: Path = typer.Option(..., "--out", help="Folder for <name>.txt (surrogates) and <name>.phi.json (spans)."),
    fhir: list[Path] = typer.Option([], "--fhir", help="FHIR bundles/NDJSON with the notes' Patient resources."),
    patient: str | None = typer.Option(None, "--patient", help="Patient id all notes belong to."),
) -> None:
    """De-identify clinical notes: PHI replaced by surrogates, spans (offsets into the input) in <name>.phi.json.

    A note's patient (its known identifiers, surrogates and date shift) is --patient, or the
    patient whose id names the note file or its folder when --fhir is given. Without a site
    secret a one-off key is used. Exit 3 when some notes were quarantined.
    """
    from carelens.core.progress import progress
    from carelens.privacy.text import deid_text_path, note_files

    _exists(src)
    keys = _keys(required=False)
    patients = _patients(fhir, keys) if fhir else {}
    if patient and fhir and patient not in patients:
        raise InputError(f"patient {patient} is not in the given FHIR files")

    def context_for(path: Path):
        from carelens.privacy.context import PatientContext

        if patient:
            return patients.get(patient) or PatientContext(patient_id=patient, keys=keys)
        for key in (path.stem, path.parent.name, path.stem.split("_")[0], path.stem.split(".")[0]):
            if key in patients:
                return patients[key]
        return None

    bar = iter(progress(range(len(note_files(src))), "deid text", unit="note"))
    result = deid_text_path(src, out, keys, context_for, on_file=lambda _p: next(bar, None))
    _finish(result)


def _patients(fhir: list[Path], keys):
    """The patients of FHIR files (the FHIR de-identifier and the readers it needs are imported only then)."""
    from carelens.privacy.fhir import load_patients

    return load_patients(fhir, keys)


@deid.command("fhir")
def fhir_cmd(
    src: Path = typer.Argument(..., help="A FHIR bundle / NDJSON file or a folder of them."),
    out: Path = typer.Option(..., "--out", help="Folder for the de-identified files (same layout)."),
    profile: Path | None = typer.Option(None, "--profile", help="A JSON rules profile (default: Safe Harbor)."),
) -> None:
    """De-identify FHIR resources: path rules (Safe Harbor profile), hashed ids and references, shifted dates,
    free text through the text de-identifier. Needs the site secret. Exit 3 when some items were quarantined."""
    from carelens.privacy.fhir import Profile, deid_fhir_path

    _exists(src)
    keys = _keys(required=True)
    try:
        chosen = Profile.from_file(profile) if profile else None
    except (OSError, ValueError) as err:  # JSON errors are ValueErrors
        raise InputError(f"--profile {profile}: not a readable allow-list profile ({type(err).__name__})") from None
    result = deid_fhir_path(src, out, keys, chosen)
    _finish(result)


@deid.command("vcf")
def vcf_cmd(
    src: Path = typer.Argument(..., help="A VCF (.vcf or .vcf.gz)."),
    out: Path = typer.Option(..., "--out", help="The de-identified VCF to write (.gz to compress)."),
    patient: str | None = typer.Option(None, "--patient", help="Patient id of a single-sample VCF."),
    fhir: list[Path] = typer.Option([], "--fhir", help="FHIR files with the Patients (sample = MRN or file name)."),
) -> None:
    """De-identify a VCF by allow-list: sample ids become patient pseudonyms (the same as in FHIR, notes and DICOM
    when the patient is known); only fileformat, contig (ID, length) and INFO/FORMAT/FILTER/ALT definitions stay in
    the header; ID column, INFO and FORMAT keys by allow-list. Needs the site secret; exit 1 on a broken VCF."""
    from carelens.core.output import emit_json
    from carelens.privacy.vcf import deid_vcf

    _exists(src)
    keys = _keys(required=True)
    patients = _patients(fhir, keys) if fhir else {}
    by_identifier = {i: ctx.patient_id for ctx in patients.values() for i in ctx.identifiers}
    stem = src.name.split(".")[0]

    def sample_patient(sample: str) -> str:
        if patient:
            return patient
        if sample in by_identifier:
            return by_identifier[sample]
        return stem if stem in patients else sample

    known = None
    if fhir:
        from carelens.privacy.fhir import known_identifiers
        from carelens.privacy.known import Known

        known = Known(values={v for k in known_identifiers(fhir).values() for v in k.values})
    counts = deid_vcf(src, out, keys, sample_patient, known)
    emit_json({"done": counts, "out": str(out)})


@deid.command("audit")
def audit_cmd(
    out: Path = typer.Argument(..., help="De-identified output (file or folder) to search."),
    source: Path = typer.Option(..., "--source", help="The identified source it was made from."),
    format: str = format_option("json", ("json", "text"), "json (default) or text."),
    pixels: bool = typer.Option(
        True, "--pixels/--no-pixels", help="Pass DICOM pixels through the burned-in text gate (default on)."
    ),
) -> None:
    """Search de-identified output for every identifier known from the source (names, MRN, SSN, phone, address,
    device ids, birth dates in a birth context) in every file and folder name, JSON string, decoded attachment,
    DICOM attribute and VCF line, and DICOM pixels through the research zone's burned-in text gate (leak kind
    burned_in_text; --no-pixels skips it). Prints {"leaks": [{"value_kind", "location", "reason"}], ...} (never a
    value); exit 4 when anything leaked, 2 when the source holds no identifier to search for."""
    from carelens.core.output import emit_json
    from carelens.privacy.audit import audit

    _exists(out)
    _exists(source)
    report = audit(out, source, pixels=pixels)
    if not report.identifiers:  # nothing was searched: no verdict, clean or not
        raise UsageError(
            "--source holds no patient identifiers to search for (notes name none in a structured field: give the "
            "identified FHIR, DICOM or VCF they came with)"
        )
    if format == "json":
        emit_json(report.as_dict())
    else:
        for leak in report.leaks:
            typer.echo(f"{leak.value_kind}\t{leak.location}\t{leak.reason}")
        typer.echo(f"{len(report.leaks)} leaks in {report.files_scanned} files", err=True)
    if report.leaks:
        raise typer.Exit(4)


@deid.command("dicom")
def dicom_cmd(
    src: Path = typer.Argument(..., help="A DICOM file or a folder of them."),
    out: Path = typer.Option(..., "--out", help="Folder for the de-identified files."),
    fhir: list[Path] = typer.Option([], "--fhir", help="FHIR files with the Patients (to link by MRN or folder)."),
    no_pixels: bool = typer.Option(False, "--no-clean-pixels", help="Skip OCR of burned-in text."),
) -> None:
    """De-identify DICOM by allow-list: PS3.15 Table E.1-1 with its option columns (Retain Longitudinal Temporal
    Information with Modified Dates, Retain Patient Characteristics, Clean Descriptors, Clean Structured Content),
    attributes outside the table removed unless on the keep list, private and UN tags removed, group 0002 rebuilt,
    UIDs remapped, files named <pseudonym>/<keyed hash>.dcm; burned-in text found by OCR in any orientation and
    polarity, blanked and checked. Needs the site secret. Exit 3 when some files were quarantined."""
    from carelens.core.progress import progress
    from carelens.privacy.dicom import DicomOptions, deid_dicom_path, dicom_files

    _exists(src)
    keys = _keys(required=True)
    patients = _patients(fhir, keys) if fhir else {}
    bar = iter(progress(range(len(dicom_files(src))), "deid dicom", unit="file"))
    result = deid_dicom_path(src, out, keys, DicomOptions(clean_pixels=not no_pixels), patients,
                             on_file=lambda _p: next(bar, None))  # fmt: skip
    _finish(result)


@deid.command("train")
def train_cmd(
    out: Path = typer.Option(..., "--out", help="Folder for the model (deid_crf.crfsuite, deid_crf.json)."),
    data: Path | None = typer.Option(None, "--data", help="The shared data folder (default: ../shared/data)."),
    folds: int = typer.Option(0, "--folds", help="Also report patient-grouped K-fold cross-validation (K > 1)."),
    threshold: float | None = typer.Option(
        None, "--threshold", help="PHI probability at which a token is flagged (default: 0.03)."
    ),
    swaps: int | None = typer.Option(
        None, "--swaps", min=0, help="Surrogate-swapped copies of each real note with a name or place (default: 0)."
    ),
    fit_half_only: bool = typer.Option(
        False, "--fit-half-only", help="Fit on the fit part only (the old protocol: its held-out score is honest)."
    ),
    rotation: int = typer.Option(4, "--rotation", min=0, help="Held-out rotation parts (0: none)."),
) -> None:
    """Train the CRF layer of the text de-identifier on the real PhysioNet deid notes (every patient,
    or the fit part of the fixed by-patient split with --fit-half-only), surrogate-swapped copies of
    them and synthetic notes; prints the held-out estimates (a fit-part model on the held-out part,
    and the held-out rotation) as JSON.

    The shipped model (carelens/privacy/data/deid_crf.*) was made with the defaults."""
    from carelens.core.config import shared_data_dir
    from carelens.core.output import emit_json
    from carelens.privacy.training import SWAPS, THRESHOLD, build

    root = data or shared_data_dir()
    if root is None or not (root / "deid" / "physionet-dev" / "gold.json").exists():
        raise InputError("no deid/physionet-dev corpus in the shared data (give --data)")
    threshold = THRESHOLD if threshold is None else threshold
    if not 0.0 < threshold < 1.0:
        raise UsageError("--threshold must be between 0 and 1")
    report = build(root, out, threshold=threshold, folds=folds, swaps=SWAPS if swaps is None else swaps,
                   all_patients=not fit_half_only,
                   rotation=rotation, on_step=lambda step: typer.echo(step, err=True))  # fmt: skip
    emit_json(report)
