"""``carelens run`` (registered on the main app by carelens.cli)."""

from __future__ import annotations

from pathlib import Path

import typer

from carelens.core.errors import UsageError
from carelens.core.options import choice, format_option, store_option


def run_command(
    engine: str = choice("local", "--engine", ("local", "ray"), "local (one process) or ray (Ray tasks on actors)."),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="An existing Ray cluster (ray://host:10001 or auto); default: embedded local Ray."
    ),
    workers: int | None = typer.Option(None, "--workers", help="Ray workers (actors); default: the cluster's CPUs."),
    store: Path | None = store_option(),
    clinvar: Path | None = typer.Option(None, "--clinvar", help="ClinVar VCF for secondary findings (else none)."),
    secret_file: Path | None = typer.Option(
        None, "--secret-file", help="Site key for the research copy (default: CARELENS_SECRET_FILE; else no copy)."
    ),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Patients per batch (one commit per batch)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Also redo patients whose last run failed a step."),
    compact: bool = typer.Option(
        False, "--compact", help="Merge the committed batches into one part per table (outputs unchanged)."
    ),
    limit: int | None = typer.Option(
        None, "--limit", min=0, help="Process at most this many of the due patients (the rest: 'remaining')."
    ),
    fmt: str = format_option("text", ("text", "json"), "text or json."),
) -> None:
    """Process every patient whose inputs or models changed: summary, image reads, PGx/findings,
    research copy. JSON: {"patients", "processed", "unchanged", "failed": [{"patient", "reason"}],
    "outputs_digest"}. Exit 3 when some patient has a failed step."""
    from carelens.core.config import load_settings
    from carelens.core.output import emit_json
    from carelens.run import run

    if workers is not None and workers < 1:
        raise UsageError("--workers must be at least 1")
    report = run(store or load_settings().store, engine, ray_address, workers, clinvar, secret_file, batch_size,
                 retry_failed, compact, limit)  # fmt: skip
    if fmt == "json":
        emit_json(report.as_dict())
    else:
        typer.echo(f"{report.patients} patients: {report.processed} processed, {report.unchanged} unchanged, "
                   f"{len(report.failed)} failed, {report.remaining} left; "
                   f"outputs {report.outputs_digest[:16]}")  # fmt: skip
    if report.failed:
        raise typer.Exit(3)


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the main app."""
    app.command("run")(run_command)
