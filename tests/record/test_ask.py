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


def test_questions_are_expanded_with_drug_classes_from_the_vocabulary():
    from carelens.record.ask import DRUG_CLASSES, expand, vocabulary

    text, used = expand("Is the patient on anticoagulation?")
    assert used == ["B01A antithrombotic"] and " aspirin " in f" {text} " and " warfarin " in f" {text} "
    assert expand("any blood thinners")[1] == ["B01A antithrombotic"]
    assert expand("what happened in 2010?") == ("what happened in 2010?", [])
    assert all(atc and name and terms and ingredients for atc, name, terms, ingredients in vocabulary(DRUG_CLASSES))


def test_the_readme_question_finds_the_stopped_aspirin_of_the_stored_record(shared_data: Path, tmp_path: Path):
    from carelens.ingest import ingest
    from carelens.record.ask import NOTHING_FOUND, ask

    ingest([shared_data / "fhir" / "bulk-10-patients"], tmp_path / "store")
    pid = "3af3708d-41f1-cd80-f3dd-ec5ac76072bf"  # Aspirin 81 MG Oral Tablet, status stopped
    from carelens.record import load_record

    record = load_record(pid, store=tmp_path / "store")  # the record from the lake, not the files
    answer = ask(record, "is the patient on anticoagulation?", top=3)
    assert answer.found and answer.expanded == ["B01A antithrombotic"]
    assert any(p.citation.resource.startswith("MedicationRequest/") and "Aspirin" in p.text and "stopped" in p.text
               for p in answer.passages)  # fmt: skip
    assert all("aspirin" in p.text.lower() for p in answer.passages)  # the note mentions of it, not noise
    nothing = ask(record, "has the patient been to the moon?", top=3)
    assert not nothing.found and nothing.passages == [] and nothing.message == NOTHING_FOUND


def test_a_question_survives_another_thread_clearing_the_vector_cache(record, small_resources, monkeypatch):
    from carelens.record import ask as asking
    from carelens.record import encoder

    before = ask(record, "is she on warfarin?", top=3)  # its passages' vectors are now cached
    real = encoder.encode

    def clearing(texts, *args, **kwargs):  # as a question in another thread does when the cache is full
        asking._VECTORS.clear()
        return real(texts, *args, **kwargs)

    monkeypatch.setattr(encoder, "encode", clearing)
    more = build_record([*small_resources, note_ref("n1", NOTE, "2024-03-02T09:00:00Z"),
                         note_ref("n2", "Started apixaban today.", "2024-03-05T09:00:00Z")])  # fmt: skip
    after = ask(more, "is she on warfarin?", top=3)
    assert after.passages[0].citation == before.passages[0].citation


def _blood_pressure(oid: str, day: str, systolic: float) -> dict:
    def part(code: str, name: str, value: float) -> dict:
        return {"code": {"coding": [{"system": "http://loinc.org", "code": code, "display": name}]},
                "valueQuantity": {"value": value, "unit": "mm[Hg]"}}  # fmt: skip

    return {"resourceType": "Observation", "id": oid, "status": "final", "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9", "display": "Blood Pressure"}]},
            "effectiveDateTime": day, "component": [part("8480-6", "Systolic Blood Pressure", systolic),
                                                     part("8462-4", "Diastolic Blood Pressure", 90)]}  # fmt: skip


def test_condition_synonyms_and_abbreviations_find_the_problem(small_resources):
    from carelens.record.ask import CONDITION_TERMS, expand, phrased, vocabulary

    text, used = expand("is there a history of HTN?")
    assert used == ["I10 hypertension"] and " hypertension " in f" {text} "
    tokens = phrased(expand("any high blood pressure?")[0]).split()
    assert "high_blood_pressure" in tokens and "blood" not in tokens and len(set(tokens)) == len(tokens)
    assert all(code and name and len(terms) >= 2 for code, name, terms, _ in vocabulary(CONDITION_TERMS))
    readings = [_blood_pressure(f"bp{i}", f"202{i}-01-01", 150 + i) for i in range(3)]
    record = build_record([*small_resources, *readings])
    answer = ask(record, "is there a history of HTN?", top=3)
    cited = [p.citation.resource for p in answer.passages]
    assert "Condition/c1" in cited[:2]  # the problem, though the record never says "HTN"
    shown = [p for p in answer.passages if p.citation.resource.startswith("Observation/bp")]
    assert len(shown) == 1 and shown[0].citation.resource == "Observation/bp2" and shown[0].older == 2  # the newest
    assert "Systolic Blood Pressure 152 mm[Hg]" in shown[0].text  # a panel's values are its components'


def test_a_term_is_searched_whole_so_its_common_words_bring_no_noise():
    hemoglobin = {"resourceType": "Observation", "id": "hb", "status": "final", "subject": {"reference": "Patient/p1"},
                  "code": {"text": "Hemoglobin [Mass/volume] in Blood"}, "effectiveDateTime": "2024-01-02",
                  "valueQuantity": {"value": 12.6, "unit": "g/dL"}}  # fmt: skip
    note = "Medications:\nMetformin 500 mg twice daily.\nBlood drawn for labs today."
    record = build_record([{"resourceType": "Patient", "id": "p1"}, hemoglobin,
                           note_ref("n1", note, "2024-01-02T09:00:00Z")])  # fmt: skip
    assert "Medications:" not in [d.text for d in passages(record)]  # a heading says nothing
    for question in ("any blood thinners?", "history of high blood pressure?"):  # neither is in this record
        answer = ask(record, question, top=3)
        assert not answer.found and answer.passages == [], (question, answer.passages)
    assert ask(record, "recent blood draw?", top=3).found  # the words themselves still match
