"""Per-patient GRCh38 VCFs: pharmacogene positions from the PharmCAT allele definitions (every
defining position of each planted gene is called, reference calls included), plus planted
pathogenic variants; written BGZF-compressed (block gzip, readable by htslib, cyvcf2 and gzip).
"""

from __future__ import annotations

import csv
import json
import struct
import zlib
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from carelens.demo.manifest import PlantedPgx, PlantedVariant
from carelens.genomics.matcher import IUPAC

GRCH38_CONTIGS = {
    "chr1": 248956422,
    "chr2": 242193529,
    "chr3": 198295559,
    "chr4": 190214555,
    "chr5": 181538259,
    "chr6": 170805979,
    "chr7": 159345973,
    "chr8": 145138636,
    "chr9": 138394717,
    "chr10": 133797422,
    "chr11": 135086622,
    "chr12": 133275309,
    "chr13": 114364328,
    "chr14": 107043718,
    "chr15": 101991189,
    "chr16": 90338345,
    "chr17": 83257441,
    "chr18": 80373285,
    "chr19": 58617616,
    "chr20": 64444167,
    "chr21": 46709983,
    "chr22": 50818468,
    "chrX": 156040895,
    "chrY": 57227415,
}

# well-known pathogenic variants in ACMG SF genes (GRCh38, ClinVar variation ids); the
# shared ClinVar example file covers chr1:1.0-3.5 Mb only, where no ACMG gene lies
# (NCBI gene id, disease, review status) written to the demo ClinVar extract
CLINVAR_ANNOTATION = {
    "BRCA1": ("672", "Hereditary_breast_ovarian_cancer_syndrome", "reviewed_by_expert_panel"),
    "MUTYH": ("4595", "MUTYH-associated_polyposis", "criteria_provided,_multiple_submitters,_no_conflicts"),
    "ISG15": ("9636", "Immunodeficiency_38", "no_assertion_criteria_provided"),
}
BUILTIN_PATHOGENIC: dict[str, dict[str, Any]] = {
    "BRCA1": dict(
        chrom="chr17",
        pos=43124027,
        ref="ACT",
        alt="A",
        genotype="0/1",
        hgvs="NM_007294.4(BRCA1):c.68_69del (p.Glu23fs)",
        clinvar_id="17662",
    ),
    "MUTYH": dict(
        chrom="chr1",
        pos=45331556,
        ref="C",
        alt="T",
        genotype="1/1",
        hgvs="NM_001128425.2(MUTYH):c.1187G>A (p.Gly396Asp)",
        clinvar_id="5294",
    ),
}


@dataclass(frozen=True)
class GeneDefinition:
    gene: str
    chromosome: str
    variants: list[dict]
    alleles: dict[str, list[str | None]]  # named allele -> value per variant position
    order: list[str]
    reference: str


@lru_cache(maxsize=32)
def load_gene(pharmcat_dir: Path, gene: str) -> GeneDefinition:
    """The PharmCAT named-allele definition of ``gene``."""
    data = json.loads((pharmcat_dir / "alleles" / f"{gene}_translation.json").read_text())
    named = data["namedAlleles"]
    return GeneDefinition(
        gene=gene,
        chromosome=data["chromosome"],
        variants=data["variants"],
        alleles={a["name"]: a["alleles"] for a in named},
        order=[a["name"] for a in named],
        reference=next(a["name"] for a in named if a["reference"]),
    )


def haplotype(defn: GeneDefinition, allele: str) -> list[int]:
    """The allele index (0 = REF) at every position of the gene for one named allele:
    the reference allele's sequence overlaid with the named allele's defining values."""
    out = []
    ref_values, values = defn.alleles[defn.reference], defn.alleles[allele]
    for i, var in enumerate(defn.variants):
        value = values[i] if values[i] is not None else ref_values[i]
        choices = [var["ref"], *var["alts"]]
        if value is None or value == var["ref"]:
            out.append(0)
        elif value in choices:
            out.append(choices.index(value))
        elif len(IUPAC.get(value, "")) > 1:  # a wobble code
            out.append(0 if var["ref"] in IUPAC[value] else next(j for j, c in enumerate(choices) if c in IUPAC[value]))
        else:
            raise ValueError(
                f"{defn.gene} {allele}: allele value at position {var['position']} is not in the VCF alleles"
            )
    return out


