"""Command-line commands of carelens.models: ``carelens models list|show|export|register|verify|monitor``."""

from __future__ import annotations

from pathlib import Path

import typer

from carelens.core.errors import InputError
from carelens.core.options import format_option, store_option
from carelens.core.output import emit_json

models = typer.Typer(help="The model registry: list, show and export model cards.", no_args_is_help=True)

StoreOpt = store_option()


def _registry(store: Path | None):
    from carelens.models.registry import Registry

    return Registry(store)


@models.command("list")
def list_models(
    fmt: str = format_option("json", ("json", "table"), "json (default) or table."),
    store: Path | None = StoreOpt,
) -> None:
    """List registered models, newest first (json: {"models": [{"id", "name", "version", ...}]})."""
    rows = _registry(store).list()
    if fmt == "json":
        emit_json({"models": rows})
        return
    for r in rows:
        metrics = " ".join(f"{k}={v}" for k, v in r["metrics"].items())
        typer.echo(
            f"{r['id']}  {r['name']} v{r['version']}  {r['arch']}  {r['source']}  {metrics}  records={r['records']}"
        )


@models.command("show")
def show(
    model: str = typer.Argument(..., help="Model id, unique id prefix, or name (newest)."),
    fmt: str = format_option("json", ("json", "html"), "json or html."),
    store: Path | None = StoreOpt,
) -> None:
    """Show one model's entry: lineage, metrics with CIs, subgroups, HTI-1 attributes, records."""
    _export(model, fmt, None, store)


@models.command("export")
def export(
    model: str = typer.Argument(..., help="Model id, unique id prefix, or name (newest)."),
    fmt: str = format_option("json", ("json", "html"), "json (with the 31 HTI-1 attributes) or html (model card)."),
    out: Path | None = typer.Option(None, "--out", help="Write to this file instead of stdout."),
    store: Path | None = StoreOpt,
) -> None:
    """Export a model card: JSON with "hti1" (31 attributes, missing ones null and listed) or HTML."""
    _export(model, fmt, out, store)


def _export(model: str, fmt: str, out: Path | None, store: Path | None) -> None:
    data = _registry(store).export(model)
    if fmt == "json":
        emit_json(data, out)
        return
    from carelens.models.card import render_html

    html = render_html(data)
    if out is None:
        typer.echo(html)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(html, encoding="utf-8")


@models.command("package")
def package_cmd(
    model: str = typer.Argument(..., help="Model id, unique id prefix, or name (newest)."),
    out: Path = typer.Option(..., "--out", help="Folder to write the model package to."),
    site_state: Path | None = typer.Option(
        None, "--site-state", help="A FedBN model: this site's own layers (network/sites/<site>/site-local/<run>.pt)."
    ),
    store: Path | None = StoreOpt,
) -> None:
    """Write a registered image model as a package folder (for image predict, evaluate and adapt)."""
    from carelens.models.package import write_package

    emit_json({"out": str(write_package(_registry(store), model, out, site_state))})


@models.command("register")
def register_cmd(
    model_dir: Path = typer.Argument(..., help="A model package folder (model.json + weights.pt)."),
    store: Path | None = StoreOpt,
) -> None:
    """Register a trained model package; registering the same package again is a no-op."""
    entry = _registry(store).register(model_dir)
    emit_json({"id": entry.id, "name": entry.name, "version": entry.version})


@models.command("verify")
def verify(
    model: str = typer.Argument(..., help="Model id, unique id prefix, or name."),
    store: Path | None = StoreOpt,
) -> None:
    """Check that an entry's weights, metadata and records are unchanged since written (exit 1 if not)."""
    problems = _registry(store).verify(model)
    if problems:
        raise InputError(f"model {model}: " + "; ".join(problems))
    typer.echo("ok")


@models.command("monitor")
def monitor(
    model: str = typer.Argument(..., help="Model id, unique id prefix, or name (newest)."),
    store: Path | None = StoreOpt,
) -> None:
    """Record this site's validity and fairness monitoring of a model (clinicians' accept/edit/reject of its
    outputs in the workspace, per subgroup, small cells suppressed) as a registry record; run it on a
    schedule. Prints the record; the model card's HTI-1 monitoring attributes read the newest."""
    from carelens.server.monitoring import record_monitoring

    emit_json(record_monitoring(store, model))


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the main app."""
    app.add_typer(models, name="models")
