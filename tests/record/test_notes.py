"""Notes into facts: ConText assertions, sections, reconciliation with structured data."""

from __future__ import annotations

import subprocess
import sys

import pytest

from carelens.record import build_record, item_problem, summarize
from carelens.record.notes import extract_mentions, sections_of

from .conftest import note_ref

NOTE = """2024-03-01

# Chief Complaint
Patient denies chest pain. No shortness of breath.

# History of Present Illness
Patient has a history of HTN and COPD. Rule out pulmonary embolism.
If she develops a seizure, call us.

# Family History
Mother had breast cancer.

# Allergies
No Known Allergies.

# Medications
warfarin 5 mg daily; metformin 500 mg twice daily

# Assessment and Plan
Stopped warfarin because of bleeding.
The following procedures were conducted:
- depression screening (procedure)
"""


@pytest.fixture
def record(small_resources):
    return build_record([*small_resources, note_ref("n1", NOTE, "2024-03-02T09:00:00Z")])


def test_sections_are_heading_lines_not_phrases():
    cats = [c for _, c in sections_of(NOTE)]
    assert cats == [
        "chief_complaint",
        "history_of_present_illness",
        "family_history",
        "allergy",
        "medications",
        "observation_and_plan",
    ]


def test_context_assertions(record):
    found = {(m.text.lower(), m.start): m for m in extract_mentions(record)}
    by_text = {}
    for (text, _), m in sorted(found.items(), key=lambda kv: kv[0][1]):
        by_text.setdefault(text, m)
    assert by_text["chest pain"].negated
    assert by_text["shortness of breath"].negated
    assert by_text["breast cancer"].family or by_text["breast cancer"].section == "family_history"
    assert by_text["pulmonary embolism"].uncertain or by_text["pulmonary embolism"].hypothetical
    assert by_text["seizure"].hypothetical
    assert by_text["htn"].historical and not by_text["htn"].negated
    assert by_text["no known allergies"].kind == "nka"
    stopped = [m for m in found.values() if m.text.lower() == "warfarin" and m.discontinued]
    assert stopped and stopped[0].section == "observation_and_plan"
    assert NOTE[by_text["copd"].start : by_text["copd"].end] == "COPD"


def test_negated_family_and_uncertain_mentions_never_become_problems(record):
    summary = summarize(record)
    texts = " ".join(i.text.lower() for s in summary.sections for i in s.items)
    for never in ["chest pain", "shortness of breath", "breast cancer", "pulmonary embolism", "seizure", "depression"]:
        assert never not in texts


def test_note_only_facts_are_marked_and_cite_the_span(record):
    summary = summarize(record)
    past = summary.section("11348-0").items
    copd = next(i for i in past if i.text.startswith("COPD"))
    assert copd.source == "note" and "note-only" in copd.flags
    cite = copd.citations[0]
    assert cite.resource == "DocumentReference/n1" and NOTE[cite.note_span[0] : cite.note_span[1]] == "COPD"
    meds = summary.section("10160-0").items
    metformin = next(i for i in meds if i.text.startswith("metformin"))
    assert "note-only" in metformin.flags
    # hypertension is structured (Condition/c1): the note's HTN does not add a second item
    assert not any(i.text.startswith("HTN") for s in summary.sections for i in s.items)
    for item in summary.items():
        assert item_problem(item, record) is None


def test_conflicts_are_flagged_in_needs_attention(record):
    summary = summarize(record)
    conflicts = [i for i in summary.needs_attention if "conflict" in i.flags]
    texts = [c.text for c in conflicts]
    assert any(t.startswith("Conflict: note of 2024-03-02 says No Known Allergies") and "peanut" in t for t in texts)
    assert any(t.startswith("Conflict: note of 2024-03-02 says stopped: warfarin") for t in texts)
    stopped = next(c for c in conflicts if "stopped" in c.text)
    assert {c.resource for c in stopped.citations} == {"DocumentReference/n1", "MedicationRequest/m1"}


def test_only_the_newest_notes_are_read(record, small_resources):
    old = note_ref("n0", "Patient has asthma.", "2001-01-01T00:00:00Z")
    rec = build_record([*small_resources, note_ref("n1", NOTE, "2024-03-02T09:00:00Z"), old])
    summary = summarize(rec, note_limit=1)
    assert (summary.notes.total, summary.notes.read) == (2, 1)
    assert not any("asthma" in i.text.lower() for i in summary.items())
    assert any("asthma" in i.text.lower() for i in summarize(rec, note_limit=None).items())


def test_reading_notes_imports_neither_torch_nor_quickumls() -> None:
    """thinc imports torch, medspaCy QuickUMLS (with NLTK and SciPy's statistics), for nothing the notes
    pipeline uses: seconds and ~330 MB in every process that summarises a record with notes. Both stay
    importable after."""
    code = (
        "import base64, sys\n"
        "from carelens.record import build_record, summarize_record\n"
        "data = base64.b64encode(b'Patient denies chest pain. Aspirin was stopped.').decode()\n"
        "note = {'resourceType': 'DocumentReference', 'id': 'n1', 'status': 'current', 'date': '2024-03-02',\n"
        "        'subject': {'reference': 'Patient/p1'}, 'content': [{'attachment': {'contentType': 'text/plain',\n"
        "        'data': data}}]}\n"
        "summarize_record(build_record([{'resourceType': 'Patient', 'id': 'p1'}, note], 'p1'))\n"
        "print(sorted({n.split('.')[0] for n in sys.modules} & {'quickumls', 'nltk', 'scipy', 'torch', 'medspacy'}))\n"
        "import quickumls, torch\n"
        "print(quickumls.QuickUMLS.__name__, int(torch.ones(2).sum()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["['medspacy']", "QuickUMLS 2"]
