"""PharmCAT's malformed and edge-case VCFs: each gives its documented outcome, never a wrong call as a call."""

from __future__ import annotations

from pathlib import Path

import pytest

from carelens.core.errors import CarelensError, UsageError
from carelens.genomics.pgx import pgx_report
from carelens.genomics.vcf import vcf_info

# file -> (sample, gene, expected diplotypes, substring of the reason or of a warning); [] means "not called"
DOCUMENTED = {
    "haplotype/NamedAlleleMatcher-partial.vcf": (None, "UGT1A1", [], "allele not in the UGT1A1 definitions"),
    "haplotype/NamedAlleleMatcher-partialReferencePhased.vcf": (None, "CYP2B6", [], "chr19:41006968, 41012316"),
    "haplotype/VcfReaderTest-phaseSet.vcf": ("Sample_1", "CYP2B6", [], "no combination"),  # phase sets: trans
    "haplotype/VcfReaderTest-alleleOrder.vcf": (None, "DPYD", ["c.3061G>C/c.3067C>A"], "genotype missing"),
    "haplotype/VcfReaderTest-filters.vcf": (None, "CYP2C9", [], "REF does not match"),
    "haplotype/NamedAlleleMatcher-mismatchedRefAllele.vcf": (None, "CYP2C9", ["*1/*2"], "REF does not match"),
    "haplotype/NamedAlleleMatcher-sortError.vcf": (None, "CYP2C19", ["*1/*2"], "2 records"),
    "Sample_2.preprocessed.vcf": (None, "CYP2B6", [], "allele not in the CYP2B6 definitions at chr19:40991381"),
    "reference.vcf": (None, "CYP2C19", ["*38/*38"], ""),
}


def _edge_files(root: Path) -> list[Path]:
    return sorted([*root.glob("haplotype/*.vcf"), *root.glob("*.vcf"), *root.glob("*.bgz")])


@pytest.mark.parametrize("rel", sorted(DOCUMENTED))
def test_documented_outcome(rel: str, test_vcfs: Path) -> None:
    sample, gene, diplotypes, text = DOCUMENTED[rel]
    g = next(g for g in pgx_report(test_vcfs / rel, sample=sample).genes if g.gene == gene)
    assert g.diplotypes == diplotypes
    assert text in " ".join([g.reason or "", *g.warnings])
    if not diplotypes:
        assert g.reason and g.phenotype is None


def test_structural_alt_file_has_no_pgx_positions(test_vcfs: Path) -> None:
    report = pgx_report(test_vcfs / "haplotype/VcfReaderTest-structuralAlt.vcf")
    assert all(not g.diplotypes and g.reason for g in report.genes)
    assert report.drugs == []


def test_multisample_needs_a_choice(test_vcfs: Path) -> None:
    with pytest.raises(UsageError, match="--sample"):
        pgx_report(test_vcfs / "haplotype/VcfSampleReaderTest-multisample.vcf")


def test_every_edge_file_gives_a_call_or_a_reason(test_vcfs: Path) -> None:
    """Across all top-level PharmCAT test VCFs: each gene is either called (no reason) or not (with a reason)."""
    files = _edge_files(test_vcfs)
    assert len(files) >= 30
    for path in files:
        info = vcf_info(path)
        try:
            report = pgx_report(path, sample=info.samples[0] if info.samples else None)
        except CarelensError as err:
            assert err.reason
            continue
        for g in report.genes:
            assert bool(g.diplotypes) != bool(g.reason), (path.name, g.gene)
            if g.phenotype is not None:
                assert g.diplotypes or "rs4149056" in (g.phenotype_note or "")
