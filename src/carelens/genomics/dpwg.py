"""DPWG (Dutch Pharmacogenetics Working Group) recommendations, reported beside CPIC's as PharmCAT does.

The data are PharmGKB / ClinPGx guideline annotations ("Annotation of DPWG Guideline for <drug> and <gene>", the
JSON PharmGKB distributes and PharmCAT ships under ``reporter/guidelines/``), licensed CC BY-SA 4.0: carelens keeps
them in their own file, ``data/dpwg_recommendations.json``, under that licence and with attribution
(``data/DPWG_LICENSE.md``). ``carelens genome import-dpwg --from DIR --out FILE`` rebuilds such a file from a
directory of annotation files; ``CARELENS_PGX_DPWG`` points reports at it (the packaged copy is never overwritten
implicitly).

A guideline lists each allele's DPWG function per gene and, per annotation group, the function pairs it applies to
(``UGT1A1:Decreased function (UGT1A1*28)/Normal function``) and, for activity-score genes, the activity score it
applies to (``Total gene activity score = 0.5-1``). A patient's gene matches a group when both alleles are in the
guideline's list and their function pair is one of the group's; where an allele is not listed (or only an
activity score is known, from an outside call) the activity score decides, where every group of the guideline states
one (CYP2D6; not DPYD, whose decreased/decreased group asks for phenotyping instead of naming a score).
A multi-gene group matches when every gene it constrains matches. ``data/dpwg_aliases.json`` maps carelens'
allele names to DPWG's labels where they differ (VKORC1 rs9923231 C/T is DPWG's -1639 G/A); HLA alleles match
DPWG's longer names by field prefix (``*57:01`` is ``*57:01:01``) and anything else a gene's ``Other`` label;
``genotype_keys`` there names genes whose DPWG guidelines key on one position's genotype (SLCO1B1 c.521T>C).
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from carelens.core.errors import InputError
from carelens.core.settings import load_settings

DATA = Path(__file__).parent / "data"
DPWG_FILE = DATA / "dpwg_recommendations.json"
ALIASES_FILE = DATA / "dpwg_aliases.json"
FORMAT = 2
LICENCE = "CC BY-SA 4.0 (PharmGKB / ClinPGx guideline annotations of DPWG guidelines); see DPWG_LICENSE.md"
OPEN_END = 99.0  # upper bound of an "≥ x" activity range
_SCORE_WORDS = re.compile(r"total|gene|activity|score|=|:|or|and|,|\s", re.IGNORECASE)
_SCORE_RANGE = re.compile(r"(≥|>=|≤|<=)?\s*(\d+(?:\.\d+)?)(?:\s*[-–]\s*(\d+(?:\.\d+)?))?")


@dataclass(frozen=True)
class DpwgGroup:
    """One annotation group: the function pairs / activity scores it covers and what the guideline says."""

    id: str
    name: str
    phenotypes: dict[str, frozenset[str]]
    activity: dict[str, tuple[tuple[float, float], ...]]
    rx_change: str | None
    strength: str | None
    recommendation: str
    implications: str


@dataclass(frozen=True)
class DpwgGuideline:
    """One DPWG guideline annotation for one drug and its gene(s)."""

    id: str
    name: str
    version: str
    url: str
    drug: str
    genes: tuple[str, ...]
    functions: dict[str, dict[str, str]]
    groups: tuple[DpwgGroup, ...]
    activity_keyed: frozenset[str]  # genes every group of which states an activity score


@dataclass(frozen=True)
class DpwgMatch:
    guideline: DpwgGuideline
    group: DpwgGroup
    genes: dict[str, str]  # gene -> the diplotype or activity score the match rests on


def _fix(text: str) -> str:
    """Undo UTF-8 read as cp1252 ('â‰¥' for '≥', 'Âµ' for 'µ'), which some PharmGKB exports carry."""
    if "â" not in text and "Â" not in text:
        return text
    try:
        return text.encode("cp1252").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def _text(value: Any) -> str:
    raw = (value or {}).get("html") or "" if isinstance(value, dict) else str(value or "")
    return _fix(" ".join(html.unescape(re.sub(r"<[^>]+>", " ", raw)).split()))


def _pair_key(a: str, b: str) -> str:
    return "/".join(sorted((a, b)))


def activity_ranges(text: str) -> list[list[float]]:
    """Activity-score ranges a group states ('Total gene activity score = 0.5-1', '≥3', '1.5'); ``[]`` where the
    text is not only scores (DPYD's 'cannot be predicted', or prose)."""
    if not text or _SCORE_WORDS.sub("", _SCORE_RANGE.sub("", text)):
        return []
    out = []
    for op, low, high in _SCORE_RANGE.findall(text):
        lo = float(low)
        if op in ("≥", ">="):
            out.append([lo, OPEN_END])
        elif op in ("≤", "<="):
            out.append([0.0, lo])
        else:
            out.append([lo, float(high) if high else lo])
    return out


def _group_entry(grp: dict[str, Any], genes: list[str]) -> dict[str, Any]:
    phenotypes: dict[str, list[str]] = {}
    for pheno in grp.get("genePhenotypes") or []:
        gene, _, pair = _fix(pheno).partition(":")
        left, _, right = pair.partition("/")
        if gene in genes:
            phenotypes.setdefault(gene, []).append(_pair_key(left, right) if right else pair)
    ranges = activity_ranges(_text(grp.get("activityScore")))
    return {
        "id": grp["id"],
        "name": _fix(grp.get("name") or ""),
        "phenotypes": {g: sorted(set(p)) for g, p in sorted(phenotypes.items())},
        "activity": {genes[0]: ranges} if ranges and len(genes) == 1 else {},
        "rx_change": (grp.get("rxChangeStatus") or {}).get("term"),
        "strength": (grp.get("strength") or {}).get("term"),
        "recommendation": _text(grp.get("recommendation")),
        "implications": _text(grp.get("implications")),
    }


def _guideline_entry(doc: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The compact form of one PharmGKB guideline annotation, or ``None`` and why it cannot be used."""
    g = doc.get("guideline") or {}
    if g.get("source") != "DPWG":
        return None, f"source is {g.get('source') or 'not stated'}, not DPWG"
    if not g.get("recommendation") or not doc.get("annotationGroups"):
        return None, "DPWG gives no recommendation (no annotation groups)"
    genes = [x["gene"]["symbol"] for x in g.get("guidelineGenes") or [] if (x.get("gene") or {}).get("symbol")]
    if not genes:
        return None, "no guideline genes"
    functions = {
        x["gene"]["symbol"]: {
            _fix(a["_label"]): _fix(a["function"]["term"]) for a in x.get("alleles") or [] if a.get("function")
        }
        for x in g["guidelineGenes"]
    }
    groups = [_group_entry(grp, genes) for grp in doc["annotationGroups"]]
    groups = [grp for grp in groups if grp["phenotypes"] or grp["activity"]]
    if not groups:
        return None, "no group names a function pair or an activity score of its genes"
    drugs = [c["name"] for c in g.get("relatedChemicals") or [] if c.get("name")]
    if not drugs and (named := re.match(r"Annotation of DPWG Guideline for (.+) and \S+$", g.get("name", ""))):
        drugs = named.group(1).split(" and ")
    entry = {
        "id": g["id"],
        "name": g["name"],
        "source": "DPWG",
        "version": str(g.get("version", "")),
        "url": f"https://www.clinpgx.org/guidelineAnnotation/{g['id']}",
        "drugs": drugs,
        "genes": genes,
        "functions": functions,
        "groups": groups,
    }
    return entry, ""


def build_dpwg(source: Path) -> dict[str, Any]:
    """Read PharmGKB DPWG guideline annotation JSON files (a directory, or one file) into carelens' compact form;
    ``meta.skipped`` names each file that could not be used and why."""
    files = sorted(source.glob("*.json")) if source.is_dir() else [source]
    if not files:
        raise InputError(f"no guideline annotation JSON files under {source}")
    guidelines, skipped = [], {}
    for path in files:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"{path.name}: not readable JSON ({exc.__class__.__name__})") from exc
        if not isinstance(doc, dict) or "guideline" not in doc:
            raise InputError(f"{path.name}: not a PharmGKB guideline annotation (no 'guideline' object)")
        entry, why = _guideline_entry(doc)
        if entry is None:
            skipped[path.name] = why
        else:
            guidelines.append({**entry, "file": path.name})
    return {
        "format": FORMAT,
        "meta": {
            "source": "DPWG guideline annotations from PharmGKB / ClinPGx",
            "source_dir": source.name,
            "licence": LICENCE,
            "generated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "skipped": skipped,
        },
        "guidelines": sorted(guidelines, key=lambda e: (e["drugs"], e["genes"])),
    }


def write_dpwg(source: Path, out: Path) -> dict[str, Any]:
    """Rebuild a DPWG file from ``source`` into ``out``; returns its ``meta`` with counts."""
    doc = build_dpwg(source)
    if not doc["guidelines"]:
        raise InputError(f"no DPWG recommendation (source DPWG, with annotation groups) in {source.name}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    _load.cache_clear()
    return {**doc["meta"], "guidelines": len(doc["guidelines"]), "out": str(out)}


def load_dpwg(path: Path | None = None) -> tuple[dict[str, Any], dict[str, dict[str, str]], tuple[DpwgGuideline, ...]]:
    """(meta, aliases, guidelines): ``path``, else ``CARELENS_PGX_DPWG``, else the packaged copy."""
    return _load(path or load_settings().pgx_dpwg or DPWG_FILE)


@lru_cache(maxsize=4)
def _load(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, str]], tuple[DpwgGuideline, ...]]:
    if not path.exists():
        raise InputError(f"DPWG recommendations not found at {path}; run 'carelens genome import-dpwg'")
    doc = json.loads(path.read_text(encoding="utf-8"))
    if doc.get("format") != FORMAT:
        raise InputError("DPWG file has an unknown format version; rebuild it with 'carelens genome import-dpwg'")
    out = []
    for e in doc["guidelines"]:
        groups = tuple(
            DpwgGroup(
                g["id"],
                g["name"],
                {gene: frozenset(p) for gene, p in g["phenotypes"].items()},
                {gene: tuple((lo, hi) for lo, hi in r) for gene, r in g["activity"].items()},
                g["rx_change"],
                g["strength"],
                g["recommendation"],
                g["implications"],
            )
            for g in e["groups"]
        )
        keyed = frozenset(
            gene for gene in e["genes"] if all(gene in g.activity for g in groups if gene in g.phenotypes)
        )
        for drug in e["drugs"]:
            out.append(
                DpwgGuideline(
                    e["id"], e["name"], e["version"], e["url"], drug, tuple(e["genes"]), e["functions"], groups, keyed
                )
            )
    aliases = json.loads(ALIASES_FILE.read_text(encoding="utf-8"))["aliases"]
    return doc["meta"], aliases, tuple(out)


@lru_cache(maxsize=1)
def _genotype_keys() -> dict[str, dict[str, Any]]:
    return dict(json.loads(ALIASES_FILE.read_text(encoding="utf-8")).get("genotype_keys", {}))


def genotype_diplotype(gene: str, positions: list[dict[str, object]]) -> str | None:
    """For genes whose DPWG guidelines key on one position's genotype (SLCO1B1 c.521T>C), that genotype as a pair
    of DPWG labels ('c.521 C/c.521 T'); None for other genes or where the position has no called genotype."""
    key = _genotype_keys().get(gene)
    if key is None:
        return None
    for p in positions:
        if p.get("position") == key["position"]:
            alleles = str(p.get("genotype") or "").replace("|", "/").split("/")
            labels = [str(key["alleles"][a]) for a in alleles if a in key["alleles"]]
            return "/".join(labels) if len(labels) == len(alleles) == 2 else None
    return None


def _function(gene: str, allele: str, functions: dict[str, str], aliases: dict[str, str]) -> str | None:
    label = aliases.get(allele, allele)
    if label in functions:
        return functions[label]
    if gene.startswith("HLA-"):
        for name, function in functions.items():
            if name.startswith(label + ":") or label.startswith(name + ":"):
                return function
    return functions.get("Other")


def _score(value: str | None) -> float | None:
    try:
        return float(str(value).lstrip("≥>=").strip()) if value not in (None, "") else None
    except ValueError:
        return None


def _gene_matches(
    gl: DpwgGuideline, group: DpwgGroup, gene: str, call: tuple[str | None, str | None], aliases: dict[str, str]
) -> str | None:
    """What the patient's call of ``gene`` matches ``group`` on (the diplotype or the activity score), else None."""
    diplotype, activity = call
    if diplotype and diplotype.count("/") == 1 and gene in group.phenotypes:
        functions = [f for a in diplotype.split("/") if (f := _function(gene, a, gl.functions.get(gene, {}), aliases))]
        if len(functions) == 2:
            return diplotype if _pair_key(*functions) in group.phenotypes[gene] else None
    score = _score(activity)
    if score is not None and gene in gl.activity_keyed and gene in group.activity:
        return f"activity score {activity}" if any(lo <= score <= hi for lo, hi in group.activity[gene]) else None
    return None


def match_dpwg(
    calls: dict[str, tuple[str | None, str | None]], path: Path | None = None
) -> tuple[list[DpwgMatch], dict[str, Any]]:
    """The DPWG group each guideline gives this patient (``calls``: gene -> (single diplotype, activity score),
    either may be None); returns the matches and the file's meta."""
    meta, aliases, guidelines = load_dpwg(path)
    out = []
    for gl in guidelines:
        if not any(g in calls for g in gl.genes):
            continue
        for group in gl.groups:
            constrained = [g for g in gl.genes if g in group.phenotypes or g in group.activity]
            found = {g: g in calls and _gene_matches(gl, group, g, calls[g], aliases.get(g, {})) for g in constrained}
            if constrained and all(found.values()):
                out.append(DpwgMatch(gl, group, {g: str(v) for g, v in found.items()}))
                break
    return out, meta
