"""PGx calls on PharmCAT's edge-case VCFs, outside calls, phenotypes and CPIC recommendations."""

from __future__ import annotations

from pathlib import Path

import pytest

from carelens.core.errors import InputError
from carelens.genomics.definitions import load_definitions, write_definitions
from carelens.genomics.pgx import GeneResult, pgx_report
from tests.genomics.conftest import write_vcf


def _gene(report, name: str) -> GeneResult:  # type: ignore[no-untyped-def]
    return next(g for g in report.genes if g.gene == name)


def test_unexpected_allele_blocks_the_call(test_vcfs: Path) -> None:
    """CYP2C19 rs28399504 carries an allele no definition has ('Unk'): no call with the reason, never a diplotype."""
    g = _gene(pgx_report(test_vcfs / "haplotype/cyp2c19/sUnks17.vcf"), "CYP2C19")
    assert g.diplotypes == [] and g.phenotype is None
    assert "allele not in the CYP2C19 definitions at chr10:94762706" in (g.reason or "")


def test_unexpected_allele_in_tpmt_is_read_as_reference(test_vcfs: Path) -> None:
    """PharmCAT's rule for TPMT (and CACNA1S, DPYD, G6PD, NUDT15, RYR1): undocumented alleles read as reference,
    said in a warning, and the VCF genotype kept in the evidence."""
    g = _gene(pgx_report(test_vcfs / "haplotype/TPMT/unexpected.allele.vcf"), "TPMT")
    assert g.diplotypes == ["*1/*1"] and g.reason is None
    assert any("18147910" in w and "read as reference" in w for w in g.warnings)
    pos = next(p for p in g.positions if p["position"] == 18147910)
    assert pos["genotype"] == "T/T" and pos["read_as"] == "A/A"


def test_genotype_index_beyond_alts_rejects_the_file(test_vcfs: Path) -> None:
    """PharmCAT's VcfReaderTest#testBadAllele: GT 0/2 with one ALT is a VcfFormatException for the whole file."""
    with pytest.raises(InputError, match=r"chr2:233760233: genotype allele index 2 .* 1 ALT"):
        pgx_report(test_vcfs / "haplotype/VcfReaderTest-badAllele.vcf")


def test_symbolic_alt_in_genotype_is_discarded(tmp_path: Path) -> None:
    """PharmCAT's reader discards a genotype that calls '<*>': the position counts as not assayed and the gene is
    called from the others."""
    rows = [
        "chr10\t94781859\trs4244285\tG\tA,<*>\t.\tPASS\t.\tGT\t0/2",
        "chr10\t94842866\trs3758581\tA\tG\t.\tPASS\t.\tGT\t1/1",
    ]
    g = _gene(pgx_report(write_vcf(tmp_path / "sym.vcf", rows)), "CYP2C19")
    assert 94781859 in g.not_assayed
    assert any("94781859" in w and "'<*>'" in w for w in g.warnings)
    assert bool(g.diplotypes) != bool(g.reason)


def test_ref_mismatch_position_is_not_assayed(test_vcfs: Path) -> None:
    g = _gene(pgx_report(test_vcfs / "haplotype/NamedAlleleMatcher-mismatchedRefAllele.vcf"), "CYP2C9")
    mismatched = [w for w in g.warnings if "REF does not match" in w]
    assert mismatched
    for w in mismatched:
        assert int(w.split()[1].rstrip(":")) in g.not_assayed


def test_no_gene_data_says_so(test_vcfs: Path) -> None:
    report = pgx_report(test_vcfs / "haplotype/cyp2c19/s1s2.vcf")
    g = _gene(report, "NAT2")
    assert g.diplotypes == [] and g.reason is not None and g.reason.startswith("none of the 47 NAT2 positions")
    assert len(g.not_assayed) == 47


def test_cyp2d6_needs_an_outside_call(test_vcfs: Path, tmp_path: Path) -> None:
    vcf = test_vcfs / "haplotype/cyp2c19/s1s2.vcf"
    assert "outside-calls" in (_gene(pgx_report(vcf), "CYP2D6").reason or "")
    tsv = tmp_path / "outside.tsv"
    tsv.write_text(
        "# gene\tdiplotype\tphenotype\tactivity\nCYP2D6\t*1/*4\tIntermediate Metabolizer\t1.0\nHLA-B\t*57:01/*08:01\n"
    )
    report = pgx_report(vcf, outside_calls=tsv)
    cyp2d6 = _gene(report, "CYP2D6")
    assert cyp2d6.source == "outside call" and cyp2d6.diplotypes == ["*1/*4"] and cyp2d6.lookup_key == "1.0"
    codeine = [d for d in report.drugs if d.drug == "codeine" and d.source == "CPIC"]
    assert codeine and all(d.genes == {"CYP2D6": "1.0"} for d in codeine)
    abacavir = [d for d in report.drugs if d.drug == "abacavir" and d.source == "CPIC"]
    assert [d.genes for d in abacavir] == [{"HLA-B": "*57:01 positive"}]
    assert "not recommended" in abacavir[0].recommendation.lower()
    carbamazepine = [d for d in report.drugs if d.drug == "carbamazepine" and d.source == "CPIC"]  # HLA-A: 'No Result'
    assert carbamazepine and all(d.genes == {"HLA-A": "No Result", "HLA-B": "*15:02 negative"} for d in carbamazepine)


