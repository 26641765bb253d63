"""The PGx report as a FHIR Genomics Reporting bundle: valid R4 (fhir.resources), one diplotype Observation per called
gene, a phenotype Observation per phenotype, a medication implication per CPIC recommendation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carelens.core.errors import InputError
from carelens.genomics.fhir import pgx_fhir, validate_bundle
from carelens.genomics.pgx import pgx_report


def _profile(entry: dict) -> str:  # type: ignore[type-arg]
    return str(entry["resource"].get("meta", {}).get("profile", [""])[0]).rsplit("/", 1)[-1]


def test_bundle_has_every_call_phenotype_and_recommendation(tmp_path: Path, test_vcfs: Path) -> None:
    outside = tmp_path / "outside.tsv"
    outside.write_text("CYP2D6\t*1/*3\n")
    report = pgx_report(test_vcfs / "Sample_1.preprocessed.vcf", outside_calls=outside)
    bundle = pgx_fhir(report)
    entries = bundle["entry"]
    assert entries[0]["resource"]["resourceType"] == "DiagnosticReport"
    called = [g for g in report.genes if g.diplotypes]
    genotypes = [e for e in entries if _profile(e) == "genotype"]
    assert len(genotypes) == len(called)
    texts = {e["resource"]["valueCodeableConcept"]["text"] for e in entries if "valueCodeableConcept" in e["resource"]}
    assert "CYP2D6 *1/*3" in texts and "Intermediate Metabolizer" in texts
    implications = [e for e in entries if "valueString" in e["resource"]]
    assert len(implications) == len(report.drugs) > 0
    refs = {e["fullUrl"] for e in entries}
    assert all(r["reference"] in refs for e in implications for r in e["resource"]["derivedFrom"])
    assert {r["reference"] for r in entries[0]["resource"]["result"]} == refs - {entries[0]["fullUrl"]}


def test_invalid_bundle_is_refused() -> None:
    with pytest.raises(InputError, match="invalid"):
        validate_bundle(
            {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Observation"}}]}
        )


def test_cli_fhir_format(test_vcfs: Path) -> None:
    from carelens.cli import app

    result = CliRunner().invoke(
        app, ["genome", "pgx", str(test_vcfs / "haplotype/cyp2c19/s1s2.vcf"), "--format", "fhir"]
    )
    assert result.exit_code == 0, result.output
    bundle = json.loads(result.stdout[result.stdout.index("{") :])
    validate_bundle(bundle)
    assert any("CYP2C19 *1/*2" in json.dumps(e) for e in bundle["entry"])
