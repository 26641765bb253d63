"""Inputs: VCF, bgzipped VCF, BCF and gVCF of the same sample give the same report; multi-sample files give one
report per sample; bad input gives a one-line reason per item while the other samples are reported."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import pytest

from carelens.core.errors import InputError
from carelens.genomics.definitions import load_definitions
from carelens.genomics.pgx import PgxReport, pgx_report, pgx_reports
from tests.genomics.conftest import HEADER, write_vcf

BCFTOOLS = shutil.which("bcftools")
GVCF_HEADER = HEADER.replace(
    "##FORMAT=<ID=GT",
    '##ALT=<ID=NON_REF,Description="Any other allele">\n'
    '##INFO=<ID=END,Number=1,Type=Integer,Description="End of the reference block">\n##FORMAT=<ID=GT',
)


def _calls(report: PgxReport) -> dict[str, tuple[tuple[str, ...], str | None, tuple[int, ...]]]:
    return {g.gene: (tuple(g.diplotypes), g.phenotype, tuple(g.not_assayed)) for g in report.genes}


def _records(vcf: Path) -> tuple[list[str], list[list[str]]]:
    header, rows = [], []
    for line in vcf.read_text().splitlines():
        (header if line.startswith("#") else rows).append(line if line.startswith("#") else line.split("\t"))
    return header, rows  # type: ignore[return-value]


def _as_gvcf(vcf: Path, out: Path) -> Path:
    """The same sample as a gVCF: every run of 0/0 records becomes one reference block (REF = first base, END); a
    definition position the VCF lacks breaks the run, so it stays absent (not assayed) as in the VCF."""
    _, rows = _records(vcf)
    present = {int(r[1]) for r in rows}
    loci = sorted(loc.position for g in load_definitions().genes.values() for loc in g.loci)
    lines: list[str] = []
    run: list[list[str]] = []

    def flush() -> None:
        if run:
            first, last = run[0], run[-1]
            end = int(last[1]) + len(last[3]) - 1
            lines.append(
                "\t".join([first[0], first[1], ".", first[3][0], "<NON_REF>", ".", "PASS", f"END={end}", "GT", "0/0"])
            )
            run.clear()

    for r in sorted(rows, key=lambda r: int(r[1])):
        if run and any(int(run[-1][1]) < p < int(r[1]) and p not in present for p in loci):
            flush()
        if r[9].replace("|", "/") == "0/0":
            run.append(r)
            continue
        flush()
        lines.append("\t".join([*r[:4], r[4] + ",<NON_REF>", r[5], r[6], ".", *r[8:]]))
    flush()
    chrom = rows[0][0]
    header = GVCF_HEADER.format(chrom=chrom, length=133797422, samples=_records(vcf)[0][-1].split("\t")[-1])
    return write_vcf(out, lines, header=header)


def test_gvcf_bcf_and_vcf_give_the_same_report(tmp_path: Path, test_vcfs: Path) -> None:
    vcf = test_vcfs / "haplotype/cyp2c19/s1s2.vcf"
    plain = pgx_report(vcf)
    gvcf = _as_gvcf(vcf, tmp_path / "s1s2.g.vcf")
    assert sum(1 for line in gvcf.read_text().splitlines() if "END=" in line) >= 2  # really blocks
    from_gvcf = pgx_report(gvcf)
    assert _calls(from_gvcf) == _calls(plain)
    assert _calls(from_gvcf)["CYP2C19"][0] == ("*1/*2",)
    if BCFTOOLS is None:
        pytest.skip("bcftools not installed (needed to write the BCF)")
    bcf = tmp_path / "s1s2.bcf"
    subprocess.run([BCFTOOLS, "view", "-Ob", "-o", str(bcf), str(vcf)], check=True, capture_output=True)
    assert _calls(pgx_report(bcf)) == _calls(plain)
    bcf_gvcf = tmp_path / "s1s2.g.bcf"
    subprocess.run([BCFTOOLS, "view", "-Ob", "-o", str(bcf_gvcf), str(gvcf)], check=True, capture_output=True)
    subprocess.run([BCFTOOLS, "index", str(bcf_gvcf)], check=True, capture_output=True)
    assert _calls(pgx_report(bcf_gvcf)) == _calls(plain)  # indexed region queries see the blocks too


def test_reference_block_counts_only_where_it_reaches(tmp_path: Path) -> None:
    """A block that stops before a definition position leaves it not assayed; one that covers it makes it
    reference; a variant-only gVCF without blocks says so in a warning."""
    rows = [
        "chr10\t94775300\t.\tA\t<NON_REF>\t.\tPASS\tEND=94775400\tGT\t0/0",  # covers rs12769205 (94775367)
        "chr10\t94781859\trs4244285\tG\tA,<NON_REF>\t.\tPASS\t.\tGT\t0/1",
    ]
    header = GVCF_HEADER.format(chrom="chr10", length=133797422, samples="S1")
    report = pgx_report(write_vcf(tmp_path / "blocks.g.vcf", rows, header=header))
    g = next(g for g in report.genes if g.gene == "CYP2C19")
    assert 94775367 not in g.not_assayed and 94842866 in g.not_assayed
    assert any(p["position"] == 94775367 and p["genotype"] == "A/A" for p in g.positions)
    no_blocks = pgx_report(write_vcf(tmp_path / "noblocks.g.vcf", rows[1:], header=header))
    assert any("no reference block" in w for w in no_blocks.warnings)


def test_multisample_one_report_per_sample(test_vcfs: Path) -> None:
    batch = pgx_reports(test_vcfs / "100samples.vcf.bgz")
    assert len(batch.reports) + len(batch.quarantined) == 100
    assert len({r.sample for r in batch.reports}) == len(batch.reports)
    one = pgx_report(test_vcfs / "100samples.vcf.bgz", sample="s2")
    assert _calls(next(r for r in batch.reports if r.sample == "s2")) == _calls(one)
    assert len(pgx_reports(test_vcfs / "multisample.vcf.bgz").reports) == 2


def test_sample_without_genotypes_is_quarantined_others_reported(tmp_path: Path) -> None:
    rows = [
        "chr10\t94781859\trs4244285\tG\tA\t.\tPASS\t.\tGT\t0/1\t./.",
        "chr10\t94842866\trs3758581\tA\tG\t.\tPASS\t.\tGT\t1/1\t./.",
    ]
    batch = pgx_reports(write_vcf(tmp_path / "two.vcf", rows, samples="CANARY-MRN-0001\tCANARY-MRN-0002"))
    assert [r.sample for r in batch.reports] == ["CANARY-MRN-0001"]
    (q,) = batch.quarantined
    assert q.where == "sample 2 of 2" and "no genotype" in q.reason and "CANARY" not in q.reason + q.where


def test_truncated_bgzip_block_is_one_line_reason(tmp_path: Path, test_vcfs: Path) -> None:
    src = (test_vcfs / "100samples.vcf.bgz").read_bytes()
    cut = tmp_path / "cut.vcf.gz"
    cut.write_bytes(src[: len(src) * 2 // 3])
    with pytest.raises(InputError, match="truncated or corrupt bgzip block") as err:
        pgx_reports(cut)
    assert "\n" not in err.value.reason


def test_grch37_is_refused_with_a_reason(tmp_path: Path) -> None:
    rows = ["chr10\t96541616\trs4244285\tG\tA\t.\tPASS\t.\tGT\t0/1"]
    vcf = write_vcf(tmp_path / "b37.vcf", rows, length=135534747)
    with pytest.raises(InputError, match="GRCh37"):
        pgx_reports(vcf)


def test_bgzipped_vcf_gives_the_same_report(tmp_path: Path, test_vcfs: Path) -> None:
    vcf = test_vcfs / "haplotype/cyp2c19/s1s2.vcf"
    gz = tmp_path / "s1s2.vcf.gz"
    with gzip.open(gz, "wb") as fh:  # plain gzip: htslib reads it (no index possible)
        fh.write(vcf.read_bytes())
    assert _calls(pgx_report(gz)) == _calls(pgx_report(vcf))


def test_padded_indel_is_normalised_to_the_definition(tmp_path: Path) -> None:
    """rs9332131 (CYP2C9, GA>G at 94949281) written with an extra shared base (GAT>GT) is the same deletion once
    trimmed, as bcftools norm / PharmCAT's preprocessor would write it."""
    plain = [
        "chr10\t94949281\trs9332131\tGA\tG\t.\tPASS\t.\tGT\t0/1",
        "chr10\t94942290\trs1799853\tC\tT\t.\tPASS\t.\tGT\t0/0",
    ]
    padded = [plain[0].replace("\tGA\tG\t", "\tGAT\tGT\t"), plain[1]]
    a = next(g for g in pgx_report(write_vcf(tmp_path / "a.vcf", plain)).genes if g.gene == "CYP2C9")
    b = next(g for g in pgx_report(write_vcf(tmp_path / "b.vcf", padded)).genes if g.gene == "CYP2C9")
    assert a.diplotypes and b.diplotypes == a.diplotypes
    assert 94949281 not in b.not_assayed


