"""The workspace marks an image model "not validated at this site" until a local validation at this
site has passed; every read from such a model carries the mark (issue #17)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from carelens.models import Registry
from tests.server.conftest import Workspace, make_workspace
from tests.server.fixture_store import IMAGE_MODEL, PID, WEIGHTS
from tests.server.pg import scratch_db_url

MARK = "not validated at this site"


@pytest.fixture
def at_site(tmp_path: Path) -> Iterator[Workspace]:
    with scratch_db_url("sqlite", tmp_path, None) as url:
        yield make_workspace(url, tmp_path / "store", site="st-marys")


def _marks(ws: Workspace) -> int:
    page = ws.clients["clinician"].get(f"/patients/{PID}")
    assert page.status_code == 200
    return len(re.findall(r'<div class="site-mark"[^>]*>' + MARK, page.text))


def _validate(ws: Workspace, site: str, passed: bool) -> None:
    registry = Registry(ws.store)
    (model_id,) = [i for i in registry.ids() if (registry.root / i / "weights.pt").read_bytes() == WEIGHTS]
    failed = [] if passed else ["AUC 0.612 < 0.8"]
    registry.append_record(model_id, "validation", {"sites": [{"site": site, "passed": passed, "failed": failed}]})


def test_reads_carry_the_mark_until_a_local_validation_here_passes(at_site: Workspace) -> None:
    ws = at_site
    assert _marks(ws) == 2  # both reads of the fixture's image model: no validation anywhere yet
    card = ws.clients["clinician"].get(f"/models/{IMAGE_MODEL}")
    assert MARK in card.text and "no local validation at st-marys" in card.text

    _validate(ws, "another-hospital", passed=True)  # passing elsewhere does not validate it here
    assert _marks(ws) == 2
    _validate(ws, "st-marys", passed=False)
    assert _marks(ws) == 2
    assert "did not pass: AUC 0.612" in ws.clients["clinician"].get(f"/models/{IMAGE_MODEL}").text

    _validate(ws, "st-marys", passed=True)
    assert _marks(ws) == 0
    card = ws.clients["clinician"].get(f"/models/{IMAGE_MODEL}")
    assert MARK not in card.text and "Validated at this site (st-marys)" in card.text

    _validate(ws, "st-marys", passed=False)  # the newest validation decides: a failed re-check brings it back
    assert _marks(ws) == 2


def test_a_workspace_without_a_site_name_marks_every_read(ws_sqlite: Workspace) -> None:
    _validate(ws_sqlite, "st-marys", passed=True)
    assert _marks(ws_sqlite) == 2
    assert "names no site" in ws_sqlite.clients["clinician"].get(f"/models/{IMAGE_MODEL}").text


def test_a_read_from_a_model_the_registry_does_not_hold_is_marked(tmp_path: Path) -> None:
    with scratch_db_url("sqlite", tmp_path, None) as url:
        ws = make_workspace(url, tmp_path / "store", site="st-marys")
        registry = Registry(ws.store)
        for model_id in registry.ids():  # an unregistered model: no validation can be found for it
            import shutil

            shutil.rmtree(registry.root / model_id)
        assert _marks(ws) == 2


def _image_items(ws: Workspace) -> list[str]:
    page = ws.clients["clinician"].get(f"/patients/{PID}").text
    return re.findall(r'data-item="([^"]+)"[^>]*>\s*<div class="item-body">\s*(?:<span[^>]*>[^<]*</span>)?\s*'
                      r'<div class="item-text">\s*(?:uncertain: refer|normal)', page)  # fmt: skip


def test_the_card_reports_validity_and_fairness_monitoring_from_clinician_feedback(at_site: Workspace) -> None:
    ws = at_site
    card = ws.clients["researcher"].get(f"/api/models/{IMAGE_MODEL}", headers=ws.bearer("researcher")).json()
    assert "st-marys: no clinician decisions" in card["hti1"]["validity_monitoring"]
    reads = _image_items(ws)
    assert len(reads) == 2
    csrf = ws.csrf("clinician", "/patients")
    for key, action in zip(reads, ("accept", "reject"), strict=True):
        data = {"item": key, "action": action, "reason": "not on the film" * (action == "reject"), "csrf_token": csrf}
        assert ws.clients["clinician"].post(f"/patients/{PID}/decisions", data=data).status_code == 303
    card = ws.clients["researcher"].get(f"/api/models/{IMAGE_MODEL}", headers=ws.bearer("researcher")).json()
    validity, fairness = card["hti1"]["validity_monitoring"], card["hti1"]["fairness_monitoring"]
    assert "st-marys: 1 of 2 outputs overridden (50.0%" in validity and "1 patients" in validity
    assert "suppressed (fewer than 11 patients)" in fairness  # one patient: no subgroup rate is shown
    assert "validity_monitoring" not in card["missing"] and "fairness_monitoring" not in card["missing"]
    # the same figures recorded in the registry by `carelens models monitor` (what `models export` reads)
    from typer.testing import CliRunner

    from carelens.cli import app

    env = {"CARELENS_DB_URL": ws.engine.url.render_as_string(hide_password=False), "CARELENS_SITE": "st-marys"}
    result = CliRunner().invoke(app, ["models", "monitor", IMAGE_MODEL, "--store", str(ws.store)], env=env)
    assert result.exit_code == 0, result.output
    (site,) = json.loads(result.stdout)["content"]["sites"]
    assert (site["site"], site["decisions"], site["overridden"]) == ("st-marys", 2, 1)
    exported = Registry(ws.store).export(Registry(ws.store).ids()[0])
    assert "st-marys: 1 of 2 outputs overridden" in exported["hti1"]["validity_monitoring"]


def test_a_cds_card_for_a_read_carries_the_mark(at_site: Workspace) -> None:
    hook = {"hook": "patient-view", "hookInstance": "h-site", "context": {"patientId": PID}}
    cards = at_site.client().post("/cds-services/carelens-patient-view", json=hook, headers=at_site.bearer("clinician"))
    (image,) = [c for c in cards.json()["cards"] if c["source"]["topic"]["code"] == "image"]
    assert MARK in image["summary"] and "no local validation at st-marys" in image["detail"]
    _validate(at_site, "st-marys", passed=True)
    cards = at_site.client().post("/cds-services/carelens-patient-view", json=hook, headers=at_site.bearer("clinician"))
    (image,) = [c for c in cards.json()["cards"] if c["source"]["topic"]["code"] == "image"]
    assert MARK not in image["summary"] + image["detail"]
