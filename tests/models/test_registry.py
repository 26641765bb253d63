"""The model registry: content-addressed immutable entries, appended records, HTI-1 export, HTML card."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from carelens.models import HTI1_KEYS, Registry

CARD = {
    "developer": "carelens project, carelens@example.org",
    "intended_use": "flag chest radiographs likely to show pneumonia for prioritised reading",
    "intended_decision_role": "informs; the radiologist decides",
}


def make_package(folder: Path, weights: bytes = b"weights-v1", **extra: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "weights.pt").write_bytes(weights)
    meta = {
        "id": "pneumonia-cnn",
        "version": "1",
        "arch": "cnn",
        "labels": ["normal", "pneumonia"],
        "metrics": {"auc": {"value": 0.93, "ci": [0.90, 0.95], "n": 624}, "ece": 0.04},
        "subgroups": [
            {"group": "sex", "value": "F", "n": 300, "auc": 0.92, "sensitivity": 0.9, "specificity": 0.8},
            {"group": "sex", "value": "X", "n": None, "suppressed": True},
        ],
        "lineage": {"cohort_definition": "PneumoniaMNIST train split, all images", "sites": [{"site": "local"}]},
        "card": CARD,
        "trained_at": "2026-11-28T04:00:00+00:00",
        **extra,
    }
    (folder / "model.json").write_text(json.dumps(meta))
    return folder


def test_register_is_content_addressed_immutable_and_idempotent(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "store")
    pkg = make_package(tmp_path / "pkg")
    first = reg.register(pkg)
    again = reg.register(pkg)
    assert first.id == again.id and len(first.id) == 16
    assert reg.ids() == [first.id]
    entry_file = tmp_path / "store" / "models" / first.id / "entry.json"
    assert not os.stat(entry_file).st_mode & stat.S_IWUSR
    other = reg.register(make_package(tmp_path / "pkg2", weights=b"weights-v2"))
    assert other.id != first.id
    assert first.metrics["auc"].ci_low == pytest.approx(0.90)
    assert first.code_version["carelens"]


def test_records_append_without_touching_the_entry(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "store")
    entry = reg.register(make_package(tmp_path / "pkg"))
    entry_file = tmp_path / "store" / "models" / entry.id / "entry.json"
    before = entry_file.read_bytes()
    r1 = reg.append_record(entry.id, "validation", {"sites": [], "process": "test"})
    r2 = reg.append_record(entry.id[:8], "note", {"text": "re-checked"})
    assert (r1["seq"], r2["seq"]) == (1, 2)
    assert r2["prev_sha256"] == r1["sha256"]
    assert entry_file.read_bytes() == before
    assert reg.verify(entry.id) == []
    record_file = next((tmp_path / "store" / "models" / entry.id / "records").glob("0001-*.json"))
    os.chmod(record_file, 0o644)
    tampered = json.loads(record_file.read_text())
    tampered["content"]["process"] = "edited later"
    record_file.write_text(json.dumps(tampered))
    assert any("record 1" in p for p in reg.verify(entry.id))


def test_export_lists_all_31_hti1_attributes_and_invents_none(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "store")
    entry = reg.register(make_package(tmp_path / "pkg"))
    data = reg.export(entry.id)
    assert list(data["hti1"]) == list(HTI1_KEYS) and len(data["hti1"]) == 31
    assert data["hti1"]["intended_use"] == CARD["intended_use"]
    assert "0.930" in data["hti1"]["internal_validity"] and "0.900-0.950" in data["hti1"]["internal_validity"]
    for key in ("funding_source", "intended_users", "external_validity", "update_process"):
        assert data["hti1"][key] is None and key in data["missing"]
    assert set(data["missing"]) == {k for k, v in data["hti1"].items() if v is None}
    reg.append_record(
        entry.id,
        "validation",
        {
            "process": "federated",
            "sites": [{"site": "north", "n": 120, "metrics": {"auc": {"value": 0.88}}, "subgroups": []}],
        },
    )
    after = reg.export(entry.id)
    assert "north" in after["hti1"]["external_validity"] and "external_validity" not in after["missing"]


def _carelens(*args: str, store: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CARELENS_STORE": str(store)}
    return subprocess.run(
        [sys.executable, "-m", "carelens.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_cli_list_show_export(tmp_path: Path) -> None:
    store = tmp_path / "store"
    entry = Registry(store).register(make_package(tmp_path / "pkg"))
    listed = _carelens("models", "list", "--format", "json", store=store)
    assert listed.returncode == 0, listed.stderr
    assert [m["id"] for m in json.loads(listed.stdout)["models"]] == [entry.id]
    exported = _carelens("models", "export", entry.id, "--format", "json", store=store)
    assert len(json.loads(exported.stdout)["hti1"]) == 31
    html_path = tmp_path / "card.html"
    html = _carelens("models", "export", "pneumonia-cnn", "--format", "html", "--out", str(html_path), store=store)
    assert html.returncode == 0, html.stderr
    page = html_path.read_text()
    assert "Nutrition label" in page and "data:image/png;base64," in page
    n_missing = len(json.loads(exported.stdout)["missing"])
    assert "suppressed (fewer than 11 patients)" in page and page.count('class="missing">missing') == n_missing > 0
    missing = _carelens("models", "show", "nope", store=store)
    assert missing.returncode == 2 and missing.stderr.strip().startswith("error: no model 'nope'")


def test_register_rejects_a_folder_that_is_not_a_package(tmp_path: Path) -> None:
    from carelens.core.errors import InputError

    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a model package"):
        Registry(tmp_path / "store").register(tmp_path / "empty")


def test_imaging_package_metrics_and_card_are_read(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "weights.pt").write_bytes(b"imaging-weights")
    meta = {
        "name": "carelens-imaging-cnn",
        "version": "1",
        "arch": "cnn",
        "labels": ["normal", "pneumonia"],
        "metrics": {"validation": {"auc": 0.95, "ece": 0.03, "n": 524, "ci": {"auc": [0.93, 0.97]}}},
        "training": {"data": "pneumoniamnist.npz", "counts": {"train": 3882, "val": 524}},
        "card": {"intended_use": "decision support", "limitations": ["low resolution"]},
    }
    (pkg / "model.json").write_text(json.dumps(meta))
    reg = Registry(tmp_path / "store")
    entry = reg.register(pkg)
    assert entry.metrics["auc"].value == pytest.approx(0.95) and entry.metrics["auc"].ci_high == pytest.approx(0.97)
    assert entry.metrics["auc"].n == 524
    assert entry.lineage["sites"][0]["counts"]["train"] == 3882
    hti1 = reg.export(entry.id)["hti1"]
    assert hti1["known_risks_and_limitations"] == ["low resolution"] and hti1["funding_source"] is None


def test_cli_package_writes_a_registered_image_model_as_a_package(tmp_path: Path) -> None:
    from carelens.core.ids import content_hash

    store = tmp_path / "store"
    prep = {"image_size": 28, "channels": 1}
    entry = Registry(store).register(make_package(tmp_path / "pkg", b"weights-v2", preprocessing=prep))
    out = tmp_path / "out"
    done = _carelens("models", "package", entry.id, "--out", str(out), store=store)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"out": str(out)}
    meta = json.loads((out / "model.json").read_text())
    assert (out / "weights.pt").read_bytes() == b"weights-v2" and meta["id"] == content_hash(b"weights-v2")
    assert meta["preprocessing"] == prep and meta["registry_id"] == entry.id
    assert meta["labels"] == ["normal", "pneumonia"]
    plain = Registry(store).register(make_package(tmp_path / "plain", b"weights-v3"))
    refused = _carelens("models", "package", plain.id, "--out", str(tmp_path / "out2"), store=store)
    assert refused.returncode != 0 and "no preprocessing block" in refused.stderr
    assert not (tmp_path / "out2").exists()
