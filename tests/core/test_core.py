"""Core types: ids, batches, JSON output, settings."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from carelens.core import BatchResult, CarelensError, Citation, InputError, UsageError, content_hash, stable_id
from carelens.core.config import Settings
from carelens.core.output import emit_json, to_json


def test_content_hash_is_sha256_and_cuttable() -> None:
    assert content_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert content_hash(b"abc", 12) == "ba7816bf8f01"


def test_stable_id_separates_parts() -> None:
    assert stable_id("a", "bc") != stable_id("ab", "c")
    assert stable_id("a", 1) == stable_id("a", "1")


def test_batch_exit_code_and_reason_is_one_line() -> None:
    batch = BatchResult()
    batch.done["Patient"] += 2
    assert batch.exit_code == 0
    batch.quarantine("x.json", "line 3", "truncated\n JSON")
    assert batch.exit_code == 3
    assert batch.quarantined[0].reason == "truncated JSON"


def test_errors_are_one_line_with_exit_codes() -> None:
    err = InputError("bad\nthing   here")
    assert str(err) == "bad thing here"
    assert isinstance(err, CarelensError)
    assert (InputError("x").exit_code, UsageError("x").exit_code) == (1, 2)


def test_json_output_handles_models_and_paths(tmp_path: Path) -> None:
    data = {"c": Citation(resource="Condition/1", note_span=(3, 9)), "p": Path("/a")}
    assert orjson.loads(to_json(data)) == {"c": {"resource": "Condition/1", "note_span": [3, 9]}, "p": "/a"}
    emit_json(data, tmp_path / "out" / "x.json")
    assert orjson.loads((tmp_path / "out" / "x.json").read_bytes())["p"] == "/a"
    with pytest.raises(TypeError):
        to_json(object())


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CARELENS_STORE", str(tmp_path))
    monkeypatch.delenv("CARELENS_DB_URL", raising=False)
    settings = Settings.from_env()
    assert settings.store == tmp_path
    assert settings.db_url == f"sqlite:///{(tmp_path / 'app.sqlite').resolve()}"
    monkeypatch.setenv("CARELENS_DB_URL", "postgresql+psycopg://u@h/db")
    assert Settings.from_env().db_url == "postgresql+psycopg://u@h/db"
