"""FHIR by allow-list: a canary planted in every element, extension, attachment, Bundle field and
file name the issue names; none survives de-identification."""

from __future__ import annotations

import json
from pathlib import Path

from carelens.privacy.fhir import Profile, deid_fhir_path
from carelens.privacy.keys import KeyService
from tests.privacy.adversarial import found_canaries, write_adversarial


def test_adversarial_canaries_are_all_planted_and_all_removed(tmp_path: Path, keys: KeyService) -> None:
    src = write_adversarial(tmp_path)
    assert len(set(found_canaries(src))) >= 14  # the check sees every canary in the source
    out = tmp_path / "out"
    result = deid_fhir_path(src, out, keys)
    assert not result.quarantined
    assert result.done["attachments_dropped"] == 4  # PDF, octet-stream, PNG and a URL-only attachment
    assert found_canaries(out) == []


def test_bundle_fields_are_rebuilt_and_names_are_pseudonyms(tmp_path: Path, keys: KeyService) -> None:
    out = tmp_path / "out"
    deid_fhir_path(write_adversarial(tmp_path), out, keys)
    (only,) = list(out.iterdir())
    assert only.name == keys.pseudonym("pat-adv-1") + ".json"
    bundle = json.loads(only.read_text())
    assert set(bundle) == {"resourceType", "type", "entry"}
    assert all(set(e) <= {"fullUrl", "resource", "response", "request"} for e in bundle["entry"])
    assert all(e["response"] == {"status": "201"} for e in bundle["entry"])
    by_type = {e["resource"]["resourceType"]: e["resource"] for e in bundle["entry"]}
    assert "name" not in by_type["RelatedPerson"] and "udiCarrier" not in by_type["Device"]
    assert by_type["Coverage"]["subscriberId"] != "SUBX7781234" and len(by_type["Coverage"]["subscriberId"]) == 32
    # the coded part of a concept stays; its labels went through the de-identifiers
    assert by_type["Condition"]["code"]["coding"][0]["code"] == "44054006"
    assert "Diabetes" in by_type["Condition"]["code"]["coding"][0]["display"]
    # valueHumanName, valueIdentifier, valueContactPoint may not leave; a valueAddress with nothing
    # but street and city has nothing left; the mother's maiden name extension is removed by URL
    assert "extension" not in by_type["Patient"]


def test_elements_not_in_the_allow_list_are_removed(tmp_path: Path, keys: KeyService) -> None:
    src = tmp_path / "src"
    src.mkdir()
    obs = {"resourceType": "Observation", "id": "o1", "status": "final", "secretNote": "Quixley",
           "valueQuantity": {"value": 5, "unit": "mg"}, "_status": {"extension": []}}  # fmt: skip
    (src / "o.json").write_text(json.dumps(obs))
    deid_fhir_path(src, tmp_path / "out", keys)
    (only,) = list((tmp_path / "out").iterdir())
    new = json.loads(only.read_text())
    assert set(new) == {"resourceType", "id", "status", "valueQuantity"}
    assert only.name.startswith("fhir-")


def test_unreadable_text_attachment_quarantines_the_resource(tmp_path: Path, keys: KeyService) -> None:
    src = tmp_path / "src"
    src.mkdir()
    bad = {"resourceType": "DocumentReference", "id": "d1", "status": "current",
           "content": [{"attachment": {"contentType": "text/plain", "data": "@@not base64@@"}}]}  # fmt: skip
    good = {"resourceType": "Observation", "id": "o1", "status": "final"}
    (src / "Observation.000.ndjson").write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    result = deid_fhir_path(src, tmp_path / "out", keys)
    assert result.done["resources"] == 1
    assert [q.reason for q in result.quarantined] == ["DocumentReference: attachment data is not valid base64"]
    assert (tmp_path / "out" / "Observation.000.ndjson").read_text().count("\n") == 1


def test_profile_without_resources_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"rules": []}))
    try:
        Profile.from_file(path)
    except ValueError as err:
        assert "allow-list" in str(err)
    else:
        raise AssertionError("an old rules profile must be refused")


def test_huge_text_attachment_quarantines_the_resource(tmp_path: Path, keys: KeyService, monkeypatch) -> None:
    import base64

    from carelens.privacy import fhir

    monkeypatch.setattr(fhir, "MAX_ATTACHMENT_BYTES", 1024)
    src = tmp_path / "src"
    src.mkdir()
    doc = {"resourceType": "DocumentReference", "id": "d1", "status": "current",
           "content": [{"attachment": {"contentType": "text/plain",
                                       "data": base64.b64encode(b"Quixley " * 400).decode()}}]}  # fmt: skip
    (src / "DocumentReference.000.ndjson").write_text(json.dumps(doc) + "\n")
    result = deid_fhir_path(src, tmp_path / "out", keys)
    assert [q.reason for q in result.quarantined] == ["DocumentReference: text attachment over 1,024 bytes"]
    assert not (tmp_path / "out").exists()  # nothing half-cleaned is written


def test_cli_refuses_a_bad_profile_in_one_line(tmp_path: Path, secret_env: Path) -> None:
    from typer.testing import CliRunner

    from carelens.cli import app

    bad = tmp_path / "p.json"
    bad.write_text("{not json")
    src = tmp_path / "src"
    src.mkdir()
    res = CliRunner().invoke(app, ["deid", "fhir", str(src), "--out", str(tmp_path / "o"), "--profile", str(bad)])
    assert res.exit_code != 0 and "not a readable allow-list profile" in str(res.exception)


def test_one_reading_of_the_source_gives_the_contexts_and_identifiers(tmp_path: Path, keys: KeyService) -> None:
    from carelens.privacy.fhir import known_identifiers, load_patients, patients_and_known

    src = write_adversarial(tmp_path)
    files = sorted(src.rglob("*.json"))
    patients, known = patients_and_known(files, keys)
    assert known == known_identifiers(files) and known
    assert {pid: (c.names, c.identifiers) for pid, c in patients.items()} == {
        pid: (c.names, c.identifiers) for pid, c in load_patients(files, keys).items()
    }


def test_remembered_scrubs_and_ids_are_what_they_replace(keys: KeyService) -> None:
    from carelens.privacy.fhir import FhirDeidentifier
    from carelens.privacy.known import Known

    known = Known()
    known.add("name", "Quixley")
    texts = ["Seen by Quixley", "QUIXLEY123 again", "nothing here", "Seen by Quixley", "Zebulon at home"]
    assert [known.scrub(t) for t in texts] == [known.regex().sub("[REDACTED]", t) for t in texts]  # type: ignore[union-attr]
    known.add("name", "Zebulon")  # a new identifier: what was remembered is forgotten
    assert known.scrub("Zebulon at home") == "[REDACTED] at home"
    deid = FhirDeidentifier(keys)
    assert deid.new_id("Patient", "p1") == keys.pseudonym("p1") == deid.new_id("Patient", "p1")
    assert deid.new_id("Encounter", "p1") == keys.hash_hex("fhir-id", "p1", 32) != deid.new_id("Patient", "p1")