def phenotype(pharmcat_dir: Path, gene: str, alleles: tuple[str, str]) -> str | None:
    """The phenotype PharmCAT's table gives for the diplotype, when the table is present."""
    want = Counter(alleles)
    for row in _phenotype_table(pharmcat_dir, gene):
        if Counter(row.get("diplotypekey") or {}) == want:
            return row.get("generesult") or row.get("phenotype")
    return None


@lru_cache(maxsize=32)
def _phenotype_table(pharmcat_dir: Path, gene: str) -> list[dict]:
    path = pharmcat_dir / "phenotype" / f"{gene}.json"
    return json.loads(path.read_text()).get("diplotypes", []) if path.exists() else []


@lru_cache(maxsize=4)
def acmg_genes(genomics_dir: Path) -> frozenset[str]:
    path = genomics_dir / "acmg-sf" / "acmg_sf_v3.1.tsv"
    with path.open() as fh:
        return frozenset(row["gene_symbol"] for row in csv.DictReader(fh, delimiter="\t"))


@lru_cache(maxsize=4)
def clinvar_example(genomics_dir: Path) -> dict | None:
    """The first pathogenic single-nucleotide variant of the shared ClinVar example file."""
    for path in sorted((genomics_dir / "clinvar").glob("*.tsv")):
        with path.open() as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                if row["clinical_significance"] == "Pathogenic" and len(row["ref"]) == len(row["alt"]) == 1:
                    return row
    return None


def planted_variant(genomics_dir: Path, gene: str) -> PlantedVariant | None:
    """A builtin ACMG variant for ``gene``, or for ``ISG15`` the ClinVar example file's variant."""
    acmg = acmg_genes(genomics_dir)
    if gene in BUILTIN_PATHOGENIC:
        v = BUILTIN_PATHOGENIC[gene]
        return PlantedVariant(gene=gene, significance="Pathogenic", acmg=gene in acmg, source="builtin", **v)
    row = clinvar_example(genomics_dir)
    if row is None:
        return None
    return PlantedVariant(
        gene=row["symbol"],
        chrom=f"chr{row['chrom']}",
        pos=int(row["pos"]),
        ref=row["ref"],
        alt=row["alt"],
        genotype="0/1",
        hgvs=row["hgvs_c"],
        significance=row["clinical_significance"],
        acmg=row["symbol"] in acmg,
        source="clinvar-example",
        clinvar_id=row["variation_id"],
    )


def _sort_key(chrom: str, pos: int) -> tuple[int, int]:
    return (list(GRCH38_CONTIGS).index(chrom), pos)


