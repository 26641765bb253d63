"""Reading VCFs with cyvcf2: plain or bgzipped, indexed region queries or a streaming scan, multi-sample,
phased / unphased genotypes with phase sets, ``chr`` or bare contig names; GRCh37 files are refused."""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from carelens.core.errors import InputError, UsageError

# chromosome lengths that differ between the builds (GRCh37 value, GRCh38 value)
_BUILD_LENGTHS = {
    "1": (249250621, 248956422),
    "2": (243199373, 242193529),
    "4": (191154276, 190214555),
    "6": (171115067, 170805979),
    "7": (159138663, 159345973),
    "8": (146364022, 145138636),
    "10": (135534747, 133797422),
    "12": (133851895, 133275309),
    "13": (115169878, 114364328),
    "16": (90354753, 90338345),
    "19": (59128983, 58617616),
    "21": (48129895, 46709983),
    "22": (51304566, 50818468),
    "X": (155270560, 156040895),
}
_GRCH37_NAMES = re.compile(r"grch37|hg19|b37|hs37|human_g1k_v37|hg18|ncbi36", re.I)


def file_hash(path: Path) -> str:
    """SHA-256 of the input file's bytes (the provenance ``input_hash`` of a report made from it)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bare(contig: str) -> str:
    """Contig name without a ``chr`` prefix (``chr10`` and ``10`` name the same chromosome)."""
    return contig[3:] if contig.lower().startswith("chr") else contig


@dataclass(frozen=True)
class SampleCall:
    """One sample's genotype at one VCF record, with the alleles spelled out (``None`` = missing allele)."""

    chrom: str
    pos: int
    ref: str
    alleles: tuple[str | None, ...]
    phased: bool
    phase_set: int | None
    filter: str
    line: int
    problem: str | None = None
    ref_block: bool = False  # a gVCF reference block covering this position (REF base not spelled out)

    def at_reference(self, ref: str) -> SampleCall:
        """This call with a reference block's placeholders replaced by the definition's reference allele."""
        if not self.ref_block:
            return self
        alleles = tuple(ref if a is not None else None for a in self.alleles)
        return replace(self, ref=ref, alleles=alleles, ref_block=False)

    @property
    def genotype(self) -> str:
        sep = "|" if self.phased else "/"
        return sep.join(a if a is not None else "." for a in self.alleles)

    @property
    def missing(self) -> bool:
        return not self.alleles or any(a is None for a in self.alleles)


@dataclass
class VcfInfo:
    """What a VCF header says: samples, contigs, build and whether it has an index."""

    path: Path
    samples: list[str]
    contigs: dict[str, int]
    build: str
    indexed: bool
    warnings: list[str] = field(default_factory=list)
    gvcf: bool = False


def _open(path: Path, samples: list[str] | None = None):
    from cyvcf2 import VCF

    if not path.exists():
        raise InputError(f"VCF not found: {path.name}")
    try:
        return VCF(str(path), samples=samples, strict_gt=False)
    except (OSError, Exception) as err:  # htslib reports unreadable files as OSError / generic exceptions
        raise InputError(f"{path.name}: not a readable VCF ({type(err).__name__})") from None


def detect_build(raw_header: str, contigs: dict[str, int]) -> str:
    """'GRCh38', 'GRCh37' or 'unknown' from contig lengths (which win) and the ``##reference`` line."""
    votes = set()
    for name, length in contigs.items():
        pair = _BUILD_LENGTHS.get(bare(name))
        if pair and length == pair[0]:
            votes.add("GRCh37")
        elif pair and length == pair[1]:
            votes.add("GRCh38")
    if len(votes) == 1:
        return votes.pop()
    for line in raw_header.splitlines():
        if line.startswith("##reference=") or line.startswith("##assembly="):
            value = line.split("=", 1)[1]
            if _GRCH37_NAMES.search(value):
                return "GRCh37"
            if re.search(r"grch38|hg38|b38|hs38", value, re.I):
                return "GRCh38"
    return "unknown"


def _contigs(raw_header: str) -> dict[str, int]:
    out = {}
    for m in re.finditer(r"^##contig=<ID=([^,>]+)(?:,[^>]*?length=(\d+))?", raw_header, re.M):
        if m.group(2):
            out[m.group(1)] = int(m.group(2))
    return out


