"""Command-line commands of carelens.imaging (registered on the main app by carelens.cli)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from carelens.core import UsageError
from carelens.core.options import choice, format_option
from carelens.core.output import emit_json
from carelens.imaging.clocks import BUDGET_CLOCKS

image_app = typer.Typer(help="Train, evaluate and run image models (MONAI).", no_args_is_help=True)
data_app = typer.Typer(help="Public data sets for imaging (needs internet).", no_args_is_help=True)
fetch_app = typer.Typer(help="Download a public data set.", no_args_is_help=True)


def budget_clock_option() -> Any:
    """``--budget-clock``: the clock ``--time-budget`` is measured on (:data:`BUDGET_CLOCKS`)."""
    return choice(
        "wall",
        "--budget-clock",
        tuple(BUDGET_CLOCKS),
        "What --time-budget counts: wall (elapsed seconds; a busy machine fits fewer epochs) or cpu (this process's "
        "CPU seconds, all threads: the same epochs under load).",
    )


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the main app."""
    app.add_typer(image_app, name="image")
    data_app.add_typer(fetch_app, name="fetch")
    app.add_typer(data_app, name="data")


@image_app.command("train")
def train_cmd(
    data: Path = typer.Option(..., "--data", help="A MedMNIST-style .npz file or a folder of images with labels.csv."),
    out: Path = typer.Option(..., "--out", help="Folder for the model package."),
    time_budget: float | None = typer.Option(None, "--time-budget", help="Budget for training, s on --budget-clock."),
    budget_clock: str = budget_clock_option(),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, data and epochs: same model)."),
    arch: str = typer.Option("cnn", "--arch", help="cnn, resnet18, resnet34, resnet50 or densenet121."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or auto (CUDA when present)."),
    max_epochs: int = typer.Option(60, "--max-epochs", help="Most epochs to train."),
    patience: int = typer.Option(10, "--patience", help="Stop after this many epochs without a better validation AUC."),
    batch_size: int = typer.Option(64, "--batch-size", help="Images per batch."),
    lr: float = typer.Option(3e-3, "--lr", help="Peak learning rate (AdamW, cosine schedule)."),
    coverage: float = typer.Option(0.90, "--coverage", help="Target coverage of the conformal prediction sets."),
    conformal: str = typer.Option(
        "aps",
        "--conformal",
        help="Conformal score: aps (mass ranked above the label; never an empty set) or lac (1 - probability).",
    ),
    modality: list[str] | None = typer.Option(None, "--modality", help="DICOM modality the model accepts (repeat)."),
    version: str = typer.Option("1.0.0", "--version", help="Version recorded in the model package."),
    threads: int | None = typer.Option(
        None, "--threads", help="CPU threads for torch (1 is best on busy shared cores)."
    ),
    image_size: int | None = typer.Option(
        None, "--image-size", help="Train at N x N px, 28 to 512 (.npz images are resized); default 28 or as stored."
    ),
    mixup: float = typer.Option(0.0, "--mixup", min=0.0, help="Mixup's Beta(a, a) parameter (0: no mixup)."),
) -> None:
    """Train an image classifier and write a model package (weights, model.json, MODEL_CARD.md, plots)."""
    from carelens.imaging.trainer import TrainConfig, train

    if device not in ("cpu", "cuda", "auto"):
        raise UsageError("--device must be cpu, cuda or auto")
    cfg = TrainConfig(
        arch=arch,
        seed=seed,
        time_budget=time_budget,
        max_epochs=max_epochs,
        patience=patience,
        batch_size=batch_size,
        lr=lr,
        device=device,
        conformal_target=coverage,
        conformal_method=conformal,
        modalities=list(modality) if modality else None,
        version=version,
        threads=threads,
        image_size=image_size,
        mixup=mixup,
    )
    meta = train(data, out, cfg, BUDGET_CLOCKS[budget_clock])
    emit_json(
        {
            "id": meta["id"],
            "version": meta["version"],
            "path": str(out),
            "arch": meta["arch"],
            "labels": meta["labels"],
            "temperature": meta["calibration"]["temperature"],
            "operating_threshold": meta["operating_threshold"],
            "conformal": meta["conformal"],
            "validation": {k: v for k, v in meta["metrics"]["validation"].items() if k != "ci"},
            "training": {k: v for k, v in meta["training"].items() if k != "history"},
        }
    )


