"""Pharmacogenomic report: star-allele diplotypes per gene, phenotypes, CPIC drug recommendations."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from pydantic import BaseModel, Field

from carelens.core.errors import InputError
from carelens.core.evidence import Provenance
from carelens.core.ids import content_hash
from carelens.core.quarantine import Quarantined
from carelens.genomics.definitions import PgxDefinitions, load_definitions
from carelens.genomics.dpwg import genotype_diplotype, match_dpwg
from carelens.genomics.dpyd import detected_alleles, lowest_two
from carelens.genomics.matcher import GeneCall, call_gene, natural_key
from carelens.genomics.phenotype_rules import metabolizer
from carelens.genomics.vcf import SampleCall, bare, file_hash, read_calls, read_calls_multi, vcf_info

# genes whose calls need data a VCF does not carry (copy number, hybrids, HLA typing): outside calls only
OUTSIDE_ONLY = {
    "CYP2D6": "CYP2D6 is not called from a VCF (copy number and CYP2D6/2D7 hybrids are not visible in it); "
    "give it with --outside-calls",
}


class GeneResult(BaseModel):
    """One gene's call with the positions and genotypes it rests on."""

    gene: str
    diplotypes: list[str]
    phenotype: str | None
    phenotypes: list[str | None] = Field(default_factory=list, description="the phenotype of each diplotype, in order")
    activity_score: str | None = None
    lookup_key: str | None = None
    not_assayed: list[int] = Field(default_factory=list)
    assumed_reference: list[int] = Field(
        default_factory=list, description="positions absent from the VCF taken as reference (missing-to-ref only)"
    )
    could_change: list[str] = Field(default_factory=list, description="alleles that rest on not-assayed positions")
    reason: str | None = None
    phenotype_note: str | None = None
    detected_alleles: list[str] = Field(
        default_factory=list, description="DPYD, unphased: every variant allele found (CPIC lowest-two rule input)"
    )
    lookup_diplotype: str | None = Field(default=None, description="the diplotype the phenotype was looked up with")
    display: list[str] = Field(
        default_factory=list,
        description="the call as PharmCAT prints it: the diplotypes, or for unphased UGT1A1 each allele's presence",
    )
    source: str = "vcf"
    chromosome: str | None = None
    phased: bool | None = None
    score: int | None = None
    positions: list[dict[str, object]] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    research: bool = Field(
        default=False, description="a research-mode combination / partial call: no CPIC phenotype or recommendation"
    )


class DrugRecommendation(BaseModel):
    """A CPIC recommendation that applies to this patient's phenotypes."""

    drug: str
    genes: dict[str, str]
    recommendation: str
    strength: str | None
    population: str | None
    implications: list[str]
    guideline: str
    url: str | None
    source: str = Field(default="CPIC", description="CPIC or DPWG (both are listed where both have a guideline)")
    version: str | None = Field(default=None, description="the guideline annotation's version (DPWG: PharmGKB's)")
    guideline_id: str | None = Field(default=None, description="PharmGKB / ClinPGx guideline annotation id")
    group_id: str | None = Field(default=None, description="DPWG: the PharmGKB annotation group that matched")
    rx_change: str | None = Field(default=None, description="DPWG: whether the guideline changes the prescription")


class PgxReport(BaseModel):
    """The whole PGx report for one sample."""

    sample: str
    genes: list[GeneResult]
    drugs: list[DrugRecommendation]
    warnings: list[str] = Field(default_factory=list)
    provenance: Provenance | None = None
    definitions: dict[str, object] = Field(default_factory=dict)


def _phenotype(defs: PgxDefinitions, gene: str, diplotypes: list[str]) -> tuple[str | None, str | None, str | None]:
    table = defs.phenotypes.get(gene)
    if table is None or not diplotypes:
        return None, None, None
    found = set()
    for dip in diplotypes:
        key = tuple(sorted(dip.split("/")))
        if key in table.diplotypes:
            found.add(table.diplotypes[key])
    if len(found) == 1 and len(diplotypes) >= 1:
        phenotype, lookup, activity = found.pop()
        if all(tuple(sorted(d.split("/"))) in table.diplotypes for d in diplotypes):
            return phenotype, lookup, activity
    return None, None, None


