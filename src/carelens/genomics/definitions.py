"""carelens' compact copy of the CPIC / ClinPGx named-allele definitions, phenotype tables and CPIC guidelines.

The copy is generated from PharmCAT's data files (``alleles/*_translation.json``, ``alleles/exemptions.json``,
``phenotype/*.json``, ``cpic-guidelines/CPIC_*.json``) by :func:`build_definitions` and shipped as
``data/pgx_definitions.json.gz``; ``carelens genome refresh-definitions --from DIR --out FILE`` writes a new copy, which
``CARELENS_PGX_DEFINITIONS`` points reports at (the packaged copy is never overwritten).
"""

from __future__ import annotations

import gzip
import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from carelens.core.errors import InputError
from carelens.core.settings import load_settings
from carelens.genomics.phenotype_rules import derived_tables

DATA_DIR = Path(__file__).parent / "data"
DEFINITIONS_FILE = DATA_DIR / "pgx_definitions.json.gz"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Locus:
    """One position an allele definition rests on (GRCh38, VCF allele spelling)."""

    position: int
    rsid: str | None
    ref: str
    alts: tuple[str, ...]
    hgvs: str | None


@dataclass(frozen=True)
class NamedAllele:
    """A star (named) allele: the allele it requires at each locus (``None``: not part of the definition)."""

    name: str
    reference: bool
    alleles: tuple[str | None, ...]
    score: int


@dataclass
class GeneDefinition:
    """Everything needed to call one gene: loci, named alleles, exemptions."""

    gene: str
    chromosome: str
    build: str
    version: str
    source: str
    loci: list[Locus]
    alleles: list[NamedAllele]
    ignored_positions: set[int] = field(default_factory=set)
    unphased_priorities: dict[str, str] = field(default_factory=dict)
    suballeles: dict[str, str] = field(default_factory=dict)
    required_positions: set[int] = field(default_factory=set)  # PharmCAT does not call the gene without them

    @property
    def reference(self) -> NamedAllele:
        return next(a for a in self.alleles if a.reference)


@dataclass
class PhenotypeTable:
    """Diplotype (as a sorted pair of allele names) to phenotype, lookup key and activity score."""

    gene: str
    version: str
    diplotypes: Mapping[tuple[str, ...], tuple[str, str, str | None]]
    functions: dict[str, str]
    activity: dict[str, str] = field(default_factory=dict)


@dataclass
class Recommendation:
    """One CPIC recommendation: the drug, the phenotype keys it applies to, its text and strength."""

    drug: str
    guideline: str
    url: str | None
    lookup: dict[str, str]
    population: str | None
    strength: str | None
    text: str
    implications: list[str]


@dataclass
class PgxDefinitions:
    """The shipped data set with its provenance."""

    meta: dict[str, Any]
    genes: dict[str, GeneDefinition]
    phenotypes: dict[str, PhenotypeTable]
    recommendations: list[Recommendation]


def _strip_html(text: str) -> str:
    text = re.sub(r"<h4[^>]*>.*?</h4>", " ", text, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())


def _gene_entry(doc: dict[str, Any], exemption: dict[str, Any]) -> dict[str, Any]:
    ignored_alleles = set(exemption.get("ignoredAlleles") or [])
    return {
        "gene": doc["gene"],
        "chromosome": doc["chromosome"],
        "build": doc["genomeBuild"],
        "version": doc.get("version") or doc.get("dataVersion") or "unknown",
        "source": doc.get("source") or "unknown",
        "loci": [
            [v["position"], v.get("rsid"), v["ref"], v.get("alts") or [], v.get("chromosomeHgvsName")]
            for v in doc["variants"]
        ],
        "alleles": [
            [a["name"], bool(a["reference"]), a["alleles"], a.get("score")]
            for a in doc["namedAlleles"]
            if a["name"] not in ignored_alleles
        ],
        "ignored_positions": [p["position"] for p in exemption.get("ignoredPositions") or []],
        "unphased_priorities": {p["id"]: p["pick"] for p in exemption.get("unphasedDiplotypePriorities") or []},
        "suballeles": doc.get("suballelesMap") or {},
        "required_positions": sorted(int(p) for p in exemption.get("requiredPositions") or []),
    }


