"""Command-line commands of carelens.ingest (registered on the main app by carelens.cli)."""

from __future__ import annotations

from pathlib import Path

import typer

from carelens.core.errors import UsageError


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the main app."""

    @app.command("ingest")
    def ingest_command(
        paths: list[Path] = typer.Argument(..., help="FHIR bundles/NDJSON, .txt notes, DICOM, VCF files or folders."),
        store: Path | None = typer.Option(
            None, "--store", help="Store folder (default: CARELENS_STORE or ./carelens-data)."
        ),
        format: str = typer.Option("json", "--format", help="json (counts and quarantined items) or text (one line)."),
    ) -> None:
        """Ingest files and folders into the lake; bad items are quarantined, the rest goes on.

        Reads FHIR R4 bundles (transaction, collection, searchset) and Bulk Data NDJSON,
        DocumentReference notes and .txt notes (patient from a NAME.meta.json sidecar), DICOM
        headers (pixel data by reference) and VCF/VCF.gz (GRCh38). Files already ingested are
        left alone; an interrupted run can simply be run again. Prints
        {"ingested": {type: n, ..., "notes", "dicom", "variants"}, "quarantined": [{"source",
        "where", "reason"}]}. Exit 0 when everything was ingested, 3 when something was
        quarantined, 2 on usage errors.
        """
        from carelens.core.output import emit_json
        from carelens.ingest.pipeline import ingest

        if format not in ("json", "text"):
            raise UsageError("--format must be json or text")
        result = ingest(paths, store)
        if format == "json":
            emit_json(result.summary())
        else:
            typer.echo(result.text())
        raise typer.Exit(result.exit_code)
