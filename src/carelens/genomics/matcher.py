"""Named-allele (star allele) matching, following PharmCAT's NamedAlleleMatcher.

For each gene: positions the VCF does not cover are removed from every definition (and reported as not assayed);
definitions left with no position are dropped; blank cells of non-reference definitions default to the reference
allele; every arrangement of the sample's alleles onto two strands allowed by its phasing (phase sets, unphased
heterozygous sites) is tried; a diplotype scores the sum of its two alleles' scores (number of defined positions);
the top score wins and ties are reported as ties.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from carelens.genomics.definitions import GeneDefinition, NamedAllele
from carelens.genomics.vcf import SampleCall

IUPAC = {
    "A": "A",
    "C": "C",
    "G": "G",
    "T": "T",
    "R": "AG",
    "Y": "CT",
    "S": "GC",
    "W": "AT",
    "K": "GT",
    "M": "AC",
    "B": "CGT",
    "D": "AGT",
    "H": "ACT",
    "V": "ACG",
    "N": "ACGT",
}
MAX_ARRANGEMENTS = 1 << 16
MAX_TIES = 12  # more tied diplotypes than this is "too little data", not a call
# PharmCAT's rule: in these genes an allele the definitions do not know is read as the reference allele (with a
# warning) instead of blocking the call
UNDOCUMENTED_AS_REFERENCE = frozenset({"CACNA1S", "DPYD", "G6PD", "NUDT15", "RYR1", "TPMT"})


def natural_key(name: str) -> list[object]:
    """Sort key that puts *2 before *10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def diplotype_name(names: tuple[str, ...]) -> str:
    """Allele names joined with / in natural order (*2/*10)."""
    return "/".join(sorted(names, key=natural_key))


@dataclass
class GeneCall:
    """The outcome for one gene: the top diplotypes (ties kept) and what they rest on."""

    gene: str
    diplotypes: list[str]
    score: int | None
    positions: list[dict[str, object]]
    not_assayed: list[int]
    uncertain_alleles: list[str]
    reason: str | None
    phased: bool | None
    warnings: list[str] = field(default_factory=list)
    assumed_reference: list[int] = field(default_factory=list)
    candidates: list[tuple[str, int]] = field(default_factory=list)
    research: bool = False  # a combination / partial call (research mode), not a CPIC diplotype


def matches_allele(expected: str, observed: str | None) -> bool:
    """Whether an observed allele satisfies a definition allele (IUPAC codes allowed for single bases)."""
    if observed is None:
        return False
    if expected == observed:
        return True
    if len(expected) == 1 and len(observed) == 1:
        return observed in IUPAC.get(expected, "")
    return False


def _prepare(defn: GeneDefinition, idx: list[int]) -> list[tuple[NamedAllele, tuple[str, ...], int]]:
    """Definitions restricted to the assayed loci: (allele, expected alleles with reference defaults, score)."""
    ref = defn.reference
    out = []
    for allele in defn.alleles:
        restricted = [allele.alleles[i] for i in idx]
        score = sum(a is not None for a in restricted)
        if score == 0:
            continue
        filled = []
        for i, a in zip(idx, restricted, strict=True):
            if a is None:
                r = ref.alleles[i]
                a = defn.loci[i].ref if (r is None or (len(r) == 1 and r not in "ACGT")) else r
            filled.append(a)
        out.append((allele, tuple(filled), score))
    return out


def _partial(call: SampleCall, ref: str, chromosome: str) -> bool:
    """A genotype with one allele called and one missing that PharmCAT's reader keeps (``1/.``; ``0/.`` only on
    chrX): PharmCAT then makes no call for the gene (MatchData.hasPartialMissingAlleles)."""
    seen = [a for a in call.alleles if a is not None]
    return len(call.alleles) > 1 and len(seen) == 1 and (seen[0] != ref or chromosome == "chrX")


def _haploid(calls: dict[int, list[SampleCall]]) -> bool:
    seen = [c for cs in calls.values() for c in cs if not c.missing]
    return bool(seen) and all(len(c.alleles) == 1 for c in seen)


def pick_record(found: list[SampleCall], ref: str, known: set[str]) -> SampleCall | None:
    """The record to use at a locus: REF as defined, genotype present, documented alleles, non-reference first."""
    real = [c for c in found if c.ref == ref]
    candidates = real or [c.at_reference(ref) for c in found if c.ref_block][:1]
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    merged = merge_split(candidates, ref)
    if merged is not None:
        return merged

    def rank(c: SampleCall) -> tuple[bool, bool, bool]:
        documented = c.problem is None and all(a in known for a in c.alleles)
        return (not c.missing, documented, any(a != ref for a in c.alleles))

    return max(candidates, key=rank)


