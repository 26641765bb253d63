"""VCF reading: build check, samples, plain / bgzipped / indexed, contig naming, phasing, bad files."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from carelens.core.errors import InputError, UsageError
from carelens.genomics.pgx import pgx_report
from carelens.genomics.vcf import detect_build, read_calls, scan, vcf_info
from tests.genomics.conftest import HEADER, write_vcf

CYP2C19_S1S2 = [  # *1/*2: rs3758581 hom (defines *1 vs *38), rs12769205 + rs4244285 het (*2)
    "{c}\t94775367\trs12769205\tA\tG\t.\tPASS\t.\tGT\t0/1",
    "{c}\t94781859\trs4244285\tG\tA\t.\tPASS\t.\tGT\t0/1",
    "{c}\t94842866\trs3758581\tA\tG\t.\tPASS\t.\tGT\t1/1",
]


def _cyp2c19(report):  # type: ignore[no-untyped-def]
    return next(g for g in report.genes if g.gene == "CYP2C19")


def test_grch37_refused_by_contig_length(tmp_path: Path) -> None:
    vcf = write_vcf(tmp_path / "b37.vcf", [r.format(c="chr10") for r in CYP2C19_S1S2], length=135534747)
    with pytest.raises(InputError, match="GRCh37"):
        pgx_report(vcf)


def test_grch37_refused_by_reference_line(tmp_path: Path) -> None:
    header = "##fileformat=VCFv4.2\n##reference=file:///ref/hs37d5.fa\n" + HEADER.split("\n", 4)[-1].format(
        samples="S1"
    )
    vcf = write_vcf(tmp_path / "hs37.vcf", [r.format(c="10") for r in CYP2C19_S1S2], header=header)
    with pytest.raises(InputError, match="GRCh37"):
        vcf_info(vcf)


def test_build_detection() -> None:
    assert detect_build("##reference=hg38\n", {}) == "GRCh38"
    assert detect_build("", {"chr1": 248956422}) == "GRCh38"
    assert detect_build("", {"1": 249250621}) == "GRCh37"
    assert detect_build("", {}) == "unknown"


def test_unknown_build_is_a_warning(tmp_path: Path) -> None:
    header = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\n"
    vcf = write_vcf(tmp_path / "nobuild.vcf", [r.format(c="chr10") for r in CYP2C19_S1S2], header=header)
    report = pgx_report(vcf)
    assert _cyp2c19(report).diplotypes == ["*1/*2"]
    assert any("build" in w for w in report.warnings)


def test_bare_and_chr_contigs_give_the_same_call(tmp_path: Path) -> None:
    chr_ = write_vcf(tmp_path / "chr.vcf", [r.format(c="chr10") for r in CYP2C19_S1S2])
    bare = write_vcf(tmp_path / "bare.vcf", [r.format(c="10") for r in CYP2C19_S1S2], chrom="10")
    a, b = _cyp2c19(pgx_report(chr_)), _cyp2c19(pgx_report(bare))
    assert a.diplotypes == b.diplotypes == ["*1/*2"]
    assert a.phenotype == b.phenotype == "Intermediate Metabolizer"
    assert a.not_assayed == b.not_assayed


def test_not_assayed_positions_are_reported_not_assumed(tmp_path: Path) -> None:
    vcf = write_vcf(tmp_path / "s.vcf", [r.format(c="chr10") for r in CYP2C19_S1S2])
    g = _cyp2c19(pgx_report(vcf))
    assert len(g.not_assayed) == 32  # 35 CYP2C19 positions, 3 in the file
    assert "*3" in g.could_change and "*17" in g.could_change
    assert {p["position"] for p in g.positions} == {94775367, 94781859, 94842866}
    genotypes = {p["position"]: p["genotype"] for p in g.positions}
    assert genotypes == {94775367: "A/G", 94781859: "G/A", 94842866: "G/G"}


@pytest.mark.skipif(shutil.which("bcftools") is None, reason="bcftools not installed (Debian package bcftools)")
def test_bgzipped_indexed_region_query_matches_plain(tmp_path: Path) -> None:
    plain = write_vcf(tmp_path / "s.vcf", [r.format(c="chr10") for r in CYP2C19_S1S2])
    gz = tmp_path / "s.vcf.gz"
    subprocess.run(["bcftools", "view", "-Oz", "-o", str(gz), str(plain)], check=True)
    assert not vcf_info(gz).indexed
    streamed = pgx_report(gz)
    subprocess.run(["bcftools", "index", "-t", str(gz)], check=True)
    assert vcf_info(gz).indexed
    indexed = pgx_report(gz)
    assert _cyp2c19(indexed).diplotypes == _cyp2c19(streamed).diplotypes == ["*1/*2"]
    assert _cyp2c19(indexed).positions == _cyp2c19(streamed).positions
    assert [r[1] for r in scan(gz, region="chr10:94781000-94790000")] == [94781859]


def test_region_query_needs_an_index(tmp_path: Path) -> None:
    plain = write_vcf(tmp_path / "s.vcf", [r.format(c="chr10") for r in CYP2C19_S1S2])
    with pytest.raises(UsageError, match="index"):
        list(scan(plain, region="chr10:1-2"))


def test_multisample_selection_and_errors(tmp_path: Path) -> None:
    rows = [
        "chr10\t94781859\trs4244285\tG\tA\t.\tPASS\t.\tGT\t0/1\t1/1",
        "chr10\t94842866\trs3758581\tA\tG\t.\tPASS\t.\tGT\t1/1\t1/1",
        "chr10\t94775367\trs12769205\tA\tG\t.\tPASS\t.\tGT\t0/1\t1/1",
    ]
    vcf = write_vcf(tmp_path / "two.vcf", rows, samples="CANARY-MRN-0001\tB")
    assert _cyp2c19(pgx_report(vcf, sample="CANARY-MRN-0001")).diplotypes == ["*1/*2"]
    assert _cyp2c19(pgx_report(vcf, sample="B")).diplotypes == ["*2/*2"]
    with pytest.raises(UsageError, match="--sample"):
        pgx_report(vcf)
    with pytest.raises(InputError, match="sample not found") as err:
        pgx_report(vcf, sample="CANARY-MRN-0002")
    assert "CANARY" not in err.value.reason  # the reason never quotes the (possibly identifying) name


def test_phase_sets_fix_cis_and_trans(tmp_path: Path) -> None:
    """rs12769205 and rs4244285 define *2 together: in cis -> *1/*2; in trans -> no named allele fits."""
    cis = [
        "chr10\t94775367\trs12769205\tA\tG\t.\tPASS\t.\tGT:PS\t0|1:100",
        "chr10\t94781859\trs4244285\tG\tA\t.\tPASS\t.\tGT:PS\t0|1:100",
        "chr10\t94842866\trs3758581\tA\tG\t.\tPASS\t.\tGT\t1/1",
    ]
    trans = [cis[0], cis[1].replace("0|1:100", "1|0:100"), cis[2]]
    other_blocks = [cis[0], cis[1].replace("0|1:100", "1|0:200"), cis[2]]
    assert _cyp2c19(pgx_report(write_vcf(tmp_path / "cis.vcf", cis))).diplotypes == ["*1/*2"]
    g = _cyp2c19(pgx_report(write_vcf(tmp_path / "trans.vcf", trans)))
    assert g.diplotypes == [] and "no combination" in (g.reason or "")
    # different phase sets say nothing about each other: back to the unphased answer
    assert _cyp2c19(pgx_report(write_vcf(tmp_path / "ps.vcf", other_blocks))).diplotypes == ["*1/*2"]


def test_missing_genotype_is_not_assayed(tmp_path: Path) -> None:
    rows = [r.format(c="chr10") for r in CYP2C19_S1S2]
    rows[2] = rows[2].replace("1/1", "./.")
    g = _cyp2c19(pgx_report(write_vcf(tmp_path / "m.vcf", rows)))
    assert 94842866 in g.not_assayed
    assert g.diplotypes == ["*1/*2", "*2/*38"]  # *1 and *38 differ only at the missing position: a tie
    assert any("missing" in w for w in g.warnings)


def test_sample_calls_read_once_per_position(tmp_path: Path) -> None:
    vcf = write_vcf(tmp_path / "s.vcf", [r.format(c="chr10") for r in CYP2C19_S1S2])
    name, calls, info = read_calls(vcf, None, {"10": {94781859, 94842866}})
    assert name == "S1" and info.build == "GRCh38"
    assert sorted(calls) == [("10", 94781859), ("10", 94842866)]
    assert calls[("10", 94781859)][0].genotype == "G/A"


def test_malformed_line_and_not_a_vcf(tmp_path: Path) -> None:
    rows = [r.format(c="chr10") for r in CYP2C19_S1S2]
    rows.insert(1, "chr10\tNOT_A_POSITION\t.\tG\tA\t.\tPASS\t.\tGT\t0/1")
    with pytest.raises(InputError, match=r"data line \d+ could not be read \(malformed line\)"):
        pgx_report(write_vcf(tmp_path / "bad.vcf", rows))
    junk = tmp_path / "junk.vcf"
    junk.write_text("this is not a VCF\n")
    with pytest.raises(InputError, match="not a readable VCF"):
        pgx_report(junk)
    with pytest.raises(InputError, match="not found"):
        pgx_report(tmp_path / "absent.vcf")


@pytest.mark.parametrize("pos", ["12\u00b3", "\u0661\u0662", "99999999999999999999"])
def test_a_position_htslib_cannot_read_is_a_malformed_line_not_a_crash(pos: str, tmp_path: Path) -> None:
    """On a contig the header does not declare, cyvcf2 0.34 yields a record htslib failed to read and crashes
    on its REF: run in a child process so that a crash fails this test only."""
    rows = [r.format(c="chr10") for r in CYP2C19_S1S2]
    rows.insert(1, f"chr1\t{pos}\t.\tG\tA\t.\tPASS\t.\tGT\t0/1")
    vcf = write_vcf(tmp_path / "bad.vcf", rows)
    code = (
        "import pathlib, sys\nfrom carelens.core.errors import InputError\n"
        "from carelens.genomics.pgx import pgx_report\n"
        "try:\n    pgx_report(pathlib.Path(sys.argv[1]))\nexcept InputError as err:\n    print(err)\n    sys.exit(0)\n"
        "sys.exit(5)"
    )
    child = subprocess.run([sys.executable, "-c", code, str(vcf)], capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, (child.returncode, child.stderr[-300:])
    assert "data line 2 could not be read (malformed line)" in child.stdout


def test_missing_to_ref_is_explicit_and_listed(tmp_path: Path) -> None:
    """A variant-only VCF: absent positions are not assayed unless --missing-to-ref, which lists what it assumed."""
    rows = [r.format(c="chr10") for r in CYP2C19_S1S2]
    vcf = write_vcf(tmp_path / "variants-only.vcf", rows)
    plain = _cyp2c19(pgx_report(vcf))
    assumed = _cyp2c19(pgx_report(vcf, missing_to_ref=True))
    assert plain.assumed_reference == [] and len(plain.not_assayed) == 32
    assert assumed.not_assayed == [] and sorted(assumed.assumed_reference) == sorted(plain.not_assayed)
    assert assumed.diplotypes == ["*1/*2"]
    assert any("taken as reference" in w for w in assumed.warnings)
    assert {p["filter"] for p in assumed.positions} == {"PASS", "ASSUMED_REF"}


def test_missing_gt(tmp_path: Path) -> None:
    """No GT field at all: refused with the reason. GT absent on one record: that position is not assayed."""
    no_gt = HEADER.replace('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n', "")
    rows = [r.format(c="chr10").replace("\tGT\t", "\tPS\t").rsplit("\t", 1)[0] + "\t1" for r in CYP2C19_S1S2]
    vcf = write_vcf(tmp_path / "nogt.vcf", rows, header=no_gt.format(chrom="chr10", length=133797422, samples="S1"))
    with pytest.raises(InputError, match="no GT"):
        pgx_report(vcf)
    some = [r.format(c="chr10") for r in CYP2C19_S1S2]
    some[1] = some[1].replace("\tGT\t0/1", "\tPS\t7")
    g = _cyp2c19(pgx_report(write_vcf(tmp_path / "somegt.vcf", some)))
    assert 94781859 in g.not_assayed and any("genotype missing" in w for w in g.warnings)


def test_too_many_ties_is_not_a_call(tmp_path: Path) -> None:
    """One position assayed out of 35: hundreds of diplotypes tie; reported as too little data, not as a call."""
    g = _cyp2c19(pgx_report(write_vcf(tmp_path / "one.vcf", [CYP2C19_S1S2[2].format(c="chr10")])))
    assert g.diplotypes == [] and "too little data" in (g.reason or "")


@pytest.mark.parametrize(
    ("name", "warning"),
    [
        ("AD", None),
        ("AD-unknown", None),
        ("AD-invalid", "Number=f, expected R; AD ignored"),
        ("AD-missing", "AD is used but not declared"),
    ],
)
def test_ad_header_rules_are_said_once(name: str, warning: str | None, test_vcfs: Path) -> None:
    """VcfReaderTest#testAdField*: AD used when Number=R or undeclared (said), ignored for Number=. (silently) and
    for any other Number (said)."""
    _, _, info = read_calls(test_vcfs / f"haplotype/VcfReaderTest-{name}.vcf", None, {"10": {94942254}})
    said = [w for w in info.warnings if "AD" in w]
    assert said == ([] if warning is None else [next(w for w in said if warning in w)])
