"""Research views: counts from the research lake only, every count (totals too) under the
threshold hidden, with complementary suppression; identified labels never shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carelens.ingest.research import ingest_research
from carelens.privacy.fhir import deid_fhir_path
from carelens.privacy.keys import KeyService
from carelens.server.research import cohort, suppress


def test_suppress_hides_small_cells_and_their_complement() -> None:
    assert suppress({"a": 20, "b": 3, "c": 12}, 11, total=35) == {"a": 20, "b": "<11", "c": "<11"}
    assert suppress({"a": 20, "b": 3, "c": 4}, 11, total=27) == {"a": 20, "b": "<11", "c": "<11"}
    assert suppress({"a": 20, "b": 15}, 11, total=35) == {"a": 20, "b": 15}
    assert suppress({"x": 12, "y": 2}, 11) == {"x": 12, "y": "<11"}  # not a partition of a total


def _patient(i: int, gender: str) -> dict:
    return {"resourceType": "Patient", "id": f"p{i}", "gender": gender, "birthDate": "1960-05-01",
            "name": [{"family": f"Canaryfield{i}", "given": ["Zebulon"]}]}  # fmt: skip


def _condition(i: int, text: str) -> dict:
    return {"resourceType": "Condition", "id": f"c{i}", "subject": {"reference": f"Patient/p{i}"},
            "code": {"text": text, "coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]}}  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A research lake of 14 patients (12 female, 2 male) made by the real flow: deid, audit, ingest."""
    keys = KeyService(b"research-view-secret-0123456789abcdef")
    src = tmp_path / "src"
    src.mkdir()
    lines = [_patient(i, "female" if i < 12 else "male") for i in range(14)]
    lines += [_condition(i, "Diabetes" if i < 13 else "Diabetes of Zebulon Canaryfield13 SSN 999-12-3456")
              for i in range(14)]  # fmt: skip
    (src / "Patient.000.ndjson").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    out = tmp_path / "batch"
    assert not deid_fhir_path(src, out, keys).quarantined
    store = tmp_path / "store"
    ingest_research([out], [src], store)
    return store


def test_cohort_comes_from_the_research_lake_with_suppression(store: Path) -> None:
    view = cohort(store, 11)
    assert view["patients"] == 14
    assert view["sex"] == {"female": "<11", "male": "<11"}  # male 2 hidden, so female 12 (= 14 - 2) too
    assert view["age_band"] == {"60-69": 14}
    assert view["conditions"]["Diabetes"] == 13
    text = json.dumps(view)
    assert "Canaryfield" not in text and "999-12-3456" not in text and "Zebulon" not in text


def test_threshold_is_configurable(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARELENS_SMALL_CELL", "20")
    view = cohort(store)
    assert view["patients"] == "<20" and view["small_cell_threshold"] == 20
    assert set(view["sex"].values()) == {"<20"}
