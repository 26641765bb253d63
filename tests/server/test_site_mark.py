"""The workspace marks an image model "not validated at this site" until a local validation at this
site has passed; every read from such a model carries the mark (issue #17)."""

from __future__ import annotations

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