def _each_phenotype(defs: PgxDefinitions, gene: str, diplotypes: list[str]) -> list[str | None]:
    table = defs.phenotypes.get(gene)
    if table is None:
        return [None] * len(diplotypes)
    return [(table.diplotypes.get(tuple(sorted(d.split("/")))) or (None,))[0] for d in diplotypes]


def read_outside_calls(path: Path) -> dict[str, dict[str, str | None]]:
    """Outside calls TSV: ``gene<TAB>diplotype[<TAB>phenotype[<TAB>activity score]]``; ``#`` lines are comments."""
    if not path.exists():
        raise InputError(f"outside calls file not found: {path.name}")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"{path.name}: not UTF-8 text (invalid byte at offset {err.start})") from None
    out: dict[str, dict[str, str | None]] = {}
    for n, row in enumerate(csv.reader(io.StringIO(text, newline=""), delimiter="\t"), start=1):
        if not row or not row[0].strip() or row[0].startswith("#"):
            continue
        if not any(cell.strip() for cell in row[1:4]):
            raise InputError(
                f"{path.name} line {n}: expected 'gene<TAB>diplotype[<TAB>phenotype[<TAB>activity score]]' "
                "with a diplotype, a phenotype or an activity score"
            )
        gene = row[0].strip().upper()
        if gene in out:
            raise InputError(f"{path.name} line {n}: gene {gene} given twice")
        out[gene] = {
            "diplotype": row[1].strip() or None,
            "phenotype": (row[2].strip() or None) if len(row) > 2 else None,
            "activity": (row[3].strip() or None) if len(row) > 3 else None,
        }
    return out


def _strip_gene(gene: str, diplotype: str) -> str:
    """PharmCAT's outside-call parser accepts alleles written with the gene ('CYP2D6*1/CYP2D6*4', 'HLA-B*57:01',
    'B*57:01'): the gene prefix is dropped."""
    prefixes = (gene, gene.removeprefix("HLA-")) if gene.startswith("HLA-") else (gene,)
    alleles = []
    for allele in diplotype.split("/"):
        allele = allele.strip()
        for prefix in prefixes:
            if allele.startswith(prefix + "*"):
                allele = allele[len(prefix) :]
                break
        alleles.append(allele)
    return "/".join(alleles)


def _outside_result(defs: PgxDefinitions, gene: str, call: dict[str, str | None]) -> GeneResult:
    dips = [_strip_gene(gene, d.strip()) for d in call["diplotype"].split(" or ")] if call["diplotype"] else []
    phenotype, lookup, activity = _phenotype(defs, gene, dips)
    if not dips and call["activity"] and not call["phenotype"] and defs.phenotypes.get(gene, None) is not None:
        phenotype = metabolizer(call["activity"]) if defs.phenotypes[gene].activity else None
    if gene.startswith("HLA-") and phenotype is None and len(dips) == 1:
        phenotype = _hla_presence(defs, gene, dips[0])
    phenotype = call["phenotype"] or phenotype
    activity = call["activity"] or activity
    lookup = call["activity"] or call["phenotype"] or lookup
    return GeneResult(
        gene=gene,
        diplotypes=dips,
        phenotype=phenotype,
        activity_score=activity,
        lookup_key=lookup,
        source="outside call",
        reason=None,
    )


def _hla_presence(defs: PgxDefinitions, gene: str, diplotype: str) -> str | None:
    """HLA phenotype as PharmCAT gives it: presence of each allele a CPIC recommendation is keyed on."""
    keyed = sorted(
        {v.split(" ")[0] for r in defs.recommendations for g, v in r.lookup.items() if g == gene and v[:1] == "*"}
    )
    if not keyed:
        return None
    return "; ".join(f"{a} {'positive' if _hla_matches(a + ' positive', diplotype) else 'negative'}" for a in keyed)


def _hla_matches(value: str, diplotype: str) -> bool:
    allele, _, status = value.partition(" ")
    present = allele in diplotype.replace("HLA-A", "").replace("HLA-B", "").split("/")
    return present if status == "positive" else (not present if status == "negative" else False)