def _has_index(path: Path) -> bool:
    return any(Path(str(path) + ext).exists() for ext in (".tbi", ".csi"))


def vcf_info(path: Path) -> VcfInfo:
    """Read the header; refuse GRCh37 files with a clear reason."""
    vcf = _open(path)
    try:
        raw = vcf.raw_header
        contigs = _contigs(raw)
        build = detect_build(raw, contigs)
        info = VcfInfo(path=path, samples=list(vcf.samples), contigs=contigs, build=build, indexed=_has_index(path))
    finally:
        vcf.close()
    if build == "GRCh37":
        raise InputError(
            f"{path.name}: the VCF is on GRCh37 (from its ##reference / contig lengths); carelens needs GRCh38 "
            "positions (lift it over first)"
        )
    declared = re.findall(r"^##FORMAT=<ID=([^,>]+)", raw, re.M)
    if info.samples and declared and "GT" not in declared:
        raise InputError(f"{path.name}: the VCF has no GT (genotype) FORMAT field, so no genotypes to report")
    if build == "unknown":
        info.warnings.append("genome build not stated in the header; GRCh38 assumed")
    info.gvcf = bool(re.search(r"^##(ALT=<ID=(NON_REF|\*),|GVCFBlock)", raw, re.M))
    return info


def choose_sample(info: VcfInfo, sample: str | None) -> str:
    """The sample to report: the one named, or the only one in the file."""
    if not info.samples:
        raise InputError(f"{info.path.name}: the VCF has no sample columns (no genotypes)")
    if sample is None:
        if len(info.samples) > 1:
            raise UsageError(
                f"{info.path.name} has {len(info.samples)} samples; choose one with --sample (or --all-samples)"
            )
        return info.samples[0]
    if sample not in info.samples:
        raise InputError(f"sample not found in {info.path.name} (it has {len(info.samples)} sample(s))")
    return sample


def _call(variant, idx: int, line: int, use_ad: bool = False) -> SampleCall:
    """One sample's call at one record. As PharmCAT's VcfReader: a genotype index beyond the record's alleles makes
    the file invalid; a genotype that calls a symbolic, spanning-deletion or N-containing allele, or a heterozygous
    GT whose AD shows reads for one allele only (``use_ad``), is discarded (``problem`` says why)."""
    ref = variant.REF
    alts = list(variant.ALT)
    choices = [ref, *alts]
    gt = genotype(variant, idx)
    phased = bool(gt[-1]) if len(gt) > 1 else False
    problem = None
    alleles: list[str | None] = []
    for a in gt[:-1]:
        if a is None or a < 0:
            alleles.append(None)
        elif a >= len(choices):
            raise InputError(
                f"{variant.CHROM}:{variant.POS}: genotype allele index {a} but the record defines "
                f"{len(alts)} ALT allele(s) (invalid VCF, as PharmCAT rejects it)"
            )
        else:
            allele = choices[a]
            if allele.startswith("<") or allele == "*" or "N" in allele.upper():
                problem = f"genotype calls the symbolic, spanning-deletion or ambiguous allele '{allele}'; discarded"
            alleles.append(allele)
    called = {a for a in gt[:-1] if a is not None and a >= 0}
    if use_ad and problem is None and len(called) > 1:
        depths = _depths(variant, idx)
        if depths is not None and sum(d > 0 for d in depths) == 1:
            shown = ",".join(str(d) for d in depths)
            problem = f"GT is heterozygous but AD shows reads for one allele only ({shown}); discarded"
    ps = None
    try:
        values = variant.format("PS")
    except KeyError:
        values = None
    if values is not None:
        try:
            v = int(values[idx][0])
        except (TypeError, ValueError):  # PS declared as a string, or '.'
            v = -1
        if v >= 0:  # htslib's missing / end-of-vector markers are negative
            ps = v
    filt = variant.FILTER or "PASS"
    return SampleCall(variant.CHROM, variant.POS, ref, tuple(alleles), phased, ps, filt, line, problem)


