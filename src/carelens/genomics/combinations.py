"""Combination and partial calls, as PharmCAT reports them in research mode (``--research combinations``).

Used only when the standard matcher finds no diplotype. Each strand the sample's phasing allows is explained by
the named alleles whose defined positions it carries (no reference filling), alone or as a combination of alleles
that share no position (``[*6 + *28]``); variants no allele on the strand covers are named as partials
(``g.233760973C>T``); a strand no allele explains is an off-reference partial. A strand's score is the positions
its alleles define, minus one per partial, plus a bonus that prefers fewer combined alleles (PharmCAT's
DiplotypeMatcher: the largest combination size seen, less this strand's; an allele with partials counts as a
combination of one). These calls have no CPIC phenotype.
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
    defined: int
    combinations: int  # PharmCAT's numCombinations: 0 for one named allele alone, else the number of components

    @property
    def name(self) -> str:
        parts = [*self.components, *self.partials]
        text = " + ".join(parts)
        return f"[{text}]" if len(parts) > 1 else text

    def sort_key(self) -> tuple[bool, bool, list[list[object]]]:
        bracketed = self.name.startswith("[")
        return bracketed, not self.components, [natural_key(p) for p in self.components + self.partials]


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
            return [StrandMatch((), partials, 0, 1)]
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
        combined = 0 if len(parts) == 1 and not partials else len(parts)
        return StrandMatch(names, partials, sum(len(p[2]) for p in parts), combined)


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
    most = max((m.combinations for pair in pairs for m in pair), default=0)

    def score(m: StrandMatch) -> int:
        return m.defined - len(m.partials) + most - m.combinations

    named: dict[str, int] = {}
    for m1, m2 in pairs:
        name = f"{m1.name}/{m2.name}"
        named[name] = max(named.get(name, -(10**9)), score(m1) + score(m2))
    return sorted(named.items(), key=lambda kv: (-kv[1], natural_key(kv[0])))
