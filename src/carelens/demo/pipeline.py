"""``carelens demo``: generate the cohort and run every stage of carelens on it.

generate -> ingest -> de-identify into the research lake -> train and register the image model ->
``carelens run`` (summaries, image reads, pharmacogenomics and findings, research copy: the same
path as any store) -> checks of its outputs against the planted facts -> demo users -> serve the
workspace, which reads the lake and the run's output tables.

Each stage prints one progress line to stderr and returns a small JSON-ready dict; a stage whose
capability is not installed is skipped with a reason, and a stage that fails is reported (with a
PHI-free reason) without stopping the stages after it. Where the generator planted a fact, the
stage reports how its output compares (e.g. planted active problems found in the summaries).
"""

from __future__ import annotations

import secrets
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carelens.core.errors import CarelensError, UsageError
from carelens.core.settings import load_settings
from carelens.demo.manifest import CohortCounts, PlantedPatient, planted_patients

DEMO_USERS = (("clinician", "clinician"), ("researcher", "researcher"), ("admin", "admin"))


class StageUnavailable(Exception):
    """The capability a stage needs is not installed (yet)."""


@dataclass
class DemoOptions:
    """What ``carelens demo`` does: cohort size and seed, where the cohort and the store go,
    the image model's training (epochs, and an optional cap in seconds), and whether to stop
    after generating or to serve at the end."""

    out: Path
    store: Path
    patients: int = 20
    seed: int = 0
    image_epochs: int = 2
    image_budget_s: float | None = None
    generate_only: bool = False
    skip: frozenset[str] = frozenset()


@dataclass
class DemoRun:
    options: DemoOptions
    cohort: CohortCounts | None = None
    model_dir: Path | None = None
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)


def say(message: str) -> None:
    print(f"demo: {message}", file=sys.stderr, flush=True)


def _need(module: str, *names: str) -> Any:
    """Import ``module`` and check it exports ``names``; else raise :class:`StageUnavailable`."""
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError as err:
        raise StageUnavailable(f"{module} cannot be imported ({type(err).__name__})") from None
    missing = [n for n in names if not hasattr(mod, n)]
    if missing:
        raise StageUnavailable(f"{module} has no {', '.join(missing)}")
    return mod


def _write_json(path: Path, obj: Any) -> None:
    from carelens.core.output import to_json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(to_json(obj))


# stages ----------------------------------------------------------------------------------------
def stage_generate(run: DemoRun) -> dict[str, Any]:
    from carelens.demo.cohort import write_cohort

    opts = run.options
    run.cohort = write_cohort(opts.out, patients=opts.patients, seed=opts.seed)
    return {"out": str(opts.out), **vars(run.cohort)}


def _patients(run: DemoRun) -> Iterator[PlantedPatient]:
    """The planted patients, streamed from ``planted.json`` (never all in memory)."""
    if run.cohort is None:
        raise StageUnavailable("no cohort was generated")
    return planted_patients(run.options.out)


def _cohort_file(run: DemoRun, name: str) -> Path | None:
    """The cohort's file ``name`` of :data:`carelens.demo.cohort.LAYOUT`, if the generator wrote it."""
    from carelens.demo.cohort import LAYOUT

    path = run.options.out / LAYOUT[name]
    return path if path.is_file() else None


def stage_ingest(run: DemoRun) -> dict[str, Any]:
    ingest = _need("carelens.ingest", "ingest").ingest
    root = run.options.out
    paths = [root / "fhir", root / "dicom"] + [root / p.vcf for p in _patients(run) if p.vcf]  # not the ClinVar extract
    result = ingest([p for p in paths if p.exists()], run.options.store)
    summary = result.summary()
    return {
        "ingested": summary["ingested"],
        "quarantined": len(summary["quarantined"]),
        "unchanged": summary["unchanged"],
    }