def _lookup_matches(g: GeneResult | None, value: str) -> bool:
    """Whether a gene result satisfies one CPIC lookup key (an uncalled or absent gene is 'No Result')."""
    if g is None or not (g.diplotypes or g.lookup_key):
        return value == "No Result"
    if g.gene.startswith("HLA-"):
        return len(g.diplotypes) == 1 and _hla_matches(value, g.diplotypes[0])
    return g.lookup_key is not None and g.lookup_key == value


def recommend(defs: PgxDefinitions, genes: list[GeneResult]) -> list[DrugRecommendation]:
    """CPIC recommendations whose phenotype keys all match this patient's gene results."""
    keys = {g.gene: g for g in genes}
    out = []
    seen = set()
    for rec in defs.recommendations:
        if not rec.lookup:
            continue
        called = {gene for gene in rec.lookup if gene in keys and (keys[gene].diplotypes or keys[gene].lookup_key)}
        if not called or not all(_lookup_matches(keys.get(gene), value) for gene, value in rec.lookup.items()):
            continue
        ident = (rec.drug, rec.population, rec.text)
        if ident in seen:
            continue
        seen.add(ident)
        out.append(
            DrugRecommendation(
                drug=rec.drug,
                genes=dict(rec.lookup),
                recommendation=rec.text,
                strength=rec.strength,
                population=rec.population,
                implications=rec.implications,
                guideline=rec.guideline,
                url=rec.url,
            )
        )
    return sorted(out, key=lambda r: (r.drug, r.population or ""))


def recommend_dpwg(genes: list[GeneResult]) -> list[DrugRecommendation]:
    """DPWG recommendations, beside CPIC's as PharmCAT reports them: per gene its single (non-research) diplotype
    (DPYD: the lowest-two lookup diplotype; SLCO1B1: the c.521 genotype DPWG keys on) and its activity score."""
    calls = {
        g.gene: (
            genotype_diplotype(g.gene, g.positions)
            or g.lookup_diplotype
            or (g.diplotypes[0] if len(g.diplotypes) == 1 else None),
            g.activity_score,
        )
        for g in genes
        if not g.research and (g.diplotypes or g.activity_score or g.positions)
    }
    matches, _ = match_dpwg(calls)
    return [
        DrugRecommendation(
            drug=m.guideline.drug,
            genes={gene: f"{on} ({m.group.name})" for gene, on in m.genes.items()},
            recommendation=m.group.recommendation,
            strength=None if m.group.strength in (None, "N/A") else m.group.strength,
            population=None,
            implications=[m.group.implications] if m.group.implications else [],
            guideline=m.guideline.name,
            url=m.guideline.url,
            source="DPWG",
            version=m.guideline.version,
            guideline_id=m.guideline.id,
            group_id=m.group.id,
            rx_change=m.group.rx_change,
        )
        for m in matches
    ]


SLCO1B1_C521 = {("T", "T"): "Normal Function", ("C", "T"): "Decreased Function", ("C", "C"): "Poor Function"}


def _slco1b1_rs4149056(call: GeneCall) -> str | None:
    """SLCO1B1 phenotype from c.521T>C (chr12:21178615) alone, used when no star allele can be called."""
    for p in call.positions:
        if p["position"] == 21178615:
            alleles = tuple(sorted(str(p["genotype"]).replace("|", "/").split("/")))
            return SLCO1B1_C521.get(alleles)  # type: ignore[arg-type]
    return None


ALLELE_PRESENCE_GENES = frozenset({"UGT1A1"})


def _display(reference: str, call: GeneCall) -> list[str]:
    """PharmCAT's printed call: unphased UGT1A1 with heterozygous positions is shown as the presence of each
    non-reference allele across the top diplotypes ('*28 (heterozygous)'), since the pairing is not known."""
    if call.gene not in ALLELE_PRESENCE_GENES or call.phased is not False or not call.diplotypes:
        return list(call.diplotypes)
    pairs = [d.split("/") for d in call.diplotypes]
    alleles = sorted({a for p in pairs for a in p if a != reference}, key=natural_key)
    return [f"{a} ({'homozygous' if all(p.count(a) == 2 for p in pairs) else 'heterozygous'})" for a in alleles]