@image_app.command("evaluate")
def evaluate_cmd(
    model_dir: Path = typer.Argument(..., help="A model package folder."),
    data: Path = typer.Option(..., "--data", help="A .npz file or a folder of images with labels.csv."),
    split: str = typer.Option("test", "--split", help="train, val or test."),
    fmt: str = format_option("json", ("json", "markdown", "html"), "json, markdown or html."),
    out: Path | None = typer.Option(None, "--out", help="Folder for the report and the ROC/reliability plots."),
) -> None:
    """Evaluate a model package: AUC, accuracy, sensitivity, specificity (95% CIs), ECE, conformal coverage."""
    from carelens.imaging.evaluate import evaluate, to_html, to_markdown
    from carelens.imaging.package import load_package

    result = evaluate(load_package(model_dir), data, split, out)
    if fmt == "json":
        emit_json(result, out / "evaluation.json" if out else None)
        return
    text = to_markdown(result) if fmt == "markdown" else to_html(result)
    if out is None:
        typer.echo(text, nl=False)
    else:
        (out / ("evaluation.md" if fmt == "markdown" else "evaluation.html")).write_text(text, encoding="utf-8")


@image_app.command("check-site")
def check_site_cmd(
    model_dir: Path = typer.Argument(..., help="A model package folder."),
    data: Path = typer.Option(..., "--data", help="A .npz file or a folder of images with labels.csv."),
    split: str = choice("all", "--split", ("train", "val", "test", "all"), "train, val, test or all."),
    fmt: str = format_option("json", ("json",), "json."),
    out: Path | None = typer.Option(None, "--out", help="Folder for a copy of the JSON and the distance plot."),
) -> None:
    """Before any read is shown at a new site: how many of its images lie outside the model's validated
    population (class-conditional Mahalanobis score of the network's and the image's description), and the verdict
    matches/shifted."""
    from carelens.imaging.package import load_package
    from carelens.imaging.site import check_site

    plot = (out or Path(".")) / "check-site.png"
    result = check_site(load_package(model_dir), data, split, plot)
    if out:
        emit_json(result, out / "check-site.json")
    emit_json(result)


@image_app.command("validate")
def validate_cmd(
    model_dir: Path = typer.Argument(..., help="A model package folder."),
    data: Path = typer.Option(..., "--data", help="The site's labelled images: a folder with labels.csv, or .npz."),
    site: str | None = typer.Option(None, "--site", help="The site's name (default: from the data path)."),
    split: str = choice("test", "--split", ("train", "val", "test"), "train, val or test."),
    register: bool = typer.Option(True, "--register/--no-register", help="Record the result in the model registry."),
) -> None:
    """Validate a model at a site without changing it: check-site plus evaluation on the site's held-out
    patients, judged against the local-validation criteria; recorded in the registry, where the workspace
    reads it (a model's reads are marked "not validated at this site" until a local validation has passed).
    Exit 0 when it passed, 1 when it did not (the JSON says why)."""
    from carelens.imaging.site import validate_at_site

    result = validate_at_site(model_dir, data, site, split, register=register)
    emit_json(result)
    if not result["passed"]:
        raise typer.Exit(1)


@image_app.command("adapt")
def adapt_cmd(
    model_dir: Path = typer.Argument(..., help="The model package to adapt."),
    data: Path = typer.Option(..., "--data", help="The site's labelled images: a folder with labels.csv, or .npz."),
    out: Path = typer.Option(..., "--out", help="Folder for the adapted model package."),
    time_budget: float | None = typer.Option(
        None, "--time-budget", help="Budget for fine-tuning, s on --budget-clock (shared by the cross-fitting fits)."
    ),
    budget_clock: str = budget_clock_option(),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    image_size: int | None = typer.Option(None, "--image-size", help="Adapt at N px (default: the model's size)."),
    site: str | None = typer.Option(None, "--site", help="The site's name (default: from the data path)."),
    register: bool = typer.Option(True, "--register/--no-register", help="Add the result to the model registry."),
    folds: int = typer.Option(
        4, "--folds", min=0, max=10, help="Cross-fitting folds (by patient) for calibration; 0: validation alone."
    ),
    start: str = typer.Option(
        "parent",
        "--start",
        help="parent (fine-tune its weights), scratch (fresh weights, trained at the site) or auto (the start whose "
        "cross-fitted out-of-fold AUC is higher).",
    ),
) -> None:
    """Adapt a model to a site: fine-tune on its labelled images when it has enough, recalibrate (temperature,
    threshold, conformal thresholds) on out-of-fold predictions of all its training patients (cross-fitting) and
    its validation split, refit the shift reference, and validate on its held-out patients (a new registry entry)."""
    from carelens.imaging.adapt import adapt

    if image_size is not None and not 28 <= image_size <= 512:
        raise UsageError("--image-size must be between 28 and 512")
    meta = adapt(
        model_dir, data, out, time_budget, seed, image_size, site,
        register=register, folds=folds, start=start, clock=BUDGET_CLOCKS[budget_clock],
    )  # fmt: skip
    emit_json(
        {
            "id": meta["id"],
            "registry_id": meta.get("registry_id"),
            "version": meta["version"],
            "path": str(out),
            "lineage": meta["lineage"],
            "local_validation": meta["site_validations"][0],
        }
    )


