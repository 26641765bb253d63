"""Command-line commands of carelens.demo (registered on the main app by carelens.cli)."""

from __future__ import annotations

from pathlib import Path

import typer

from carelens.core.errors import UsageError
from carelens.core.options import store_option


def demo(
    patients: int = typer.Option(20, "--patients", help="How many synthetic patients to generate."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed writes byte-identical files."),
    out: Path = typer.Option(Path("carelens-demo"), "--out", help="Folder for the generated cohort."),
    store: Path | None = store_option(),
    no_serve: bool = typer.Option(False, "--no-serve", help="Stop after the last stage instead of serving."),
    generate_only: bool = typer.Option(False, "--generate-only", help="Only write the cohort files."),
    image_epochs: int = typer.Option(
        2, "--image-epochs", help="Epochs for training the demo image model (seeded: the same model on any machine)."
    ),
    image_budget: float | None = typer.Option(
        None, "--image-budget", help="At most this many seconds for training the demo image model (default: no cap)."
    ),
    skip: list[str] = typer.Option(
        [],
        "--skip",
        help="A stage to leave out (repeat): ingest, deidentify, summarize, imaging, genomics, models or users.",
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address the workspace listens on."),
    port: int = typer.Option(8000, "--port", help="TCP port of the workspace."),
) -> None:
    """Generate the synthetic demo cohort, run every stage on it, and serve the clinician workspace.

    Stages: generate, ingest, de-identify, summarize, image model (train + read the radiographs),
    genomics (pharmacogenomics + secondary findings), model registry, demo users (one-time
    passwords on stderr), then serve (unless --no-serve or --generate-only). Progress goes to
    stderr, a JSON summary of every stage to stdout. Without CARELENS_SECRET_FILE the de-identification
    uses a demo site secret kept in the cohort folder (never in the store).
    """
    from carelens.core.config import load_settings
    from carelens.core.output import emit_json
    from carelens.demo.pipeline import DemoOptions, run_demo, say

    if patients < 1:
        raise UsageError("--patients must be at least 1")
    if image_epochs < 1:
        raise UsageError("--image-epochs must be at least 1")
    if image_budget is not None and image_budget <= 0:
        raise UsageError("--image-budget must be positive")
    root = store or load_settings().store
    options = DemoOptions(
        out=out,
        store=root,
        patients=patients,
        seed=seed,
        image_epochs=image_epochs,
        image_budget_s=image_budget,
        generate_only=generate_only,
        skip=frozenset(skip),
    )
    summary = run_demo(options)
    emit_json(summary)
    if no_serve or generate_only:
        return
    from carelens.demo.pipeline import serve

    say("serving the workspace (Ctrl-C to stop); log in with the demo users above")
    serve(root, host, port)


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the main app."""
    app.command("demo")(demo)
