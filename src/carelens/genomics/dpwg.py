"""DPWG (Dutch Pharmacogenetics Working Group) recommendations for drug-gene pairs CPIC has no guideline for.

The data are PharmGKB / ClinPGx guideline annotations ("Annotation of DPWG Guideline for <drug> and <gene>", the
JSON PharmGKB distributes and PharmCAT ships under ``reporter/guidelines/``), licensed CC BY-SA 4.0: carelens keeps
them in their own file, ``data/dpwg_recommendations.json``, under that licence and with attribution
(``data/DPWG_LICENSE.md``). ``carelens genome import-dpwg --from DIR`` rebuilds the file from a directory of such
annotation files (a PharmCAT checkout's ``reporter/guidelines`` or PharmGKB's guideline annotation download).

A guideline lists each allele's DPWG function and, per annotation group, the function pairs it applies to
(``UGT1A1:Decreased function (UGT1A1*28)/Normal function``): a diplotype matches a group when both alleles are
listed and their function pair is one of the group's. ``aliases`` maps carelens' allele names to DPWG's labels
where they differ (VKORC1 rs9923231 C/T is DPWG's -1639 G/A; ABCG2 rs2231142 G/T its c.421 G/T).
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

DPWG_FILE = Path(__file__).parent / "data" / "dpwg_recommendations.json"
FORMAT = 1
LICENCE = "CC BY-SA 4.0 (PharmGKB / ClinPGx guideline annotations of DPWG guidelines); see DPWG_LICENSE.md"


@dataclass(frozen=True)
class DpwgGroup:
    """One annotation group: the function pairs it covers and what the guideline says for them."""

    id: str
    name: str
    phenotypes: frozenset[str]
    rx_change: str | None
    strength: str | None
    recommendation: str
    implications: str


@dataclass(frozen=True)
class DpwgGuideline:
    """One DPWG guideline annotation for one drug and gene."""

    id: str
    name: str
    version: str
    url: str
    drug: str
    gene: str
    functions: dict[str, str]
    groups: tuple[DpwgGroup, ...]


@dataclass(frozen=True)
class DpwgMatch:
    guideline: DpwgGuideline
    group: DpwgGroup
    diplotype: str


def _text(value: Any) -> str:
    raw = (value or {}).get("html") or "" if isinstance(value, dict) else str(value or "")
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", raw)).split())


def _pair_key(gene: str, a: str, b: str) -> str:
    return f"{gene}:{'/'.join(sorted((a, b)))}"


def _normalise(pheno: str) -> str:
    gene, _, pair = pheno.partition(":")
    left, _, right = pair.partition("/")
    return _pair_key(gene, left, right) if right else pheno


def _guideline_entry(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The compact form of one PharmGKB guideline annotation; ``None`` when it is not a DPWG recommendation keyed
    on one gene's allele functions."""
    g = doc.get("guideline") or {}
    if g.get("source") != "DPWG" or not g.get("recommendation") or not doc.get("annotationGroups"):
        return None
    genes = g.get("guidelineGenes") or []
    if len(genes) != 1 or not genes[0].get("alleles"):
        return None
    gene = genes[0]["gene"]["symbol"]
    functions = {a["_label"]: a["function"]["term"] for a in genes[0]["alleles"] if a.get("function")}
    groups = []
    for grp in doc["annotationGroups"]:
        phenos = [_normalise(p) for p in grp.get("genePhenotypes") or [] if p.startswith(f"{gene}:")]
        if not phenos:
            continue
        groups.append(
            {
                "id": grp["id"],
                "name": grp.get("name") or "",
                "phenotypes": sorted(phenos),
                "rx_change": (grp.get("rxChangeStatus") or {}).get("term"),
                "strength": (grp.get("strength") or {}).get("term"),
                "recommendation": _text(grp.get("recommendation")),
                "implications": _text(grp.get("implications")),
            }
        )
    if not groups:
        return None
    drugs = [c["name"] for c in g.get("relatedChemicals") or [] if c.get("name")]
    if not drugs and (named := re.match(r"Annotation of DPWG Guideline for (.+) and \S+$", g.get("name", ""))):
        drugs = named.group(1).split(" and ")
    return {
        "id": g["id"],
        "name": g["name"],
        "version": str(g.get("version", "")),
        "url": f"https://www.clinpgx.org/guidelineAnnotation/{g['id']}",
        "drugs": drugs,
        "gene": gene,
        "functions": functions,
        "groups": groups,
    }