@pytest.mark.parametrize(
    "rows",
    [
        ["chr19\t38442361\trs118192160\tG\tA,T\t.\tPASS\t.\tGT\t1/2"],  # one multi-allelic record
        [  # the same site split into biallelic records (bcftools norm -m-)
            "chr19\t38442361\trs118192160\tG\tA\t.\tPASS\t.\tGT\t0/1",
            "chr19\t38442361\trs118192160\tG\tT\t.\tPASS\t.\tGT\t0/1",
        ],
        [  # split and phased: A on the second haplotype, T on the first
            "chr19\t38442361\trs118192160\tG\tA\t.\tPASS\t.\tGT\t0|1",
            "chr19\t38442361\trs118192160\tG\tT\t.\tPASS\t.\tGT\t1|0",
        ],
    ],
)
def test_multiallelic_site_gives_both_alleles(rows: list[str], tmp_path: Path) -> None:
    """RYR1 rs118192160 G>A / G>T (c.178G>A and c.178G>T, two named alleles at one position): the sample carries
    both, whichever way the site is written."""
    vcf = write_vcf(tmp_path / "m.vcf", rows, chrom="chr19", length=58617616)
    g = next(g for g in pgx_report(vcf).genes if g.gene == "RYR1")
    assert g.diplotypes == ["c.178G>A/c.178G>T"]
    assert g.phenotype == "Uncertain Susceptibility"  # neither is on CPIC's MH-associated list


def test_duplicate_record_is_not_merged_into_a_homozygote(tmp_path: Path) -> None:
    rows = [
        "chr19\t38442361\trs118192160\tG\tA\t.\tPASS\t.\tGT\t0/1",
        "chr19\t38442361\trs118192160\tG\tA\t.\tPASS\t.\tGT\t0/1",
    ]
    g = next(
        g
        for g in pgx_report(write_vcf(tmp_path / "d.vcf", rows, chrom="chr19", length=58617616)).genes
        if g.gene == "RYR1"
    )
    assert g.diplotypes == ["Reference/c.178G>A"]