def test_hla_a_and_hla_b_outside_calls_pick_the_carbamazepine_recommendation(test_vcfs: Path, tmp_path: Path) -> None:
    tsv = tmp_path / "hla.tsv"
    tsv.write_text("HLA-A\t*31:01/*02:01\nHLA-B\t*08:01/*07:02\n")
    report = pgx_report(test_vcfs / "haplotype/cyp2c19/s1s2.vcf", outside_calls=tsv)
    assert {g.gene: g.source for g in report.genes if g.gene.startswith("HLA")} == {
        "HLA-A": "outside call",
        "HLA-B": "outside call",
    }
    carbamazepine = [d for d in report.drugs if d.drug == "carbamazepine" and d.source == "CPIC"]
    assert carbamazepine and all(
        d.genes == {"HLA-A": "*31:01 positive", "HLA-B": "*15:02 negative"} for d in carbamazepine
    )
    assert {d.strength for d in carbamazepine} <= {"Strong", "Optional"} and all(
        d.recommendation for d in carbamazepine
    )
    assert not [d for d in report.drugs if d.drug == "abacavir" and "positive" in d.genes["HLA-B"].split(" (")[0]]
    dpwg = {
        d.genes.get("HLA-A") or d.genes.get("HLA-B")
        for d in report.drugs
        if d.drug == "carbamazepine" and d.source == "DPWG"
    }
    assert dpwg == {"*31:01/*02:01 (*31:01 positive)", "*08:01/*07:02 (*15:02 negative)"}  # DPWG's per-gene guidelines


def test_bad_outside_calls_file(tmp_path: Path, test_vcfs: Path) -> None:
    tsv = tmp_path / "bad.tsv"
    tsv.write_text("CYP2D6\n")
    with pytest.raises(InputError, match="line 1"):
        pgx_report(test_vcfs / "haplotype/cyp2c19/s1s2.vcf", outside_calls=tsv)
    tsv.write_bytes(b"CYP2D6\t*1/*4 \xff\xfe\n")  # ended the command with "internal error (UnicodeDecodeError)"
    with pytest.raises(InputError, match=r"bad\.tsv: not UTF-8 text"):
        pgx_report(test_vcfs / "haplotype/cyp2c19/s1s2.vcf", outside_calls=tsv)
    tsv.write_bytes(b"\xef\xbb\xbfCYP2D6\t*1/*4\n")  # a byte order mark, as Excel writes one, is no part of the gene
    report = pgx_report(test_vcfs / "haplotype/cyp2c19/s1s2.vcf", outside_calls=tsv)
    assert _gene(report, "CYP2D6").diplotypes == ["*1/*4"]


def test_phenotype_and_recommendations_follow_the_call(test_vcfs: Path) -> None:
    report = pgx_report(test_vcfs / "haplotype/cyp2c19/s2s2.vcf")
    g = _gene(report, "CYP2C19")
    assert g.diplotypes == ["*2/*2"] and g.phenotype == "Poor Metabolizer"
    clopidogrel = [d for d in report.drugs if d.drug == "clopidogrel" and d.source == "CPIC"]
    assert clopidogrel and all(d.genes == {"CYP2C19": "Poor Metabolizer"} for d in clopidogrel)
    assert any(d.strength == "Strong" and "Avoid" in d.recommendation for d in clopidogrel)


def test_activity_score_gene(test_vcfs: Path) -> None:
    report = pgx_report(test_vcfs / "haplotype/cyp2c9/s2s3.vcf")
    g = _gene(report, "CYP2C9")
    assert g.diplotypes == ["*2/*3"] and g.activity_score == "0.5" and g.lookup_key == "0.5"
    assert any(d.drug == "celecoxib" and d.genes == {"CYP2C9": "0.5"} for d in report.drugs)


def test_most_specific_allele_wins(test_vcfs: Path) -> None:
    """SLCO1B1 *20 = rs2306283 G + rs34671512 C; *19 and *37 carry one each: unphased het at both -> *1/*20."""
    g = _gene(pgx_report(test_vcfs / "haplotype/SLCO1B1/SLCO1B1_s19_s37_t1.vcf"), "SLCO1B1")
    het = {p["position"] for p in g.positions if p["genotype"] in ("A/G", "C/A")}
    assert het == {21176804, 21239042}
    assert g.diplotypes == ["*1/*20"]


