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