def merge_split(records: list[SampleCall], ref: str) -> SampleCall | None:
    """One call from a multi-allelic site written as several biallelic records (``bcftools norm -m-``), as
    PharmCAT's preprocessor joins them: each record contributes its non-reference alleles; phased records keep their
    haplotype slots. ``None`` when the records are not such a split (missing genotypes, clashing alleles)."""
    if len({r.line for r in records}) < 2 or any(r.missing or r.problem for r in records):
        return None
    carried = [{a for a in r.alleles if a != ref} for r in records]
    if sum(len(c) for c in carried) != len(set().union(*carried)):
        return None  # the same ALT twice: a duplicate record, not a split site
    ploidy = {len(r.alleles) for r in records}
    if len(ploidy) != 1:
        return None
    n = ploidy.pop()
    phased = all(r.phased for r in records)
    if phased:
        slots: list[str | None] = [None] * n
        for r in records:
            for i, a in enumerate(r.alleles):
                if a != ref:
                    if slots[i] is not None:
                        return None
                    slots[i] = a
        alleles: tuple[str, ...] = tuple(a or ref for a in slots)
    else:
        alts = [a or ref for r in records for a in r.alleles if a != ref]
        if len(alts) > n:
            return None
        alleles = tuple(alts + [ref] * (n - len(alts)))
    first = records[0]
    return replace(first, alleles=alleles, phased=phased and n > 1, phase_set=first.phase_set if phased else None)