def _site_keys(run: DemoRun) -> Any:
    """The site secret from the environment, else a demo secret kept beside the cohort (never in the store)."""

    keys_mod = _need("carelens.privacy", "KeyService", "write_secret")
    settings = load_settings()
    if settings.secret_file or settings.secret:
        return keys_mod.KeyService.from_env()
    secret = run.options.out / "site-secret.key"
    if not secret.exists():
        keys_mod.write_secret(secret)
    return keys_mod.KeyService.from_file(secret)


def stage_deidentify(run: DemoRun) -> dict[str, Any]:
    """Notes, FHIR, DICOM and VCF into ``<store>/research`` behind one key; files there are renamed
    so that no identified-zone id names them; the planted canaries are looked for; then the research
    ingest runs the leak audit against the identified FHIR, DICOM and VCF and, when nothing leaked,
    fills the research lake (``<store>/research/lake``)."""
    from carelens.core.config import research_store

    privacy = _need("carelens.privacy", "deid_fhir", "deid_text_path", "deid_dicom", "deid_vcf", "load_patients")
    research_ingest = _need("carelens.ingest.research", "ingest_research", "BatchRefused")
    root = run.options.out
    keys = _site_keys(run)
    research = research_store(run.options.store)
    work = run.options.store / "deid-work"  # clinical zone: the span files name the PHI they replaced
    for folder in ("fhir", "notes", "dicom", "genomics"):  # this stage's files of an earlier demo; the
        shutil.rmtree(research / folder, ignore_errors=True)  # research lake (and carelens run's copy in it) stays
    shutil.rmtree(work, ignore_errors=True)
    patients = privacy.load_patients([root / "fhir"], keys)
    counts: dict[str, int] = {}
    reasons: list[str] = []  # the reasons only: the sources are identified-zone paths

    fhir_batch = privacy.deid_fhir(root / "fhir", work / "fhir", keys)
    reasons += [q.reason for q in fhir_batch.quarantined]
    for n, path in enumerate(sorted((work / "fhir").rglob("*.json")), start=1):
        _copy(path, research / "fhir" / f"bundle-{n:04d}.json")
    counts["fhir_files"] = len(list((research / "fhir").glob("*.json"))) if (research / "fhir").exists() else 0

    notes_in = work / "notes-in"
    kinds: dict[str, str] = {}
    vcfs: list[tuple[str, str]] = []
    for p in _patients(run):  # one folder per patient, so the de-identifier knows whose identifiers to look for
        for note in p.notes:
            _copy(root / "notes" / f"{note.note_id}.txt", notes_in / p.patient_id / f"{note.note_id}.txt")
            kinds[note.note_id] = note.kind
        if p.vcf:
            vcfs.append((p.patient_id, p.vcf))
    text_batch = privacy.deid_text_path(notes_in, work / "notes-out", keys, lambda path: patients.get(path.parent.name))
    reasons += [q.reason for q in text_batch.quarantined]
    for n, path in enumerate(sorted((work / "notes-out").rglob("*.txt")), start=1):
        target = research / "notes" / f"note-{n:05d}.txt"
        _copy(path, target)  # the sidecar links the note to the patient's research-zone id
        meta = {"patient_id": keys.pseudonym(path.parent.name), "type": kinds[path.stem]}
        _write_json(target.with_suffix(".meta.json"), meta)
    counts["notes"] = n if (work / "notes-out").exists() else 0

    dicom_batch = privacy.deid_dicom(root / "dicom", research / "dicom", keys, privacy.DicomOptions(), patients)
    reasons += [q.reason for q in dicom_batch.quarantined]
    counts["dicom"] = sum(1 for _ in (research / "dicom").rglob("*.dcm")) if (research / "dicom").exists() else 0

    for n, (pid, vcf) in enumerate(vcfs, start=1):
        privacy.deid_vcf(root / vcf, research / "genomics" / f"sample-{n:04d}.vcf.gz", keys,
                         lambda _sample, pid=pid: pid)  # fmt: skip
    counts["vcf"] = len(vcfs)

    leaks = _canary_leaks(_patients(run), research)
    # the notes are in the FHIR bundles too (DocumentReference): the text files are audited, not ingested again
    batch = [research / d for d in ("fhir", "dicom", "genomics") if (research / d).exists()]
    notes = [research / "notes"] if (research / "notes").exists() else []
    sources = [s for s in [root / "fhir", root / "dicom"] + [root / vcf for _, vcf in vcfs] if s.exists()]
    out: dict[str, Any] = {"research_zone": str(research), "written": counts, "quarantined": len(reasons),
                           "quarantine_reasons": sorted(set(reasons)), "canary_leaks": leaks}  # fmt: skip
    try:
        lake, report = research_ingest.ingest_research(batch, sources, run.options.store, audit_also=notes, keys=keys)
    except research_ingest.BatchRefused as refused:  # the boundary held: the stage fails, its counts are kept
        say(f"research zone: {counts}; {refused.reason}")
        return {**out, "status": "failed", "reason": refused.reason, "audit_leaks": refused.leaks}
    say(f"research zone: {counts}; leak audit: 0 leaks in {report.files_scanned} files; planted canaries found in "
        f"{leaks} files; research lake: {lake.text()}")  # fmt: skip
    lake_counts = {"ingested": lake.ingested(), "quarantined": len(lake.quarantined)}
    return {**out, "audit_leaks": 0, "audit_files_scanned": report.files_scanned, "research_lake": lake_counts}


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def _canary_leaks(patients: Iterator[PlantedPatient], research: Path) -> int:
    """How many files of the research zone contain a planted identifier (name, MRN, SSN, phone, email)."""
    canaries = set()
    for p in patients:
        canaries |= {p.phi.name, p.phi.mrn, p.phi.ssn, p.phi.phone, p.phi.email, p.phi.address}
    needles = [c.encode() for c in canaries if len(c) >= 6]
    leaks = 0
    for path in research.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            leaks += any(n in data for n in needles)
    return leaks


