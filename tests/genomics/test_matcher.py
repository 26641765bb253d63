"""The matcher on PharmCAT's documented example (Named Allele Matcher 101): scores, missing positions, ties."""

from __future__ import annotations

from pathlib import Path

from carelens.genomics.definitions import GeneDefinition, Locus, NamedAllele, load_definitions
from carelens.genomics.matcher import GeneCall, call_gene
from carelens.genomics.pgx import gene_positions
from carelens.genomics.vcf import SampleCall, read_calls
from tests.genomics.conftest import write_vcf

POSITIONS = [101, 102, 103, 104, 105]
REFS = ["C", "C", "T", "G", "A"]
ALTS = ["T", "T", "C", "A", "G"]


def _gene() -> GeneDefinition:
    def allele(name: str, alleles: list[str | None], reference: bool = False) -> NamedAllele:
        return NamedAllele(name, reference, tuple(alleles), sum(a is not None for a in alleles))

    return GeneDefinition(
        gene="TEST",
        chromosome="chr1",
        build="GRCh38",
        version="test",
        source="test",
        loci=[
            Locus(p, f"rs{i + 1}", r, (a,), None) for i, (p, r, a) in enumerate(zip(POSITIONS, REFS, ALTS, strict=True))
        ],
        alleles=[
            allele("*1", REFS, reference=True),
            allele("*2", ["T", None, None, "A", None]),
            allele("*3", [None, None, None, "A", None]),
            allele("*4", [None, "T", None, None, None]),
            allele("*5", ["T", None, None, None, None]),
        ],
    )


def _calls(genotypes: dict[int, str]) -> dict[int, list[SampleCall]]:
    out = {}
    for pos, gt in genotypes.items():
        sep = "|" if "|" in gt else "/"
        ref = REFS[POSITIONS.index(pos)]
        out[pos] = [SampleCall("chr1", pos, ref, tuple(gt.split(sep)), sep == "|", None, "PASS", 1)]
    return out


SAMPLE = {101: "C/T", 102: "C/C", 103: "T/T", 104: "A/G", 105: "A/A"}


def test_documented_example() -> None:
    call = call_gene(_gene(), _calls(SAMPLE))
    assert call.diplotypes == ["*1/*2"] and call.score == 7  # *3/*5 (score 2) loses


def test_missing_rs5_lowers_the_score_only() -> None:
    call = call_gene(_gene(), _calls({k: v for k, v in SAMPLE.items() if k != 105}))
    assert call.diplotypes == ["*1/*2"] and call.score == 6 and call.not_assayed == [105]


def test_missing_rs1_gives_a_tie_and_says_what_could_change() -> None:
    call = call_gene(_gene(), _calls({k: v for k, v in SAMPLE.items() if k != 101}))
    assert call.diplotypes == ["*1/*2", "*1/*3"] and call.score == 5
    assert call.not_assayed == [101] and call.uncertain_alleles == ["*2", "*5"]


def test_phase_decides_between_cis_and_trans() -> None:
    cis = {101: "C|T", 102: "C|C", 103: "T|T", 104: "G|A", 105: "A|A"}  # T and A on strand 2: *2
    trans = {101: "T|C", 102: "C|C", 103: "T|T", 104: "G|A", 105: "A|A"}  # T on strand 1, A on 2: *5/*3
    assert call_gene(_gene(), _calls(cis)).diplotypes == ["*1/*2"]
    assert call_gene(_gene(), _calls(trans)).diplotypes == ["*3/*5"]


def test_haploid() -> None:
    calls = {p: [SampleCall("chr1", p, r, (r,), False, None, "PASS", 1)] for p, r in zip(POSITIONS, REFS, strict=True)}
    calls[104] = [SampleCall("chr1", 104, "G", ("A",), False, None, "PASS", 1)]
    assert call_gene(_gene(), calls).diplotypes == ["*3"]


def _nat2_vcf(tmp_path: Path, genotypes: dict[int, str]) -> Path:
    defn = load_definitions().genes["NAT2"]
    rows = []
    for locus in defn.loci:
        gt = genotypes.get(locus.position, "0/0")
        rows.append(f"chr8\t{locus.position}\t.\t{locus.ref}\t{locus.alts[0]}\t.\tPASS\t.\tGT\t{gt}")
    return write_vcf(tmp_path / "nat2.vcf", rows, chrom="chr8", length=145138636)


