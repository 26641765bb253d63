"""Combination and partial calls, as PharmCAT reports them in research mode (``--research combinations``).

Used only when the standard matcher finds no diplotype. Each strand the sample's phasing allows is explained by
the named alleles whose defined positions it carries (no reference filling), alone or as a combination of alleles
that share no position (``[*6 + *28]``); variants no allele on the strand covers are named as partials
(``g.233760973C>T``); a strand no allele explains is an off-reference partial. A strand's score is the sample's
variants its named alleles explain (a reference allele explains none), minus one per partial and one per named
allele: every way of sharing the same variants between the strands ties (PharmCAT's NamedAlleleMatcherTest lists
all eight arrangements of *6, *27, *28 and *80 on unphased UGT1A1), naming a variant as a partial where an allele
explains it loses, and one allele that explains several variants beats a combination of smaller ones (*6 over
[*4 + *9] on CYP2B6).
Ties are listed as PharmCAT lists them: the pairs whose first strand is the reference first, then an off-reference
partial, then one named allele (fewer defined positions first), then a combination. These calls have no CPIC
phenotype.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from carelens.genomics.definitions import GeneDefinition
from carelens.genomics.matcher import _blocks, _strands, matches_allele, natural_key
from carelens.genomics.vcf import SampleCall

MAX_COMBINATIONS = 512  # combinations per strand; beyond this (or MAX_BLOCKS) the search is refused and said
MAX_BLOCKS = 11  # independently phased blocks (unphased heterozygous sites): 2**10 arrangements


class TooLarge(Exception):
    """The combination search would not finish in reasonable time."""


@dataclass(frozen=True)
class StrandMatch:
    """How one strand is explained: named components, partial variants, and the score parts."""

    components: tuple[str, ...]
    partials: tuple[str, ...]
    explained: int  # the strand's variants its named components explain
    reference: bool = False
    defined: int = 0  # positions its named components define

    @property
    def name(self) -> str:
        parts = [*self.components, *self.partials]
        text = " + ".join(parts)
        return f"[{text}]" if len(parts) > 1 else text

    @property
    def score(self) -> int:
        return self.explained - len(self.partials) - (0 if self.reference else len(self.components))

    def sort_key(self) -> tuple[bool, bool, list[list[object]]]:
        bracketed = self.name.startswith("[")
        return bracketed, not self.components, [natural_key(p) for p in self.components + self.partials]

    def rank(self) -> tuple[int, int, list[list[object]]]:
        """Where PharmCAT lists a pair by its first strand: reference, off-reference partial, one named allele (fewer
        defined positions first: *9 and *14 before *10 on CYP2B6), combination; then by name."""
        kind = 0 if self.reference else 1 if not self.components else 3 if self.name.startswith("[") else 2
        return kind, self.defined if kind == 2 else 0, [natural_key(p) for p in self.components + self.partials]


def _hgvs(pos: int, ref: str, alt: str) -> str:
    return f"g.{pos}{ref}>{alt}"


class _Explainer:
    """The gene's alleles restricted to the assayed loci, matched against single strands."""

    def __init__(self, defn: GeneDefinition, idx: list[int]) -> None:
        self.positions = [defn.loci[i].position for i in idx]
        self.refs = [defn.loci[i].ref for i in idx]
        self.alleles: list[tuple[str, bool, dict[int, str]]] = []
        for a in defn.alleles:
            defined = {j: a.alleles[i] for j, i in enumerate(idx) if a.alleles[i] is not None}
            if defined:
                self.alleles.append((a.name, a.reference, defined))  # type: ignore[arg-type]

    def explain(self, strand: tuple[str | None, ...]) -> list[StrandMatch]:
        variants = [j for j, a in enumerate(strand) if a != self.refs[j]]
        hits = [
            (name, ref, defined)
            for name, ref, defined in self.alleles
            if all(matches_allele(e, strand[j]) for j, e in defined.items()) and (not ref or not variants)
        ]
        if not hits:  # off-reference partial: every variant named, no allele (score 0)
            partials = tuple(_hgvs(self.positions[j], self.refs[j], str(strand[j])) for j in variants)
            return [StrandMatch((), partials, 0)]
        hits.sort(key=lambda h: natural_key(h[0]))
        out = [self._match([h], strand, variants) for h in hits]
        named = [h for h in hits if not h[1]]
        combos: list[list[tuple[str, bool, dict[int, str]]]] = []

        def extend(start: int, chosen: list[tuple[str, bool, dict[int, str]]], used: set[int]) -> None:
            for k in range(start, len(named)):
                if len(combos) >= MAX_COMBINATIONS:
                    raise TooLarge(f"more than {MAX_COMBINATIONS} allele combinations on one strand")
                cand = named[k]
                if used.isdisjoint(cand[2]):
                    now = [*chosen, cand]
                    if len(now) > 1:
                        combos.append(now)
                    extend(k + 1, now, used | set(cand[2]))

        extend(0, [], set())
        out += [self._match(c, strand, variants) for c in combos]
        return out

    def _match(
        self,
        parts: list[tuple[str, bool, dict[int, str]]],
        strand: tuple[str | None, ...],
        variants: list[int],
    ) -> StrandMatch:
        covered = set().union(*(set(p[2]) for p in parts))
        partials = tuple(_hgvs(self.positions[j], self.refs[j], str(strand[j])) for j in variants if j not in covered)
        names = tuple(p[0] for p in parts)
        return StrandMatch(names, partials, len(covered.intersection(variants)), parts[0][1], len(covered))


def combination_candidates(defn: GeneDefinition, idx: list[int], calls: list[SampleCall]) -> list[tuple[str, int]]:
    """Every diplotype (combination / partial naming) the phasing allows, best score first; raises
    :class:`TooLarge` when the search is too large to run."""
    explainer = _Explainer(defn, idx)
    blocks = _blocks(calls)
    if len(blocks) > MAX_BLOCKS:
        raise TooLarge(f"{len(blocks)} independently phased heterozygous blocks")
    cache: dict[tuple[str | None, ...], list[StrandMatch]] = {}
    pairs: set[tuple[StrandMatch, StrandMatch]] = set()
    for flips in itertools.product((0, 1), repeat=max(len(blocks) - 1, 0)):
        one, two = _strands(calls, blocks, (0, *flips) if blocks else ())
        for strand in (one, two):
            if strand not in cache:
                cache[strand] = explainer.explain(strand)
        for m1, m2 in itertools.product(cache[one], cache[two]):
            pairs.add((m1, m2) if m1.sort_key() <= m2.sort_key() else (m2, m1))
    named: dict[str, tuple[int, tuple[object, ...]]] = {}
    for m1, m2 in pairs:
        name = f"{m1.name}/{m2.name}"
        score = m1.score + m2.score
        if name not in named or score > named[name][0]:
            named[name] = (score, (m1.rank(), m2.rank()))
    ordered = sorted(named.items(), key=lambda kv: (-kv[1][0], kv[1][1]))
    return [(name, score) for name, (score, _) in ordered]