def _depths(variant, idx: int) -> list[int] | None:
    """The sample's AD values (missing entries dropped), ``None`` when absent or unreadable."""
    try:
        values = variant.format("AD")
    except KeyError:
        return None
    if values is None:
        return None
    raw = values[idx]
    try:
        if isinstance(raw, str):
            return [int(v) for v in raw.split(",") if v not in (".", "")]
        return [int(v) for v in raw if int(v) >= 0]
    except (TypeError, ValueError):
        return None


def _ad_number(vcf) -> str | None:
    try:
        return str(vcf.get_header_type("AD").get("Number"))
    except KeyError:
        return None


def ad_usable(number: str | None, warnings: list[str]) -> bool:
    """PharmCAT's rule for the AD field: used when declared ``Number=R`` or not declared at all; any other
    declared Number means AD is ignored (said in a warning unless it is ``.``)."""
    if number is None or number == "R":
        return True
    if number != ".":
        warnings.append(f"FORMAT AD declared with Number={number}, expected R; AD ignored (PharmCAT's rule)")
    return False


def genotype(variant, idx: int) -> list:
    """cyvcf2's ``[allele, ..., phased]`` for one sample; ``[-1, -1, False]`` when the record has no GT."""
    try:
        return list(variant.genotypes[idx])
    except Exception:  # cyvcf2 raises a bare Exception when a record lacks GT
        return [-1, -1, False]


