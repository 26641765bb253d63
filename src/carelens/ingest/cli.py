"""Command-line commands of carelens.ingest (registered on the main app by carelens.cli)."""

from __future__ import annotations

from pathlib import Path

import typer

from carelens.core.errors import UsageError
from carelens.core.options import choice, format_option, store_option


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the main app."""

    @app.command("ingest")
    def ingest_command(
        paths: list[Path] = typer.Argument(..., help="FHIR bundles/NDJSON, .txt notes, DICOM, VCF files or folders."),
        store: Path | None = store_option(),
        format: str = format_option(
            "json", ("json", "text"), "json (counts and quarantined items) or text (one line)."
        ),
        zone: str = choice(
            "clinical",
            "--zone",
            ("clinical", "research"),
            "clinical (identified lake, default) or research (de-identified lake).",
        ),
        source: list[Path] = typer.Option(
            [], "--source", help="research zone: the identified data PATH was de-identified from (repeatable)."
        ),
        processes: int | None = typer.Option(
            None,
            "--processes",
            help="Processes parsing FHIR files (default: CARELENS_INGEST_PROCESSES, else one per CPU core, at most 4).",
        ),
    ) -> None:
        """Ingest files and folders into the lake; bad items are quarantined, the rest goes on.

        Reads FHIR R4 bundles (transaction, collection, searchset) and Bulk Data NDJSON,
        DocumentReference notes and .txt notes (patient from a NAME.meta.json sidecar), DICOM
        headers (pixel data by reference) and VCF/VCF.gz (GRCh38). Files already ingested are
        left alone; an interrupted run can simply be run again. Prints
        {"ingested": {type: n, ..., "notes", "dicom", "variants"}, "quarantined": [{"source",
        "where", "reason"}]} on stdout and "ingested N, quarantined M" on stderr. Exit 0 when
        everything was ingested, 3 when something was quarantined, 2 on usage errors. With
        spare CPU cores, FHIR files are parsed by forked helper processes too (--processes);
        the tables are the same as with one process.

        --zone research --source SRC: de-identified files go into the research lake
        (STORE/research/lake; query it with carelens sql --zone research). The leak audit
        first searches them for every identifier known from SRC (the identified FHIR, DICOM
        or VCF they were made from); on any leak the whole batch is refused, nothing is
        ingested, and the command exits 4 naming how many leaks of which kinds; a clean
        batch's JSON adds "leak_audit": {"leaks": 0, "files_scanned", "identifiers_searched"}.
        Each DICOM instance also passes the burned-in text gate (a text-line detector on every
        frame, OCR only where it fires, an allow-list of annotations such as PORTABLE or AP):
        an instance with other text in its pixels, or pixels that cannot be decoded, is
        quarantined (where "PixelData", a one-line reason without the text; exit 3).
        """
        from carelens.core.output import emit_json
        from carelens.ingest.pipeline import ingest
        from carelens.ingest.research import ingest_research

        if zone == "research" and not source:
            raise UsageError("--zone research needs --source: the identified data the batch was de-identified from")
        if zone == "clinical" and source:
            raise UsageError("--source is for --zone research only")
        if processes is not None and processes < 1:
            raise UsageError("--processes must be at least 1")
        audit = None
        if zone == "research":
            result, audit = ingest_research(paths, source, store, processes)
        else:
            result = ingest(paths, store, processes)
        if format == "json":
            summary = result.summary()
            if audit is not None:
                summary["leak_audit"] = {"leaks": 0, "files_scanned": audit.files_scanned,
                                         "identifiers_searched": dict(audit.identifiers)}  # fmt: skip
            emit_json(summary)
            typer.echo(result.text(), err=True)  # the one-line count, on stderr beside the JSON
        else:
            typer.echo(result.text())
        raise typer.Exit(result.exit_code)
