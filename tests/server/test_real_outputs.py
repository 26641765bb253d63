"""The workspace on real carelens outputs: a Synthea bundle summarised by
``carelens.record.summarize`` and a PGx report from ``carelens.genomics.pgx_report``; every
citation the summariser makes must open its evidence."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from carelens.server import ServerSettings, create_app
from tests.server.conftest import Workspace, login, make_workspace
from tests.server.pg import scratch_db_url


@pytest.mark.slow
def test_real_summary_and_pgx_on_the_patient_page(shared_data: Path, tmp_path: Path) -> None:
    genomics = pytest.importorskip("carelens.genomics")
    bundle = sorted((shared_data / "fhir" / "synthea-r4").glob("*.json"))[0]
    vcf = shared_data / "genomics" / "pharmcat" / "test-vcfs" / "haplotype" / "cyp2c19" / "s1s2.vcf"
    with scratch_db_url("sqlite", tmp_path, None) as url:
        ws: Workspace = make_workspace(url, tmp_path / "store")
        store = ws.store
        (store / "fhir" / "bundle.json").unlink()
        (store / "fhir" / bundle.name).symlink_to(bundle)
        app = create_app(ServerSettings(store=store, db_url=url))  # the default summariser: carelens.record
        client = TestClient(app, follow_redirects=False)
        login(client, "clinician")
        (pid,) = [p["id"] for p in client.get("/api/patients", headers=ws.bearer("clinician")).json()["patients"]]
        report = genomics.pgx_report(vcf).model_dump(mode="json")
        (store / "outputs" / "genomics" / f"{pid}.pgx.json").write_text(json.dumps(report))

        summary = client.get(f"/api/patients/{pid}/summary", headers=ws.bearer("clinician")).json()
        assert summary["patient"] == pid and summary["sections"]
        page = client.get(f"/patients/{pid}")
        assert page.status_code == 200
        items = re.findall(r'name="item" value="([^"]+)"', page.text)
        assert items and page.text.count('class="model-card"') == len(items)
        assert "*1/*2" in page.text and "Intermediate Metabolizer" in page.text
        links = [unescape(u) for u in re.findall(r'class="citation" href="([^"]+)"', page.text)]
        cited = {c["resource"] for s in summary["sections"] for i in s["items"] for c in i["citations"]}
        assert links and len(links) >= len(cited) > 0
        for url_ in sorted(set(links))[:40]:
            r = client.get(url_)
            assert r.status_code == 200, url_


def _attention(page: str) -> str:
    return page[page.index('id="needs-attention"') : page.index('id="summary"')]


@pytest.mark.slow
def test_real_pgx_results_that_bear_on_the_patients_medications_need_attention(
    shared_data: Path, tmp_path: Path
) -> None:
    """A Synthea patient on clopidogrel and simvastatin, with real ``genome pgx`` reports of
    PharmCAT test VCFs: each non-normal result flags its own drug, with the order, genotype and CPIC text."""
    genomics = pytest.importorskip("carelens.genomics")
    bundle = shared_data / "fhir" / "synthea-r4" / "Cruz_Halvorson_4550efe0-f978-4387-a384-486d859fbf4c.json"
    vcfs = shared_data / "genomics" / "pharmcat" / "test-vcfs" / "haplotype"
    with scratch_db_url("sqlite", tmp_path, None) as url:
        ws: Workspace = make_workspace(url, tmp_path / "store")
        store = ws.store
        (store / "fhir" / "bundle.json").unlink()
        (store / "fhir" / bundle.name).symlink_to(bundle)
        client = TestClient(create_app(ServerSettings(store=store, db_url=url)), follow_redirects=False)
        login(client, "clinician")
        (pid,) = [p["id"] for p in client.get("/api/patients", headers=ws.bearer("clinician")).json()["patients"]]
        saved = store / "outputs" / "genomics" / f"{pid}.pgx.json"
        flagged: dict[str, str] = {}
        reports = {}
        for name in ("cyp2c19/s1s2.vcf", "SLCO1B1/s1s15.vcf", "cyp2c19/s1s1.vcf"):
            reports[name] = genomics.pgx_report(vcfs / name).model_dump(mode="json")
            saved.write_text(json.dumps(reports[name]))
            flagged[name] = unescape(_attention(client.get(f"/patients/{pid}").text))

        clopidogrel = flagged["cyp2c19/s1s2.vcf"]
        assert "clopidogrel (taken: Clopidogrel 75 MG Oral Tablet" in clopidogrel
        assert "CYP2C19 *1/*2 (Intermediate Metabolizer)" in clopidogrel and "simvastatin (taken" not in clopidogrel
        clop = [d for d in reports["cyp2c19/s1s2.vcf"]["drugs"] if d["drug"] == "clopidogrel"]
        cpic = [d for d in clop if d["source"] == "CPIC"]
        assert len(cpic) == 3 and [d["source"] for d in clop if d not in cpic] == ["DPWG"]  # DPWG beside CPIC
        for rec in cpic:  # every population's recommendation, with its strength
            assert f"CPIC {rec['strength']}" in clopidogrel and rec["recommendation"][:60] in clopidogrel
        assert "/evidence?ref=MedicationRequest/b4f1f900-a0f2-4987-9c37-72c99d4a923b" in clopidogrel
        assert 'href="/models/carelens.genomics.pgx"' in clopidogrel and "The clinician decides" in clopidogrel

        simvastatin = flagged["SLCO1B1/s1s15.vcf"]
        assert "simvastatin (taken: Simvastatin 20 MG Oral Tablet" in simvastatin
        assert "SLCO1B1 *1/*15 (Decreased Function)" in simvastatin and "CPIC Strong" in simvastatin
        assert "clopidogrel (taken" not in simvastatin
        assert "(taken:" not in flagged["cyp2c19/s1s1.vcf"]  # a normal metabolizer flags nothing
        r = client.get(f"/patients/{pid}/evidence?ref=MedicationRequest/b4f1f900-a0f2-4987-9c37-72c99d4a923b")
        assert r.status_code == 200 and "Clopidogrel" in r.text
