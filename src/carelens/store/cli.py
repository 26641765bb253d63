"""Command-line commands of carelens.store (registered on the main app by carelens.cli)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

import typer

from carelens.core.errors import InputError
from carelens.core.options import choice, format_option, store_option


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the main app."""

    @app.command("sql")
    def sql_command(
        query: str = typer.Argument(..., help='SQL, e.g. "SELECT resource_type, count(*) FROM resources GROUP BY 1".'),
        store: Path | None = store_option(),
        format: str = format_option("json", ("json", "csv", "table"), "json (a list of row objects), csv or table."),
        zone: str = choice(
            "clinical",
            "--zone",
            ("clinical", "research"),
            "clinical (identified lake, default) or research (STORE/research/lake).",
        ),
    ) -> None:
        """Query the lake with SQL (DuckDB); --zone research queries the de-identified research lake.

        Tables: resources, notes, dicom_instances (views dicom_series, dicom_studies),
        variants, quarantine, sources, and one view per FHIR resource type ("Patient",
        "Observation", ...). patient_identifiers lists each Patient's identifiers (system,
        value); dicom_patient_links maps a DICOM PatientID (often an MRN) to Patient.id.
        resources.json holds each resource as JSON with references as Type/id; use DuckDB's
        JSON functions, e.g. json ->> '$.status'. --zone research runs SELECT only, in a DuckDB
        sandbox that reads the research lake's files and nothing else (no other file, ATTACH,
        COPY, extension or SET).
        """
        from carelens.core.config import research_store
        from carelens.core.output import emit_json
        from carelens.store.lake import Lake

        lake = Lake(research_store(store) if zone == "research" else store)
        if not lake.root.is_dir():
            hint = "carelens ingest --zone research" if zone == "research" else "carelens ingest"
            raise InputError(f"no lake in {lake.store} (run {hint} first, or give --store)")
        if zone == "research":  # a sandbox: SELECT only, over the research lake's files only
            from carelens.store.sandbox import sandboxed_query

            table = sandboxed_query(lake, query)
        else:
            table = lake.query(query)
        rows = table.to_pylist()
        if zone == "clinical":  # identified data: audited (the query's hash, never its text)
            import hashlib

            from carelens.store.appdb.audit import record_command

            digest = hashlib.sha256(query.encode()).hexdigest()
            record_command(store, "cli.sql", detail={"zone": zone, "query_sha256": digest, "rows": len(rows)})
        if format == "json":
            emit_json(rows)
        elif format == "csv":
            writer = csv.writer(sys.stdout, lineterminator="\n")
            writer.writerow(table.column_names)
            writer.writerows([[_cell(r[c]) for c in table.column_names] for r in rows])
        else:
            _print_table(table.column_names, rows)


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _print_table(columns: list[str], rows: list[dict[str, Any]], width: int = 60) -> None:
    cells = [[_cell(r[c]).replace("\n", " ")[:width] for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    typer.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    typer.echo("  ".join("-" * w for w in widths))
    for row in cells:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    typer.echo(f"({len(rows)} rows)")