def stage_run(run: DemoRun) -> dict[str, Any]:
    """``carelens run`` on the store: every patient's summary, image reads (with the model the
    models stage registered), PGx and findings, research copy; the checks below read its outputs."""
    from carelens.run import run as run_pipeline

    root = run.options.out
    secret = root / "site-secret.key" if (root / "site-secret.key").exists() else None
    clinvar = _cohort_file(run, "clinvar")
    report = run_pipeline(run.options.store, clinvar=clinvar, secret_file=secret).as_dict()
    say(f"run: {report['processed']} patients processed, {report['unchanged']} unchanged, "
        f"{len(report['failed'])} with a failed step")  # fmt: skip
    return report


def _outputs(run: DemoRun) -> Any:
    from carelens.server.lake_data import LakeData

    return LakeData(run.options.store)


def stage_summarize(run: DemoRun) -> dict[str, Any]:
    """How the run's summaries compare with the planted problems."""
    data = _outputs(run)
    patients = planted_active = found_active = false_problems = items = attention = 0
    for p in _patients(run):
        patients += 1
        summary = data.summary(p.patient_id)
        problems: dict[str, Any] = next((s for s in summary["sections"] if s["code"] == "11450-4"), {"items": []})
        active_codes = {
            c.split("|")[-1]
            for it in problems["items"]
            if it.get("status") in (None, "active")
            for c in it.get("codes", [])
        }
        wanted = {x.snomed for x in p.problems if x.status == "active"}
        planted_active += len(wanted)
        found_active += len(wanted & active_codes)
        false_problems += len({x.snomed for x in p.mentions} & active_codes)
        items += sum(len(s["items"]) for s in summary["sections"])
        attention += len(summary.get("needs_attention", []))
    say(
        f"summaries: {found_active}/{planted_active} planted active problems listed, "
        f"{false_problems} negated/family/uncertain mentions wrongly listed as problems"
    )
    return {
        "patients": patients,
        "items": items,
        "needs_attention": attention,
        "planted_active_problems": planted_active,
        "found_active_problems": found_active,
        "mentions_listed_as_problems": false_problems,
    }


