"""The citation checker keeps supported items and drops planted bad ones, saying why."""

from __future__ import annotations

import pytest

from carelens.core import Citation
from carelens.record import SummaryItem, build_record, check_summary, item_problem, summarize

from .conftest import note_ref

RX = "http://www.nlm.nih.gov/research/umls/rxnorm|855332"


@pytest.fixture
def record(small_resources):
    note = note_ref("n1", "Assessment: patient takes warfarin daily. Denies chest pain.", "2024-03-01T10:00:00Z")
    return build_record([*small_resources, note])


def item(text, *resources, codes=(), span=None):
    return SummaryItem(
        text=text, codes=list(codes), citations=[Citation(resource=r, note_span=span) for r in resources]
    )


GOOD = item(
    "Warfarin Sodium 5 MG Oral Tablet — 5 mg once daily, started 2023-01-05", "MedicationRequest/m1", codes=[RX]
)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (item("Warfarin", "MedicationRequest/nope"), "does not resolve"),
        (item("Warfarin Sodium 5 MG Oral Tablet, started 2023-02-05", "MedicationRequest/m1"), "a date"),
        (item("Warfarin Sodium 7.5 MG Oral Tablet", "MedicationRequest/m1"), "a number"),
        (item("Apixaban 5 MG Oral Tablet", "MedicationRequest/m1"), "name words"),
        (item("Warfarin", "MedicationRequest/m1", codes=["http://www.nlm.nih.gov/research/umls/rxnorm|1"]), "a code"),
        (item("Hypertension (onset 2015-06-01)", "Condition/c1", "MedicationRequest/m1"), "shares no code or name"),
        (item("Warfarin", "DocumentReference/n1", span=(5, 500)), "outside the note"),
        (item("Chest pain", "DocumentReference/n1", span=(12, 40)), "name words"),
        (item("Hypertension"), "cites nothing"),
    ],
)
def test_planted_bad_items_fail_with_a_reason(record, bad, reason):
    assert item_problem(GOOD, record) is None
    problem = item_problem(bad, record)
    assert problem is not None and reason in problem


def test_note_span_that_holds_the_words_passes(record):
    text = record.note("DocumentReference/n1").text
    start = text.index("warfarin")
    assert item_problem(item("warfarin (note only)", "DocumentReference/n1", span=(start, start + 8)), record) is None


def test_check_summary_drops_bad_items_and_lists_them(record):
    summary = summarize(record, notes=False)
    problems = summary.section("11450-4")
    problems.items.append(item("Diabetes mellitus (onset 2015-06-01)", "Condition/c1"))
    summary.needs_attention.append(item("Critical result: Potassium 7.9 mmol/L", "Observation/k2"))
    kept_before = len(summary.items())
    check_summary(summary, record)
    assert [d.text for d in summary.dropped] == [
        "Diabetes mellitus (onset 2015-06-01)",
        "Critical result: Potassium 7.9 mmol/L",
    ]
    assert [d.reason for d in summary.dropped] == [
        "2 name words are not in the cited evidence",
        "a number is not in the cited evidence",
    ]
    assert len(summary.items()) == kept_before - 2
    assert [i.text for i in problems.items] == ["Hypertension (onset 2015-06-01)"]
