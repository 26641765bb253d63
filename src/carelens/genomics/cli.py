"""Command-line commands of carelens.genomics (registered on the main app by carelens.cli)."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from carelens.core.options import store_option

if TYPE_CHECKING:
    from pydantic import BaseModel

genome = typer.Typer(
    help="Genome reports: pharmacogenomics (CPIC), ACMG secondary findings, cohort frequencies.", no_args_is_help=True
)


class PgxFormat(StrEnum):
    json = "json"
    tsv = "tsv"
    html = "html"
    fhir = "fhir"


def _write(text: str, out: Path | None) -> None:
    if out is None:
        typer.echo(text, nl=not text.endswith("\n"))
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)


def _emit(report: BaseModel, fmt: PgxFormat, out: Path | None, tsv: Callable[[], str], html: Callable[[], str]) -> None:
    """Write ``report`` as JSON, or as the text that ``tsv`` or ``html`` makes (``fhir`` is the caller's)."""
    from carelens.core.output import emit_json

    if fmt is PgxFormat.json:
        emit_json(report, out)
    elif fmt is PgxFormat.tsv:
        _write(tsv(), out)
    else:
        _write(html(), out)


@genome.command("pgx")
def pgx_command(
    vcf: Path = typer.Argument(..., help="GRCh38 VCF (plain or bgzipped; indexed or not)."),
    sample: str | None = typer.Option(
        None, "--sample", help="Sample column to report (needed for multi-sample files)."
    ),
    outside_calls: Path | None = typer.Option(None, "--outside-calls", help="TSV: gene<TAB>diplotype[<TAB>phenotype]."),
    fmt: PgxFormat = typer.Option(PgxFormat.json, "--format", help="json, tsv, html or fhir."),
    out: Path | None = typer.Option(None, "--out", help="Write here instead of stdout."),
    missing_to_ref: bool = typer.Option(
        False, "--missing-to-ref", help="Take positions absent from a variant-only VCF as reference (listed per gene)."
    ),
    all_samples: bool = typer.Option(
        False, "--all-samples", help="Multi-sample VCF: one report per sample (JSON: reports + quarantined)."
    ),
    research: bool = typer.Option(
        False,
        "--research-combinations",
        help="Where no diplotype of named alleles fits, report PharmCAT's combination / partial call (research mode; "
        "no phenotype or recommendation follows).",
    ),
) -> None:
    """Star-allele diplotypes, phenotypes and CPIC and DPWG drug recommendations (side by side) for one sample.

    Positions the VCF does not cover are reported as not assayed (never assumed reference unless
    --missing-to-ref is given; gVCF reference blocks count as reference); ties are reported as ties.
    --format fhir writes a FHIR R4 Genomics Reporting bundle. Exit 3 when --all-samples quarantined a sample.
    """
    from carelens.core.output import emit_json
    from carelens.genomics.pgx import pgx_report, pgx_reports
    from carelens.genomics.render import pgx_tsv, render_html

    if all_samples:
        batch = pgx_reports(vcf, outside_calls=outside_calls, missing_to_ref=missing_to_ref, research=research)
        if fmt is PgxFormat.json:
            emit_json(batch, out)
        elif fmt is PgxFormat.tsv:
            _write("".join(pgx_tsv(r) for r in batch.reports), out)
        else:
            raise typer.BadParameter("--all-samples writes json or tsv")
        if batch.quarantined:
            raise typer.Exit(3)
        return
    report = pgx_report(
        vcf, sample=sample, outside_calls=outside_calls, missing_to_ref=missing_to_ref, research=research
    )
    if fmt is PgxFormat.fhir:
        from carelens.genomics.fhir import pgx_fhir

        emit_json(pgx_fhir(report), out)
    else:
        _emit(report, fmt, out, tsv=lambda: pgx_tsv(report), html=lambda: render_html(pgx=report))


@genome.command("findings")
def findings_command(
    vcf: Path = typer.Argument(..., help="GRCh38 VCF of the patient."),
    clinvar: Path = typer.Option(
        ..., "--clinvar", help="ClinVar VCF (official layout; macarthur-lab layout accepted)."
    ),
    sample: str | None = typer.Option(None, "--sample", help="Sample column (needed for multi-sample files)."),
    fmt: PgxFormat = typer.Option(PgxFormat.json, "--format", help="json, tsv or html."),
    out: Path | None = typer.Option(None, "--out", help="Write here instead of stdout."),
) -> None:
    """ACMG SF v3.2 secondary findings: ClinVar P/LP variants with stars, zygosity and the gene's reporting rule."""
    from carelens.genomics.findings import find_secondary
    from carelens.genomics.render import findings_tsv, render_html

    if fmt is PgxFormat.fhir:
        raise typer.BadParameter("findings are written as json, tsv or html")
    report = find_secondary(vcf, clinvar, sample=sample)
    _emit(report, fmt, out, tsv=lambda: findings_tsv(report), html=lambda: render_html(findings=report))


@genome.command("report")
def report_command(
    vcf: Path = typer.Argument(..., help="GRCh38 VCF of the patient."),
    out: Path = typer.Option(..., "--out", help="HTML file to write."),
    sample: str | None = typer.Option(None, "--sample", help="Sample column (needed for multi-sample files)."),
    clinvar: Path | None = typer.Option(None, "--clinvar", help="ClinVar VCF; adds secondary findings."),
    outside_calls: Path | None = typer.Option(None, "--outside-calls", help="TSV: gene<TAB>diplotype[<TAB>phenotype]."),
    missing_to_ref: bool = typer.Option(
        False, "--missing-to-ref", help="Take positions absent from a variant-only VCF as reference (listed per gene)."
    ),
) -> None:
    """One HTML page per patient: PGx table with drug recommendations and secondary findings with evidence."""
    from carelens.genomics.findings import find_secondary
    from carelens.genomics.pgx import pgx_report
    from carelens.genomics.render import render_html

    pgx = pgx_report(vcf, sample=sample, outside_calls=outside_calls, missing_to_ref=missing_to_ref)
    findings = find_secondary(vcf, clinvar, sample=pgx.sample) if clinvar else None
    _write(render_html(pgx=pgx, findings=findings), out)
    typer.echo(f"wrote {out}", err=True)


@genome.command("cohort")
def cohort_command(
    vcfs: list[Path] = typer.Argument(..., help="VCF files (every sample of each is called)."),
    store: Path | None = store_option(),
    out: Path | None = typer.Option(None, "--out", help="Write the JSON here instead of stdout."),
    plot: Path | None = typer.Option(None, "--plot", help="Also draw phenotype frequencies per gene to this PNG."),
) -> None:
    """Diplotype and phenotype frequencies across samples; written to the lake as table pgx_cohort (SQL-queryable).

    Exit 0 when every VCF was used, 3 when some were quarantined (listed with a reason in the JSON).
    """
    from carelens.core.config import load_settings
    from carelens.core.output import emit_json
    from carelens.genomics.cohort import cohort_frequencies, plot_phenotypes, write_to_lake

    root = store or load_settings().store
    result = write_to_lake(cohort_frequencies(vcfs), root)
    if plot is not None:
        plot_phenotypes(result, plot)
    emit_json(result, out)
    if result.quarantined:
        raise typer.Exit(3)


@genome.command("refresh-definitions")
def refresh_command(
    source: Path = typer.Option(
        ..., "--from", help="PharmCAT-layout folder with alleles/, phenotype/, cpic-guidelines/."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Where to write the copy; point CARELENS_PGX_DEFINITIONS at it to have reports use it."
    ),
) -> None:
    """Regenerate carelens' compact copy of the CPIC allele definitions, phenotypes and guidelines.

    The copy shipped in the package is read-only here: the new copy goes to --out.
    """
    from carelens.core.errors import InputError
    from carelens.core.output import emit_json
    from carelens.genomics.definitions import write_definitions

    if not source.is_dir():
        raise InputError(f"not a folder: {source}")
    emit_json(write_definitions(source, out))


@genome.command("import-dpwg")
def import_dpwg_command(
    source: Path = typer.Option(
        ...,
        "--from",
        help="A PharmGKB DPWG guideline annotation JSON file, or a folder of them (PharmCAT's reporter/guidelines).",
    ),
    out: Path = typer.Option(
        ..., "--out", help="Where to write the rebuilt file; point CARELENS_PGX_DPWG at it to have reports use it."
    ),
) -> None:
    """Rebuild the DPWG recommendations reported beside CPIC's (CC BY-SA 4.0 data, kept in its own file).

    Guidelines that are not DPWG or carry no recommendation are skipped and named with the reason. The copy shipped
    in the package is read-only here: the rebuilt file goes to --out.
    """
    from carelens.core.errors import InputError
    from carelens.core.output import emit_json
    from carelens.genomics.dpwg import write_dpwg

    if not source.exists():
        raise InputError(f"not found: {source}")
    emit_json(write_dpwg(source, out))


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the main app."""
    app.add_typer(genome, name="genome")
