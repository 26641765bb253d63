"""The clinician's workflow: patient page, evidence, decisions, sign-off, FHIR export, audit
of every view and decision, and CDS Hooks (shapes per the specification)."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from carelens.store.appdb import AuditEvent, CdsFeedback, SignedSummary, audit
from tests.server.conftest import Workspace
from tests.server.fixture_store import CITED, IMAGE_MODEL, NOTE, PID

CDS = "/cds-services/carelens-patient-view"


def _items(page: str) -> list[str]:
    return re.findall(r'name="item" value="([^"]+)"', page)


def _decide(ws: Workspace, item: str, action: str, reason: str = "", edited: str = "") -> int:
    csrf = ws.csrf("clinician", "/patients")
    data = {"item": item, "action": action, "reason": reason, "edited_text": edited, "csrf_token": csrf}
    return ws.clients["clinician"].post(f"/patients/{PID}/decisions", data=data).status_code


def test_patient_page_shows_attention_first_evidence_models_images_and_pgx(ws_sqlite: Workspace) -> None:
    page = ws_sqlite.clients["clinician"].get(f"/patients/{PID}").text
    attention = page.index('id="needs-attention"')
    assert attention < page.index('id="summary"') < page.index('id="imaging"') < page.index('id="pgx"')
    flagged = page[attention : page.index('id="summary"')]
    assert "Potassium 6.1 mmol/L (high)" in flagged  # the summary's needs_attention item
    assert "uncertain: refer" in flagged  # the abstaining image read
    assert "BRCA2 c.5946del Pathogenic" in flagged  # the secondary finding
    # the PGx result that bears on a drug the patient takes, with the order, genotype and CPIC text
    assert "clopidogrel (taken: Clopidogrel 75 MG Oral Tablet) with CYP2C19 *1/*2 (Intermediate Metabolizer)" in flagged
    assert f"/patients/{PID}/evidence?ref=MedicationRequest/med-clopi" in flagged
    assert "consider an alternative" in flagged and "The clinician decides" in flagged
    assert f'href="/patients/{PID}/evidence?ref=DocumentReference/note-hp&amp;start={NOTE.index(CITED)}' in page
    items = _items(page)
    assert len(items) == len(set(items)) == 9  # 4 summary + 2 images + PGx gene and drug + 1 finding, each once
    assert page.count('class="model-card"') == len(items)  # a model card link on every AI item
    assert f'href="/models/{IMAGE_MODEL}"' in page
    assert "probability 0.55" in page and "conformal set: normal, pneumonia" in page
    assert f'src="/patients/{PID}/imaging/0/heatmap"' in page
    assert "CYP2C19" in page and "*1/*2" in page and "Intermediate Metabolizer" in page
    current = page[page.index("Drugs on this patient") : page.index('id="findings"')]
    assert "<strong>clopidogrel</strong>: consider an alternative" in current  # the patient takes it
    assert 'href="#image-0">image and heatmap</a>' in page and 'id="image-0"' in page  # an image read's evidence
    assert "no allergies recorded" in page


def test_evidence_highlights_the_cited_note_span(ws_sqlite: Workspace) -> None:
    start = NOTE.index(CITED)
    url = f"/patients/{PID}/evidence?ref=DocumentReference/note-hp&start={start}&end={start + len(CITED)}"
    page = ws_sqlite.clients["clinician"].get(url).text
    assert f'<mark id="cited">{CITED}</mark>' in page
    resource = ws_sqlite.clients["clinician"].get(f"/patients/{PID}/evidence?ref=Condition/cond-htn").text
    assert "&#34;resourceType&#34;: &#34;Condition&#34;" in resource and "Hypertension" in resource


def test_asking_a_folder_patients_record_cites_only_their_own_resources(ws_sqlite: Workspace) -> None:
    answer = ws_sqlite.clients["clinician"].get(f"/api/patients/{PID}/ask", params={"q": "any blood thinners?"},
                                                headers=ws_sqlite.bearer("clinician")).json()  # fmt: skip
    assert answer["found"] and answer["passages"][0]["citation"]["resource"] == "MedicationRequest/med-clopi"
    other = ws_sqlite.clients["clinician"].get("/api/patients/pat-other-2/ask", params={"q": "any blood thinners?"},
                                               headers=ws_sqlite.bearer("clinician")).json()  # fmt: skip
    assert not other["found"] and other["passages"] == []


def test_evidence_is_limited_to_the_patients_own_record(ws_sqlite: Workspace) -> None:
    r = ws_sqlite.clients["clinician"].get("/patients/pat-other-2/evidence?ref=Condition/cond-htn")
    assert r.status_code == 404


def test_model_card_page(ws_sqlite: Workspace) -> None:
    page = ws_sqlite.clients["clinician"].get(f"/models/{IMAGE_MODEL}").text  # by the weights' hash
    assert "cxr-pneumonia 1.0.0" in page and "carelens tests" in page  # who made it
    assert "Flag possible pneumonia" in page and "Trained on 28x28 images." in page  # intended use, limitations
    assert "HTI-1 source attributes" in page and "<em>missing</em>" in page
    by_name = ws_sqlite.clients["clinician"].get("/models/cxr-pneumonia").text
    assert "Flag possible pneumonia" in by_name
    r = ws_sqlite.clients["clinician"].get("/models/unknown-model")
    assert r.status_code == 404 and "No model card is registered" in r.text


def test_decisions_sign_off_and_fhir_composition(ws: Workspace) -> None:
    from fhir.resources.R4B.composition import Composition

    client = ws.clients["clinician"]
    items = _items(client.get(f"/patients/{PID}").text)
    assert _decide(ws, items[0], "accept") == 303
    assert _decide(ws, items[1], "reject", reason="not supported by the note") == 303
    assert _decide(ws, items[2], "edit", reason="dose", edited="Clopidogrel 75 mg daily") == 303
    page = client.get(f"/patients/{PID}").text
    assert "rejected: not supported by the note" in page or "rejected" in page
    assert "Clopidogrel 75 mg daily" in page

    csrf = ws.csrf("clinician", "/patients")
    r = client.post(f"/patients/{PID}/sign", data={"csrf_token": csrf})
    assert r.status_code == 303
    signed_url = r.headers["location"]
    signed = client.get(signed_url).text
    assert "Signed by clinician" in signed and "not supported by the note" in signed

    comp = client.get(signed_url + "/composition.json")
    assert comp.headers["content-type"].startswith("application/fhir+json")
    body = comp.json()
    Composition.model_validate(body)  # a valid FHIR R4 Composition
    assert body["status"] == "final" and body["subject"]["reference"] == f"Patient/{PID}"
    assert body["author"][0]["identifier"]["value"] == "clinician"
    assert body["attester"][0]["mode"] == "legal"
    texts = " ".join(s["text"]["div"] for s in body["section"])
    assert "Clopidogrel 75 mg daily" in texts and "Clopidogrel 75 MG Oral Tablet" not in texts

    with Session(ws.engine) as s:
        draft, signed_json = s.execute(text("SELECT draft_json, signed_json FROM signed_summaries")).one()
    assert "Clopidogrel 75 MG Oral Tablet" in draft  # the AI draft is kept apart, unchanged
    assert "Clopidogrel 75 mg daily" in signed_json


def test_sign_off_with_nothing_accepted_is_refused(ws_sqlite: Workspace) -> None:
    csrf = ws_sqlite.csrf("clinician", "/patients")
    r = ws_sqlite.clients["clinician"].post(f"/patients/{PID}/sign", data={"csrf_token": csrf})
    assert r.status_code == 400 and "nothing to sign" in r.text
    with Session(ws_sqlite.engine) as s:
        assert s.scalars(select(SignedSummary)).first() is None
        assert s.scalars(select(AuditEvent).where(AuditEvent.action == "sign")).first() is None


def test_every_view_read_and_decision_is_audited(ws: Workspace) -> None:
    client = ws.clients["clinician"]
    items = _items(client.get(f"/patients/{PID}").text)
    ws.client().get(f"/api/patients/{PID}/summary", headers=ws.bearer("clinician"))
    _decide(ws, items[0], "reject", reason="duplicate")
    with Session(ws.engine) as s:
        rows = list(s.scalars(select(AuditEvent).where(AuditEvent.patient_id == PID).order_by(AuditEvent.id)))
    actions = [r.action for r in rows]
    assert actions[:3] == ["view.patient", "api.summary", "decision.reject"]
    view = rows[0]
    assert view.actor == "clinician" and len(view.input_hash or "") == 64
    assert "carelens-record-summary@" in (view.model_version or "") and f"{IMAGE_MODEL}@1.0.0" in (
        view.model_version or ""
    )
    assert rows[2].ts >= rows[0].ts
    assert audit.verify(ws.engine).ok


def test_audit_detects_a_changed_row_in_the_running_app(ws: Workspace) -> None:
    ws.clients["clinician"].get(f"/patients/{PID}")
    r = ws.client().get("/api/audit/verify", headers=ws.bearer("admin"))
    assert r.json()["ok"] is True
    with ws.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'someone-else' WHERE action = 'view.patient'"))
    report = ws.client().get("/api/audit/verify", headers=ws.bearer("admin")).json()
    assert report["ok"] is False and "altered" in report["reason"]


def test_cds_discovery_shape(ws: Workspace) -> None:
    body = ws.client().get("/cds-services", headers=ws.bearer("researcher")).json()
    assert set(body) == {"services"} and len(body["services"]) == 1
    service = body["services"][0]
    for key, kind in (("id", str), ("hook", str), ("title", str), ("description", str), ("prefetch", dict)):
        assert isinstance(service[key], kind), key
    assert service["hook"] == "patient-view"
    assert all(isinstance(v, str) and "{{context.patientId}}" in v for v in service["prefetch"].values())


def _check_card(card: dict) -> None:
    assert isinstance(card["summary"], str) and 0 < len(card["summary"]) <= 140
    assert card["indicator"] in ("info", "warning", "critical")
    assert isinstance(card["source"]["label"], str) and card["source"]["label"]
    assert card["source"]["url"].startswith("https://carelens.example/")  # the configured base, not Host
    assert re.fullmatch(r"[0-9a-f-]{36}", card["uuid"])
    for link in card.get("links", []):
        assert (
            link["type"] in ("absolute", "smart")
            and link["label"]
            and link["url"].startswith("https://carelens.example/")
        )


def test_cds_patient_view_cards_and_feedback(ws: Workspace) -> None:
    hook = {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"userId": "Practitioner/example", "patientId": PID},
    }
    r = ws.client().post(CDS, json=hook, headers=ws.bearer("clinician"))
    assert r.status_code == 200
    cards = r.json()["cards"]
    assert len(cards) == 4
    for card in cards:
        _check_card(card)
    (pgx,) = [c for c in cards if "clopidogrel" in c["summary"]]
    assert "CPIC (strength not stated, general): consider an alternative" in pgx["detail"]
    assert pgx["source"]["url"].endswith("/models/carelens-pgx") and "clinician decides" in pgx["detail"]
    assert {c["indicator"] for c in cards} == {"warning", "critical"}
    assert any(c["source"]["url"].endswith(f"/models/{IMAGE_MODEL}") for c in cards)
    assert all(c["links"][0]["url"].endswith(f"/patients/{PID}") for c in cards)

    other = ws.client().post(
        CDS, json={**hook, "context": {"patientId": "pat-other-2"}}, headers=ws.bearer("clinician")
    )
    (info,) = other.json()["cards"]
    _check_card(info)
    assert info["indicator"] == "info"

    feedback = {
        "feedback": [
            {"card": cards[0]["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-11-28T05:00:00Z"},
            {
                "card": cards[1]["uuid"],
                "outcome": "overridden",
                "outcomeTimestamp": "2026-11-28T05:00:00Z",
                "overrideReason": {
                    "reason": {"code": "patient-declined", "display": "Patient declined"},
                    "userComment": "discussed at the visit",
                },
            },
        ]
    }
    r = ws.client().post(f"{CDS}/feedback", json=feedback, headers=ws.bearer("clinician"))
    assert r.status_code == 200
    with Session(ws.engine) as s:
        rows = list(s.scalars(select(CdsFeedback).order_by(CdsFeedback.id)))
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.action.like("cds.feedback%"))))
    assert [(f.outcome, f.override_reason) for f in rows] == [
        ("accepted", None),
        ("overridden", "discussed at the visit"),
    ]
    assert [e.patient_id for e in events] == [PID, PID]


def test_cds_feedback_override_without_reason_stores_nothing(ws: Workspace) -> None:
    bad = {
        "feedback": [
            {"card": "c-ok", "outcome": "accepted", "outcomeTimestamp": "2026-11-28T05:00:00Z"},
            {"card": "c-bad", "outcome": "overridden", "outcomeTimestamp": "2026-11-28T05:00:00Z"},
        ]
    }
    r = ws.client().post(f"{CDS}/feedback", json=bad, headers=ws.bearer("clinician"))
    assert r.status_code == 422
    assert (
        ws.client()
        .post(
            "/cds-services/no-such-service",
            headers=ws.bearer("clinician"),
            json={"hook": "patient-view", "hookInstance": "x", "context": {"patientId": PID}},
        )
        .status_code
        == 404
    )
    with Session(ws.engine) as s:
        assert s.scalars(select(CdsFeedback)).first() is None


def test_every_model_card_link_opens_a_card_with_maker_use_performance_limits(ws_sqlite: Workspace) -> None:
    client = ws_sqlite.clients["clinician"]
    links = set(re.findall(r'class="model-card" href="([^"]+)"', client.get(f"/patients/{PID}").text))
    assert len(links) == 4  # summary, image model, PGx, findings
    for link in links:
        card = client.get(link)
        assert card.status_code == 200, link
        lead = card.text[card.text.index("Who made it") : card.text.index("Registry id")]
        assert "not documented" not in lead, link  # who made it, intended use, limitations
        performance = card.text[card.text.index("<h2>Performance</h2>") : card.text.index("HTI-1")]
        assert "No measured performance" not in performance, link


def test_image_files_are_audited_with_their_model(ws_sqlite: Workspace) -> None:
    ws = ws_sqlite
    assert ws.clients["clinician"].get(f"/patients/{PID}/imaging/0/heatmap").status_code == 200
    (row,) = audit.events(ws.engine, PID, limit=1)
    assert (row.action, row.actor, row.model_version) == ("view.heatmap", "clinician", f"{IMAGE_MODEL}@1.0.0")


def test_cds_feedback_is_tied_to_the_issuing_audit_row_across_restarts(ws: Workspace) -> None:
    from carelens.server import create_app

    hook = {"hook": "patient-view", "hookInstance": "h-2", "context": {"patientId": PID}}
    card = ws.client().post(CDS, json=hook, headers=ws.bearer("clinician")).json()["cards"][0]["uuid"]
    (issued,) = [e for e in audit.events(ws.engine, PID) if e.action == "cds.patient-view"]
    restarted = TestClient(create_app(ws.app.state.ctx.settings))  # type: ignore[attr-defined]
    body = {"feedback": [{"card": card, "outcome": "accepted", "outcomeTimestamp": "2026-11-28T05:00:00Z"}]}
    assert restarted.post(f"{CDS}/feedback", json=body, headers=ws.bearer("clinician")).status_code == 200
    (event,) = [e for e in audit.events(ws.engine) if e.action == "cds.feedback.accepted"]
    assert event.patient_id == PID and event.model_version == issued.model_version
    assert json.loads(event.detail)["issued_in"] == issued.id

    never = "00000000-0000-4000-8000-000000000000"
    unknown = {"feedback": [body["feedback"][0], {**body["feedback"][0], "card": never}]}
    r = restarted.post(f"{CDS}/feedback", json=unknown, headers=ws.bearer("clinician"))
    assert r.status_code == 404 and "nothing was stored" in r.json()["detail"]
    with Session(ws.engine) as s:
        assert len(list(s.scalars(select(CdsFeedback)))) == 1  # only the first request's


WILDCARDS = ["%", "_", "%%%%%%%%-%%%%-%%%%-%%%%-%%%%%%%%%%%%", "________-____-____-____-____________"]


@pytest.mark.parametrize("card", WILDCARDS)
def test_cds_feedback_wildcards_never_match_an_issued_card(ws_sqlite: Workspace, card: str) -> None:
    """Card ids are matched exactly: SQL wildcards are malformed ids (422), nothing is stored."""
    ws = ws_sqlite
    hook = {"hook": "patient-view", "hookInstance": "h-3", "context": {"patientId": PID}}
    assert ws.client().post(CDS, json=hook, headers=ws.bearer("clinician")).status_code == 200
    body = {"feedback": [{"card": card, "outcome": "accepted", "outcomeTimestamp": "2026-11-28T05:00:00Z"}]}
    r = ws.client().post(f"{CDS}/feedback", json=body, headers=ws.bearer("clinician"))
    assert r.status_code == 422
    with Session(ws.engine) as s:
        assert s.scalars(select(CdsFeedback)).first() is None