def test_nat2_unphased_priority_overrides_the_score(tmp_path: Path) -> None:
    """PharmCAT's exemptions.json: when *1/*16 and *4/*5 both explain unphased genotypes, *4/*5 is the call
    (picked on frequency data) although *1/*16 scores higher; phased data is called by score."""
    call = _nat2_call(_nat2_vcf(tmp_path, {18400344: "0/1", 18400806: "0/1"}))
    names = {n for n, _ in call.candidates}
    assert {"*1/*16", "*4/*5"} <= names
    assert call.diplotypes == ["*4/*5"]
    assert any("priority" in w for w in call.warnings)
    phased = _nat2_call(_nat2_vcf(tmp_path, {18400344: "0|1", 18400806: "0|1"}))
    assert phased.diplotypes == ["*1/*16"]


def _nat2_call(path: Path) -> GeneCall:
    defs = load_definitions()
    _, calls, _ = read_calls(path, None, gene_positions(defs))
    return call_gene(defs.genes["NAT2"], {p: v for (c, p), v in calls.items() if c == "8"})


def test_wobble_met_only_by_reference_is_not_scored(test_vcfs: Path) -> None:
    """DiplotypeMatcher.scoreForSample: a wobble (IUPAC) position of an allele scores nothing when the strands the
    allele stands for carry REF there (CYP2C19 *2's R at 94775507 in a *2/*2 sample that is reference there)."""
    defn = load_definitions().genes["CYP2C19"]
    star2 = next(a for a in defn.alleles if a.name == "*2")
    wobbles = [defn.loci[i].position for i, a in enumerate(star2.alleles) if a and len(a) == 1 and a not in "ACGT"]
    assert wobbles
    path = test_vcfs / "haplotype/cyp2c19/s2s2.vcf"
    _, calls, _ = read_calls(path, None, gene_positions(load_definitions()))
    call = call_gene(defn, {p: v for (c, p), v in calls.items() if c == "10"})
    seen = {int(str(p["position"])): p for p in call.positions}
    ref_wobbles = [w for w in wobbles if w in seen and set(str(seen[w]["genotype"]).split("/")) == {seen[w]["ref"]}]
    assert ref_wobbles
    defined = sum(1 for i, a in enumerate(star2.alleles) if a and defn.loci[i].position in seen)
    assert call.diplotypes == ["*2/*2"]
    assert call.score == 2 * (defined - len(ref_wobbles))


def test_nat2_without_a_required_position_is_not_called(tmp_path: Path) -> None:
    """exemptions.json requiredPositions: PharmCAT makes no NAT2 call when one of them is not assayed."""
    defn = load_definitions().genes["NAT2"]
    assert 18400194 in defn.required_positions
    full = _nat2_vcf(tmp_path, {})
    lines = [ln for ln in full.read_text().splitlines(keepends=True) if "\t18400194\t" not in ln]
    full.write_text("".join(lines))
    call = _nat2_call(full)
    assert call.diplotypes == [] and "required NAT2 position" in (call.reason or "")
    assert "18400194" in (call.reason or "")


def test_half_called_genotype_blocks_the_call(tmp_path: Path) -> None:
    """PharmCAT keeps '1/.' (one allele called) and then calls nothing for the gene; '0/.' is only a missing
    position."""
    rows = [
        "chr10\t94781859\trs4244285\tG\tA\t.\tPASS\t.\tGT\t1/.",
        "chr10\t94842866\trs3758581\tA\tG\t.\tPASS\t.\tGT\t1/1",
    ]
    defs = load_definitions()
    _, calls, _ = read_calls(write_vcf(tmp_path / "half.vcf", rows), None, gene_positions(defs))
    call = call_gene(defs.genes["CYP2C19"], {p: v for (c, p), v in calls.items() if c == "10"})
    assert call.diplotypes == [] and "partially missing genotype at chr10:94781859" in (call.reason or "")
    rows[0] = rows[0].replace("1/.", "0/.")
    _, calls, _ = read_calls(write_vcf(tmp_path / "refhalf.vcf", rows), None, gene_positions(defs))
    call = call_gene(defs.genes["CYP2C19"], {p: v for (c, p), v in calls.items() if c == "10"})
    assert 94781859 in call.not_assayed and "partially" not in (call.reason or "")
