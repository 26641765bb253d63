"""The per-patient work of ``carelens run``: summary, image reads, PGx and findings, research copy.

A :class:`Worker` loads what every patient needs once (the registered image model, the PGx
definitions, the ClinVar extract, the site key) and then turns a batch of patients into output
rows. Each step of a patient runs on its own: a step that fails leaves a ``missing`` row with a
one-line reason (never patient data) and the patient's other outputs are still written.
"""

from __future__ import annotations

import base64
import os
import tempfile
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from carelens import __version__
from carelens.core.errors import CarelensError
from carelens.core.ids import content_hash
from carelens.run.index import index_row
from carelens.run.inputs import PatientInput
from carelens.run.outputs import OutputStore
from carelens.store import Lake

# (patient_id, input_hash, kind, key, model, content_hash, json)
OutputRow = tuple[str, str, str, str, str, str, str]
# (pseudonym, resource_type, id, content_hash, json): the research zone's copy, no clinical id;
# a ``WITHDRAWN`` row (json None) says the pseudonym has no current copy
ResearchRow = tuple[str, str, str, str, str | None]
WITHDRAWN = "carelens.withdrawn"
# Values a document gets from the time it is written: left out of the row's content hash, so
# that the same inputs give the same hash on any run and engine.
_VOLATILE = frozenset({"timestamp", "issued", "date", "effectiveDateTime", "created_at", "generated_at"})


@dataclass
class RunConfig:
    """What the workers need (plain paths: it travels to Ray workers)."""

    store: Path
    clinvar: Path | None = None
    secret_file: Path | None = None
    image_model: str | None = None  # registry id of the image model, None: none registered


@dataclass
class PatientResult:
    patient_id: str
    input_hash: str
    rows: list[OutputRow] = field(default_factory=list)
    research: list[ResearchRow] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    index: tuple[Any, ...] | None = None  # the workspace's patient list row

    def add(self, kind: str, key: str, model: str, value: Any) -> None:
        data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        digest = content_hash(orjson.dumps(_stable(value), option=orjson.OPT_SORT_KEYS))
        self.rows.append((self.patient_id, self.input_hash, kind, key, model, digest, data))

    def missing(self, step: str, reason: str) -> None:
        self.failures.append(f"{step}: {reason}")
        self.add("missing", step, "", {"step": step, "reason": reason})


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in _VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _reason(err: Exception) -> str:
    """A one-line reason without patient data: the library's own reason, else the error type."""
    if isinstance(err, CarelensError):
        return err.reason
    return f"internal error ({type(err).__name__})"


def model_versions(config: RunConfig) -> dict[str, str]:
    """The version of each thing that makes outputs (part of every patient's input hash)."""
    from carelens.genomics import load_definitions

    defs = load_definitions()
    versions = {
        "summary": f"carelens.record@{__version__}",
        "pgx": "carelens.genomics.pgx@" + "+".join(str(v) for v in defs.meta.get("definition_versions", [])),
        "research": f"carelens.privacy@{__version__}",
    }
    if config.image_model:
        versions["image"] = config.image_model
    if config.clinvar is not None:
        versions["findings"] = "clinvar@" + content_hash(config.clinvar.read_bytes(), 16)
    if config.secret_file is not None:
        from carelens.privacy import KeyService

        versions["research"] += "+key@" + KeyService.from_file(config.secret_file).hash_hex("run", "key-version", 12)
    return versions


