"""Command-line commands of carelens.record (registered on the main app by carelens.cli)."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path

import typer

from carelens.core import UsageError


class SummaryFormat(StrEnum):
    json = "json"
    markdown = "markdown"
    fhir = "fhir"


class AskFormat(StrEnum):
    json = "json"
    text = "text"


def _write_text(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the main app."""

    @app.command("summarize")
    def summarize_cmd(
        source: str = typer.Argument(..., help="A FHIR bundle/NDJSON file, a folder of them, or a stored patient id."),
        patient: str | None = typer.Option(None, "--patient", help="Patient id when the source holds several."),
        fmt: SummaryFormat = typer.Option(SummaryFormat.json, "--format", help="json, markdown or fhir (IPS Bundle)."),
        out: Path | None = typer.Option(None, "--out", help="Write to this file instead of stdout."),
        notes: bool = typer.Option(True, "--notes/--no-notes", help="Read the notes with NLP and reconcile them."),
        note_limit: int = typer.Option(10, "--note-limit", help="Read the newest N notes (0: all)."),
        narrative_url: str | None = typer.Option(
            None, "--narrative-url", help="OpenAI-compatible chat endpoint for an optional, checked narrative."
        ),
        narrative_model: str = typer.Option("default", "--narrative-model", help="Model name sent to that endpoint."),
    ) -> None:
        """Summarise a patient's record in IPS sections; every item cites its evidence.

        JSON: {"patient", "sections": [{"code", "title", "empty_reason", "items": [{"text", "codes",
        "citations": [{"resource", "note_span"}]}]}], "needs_attention", "dropped"}.
        """
        from carelens.core.output import emit_json, to_json
        from carelens.record.load import load_record
        from carelens.record.summary import summarize_record

        if note_limit < 0:
            raise UsageError("--note-limit must be 0 (all notes) or more")
        from carelens.store.appdb.audit import record_command

        record = load_record(source, patient)
        record_command(None, "cli.summarize", record.patient_id, {"from": "file" if Path(source).exists() else "lake"})
        summary = summarize_record(record, notes=notes, note_limit=note_limit or None)
        if narrative_url:
            from carelens.record.narrative import add_narrative

            add_narrative(summary, url=narrative_url, model=narrative_model)
        if fmt is SummaryFormat.json:
            emit_json(summary, out)
        elif fmt is SummaryFormat.markdown:
            from carelens.record.render import to_markdown

            _write_text(to_markdown(summary), out)
        else:
            from carelens.record.fhir_document import to_ips_bundle

            _write_text(to_json(to_ips_bundle(summary, record)).decode(), out)

    @app.command("ask")
    def ask_cmd(
        source: str = typer.Argument(..., help="A FHIR bundle/NDJSON file, a folder of them, or a stored patient id."),
        question: str = typer.Argument(..., help="The question, in plain words."),
        patient: str | None = typer.Option(None, "--patient", help="Patient id when the source holds several."),
        fmt: AskFormat = typer.Option(AskFormat.json, "--format", help="json or text."),
        top: int = typer.Option(5, "--top", help="How many passages to return."),
        out: Path | None = typer.Option(None, "--out", help="Write to this file instead of stdout."),
        store: Path | None = typer.Option(None, "--store", help="The store whose lake holds a stored patient id."),
    ) -> None:
        """Ask a patient's record: hybrid search (BM25 + sentence embeddings) over notes and
        resources, returning cited passages with scores."""
        from carelens.core.output import emit_json
        from carelens.record.ask import ask

        if top < 1:
            raise UsageError("--top must be 1 or more")
        from carelens.store.appdb.audit import record_command

        answer = ask(source, question, patient=patient, top=top, store=store)
        record_command(store, "cli.ask", answer.patient, {"from": "file" if Path(source).exists() else "lake"})
        if fmt is AskFormat.json:
            emit_json(answer, out)
        else:
            lines = [
                f"{h.score:.3f}  {h.citation.resource}"
                + (f" [{h.citation.note_span[0]}:{h.citation.note_span[1]}]" if h.citation.note_span else "")
                + f"\n    {h.text}"
                for h in answer.passages
            ]
            _write_text("\n".join(lines) or answer.message or "nothing relevant found", out)
