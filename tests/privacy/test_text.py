# ruff: noqa: E501
"""Text de-identification: detection, surrogates, offsets, formats, bad input, the command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carelens.cli import app
from carelens.privacy.context import PatientContext
from carelens.privacy.dates import DATE_RE, shift_date
from carelens.privacy.detect import detect_phi
from carelens.privacy.keys import KeyService
from carelens.privacy.text import deidentify_text
from tests.privacy.conftest import CANARY, canary_note

NOTE = (
    "Pt seen by Dr. John Smith on 3/4/2019 at Beth Israel Deaconess. Wife Mary called (617) 555-1234.\n"
    "MRN: 12345678. Lives at 12 Elm Street, Boston, MA 02115. 92 yo F. Email js@mail.com, "
    "portal https://portal.example.com/u/42, IP 10.2.33.4. Smith agreed to plan.\n"
)
CAPS = (
    "PT RESTING COMFORTABLY. WIFE ANNE VISITED, SPOKE WITH DR KOWALSKI RE PLAN. "
    "TRANSFER TO ST MARGARETS HOSPITAL ON 12/3. NEURO: A+OX3. LS CLEAR. FOLEY DRAINING CLEAR URINE.\n"
)


def _found(text: str, ctx: PatientContext | None = None) -> set[str]:
    return {text[s.start : s.end] for s in detect_phi(text, ctx)}


def test_finds_safe_harbor_identifiers_in_mixed_case() -> None:
    found = _found(NOTE)
    for value in ["John Smith", "3/4/2019", "Mary", "(617) 555-1234", "12345678", "12 Elm Street", "Boston",
                  "02115", "92", "js@mail.com", "https://portal.example.com/u/42", "10.2.33.4"]:  # fmt: skip
        assert any(value in f for f in found), value
    assert any("Beth Israel" in f for f in found)
    assert "Smith" in found  # the later mention alone, propagated from the first


def test_all_caps_names_and_hospital_but_not_clinical_words() -> None:
    found = _found(CAPS)
    assert {"ANNE", "KOWALSKI", "12/3"} <= found
    assert any("ST MARGARETS" in f for f in found)  # "HOSPITAL", a generic word, may stay
    for word in ["FOLEY", "NEURO", "CLEAR", "RESTING", "PT", "URINE"]:
        assert not any(word in f.split() for f in found), word


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("Seen by Dr. Joy Green today.", {"Joy Green"}),
        ("PCP: Dr. Hope Lee. Will follow up.", {"Hope Lee"}),
        ("Mrs. May is better today.", {"May"}),
        ("DR. GRACE LEE SAW PT.", {"GRACE LEE"}),
        ("F/U W/ DR. MURPHY @ CLINIC 6/19.", {"MURPHY"}),  # an eponym ("Murphy's sign") after a title
        ("DR. MAY CHEN TO CALL.", {"MAY CHEN"}),
    ],
)
def test_a_name_that_is_also_a_word_is_a_name_after_a_title(text: str, names: set[str]) -> None:
    found = _found(text)
    assert all(any(n in f for f in found) for n in names), found
    assert not any(w in f.split() for f in found for w in ("Will", "today", "better"))


def test_a_word_after_a_title_stays_a_word_when_nothing_says_it_is_a_name() -> None:
    assert _found("Dr. will see pt in am.") == set()
    assert _found("DR. WILL SEE PT IN AM.") == set()


def test_offsets_are_exact_and_replacements_applied(keys: KeyService) -> None:
    res = deidentify_text(NOTE, keys=keys, document_id="n1")
    assert res.spans
    for s in res.spans:
        assert NOTE[s.start : s.end] == s.text
    rebuilt, pos = [], 0
    for s in res.spans:
        rebuilt += [NOTE[pos : s.start], s.replacement]
        pos = s.end
    assert "".join([*rebuilt, NOTE[pos:]]) == res.text
    assert "John Smith" not in res.text and "555-1234" not in res.text


def test_surrogates_consistent_within_patient_and_differ_between(keys: KeyService) -> None:
    a = PatientContext("pa", keys)
    one = deidentify_text("Seen by Dr. Kowalski today.", a)
    two = deidentify_text("DR KOWALSKI CALLED BACK.", a)
    other = deidentify_text("Seen by Dr. Kowalski today.", PatientContext("pb-different", keys))
    r1, r2 = one.spans[0].replacement, two.spans[0].replacement
    assert r1.upper() == r2 and r2.isupper()  # same surrogate, case kept
    assert r1 != "Kowalski"
    assert other.text == deidentify_text("Seen by Dr. Kowalski today.", PatientContext("pb-different", keys)).text
    assert r1 != other.spans[0].replacement or one.text != other.text


@pytest.mark.parametrize(
    "original,pattern",
    [("03/14/2019", r"^\d\d/\d\d/\d{4}$"), ("3/14/2019", r"^\d{1,2}/\d{1,2}/\d{4}$"), ("2019-03-14", r"^\d{4}-\d\d-\d\d$"),
     ("March 14, 2019", r"^[A-Z][a-z]+ \d{1,2}, \d{4}$"), ("14-Mar-2019", r"^\d\d-[A-Z][a-z]{2}-\d{4}$"),
     ("MAR 14", r"^[A-Z]{3} \d{1,2}$"), ("3/14", r"^\d{1,2}/\d{1,2}$"), ("14th of March", r"^\d{1,2}(st|nd|rd|th) of [A-Z][a-z]+$")],
)  # fmt: skip
def test_date_shift_keeps_format(original: str, pattern: str) -> None:
    m = DATE_RE.fullmatch(original)
    assert m is not None
    shifted = shift_date(m, -100)
    assert shifted != original and re.match(pattern, shifted), shifted


def test_dates_shift_by_the_patients_shift(keys: KeyService) -> None:
    ctx = PatientContext("p-shift", keys)
    res = deidentify_text("Admitted 2020-03-01.", ctx)
    from datetime import date, timedelta

    expected = (date(2020, 3, 1) + timedelta(days=ctx.date_shift)).isoformat()
    assert res.spans[0].replacement == expected


def test_known_identifiers_of_the_patient_are_found(keys: KeyService, canary_patient: dict) -> None:
    ctx = PatientContext.from_fhir(canary_patient, keys)
    note = canary_note()
    res = deidentify_text(note, ctx)
    for value in [CANARY["given"], CANARY["family"], CANARY["mrn"], CANARY["ssn"], CANARY["phone"], CANARY["line"],
                  CANARY["city"], CANARY["zip"], "Quixly"]:  # fmt: skip
        assert value.lower() not in res.text.lower(), value
    assert "1951" in note and "07/23/1951" not in res.text


def test_ages_over_89_become_90_plus(keys: KeyService) -> None:
    res = deidentify_text("A 94 year old woman; her son is 67 yo.", keys=keys)
    assert "90+ year old" in res.text and "67 yo" in res.text


def test_cli_text_folder_with_bad_inputs(tmp_path: Path, secret_env: Path) -> None:
    src = tmp_path / "notes"
    src.mkdir()
    (src / "good.txt").write_text(NOTE)
    (src / "empty.txt").write_text("   \n")
    (src / "binary.txt").write_bytes(b"\x00\x01\x02PNG")
    (src / "latin1.txt").write_bytes("Patient Jos\xe9".encode("latin-1"))
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["deid", "text", str(src), "--out", str(out)])
    assert res.exit_code == 3, res.output
    report = json.loads(res.stdout)
    assert report["done"] == {"notes": 1} and len(report["quarantined"]) == 3
    assert all("Jos" not in q["reason"] for q in report["quarantined"])
    spans = json.loads((out / "good.phi.json").read_text())
    assert spans and all(NOTE[s["start"] : s["end"]] == s["text"] for s in spans)
    assert set(spans[0]) == {"start", "end", "type", "text", "replacement"}
    assert not (out / "empty.txt").exists() and not (out / "binary.txt").exists()


def test_nursing_shorthand_vitals_and_drugs_are_not_phi() -> None:
    note = (
        "NEURO: A+OX3, MAE. CV: HR 88 SINUS 90S, BP 120/80, NO ECTOPY. RESP: LS CLEAR, SAT 98% 2L NC.\n"
        "GI: ABD SOFT, +BS. GU: FOLEY DRAINING CLEAR YELLOW URINE 40-60CC/HR. LASIX 40 IV GIVEN 2 UNITS 10 MIN.\n"
        "PLAN: CONT CURRENT MEDS, MONITOR LYTES, K 3.9, MG 2.0. SPOKE WITH DAUGHTER LISA RE PLAN, CALL 617-555-0134.\n"
    )
    found = _found(note)
    assert "LISA" in found and "617-555-0134" in found
    assert found <= {"LISA", "617-555-0134"}, found