def _compressed(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _iter_checked(vcf, path: Path) -> Iterator:
    it = iter(vcf)
    n = 0
    while True:
        try:
            variant = next(it)
        except StopIteration:
            return
        except Exception:  # htslib parse failure
            what = "truncated or corrupt bgzip block, or malformed line" if _compressed(path) else "malformed line"
            raise InputError(f"{path.name}: data line {n + 1} could not be read ({what})") from None
        n += 1
        if variant.end <= variant.start:  # htslib could not read the line (POS first): every real record has a length
            raise InputError(f"{path.name}: data line {n} could not be read (malformed line)")
        yield n, variant


def read_calls(
    path: Path, sample: str | None, positions: dict[str, set[int]], info: VcfInfo | None = None
) -> tuple[str, dict[tuple[str, int], list[SampleCall]], VcfInfo]:
    """Genotypes of one sample at the positions of interest (``{contig: {pos}}``, contigs given bare).

    Uses the index for region queries when a ``.tbi``/``.csi`` exists, else one streaming scan.
    Returns the sample name, ``{(bare contig, pos): [calls]}`` and the header info.
    """
    info = info or vcf_info(path)
    name = choose_sample(info, sample)
    return name, read_calls_multi(path, [name], positions, info)[name], info


def read_calls_multi(
    path: Path, samples: list[str], positions: dict[str, set[int]], info: VcfInfo
) -> dict[str, dict[tuple[str, int], list[SampleCall]]]:
    """Like :func:`read_calls` for several samples in one pass: ``{sample: {(contig, pos): [calls]}}``."""
    vcf = _open(path, samples=samples)
    order = list(vcf.samples)
    out: dict[str, dict[tuple[str, int], list[SampleCall]]] = {s: {} for s in order}

    sorted_positions = {c: sorted(p) for c, p in positions.items()}
    blocks = 0
    ad_number = _ad_number(vcf)
    ad_warnings: list[str] = []
    use_ad = ad_usable(ad_number, ad_warnings)

    def take(n: int, variant) -> None:
        nonlocal blocks
        contig = bare(variant.CHROM)
        key = (contig, variant.POS)
        if variant.POS in positions.get(contig, ()):
            for i, s in enumerate(order):
                out[s].setdefault(key, []).append(_call(variant, i, n, use_ad))
        if len(variant.REF) > 1 or any(len(a) > 1 for a in variant.ALT):
            pos, spelled = normalise(variant.POS, variant.REF, list(variant.ALT))
            if (pos, spelled[variant.REF]) != (variant.POS, variant.REF) and pos in positions.get(contig, ()):
                for i, s in enumerate(order):
                    call = _call(variant, i, n, use_ad)
                    alleles = tuple(spelled.get(a, a) if a is not None else None for a in call.alleles)
                    out[s].setdefault((contig, pos), []).append(
                        replace(call, pos=pos, ref=spelled[variant.REF], alleles=alleles)
                    )
        end = _block_end(variant)
        if end is None:
            return
        blocks += 1
        wanted = sorted_positions.get(contig, [])
        for pos in wanted[bisect.bisect_right(wanted, variant.POS) : bisect.bisect_right(wanted, end)]:
            for i, s in enumerate(order):
                call = _call(variant, i, n)
                block = replace(call, pos=pos, ref="", alleles=tuple("" if a else None for a in call.alleles))
                out[s].setdefault((contig, pos), []).append(replace(block, ref_block=True, problem=None))

    try:
        if info.indexed:
            names = {bare(c): c for c in (vcf.seqnames or [])}
            for contig, wanted in positions.items():
                native = names.get(contig)
                if native is None or not wanted:
                    continue
                seen: set[tuple[int, str]] = set()
                for start, end in _clusters(sorted(wanted)):
                    for n, variant in _iter_checked(vcf(f"{native}:{start}-{end}"), path):
                        if (variant.POS, variant.REF) not in seen:  # a block can overlap two clusters
                            seen.add((variant.POS, variant.REF))
                            take(n, variant)
        else:
            for n, variant in _iter_checked(vcf, path):
                if bare(variant.CHROM) in positions:
                    take(n, variant)
        if ad_number is None and _ad_number(vcf) is not None:  # htslib declares a tag it meets undeclared
            ad_warnings.append("AD is used but not declared in the header; read as Number=R (PharmCAT's rule)")
    finally:
        vcf.close()
    info.warnings.extend(w for w in ad_warnings if w not in info.warnings)
    if info.gvcf and not blocks:
        info.warnings.append(
            "gVCF header but no reference block (INFO END) covers the PGx positions: positions absent from the file "
            "are reported as not assayed, not as reference"
        )
    return out


def normalise(pos: int, ref: str, alts: list[str]) -> tuple[int, dict[str, str]]:
    """Trim bases shared by REF and every ALT (right side first, then left, keeping one anchor base), as
    ``bcftools norm`` / PharmCAT's preprocessor do for padded indels: ``(new position, {old allele: new allele})``."""
    alleles = [ref, *(a for a in alts if not a.startswith("<") and a != "*")]
    trimmed = list(alleles)
    while all(len(a) > 1 for a in trimmed) and len({a[-1] for a in trimmed}) == 1:
        trimmed = [a[:-1] for a in trimmed]
    while all(len(a) > 1 for a in trimmed) and len({a[0] for a in trimmed}) == 1:
        trimmed = [a[1:] for a in trimmed]
        pos += 1
    return pos, dict(zip(alleles, trimmed, strict=True))


def _block_end(variant) -> int | None:
    """END of a gVCF reference block (ALT only <NON_REF> / <*>, every called allele REF), else None."""
    if not variant.ALT or not all(a in ("<NON_REF>", "<*>") for a in variant.ALT):
        return None
    end = variant.INFO.get("END")
    if end is None or int(end) <= variant.POS:
        return None
    if any(a is not None and a > 0 for gt in variant.genotypes for a in gt[:-1]):
        return None
    return int(end)


def _clusters(sorted_positions: list[int], gap: int = 100_000) -> Iterable[tuple[int, int]]:
    start = prev = sorted_positions[0]
    for p in sorted_positions[1:]:
        if p - prev > gap:
            yield start, prev
            start = p
        prev = p
    yield start, prev


def scan(path: Path, region: str | None = None) -> Iterator[tuple[str, int, str, tuple[str, ...], list]]:
    """Stream every record (or a region's, with an index): contig, position, REF, ALTs, genotypes of all samples."""
    info = vcf_info(path)
    if region is not None and not info.indexed:
        raise UsageError(f"{path.name} has no .tbi/.csi index; region queries need one (bcftools index -t)")
    vcf = _open(path)
    try:
        source = vcf(region) if region else vcf
        for _, variant in _iter_checked(source, path):
            yield variant.CHROM, variant.POS, variant.REF, tuple(variant.ALT), variant.genotypes
    finally:
        vcf.close()