@dataclass
class _Observed:
    """What the VCF says at a gene's loci, sorted into usable, not assayed and undocumented positions."""

    idx: list[int] = field(default_factory=list)
    used: list[SampleCall] = field(default_factory=list)
    not_assayed: list[int] = field(default_factory=list)
    undocumented: list[int] = field(default_factory=list)
    assumed: list[int] = field(default_factory=list)
    partial: list[int] = field(default_factory=list)
    evidence: list[dict[str, object]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _observe(defn: GeneDefinition, calls: dict[int, list[SampleCall]], missing_to_ref: bool) -> _Observed:
    obs = _Observed()
    for i, locus in enumerate(defn.loci):
        if locus.position in defn.ignored_positions:
            continue
        found = calls.get(locus.position, [])
        if not found and missing_to_ref:
            ploidy = 1 if defn.chromosome in ("chrX", "chrY") and _haploid(calls) else 2
            alleles = (locus.ref,) * ploidy
            found = [SampleCall(defn.chromosome, locus.position, locus.ref, alleles, False, None, "ASSUMED_REF", 0)]
            obs.assumed.append(locus.position)
        call = pick_record(found, locus.ref, {locus.ref, *locus.alts})
        where = f"position {locus.position}"
        if call is None and found:
            obs.warnings.append(f"{where}: VCF REF does not match the definition's reference; treated as not assayed")
        records = len({c.line for c in found})  # a padded indel also appears trimmed: one record
        if records > 1 and call is not None:
            obs.warnings.append(f"{where}: {records} records; used the one matching the definition")
        if call is not None and call.problem:  # PharmCAT's reader discards the genotype: the position is missing
            obs.warnings.append(f"{where}: {call.problem}; treated as not assayed")
            obs.not_assayed.append(locus.position)
            continue
        if call is None or call.missing:
            if call is not None:
                obs.warnings.append(f"{where}: genotype missing ({call.genotype}); treated as not assayed")
                if _partial(call, locus.ref, defn.chromosome):
                    obs.partial.append(locus.position)
            obs.not_assayed.append(locus.position)
            continue
        vcf_genotype = call.genotype
        known = {locus.ref, *locus.alts}
        if any(a not in known for a in call.alleles):
            if defn.gene not in UNDOCUMENTED_AS_REFERENCE:
                obs.undocumented.append(locus.position)
            else:
                obs.warnings.append(
                    f"{where}: allele not in the {defn.gene} definitions read as reference (PharmCAT rule for "
                    f"{defn.gene}); a novel variant here would not be seen"
                )
                call = replace(call, alleles=tuple(a if a in known else locus.ref for a in call.alleles))
        obs.idx.append(i)
        obs.used.append(call)
        obs.evidence.append(
            {
                "position": locus.position,
                "rsid": locus.rsid,
                "ref": locus.ref,
                "genotype": vcf_genotype,
                "read_as": call.genotype if call.genotype != vcf_genotype else None,
                "phase_set": call.phase_set,
                "filter": call.filter,
            }
        )
    if obs.assumed:
        obs.warnings.append(
            f"{len(obs.assumed)} of {len(defn.loci)} positions absent from the VCF taken as reference (missing-to-ref)"
        )
    return obs


_UNCERTAIN_CACHE: dict[tuple[int, tuple[int, ...]], tuple[GeneDefinition, list[str]]] = {}


def _uncertain(defn: GeneDefinition, not_assayed: list[int]) -> list[str]:
    """Non-reference alleles with a defining variant at a not-assayed position (calls that could change)."""
    key = (id(defn), tuple(not_assayed))
    hit = _UNCERTAIN_CACHE.get(key)
    if hit is None or hit[0] is not defn:
        if len(_UNCERTAIN_CACHE) > 256:
            _UNCERTAIN_CACHE.clear()
        hit = _UNCERTAIN_CACHE[key] = (defn, _uncertain_alleles(defn, not_assayed))
    return list(hit[1])


def _uncertain_alleles(defn: GeneDefinition, not_assayed: list[int]) -> list[str]:
    missing = set(not_assayed)
    missing_idx = [i for i, loc in enumerate(defn.loci) if loc.position in missing]
    ref = defn.reference.alleles
    names = {
        a.name
        for a in defn.alleles
        if not a.reference and any(a.alleles[i] is not None and a.alleles[i] != ref[i] for i in missing_idx)
    }
    return sorted(names, key=natural_key)


Prepared = list[tuple[NamedAllele, tuple[str, ...], int]]


class _Compat:
    """Bit sets of the named alleles compatible with an observed allele at each position (memoised)."""

    def __init__(self, prepared: Prepared, defn: GeneDefinition | None = None, refs: list[str] | None = None) -> None:
        self.prepared = prepared
        self.defn = defn
        self.refs = refs or []
        self.everyone = (1 << len(prepared)) - 1
        self.masks: dict[tuple[int, str | None], int] = {}
        self.named: dict[int, list[tuple[int, str, int]]] = {}
        # IUPAC (wobble) positions of each allele: PharmCAT does not score a wobble its strands only meet with REF
        self.wobbles = {
            k: ws
            for k, (allele, expected, _) in enumerate(prepared)
            if not allele.reference and (ws := [p for p, e in enumerate(expected) if len(e) == 1 and e not in "ACGT"])
        }

    def at(self, pos: int, observed: str | None) -> int:
        key = (pos, observed)
        if key not in self.masks:
            self.masks[key] = sum(
                1 << k for k, (_, expected, _) in enumerate(self.prepared) if matches_allele(expected[pos], observed)
            )
        return self.masks[key]

    def names(self, bits: int) -> list[tuple[int, str, int]]:
        """(index, name, score) of the alleles in ``bits``."""
        if bits not in self.named:
            self.named[bits] = [(k, a.name, sc) for k, (a, _, sc) in enumerate(self.prepared) if bits >> k & 1]
        return self.named[bits]

    def penalty(self, k: int, strands: list[tuple[str | None, ...]]) -> int:
        """Wobble positions of allele ``k`` where every strand it stands for carries the reference allele
        (DiplotypeMatcher.scoreForSample)."""
        ws = self.wobbles.get(k)
        if not ws:
            return 0
        return sum(all(st[w] == self.refs[w] for st in strands) for w in ws)


def _blocks(calls: list[SampleCall]) -> list[list[int]]:
    """Heterozygous positions grouped by what fixes their phase: one block per phase set, one per unphased site."""
    blocks: dict[object, list[int]] = {}
    for i, c in enumerate(calls):
        if c.alleles[0] != c.alleles[1]:
            key: object = ("ps", c.phase_set) if c.phased else ("site", i)
            blocks.setdefault(key, []).append(i)
    return list(blocks.values())


_COMPAT_CACHE: dict[tuple[int, tuple[int, ...]], _Compat] = {}


def _compat(defn: GeneDefinition, idx: list[int]) -> _Compat:
    """The definitions restricted to the assayed loci with their memoised masks, shared by every sample that has
    the same loci (the samples of a multi-sample VCF usually do)."""
    key = (id(defn), tuple(idx))
    found = _COMPAT_CACHE.get(key)
    if found is None or found.defn is not defn:
        if len(_COMPAT_CACHE) > 256:
            _COMPAT_CACHE.clear()
        found = _COMPAT_CACHE[key] = _Compat(_prepare(defn, idx), defn, [defn.loci[i].ref for i in idx])
    return found


def _score(compat: _Compat, calls: list[SampleCall]) -> dict[tuple[str, ...], int] | None:
    """Best score of every allele pair that explains one arrangement of the sample's alleles on two strands
    (the first block's orientation fixed); ``None`` when there are too many arrangements to try."""
    if len(calls[0].alleles) == 1:  # haploid: one strand
        bits = compat.everyone
        for pos, c in enumerate(calls):
            bits &= compat.at(pos, c.alleles[0])
        strand = tuple(c.alleles[0] for c in calls)
        return {(name,): sc - compat.penalty(k, [strand]) for k, name, sc in compat.names(bits)}
    homozygous = compat.everyone
    for pos, c in enumerate(calls):
        if c.alleles[0] == c.alleles[1]:
            homozygous &= compat.at(pos, c.alleles[0])
    blocks = _blocks(calls)
    if len(blocks) > 1 and (1 << (len(blocks) - 1)) > MAX_ARRANGEMENTS:
        return None
    # per block, the bits of (strand 1, strand 2) as written and swapped
    oriented = []
    for block in blocks:
        first = second = compat.everyone
        for pos in block:
            first &= compat.at(pos, calls[pos].alleles[0])
            second &= compat.at(pos, calls[pos].alleles[1])
        oriented.append(((first, second), (second, first)))
    scored: dict[tuple[str, ...], int] = {}
    seen: set[tuple[int, int]] = set()
    for flips in itertools.product((0, 1), repeat=max(len(blocks) - 1, 0)):
        s1 = s2 = homozygous
        for block_bits, flip in zip(oriented, (0, *flips) if oriented else (), strict=True):
            s1 &= block_bits[flip][0]
            s2 &= block_bits[flip][1]
        if not s1 or not s2 or (s1, s2) in seen:
            continue
        if not compat.wobbles:  # with wobbles the strands' alleles, not only the bit sets, change the score
            seen.add((s1, s2))
        strands = _strands(calls, blocks, (0, *flips) if blocks else ()) if compat.wobbles else None
        for (k1, n1, sc1), (k2, n2, sc2) in itertools.product(compat.names(s1), compat.names(s2)):
            if strands is not None:
                sc1 -= compat.penalty(k1, _covered(k1, s1, s2, strands, n1 == n2, 0))
                sc2 -= compat.penalty(k2, _covered(k2, s2, s1, strands, n1 == n2, 1))
            names = tuple(sorted((n1, n2), key=natural_key))
            scored[names] = max(scored.get(names, 0), sc1 + sc2)
    return scored


def _strands(
    calls: list[SampleCall], blocks: list[list[int]], flips: tuple[int, ...]
) -> tuple[tuple[str | None, ...], tuple[str | None, ...]]:
    """The two strands' alleles for one arrangement (block ``b`` read swapped when ``flips[b]``)."""
    one = [c.alleles[0] for c in calls]
    two = [c.alleles[-1] for c in calls]
    for block, flip in zip(blocks, flips, strict=True):
        if flip:
            for pos in block:
                one[pos], two[pos] = two[pos], one[pos]
    return tuple(one), tuple(two)


def _covered(
    k: int, own: int, other: int, strands: tuple[tuple[str | None, ...], ...], same: bool, side: int
) -> list[tuple[str | None, ...]]:
    """The strands of the pair that allele ``k`` stands for when scored: its own strand, plus the other one when
    it matches that too and the pair's two names differ (PharmCAT intersects the allele's sequences with the pair)."""
    if same or not other >> k & 1:
        return [strands[side]]
    return [strands[0], strands[1]]


def call_gene(
    defn: GeneDefinition, calls: dict[int, list[SampleCall]], missing_to_ref: bool = False, combinations: bool = False
) -> GeneCall:
    """Call one gene from the sample's genotypes at the gene's loci (``{position: [calls]}``).

    ``missing_to_ref``: positions absent from the VCF are taken as homozygous reference (for variant-only VCFs;
    PharmCAT's ``--missing-to-ref``); they are listed in ``assumed_reference``, never silently.
    ``combinations``: when no diplotype of named alleles explains the genotypes, report combination and partial
    calls as PharmCAT's research mode does (:mod:`carelens.genomics.combinations`); flagged, never a CPIC call.
    """
    obs = _observe(defn, calls, missing_to_ref)
    used, chrom = obs.used, defn.chromosome
    phased = all(c.phased for c in used if len(c.alleles) > 1 and c.alleles[0] != c.alleles[1]) if used else None

    def result(dips: list[str], score: int | None, reason: str | None) -> GeneCall:
        return GeneCall(
            defn.gene,
            dips,
            score,
            obs.evidence,
            obs.not_assayed,
            _uncertain(defn, obs.not_assayed),
            reason,
            phased,
            obs.warnings,
            obs.assumed,
        )

    if not used and not obs.undocumented:
        if any(calls.get(loc.position) for loc in defn.loci):
            n = len(defn.loci)
            return result(
                [],
                None,
                f"no usable genotype at any of the {n} {defn.gene} positions (missing genotypes or REF mismatches)",
            )
        return result([], None, f"none of the {len(defn.loci)} {defn.gene} positions on {chrom} is in the VCF")
    required = sorted(defn.required_positions & set(obs.not_assayed))
    if required:
        where = ", ".join(str(p) for p in required)
        return result([], None, f"required {defn.gene} position(s) {chrom}:{where} not assayed; not called (PharmCAT)")
    if obs.partial and defn.gene != "DPYD":
        where = ", ".join(str(p) for p in obs.partial)
        return result(
            [], None, f"partially missing genotype at {chrom}:{where} (one allele called); not called (PharmCAT)"
        )
    if obs.undocumented and not combinations:
        where = ", ".join(str(p) for p in sorted(set(obs.undocumented)))
        return result(
            [],
            None,
            f"allele not in the {defn.gene} definitions at {chrom}:{where} "
            "(undocumented variation or bad genotype); not called",
        )
    ploidies = {len(c.alleles) for c in used}
    if len(ploidies) != 1 or ploidies.pop() not in (1, 2):
        return result([], None, "mixed or unsupported ploidy across the gene's positions; not called")
    scored = _score(_compat(defn, obs.idx), used)
    if scored is None:
        return result([], None, "too many unphased heterozygous positions to enumerate; not called")
    if not scored and combinations and len(used[0].alleles) == 2:
        return _research(defn, obs, result)
    if not scored:
        return result(
            [],
            None,
            f"no combination of {defn.gene} named alleles explains the genotypes "
            "(possible novel allele or allele combination); not called",
        )
    # PharmCAT reports a sub-allele (SLCO1B1 *45.001) by its core allele's name (*45)
    sub = defn.suballeles
    named: dict[str, int] = {}
    for k, v in scored.items():
        name = diplotype_name(tuple(sub.get(n, n) for n in k))
        named[name] = max(named.get(name, 0), v)
    top = max(named.values())
    dips = sorted((d for d, v in named.items() if v == top), key=natural_key)
    candidates = sorted(named.items(), key=lambda kv: (-kv[1], natural_key(kv[0])))
    if defn.unphased_priorities and len(candidates) > 1 and len(used[0].alleles) == 2 and len(_blocks(used)) > 1:
        # PharmCAT (ResultBuilder): not effectively phased, and every diplotype of a priority list is among the
        # matches (whatever their scores): the list's pick is the call, chosen on frequency data
        names = set(named)
        for pid, pick in defn.unphased_priorities.items():
            if set(pid.split("|")) <= names:
                obs.warnings.append(
                    f"unphased variants allow {pid.replace('|', ', ')}: {pick} picked by the definition's "
                    "frequency-based priority (PharmCAT's unphased-priority rule)"
                )
                dips, top = [pick], named.get(pick, top)
                break
    if len(dips) > MAX_TIES:
        return result(
            [],
            None,
            f"{len(dips)} diplotypes tie on the {len(used)} assayed positions "
            f"({len(obs.not_assayed)} not assayed): too little data to call",
        )
    call = result(dips, top, None)
    call.candidates = candidates
    return call


def _research(
    defn: GeneDefinition, obs: _Observed, result: Callable[[list[str], int | None, str | None], GeneCall]
) -> GeneCall:
    """PharmCAT's research-mode call: combinations of named alleles and partials, top score wins."""
    from carelens.genomics.combinations import TooLarge, combination_candidates

    try:
        candidates = combination_candidates(defn, obs.idx, obs.used)
    except TooLarge as exc:
        return result([], None, f"combination search not run ({exc}); not called")
    if not candidates:
        return result([], None, f"no combination or partial call explains the {defn.gene} genotypes; not called")
    top = candidates[0][1]
    obs.warnings.append(
        "research mode: combination / partial call (PharmCAT --research combinations); not a CPIC diplotype, "
        "no phenotype or recommendation follows from it"
    )
    call = result([d for d, v in candidates if v == top], top, None)
    call.candidates = candidates
    call.research = True
    return call
