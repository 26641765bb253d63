"""Rendering reports as TSV (one row per call) and HTML (jinja2 templates shipped in the package)."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from jinja2 import Environment, PackageLoader, select_autoescape

from carelens.genomics.findings import FindingsReport
from carelens.genomics.pgx import PgxReport


def _env() -> Environment:
    return Environment(loader=PackageLoader("carelens.genomics", "templates"), autoescape=select_autoescape(["j2"]))


def uncovered_genes(pgx: PgxReport) -> list[str]:
    """Genes none of whose positions is in the VCF (listed in one line, not as table rows)."""
    return [g.gene for g in pgx.genes if not g.diplotypes and (g.reason or "").startswith("none of the")]


def render_html(pgx: PgxReport | None = None, findings: FindingsReport | None = None) -> str:
    """One HTML page for a patient: PGx table with drug recommendations and/or secondary findings."""
    sample = pgx.sample if pgx else findings.sample if findings else ""
    return (
        _env()
        .get_template("report.html.j2")
        .render(
            sample=sample,
            pgx=pgx,
            findings=findings,
            uncovered=uncovered_genes(pgx) if pgx else [],
            generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        )
    )


def _tsv(rows: list[list[object]]) -> str:
    buf = io.StringIO()
    for row in rows:
        buf.write("\t".join("" if v is None else str(v).replace("\t", " ").replace("\n", " ") for v in row) + "\n")
    return buf.getvalue()


def pgx_tsv(report: PgxReport) -> str:
    """One row per gene: sample, gene, diplotypes, phenotype, activity score, not assayed count, reason."""
    rows: list[list[object]] = [
        [
            "sample",
            "gene",
            "diplotypes",
            "phenotype",
            "activity_score",
            "not_assayed",
            "could_change",
            "reason",
            "source",
        ]
    ]
    for g in report.genes:
        rows.append(
            [
                report.sample,
                g.gene,
                " or ".join(g.diplotypes),
                g.phenotype,
                g.activity_score,
                ",".join(map(str, g.not_assayed)),
                ",".join(g.could_change),
                g.reason,
                g.source,
            ]
        )
    return _tsv(rows)


def findings_tsv(report: FindingsReport) -> str:
    """One row per finding."""
    rows: list[list[object]] = [
        [
            "sample",
            "gene",
            "chrom",
            "pos",
            "ref",
            "alt",
            "genotype",
            "zygosity",
            "significance",
            "stars",
            "conflicting",
            "inheritance",
            "reportable",
            "rule_note",
            "conditions",
            "allele_id",
        ]
    ]
    for f in report.findings:
        rows.append(
            [
                report.sample,
                f.gene,
                f.chrom,
                f.pos,
                f.ref,
                f.alt,
                f.genotype,
                f.zygosity,
                f.significance,
                f.stars,
                f.conflicting,
                f.inheritance,
                f.reportable,
                f.rule_note,
                f.conditions,
                f.allele_id,
            ]
        )
    return _tsv(rows)
