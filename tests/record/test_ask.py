"""Ask the record: hybrid BM25 + MiniLM retrieval returns cited passages with scores."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from carelens.core import InputError
from carelens.record import build_record
from carelens.record.ask import ask, passages

from .conftest import note_ref

NOTE = (
    "Follow-up visit. The patient reports bleeding gums since last week.\n"
    "INR was checked today. Continue anticoagulation with current dose.\n"
    "She walks her dog every morning."
)


@pytest.fixture
def record(small_resources):
    return build_record([*small_resources, note_ref("n1", NOTE, "2024-03-02T09:00:00Z")])


def test_passages_cite_resources_and_note_spans(record):
    docs = passages(record)
    notes = [d for d in docs if d.kind == "note"]
    assert [NOTE[d.citation.note_span[0] : d.citation.note_span[1]] for d in notes] == [d.text for d in notes]
    assert any(d.citation.resource == "MedicationRequest/m1" and "Warfarin" in d.text for d in docs)


def test_hybrid_search_finds_lexical_and_semantic_matches(record):
    answer = ask(record, "is she on warfarin?", top=3)
    warfarin = answer.passages[0]
    assert warfarin.citation.resource == "MedicationRequest/m1"
    assert warfarin.bm25_rank is not None and warfarin.dense_rank is not None
    semantic = ask(record, "any problems with bleeding from the mouth?", top=2)
    top = semantic.passages[0]
    assert top.citation.resource == "DocumentReference/n1" and "bleeding gums" in top.text
    assert top.similarity is not None and top.score > 0
    scores = [p.score for p in semantic.passages]
    assert scores == sorted(scores, reverse=True)


def test_empty_question_is_an_input_error(record):
    with pytest.raises(InputError, match="question is empty"):
        ask(record, "   ")


def test_cli_ask(tmp_path: Path, small_resources):
    from typer.testing import CliRunner

    from carelens.cli import app

    bundle = tmp_path / "b.json"
    entries = [*small_resources, note_ref("n1", NOTE, "2024-03-02T09:00:00Z")]
    bundle.write_bytes(
        orjson.dumps({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in entries]})
    )
    result = CliRunner().invoke(app, ["ask", str(bundle), "peanut allergy", "--top", "2"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["passages"][0]["citation"]["resource"] == "AllergyIntolerance/a1"
    text = CliRunner().invoke(app, ["ask", str(bundle), "peanut allergy", "--format", "text"])
    assert text.exit_code == 0 and "AllergyIntolerance/a1" in text.stdout