IMAGE_LABELS = ["no opacity", "opacity"]


def stage_imaging(run: DemoRun) -> dict[str, Any]:
    """Train the demo image model (the models stage registers it; the run stage reads with it)."""
    trainer = _need("carelens.imaging.trainer", "train", "TrainConfig")
    data = _need("carelens.imaging.data", "load_npz")
    npz = _cohort_file(run, "training_images")
    if npz is None:
        raise StageUnavailable("the cohort has no training images")
    model_dir = run.options.out / "models" / "demo-cxr"
    cfg = trainer.TrainConfig(
        seed=run.options.seed,
        time_budget=run.options.image_budget_s,
        max_epochs=run.options.image_epochs,
        modalities=["DX", "CR"],
    )
    splits = (data.load_npz(npz, "train", IMAGE_LABELS), data.load_npz(npz, "val", IMAGE_LABELS))
    meta = trainer.train(splits, model_dir, cfg)
    run.model_dir = model_dir
    validation = meta.get("metrics", {}).get("validation", {})
    say(f"image model: validation AUC {validation.get('auc')}")
    return {"model": str(model_dir), "validation_auc": validation.get("auc")}


def stage_reads(run: DemoRun) -> dict[str, Any]:
    """How the run's image reads compare with the planted labels."""
    data = _outputs(run)
    if run.model_dir is None:
        raise StageUnavailable("no image model was trained")
    agree = total = refused = 0
    for p in _patients(run):
        by_uid = {i.sop_instance_uid: i for i in p.images}
        reads = data.images(p.patient_id)
        refused += len(p.images) - len(reads)
        for row in reads:
            total += 1
            planted = by_uid.get(str(row.get("source")))
            agree += int(planted is not None and (row["finding"] == "opacity") == planted.opacity)
    say(f"image reads: {agree}/{total} patient radiographs agree with the planted label, {refused} refused")
    return {"images_read": total, "images_refused": refused, "agree_with_planted_label": agree}


def stage_genomics(run: DemoRun) -> dict[str, Any]:
    """How the run's PGx calls and findings compare with the planted ones."""
    data = _outputs(run)
    if run.cohort is not None and not run.cohort.vcf:
        raise StageUnavailable("the cohort has no VCFs (shared data not found)")
    concordant = called = findings = acmg_planted = 0
    for p in _patients(run):
        if not p.vcf:
            continue
        report = data.pgx(p.patient_id) or {}
        calls = {g["gene"]: g.get("diplotypes") or [] for g in report.get("genes", [])}
        for x in p.pgx:
            called += 1
            concordant += int(x.diplotype in calls.get(x.gene, []))
        findings += sum(1 for f in data.findings(p.patient_id) if f.get("reportable"))
        acmg_planted += sum(1 for v in p.pathogenic_variants if v.acmg)
    say(
        f"pgx: {concordant}/{called} planted diplotypes called; {findings} reportable findings "
        f"({acmg_planted} planted in ACMG genes)"
    )
    return {
        "planted_diplotypes": called,
        "concordant_diplotypes": concordant,
        "reportable_findings": findings,
        "planted_acmg_variants": acmg_planted,
    }


def stage_models(run: DemoRun) -> dict[str, Any]:
    models = _need("carelens.models", "Registry")
    if run.model_dir is None:
        raise StageUnavailable("no image model was trained")
    entry = models.Registry(run.options.store).register(run.model_dir)
    return {"registered": entry.id, "name": entry.name, "version": entry.version}