def render_vcf(
    sample: str, pgx: dict[str, tuple[str, str]], variants: list[PlantedVariant], pharmcat_dir: Path, file_date: str
) -> tuple[str, list[PlantedPgx]]:
    """VCF text for one sample and the diplotypes it encodes."""
    rows: list[tuple[tuple[int, int], str]] = []
    planted: list[PlantedPgx] = []
    for gene, (a, b) in sorted(pgx.items()):
        defn = load_gene(pharmcat_dir, gene)
        pair = sorted((a, b), key=defn.order.index)
        ha, hb = haplotype(defn, pair[0]), haplotype(defn, pair[1])
        planted.append(
            PlantedPgx(
                gene=gene,
                diplotype="/".join(pair),
                alleles=pair,
                phenotype=phenotype(pharmcat_dir, gene, (a, b)),
                positions=len(defn.variants),
            )
        )
        for var, ga, gb in zip(defn.variants, ha, hb, strict=True):
            alt = ",".join(var["alts"]) or "."
            gt = f"{ga}|{gb}"
            line = (
                f"{var['chromosome']}\t{var['position']}\t{var.get('rsid') or '.'}\t{var['ref']}\t{alt}\t50\tPASS\t"
                f"PX={gene}\tGT:DP\t{gt}:{30 + (var['position'] % 17)}"
            )
            rows.append((_sort_key(var["chromosome"], var["position"]), line))
    for v in variants:
        info = f"GENE={v.gene}"
        line = f"{v.chrom}\t{v.pos}\t.\t{v.ref}\t{v.alt}\t60\tPASS\t{info}\tGT:DP\t{v.genotype}:{35 + v.pos % 11}"
        rows.append((_sort_key(v.chrom, v.pos), line))
    header = [
        "##fileformat=VCFv4.2",
        f"##fileDate={file_date}",
        "##source=carelens-demo",
        "##reference=GRCh38",
        *[f"##contig=<ID={c},length={n},assembly=GRCh38>" for c, n in GRCH38_CONTIGS.items()],
        '##FILTER=<ID=PASS,Description="All filters passed">',
        '##INFO=<ID=PX,Number=1,Type=String,Description="Pharmacogene whose allele definition uses this position">',
        '##INFO=<ID=GENE,Number=1,Type=String,Description="Gene of a planted variant">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Read depth">',
        "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", sample]),
    ]
    body = [line for _, line in sorted(rows)]
    return "\n".join(header + body) + "\n", planted


BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


def bgzf(data: bytes, block: int = 65280) -> bytes:
    """Compress ``data`` as BGZF (the blocked gzip of htslib; deterministic, mtime 0)."""
    out = bytearray()
    for i in range(0, len(data), block):
        chunk = data[i : i + block]
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        cdata = comp.compress(chunk) + comp.flush()
        bsize = len(cdata) + 25
        out += struct.pack("<BBBBIBBHBBHH", 31, 139, 8, 4, 0, 0, 255, 6, 66, 67, 2, bsize)
        out += cdata
        out += struct.pack("<II", zlib.crc32(chunk) & 0xFFFFFFFF, len(chunk))
    return bytes(out + BGZF_EOF)


def render_clinvar(variants: list[PlantedVariant], file_date: str) -> str:
    """A ClinVar-layout VCF (CLNSIG, CLNREVSTAT, GENEINFO, CLNDN) holding the planted variants:
    the shared ClinVar example covers none of the ACMG genes, so the demo ships this extract."""
    header = [
        "##fileformat=VCFv4.1",
        f"##fileDate={file_date}",
        "##source=ClinVar extract for the carelens demo (planted variants only)",
        "##reference=GRCh38",
        *[f"##contig=<ID={c.removeprefix('chr')},length={n},assembly=GRCh38>" for c, n in GRCH38_CONTIGS.items()],
        '##INFO=<ID=CLNDN,Number=.,Type=String,Description="ClinVar\'s preferred disease name">',
        '##INFO=<ID=CLNREVSTAT,Number=.,Type=String,Description="ClinVar review status">',
        '##INFO=<ID=CLNSIG,Number=.,Type=String,Description="Aggregate germline classification">',
        '##INFO=<ID=GENEINFO,Number=1,Type=String,Description="Gene(s) for the variant: symbol:gene id">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
    ]
    rows = {}
    for v in variants:
        gene_id, disease, review = CLINVAR_ANNOTATION.get(v.gene, ("0", "not_provided", "no_assertion_provided"))
        info = f"CLNDN={disease};CLNREVSTAT={review};CLNSIG={v.significance};GENEINFO={v.gene}:{gene_id}"
        chrom = v.chrom.removeprefix("chr")
        rows[_sort_key(v.chrom, v.pos)] = f"{chrom}\t{v.pos}\t{v.clinvar_id or '.'}\t{v.ref}\t{v.alt}\t.\t.\t{info}"
    return "\n".join(header + [rows[k] for k in sorted(rows)]) + "\n"
