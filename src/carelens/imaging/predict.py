"""Reading images with a model package: checks, calibrated probability, conformal set, heatmap, provenance."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from carelens.core import BatchResult, Evidence, InputError, Provenance, content_hash
from carelens.imaging.checks import check_image, distribution_check
from carelens.imaging.conformal import prediction_sets
from carelens.imaging.engine import logits_to_proba, predict_logits, test_time_views
from carelens.imaging.io import LoadedImage, prepare_image, read_image
from carelens.imaging.package import ModelPackage
from carelens.imaging.saliency import explain, overlay_png
from carelens.imaging.shift import OUTSIDE

REFER = "uncertain: refer"


@dataclass
class ImagePrediction:
    """What the model says about one image, with its uncertainty and evidence (JSON-ready via :meth:`to_dict`)."""

    source: str
    input_hash: str
    finding: str | list[str]
    probability: float
    probability_of: str
    probabilities: dict[str, float]
    conformal_set: list[str] | None
    conformal_target: float | None
    uncertain_refer: bool
    status: str
    heatmap: str | None
    heatmap_withheld: str | None
    saliency_spearman_vs_random: float | None
    distribution: dict[str, float]
    model: dict[str, str]
    evidence: Evidence
    ood_distance: float | None = None
    outside_validated_population: bool = False
    image: LoadedImage | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "image"}
        out["evidence"] = self.evidence.model_dump(mode="json")
        return out


def predict_image(
    package: ModelPackage, path: str | Path, heatmap_dir: Path | None = None, explain_maps: bool = True
) -> ImagePrediction:
    """Predict one image file; raise :class:`InputError` (one-line reason) when it cannot or should not be read."""
    path = Path(path)
    prep = package.preprocessing
    image = read_image(path)
    check_image(image, prep)
    x = prepare_image(image.pixels, int(prep["image_size"]), int(prep["channels"]))
    distribution = distribution_check(x, prep)
    logits = predict_logits(package.model, x[None], views=test_time_views(prep))
    proba = logits_to_proba(logits, package.task, package.temperature)[0]
    labels = package.labels
    probabilities = {name: round(float(p), 6) for name, p in zip(labels, proba, strict=True)}
    conformal = package.conformal
    if package.task == "multilabel":
        finding: str | list[str] = [name for name, p in probabilities.items() if p >= 0.5]
        probability = float(proba.max())
        probability_of = labels[int(proba.argmax())]
        cset, target, refer = None, None, False
        cls = int(proba.argmax())
    else:
        if package.task == "binary":
            cls = int(proba[1] >= package.threshold)
            probability, probability_of = float(proba[1]), labels[1]
        else:
            cls = int(proba.argmax())
            probability, probability_of = float(proba[cls]), labels[cls]
        finding = labels[cls]
        cset = [labels[k] for k in prediction_sets(proba[None], conformal)[0]] if conformal else None
        target = conformal.target if conformal else None
        refer = cset is not None and len(cset) != 1
    ood_distance, outside = None, False
    if package.shift is not None:
        ood_distance = float(package.shift.image_scores(package.model, x[None])[0])
        outside = ood_distance > package.shift.threshold
    status = REFER if refer else (finding if isinstance(finding, str) else ", ".join(finding) or "no finding")
    if outside:  # the read is not shown as a finding: the image is unlike those the model was validated on
        status, refer = OUTSIDE, True
    heatmap_path, withheld, rho = None, None, None
    if not explain_maps:
        withheld = "heatmap not requested"
    elif heatmap_dir is None:
        withheld = "heatmap not written: no output folder given (--out)"
    else:
        sal = explain(package.model, x, package.meta["saliency"]["layer"], class_idx=cls)
        rho = sal.spearman_vs_random
        if sal.heatmap is not None:
            png, legend = heatmap_dir / f"{path.stem}.heatmap.png", f"Grad-CAM: evidence for {labels[cls]}"
            heatmap_path = str(overlay_png(x, sal.heatmap, png, title=status, legend=legend))
        else:
            withheld = sal.reason
    input_hash = content_hash(path.read_bytes())
    model = {"id": package.id, "version": package.version, "name": str(package.meta.get("name", ""))}
    evidence = Evidence(
        confidence=probability,
        provenance=Provenance(model_id=package.id, model_version=package.version, input_hash=input_hash),
    )
    return ImagePrediction(
        source=path.name,
        input_hash=input_hash,
        finding=finding,
        probability=round(probability, 6),
        probability_of=probability_of,
        probabilities=probabilities,
        conformal_set=cset,
        conformal_target=target,
        uncertain_refer=refer,
        status=status,
        heatmap=heatmap_path,
        heatmap_withheld=withheld,
        saliency_spearman_vs_random=None if rho is None else round(rho, 4),
        distribution=distribution,
        model=model,
        evidence=evidence,
        ood_distance=None if ood_distance is None else round(ood_distance, 4),
        outside_validated_population=outside,
        image=image,
    )


def predict_files(
    package: ModelPackage, paths: list[Path], heatmap_dir: Path | None = None, explain_maps: bool = True
) -> tuple[list[ImagePrediction], BatchResult]:
    """Predict each file; a file that cannot be read or fails a check is quarantined and the batch goes on."""
    from carelens.core.progress import progress

    batch = BatchResult()
    results: list[ImagePrediction] = []
    for path in progress(paths, desc="predict", unit="image"):
        try:
            results.append(predict_image(package, path, heatmap_dir, explain_maps))
            batch.done["images"] += 1
        except InputError as err:
            batch.quarantine(Path(path).name, "", err.reason)
    return results, batch


def expand_inputs(inputs: list[Path]) -> list[Path]:
    """Files as given; folders expanded to the image files inside them (sorted)."""
    from carelens.imaging.data import IMAGE_SUFFIXES

    out: list[Path] = []
    for item in inputs:
        if item.is_dir():
            out += sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(item)
    return out


def mean_probability(predictions: list[ImagePrediction]) -> float:
    """Mean reported probability (a small summary for batch output)."""
    return float(np.mean([p.probability for p in predictions])) if predictions else float("nan")
