"""Safe Harbor ZIP codes: three digits kept, the 17 sparsely populated areas become 000."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carelens.privacy.fhir import deid_fhir_path
from carelens.privacy.keys import KeyService
from carelens.privacy.zip3 import safe_harbor_zip
from tests.privacy.conftest import write_canary_source

HHS_RESTRICTED = [
    "036",
    "059",
    "063",
    "102",
    "203",
    "556",
    "692",
    "790",
    "821",
    "823",
    "830",
    "831",
    "878",
    "879",
    "884",
    "890",
    "893",
]


@pytest.mark.parametrize("area", HHS_RESTRICTED)
def test_restricted_areas_become_000(area: str) -> None:
    assert safe_harbor_zip(f"{area}42") == "00000"
    assert safe_harbor_zip(f"{area}42-1234") == "00000"


@pytest.mark.parametrize(("value", "expected"), [("02139", "02100"), ("03745-0001", "03700"), ("1023", ""), ("", "")])
def test_other_areas_keep_three_digits(value: str, expected: str) -> None:
    assert safe_harbor_zip(value) == expected


def test_every_three_digit_area_but_the_17_kept() -> None:
    kept = [f"{n:03d}" for n in range(1000) if safe_harbor_zip(f"{n:03d}11") == f"{n:03d}00"]
    assert sorted(set(f"{n:03d}" for n in range(1000)) - set(kept)) == HHS_RESTRICTED


def test_fhir_postal_code_of_a_restricted_area(tmp_path: Path, keys: KeyService, canary_patient: dict) -> None:
    canary_patient["address"][0]["postalCode"] = "03601"
    src = write_canary_source(tmp_path, canary_patient)
    deid_fhir_path(src, tmp_path / "out", keys)
    (written,) = (tmp_path / "out").glob("*.json")  # output files are named by pseudonym
    bundle = json.loads(written.read_text())
    patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    assert [a.get("postalCode") for a in patient["address"]] == ["00000"]