def gene_result(
    defs: PgxDefinitions,
    gene: str,
    calls: dict[int, list[SampleCall]],
    missing_to_ref: bool = False,
    research: bool = False,
) -> GeneResult:
    """One gene's call, phenotype and the evidence it rests on, with CPIC's gene-specific rules (DPYD, SLCO1B1).
    ``research``: where no diplotype of named alleles fits, report PharmCAT's combination / partial call."""
    g = defs.genes[gene]
    if gene in OUTSIDE_ONLY:
        return GeneResult(gene=gene, diplotypes=[], phenotype=None, reason=OUTSIDE_ONLY[gene], chromosome=g.chromosome)
    call = call_gene(g, calls, missing_to_ref, combinations=research and gene != "DPYD")  # DPYD: CPIC lowest-two
    detected: list[str] = []
    lookup_dip = call.diplotypes[0] if len(call.diplotypes) == 1 else None
    if gene == "DPYD" and call.phased is False and not (call.reason or "").startswith("allele not in"):
        detected = detected_alleles(g, calls)
        lookup_dip = lowest_two(g, defs.phenotypes.get(gene), detected)
        if not call.diplotypes:
            call.diplotypes, call.reason = [lookup_dip], None
            call.warnings.append(
                f"unphased DPYD with {len(detected)} variant alleles: the two lowest-activity ones give the "
                "genotype (CPIC rule)"
            )
    phenotype, lookup, activity = _phenotype(defs, gene, [lookup_dip] if lookup_dip else call.diplotypes)
    note = None
    if gene == "SLCO1B1" and not call.diplotypes and (fallback := _slco1b1_rs4149056(call)):
        phenotype = lookup = fallback
        note = "no star-allele call: phenotype from the rs4149056 (c.521T>C) genotype alone (CPIC / PharmCAT rule)"
    if call.research:
        phenotype = lookup = activity = None
        note = "research-mode combination / partial call: CPIC defines no phenotype for it"
    elif call.diplotypes and phenotype is None:
        note = (
            "no CPIC phenotype table for this gene"
            if gene not in defs.phenotypes
            else "tied diplotypes differ in phenotype"
            if len(call.diplotypes) > 1
            else "diplotype not in the CPIC phenotype table"
        )
    return GeneResult(
        gene=gene,
        diplotypes=call.diplotypes,
        display=_display(g.reference.name, call),
        phenotype=phenotype,
        phenotypes=_each_phenotype(defs, gene, call.diplotypes),
        activity_score=activity,
        lookup_key=lookup,
        not_assayed=call.not_assayed,
        assumed_reference=call.assumed_reference,
        detected_alleles=detected,
        lookup_diplotype=lookup_dip if phenotype else None,
        could_change=call.uncertain_alleles,
        reason=call.reason,
        phenotype_note=note,
        chromosome=g.chromosome,
        phased=call.phased,
        score=call.score,
        positions=call.positions,
        warnings=call.warnings,
        research=call.research,
    )


def gene_positions(defs: PgxDefinitions) -> dict[str, set[int]]:
    """``{bare contig: {positions}}`` of every defined gene."""
    positions: dict[str, set[int]] = {}
    for g in defs.genes.values():
        positions.setdefault(bare(g.chromosome), set()).update(locus.position for locus in g.loci)
    return positions


def pgx_report(
    vcf: Path | str,
    sample: str | None = None,
    outside_calls: Path | str | None = None,
    definitions: PgxDefinitions | None = None,
    missing_to_ref: bool = False,
    research: bool = False,
) -> PgxReport:
    """Call every defined gene for one sample of ``vcf``; outside calls override or add genes.

    ``missing_to_ref`` takes positions absent from the VCF as reference (for variant-only VCFs); every such
    position is listed in the gene's ``assumed_reference``. ``research``: PharmCAT's combination / partial calls
    where no diplotype of named alleles fits (flagged per gene; no phenotype or recommendation follows).
    """
    defs = definitions or load_definitions()
    path = Path(vcf)
    outside = read_outside_calls(Path(outside_calls)) if outside_calls else {}
    name, calls, info = read_calls(path, sample, gene_positions(defs))
    return report_from_calls(
        defs, name, calls, info.warnings, outside, missing_to_ref, input_hash=file_hash(path), research=research
    )


