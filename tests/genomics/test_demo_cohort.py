"""The demo cohort's planted PGx diplotypes and ACMG variants are all reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from carelens.genomics.findings import find_secondary
from carelens.genomics.pgx import pgx_report


@pytest.fixture(scope="module")
def demo(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from carelens.demo.cohort import generate_cohort

    out = tmp_path_factory.mktemp("demo")
    return generate_cohort(out, patients=8, seed=3, shared_data=shared_data, training_images=False)


def test_planted_pgx_and_variants_are_reported(demo) -> None:  # type: ignore[no-untyped-def]
    root: Path = demo.root
    clinvar = root / "genomics/clinvar-demo.vcf"
    with_vcf = [p for p in demo.patients if p.vcf]
    assert with_vcf and clinvar.exists()
    planted_acmg = 0
    for patient in with_vcf:
        report = pgx_report(root / patient.vcf)
        calls = {g.gene: g for g in report.genes}
        for planted in patient.pgx:
            got = calls[planted.gene]
            assert got.diplotypes == [planted.diplotype], (planted.gene, planted.diplotype, got.diplotypes)
            if planted.phenotype:
                assert got.phenotype == planted.phenotype
        findings = find_secondary(root / patient.vcf, clinvar)
        found = {(f.gene, f.pos, f.alt) for f in findings.findings}
        for v in patient.pathogenic_variants:
            if v.acmg:
                planted_acmg += 1
                assert (v.gene, v.pos, v.alt) in found, (v.gene, v.pos)
            else:
                assert (v.gene, v.pos, v.alt) not in found  # not an ACMG SF gene: not a secondary finding
    assert planted_acmg > 0
