"""``carelens demo``: every stage runs on the generated cohort, reports what it did, and a
failing or missing stage does not stop the others."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from carelens.demo import pipeline
from carelens.demo.pipeline import DemoOptions, run_demo
from carelens.server.lake_data import LakeData


def _demo(tmp_path: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CARELENS_STORE": str(tmp_path / "store")}
    env.pop("CARELENS_DB_URL", None)
    cmd = [sys.executable, "-m", "carelens.cli", "demo", "--out", str(tmp_path / "cohort"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False)


def test_generate_only(tmp_path: Path) -> None:
    proc = _demo(tmp_path, "--generate-only", "--patients", "1", "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert list(summary["stages"]) == ["generate"]
    assert summary["stages"]["generate"]["status"] == "done" and summary["stages"]["generate"]["patients"] == 1
    assert (tmp_path / "cohort" / "planted.json").is_file()
    assert "demo: [1/1] generate" in proc.stderr


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--patients", "0"], "--patients"),
        (["--skip", "nope"], "unknown stage"),
        (["--image-epochs", "0"], "--image-epochs"),
        (["--image-budget", "-1"], "--image-budget"),
    ],
)
def test_bad_usage_is_one_line(tmp_path: Path, args: list[str], reason: str) -> None:
    proc = _demo(tmp_path, "--no-serve", *args)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:") and reason in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_demo_runs_every_stage_but_the_image_model(tmp_path: Path, shared_data: Path) -> None:
    proc = _demo(tmp_path, "--no-serve", "--patients", "2", "--skip", "imaging")
    assert proc.returncode == 0, proc.stderr
    stages = json.loads(proc.stdout)["stages"]
    planted = json.loads((tmp_path / "cohort" / "planted.json").read_text())
    assert stages["ingest"]["status"] == "done" and stages["ingest"]["ingested"]["Patient"] == 2
    assert stages["ingest"]["quarantined"] == 0
    records = sum(g["positions"] for p in planted["patients"] for g in p["pgx"])
    records += sum(len(p["pathogenic_variants"]) for p in planted["patients"])
    assert stages["ingest"]["ingested"]["variants"] == records  # the patients' VCFs, not the ClinVar extract
    assert stages["ingest"]["ingested"]["dicom"] == sum(len(p["images"]) for p in planted["patients"])
    assert stages["ingest"]["ingested"]["notes"] == sum(len(p["notes"]) for p in planted["patients"])
    summarize = stages["summarize"]
    assert summarize["status"] == "done"
    assert summarize["found_active_problems"] == summarize["planted_active_problems"] > 0
    assert summarize["mentions_listed_as_problems"] == 0
    genomics = stages["genomics"]
    assert genomics["status"] == "done" and genomics["concordant_diplotypes"] == genomics["planted_diplotypes"] == 10
    acmg = sum(v["acmg"] for p in planted["patients"] for v in p["pathogenic_variants"])
    assert genomics["reportable_findings"] == genomics["planted_acmg_variants"] == acmg == 1
    assert stages["imaging"]["status"] == "skipped" and stages["models"]["status"] == "skipped"
    assert stages["run"]["status"] == "done" and stages["run"]["processed"] == 2 and not stages["run"]["failed"]
    assert stages["users"]["created"] == ["clinician", "researcher", "admin"]
    deid = stages["deidentify"]
    assert deid["status"] == "done", deid
    assert deid["canary_leaks"] == 0 and deid["audit_leaks"] == 0 and deid["audit_files_scanned"] > 0
    assert deid["written"]["notes"] == sum(len(p["notes"]) for p in planted["patients"])
    assert deid["research_lake"]["ingested"]["Patient"] == 2 and deid["research_lake"]["quarantined"] == 0
    assert deid["written"]["dicom"] + deid["quarantined"] >= sum(len(p["images"]) for p in planted["patients"])
    research = tmp_path / "store" / "research"
    names = " ".join(str(p.relative_to(research)) for p in research.rglob("*"))
    assert all(p["patient_id"] not in names and p["mrn"] not in names for p in planted["patients"])
    # the workspace finds the patients and the run's outputs in the lake (no separate folder)
    store = tmp_path / "store"
    data = LakeData(store)
    assert not (store / "fhir").exists() and not (store / "outputs").exists()
    assert {r.id for r in data.search(limit=10)[0]} == {p["patient_id"] for p in planted["patients"]}
    for p in planted["patients"]:
        assert data.pgx(p["patient_id"]) and data.summary(p["patient_id"])["patient"] == p["patient_id"]
    # passwords go to the terminal only, never into the JSON summary
    assert "one-time password" in proc.stderr and "password" not in proc.stdout
    # a second run finds the users and ingests nothing new
    again = _demo(tmp_path, "--no-serve", "--patients", "2", "--skip", "imaging", "--skip", "summarize")
    assert again.returncode == 0, again.stderr
    stages = json.loads(again.stdout)["stages"]
    assert stages["users"]["existing"] == ["clinician", "researcher", "admin"]
    assert sum(stages["ingest"]["ingested"].values()) == 0 and stages["ingest"]["unchanged"] > 0
    assert stages["run"]["processed"] == 0 and stages["run"]["unchanged"] == 2


@pytest.mark.slow
def test_demo_trains_and_registers_the_image_model(tmp_path: Path) -> None:
    proc = _demo(tmp_path, "--no-serve", "--patients", "1", "--image-epochs", "1", "--skip", "summarize",
                 "--skip", "genomics", "--skip", "deidentify")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    stages = json.loads(proc.stdout)["stages"]
    planted = json.loads((tmp_path / "cohort" / "planted.json").read_text())["patients"][0]
    assert stages["imaging"]["status"] == "done", stages["imaging"]
    assert stages["run"]["status"] == "done" and stages["run"]["processed"] == 1
    reads = stages["reads"]
    assert reads["images_read"] + reads["images_refused"] == len(planted["images"])
    data = LakeData(tmp_path / "store")
    rows = data.images(planted["patient_id"])  # what the workspace shows
    assert len(rows) == reads["images_read"] > 0
    for row in rows:  # a heatmap shown is a file the workspace can serve; one withheld says why
        assert (row["heatmap"] and data.outputs.file(row["heatmap"])) or row["heatmap_withheld"]
    assert all(r["finding"] in ("opacity", "no opacity") and 0 <= r["probability"] <= 1 for r in rows)
    assert stages["models"]["status"] == "done" and stages["models"]["registered"]


def test_a_failing_stage_does_not_stop_the_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def boom(run: pipeline.DemoRun) -> dict:
        raise RuntimeError("Jane Doe MRN 12345678")  # a message that could carry PHI

    def missing(run: pipeline.DemoRun) -> dict:
        raise pipeline.StageUnavailable("carelens.example has no thing")

    def fine(run: pipeline.DemoRun) -> dict:
        calls.append("fine")
        return {"ok": 1}

    monkeypatch.setattr(pipeline, "STAGES", [("generate", fine), ("a", boom), ("b", missing), ("c", fine)])
    summary = run_demo(DemoOptions(out=tmp_path / "c", store=tmp_path / "s"))
    stages = summary["stages"]
    assert stages["a"]["status"] == "failed" and stages["a"]["reason"] == "internal error (RuntimeError)"
    assert stages["b"]["status"] == "skipped" and "no thing" in stages["b"]["reason"]
    assert stages["c"]["status"] == "done" and calls == ["fine", "fine"]
    assert "Jane" not in json.dumps(summary)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_demo_serves_the_workspace(tmp_path: Path) -> None:
    import time

    import httpx

    port = _free_port()
    env = {**os.environ, "CARELENS_STORE": str(tmp_path / "store")}
    env.pop("CARELENS_DB_URL", None)
    skips = [a for s in ("deidentify", "summarize", "imaging", "genomics", "models") for a in ("--skip", s)]
    cmd = [sys.executable, "-m", "carelens.cli", "demo", "--patients", "1", "--out", str(tmp_path / "cohort"),
           "--port", str(port), *skips]  # fmt: skip
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while True:
            assert server.poll() is None, "carelens demo exited instead of serving"
            try:
                if httpx.get(f"{base}/api/patients", timeout=2).status_code == 401:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the workspace did not come up"
            time.sleep(1)
        token = subprocess.run([sys.executable, "-m", "carelens.cli", "users", "token", "clinician"], env=env,
                               capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
        planted = json.loads((tmp_path / "cohort" / "planted.json").read_text())["patients"][0]
        listed = httpx.get(f"{base}/api/patients", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert listed.status_code == 200
        assert planted["patient_id"] in listed.text
    finally:
        server.terminate()
        server.wait(timeout=30)
