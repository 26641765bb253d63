"""DPYD on unphased data, as CPIC and PharmCAT do it: list every DPYD variant allele found, then take the two with
the lowest activity value for the phenotype and the recommendations; normal-function variants and a missing second
copy count as Reference."""

from __future__ import annotations

from carelens.genomics.definitions import GeneDefinition, PhenotypeTable
from carelens.genomics.matcher import diplotype_name, matches_allele, natural_key, pick_record
from carelens.genomics.vcf import SampleCall


def detected_alleles(defn: GeneDefinition, calls: dict[int, list[SampleCall]]) -> list[str]:
    """Named alleles present in the sample (a homozygous one twice); alleles resting on unseen positions are skipped.

    Alleles with more defining variants are assigned first, so a variant counted for HapB3 is not counted again.
    """
    observed: dict[int, list[str]] = {}
    for i, locus in enumerate(defn.loci):
        call = pick_record(calls.get(locus.position, []), locus.ref, {locus.ref, *locus.alts})
        if call is not None and not call.missing and call.problem is None:
            observed[i] = [a for a in call.alleles if a is not None]
    ref = defn.reference.alleles
    candidates = []
    for allele in defn.alleles:
        if allele.reference:
            continue
        variant_idx = [i for i, a in enumerate(allele.alleles) if a is not None and a != ref[i]]
        if variant_idx and all(i in observed for i in variant_idx):
            candidates.append((allele, variant_idx))
    budget = {i: list(v) for i, v in observed.items()}
    found: list[str] = []
    for allele, idx in sorted(candidates, key=lambda c: (-len(c[1]), natural_key(c[0].name))):
        expected = {i: allele.alleles[i] or "" for i in idx}
        while all(any(matches_allele(expected[i], o) for o in budget[i]) for i in idx):
            for i in idx:
                budget[i].remove(next(o for o in budget[i] if matches_allele(expected[i], o)))
            found.append(allele.name)
    return sorted(found, key=natural_key)


def lowest_two(defn: GeneDefinition, table: PhenotypeTable | None, alleles: list[str]) -> str:
    """The diplotype of the two lowest-activity alleles (normal function and a missing copy shown as Reference)."""
    activity = table.activity if table else {}
    reference = defn.reference.name

    def key(name: str) -> tuple[float, list[object]]:
        return (float(activity.get(name, "1.0")), natural_key(name))

    chosen = [n if float(activity.get(n, "1.0")) < 1.0 else reference for n in sorted(alleles, key=key)[:2]]
    chosen += [reference] * (2 - len(chosen))
    return diplotype_name(tuple(chosen))
