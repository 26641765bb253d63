"""Fixtures for the genomics tests: PharmCAT test VCFs and small VCFs written on the fly."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def pharmcat(shared_data: Path) -> Path:
    """The PharmCAT data folder (alleles, phenotypes, guidelines, test VCFs)."""
    return shared_data / "genomics" / "pharmcat"


@pytest.fixture(scope="session")
def test_vcfs(pharmcat: Path) -> Path:
    return pharmcat / "test-vcfs"


HEADER = """##fileformat=VCFv4.2
##reference=GRCh38
##contig=<ID={chrom},length={length}>
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
##FORMAT=<ID=PS,Number=1,Type=Integer,Description="Phase set">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{samples}
"""


def write_vcf(
    path: Path,
    rows: list[str],
    samples: str = "S1",
    chrom: str = "chr10",
    length: int = 133797422,
    header: str | None = None,
) -> Path:
    """Write a small VCF: ``rows`` are tab-separated record lines."""
    text = header if header is not None else HEADER.format(chrom=chrom, length=length, samples=samples)
    path.write_text(text + "".join(r.rstrip("\n") + "\n" for r in rows))
    return path