class SampleReports(BaseModel):
    """Every sample of a multi-sample VCF: one report each, and the samples that could not be reported."""

    file: str
    reports: list[PgxReport]
    quarantined: list[Quarantined] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


def pgx_reports(
    vcf: Path | str,
    outside_calls: Path | str | None = None,
    definitions: PgxDefinitions | None = None,
    missing_to_ref: bool = False,
    research: bool = False,
) -> SampleReports:
    """One report per sample of ``vcf`` (read in one pass); a sample with no genotype at any PGx position is
    quarantined with a one-line reason (never its name: sample IDs can identify a patient)."""
    defs = definitions or load_definitions()
    path = Path(vcf)
    info = vcf_info(path)
    if not info.samples:
        raise InputError(f"{path.name}: the VCF has no sample columns (no genotypes)")
    outside = read_outside_calls(Path(outside_calls)) if outside_calls else {}
    per_sample = read_calls_multi(path, info.samples, gene_positions(defs), info)
    digest = file_hash(path)
    out = SampleReports(file=path.name, reports=[], warnings=list(info.warnings))
    for n, name in enumerate(info.samples, start=1):
        calls = per_sample[name]
        if not any(not c.missing for cs in calls.values() for c in cs):
            out.quarantined.append(
                Quarantined(
                    source=path.name,
                    where=f"sample {n} of {len(info.samples)}",
                    reason="no genotype at any PGx position (all missing or absent)",
                )
            )
            continue
        out.reports.append(
            report_from_calls(defs, name, calls, info.warnings, outside, missing_to_ref, digest, research=research)
        )
    return out


def report_from_calls(
    defs: PgxDefinitions,
    name: str,
    calls: dict[tuple[str, int], list[SampleCall]],
    warnings: list[str],
    outside: dict[str, dict[str, str | None]] | None = None,
    missing_to_ref: bool = False,
    input_hash: str | None = None,
    research: bool = False,
) -> PgxReport:
    """Build the report from one sample's genotypes at the gene positions (``{(bare contig, pos): [calls]}``);
    ``input_hash`` is the hash of the input VCF (else of the genotypes used, when no file is at hand)."""
    outside = outside or {}
    results = []
    for gene in sorted(defs.genes):
        if gene not in outside:
            chrom = bare(defs.genes[gene].chromosome)
            gene_calls = {p: v for (c, p), v in calls.items() if c == chrom}
            results.append(gene_result(defs, gene, gene_calls, missing_to_ref, research))
    for gene, oc in outside.items():
        results.append(_outside_result(defs, gene, oc))
    results.sort(key=lambda r: natural_key(r.gene))
    return PgxReport(
        sample=name,
        genes=results,
        drugs=sorted(recommend(defs, results) + recommend_dpwg(results), key=lambda r: (r.drug, r.source)),
        warnings=list(warnings),
        provenance=Provenance(
            model_id="carelens.genomics.pgx",
            model_version=_definitions_version(defs),
            input_hash=input_hash or _calls_hash(calls),
        ),
        definitions={k: defs.meta[k] for k in ("source", "definition_versions", "generated") if k in defs.meta},
    )


def _definitions_version(defs: PgxDefinitions) -> str:
    return "+".join(str(v) for v in defs.meta.get("definition_versions", [])) or "unknown"


def _calls_hash(calls: dict[tuple[str, int], list[SampleCall]]) -> str:
    """Content hash of the genotypes the report rests on (not of the whole VCF: cheap on a genome)."""
    parts = [f"{c}:{p}:{x.ref}:{x.genotype}:{x.phase_set}" for (c, p), xs in sorted(calls.items()) for x in xs]
    return content_hash("\n".join(parts))