@image_app.command("predict")
def predict_cmd(
    model_dir: Path = typer.Argument(..., help="A model package folder."),
    images: list[Path] = typer.Argument(..., help="DICOM, PNG or JPEG files (or folders of them)."),
    fmt: str = format_option("json", ("json", "dicom-sr", "fhir"), "json, dicom-sr or fhir."),
    out: Path | None = typer.Option(None, "--out", help="Folder for per-image results and heatmaps."),
    heatmaps: bool = typer.Option(True, "--heatmaps/--no-heatmaps", help="Grad-CAM heatmaps (sanity-checked)."),
) -> None:
    """Read images: finding, calibrated probability, conformal set ("uncertain: refer"), heatmap, provenance.

    Exit 0 when every image was read, 3 when some were refused (each with its reason).
    """
    from carelens.core.output import to_json
    from carelens.imaging.package import load_package
    from carelens.imaging.predict import expand_inputs, predict_files
    from carelens.imaging.reports import fhir_diagnostic_report, validate_fhir, write_dicom_sr

    if fmt == "dicom-sr" and out is None:
        raise UsageError("--format dicom-sr writes files: give --out DIR")
    package = load_package(model_dir)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    paths = expand_inputs(list(images))
    by_name = {p.name: p for p in paths}
    results, batch = predict_files(package, paths, out, explain_maps=heatmaps)
    written: list[str] = []
    reports = []
    for pred in list(results):
        source = by_name[pred.source]
        if fmt == "json" and out is not None:
            path = out / f"{source.stem}.json"
            path.write_bytes(to_json(pred.to_dict()))
            written.append(str(path))
        elif fmt == "dicom-sr":
            from carelens.core import InputError

            try:
                written.append(str(write_dicom_sr(pred, source, package, out / f"{source.stem}.sr.dcm")))  # type: ignore[operator]
            except InputError as err:
                results.remove(pred)
                batch.done["images"] -= 1
                batch.quarantine(pred.source, "dicom-sr", err.reason)
        elif fmt == "fhir":
            report = fhir_diagnostic_report(pred, package)
            validate_fhir(report)
            reports.append(report)
            if out is not None:
                path = out / f"{source.stem}.fhir.json"
                path.write_bytes(to_json(report))
                written.append(str(path))
    summary: dict = {
        "model": {"id": package.id, "version": package.version},
        "predictions": [p.to_dict() for p in results],
        "quarantined": [q.model_dump() for q in batch.quarantined],
        "written": written,
    }
    if fmt == "fhir":
        summary["reports"] = reports
    emit_json(summary)
    raise typer.Exit(batch.exit_code)


@fetch_app.command("medmnist")
def fetch_medmnist_cmd(
    name: str = typer.Argument(..., help="A 2-D MedMNIST set, e.g. pneumoniamnist."),
    out: Path = typer.Option(Path("data"), "--out", help="Folder to save the .npz in."),
    size: int = typer.Option(28, "--size", help="Image size: 28, 64, 128 or 224."),
) -> None:
    """Download a MedMNIST data set (CC BY 4.0) from Zenodo; needs internet."""
    from carelens.imaging.fetch import fetch_medmnist

    path = fetch_medmnist(name, out, size)
    emit_json({"name": name, "size": size, "path": str(path)})
