"""The summary: IPS sections, empty reasons, needs-attention, completeness on Synthea, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from carelens.core import InputError
from carelens.record import build_record, item_problem, load_record, summarize

from .conftest import LOINC, SCT, active_facts, cited, coded, note_ref

IPS_ORDER = [
    "11450-4",
    "10160-0",
    "48765-2",
    "11369-6",
    "30954-2",
    "8716-3",
    "47519-4",
    "46264-8",
    "11348-0",
    "29762-2",
    "18776-5",
    "46240-8",
]


def test_sections_follow_ips_order(small_resources):
    summary = summarize(build_record(small_resources), notes=False)
    assert [s.code for s in summary.sections] == IPS_ORDER
    problems = summary.section("11450-4")
    assert [i.text for i in problems.items] == ["Hypertension (onset 2015-06-01)"]
    assert [i.text for i in summary.section("11348-0").items] == ["Acute viral pharyngitis (resolved 2020-01-10)"]
    smoking = summary.section("29762-2").items[0]
    assert "Former smoker" in smoking.text and "smoking" in smoking.flags


def test_medications_active_with_dose_and_recently_stopped_marked(small_resources):
    meds = summarize(build_record(small_resources), notes=False).section("10160-0").items
    assert meds[0].text == "Warfarin Sodium 5 MG Oral Tablet — 5 mg once daily, started 2023-01-05"
    assert meds[0].status == "active"
    assert meds[1].status == "stopped" and "recently stopped" in meds[1].flags
    assert meds[1].citations[0].resource == "MedicationRequest/m2"


def test_needs_attention_lists_allergy_anticoagulant_and_critical_potassium(small_resources):
    summary = summarize(build_record(small_resources), notes=False)
    texts = [i.text for i in summary.needs_attention]
    assert any(t.startswith("High-risk allergy: Allergy to peanut") for t in texts)
    assert any(t.startswith("High-alert medicine (anticoagulant): Warfarin") for t in texts)
    potassium = next(i for i in summary.needs_attention if "Potassium" in i.text)
    assert potassium.text.startswith("Critical result: Potassium 6.4 mmol/L on 2024-03-01; rising from 5 on 2024-02-01")
    assert {c.resource for c in potassium.citations} == {"Observation/k1", "Observation/k2"}
    assert summary.dropped == []


def test_required_sections_say_no_information_or_no_known(small_resources):
    no_allergy = [r for r in small_resources if r["resourceType"] != "AllergyIntolerance"]
    section = summarize(build_record(no_allergy), notes=False).section("48765-2")
    assert section.items == [] and section.empty_reason == "no information"

    nka = {
        "resourceType": "AllergyIntolerance",
        "id": "nka",
        "patient": {"reference": "Patient/p1"},
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "code": coded(SCT, "716186003", "No known allergy"),
        "recordedDate": "2024-01-01",
    }
    section = summarize(build_record([*no_allergy, nka]), notes=False).section("48765-2")
    assert section.empty_reason == "no known allergies"
    assert [c.resource for c in section.empty_citations] == ["AllergyIntolerance/nka"]
    assert (
        summarize(build_record([r for r in no_allergy if r["resourceType"] == "Patient"]), notes=False)
        .section("11450-4")
        .empty_reason
        == "no information"
    )


def test_every_active_fact_of_every_synthea_bundle_is_cited_and_supported(synthea_bundles):
    for path in synthea_bundles:
        record = load_record(path)
        summary = summarize(record, notes=False)
        assert summary.dropped == [], (path.name, summary.dropped[:3])
        for code, keys in active_facts(record).items():
            assert keys <= cited(summary.section(code).items), (path.name, code)
        for item in summary.items():
            assert item_problem(item, record) is None


def test_bundle_without_patient_is_summarised_with_a_warning(small_resources):
    record = build_record([r for r in small_resources if r["resourceType"] != "Patient"])
    summary = summarize(record, notes=False)
    assert summary.patient == "p1"
    assert any("no Patient resource" in w for w in summary.warnings)
    assert summary.section("11450-4").items


def test_several_patients_need_a_choice(small_resources):
    other = {"resourceType": "Patient", "id": "p2"}
    with pytest.raises(InputError, match="2 patients; choose one with --patient"):
        build_record([*small_resources, other])
    assert build_record([*small_resources, other], "p2").resources.keys() == {"Patient/p2"}
    with pytest.raises(InputError, match="not in the source"):
        build_record(small_resources, "nobody")


def test_dangling_references_and_bad_notes_become_warnings(small_resources):
    orphan = {
        "resourceType": "MedicationRequest",
        "id": "m9",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationReference": {"reference": "Medication/missing"},
    }
    empty = note_ref("n-empty", "   ", "2024-01-01")
    image = note_ref("n-pdf", "%PDF-1.4", "2024-01-01", content_type="application/pdf")
    record = build_record([*small_resources, orphan, empty, image])
    summary = summarize(record, notes=False)
    assert "1 references point to resources that are not in the record" in summary.warnings
    assert any("note is empty" in w for w in summary.warnings)
    assert any("not text" in w for w in summary.warnings)
    meds = summary.section("10160-0").items
    assert any(i.text.startswith("unnamed medication") for i in meds)


def test_cli_summarize_json_and_markdown(tmp_path: Path, small_resources):
    from typer.testing import CliRunner

    from carelens.cli import app

    bundle = tmp_path / "b.json"
    bundle.write_bytes(
        orjson.dumps(
            {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in small_resources]}
        )
    )
    runner = CliRunner()
    result = runner.invoke(app, ["summarize", str(bundle), "--no-notes"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) >= {"patient", "sections", "needs_attention", "dropped"}
    item = data["sections"][0]["items"][0]
    assert set(item) >= {"text", "codes", "citations"} and item["citations"][0] == {
        "resource": "Condition/c1",
        "note_span": None,
    }
    md = tmp_path / "s.md"
    result = runner.invoke(app, ["summarize", str(bundle), "--no-notes", "--format", "markdown", "--out", str(md)])
    assert result.exit_code == 0 and "## Needs attention" in md.read_text()
    result = runner.invoke(app, ["summarize", str(tmp_path / "absent.json")])
    assert result.exit_code != 0


def test_stored_patient_id_is_read_from_the_lake(store: Path, tmp_path: Path, small_resources):
    from typer.testing import CliRunner

    from carelens.cli import app

    bundle = tmp_path / "b.json"
    bundle.write_bytes(
        orjson.dumps(
            {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in small_resources]}
        )
    )
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", str(bundle)]).exit_code == 0
    result = runner.invoke(app, ["summarize", "p1", "--no-notes"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["patient"] == "p1"
    assert data["sections"][0]["items"][0]["citations"][0]["resource"] == "Condition/c1"
    missing = runner.invoke(app, ["summarize", "nobody", "--no-notes"])
    assert missing.exit_code == 1


def test_an_active_drug_the_patient_is_allergic_to_is_a_conflict(small_resources):
    allergy = {
        "resourceType": "AllergyIntolerance",
        "id": "a2",
        "patient": {"reference": "Patient/p1"},
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "category": ["medication"],
        "code": coded("http://www.nlm.nih.gov/research/umls/rxnorm", "11289", "Warfarin"),
    }
    summary = summarize(build_record([*small_resources, allergy]), notes=False)
    conflict = next(i for i in summary.needs_attention if "conflict" in i.flags)
    assert conflict.text == "Conflict: allergy Warfarin; active medication Warfarin Sodium 5 MG Oral Tablet"
    assert {c.resource for c in conflict.citations} == {"AllergyIntolerance/a2", "MedicationRequest/m1"}
    assert summary.dropped == []


IPS_ABSENT = "http://hl7.org/fhir/uv/ips/CodeSystem/absent-unknown-uv-ips"


def test_required_sections_say_which_absence_the_record_states(small_resources):
    """'No known problems / medications / allergies' resources make the required sections say so
    (citing them) and are never listed as a problem, medication or allergy; 'no-allergy-info'
    says there is no information, citing the resource that says it."""
    p = {"reference": "Patient/p1"}
    patient = [r for r in small_resources if r["resourceType"] == "Patient"]
    statements = [
        {
            "resourceType": "Condition",
            "id": "none",
            "subject": p,
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "code": coded(SCT, "160245001", "No current problems or disability"),
            "recordedDate": "2024-01-01",
        },
        {
            "resourceType": "MedicationStatement",
            "id": "nomeds",
            "status": "active",
            "subject": p,
            "medicationCodeableConcept": coded(IPS_ABSENT, "no-known-medications", "No known medications"),
            "dateAsserted": "2024-01-01",
        },
        {
            "resourceType": "AllergyIntolerance",
            "id": "noinfo",
            "patient": p,
            "code": coded(IPS_ABSENT, "no-allergy-info", "No information about allergies"),
        },
    ]
    summary = summarize(build_record([*patient, *statements]), notes=False)
    want = {
        "11450-4": ("no known problems", "Condition/none"),
        "10160-0": ("no known medications", "MedicationStatement/nomeds"),
        "48765-2": ("no information", "AllergyIntolerance/noinfo"),
    }
    for code, (reason, resource) in want.items():
        section = summary.section(code)
        assert section.items == [] and section.empty_reason == reason, code
        assert [c.resource for c in section.empty_citations] == [resource]
    assert summary.section("11348-0").items == [] and summary.needs_attention == []

    # a real problem next to the statement: the problem is listed, the statement is not
    real = summarize(build_record([*small_resources, statements[0]]), notes=False).section("11450-4")
    assert [i.text for i in real.items] == ["Hypertension (onset 2015-06-01)"] and real.empty_reason is None


def test_other_sections_are_built_and_cited(small_resources):
    """Immunizations, vital signs, procedures, devices, plan of care and encounters: latest
    values, statuses honoured, every item cited; a high and rising result is 'worsening'."""
    p = {"reference": "Patient/p1"}
    lab = {"coding": [{"code": "laboratory"}]}
    vital = {"coding": [{"code": "vital-signs"}]}
    extra = [
        {
            "resourceType": "Immunization",
            "id": f"i{n}",
            "status": "completed",
            "patient": p,
            "vaccineCode": coded("http://hl7.org/fhir/sid/cvx", "140", "Influenza, seasonal"),
            "occurrenceDateTime": day,
        }
        for n, day in ((1, "2022-10-01"), (2, "2023-10-01"))
    ] + [
        {
            "resourceType": "Observation",
            "id": "bp",
            "status": "final",
            "subject": p,
            "category": [vital],
            "code": coded(LOINC, "85354-9", "Blood pressure panel"),
            "effectiveDateTime": "2024-03-01",
            "component": [
                {"code": coded(LOINC, "8480-6", "Systolic"), "valueQuantity": {"value": 142, "unit": "mm[Hg]"}},
                {"code": coded(LOINC, "8462-4", "Diastolic"), "valueQuantity": {"value": 91, "unit": "mm[Hg]"}},
            ],
        },
        *(
            {
                "resourceType": "Observation",
                "id": f"a1c{n}",
                "status": "final",
                "subject": p,
                "category": [lab],
                "code": coded(LOINC, "4548-4", "Hemoglobin A1c"),
                "effectiveDateTime": day,
                "valueQuantity": {"value": value, "unit": "%"},
            }
            for n, day, value in ((1, "2023-06-01", 6.5), (2, "2024-02-01", 7.4))
        ),
        {
            "resourceType": "Procedure",
            "id": "pr1",
            "status": "completed",
            "subject": p,
            "code": coded(SCT, "73761001", "Colonoscopy"),
            "performedDateTime": "2021-05-05",
        },
        {
            "resourceType": "Procedure",
            "id": "pr2",
            "status": "not-done",
            "subject": p,
            "code": coded(SCT, "80146002", "Appendectomy"),
        },
        {
            "resourceType": "Device",
            "id": "d1",
            "status": "active",
            "patient": p,
            "type": coded(SCT, "14106009", "Cardiac pacemaker"),
        },
        {
            "resourceType": "CarePlan",
            "id": "cp1",
            "status": "active",
            "intent": "plan",
            "subject": p,
            "category": [coded(SCT, "698360004", "Diabetes self management plan")],
            "activity": [{"detail": {"status": "in-progress", "code": coded(SCT, "160670007", "Diabetic diet")}}],
            "period": {"start": "2023-06-01"},
        },
        {
            "resourceType": "CarePlan",
            "id": "cp0",
            "status": "completed",
            "intent": "plan",
            "subject": p,
            "category": [coded(SCT, "91251008", "Physical therapy procedure")],
        },
        {
            "resourceType": "Goal",
            "id": "g1",
            "lifecycleStatus": "active",
            "subject": p,
            "description": {"text": "Hemoglobin A1c below 7"},
        },
        {
            "resourceType": "ServiceRequest",
            "id": "sr1",
            "status": "active",
            "intent": "order",
            "subject": p,
            "code": coded(SCT, "252416005", "Echocardiography"),
            "authoredOn": "2024-03-01",
        },
    ]
    summary = summarize(build_record([*small_resources, *extra]), notes=False)
    assert summary.dropped == []
    texts = {code: [i.text for i in summary.section(code).items] for code in IPS_ORDER}
    assert texts["11369-6"] == ["Influenza, seasonal (latest 2023-10-01)"]
    assert texts["8716-3"] == ["Blood pressure panel 142/91 mm[Hg] on 2024-03-01"]
    assert texts["47519-4"] == ["Colonoscopy (latest 2021-05-05)"]  # not-done is not a procedure
    assert texts["46264-8"] == ["Cardiac pacemaker"]
    assert texts["18776-5"] == [
        "Diabetes self management plan: Diabetic diet (since 2023-06-01)",
        "Goal: Hemoglobin A1c below 7",
        "Ordered: Echocardiography (2024-03-01)",
    ]
    assert texts["46240-8"] == ["2024-03-01: Encounter for check up"]
    a1c = next(i for i in summary.section("30954-2").items if "A1c" in i.text)
    assert "worsening" in a1c.flags and {c.resource for c in a1c.citations} == {"Observation/a1c1", "Observation/a1c2"}
    assert any(i.text.startswith("Worsening result: Hemoglobin A1c 7.4 %") for i in summary.needs_attention)
    for code in ("11369-6", "8716-3", "47519-4", "46264-8", "18776-5", "46240-8"):
        assert all(i.citations for i in summary.section(code).items), code


def test_resources_naming_no_patient_are_left_out_with_a_warning(small_resources):
    orphan = {"resourceType": "Condition", "id": "c9", "code": coded(SCT, "44054006", "Diabetes mellitus type 2")}
    summary = summarize(build_record([*small_resources, orphan]), notes=False)
    assert "1 clinical resources name no patient (no subject) and were left out" in summary.warnings
    assert "Condition/c9" not in cited(summary.items())


def test_cli_bad_input_is_one_line_and_what_can_be_read_is_summarised(tmp_path: Path, small_resources, run_cli):
    """Several patients without --patient: one line on stderr and a non-zero exit; a bundle
    without a Patient: a summary of what could be read, the reason among its warnings."""

    def bundle(name: str, resources: list) -> str:
        path = tmp_path / name
        entries = [{"resource": r} for r in resources]
        path.write_bytes(orjson.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}))
        return str(path)

    two = bundle("two.json", [*small_resources, {"resourceType": "Patient", "id": "p2"}])
    code, out, err = run_cli("summarize", two, "--no-notes")
    assert code != 0 and out == ""
    assert err.strip().splitlines() == ["error: the source holds 2 patients; choose one with --patient ID"]

    headless = bundle("headless.json", [r for r in small_resources if r["resourceType"] != "Patient"])
    code, out, err = run_cli("summarize", headless, "--no-notes")
    data = json.loads(out)
    assert code == 0 and data["patient"] == "p1" and data["sections"][0]["items"]
    assert any("no Patient resource" in w for w in data["warnings"])

    empty = tmp_path / "empty.json"
    empty.write_text("")
    code, out, err = run_cli("summarize", str(empty), "--no-notes")
    assert code != 0 and len(err.strip().splitlines()) == 1 and err.startswith("error: ")