def test_ties_are_reported_as_ties(test_vcfs: Path) -> None:
    g = _gene(pgx_report(test_vcfs / "haplotype/cyp2c19/s1s2rs3758581missing.vcf"), "CYP2C19")
    assert g.diplotypes == ["*1/*2", "*2/*38"]
    assert 94842866 in g.not_assayed and "*1" in g.could_change
    assert g.phenotype == "Intermediate Metabolizer"  # both tied diplotypes agree
    differ = _gene(pgx_report(test_vcfs / "haplotype/cyp2c19/s1s17s1s4bmissing.vcf"), "CYP2C19")
    assert differ.diplotypes == ["*1/*4", "*1/*17"] and differ.phenotype is None
    assert differ.phenotypes == ["Intermediate Metabolizer", "Rapid Metabolizer"]
    assert differ.phenotype_note == "tied diplotypes differ in phenotype"


def test_multisample_pharmcat_file(test_vcfs: Path) -> None:
    a = pgx_report(test_vcfs / "haplotype/NamedAlleleMatcher-unknownAltMultisample.vcf", sample="Sample_1")
    b = pgx_report(test_vcfs / "haplotype/NamedAlleleMatcher-unknownAltMultisample.vcf", sample="Sample_2")
    assert a.sample == "Sample_1" and b.sample == "Sample_2"
    assert _gene(a, "RYR1").diplotypes != _gene(b, "RYR1").diplotypes
    assert _gene(b, "RYR1").diplotypes == ["Reference/Reference"]


def test_refresh_definitions_round_trip(pharmcat: Path, tmp_path: Path) -> None:
    out = tmp_path / "defs.json.gz"
    meta = write_definitions(pharmcat, out)
    assert meta["genes"] == 20 and meta["recommendations"] > 1000
    fresh, shipped = load_definitions(out), load_definitions()
    assert fresh.genes.keys() == shipped.genes.keys()
    assert fresh.meta["definition_versions"] == shipped.meta["definition_versions"]
    assert fresh.genes["CYP2C19"].alleles == shipped.genes["CYP2C19"].alleles
    with pytest.raises(InputError, match="translation"):
        write_definitions(tmp_path, tmp_path / "x.json.gz")


def test_dpyd_unphased_lowest_two_activity_rule(test_vcfs: Path) -> None:
    """Three DPYD variants, unphased: CPIC takes the two lowest-activity ones; normal function counts as Reference."""
    g = _gene(pgx_report(test_vcfs / "haplotype/NamedAlleleMatcher-sortError.vcf"), "DPYD")
    assert g.detected_alleles == ["c.85T>C (*9A)", "c.1129-5923C>G", "c.1627A>G (*5)"]
    assert g.diplotypes == ["Reference/c.1129-5923C>G"] and g.reason is None
    assert g.phenotype == "Intermediate Metabolizer" and g.activity_score == "1.5"
    assert any("lowest-activity" in w for w in g.warnings)
    single = _gene(pgx_report(test_vcfs / "100samples.vcf.bgz", sample="s1"), "DPYD")
    assert single.diplotypes == ["Reference/c.85T>C (*9A)"]  # the matcher's pair is kept when it exists
    assert single.lookup_diplotype == "Reference/Reference" and single.phenotype == "Normal Metabolizer"


def test_slco1b1_falls_back_to_rs4149056(test_vcfs: Path) -> None:
    """No SLCO1B1 star allele fits, but c.521T>C is heterozygous: CPIC recommendations use Decreased Function."""
    report = pgx_report(test_vcfs / "haplotype/SLCO1B1/multi.vcf")
    g = _gene(report, "SLCO1B1")
    c521 = next(p for p in g.positions if p["position"] == 21178615)
    assert sorted(str(c521["genotype"]).split("/")) == ["C", "T"]
    assert g.diplotypes == [] and g.reason and g.phenotype == "Decreased Function"
    assert "rs4149056" in (g.phenotype_note or "")
    assert any(d.drug == "simvastatin" and d.genes == {"SLCO1B1": "Decreased Function"} for d in report.drugs)


def test_definitions_from_environment(pharmcat: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "defs.json.gz"
    write_definitions(pharmcat, out)
    monkeypatch.setenv("CARELENS_PGX_DEFINITIONS", str(out))
    assert load_definitions() is load_definitions(out)
    monkeypatch.setenv("CARELENS_PGX_DEFINITIONS", str(tmp_path / "absent.json.gz"))
    with pytest.raises(InputError, match="refresh-definitions"):
        load_definitions()
