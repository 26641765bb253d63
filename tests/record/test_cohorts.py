"""Summaries of the demo cohort (planted facts known) and of the bulk NDJSON set (notes +
structured data): every active problem, medication and allergy is there with a valid citation,
and no negated, family or uncertain mention becomes a problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from carelens.record import item_problem, load_record, load_records, summarize

from .conftest import active_facts, cited


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from carelens.demo import generate_cohort

    root = tmp_path_factory.mktemp("demo-cohort")
    manifest = generate_cohort(root, patients=6, seed=7, training_images=False)
    return root, manifest


def test_demo_cohort_planted_facts(demo):
    root, manifest = demo
    for planted in manifest.patients:
        record = load_record(root / planted.fhir)
        summary = summarize(record, note_limit=None)
        assert summary.dropped == [], summary.dropped
        problems = cited(summary.section("11450-4").items)
        assert {f"Condition/{p.condition_id}" for p in planted.problems if p.status == "active"} <= problems
        meds = cited(summary.section("10160-0").items)
        assert {f"MedicationRequest/{m.request_id}" for m in planted.medications if m.status == "active"} <= meds
        allergies = summary.section("48765-2")
        assert {f"AllergyIntolerance/{a.allergy_id}" for a in planted.allergies} <= cited(allergies.items)
        if planted.no_known_allergies:
            assert allergies.empty_reason.startswith("no known allergies")
        attention = cited(summary.needs_attention)
        for med in planted.medications:
            if med.high_alert and med.status == "active":
                assert f"MedicationRequest/{med.request_id}" in attention
        for result in planted.critical_results:
            assert f"Observation/{result.observation_id}" in attention
        # planted negated / family / uncertain mentions: never a problem, never cited as one
        problem_items = summary.section("11450-4").items + summary.section("11348-0").items
        for mention in planted.mentions:
            for item in problem_items:
                for c in item.citations:
                    if c.note_span and c.resource == f"DocumentReference/{mention.note_id}":
                        assert c.note_span[1] <= mention.start or c.note_span[0] >= mention.end, mention
            words = mention.concept.lower()
            structured = " ".join(p.display.lower() for p in planted.problems)
            if words not in structured:
                assert not any(words in i.text.lower() for i in problem_items), (mention.kind, words)


def test_bulk_set_every_active_fact_is_cited_and_supported(bulk_dir: Path):
    records = list(load_records(bulk_dir))
    assert len(records) >= 10
    for record in records:
        summary = summarize(record)
        assert summary.notes.read == min(10, summary.notes.total)
        for code, keys in active_facts(record).items():
            assert keys <= cited(summary.section(code).items), code
        assert summary.dropped == [], summary.dropped
        for item in summary.items():
            assert item_problem(item, record) is None


def test_bulk_folder_needs_a_patient(bulk_dir: Path):
    from carelens.core import InputError

    with pytest.raises(InputError, match="choose one with --patient"):
        load_record(bulk_dir)
