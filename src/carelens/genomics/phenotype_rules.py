"""Phenotype tables derived from allele functions with CPIC's rules, for the genes whose PharmCAT phenotype files
are not in the shared data (CYP2D6, G6PD, RYR1): the allele values are shipped in ``data/phenotype_rules.json``
with their source; the diplotype tables are computed here instead of shipping megabytes of pairs."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

RULES_FILE = Path(__file__).parent / "data" / "phenotype_rules.json"
Row = tuple[str, str, str | None]


@lru_cache(maxsize=1)
def load_rules() -> dict[str, Any]:
    """The shipped allele-function data, keyed by gene."""
    doc: dict[str, Any] = json.loads(RULES_FILE.read_text())
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def _fmt(x: float) -> str:
    text = f"{x:.2f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def activity_sum(values: list[str]) -> str:
    """CPIC activity score of a diplotype: the sum of its allele values ('n/a' wins; '≥' carries over)."""
    if any(v == "n/a" for v in values):
        return "n/a"
    at_least = any(v.startswith("≥") for v in values)
    total = sum(float(v.lstrip("≥")) for v in values)
    return ("≥" if at_least else "") + _fmt(total)


def metabolizer(score: str) -> str:
    """CYP2D6 phenotype from an activity score (CPIC 2019 consensus)."""
    if score == "n/a":
        return "Indeterminate"
    value = float(score.lstrip("≥"))
    if score.startswith("≥") or value > 2.25:
        return "Ultrarapid Metabolizer"
    if value == 0:
        return "Poor Metabolizer"
    return "Intermediate Metabolizer" if value <= 1.0 else "Normal Metabolizer"


def g6pd(functions: list[str]) -> str:
    """G6PD phenotype (CPIC 2022) from one (hemizygous) or two allele functions."""
    kinds = [
        "uncertain"
        if f.startswith("Uncertain")
        else "cnsha"
        if "CNSHA" in f
        else "normal"
        if f.endswith("Normal")
        else "deficient"
        for f in functions
    ]
    if "uncertain" in kinds:
        return "Indeterminate"
    if len(kinds) == 1:
        return {"normal": "Normal", "deficient": "Deficient", "cnsha": "Deficient with CNSHA"}[kinds[0]]
    if kinds.count("normal") == 2:
        return "Normal"
    if "normal" in kinds:
        return "Variable"
    return "Deficient with CNSHA" if kinds == ["cnsha", "cnsha"] else "Deficient"


def ryr1(functions: list[str]) -> str:
    """RYR1 phenotype (CPIC 2018): any MH-associated allele gives susceptibility, otherwise uncertain."""
    if any("Malignant Hyperthermia" in f for f in functions):
        return "Malignant Hyperthermia Susceptibility"
    return "Uncertain Susceptibility"


def _row(rule: str, values: list[str]) -> Row:
    if rule == "activity_score":
        score = activity_sum(values)
        return metabolizer(score), score, score
    phenotype = g6pd(values) if rule == "g6pd" else ryr1(values)
    return phenotype, phenotype, None


class DerivedRows(Mapping[tuple[str, ...], Row]):
    """Diplotype -> (phenotype, lookup key, activity score), computed on lookup from the allele values."""

    def __init__(self, rule: str, values: dict[str, str], names: list[str], default: str | None) -> None:
        self.rule, self.allele_values, self.names, self.default = rule, values, names, default

    def __getitem__(self, key: tuple[str, ...]) -> Row:
        if not 1 <= len(key) <= 2 or (len(key) == 1 and self.rule != "g6pd"):
            raise KeyError(key)
        if self.default is None and any(n not in self.allele_values for n in key):
            raise KeyError(key)
        return _row(self.rule, [self.allele_values.get(n, self.default or "n/a") for n in key])

    def __iter__(self) -> Iterator[tuple[str, ...]]:
        if self.rule == "g6pd":
            yield from ((n,) for n in self.names)
        yield from itertools.combinations_with_replacement(self.names, 2)

    def __len__(self) -> int:
        n = len(self.names)
        return n * (n + 1) // 2 + (n if self.rule == "g6pd" else 0)


def derived_tables(genes: set[str], allele_names: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    """Phenotype tables (as PhenotypeTable fields) for those of ``genes`` that have shipped rules."""
    out: dict[str, dict[str, Any]] = {}
    for gene, spec in load_rules().items():
        if gene not in genes:
            continue
        aliases = spec.get("aliases", {})
        values = {aliases.get(n, n): v for n, v in spec["values"].items()}
        values.update({n: spec["values"][a] for n, a in aliases.items() if a in spec["values"]})
        # RYR1: CPIC lists the MH-associated variants; any other defined allele is of uncertain function
        default = "Uncertain function" if spec["rule"] == "ryr1" else None
        names = sorted(set(values) | (set(allele_names.get(gene, [])) if default else set()))
        out[gene] = {
            "version": f"derived from PharmCAT {gene}.json @ {spec['commit'][:12]} with CPIC rules",
            "functions": {n: values.get(n, default or "n/a") for n in names},
            "diplotypes": DerivedRows(spec["rule"], values, names, default),
            "activity": dict(values) if spec["rule"] == "activity_score" else {},
        }
    return out