def build_definitions(source_dir: Path) -> dict[str, Any]:
    """Read PharmCAT-layout data from ``source_dir`` and return the compact document carelens ships."""
    alleles_dir = source_dir / "alleles"
    files = sorted(alleles_dir.glob("*_translation.json"))
    if not files:
        raise InputError(f"no '*_translation.json' allele definition files under {alleles_dir}")
    exemptions_file = alleles_dir / "exemptions.json"
    exemptions = json.loads(exemptions_file.read_text()) if exemptions_file.exists() else {}
    genes = {}
    for path in files:
        doc = json.loads(path.read_text())
        genes[doc["gene"]] = _gene_entry(doc, exemptions.get(doc["gene"], {}))
    phenotypes = {}
    for path in sorted((source_dir / "phenotype").glob("*.json")):
        if ".match." in path.name:
            continue
        doc = json.loads(path.read_text())
        phenotypes[doc["gene"]] = {
            "version": doc.get("version"),
            "functions": doc.get("haplotypes") or {},
            "activity": {
                a["name"]: a["activityValue"] for a in doc.get("namedAlleles") or [] if a.get("activityValue")
            },
            "diplotypes": [
                [
                    sorted(n for n, c in d["diplotypekey"].items() for _ in range(c)),
                    d["phenotype"] or d["generesult"],
                    d.get("lookupkey"),
                    d.get("activityScore"),
                ]
                for d in doc["diplotypes"]
            ],
        }
    recommendations = []
    for path in sorted((source_dir / "cpic-guidelines").glob("CPIC_*.json")):
        doc = json.loads(path.read_text())
        guideline = doc["guideline"]
        for rec in doc.get("recommendations") or []:
            for chem in rec.get("relatedChemicals") or []:
                recommendations.append(
                    [
                        chem["name"],
                        guideline["name"],
                        guideline.get("url"),
                        rec.get("lookupKey") or {},
                        rec.get("population"),
                        (rec.get("classification") or {}).get("term"),
                        _strip_html((rec.get("text") or {}).get("html") or ""),
                        rec.get("implications") or [],
                    ]
                )
    versions = sorted({g["version"] for g in genes.values()})
    return {
        "format": FORMAT_VERSION,
        "meta": {
            "source": "CPIC / ClinPGx allele definitions, phenotypes and guideline annotations (PharmCAT data files)",
            "source_dir": source_dir.name,
            "definition_versions": versions,
            "generated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "licence": "CPIC data CC0; ClinPGx / PharmGKB data CC BY-SA 4.0; PharmCAT files MPL-2.0",
        },
        "genes": genes,
        "phenotypes": phenotypes,
        "recommendations": recommendations,
    }


def write_definitions(source_dir: Path, out: Path) -> dict[str, Any]:
    """Write a compact copy built from ``source_dir`` to ``out``; returns its ``meta`` with counts."""
    doc = build_definitions(source_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(out, "wb", mtime=0) as fh:
        fh.write(json.dumps(doc, separators=(",", ":"), sort_keys=True).encode())
    _load.cache_clear()
    return {
        **doc["meta"],
        "genes": len(doc["genes"]),
        "phenotype_tables": len(doc["phenotypes"]),
        "recommendations": len(doc["recommendations"]),
        "out": str(out),
    }


def _gene(name: str, g: dict[str, Any]) -> GeneDefinition:
    return GeneDefinition(
        gene=name,
        chromosome=g["chromosome"],
        build=g["build"],
        version=g["version"],
        source=g["source"],
        loci=[Locus(p, r, ref, tuple(alts), h) for p, r, ref, alts, h in g["loci"]],
        alleles=[
            NamedAllele(n, ref, tuple(a), s if s is not None else sum(x is not None for x in a))
            for n, ref, a, s in g["alleles"]
        ],
        ignored_positions=set(g["ignored_positions"]),
        unphased_priorities=dict(g["unphased_priorities"]),
        suballeles=dict(g.get("suballeles") or {}),
        required_positions=set(g.get("required_positions") or []),
    )


def read_translation(path: Path) -> GeneDefinition:
    """One gene's definitions from a PharmCAT ``*_translation.json``-layout file (no exemptions applied), e.g. the
    test-only definition files PharmCAT's own tests run against."""
    try:
        doc = json.loads(path.read_text())
        return _gene(doc["gene"], _gene_entry(doc, {}))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"not a PharmCAT allele definition file: {path.name} ({exc.__class__.__name__})") from exc


def _parse(doc: dict[str, Any]) -> PgxDefinitions:
    genes = {name: _gene(name, g) for name, g in doc["genes"].items()}
    phenotypes = {}
    for name, p in doc["phenotypes"].items():
        phenotypes[name] = PhenotypeTable(
            gene=name,
            version=p["version"],
            functions=p["functions"],
            activity=p.get("activity", {}),
            diplotypes={tuple(k): (ph, lk, act) for k, ph, lk, act in p["diplotypes"]},
        )
    names = {n: [a.name for a in g.alleles] for n, g in genes.items()}
    for name, t in derived_tables(set(genes) - set(phenotypes), names).items():
        phenotypes[name] = PhenotypeTable(gene=name, **t)
    recs = [Recommendation(*r) for r in doc["recommendations"]]
    return PgxDefinitions(meta=doc["meta"], genes=genes, phenotypes=phenotypes, recommendations=recs)


def load_definitions(path: Path | None = None) -> PgxDefinitions:
    """Load the compact definitions: ``path``, else ``CARELENS_PGX_DEFINITIONS``, else the shipped copy."""
    return _load(path or load_settings().pgx_definitions or DEFINITIONS_FILE)


@lru_cache(maxsize=4)
def _load(path: Path) -> PgxDefinitions:
    if not path.exists():
        raise InputError(
            f"PGx definitions not found at {path}; run 'carelens genome refresh-definitions --from DIR --out FILE'"
        )
    with gzip.open(path, "rb") as fh:
        doc = json.loads(fh.read())
    if doc.get("format") != FORMAT_VERSION:
        raise InputError("PGx definitions file has an unknown format version; regenerate it with refresh-definitions")
    return _parse(doc)
