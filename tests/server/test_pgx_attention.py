"""The needs-attention rule for pharmacogenomic results that bear on a current medication, on
real ``genome pgx`` reports of PharmCAT test VCFs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from carelens.server.pgx_attention import medication_pgx_items


def _summary(*meds: tuple[str, str | None]) -> dict[str, Any]:
    items = [
        {"text": text, "status": status, "citations": [{"resource": f"MedicationRequest/m{n}", "note_span": None}]}
        for n, (text, status) in enumerate(meds)
    ]
    return {"sections": [{"code": "10160-0", "title": "Medications", "items": items}]}


@pytest.fixture
def report(shared_data: Path) -> Any:
    genomics = pytest.importorskip("carelens.genomics")
    root = shared_data / "genomics" / "pharmcat" / "test-vcfs" / "haplotype"

    def make(vcf: str, outside: Path | None = None) -> dict[str, Any]:
        return genomics.pgx_report(root / vcf, outside_calls=outside).model_dump(mode="json")

    return make


def test_dpyd_decreased_function_flags_capecitabine_and_fluorouracil(report: Any) -> None:
    summary = _summary(
        ("capecitabine 500 MG Oral Tablet, started 2024-01-02", "active"),
        ("Fluorouracil 50 MG/ML Injectable Solution", None),  # contract-shaped items may carry no status
        ("Ondansetron 4 MG Oral Tablet", "active"),
    )
    items = medication_pgx_items(report("DPYD/c2846het.vcf"), summary)
    assert [i.detail["drug"] for i in items] == ["capecitabine", "fluorouracil"]
    cap = items[0]
    assert cap.needs_attention and cap.kind == "pgx" and cap.model_id == "carelens.genomics.pgx"
    assert cap.citations == [{"resource": "MedicationRequest/m0", "note_span": None}]
    assert cap.detail["genotype"] == [
        {
            "gene": "DPYD",
            "diplotypes": ["Reference/c.2846A>T"],
            "phenotype": "Intermediate Metabolizer",
            "activity_score": "1.5",
            "source": "vcf",
        }
    ]
    (rec,) = [r for r in cap.detail["recommendations"] if r["source"] == "CPIC"]
    assert rec["strength"] == "Moderate" and rec["text"].startswith("Reduce starting dose by 50%")
    (dpwg,) = [r for r in cap.detail["recommendations"] if r["source"] == "DPWG"]  # beside CPIC, as PharmCAT shows
    assert dpwg["version"] and "DPYD" in str(dpwg["guideline"])
    assert "clinician decides" in cap.detail["rule"]
    assert medication_pgx_items(report("DPYD/novariant.vcf"), summary) == []  # normal metabolizer


def test_only_active_medications_and_whole_drug_names(report: Any) -> None:
    slco = report("SLCO1B1/s1s15.vcf")
    stopped = _summary(("Simvastatin 20 MG Oral Tablet — stopped, last ordered 2024-05-01", "stopped"))
    assert medication_pgx_items(slco, stopped) == []
    assert medication_pgx_items(slco, _summary(("Simvastatinex 1 MG", "active"))) == []
    (item,) = medication_pgx_items(slco, _summary(("Simvastatin 20 MG Oral Tablet", "active")))
    assert item.text == (
        "simvastatin (taken: Simvastatin 20 MG Oral Tablet) with SLCO1B1 *1/*15 (Decreased Function): "
        "CPIC/DPWG recommendation applies (Strong, strength not stated)"  # DPWG's c.521 CT group beside CPIC's
    )
    assert medication_pgx_items(slco, None) == [] and medication_pgx_items(None, stopped) == []
    normal = report("SLCO1B1/s1s1.vcf")
    assert medication_pgx_items(normal, _summary(("Simvastatin 20 MG Oral Tablet", "active"))) == []


def test_hla_positive_flags_and_negative_does_not(report: Any, tmp_path: Path) -> None:
    calls = tmp_path / "outside.tsv"
    calls.write_text("HLA-B\t*57:01/*08:01\n")
    pgx = report("cyp2c19/s1s1.vcf", calls)
    summary = _summary(("abacavir 300 MG Oral Tablet", "active"), ("allopurinol 100 MG Oral Tablet", "active"))
    (item,) = medication_pgx_items(pgx, summary)
    assert item.detail["drug"] == "abacavir" and item.detail["genotype"][0]["phenotype"] == "*57:01 positive"
    assert item.detail["genotype"][0]["source"] == "outside call"


def test_clopidogrel_lists_every_population_and_keys_are_stable(report: Any) -> None:
    pgx = report("cyp2c19/s1s2.vcf")
    summary = _summary(("Clopidogrel 75 MG Oral Tablet", "active"))
    (item,) = medication_pgx_items(pgx, summary)
    recs = [r for r in item.detail["recommendations"] if r["source"] == "CPIC"]
    assert [r["population"] for r in recs] == ["CVI ACS PCI", "CVI non-ACS non-PCI", "NVI"]
    assert [r["strength"] for r in recs] == ["Strong", "No recommendation", "Moderate"]
    assert item.key == medication_pgx_items(pgx, summary)[0].key
    assert medication_pgx_items(report("cyp2c19/s1s1.vcf"), summary) == []


def test_dpwg_advice_flags_unless_dpwg_says_no_prescription_change(report: Any) -> None:
    summary = _summary(("Acenocoumarol 1 MG Oral Tablet", "active"))
    (item,) = medication_pgx_items(report("VKORC1/-1639A-1639A.vcf"), summary)
    assert item.text.endswith("DPWG recommendation applies (strength not stated)")
    (rec,) = item.detail["recommendations"]
    assert (rec["source"], rec["version"]) == ("DPWG", "31") and "50% of the standard initial dose" in rec["text"]
    assert medication_pgx_items(report("VKORC1/-1639G-1639A.vcf"), summary) == []  # DPWG: no prescription change
