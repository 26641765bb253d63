"""ACMG secondary findings: ClinVar pathogenic / likely pathogenic variants in the ACMG SF v3.2 genes.

ClinVar is read from its official VCF layout (INFO ``CLNSIG``, ``CLNREVSTAT``, ``GENEINFO``, ``CLNDN``,
``ALLELEID``, ``CLNSIGCONF``); the macarthur-lab reformatted layout (``CLINICAL_SIGNIFICANCE``, ``REVIEW_STATUS``,
``SYMBOL``, ``ALL_TRAITS``, ``ALLELE_ID``) is accepted as well.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from carelens.core.errors import InputError
from carelens.core.evidence import Provenance
from carelens.genomics.vcf import _iter_checked, _open, bare, choose_sample, file_hash, genotype, vcf_info

ACMG_FILE = Path(__file__).parent / "data" / "acmg_sf_v3.2.tsv"
ACMG_VERSION = "3.2"

STARS = {
    "practice_guideline": 4,
    "reviewed_by_expert_panel": 3,
    "criteria_provided,_multiple_submitters,_no_conflicts": 2,
    "criteria_provided,_conflicting_interpretations": 1,
    "criteria_provided,_conflicting_classifications": 1,
    "criteria_provided,_single_submitter": 1,
}
# HFE: only p.Cys282Tyr homozygotes are reported (GRCh38 chr6:26092913 G>A)
HFE_C282Y = ("6", 26092913, "G", "A")


@dataclass(frozen=True)
class AcmgGene:
    """One gene of the ACMG SF list with its inheritance and what to report."""

    gene: str
    inheritance: str
    variants_to_report: str
    disorders: tuple[str, ...]
    category: str
    version: str


@dataclass(frozen=True)
class ClinvarRecord:
    """The ClinVar assertion for one allele."""

    significance: str
    review_status: str
    stars: int
    genes: tuple[str, ...]
    conditions: str
    allele_id: str | None
    conflicting: bool
    conflict_detail: str | None


class Finding(BaseModel):
    """A P/LP (or conflicting) ClinVar variant in an ACMG gene found in the sample, with its evidence."""

    gene: str
    chrom: str
    pos: int
    ref: str
    alt: str
    genotype: str
    zygosity: str
    significance: str
    review_status: str
    stars: int
    conditions: str
    allele_id: str | None
    conflicting: bool
    conflict_detail: str | None = None
    inheritance: str
    rule: str
    reportable: bool
    rule_note: str
    disorders: list[str]


class FindingsReport(BaseModel):
    """All secondary findings of one sample."""

    sample: str
    acmg_version: str
    clinvar: dict[str, object]
    findings: list[Finding]
    records_scanned: int
    warnings: list[str] = Field(default_factory=list)
    provenance: Provenance | None = None
    coverage: dict[str, object] = Field(
        default_factory=dict,
        description="ACMG SF genes on the list, with P/LP alleles in the ClinVar file, and with a VCF record at one "
        "of those alleles' positions; the genes not covered are listed (findings there cannot be seen)",
    )


def load_acmg(path: Path = ACMG_FILE) -> dict[str, AcmgGene]:
    """The shipped ACMG SF gene list (one entry per gene; disorders merged)."""
    genes: dict[str, AcmgGene] = {}
    with path.open(newline="") as fh:
        rows = csv.DictReader((line for line in fh if not line.startswith("#")), delimiter="\t")
        for row in rows:
            sym = row["gene_symbol"].strip()
            prev = genes.get(sym)
            disorders = (*(prev.disorders if prev else ()), row["disease_phenotype"].strip())
            genes[sym] = AcmgGene(
                sym,
                row["inheritance"].strip(),
                row["variants_to_report"].strip(),
                disorders,
                row["phenotype_category"].strip(),
                row["sf_list_version"].strip(),
            )
    return genes


def stars(review_status: str) -> int:
    """ClinVar review stars (0-4) from CLNREVSTAT."""
    key = review_status.strip().lower().replace(" ", "_").replace("..", ",_")
    return STARS.get(key, 0)


def _significance_class(sig: str) -> str | None:
    s = sig.lower().replace(" ", "_")
    if "conflicting" in s:
        return "conflicting"
    parts = {p.strip("_") for p in s.replace(",", "/").replace("|", "/").split("/")}
    if parts & {"pathogenic", "likely_pathogenic", "pathogenic/likely_pathogenic"}:
        return "plp"
    return None


def _info(variant, key: str) -> str | None:
    value = variant.INFO.get(key)
    if value is None:
        return None
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def load_clinvar(path: Path, genes: set[str]) -> tuple[dict[tuple[str, int, str, str], ClinvarRecord], dict]:
    """P/LP and conflicting ClinVar alleles in ``genes``: ``{(contig, pos, ref, alt): record}`` and file metadata."""
    vcf_info(path)  # refuses a GRCh37 ClinVar file
    vcf = _open(path)
    header = vcf.raw_header
    official = "ID=CLNSIG" in header
    macarthur = "ID=CLINICAL_SIGNIFICANCE" in header
    if not (official or macarthur):
        vcf.close()
        raise InputError(f"{path.name}: not a ClinVar VCF (no CLNSIG or CLINICAL_SIGNIFICANCE INFO field)")
    meta: dict[str, object] = {"file": path.name, "layout": "official" if official else "macarthur-lab"}
    for line in header.splitlines():
        if line.startswith("##fileDate="):
            meta["date"] = line.split("=", 1)[1]
    out = {}
    try:
        for _, v in _iter_checked(vcf, path):
            if official:
                sig, rev = _info(v, "CLNSIG") or "", _info(v, "CLNREVSTAT") or ""
                gene_field = _info(v, "GENEINFO") or ""
                gene_list = tuple(g.split(":")[0] for g in gene_field.split("|") if g)
                conds, allele_id, conf = _info(v, "CLNDN") or "", _info(v, "ALLELEID"), _info(v, "CLNSIGCONF")
            else:
                sig, rev = _info(v, "CLINICAL_SIGNIFICANCE") or "", _info(v, "REVIEW_STATUS") or ""
                gene_list = tuple((_info(v, "SYMBOL") or "").split(","))
                conds, allele_id = (_info(v, "ALL_TRAITS") or "").replace("..", ","), _info(v, "ALLELE_ID")
                rev = rev.replace("..", ",_")
                counts = {
                    k: _info(v, k.upper()) or "0"
                    for k in ("pathogenic", "likely_pathogenic", "uncertain_significance", "likely_benign", "benign")
                }
                conf = ",".join(f"{k}({c})" for k, c in counts.items() if c != "0")
                if str(_info(v, "CONFLICTED") or "0") == "1":
                    sig = "Conflicting_classifications_of_pathogenicity"
            kind = _significance_class(sig)
            if kind is None or not set(gene_list) & genes:
                continue
            if kind == "conflicting" and "athogenic" not in (conf or ""):
                continue
            rec = ClinvarRecord(
                sig, rev, stars(rev), gene_list, conds.replace("_", " "), allele_id, kind == "conflicting", conf
            )
            for alt in v.ALT:
                out[(bare(v.CHROM), *minimal(v.POS, v.REF, alt))] = rec
    finally:
        vcf.close()
    meta["alleles_in_acmg_genes"] = len(out)
    return out, meta


def minimal(pos: int, ref: str, alt: str) -> tuple[int, str, str]:
    """The minimal representation of an allele (shared trailing, then leading bases trimmed), so that the same
    variant written differently (e.g. after splitting a multi-allelic record) compares equal."""
    while len(ref) > 1 and len(alt) > 1 and ref[-1] == alt[-1]:
        ref, alt = ref[:-1], alt[:-1]
    while len(ref) > 1 and len(alt) > 1 and ref[0] == alt[0]:
        ref, alt, pos = ref[1:], alt[1:], pos + 1
    return pos, ref, alt


def _zygosity(alleles: list[int], alt_index: int) -> str:
    if len(alleles) == 1:
        return "hemizygous"
    n = sum(a == alt_index for a in alleles)
    return "homozygous" if n == len(alleles) else "heterozygous"


def _apply_rules(findings: list[Finding], acmg: dict[str, AcmgGene]) -> None:
    by_gene: dict[str, list[Finding]] = {}
    for f in findings:
        if not f.conflicting:
            by_gene.setdefault(f.gene, []).append(f)
    for f in findings:
        gene = acmg[f.gene]
        if f.conflicting:
            f.reportable, f.rule_note = False, "conflicting interpretations in ClinVar: review before reporting"
            continue
        if gene.gene == "HFE":
            is_c282y = (bare(f.chrom), f.pos, f.ref, f.alt) == HFE_C282Y
            f.reportable = is_c282y and f.zygosity == "homozygous"
            f.rule_note = (
                "reported: p.C282Y homozygote" if f.reportable else "HFE: only p.C282Y homozygotes are reported"
            )
        elif gene.inheritance == "AR":
            others = by_gene.get(f.gene, [])
            if f.zygosity == "homozygous":
                f.reportable, f.rule_note = True, "biallelic (homozygous) P/LP"
            elif len(others) >= 2:
                f.reportable = True
                f.rule_note = (
                    f"{len(others)} P/LP variants in this recessive gene: possible compound heterozygote "
                    "(phase not established)"
                )
            else:
                f.reportable, f.rule_note = (
                    False,
                    "single heterozygous P/LP in a recessive gene: carrier, not a secondary finding",
                )
        elif gene.gene == "TTN":
            f.reportable = True
            f.rule_note = "TTN: ACMG reports truncating variants only; confirm the variant's consequence"
        else:
            f.reportable, f.rule_note = True, f"{gene.inheritance}: {gene.variants_to_report}"


def find_secondary(
    vcf: Path | str, clinvar: Path | str, sample: str | None = None, acmg_list: Path = ACMG_FILE
) -> FindingsReport:
    """Scan one sample of ``vcf`` for ClinVar P/LP variants in the ACMG SF genes (v3.2 unless ``acmg_list``)."""
    path = Path(vcf)
    info = vcf_info(path)
    name = choose_sample(info, sample)
    acmg = load_acmg(acmg_list)
    known, meta = load_clinvar(Path(clinvar), set(acmg))
    wanted = {(c, p) for c, p, _, _ in known}
    reader = _open(path, samples=[name])
    findings: list[Finding] = []
    scanned = 0
    seen: set[str] = set()
    try:
        for scanned, v in _iter_checked(reader, path):  # noqa: B007 (the count is reported)
            contig = bare(v.CHROM)
            if (contig, v.POS) not in wanted and len(v.REF) == 1:
                continue  # only a longer REF can move to a later position when trimmed
            gt = genotype(v, 0)
            alleles = [a for a in gt[:-1] if a is not None and a >= 0]
            for i, alt in enumerate(v.ALT, start=1):
                rec = known.get((contig, *minimal(v.POS, v.REF, alt)))
                if rec is None:
                    continue
                gene = next(g for g in rec.genes if g in acmg)
                seen.add(gene)
                if i not in alleles:
                    continue
                sep = "|" if (len(gt) > 2 and gt[-1]) else "/"
                findings.append(
                    Finding(
                        gene=gene,
                        chrom=v.CHROM,
                        pos=v.POS,
                        ref=v.REF,
                        alt=alt,
                        genotype=sep.join("." if a is None or a < 0 else str(a) for a in gt[:-1]),
                        zygosity=_zygosity(alleles, i),
                        significance=rec.significance,
                        review_status=rec.review_status,
                        stars=rec.stars,
                        conditions=rec.conditions,
                        allele_id=rec.allele_id,
                        conflicting=rec.conflicting,
                        conflict_detail=rec.conflict_detail,
                        inheritance=acmg[gene].inheritance,
                        rule=acmg[gene].variants_to_report,
                        reportable=False,
                        rule_note="",
                        disorders=list(acmg[gene].disorders),
                    )
                )
    finally:
        reader.close()
    _apply_rules(findings, acmg)
    version = ACMG_VERSION if acmg_list == ACMG_FILE else f"custom list {acmg_list.name}"
    clinvar_version = str(meta.get("date") or meta.get("file"))
    coverage, gaps = _coverage(acmg, known, seen)
    return FindingsReport(
        provenance=Provenance(
            model_id="carelens.genomics.findings",
            model_version=f"ACMG SF {version}; ClinVar {clinvar_version}",
            input_hash=file_hash(path),
        ),
        coverage=coverage,
        sample=name,
        acmg_version=version,
        clinvar=meta,
        findings=findings,
        records_scanned=scanned,
        warnings=[*info.warnings, *gaps],
    )


def _coverage(
    acmg: dict[str, AcmgGene], known: dict[tuple[str, int, str, str], ClinvarRecord], seen: set[str]
) -> tuple[dict[str, object], list[str]]:
    """How many ACMG SF genes the ClinVar file and the VCF cover, and one warning per gene that is not covered."""
    in_clinvar = {g for rec in known.values() for g in rec.genes if g in acmg}
    warnings = []
    for gene in sorted(acmg):
        if gene not in in_clinvar:
            warnings.append(
                f"ACMG SF gene {gene}: the ClinVar file has no P/LP allele in it; findings there cannot be seen"
            )
        elif gene not in seen:
            warnings.append(
                f"ACMG SF gene {gene}: the VCF has no record at any of its ClinVar P/LP positions (not sequenced, or a "
                "variant-only VCF without a finding there)"
            )
    coverage: dict[str, object] = {
        "acmg_genes": len(acmg),
        "in_clinvar": len(in_clinvar),
        "in_vcf": len(seen),
        "not_covered": sorted(set(acmg) - seen),
    }
    return coverage, warnings
