"""Research mode (PharmCAT's combination / partial calls): behind --research-combinations, flagged, never a CPIC
phenotype or recommendation; the standard report is unchanged without it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carelens.cli import app
from carelens.genomics.definitions import load_definitions
from carelens.genomics.matcher import call_gene
from carelens.genomics.pgx import gene_positions, pgx_report
from carelens.genomics.vcf import bare, read_calls
from tests.genomics.conftest import write_vcf

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


def _every_position_vcf(
    path: Path, gene: str, variants: dict[str, tuple[str, ...]], phased: bool = False, missing: tuple[str, ...] = ()
) -> Path:
    """What PharmCAT's TestVcfBuilder.forGene writes: every position of the gene's definition, reference unless
    ``variants`` gives its two alleles (and optionally a phase set); ``missing`` rsids left out."""
    defn = load_definitions().genes[gene]
    sep = "|" if phased else "/"
    rows = []
    for locus in defn.loci:
        if locus.rsid in missing:
            continue
        alleles = [locus.ref, *locus.alts]
        gt, ps = f"0{sep}0", None
        if locus.rsid in variants:
            a1, a2, *rest = variants[locus.rsid]
            alleles += [a for a in dict.fromkeys((a1, a2)) if a not in alleles]
            gt, ps = f"{alleles.index(a1)}{sep}{alleles.index(a2)}", (rest[0] if rest else None)
        fmt, value = ("GT:PS", f"{gt}:{ps}") if ps else ("GT", gt)
        alts = ",".join(alleles[1:]) or "."
        rows.append(
            f"{defn.chromosome}\t{locus.position}\t{locus.rsid or '.'}\t{locus.ref}\t{alts}\t.\tPASS\t.\t{fmt}\t{value}"
        )
    return write_vcf(path, rows, chrom=defn.chromosome, length=58617616)


NEWER = "NamedAlleleMatcherTest.java (newer JUnit 5 version, TestVcfBuilder.forGene('CYP2B6'))"
CYP2B6_CASES = [  # (PharmCAT test, genotypes, phased, missing rsids, expected: every match, in PharmCAT's order)
    (
        "testCombinationHomozygous",
        {"rs8192709": ("T", "T"), "rs3211371": ("T", "T")},
        False,
        (),
        ["[*2 + *5]/[*2 + *5]"],
    ),
    (
        "testCombo3",
        {"rs34883432": ("A", "T"), "rs8192709": ("C", "T"), "rs35773040": ("A", "G"), "rs3745274": ("T", "G")},
        True,
        (),
        ["*10/[*9 + *14]"],
    ),
    (
        "testCombo3WithPhaseSet",
        {
            "rs34883432": ("A", "T", "40991346"),
            "rs8192709": ("C", "T", "40991346"),
            "rs35773040": ("A", "G", "41004360"),
            "rs3745274": ("G", "T", "41006915"),
        },
        True,
        (),
        ["*1/[*9 + *10 + *14]", "*9/[*10 + *14]", "*14/[*9 + *10]", "*10/[*9 + *14]"],
    ),
    (
        "testCombinationWithShellPhased",
        {"rs35773040": ("G", "A"), "rs3745274": ("T", "T"), "rs2279343": ("G", "G"), "rs12721655": ("G", "A")},
        True,
        (),
        ["*13/[*6 + *14]"],
    ),
    (
        "testCombinationWithShellMissing",
        {"rs35773040": ("G", "A"), "rs3745274": ("T", "T"), "rs2279343": ("G", "G")},
        False,
        ("rs12721655",),
        ["*6/[*6 + *14]", "*6/[*13 + *14]", "*13/[*6 + *14]", "*13/[*13 + *14]"],
    ),
    (
        "testPartialUnphasedWithSingleHapMatch",
        {"rs33973337": ("A", "T"), "rs45482602": ("C", "T")},
        False,
        (),
        ["*1/[g.40991381A>T + g.41009350C>T]", "g.40991381A>T/g.41009350C>T"],
    ),
]


@pytest.mark.parametrize("case", CYP2B6_CASES, ids=lambda c: c[0])
def test_pharmcat_combination_tests_built_like_test_vcf_builder(case: tuple, tmp_path: Path) -> None:  # type: ignore[type-arg]
    """PharmCAT's combination tests that build their VCF with TestVcfBuilder (not among the 155 files), rebuilt
    here the same way against the shipped CYP2B6 definitions: each Java test states its whole list of matches in
    order (``assertEquals(List.of(...), matches)``), and carelens' top call is that list, in that order."""
    name, variants, phased, missing, expected = case
    vcf = _every_position_vcf(tmp_path / f"{name}.vcf", "CYP2B6", variants, phased, missing)
    defs = load_definitions()
    defn = defs.genes["CYP2B6"]
    _, calls, _ = read_calls(vcf, None, gene_positions(defs))
    call = call_gene(defn, {p: v for (c, p), v in calls.items() if c == bare(defn.chromosome)}, combinations=True)
    assert call.diplotypes == expected, (call.diplotypes, NEWER, name)


def test_combination_search_too_large_is_refused_with_a_reason(tmp_path: Path) -> None:
    """Twelve unphased heterozygous CYP2B6 sites no named-allele pair explains: the research search (2**11
    arrangements) is refused with a one-line reason instead of running for minutes."""
    defn = load_definitions().genes["CYP2B6"]
    hets = {loc.rsid: (loc.ref, loc.alts[0]) for loc in defn.loci[:12] if loc.rsid and loc.alts}
    vcf = _every_position_vcf(tmp_path / "many.vcf", "CYP2B6", hets)
    defs = load_definitions()
    _, calls, _ = read_calls(vcf, None, gene_positions(defs))
    call = call_gene(defn, {p: v for (c, p), v in calls.items() if c == bare(defn.chromosome)}, combinations=True)
    assert len(hets) == 12 and call.diplotypes == []
    assert call.reason and "combination search not run" in call.reason and "\n" not in call.reason
