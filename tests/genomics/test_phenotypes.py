"""Every gene CPIC defines a phenotype for gets one: the shipped tables, and CYP2D6 / G6PD / RYR1 derived from the
allele values PharmCAT ships (data/phenotype_rules.json) with CPIC's rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from carelens.genomics.definitions import load_definitions
from carelens.genomics.pgx import GeneResult, pgx_report, report_from_calls
from carelens.genomics.phenotype_rules import activity_sum, g6pd, metabolizer, ryr1


def _gene(genes: list[GeneResult], name: str) -> GeneResult:
    return next(g for g in genes if g.gene == name)


@pytest.mark.parametrize(
    ("values", "score", "phenotype"),
    [
        (["1.0", "0.0"], "1.0", "Intermediate Metabolizer"),
        (["1.0", "0.25"], "1.25", "Normal Metabolizer"),
        (["0.0", "0.0"], "0.0", "Poor Metabolizer"),
        (["1.0", "≥3.0"], "≥4.0", "Ultrarapid Metabolizer"),
        (["1.0", "2.0"], "3.0", "Ultrarapid Metabolizer"),
        (["1.0", "n/a"], "n/a", "Indeterminate"),
    ],
)
def test_cyp2d6_activity_score_rules(values: list[str], score: str, phenotype: str) -> None:
    assert activity_sum(values) == score
    assert metabolizer(score) == phenotype


def test_g6pd_and_ryr1_rules() -> None:
    assert g6pd(["IV/Normal"]) == "Normal"
    assert g6pd(["III/Deficient"]) == "Deficient"
    assert g6pd(["IV/Normal", "II/Deficient"]) == "Variable"
    assert g6pd(["I/Deficient with CNSHA", "I/Deficient with CNSHA"]) == "Deficient with CNSHA"
    assert g6pd(["Uncertain function", "IV/Normal"]) == "Indeterminate"
    assert ryr1(["Normal function", "Normal function"]) == "Uncertain Susceptibility"
    assert ryr1(["Normal function", "Malignant Hyperthermia associated"]) == "Malignant Hyperthermia Susceptibility"


def test_every_called_gene_has_a_phenotype_table() -> None:
    """Each gene with allele definitions and a CPIC phenotype has a table, and its reference homozygote (hemizygote
    for G6PD) has a phenotype. CPIC defines none for CYP3A4, CYP4F2 and VKORC1 (no table) nor IFNL3 (an empty one:
    its guideline is keyed on the rs12979860 genotype)."""
    defs = load_definitions()
    no_cpic_phenotype = {"CYP3A4", "CYP4F2", "VKORC1", "IFNL3"}
    for gene, defn in defs.genes.items():
        if gene in no_cpic_phenotype:
            continue
        table = defs.phenotypes[gene]
        ref = defn.reference.name
        key = (ref,) if gene == "G6PD" else (ref, ref)
        assert key in table.diplotypes, gene
        assert table.diplotypes[key][0], gene


def test_reference_calls_get_pharmcat_phenotypes() -> None:
    """G6PD (male, reference B) is Normal and RYR1 reference is Uncertain Susceptibility, as PharmCAT reports."""
    defs = load_definitions()
    report = report_from_calls(
        defs, "S", {}, [], {"G6PD": _outside("B (reference)"), "RYR1": _outside("Reference/Reference")}
    )
    assert _gene(report.genes, "G6PD").phenotype == "Normal"
    assert _gene(report.genes, "RYR1").phenotype == "Uncertain Susceptibility"


def _outside(diplotype: str) -> dict[str, str | None]:
    return {"diplotype": diplotype, "phenotype": None, "activity": None}


def test_cyp2d6_outside_call_goes_through_the_cpic_table(tmp_path: Path, test_vcfs: Path) -> None:
    """PharmCAT's example: CYP2D6 *1/*3 from an outside caller is an Intermediate Metabolizer, activity score 1.0,
    and CYP2D6 drugs get their recommendations."""
    calls = tmp_path / "outside.tsv"
    calls.write_text("CYP2D6\t*1/*3\n")
    report = pgx_report(test_vcfs / "haplotype/cyp2c19/s1s1.vcf", outside_calls=calls)
    g = _gene(report.genes, "CYP2D6")
    assert (g.phenotype, g.activity_score, g.lookup_key) == ("Intermediate Metabolizer", "1.0", "1.0")
    assert any(r.genes.get("CYP2D6") == "1.0" for r in report.drugs if r.drug == "codeine")


def test_outside_calls_for_hla_mt_rnr1_and_g6pd(tmp_path: Path, test_vcfs: Path) -> None:
    """Outside calls go through the same tables: HLA as allele presence for every allele CPIC keys on, MT-RNR1 and
    G6PD (a heterozygous female: Variable) from their CPIC tables."""
    calls = tmp_path / "outside.tsv"
    calls.write_text(
        "HLA-B\t*57:01/*08:01\nMT-RNR1\tm.1555A>G\n"
        "G6PD\tB (reference)/Mediterranean, Dallas, Panama, Sassari, Cagliari, Birmingham\n"
    )
    report = pgx_report(test_vcfs / "haplotype/cyp2c19/s1s2.vcf", outside_calls=calls)
    assert _gene(report.genes, "HLA-B").phenotype == "*15:02 negative; *57:01 positive; *58:01 negative"
    assert _gene(report.genes, "MT-RNR1").phenotype == "increased risk of aminoglycoside-induced hearing loss"
    assert _gene(report.genes, "G6PD").phenotype == "Variable"
    drugs = {r.drug for r in report.drugs}
    assert {"abacavir", "amikacin", "rasburicase"} <= drugs


@pytest.mark.parametrize(
    ("name", "printed"),
    [  # PharmCATTest.java (16-gene version): testPrintCalls for UGT1A1
        ("s28s80unphased", ["*80+*28 (heterozygous)"]),
        ("s28s37", ["*28 (heterozygous)", "*37 (heterozygous)"]),
        ("s27s28unphaseds80s60missing", ["*27 (heterozygous)", "*28 (heterozygous)", "*80+*28 (heterozygous)"]),
        ("NA12717_UGT1A1", ["*80 (heterozygous)", "*80+*28 (heterozygous)"]),
        ("s28s28unphaseds60s80miss", ["*28/*28", "*28/*80+*28", "*80+*28/*80+*28"]),  # all homozygous: phased
        ("s28s80phased", ["*1/*80+*28"]),
    ],
)
def test_unphased_ugt1a1_is_printed_as_allele_presence(name: str, printed: list[str], test_vcfs: Path) -> None:
    g = _gene(pgx_report(test_vcfs / f"haplotype/UGT1A1/{name}.vcf").genes, "UGT1A1")
    assert sorted(g.display) == sorted(printed)


def test_outside_call_alleles_may_carry_the_gene_name(tmp_path: Path, test_vcfs: Path) -> None:
    """PharmCATTest's outside-call file writes 'CYP2D6*1/CYP2D6*4' (and HLA as 'B*57:01'): same result as '*1/*4'."""
    calls = tmp_path / "outside.tsv"
    calls.write_text("#Gene\tDiplotype\nCYP2D6\tCYP2D6*1/CYP2D6*4\nHLA-B\tB*57:01/HLA-B*08:01\n")
    report = pgx_report(test_vcfs / "haplotype/cyp2c19/s1s2.vcf", outside_calls=calls)
    g = _gene(report.genes, "CYP2D6")
    assert (g.diplotypes, g.phenotype, g.activity_score) == (["*1/*4"], "Intermediate Metabolizer", "1.0")
    assert _gene(report.genes, "HLA-B").diplotypes == ["*57:01/*08:01"]


def test_outside_call_with_only_a_phenotype_or_an_activity_score(tmp_path: Path, test_vcfs: Path) -> None:
    """PharmCAT's outside-call format lets the diplotype column be empty when a phenotype or an activity score is
    given; the lookup uses what is given (CYP2D6 keys on the activity score)."""
    calls = tmp_path / "outside.tsv"
    calls.write_text("CYP2D6\t\t\t0.5\nCYP2C9\t\tPoor Metabolizer\n")
    report = pgx_report(test_vcfs / "haplotype/cyp2c19/s1s2.vcf", outside_calls=calls)
    d6 = _gene(report.genes, "CYP2D6")
    assert (d6.diplotypes, d6.phenotype, d6.lookup_key) == ([], "Intermediate Metabolizer", "0.5")
    assert _gene(report.genes, "CYP2C9").lookup_key == "Poor Metabolizer"
    assert any(r.drug == "codeine" and r.genes.get("CYP2D6") == "0.5" for r in report.drugs)