def build_dpwg(source: Path) -> dict[str, Any]:
    """Read PharmGKB DPWG guideline annotation JSON files (a directory, or one file) into carelens' compact form."""
    files = sorted(source.glob("*.json")) if source.is_dir() else [source]
    if not files:
        raise InputError(f"no guideline annotation JSON files under {source}")
    guidelines, skipped = [], 0
    for path in files:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"{path.name}: not readable JSON ({exc.__class__.__name__})") from exc
        if not isinstance(doc, dict) or "guideline" not in doc:
            raise InputError(f"{path.name}: not a PharmGKB guideline annotation (no 'guideline' object)")
        entry = _guideline_entry(doc)
        if entry is None:
            skipped += 1
        else:
            guidelines.append(entry)
    previous = json.loads(DPWG_FILE.read_text()) if DPWG_FILE.exists() else {}
    return {
        "format": FORMAT,
        "meta": {
            "source": "DPWG guideline annotations from PharmGKB / ClinPGx",
            "source_dir": source.name,
            "licence": LICENCE,
            "generated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "skipped": skipped,
        },
        "aliases": previous.get("aliases", {}),
        "guidelines": sorted(guidelines, key=lambda e: (e["drugs"], e["gene"])),
    }


def write_dpwg(source: Path, out: Path = DPWG_FILE) -> dict[str, Any]:
    """Rebuild the DPWG file from ``source``; returns its ``meta`` with counts."""
    doc = build_dpwg(source)
    if not doc["guidelines"]:
        raise InputError(f"no DPWG recommendation (source DPWG, keyed on allele functions) in {source.name}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    load_dpwg.cache_clear()
    return {**doc["meta"], "guidelines": len(doc["guidelines"]), "out": str(out)}


@lru_cache(maxsize=4)
def load_dpwg(path: Path = DPWG_FILE) -> tuple[dict[str, Any], dict[str, dict[str, str]], tuple[DpwgGuideline, ...]]:
    """(meta, aliases, guidelines) of a DPWG file written by :func:`write_dpwg`."""
    if not path.exists():
        raise InputError(f"DPWG recommendations not found at {path}; run 'carelens genome import-dpwg --from DIR'")
    doc = json.loads(path.read_text())
    if doc.get("format") != FORMAT:
        raise InputError("DPWG file has an unknown format version; rebuild it with 'carelens genome import-dpwg'")
    out = []
    for e in doc["guidelines"]:
        groups = tuple(
            DpwgGroup(
                g["id"],
                g["name"],
                frozenset(g["phenotypes"]),
                g["rx_change"],
                g["strength"],
                g["recommendation"],
                g["implications"],
            )
            for g in e["groups"]
        )
        for drug in e["drugs"]:
            out.append(
                DpwgGuideline(e["id"], e["name"], e["version"], e["url"], drug, e["gene"], e["functions"], groups)
            )
    return doc["meta"], doc.get("aliases", {}), tuple(out)


def match_dpwg(
    diplotypes: dict[str, str], cpic: set[tuple[str, str]], path: Path = DPWG_FILE
) -> tuple[list[DpwgMatch], dict[str, Any]]:
    """DPWG groups matching the patient's single diplotype per gene (``{gene: "a/b"}``), for the drug-gene pairs
    CPIC has no guideline for (``cpic``: its (drug, gene) pairs); returns the matches and the file's meta."""
    meta, aliases, guidelines = load_dpwg(path)
    out = []
    for gl in guidelines:
        dip = diplotypes.get(gl.gene)
        if (gl.drug, gl.gene) in cpic or not dip or dip.count("/") != 1:
            continue
        names = [aliases.get(gl.gene, {}).get(a, a) for a in dip.split("/")]
        functions = [gl.functions.get(n) for n in names]
        if None in functions:
            continue
        key = _pair_key(gl.gene, *functions)  # type: ignore[arg-type]
        for group in gl.groups:
            if key in group.phenotypes:
                out.append(DpwgMatch(gl, group, dip))
                break
    return out, meta
