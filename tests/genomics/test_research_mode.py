"""Research mode (PharmCAT's combination / partial calls): behind --research-combinations, flagged, never a CPIC
phenotype or recommendation; the standard report is unchanged without it."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from carelens.cli import app
from carelens.genomics.definitions import load_definitions
from carelens.genomics.matcher import call_gene
from carelens.genomics.pgx import gene_positions, pgx_report
from carelens.genomics.vcf import bare, read_calls

runner = CliRunner()
HAPLOTYPE = "haplotype/NamedAlleleMatcher-{}.vcf"


def _gene(report: dict[str, object], gene: str) -> dict[str, object]:
    return next(g for g in report["genes"] if g["gene"] == gene)  # type: ignore[union-attr,index]


def test_research_flag_gives_the_partial_call_and_no_phenotype(test_vcfs: Path, tmp_path: Path) -> None:
    vcf = str(test_vcfs / HAPLOTYPE.format("partialReferencePhased"))
    plain, research = tmp_path / "plain.json", tmp_path / "research.json"
    assert runner.invoke(app, ["genome", "pgx", vcf, "--out", str(plain)]).exit_code == 0
    ok = runner.invoke(app, ["genome", "pgx", vcf, "--research-combinations", "--out", str(research)])
    assert ok.exit_code == 0, ok.output
    standard = _gene(json.loads(plain.read_text()), "CYP2B6")
    assert standard["diplotypes"] == [] and "not called" in str(standard["reason"]) and not standard["research"]
    report = json.loads(research.read_text())
    g = _gene(report, "CYP2B6")
    assert g["diplotypes"] == ["*9/[g.41006968T>A + g.41012316T>G]"] and g["research"] is True
    assert g["phenotype"] is None and "research" in str(g["phenotype_note"])
    assert any("research mode" in w for w in g["warnings"])  # type: ignore[union-attr]
    assert not any("CYP2B6" in d["genes"] for d in report["drugs"])


def test_research_mode_leaves_named_allele_calls_alone(test_vcfs: Path) -> None:
    vcf = test_vcfs / "haplotype/cyp2c19/s1s2.vcf"
    plain, research = pgx_report(vcf), pgx_report(vcf, research=True)
    assert [(g.gene, g.diplotypes, g.phenotype) for g in plain.genes] == [
        (g.gene, g.diplotypes, g.phenotype) for g in research.genes
    ]
    assert not any(g.research for g in research.genes)


def test_sort_error_file_cyp2d6(test_vcfs: Path) -> None:
    """PharmCAT's sortException file: no pair of the current CYP2D6 named alleles explains its five heterozygous
    sites (a one-line reason); research mode names a combination call; both are stable run to run."""
    defs = load_definitions()
    defn = defs.genes["CYP2D6"]
    _, calls, _ = read_calls(test_vcfs / HAPLOTYPE.format("sortError"), None, gene_positions(defs))
    here = {p: v for (c, p), v in calls.items() if c == bare(defn.chromosome)}
    standard = call_gene(defn, here)
    assert standard.diplotypes == [] and standard.reason and "\n" not in standard.reason
    research = call_gene(defn, here, combinations=True)
    assert research.research and research.diplotypes and all("[" in d for d in research.diplotypes)
    assert call_gene(defn, here, combinations=True).diplotypes == research.diplotypes


def test_cyp2d6_from_the_vcf_only_with_an_outside_caller_off(test_vcfs: Path) -> None:
    """NamedAlleleMatcherTest#testCyp2d6: without CYP2D6 calling no CYP2D6 gene call is made from the VCF
    (carelens' report calls CYP2D6 only from an outside call and says so)."""
    g = next(x for x in pgx_report(test_vcfs / HAPLOTYPE.format("cyp2d6")).genes if x.gene == "CYP2D6")
    assert g.diplotypes == [] and "outside" in (g.reason or "")