def stage_users(run: DemoRun) -> dict[str, Any]:
    appdb = _need("carelens.store.appdb", "add_user", "get_user", "get_engine")
    from sqlalchemy.orm import Session

    from carelens.server.settings import ServerSettings

    settings = ServerSettings.from_env(run.options.store)
    created, kept = [], []
    with Session(appdb.get_engine(settings.db_url)) as s, s.begin():
        for name, role in DEMO_USERS:
            if appdb.get_user(s, name) is not None:
                kept.append(name)
                continue
            password = secrets.token_urlsafe(12)
            appdb.add_user(s, name, password, role, one_time=True)  # changed at the first login
            appdb.audit.append(s, "demo", "user.add", detail={"user": name, "role": role, "one_time": True})
            created.append(name)
            print(f"demo: user {name} ({role}) one-time password: {password}", file=sys.stderr, flush=True)
    if kept:
        say(f"users {', '.join(kept)} already exist; their passwords are unchanged")
    return {"created": created, "existing": kept}


STAGES: list[tuple[str, Callable[[DemoRun], dict[str, Any]]]] = [
    ("generate", stage_generate),
    ("ingest", stage_ingest),
    ("deidentify", stage_deidentify),
    ("imaging", stage_imaging),
    ("models", stage_models),
    ("run", stage_run),
    ("summarize", stage_summarize),
    ("reads", stage_reads),
    ("genomics", stage_genomics),
    ("users", stage_users),
]


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (e.g. tesseract), in seconds."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_demo(options: DemoOptions) -> dict[str, Any]:
    """Run the stages in order; the summary holds one entry per stage with its ``status``
    (``done``, ``skipped`` or ``failed``), wall-clock and CPU seconds, and what it did or why not."""
    unknown = set(options.skip) - {name for name, _ in STAGES}
    if unknown:
        raise UsageError(f"unknown stage {sorted(unknown)[0]}: stages are {', '.join(n for n, _ in STAGES)}")
    if "generate" in options.skip:
        raise UsageError("the generate stage cannot be skipped")
    run = DemoRun(options)
    stages = STAGES[:1] if options.generate_only else STAGES
    for i, (name, fn) in enumerate(stages, start=1):
        if name in options.skip:
            say(f"[{i}/{len(stages)}] {name} skipped (--skip)")
            run.stages[name] = {"status": "skipped", "reason": "skipped on request", "seconds": 0.0}
            continue
        say(f"[{i}/{len(stages)}] {name} ...")
        started, cpu_started = time.monotonic(), _cpu_seconds()
        try:
            result = {"status": "done", **fn(run)}
        except StageUnavailable as err:
            say(f"stage {name} not available yet: {err}")
            result = {"status": "skipped", "reason": str(err)}
        except CarelensError as err:
            say(f"stage {name} failed: {err.reason}")
            result = {"status": "failed", "reason": err.reason}
        except Exception as err:  # a stage's bug must not hide the others; the type only (no PHI)
            say(f"stage {name} failed: internal error ({type(err).__name__})")
            result = {"status": "failed", "reason": f"internal error ({type(err).__name__})"}
            if name == "generate":
                raise
        result["seconds"] = round(time.monotonic() - started, 2)
        result["cpu_seconds"] = round(_cpu_seconds() - cpu_started, 2)
        run.stages[name] = result
        if result["status"] == "done":
            say(f"[{i}/{len(stages)}] {name} done in {result['seconds']} s")
    return {
        "cohort": str(options.out),
        "store": str(options.store),
        "seed": options.seed,
        "patients": options.patients,
        "stages": run.stages,
    }


def serve(store: Path, host: str, port: int) -> None:
    """Serve the clinician workspace on the demo store (blocks until interrupted)."""
    import uvicorn

    server = _need("carelens.server", "create_app", "ServerSettings")
    app = server.create_app(server.ServerSettings.from_env(store))
    say(f"workspace on http://{host}:{port}/")
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning", timeout_graceful_shutdown=5)
