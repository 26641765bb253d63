"""The demo VCFs: GRCh38 headers, every PharmCAT defining position of each planted gene
genotyped with the definition's alleles, and the planted pathogenic variants."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from cyvcf2 import VCF

from carelens.demo import CohortManifest
from carelens.demo.vcf import IUPAC, bgzf


def _records(path: Path) -> dict[tuple[str, int], object]:
    return {(v.CHROM, v.POS): v for v in VCF(str(path))}


def test_bgzf_is_gzip_compatible_and_blocked() -> None:
    data = b"x" * 200_000
    packed = bgzf(data)
    assert gzip.decompress(packed) == data
    assert packed[12:16] == b"BC\x02\x00"
    assert packed.endswith(bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000"))


def test_vcf_header_is_grch38_and_sample_is_mrn(cohort: CohortManifest) -> None:
    assert cohort.root is not None
    for p in cohort.patients:
        vcf = VCF(str(cohort.root / p.vcf))
        assert vcf.samples == [p.mrn]
        header = vcf.raw_header
        assert "##reference=GRCh38" in header and "##contig=<ID=chr10,length=133797422" in header


def test_positions_and_genotypes_follow_pharmcat_definitions(cohort: CohortManifest, shared_data: Path) -> None:
    assert cohort.root is not None
    alleles_dir = shared_data / "genomics" / "pharmcat" / "alleles"
    for p in cohort.patients:
        records = _records(cohort.root / p.vcf)
        assert {x.gene for x in p.pgx} == {"CYP2C19", "CYP2C9", "VKORC1", "SLCO1B1", "DPYD"}
        for call in p.pgx:
            defn = json.loads((alleles_dir / f"{call.gene}_translation.json").read_text())
            named = {a["name"]: a["alleles"] for a in defn["namedAlleles"]}
            assert len(defn["variants"]) == call.positions
            for i, var in enumerate(defn["variants"]):
                rec = records[(var["chromosome"], var["position"])]
                assert var["ref"] == rec.REF and var["alts"] == rec.ALT
                bases = rec.gt_bases[0].split("|")
                for hap, allele in zip(bases, call.alleles, strict=True):
                    want = named[allele][i]
                    if want is not None:
                        assert hap == want or (want in IUPAC and hap in IUPAC[want])
        assert sum(
            len(json.loads((alleles_dir / f"{g.gene}_translation.json").read_text())["variants"]) for g in p.pgx
        ) + len(p.pathogenic_variants) == len(records)


def test_known_star_alleles(cohort: CohortManifest) -> None:
    """CYP2C19 *2 is rs4244285 chr10:94781859 G>A: patient 1 (*2/*2) is homozygous for A."""
    assert cohort.root is not None
    rec = _records(cohort.root / cohort.patients[1].vcf)[("chr10", 94781859)]
    assert rec.ID == "rs4244285" and rec.REF == "G" and rec.gt_bases[0] == "A|A"
    rec = _records(cohort.root / cohort.patients[1].vcf)[("chr12", 21178615)]  # SLCO1B1 *5 and *15: rs4149056 C
    assert rec.ID == "rs4149056" and rec.gt_bases[0] == "C|C"


def test_pathogenic_variants(cohort: CohortManifest, shared_data: Path) -> None:
    assert cohort.root is not None
    clinvar = (shared_data / "genomics" / "clinvar" / "clinvar_alleles_example_750_rows.single.b38.vcf").read_text()
    planted = [(p, v) for p in cohort.patients for v in p.pathogenic_variants]
    assert {v.gene for _, v in planted} >= {"BRCA1", "MUTYH", "ISG15"}
    for p, v in planted:
        rec = _records(cohort.root / p.vcf)[(v.chrom, v.pos)]
        assert v.ref == rec.REF and [v.alt] == rec.ALT
        assert v.acmg == (v.gene in {"BRCA1", "MUTYH"})
        if v.source == "clinvar-example":
            assert f"\n{v.chrom.removeprefix('chr')}\t{v.pos}\t.\t{v.ref}\t{v.alt}\t" in clinvar


def test_htslib_accepts_the_bgzf(cohort: CohortManifest, tmp_path: Path) -> None:
    import shutil
    import subprocess

    import pytest

    if shutil.which("bgzip") is None or shutil.which("tabix") is None:
        pytest.skip("htslib tools (Debian tabix) not installed")
    assert cohort.root is not None
    vcf = cohort.patients[0].vcf
    assert vcf is not None
    copy = tmp_path / "p.vcf.gz"
    shutil.copyfile(cohort.root / vcf, copy)
    subprocess.run(["bgzip", "-t", str(copy)], check=True)
    subprocess.run(["tabix", "-p", "vcf", str(copy)], check=True)
    hit = subprocess.run(["tabix", str(copy), "chr10:94781859-94781859"], capture_output=True, text=True, check=True)
    assert hit.stdout.split("\t")[2] == "rs4244285"
