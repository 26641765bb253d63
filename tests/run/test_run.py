"""carelens run on the demo cohort's lake: outputs, idempotence, incremental, crash safety,
quarantine, the command line, and the Ray engine giving the same outputs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import orjson
import pytest

from carelens.core.errors import UsageError
from carelens.run import OutputStore, run
from carelens.server.lake_data import LakeData
from carelens.store import Lake
from tests.run.conftest import Cohort


def _run(c: Cohort, **kw: object) -> dict:
    return run(c.store, clinvar=c.clinvar, secret_file=c.secret, **kw).as_dict()  # type: ignore[arg-type]


def _patients(store: Path) -> list[str]:
    return sorted(Lake(store).query("SELECT DISTINCT id FROM resources WHERE resource_type = 'Patient'").column(0)
                  .to_pylist())  # fmt: skip


def _edit_one_patient(c: Cohort, tmp_path: Path, note: str) -> str:
    """A later export of one Condition of the first bundle's patient, with a note, ingested; the
    patient's id."""
    from carelens.ingest import ingest

    bundle = orjson.loads(sorted((c.root / "fhir").glob("*.json"))[0].read_bytes())
    patient = next(e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    changed = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Condition")
    changed["note"] = [{"text": note}]
    changed["subject"] = {"reference": f"Patient/{patient}"}
    edited = tmp_path / "edited.json"
    edited.write_bytes(orjson.dumps({"resourceType": "Bundle", "type": "collection",
                                     "entry": [{"resource": changed}]}))  # fmt: skip
    ingest([edited], c.store)
    return patient


def test_run_makes_every_output_once(cohort: Cohort) -> None:
    first = _run(cohort)
    pids = _patients(cohort.store)
    assert first["patients"] == first["processed"] == len(pids) == 3 and first["failed"] == []
    data = LakeData(cohort.store)
    for pid in pids:
        summary = data.summary(pid)
        assert summary["patient"] == pid and summary["sections"]
        assert data.ips(pid)["entry"][0]["resource"]["resourceType"] == "Composition"
        assert data.pgx(pid)["genes"] and data.input_hash(pid) != "not-run"
    outputs = OutputStore(cohort.store)
    kinds = {r[0] for r in duckdb.sql(outputs.current_sql("outputs", "DISTINCT kind")).fetchall()}
    assert {"summary", "ips", "pgx", "findings", "research_audit"} <= kinds
    # the research copy is keyed by pseudonym only and holds no name or MRN of the cohort
    research = outputs.parts("research")
    assert research and all("research" in str(p) for _, p in research)
    text = b"".join(orjson.dumps(r) for r in duckdb.sql(outputs.current_sql("research")).fetchall())
    for row in data.search(limit=10)[0]:
        assert row.mrn and row.mrn.encode() not in text and row.name.split()[-1].encode() not in text
        assert row.id.encode() not in text

    # the research copy is in the research zone's catalog, the outputs in the clinical one
    from carelens.core.config import research_store
    from carelens.store.sandbox import sandboxed_query

    seen = sandboxed_query(Lake(research_store(cohort.store)), "SELECT pseudonym, json FROM run_research").to_pylist()
    assert len({r["pseudonym"] for r in seen}) == 3 and len(seen) == len(duckdb.sql(outputs.current_sql("research")))
    assert all(row.mrn not in r["json"] for r in seen for row in data.search(limit=10)[0] if row.mrn)
    assert Lake(cohort.store).query("SELECT count(DISTINCT patient_id) FROM run_outputs").column(0)[0].as_py() == 3

    second = _run(cohort)
    assert second["processed"] == 0 and second["unchanged"] == 3
    assert second["outputs_digest"] == first["outputs_digest"]


def test_a_changed_resource_recomputes_only_its_patient(cohort: Cohort, tmp_path: Path) -> None:
    first = _run(cohort)
    patient = _edit_one_patient(cohort, tmp_path, "reviewed")  # a later export, outside the first bundle
    before = LakeData(cohort.store).input_hash(patient)
    second = _run(cohort)
    assert second["processed"] == 1 and second["unchanged"] == 2
    assert second["outputs_digest"] != first["outputs_digest"]
    assert LakeData(cohort.store).input_hash(patient) != before


def test_compaction_keeps_the_outputs_and_later_runs_build_on_it(cohort: Cohort, tmp_path: Path) -> None:
    part = _run(cohort, batch_size=1, limit=2)  # a backlog taken in two runs
    assert part["processed"] == 2 and part["remaining"] == 1 and part["unchanged"] == 0
    first = _run(cohort, batch_size=1)
    assert first["processed"] == 1 and first["unchanged"] == 2 and first["remaining"] == 0
    outputs = OutputStore(cohort.store)
    assert len(outputs.manifests()) == 3
    pids = _patients(cohort.store)
    before = {pid: LakeData(cohort.store).summary(pid) for pid in pids}
    again = _run(cohort, compact=True)
    assert again["processed"] == 0 and again["outputs_digest"] == first["outputs_digest"]
    assert len(outputs.manifests()) == 1
    assert all(len(list(outputs.folder(t).glob("part-*"))) == 1 for t in ("outputs", "research", "patient_index"))
    data = LakeData(cohort.store)
    assert {pid: data.summary(pid) for pid in pids} == before
    assert data.search(limit=10)[1] == 3
    # a patient reprocessed after the compaction: its new batch is the current one
    patient = _edit_one_patient(cohort, tmp_path, "reviewed after the compaction")
    old_hash = data.input_hash(patient)
    third = _run(cohort)
    assert third["processed"] == 1 and third["outputs_digest"] != first["outputs_digest"]
    assert LakeData(cohort.store).input_hash(patient) not in ("not-run", old_hash)
    assert LakeData(cohort.store).summary(patient)["patient"] == patient
    assert _run(cohort, compact=True)["outputs_digest"] == third["outputs_digest"]


def test_a_withheld_research_copy_withdraws_the_earlier_one(
    cohort: Cohort, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import carelens.privacy.audit as privacy_audit
    from carelens.core.config import research_store
    from carelens.store.sandbox import sandboxed_query

    def research_rows() -> list[dict]:
        research = Lake(research_store(cohort.store))
        return sandboxed_query(research, "SELECT pseudonym, json FROM run_research").to_pylist()

    first = _run(cohort)
    before = {r["pseudonym"] for r in research_rows()}
    assert len(before) == 3
    patient = _edit_one_patient(cohort, tmp_path, "reviewed")
    real_audit = privacy_audit.audit_resources
    monkeypatch.setattr(privacy_audit, "audit_resources", lambda out, src, pid, **kw: privacy_audit.AuditReport(
        leaks=[privacy_audit.Leak("name", "research.ndjson:1")], files_scanned=1))  # fmt: skip
    second = _run(cohort)
    assert second["processed"] == 1 and [f["patient"] for f in second["failed"]] == [patient]
    reason = second["failed"][0]["reason"]
    assert reason.startswith("research: research copy withheld") and "earlier research copy is withdrawn" in reason
    # the copy made from the patient's earlier inputs is no longer served; the others' still are
    after = research_rows()
    assert len({r["pseudonym"] for r in after}) == 2 and {r["pseudonym"] for r in after} < before
    assert all(r["json"] for r in after)
    assert LakeData(cohort.store).missing(patient)[0]["step"] == "research"
    # once the copy can be made again, it is current again
    monkeypatch.setattr(privacy_audit, "audit_resources", real_audit)
    third = _run(cohort, retry_failed=True)
    assert third["processed"] == 1 and third["failed"] == []
    assert {r["pseudonym"] for r in research_rows()} == before
    assert third["outputs_digest"] != first["outputs_digest"]


def test_one_bad_patient_is_quarantined_and_the_rest_go_on(cohort: Cohort, tmp_path: Path) -> None:
    # the VCF of one patient is gone after ingest: its genomics step fails, its other outputs and
    # the other patients are made
    files = tmp_path / "files"
    shutil.copytree(cohort.root, files)
    store = tmp_path / "store2"
    vcfs = sorted((files / "genomics").glob("*.vcf.gz"))
    from carelens.ingest import ingest

    ingest([files / "fhir", *vcfs], store)
    vcfs[0].unlink()
    report = run(store, clinvar=cohort.clinvar).as_dict()
    assert report["processed"] == 3 and len(report["failed"]) == 1
    bad = report["failed"][0]
    assert bad["reason"].startswith("genomics:") and "no longer readable" in bad["reason"]
    data = LakeData(store)
    assert data.summary(bad["patient"])["sections"]  # what exists is shown
    assert data.missing(bad["patient"])[0]["step"] == "genomics"  # and what is missing is said
    assert report["quarantined"] == 1
    again = run(store, clinvar=cohort.clinvar).as_dict()
    assert again["processed"] == 0 and again["quarantined"] == 1
    shutil.copyfile(cohort.root / "genomics" / vcfs[0].name, vcfs[0])  # the file is back
    fixed = run(store, clinvar=cohort.clinvar, retry_failed=True).as_dict()
    assert fixed["processed"] == 1 and fixed["failed"] == [] and fixed["quarantined"] == 0
    assert LakeData(store).missing(bad["patient"]) == [] and LakeData(store).pgx(bad["patient"])


def test_bad_usage(cohort: Cohort, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="engine"):
        run(cohort.store, engine="spark")
    with pytest.raises(UsageError, match="lake is empty"):
        run(tmp_path / "empty")
    with pytest.raises(UsageError, match="clinvar"):
        run(cohort.store, clinvar=tmp_path / "nope.vcf")


def _cli(store: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "CARELENS_STORE": str(store)}
    cmd = [sys.executable, "-m", "carelens.cli", "run", "--format", "json", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_then_rerun_gives_the_tables_of_an_uninterrupted_run(cohort: Cohort, tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    shutil.copytree(cohort.store, whole)
    args = ["--clinvar", str(cohort.clinvar), "--secret-file", str(cohort.secret), "--batch-size", "1"]
    out, err = _cli(whole, *args).communicate(timeout=300)
    uninterrupted = json.loads(out)
    manifests = cohort.store / "lake" / "run" / "_manifest"
    proc = _cli(cohort.store, *args)
    deadline = time.monotonic() + 300
    while not (manifests.is_dir() and any(manifests.glob("*.json"))) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # after the first batch's commit, during the next
    proc.communicate()
    done = len(list(manifests.glob("*.json")))
    rerun = _cli(cohort.store, *args)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    report = json.loads(out)
    assert report["processed"] == 3 - done and report["unchanged"] == done
    assert report["outputs_digest"] == uninterrupted["outputs_digest"]
    assert "patients done" in err  # progress on stderr, JSON on stdout


@pytest.mark.slow
def test_ray_gives_the_same_outputs(cohort: Cohort, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    local = tmp_path / "local"
    shutil.copytree(cohort.store, local)
    expected = run(local, clinvar=cohort.clinvar, secret_file=cohort.secret).as_dict()
    got = _run(cohort, engine="ray", workers=2, batch_size=1)
    assert got["engine"] == "ray" and got["processed"] == 3 and got["failed"] == []
    assert got["outputs_digest"] == expected["outputs_digest"]
    assert _run(cohort, engine="ray", workers=2)["processed"] == 0


def test_the_run_takes_the_plan_a_batch_at_a_time(cohort: Cohort, monkeypatch: pytest.MonkeyPatch) -> None:
    # the plan is not a list of every patient: each batch is read from the plan file when the worker
    # is ready for it, so the one being processed is the newest one read
    from carelens.run import inputs
    from carelens.run.worker import Worker

    real_batches, real_process = inputs.Plan.batches, Worker.process
    read: list[list[str]] = []
    processed: list[list[str]] = []

    def batches(self: inputs.Plan, size: int, limit: int | None = None):  # type: ignore[no-untyped-def]
        for batch in real_batches(self, size, limit):
            read.append([p.patient_id for p in batch])
            yield batch

    def process(self: Worker, patients: list) -> list:  # type: ignore[type-arg]
        processed.append([p.patient_id for p in patients])
        assert processed == read  # nothing read ahead of the worker
        return real_process(self, patients)

    monkeypatch.setattr(inputs.Plan, "batches", batches)
    monkeypatch.setattr(Worker, "process", process)
    report = _run(cohort, batch_size=1)
    assert report["processed"] == 3 and len(processed) == 3
    assert sorted(p for batch in processed for p in batch) == _patients(cohort.store)
    assert not (OutputStore(cohort.store).root / "_plan.parquet").exists()  # the plan file goes with the run


def test_the_state_is_a_table_joined_by_the_plan(cohort: Cohort, tmp_path: Path) -> None:
    from carelens.run.inputs import plan
    from carelens.run.worker import RunConfig, model_versions

    first = _run(cohort, batch_size=2)
    outputs = OutputStore(cohort.store)
    state = outputs.state()
    assert sorted(state) == _patients(cohort.store)
    assert all(e["status"] == "done" and e["reason"] is None and len(e["input_hash"]) == 64 for e in state.values())
    assert all("patients" not in m and "state" in m["parts"] for m in outputs.manifests())  # no patient list inside
    # the plan file: every patient with its input hash; none due against this state, each due without it
    versions = model_versions(RunConfig(cohort.store, cohort.clinvar, cohort.secret))
    current = outputs.current_sql("state", "patient_id, input_hash, status")
    done = plan(Lake(cohort.store), versions, current, tmp_path / "plan.parquet")
    assert (done.patients, done.due, list(done.batches(2))) == (3, 0, [])
    fresh = plan(Lake(cohort.store), versions, OutputStore(tmp_path / "none").current_sql("state"),
                 tmp_path / "plan.parquet")  # fmt: skip
    due = [p for batch in fresh.batches(2) for p in batch]
    assert fresh.due == 3
    assert {p.patient_id: p.input_hash for p in due} == {pid: e["input_hash"] for pid, e in state.items()}
    assert [p.patient_id for batch in fresh.batches(2, limit=2) for p in batch] == sorted(state)[:2]
    assert first["outputs_digest"] == _run(cohort)["outputs_digest"]


def _to_previous_format(outputs: OutputStore) -> None:
    """The manifests as the version before the state table wrote them: each batch's patients listed
    inside, no state part."""
    for m in outputs.manifests():
        entries = outputs.entries(m)
        (outputs.store / m["parts"].pop("state")).unlink()
        outputs._write_manifest({**m, "patients": entries})
    outputs.folder("state").rmdir()


def test_a_store_of_the_previous_version_is_read_then_converted(cohort: Cohort, tmp_path: Path) -> None:
    first = _run(cohort, batch_size=1, limit=2)  # two batches ...
    compacted = _run(cohort, batch_size=1, compact=True)  # ... merged with the third under one manifest
    patient = _edit_one_patient(cohort, tmp_path, "reviewed")
    last = _run(cohort, batch_size=1)  # and one batch after it
    assert first["processed"] == 2 and compacted["processed"] == 1 and last["processed"] == 1
    outputs = OutputStore(cohort.store)
    state = outputs.state()
    assert len(outputs.manifests()) == 2
    _to_previous_format(outputs)
    assert all(m["patients"] for m in outputs.manifests())
    # read as it is: the workspace, and the state (converted by the next run)
    hashes = {pid: LakeData(cohort.store).input_hash(pid) for pid in state}
    assert hashes == {pid: e["input_hash"] for pid, e in state.items()} and hashes[patient] != "not-run"
    # a run killed while converting left a state part that no manifest names
    outputs.folder("state").mkdir()
    seq = outputs.manifests()[0]["seq"]
    (outputs.folder("state") / f"part-{seq:08d}.parquet").write_bytes(b"left by a killed conversion")
    again = _run(cohort)
    assert again["processed"] == 0 and again["unchanged"] == 3
    assert again["outputs_digest"] == last["outputs_digest"]
    assert outputs.state() == state and len(outputs.manifests()) == 2
    assert all("patients" not in m and "state" in m["parts"] for m in outputs.manifests())
    assert {pid: LakeData(cohort.store).input_hash(pid) for pid in state} == hashes


def test_ray_takes_a_batch_only_when_an_actor_has_room() -> None:
    # the driver's window on Ray: IN_FLIGHT batches queued on each actor, one more taken as one comes back
    from types import SimpleNamespace

    from carelens.run import engine

    taken: list[int] = []

    def batches():  # type: ignore[no-untyped-def]
        for i in range(10):
            taken.append(i)
            yield [i]

    class Ref:  # what ``actor.process.remote`` returns: the batch it will give back
        def __init__(self, batch: list[int]) -> None:
            self.batch = batch

    pool = engine._RayPool.__new__(engine._RayPool)
    pool.ray = SimpleNamespace(wait=lambda refs, num_returns: (refs[:1], refs[1:]), get=lambda ref: ref.batch)
    pool.actors = [SimpleNamespace(process=SimpleNamespace(remote=Ref))] * 2
    got: list[list[int]] = []
    for result in pool.map(batches()):
        assert len(taken) == min(10, engine.IN_FLIGHT * 2 + len(got) + 1)
        got.append(result)
    assert sorted(got) == [[i] for i in range(10)]


def test_embedded_ray_workers_run_at_the_commands_priority() -> None:
    """Ray lowers its workers' priority by 15 nice levels by default; an embedded Ray's workers keep this process's."""
    ray = pytest.importorskip("ray")
    import os

    from carelens.run.engine import start_ray

    start_ray(ray, None, 1)
    try:
        niceness = ray.get(ray.remote(lambda: os.nice(0)).remote())
    finally:
        ray.shutdown()
    assert niceness == os.nice(0)


def test_image_reads_keep_their_temporary_files_in_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A heatmap or DICOM SR shows the patient, and moving a heatmap into place must not cross file
    systems (a separate /tmp made every read fail); what a killed run left is removed by the next."""
    from carelens.imaging import predict, reports
    from carelens.run.worker import PatientResult, RunConfig, Worker

    store, written = tmp_path / "store", []

    class Read:
        heatmap: str | None = None

        def to_dict(self) -> dict:
            return {"finding": "no opacity", "heatmap": self.heatmap}

    def fake_predict(package: object, path: str, out_dir: Path) -> Read:
        read = Read()
        read.heatmap = str(out_dir / "heatmap.png")
        Path(read.heatmap).write_bytes(b"png")
        written.append(out_dir)
        return read

    def fake_sr(read: Read, source: Path, package: object, out: Path) -> Path:
        out.write_bytes(b"DICM")
        written.append(out.parent)
        return out

    monkeypatch.setattr(predict, "predict_image", fake_predict)
    monkeypatch.setattr(reports, "write_dicom_sr", fake_sr)
    monkeypatch.setattr(reports, "fhir_diagnostic_report", lambda read, package: {})
    left = OutputStore(store).scratch / "tmp-of-a-killed-run" / "sr.dcm"
    left.parent.mkdir(parents=True)
    left.write_bytes(b"DICM")
    with OutputStore(store).writer():
        assert not left.exists()  # removed under the run's lock, before any worker starts
        worker = object.__new__(Worker)
        worker.config, worker.versions, worker.package = RunConfig(store), {"image": "model@1"}, None
        result = PatientResult("p1", "h1")
        worker._read_images(result, [("1.2.3", str(tmp_path / "i.dcm"))])
    assert [r[2] for r in result.rows] == ["image_read", "image_fhir", "image_sr"]
    assert len(written) == 2 and all(store in p.parents for p in written)
    heatmap = orjson.loads(result.rows[0][6])["heatmap"]
    assert (store / "outputs" / "imaging" / heatmap).read_bytes() == b"png"
    assert not OutputStore(store).scratch.exists()


def _nested(levels: int, name: str) -> dict:
    """A Patient whose extensions nest ``levels`` (even) objects and arrays below it, a name at the bottom."""
    inner: dict = {"url": "http://example.org/e", "valueString": name}
    for _ in range(levels // 2 - 1):
        inner = {"url": "http://example.org/e", "extension": [inner]}
    return {"resourceType": "Patient", "id": f"n{levels}", "name": [{"family": "Quixley"}], "extension": [inner]}


def test_a_resource_too_deep_for_later_steps_is_quarantined_at_ingest(tmp_path: Path) -> None:
    """Extensions 450 deep were ingested (orjson reads 1,024 levels), then ``run`` failed the patient's
    summary with "internal error (TypeError)" (orjson writes 255) and withheld its research copy (the
    de-identifier walks 128): the ingest now refuses what a later step cannot walk."""
    from carelens.core.fhir import MAX_NESTING, nested_deeper_than
    from carelens.ingest import ingest
    from carelens.privacy import write_secret

    deep, edge = _nested(450, "Zebulon Quixley"), _nested(MAX_NESTING, "Zebulon Quixley")
    assert nested_deeper_than(_nested(MAX_NESTING + 2, "x")) and not nested_deeper_than(edge)
    plain = {"resourceType": "Patient", "id": "plain", "name": [{"family": "Smith"}], "gender": "female"}
    files = tmp_path / "in"
    files.mkdir()
    entries = [{"resource": r} for r in (deep, plain, edge, _nested(MAX_NESTING + 2, "x"))]
    (files / "b.json").write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}))
    (files / "l.ndjson").write_text(json.dumps(deep | {"id": "line"}) + "\n" + json.dumps(plain | {"id": "p2"}))
    store = tmp_path / "store"
    result = ingest([files], store)
    assert sorted((Path(q.source).name, q.where, q.reason) for q in result.quarantined) == [
        ("b.json", "entry 0", "JSON nested too deeply (more than 128 levels)"),
        ("b.json", "entry 3", "JSON nested too deeply (more than 128 levels)"),
        ("l.ndjson", "line 1", "JSON nested too deeply (more than 128 levels)"),
    ]
    assert _patients(store) == ["n128", "p2", "plain"]
    write_secret(tmp_path / "site.key")
    report = run(store, secret_file=tmp_path / "site.key").as_dict()
    assert report["processed"] == 3 and report["failed"] == []
