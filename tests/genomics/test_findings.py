"""Secondary findings: ClinVar (official layout, converted from the shared macarthur-lab slice) x ACMG SF rules."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest

from carelens.core.errors import InputError
from carelens.genomics.findings import ACMG_FILE, find_secondary, load_acmg, minimal, stars
from tests.genomics.conftest import write_vcf

OFFICIAL_HEADER = """##fileformat=VCFv4.1
##fileDate=2018-01-01
##source=ClinVar (test fixture converted from the macarthur-lab layout)
##reference=GRCh38
##contig=<ID=1,length=248956422>
##INFO=<ID=ALLELEID,Number=1,Type=Integer,Description="the ClinVar Allele ID">
##INFO=<ID=CLNDN,Number=.,Type=String,Description="ClinVar's preferred disease name">
##INFO=<ID=CLNREVSTAT,Number=.,Type=String,Description="ClinVar review status">
##INFO=<ID=CLNSIG,Number=.,Type=String,Description="Clinical significance">
##INFO=<ID=CLNSIGCONF,Number=.,Type=String,Description="Conflicting clinical significance">
##INFO=<ID=GENEINFO,Number=1,Type=String,Description="Gene(s) for the variant: symbol:id|...">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO
"""


def to_official(macarthur_vcf: Path, out: Path, conflicting_with_p: set[int]) -> Path:
    """Rewrite macarthur-lab ClinVar records into the official INFO fields (CLNSIG, CLNREVSTAT, GENEINFO, ...).

    ``conflicting_with_p``: positions of conflicting records given a CLNSIGCONF that includes a pathogenic
    submission (the macarthur layout has no such field; fixture-only detail).
    """
    lines = [OFFICIAL_HEADER]
    for line in macarthur_vcf.read_text().splitlines():
        if line.startswith("#"):
            continue
        chrom, pos, vid, ref, alt, _, _, info = line.split("\t")[:8]
        kv = dict(f.split("=", 1) for f in info.split(";") if "=" in f)
        fields = [
            f"ALLELEID={kv['ALLELE_ID']}",
            f"CLNDN={kv.get('ALL_TRAITS', 'not_provided')}",
            f"CLNREVSTAT={kv['REVIEW_STATUS'].replace('..', ',_')}",
            f"CLNSIG={kv['CLINICAL_SIGNIFICANCE']}",
            f"GENEINFO={kv['SYMBOL']}:0",
        ]
        if int(pos) in conflicting_with_p:
            fields.append("CLNSIGCONF=Pathogenic(1)|Uncertain_significance(2)")
        lines.append("\t".join([chrom, pos, kv.get("VARIATION_ID", vid), ref, alt, ".", ".", ";".join(fields)]) + "\n")
    out.write_text("".join(lines))
    return out


@pytest.fixture
def clinvar_files(shared_data: Path, tmp_path: Path) -> tuple[Path, Path]:
    macarthur = shared_data / "genomics/clinvar/clinvar_alleles_example_750_rows.single.b38.vcf"
    return macarthur, to_official(macarthur, tmp_path / "clinvar.vcf", {1020239})


@pytest.fixture
def test_genes(tmp_path: Path) -> Path:
    """A gene list in the shipped format for genes present in the ClinVar slice (none of them is on ACMG SF)."""
    path = tmp_path / "genes.tsv"
    cols = [
        "hgnc_id",
        "ensembl_gene_id",
        "ncbi_gene_id",
        "gene_symbol",
        "mim_gene_id",
        "disease_phenotype",
        "disorder_mim",
        "phenotype_category",
        "inheritance",
        "sf_list_version",
        "variants_to_report",
    ]
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t")
        w.writerow(cols)
        for gene, inh in (("AGRN", "AR"), ("B3GALT6", "AR"), ("ISG15", "AR"), ("DVL1", "AD")):
            w.writerow(["", "", "", gene, "", f"{gene} disorder", "", "test", inh, "test", "All P and LP"])
    return path


SAMPLE_ROWS = [
    "1\t1014042\t.\tG\tA\t.\tPASS\t.\tGT\t0/1",  # ISG15 benign: not a finding
    "1\t1014143\t.\tC\tT\t.\tPASS\t.\tGT\t0/1",  # ISG15 P, one het in a recessive gene: carrier
    "1\t1020239\t.\tG\tC\t.\tPASS\t.\tGT\t0/1",  # AGRN conflicting interpretations
    "1\t1022225\t.\tG\tA\t.\tPASS\t.\tGT\t1/1",  # AGRN P homozygous: biallelic
    "1\t1022313\t.\tA\tT\t.\tPASS\t.\tGT\t0/0",  # AGRN P but not carried
    "1\t1232279\t.\tA\tG\t.\tPASS\t.\tGT\t0/1",  # B3GALT6 P het
    "1\t1232294\t.\tC\tT\t.\tPASS\t.\tGT\t0/1",  # B3GALT6 P het: two in a recessive gene
    "1\t1338000\t.\tCT\tC\t.\tPASS\t.\tGT\t0/1",  # DVL1 P, AD
]


def _sample(tmp_path: Path) -> Path:
    return write_vcf(tmp_path / "patient.vcf", SAMPLE_ROWS, chrom="1", length=248956422)


def test_official_layout_findings(clinvar_files: tuple[Path, Path], test_genes: Path, tmp_path: Path) -> None:
    report = find_secondary(_sample(tmp_path), clinvar_files[1], acmg_list=test_genes)
    assert report.clinvar["layout"] == "official"
    found = {f.pos: f for f in report.findings}
    assert sorted(found) == [1014143, 1020239, 1022225, 1232279, 1232294, 1338000]
    assert found[1022225].zygosity == "homozygous" and found[1022225].reportable
    assert found[1232279].reportable and found[1232294].reportable
    assert "compound heterozygote" in found[1232279].rule_note
    assert not found[1014143].reportable and "carrier" in found[1014143].rule_note
    assert found[1020239].conflicting and not found[1020239].reportable
    assert found[1338000].reportable and found[1338000].stars == 1 and found[1338000].zygosity == "heterozygous"
    assert found[1022225].stars == 0 and found[1022225].allele_id == "244110"
    assert report.records_scanned == len(SAMPLE_ROWS)
    assert report.provenance is not None and report.provenance.model_version.startswith("ACMG SF custom list")


def test_both_layouts_agree(clinvar_files: tuple[Path, Path], test_genes: Path, tmp_path: Path) -> None:
    sample = _sample(tmp_path)
    official = find_secondary(sample, clinvar_files[1], acmg_list=test_genes)
    macarthur = find_secondary(sample, clinvar_files[0], acmg_list=test_genes)
    assert macarthur.clinvar["layout"] == "macarthur-lab"

    def key(r):  # type: ignore[no-untyped-def]
        return [(f.pos, f.alt, f.zygosity, f.reportable, f.stars) for f in r.findings if not f.conflicting]

    assert key(official) == key(macarthur)


def test_shipped_gene_list_is_v32() -> None:
    genes = load_acmg(ACMG_FILE)
    assert len(genes) == 81 and {"CALM1", "CALM2", "CALM3", "MUTYH", "HFE", "BRCA1"} <= set(genes)
    assert genes["MUTYH"].inheritance == "AR" and genes["CALM1"].version == "3.2"
    assert "ACMG" in ACMG_FILE.read_text().splitlines()[0]


SYNTHETIC_CLINVAR = [  # fixture-only records on real ACMG genes to exercise the gene rules
    "1\t45331556\t1\tC\tT\t.\t.\tALLELEID=1;CLNDN=MUTYH-associated_polyposis;"
    "CLNREVSTAT=reviewed_by_expert_panel;CLNSIG=Pathogenic;GENEINFO=MUTYH:4595",
    "1\t45332803\t2\tT\tC\t.\t.\tALLELEID=2;CLNDN=MUTYH-associated_polyposis;"
    "CLNREVSTAT=criteria_provided,_multiple_submitters,_no_conflicts;CLNSIG=Pathogenic/Likely_pathogenic;"
    "GENEINFO=MUTYH:4595",
    "6\t26092913\t3\tG\tA\t.\t.\tALLELEID=3;CLNDN=Hereditary_hemochromatosis;CLNREVSTAT=practice_guideline;"
    "CLNSIG=Pathogenic;GENEINFO=HFE:3077",
    "14\t90403500\t4\tG\tA\t.\t.\tALLELEID=4;CLNDN=Long_QT_syndrome;"
    "CLNREVSTAT=criteria_provided,_single_submitter;CLNSIG=Likely_pathogenic;GENEINFO=CALM1:801",
    "X\t101398000\t5\tC\tT\t.\t.\tALLELEID=5;CLNDN=Fabry_disease;"
    "CLNREVSTAT=criteria_provided,_single_submitter;CLNSIG=Pathogenic;GENEINFO=GLA:2717",
    "2\t178530000\t6\tG\tA\t.\t.\tALLELEID=6;CLNDN=Dilated_cardiomyopathy;"
    "CLNREVSTAT=criteria_provided,_single_submitter;CLNSIG=Pathogenic;GENEINFO=TTN:7273",
]


def test_gene_rules_on_shipped_list(tmp_path: Path) -> None:
    clinvar = tmp_path / "clinvar.vcf"
    clinvar.write_text(
        OFFICIAL_HEADER.replace("##contig=<ID=1,length=248956422>\n", "") + "\n".join(SYNTHETIC_CLINVAR) + "\n"
    )
    header = (
        '##fileformat=VCFv4.2\n##reference=GRCh38\n##FORMAT=<ID=GT,Number=1,Type=String,Description="GT">\n'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tP1\tP2\n"
    )
    rows = [
        "chr1\t45331556\t.\tC\tT\t.\tPASS\t.\tGT\t0/1\t0/1",
        "chr1\t45332803\t.\tT\tC\t.\tPASS\t.\tGT\t0/1\t0/0",
        "chr6\t26092913\t.\tG\tA\t.\tPASS\t.\tGT\t1/1\t0/1",
        "chr14\t90403500\t.\tG\tA\t.\tPASS\t.\tGT\t0/0\t0/1",
        "chrX\t101398000\t.\tC\tT\t.\tPASS\t.\tGT\t1\t0/1",
        "chr2\t178530000\t.\tG\tA\t.\tPASS\t.\tGT\t0/1\t0/0",
    ]
    vcf = write_vcf(tmp_path / "two.vcf", rows, header=header)
    p1 = {f.gene + str(f.pos): f for f in find_secondary(vcf, clinvar, sample="P1").findings}
    p2 = {f.gene + str(f.pos): f for f in find_secondary(vcf, clinvar, sample="P2").findings}
    assert p1["MUTYH45331556"].reportable and p1["MUTYH45332803"].reportable  # two P/LP in a recessive gene
    assert p1["MUTYH45332803"].stars == 2 and p1["MUTYH45331556"].stars == 3
    assert p1["HFE26092913"].reportable and p1["HFE26092913"].stars == 4  # C282Y homozygote
    assert not p2["HFE26092913"].reportable  # C282Y heterozygote
    assert not p2["MUTYH45331556"].reportable  # single het in MUTYH: carrier
    assert p2["CALM190403500"].reportable  # v3.2 gene, AD
    assert "CALM190403500" not in p1
    # X-linked: hemizygous and heterozygous carriers are both reported
    assert p1["GLA101398000"].zygosity == "hemizygous" and p1["GLA101398000"].reportable
    assert p2["GLA101398000"].zygosity == "heterozygous" and p2["GLA101398000"].reportable
    assert p1["TTN178530000"].reportable and "truncating" in p1["TTN178530000"].rule_note


def test_review_stars() -> None:
    assert stars("criteria_provided,_multiple_submitters,_no_conflicts") == 2
    assert stars("criteria provided, single submitter") == 1
    assert stars("criteria_provided..conflicting_interpretations") == 1
    assert stars("no_assertion_criteria_provided") == 0


def test_not_a_clinvar_file(tmp_path: Path) -> None:
    sample = _sample(tmp_path)
    with pytest.raises(InputError, match="not a ClinVar VCF"):
        find_secondary(sample, sample)


def test_grch37_clinvar_refused(tmp_path: Path) -> None:
    clinvar = tmp_path / "clinvar37.vcf"
    clinvar.write_text(OFFICIAL_HEADER.replace("length=248956422", "length=249250621") + SYNTHETIC_CLINVAR[0] + "\n")
    with pytest.raises(InputError, match="GRCh37"):
        find_secondary(_sample(tmp_path), clinvar)


def test_same_variant_written_differently_is_found(
    clinvar_files: tuple[Path, Path], test_genes: Path, tmp_path: Path
) -> None:
    """DVL1 1338000 CT>C written as part of a multi-allelic record (CTT>CT,C) is still the ClinVar allele."""
    rows = ["1\t1338000\t.\tCTT\tCT,C\t.\tPASS\t.\tGT\t0/1"]
    vcf = write_vcf(tmp_path / "multi.vcf", rows, chrom="1", length=248956422)
    found = find_secondary(vcf, clinvar_files[1], acmg_list=test_genes).findings
    assert [(f.gene, f.pos, f.alt, f.zygosity) for f in found] == [("DVL1", 1338000, "CT", "heterozygous")]
    assert minimal(1338000, "CTT", "CT") == (1338000, "CT", "C")
    assert minimal(100, "CAG", "CTG") == (101, "A", "T")


def test_shared_clinvar_has_no_acmg_alleles_and_says_so(clinvar_files: tuple[Path, Path], tmp_path: Path) -> None:
    """The shared ClinVar slice has no P/LP allele in any ACMG SF v3.2 gene: no findings, and a warning per gene
    (never a silent empty list); the provenance hash is the hash of the input VCF, not of the (empty) findings."""
    sample = _sample(tmp_path)
    report = find_secondary(sample, clinvar_files[0])
    assert report.findings == []
    assert report.coverage["acmg_genes"] == 81 and report.coverage["in_clinvar"] == 0
    gaps = [w for w in report.warnings if w.startswith("ACMG SF gene ")]
    assert len(gaps) == 81 and any("BRCA1" in w for w in gaps)
    assert report.provenance is not None
    assert report.provenance.input_hash == hashlib.sha256(sample.read_bytes()).hexdigest()
    other = write_vcf(tmp_path / "other.vcf", SAMPLE_ROWS[:1], chrom="1", length=248956422)
    assert find_secondary(other, clinvar_files[0]).provenance.input_hash != report.provenance.input_hash  # type: ignore[union-attr]


def test_coverage_counts_genes_the_vcf_sees(clinvar_files: tuple[Path, Path], test_genes: Path, tmp_path: Path) -> None:
    report = find_secondary(_sample(tmp_path), clinvar_files[1], acmg_list=test_genes)
    cov = report.coverage
    assert 0 < int(cov["in_vcf"]) <= int(cov["in_clinvar"]) <= int(cov["acmg_genes"])  # type: ignore[call-overload]
    assert len(cov["not_covered"]) == int(cov["acmg_genes"]) - int(cov["in_vcf"])  # type: ignore[arg-type,call-overload]