class Worker:
    """Turns batches of patients into output rows; models are loaded once per worker."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.lake = Lake(config.store)
        self.versions = model_versions(config)
        self._names: frozenset[str] | None = None
        self.keys: Any = None
        if config.secret_file is not None:
            from carelens.privacy import KeyService

            self.keys = KeyService.from_file(config.secret_file)
        self.package: Any = None
        if config.image_model:
            from carelens.run.models import load_registered

            self.package = load_registered(config.store, config.image_model)
        from carelens.genomics import load_definitions
        from carelens.record.notes import pipeline

        self.definitions = load_definitions()
        pipeline()  # the notes model (seconds to load): loaded with the rest, before the first batch
        if self.keys is not None:  # what the first research copy would load (on Ray: while the driver plans)
            from carelens.privacy.lexicon import is_english, lexicon

            lexicon()
            is_english("warm")
            self._cohort_names()

    # -- batch ------------------------------------------------------------------------------
    def process(self, patients: list[PatientInput]) -> list[PatientResult]:
        """Every patient of the batch (one read of the batch's resource part files)."""
        resources = self._resources([p.patient_id for p in patients], sorted({f for p in patients for f in p.files}))
        return [self.patient(p, resources.get(p.patient_id, []), list(p.images) if self.package else [],
                             list(p.vcfs)) for p in patients]  # fmt: skip

    def _resources(self, ids: list[str], files: list[str]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        if not files:
            return out
        listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        table = self.lake.query(
            "SELECT DISTINCT ON (patient_id, resource_type, id, content_hash) patient_id, json"
            f" FROM read_parquet([{listing}]) WHERE list_contains(?, patient_id)"
            " ORDER BY patient_id, resource_type, id, content_hash",
            [ids],
        )
        for pid, raw in zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True):
            out[pid].append(orjson.loads(raw))
        return out

    # -- one patient ------------------------------------------------------------------------
    def patient(
        self,
        p: PatientInput,
        resources: list[dict[str, Any]],
        images: list[tuple[str, str]],
        vcfs: list[tuple[str, str]],
    ) -> PatientResult:
        result = PatientResult(p.patient_id, p.input_hash)
        patient = next((r for r in resources if r.get("resourceType") == "Patient"), None)
        result.index = index_row(p.patient_id, p.input_hash, patient) if patient else None
        steps = [("summary", lambda: self._summary(result, resources))]
        steps += [("image", lambda: self._read_images(result, images))] if images else []
        steps += [("genomics", lambda: self._genomics(result, vcfs))] if vcfs else []
        steps += [("research", lambda: self._research(result, resources))] if self.keys is not None else []
        for step, fn in steps:
            try:
                fn()
            except Exception as err:  # one step's failure: the patient's other outputs still go out
                if step == "research" and self._withdraw(result, patient):
                    result.missing(step, _reason(err) + "; the earlier research copy is withdrawn")
                else:
                    result.missing(step, _reason(err))
        return result

    def _withdraw(self, result: PatientResult, patient: dict[str, Any] | None) -> bool:
        """A marker row under the patient's pseudonym in place of a research copy that could not be
        made: it supersedes the copy of their earlier inputs, so the research zone shows none
        (``WITHDRAWN``, no JSON). False when there is no pseudonym to withdraw under."""
        from carelens.privacy import PatientContext

        if patient is None or self.keys is None:
            return False
        pseudonym = PatientContext.from_fhir(patient, self.keys).pseudonym
        result.research.append((pseudonym, WITHDRAWN, "", content_hash(f"withdrawn:{result.input_hash}"), None))
        return True

    def _summary(self, result: PatientResult, resources: list[dict[str, Any]]) -> None:
        from carelens.record import build_record, summarize_record
        from carelens.record.fhir_document import to_ips_bundle

        record = build_record(resources, result.patient_id)
        summary = summarize_record(record)
        model = self.versions["summary"]
        result.add("summary", "", model, summary.model_dump(mode="json"))
        bundle = to_ips_bundle(summary, record)
        _stable_ids(bundle, result.input_hash)
        result.add("ips", "", model, bundle)

    def _read_images(self, result: PatientResult, images: list[tuple[str, str]]) -> None:
        from carelens.imaging.predict import predict_image
        from carelens.imaging.reports import fhir_diagnostic_report, write_dicom_sr

        model = self.versions["image"]
        refused = []
        heatmaps = self.config.store / "outputs" / "imaging"  # the workspace serves PNGs from here
        scratch = OutputStore(self.config.store).scratch
        scratch.mkdir(parents=True, exist_ok=True)
        for sop, path in images:
            with tempfile.TemporaryDirectory(dir=scratch) as tmp:
                try:
                    pred = predict_image(self.package, path, Path(tmp))
                except CarelensError as err:
                    refused.append(err.reason)
                    continue
                if pred.heatmap:  # named by patient and instance, relative to outputs/imaging
                    rel = f"{content_hash(result.patient_id, 24)}/{content_hash(sop, 24)}.heatmap.png"
                    (heatmaps / rel).parent.mkdir(parents=True, exist_ok=True)
                    os.replace(pred.heatmap, heatmaps / rel)
                    pred.heatmap = rel
                row = pred.to_dict()
                row["source"] = sop  # the instance, not a path of this machine
                result.add("image_read", sop, model, row)
                result.add("image_fhir", sop, model, fhir_diagnostic_report(pred, self.package))
                sr = write_dicom_sr(pred, Path(path), self.package, Path(tmp) / "sr.dcm")
                data = base64.b64encode(sr.read_bytes()).decode()
            # the SR's UIDs and times are made when it is written: its hash is the read's
            sr_hash = content_hash(f"sr:{result.rows[-2][5]}")
            sr_json = orjson.dumps({"dicom_base64": data}).decode()
            result.rows.append((result.patient_id, result.input_hash, "image_sr", sop, model, sr_hash, sr_json))
        if refused:
            raise CarelensError(f"{len(refused)} of {len(images)} images not read ({refused[0]})")

    def _genomics(self, result: PatientResult, vcfs: list[tuple[str, str]]) -> None:
        from carelens.genomics import find_secondary, pgx_report

        for sample, source in vcfs:
            path = Path(source)
            if not path.is_file():
                raise CarelensError("the VCF the lake was filled from is no longer readable")
            key = content_hash(f"{sample}:{path.name}", 16)
            pgx = pgx_report(path, sample, definitions=self.definitions).model_dump(mode="json")
            pgx["sample"] = key  # no sample name (an MRN) in the output
            result.add("pgx", key, self.versions["pgx"], pgx)
            if self.config.clinvar is not None:
                found = find_secondary(path, self.config.clinvar, sample).model_dump(mode="json")
                found["sample"] = key
                result.add("findings", key, self.versions["findings"], found)

    def _cohort_names(self) -> frozenset[str]:
        """The real name words of every patient in the lake: never chosen as a surrogate in any
        patient's research copy (a surrogate that is another patient's surname is still a name of
        the cohort in the research zone)."""
        if self._names is None:
            from carelens.privacy import PatientContext

            # only the names and contacts (what ``name_parts`` reads), not every Patient resource whole,
            # a batch at a time: the words are kept, not the cohort's rows
            batches = self.lake.query_batches("SELECT json_object('name', json_extract(json, '$.name'), 'contact',"
                                              " json_extract(json, '$.contact'))::VARCHAR FROM resources"
                                              " WHERE resource_type = 'Patient'")  # fmt: skip
            texts = (text for batch in batches for text in batch.column(0).to_pylist())
            people = (PatientContext.from_fhir(orjson.loads(text), self.keys) for text in texts)
            self._names = frozenset(w for person in people for w in person.name_parts())
        return self._names

    def _research(self, result: PatientResult, resources: list[dict[str, Any]]) -> None:
        """The de-identified copy through the privacy boundary; withheld when the leak audit finds
        any identifier of the patient in it."""
        from carelens.privacy import FhirDeidentifier, PatientContext
        from carelens.privacy.audit import audit_resources
        from carelens.privacy.fhir import Unsafe

        patient = next((r for r in resources if r.get("resourceType") == "Patient"), None)
        if patient is None:
            raise CarelensError("no Patient resource")
        ctx = PatientContext.from_fhir(patient, self.keys)
        ctx.avoid = ctx.avoid | self._cohort_names()
        deid = FhirDeidentifier(keys=self.keys, patients={result.patient_id: ctx})
        try:
            out = [deid.resource(r) for r in resources]
        except Unsafe as err:  # its reasons name no value of the resource
            raise CarelensError(f"a resource cannot be made safe ({err})") from None
        report = audit_resources(out, resources, result.patient_id)
        if not report.clean:
            kinds = sorted({leak.value_kind for leak in report.leaks})
            raise CarelensError(
                f"research copy withheld: the leak audit found {len(report.leaks)} ({', '.join(kinds)})"
            )
        for r in out:
            data = orjson.dumps(r, option=orjson.OPT_SORT_KEYS)
            result.research.append((ctx.pseudonym, str(r.get("resourceType")), str(r.get("id")),
                                    content_hash(data), data.decode()))  # fmt: skip
        result.add("research_audit", "", self.versions["research"],
                   {"resources": len(out), "leaks": 0, "files_scanned": report.files_scanned,
                    "identifiers_searched": dict(report.identifiers)})  # fmt: skip


def _stable_ids(bundle: dict[str, Any], input_hash: str) -> None:
    """The IPS document's own ids from the input hash (the same inputs, the same document ids)."""
    new = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"carelens:ips:{input_hash}:{i}")) for i in range(2)]
    bundle["id"], bundle["identifier"]["value"] = new[0], f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, new[0])}"
    bundle["entry"][0]["resource"]["id"], bundle["entry"][0]["fullUrl"] = new[1], f"urn:uuid:{new[1]}"
