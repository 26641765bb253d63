"""Research-zone ingest: the leak audit runs first; a batch that leaks is refused whole."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from carelens.cli import app
from carelens.core.errors import CarelensError
from carelens.privacy.fhir import deid_fhir_path
from carelens.privacy.keys import KeyService
from tests.privacy.conftest import CANARY, write_canary_source


def _invoke(args: list[str]) -> tuple[int, str]:
    """Exit code and the one line ``carelens`` prints (its main() turns errors into both)."""
    res = CliRunner().invoke(app, args)
    if isinstance(res.exception, CarelensError):
        return res.exception.exit_code, res.exception.reason
    return res.exit_code, res.stdout


def _deid_batch(tmp_path: Path, keys: KeyService, patient: dict) -> tuple[Path, Path]:
    src = write_canary_source(tmp_path, patient)
    out = tmp_path / "batch"
    assert not deid_fhir_path(src, out / "fhir", keys).quarantined
    return src, out


def test_clean_batch_goes_into_the_research_lake_only(tmp_path: Path, keys: KeyService, canary_patient: dict):
    src, batch = _deid_batch(tmp_path, keys, canary_patient)
    store = tmp_path / "store"
    code, out = _invoke(["ingest", str(batch), "--zone", "research", "--source", str(src), "--store", str(store)])
    assert code == 0, out
    summary = json.loads(out)
    assert summary["ingested"]["Patient"] == 1 and summary["leak_audit"]["leaks"] == 0
    assert summary["leak_audit"]["identifiers_searched"]["mrn"] >= 1
    assert (store / "research" / "lake").is_dir() and not (store / "lake").exists()
    sql = ["sql", "SELECT id FROM Patient", "--store", str(store)]
    code, rows = _invoke([*sql, "--zone", "research"])
    assert code == 0 and json.loads(rows) == [{"id": keys.pseudonym(canary_patient["id"])}]
    code, reason = _invoke(sql)  # the identified lake was not written
    assert code == 1 and "no lake" in reason


def test_batch_with_a_planted_canary_is_refused_whole(tmp_path: Path, keys: KeyService, canary_patient: dict):
    src, batch = _deid_batch(tmp_path, keys, canary_patient)
    (batch / "notes").mkdir()
    (batch / "notes" / "clean.txt").write_text("Patient seen in clinic. Stable.\n")
    (batch / "notes" / "leaky.txt").write_text(f"f/u {CANARY['given']} {CANARY['family']} MRN {CANARY['mrn']}\n")
    store = tmp_path / "store"
    args = ["ingest", str(batch), "--zone", "research", "--source", str(src), "--store", str(store)]
    code, reason = _invoke(args)
    assert code == 4
    assert "refused" in reason and "found 2 " in reason and "(mrn 1, name 1)" in reason and "\n" not in reason
    assert not any(v in reason for v in (CANARY["given"], CANARY["family"], CANARY["mrn"], "leaky"))
    assert not (store / "research" / "lake").exists()  # not even the clean files
    (batch / "notes" / "leaky.txt").unlink()
    code, out = _invoke(args)
    assert code == 0 and json.loads(out)["ingested"]["notes"] == 2  # the DocumentReference and clean.txt


def test_research_ingest_usage_errors(tmp_path: Path, keys: KeyService, canary_patient: dict) -> None:
    src, batch = _deid_batch(tmp_path, keys, canary_patient)
    assert _invoke(["ingest", str(batch), "--zone", "research"])[0] == 2
    assert _invoke(["ingest", str(batch), "--source", str(src)])[0] == 2
    assert _invoke(["ingest", str(batch), "--zone", "elsewhere"])[0] == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    code, reason = _invoke(["ingest", str(batch), "--zone", "research", "--source", str(empty)])
    assert code == 2 and "no patient identifiers" in reason
