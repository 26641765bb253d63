"""Input checks before inference: refuse, with a reason, an image the model was not made for."""

from __future__ import annotations

from typing import Any

import numpy as np

from carelens.core import InputError
from carelens.imaging.io import LoadedImage

MAX_ASPECT = 2.0


def check_image(image: LoadedImage, preprocessing: dict[str, Any]) -> None:
    """Raise :class:`InputError` when ``image`` does not fit the model: too small or too
    elongated, wrong number of channels, photometric interpretation, modality or body part (DICOM
    BodyPartExamined, when the file has one) the model was not trained on."""
    h, w = image.pixels.shape[:2]
    size = int(preprocessing["image_size"])
    if min(h, w) < size:
        raise InputError(f"image is {h}x{w} px, smaller than the model's {size}x{size} input")
    if max(h, w) / min(h, w) > MAX_ASPECT:
        raise InputError(f"image aspect ratio {max(h, w) / min(h, w):.1f} is too far from square for this model")
    channels = int(preprocessing["channels"])
    if image.channels != channels:
        kind = "colour" if image.channels == 3 else "greyscale"
        raise InputError(f"{kind} image ({image.channels} channel(s)) but the model reads {channels} channel(s)")
    allowed_photometric = preprocessing.get("photometric") or []
    if image.kind == "dicom" and allowed_photometric and image.photometric not in allowed_photometric:
        raise InputError(f"photometric interpretation {image.photometric} is not one the model was trained on")
    modalities = preprocessing.get("modalities")
    if image.kind == "dicom" and modalities and image.modality not in modalities:
        raise InputError(
            f"modality {image.modality or 'missing'} is not one the model was trained on ({', '.join(modalities)})"
        )

    body_parts = preprocessing.get("body_parts")
    if image.kind == "dicom" and body_parts and image.body_part and image.body_part not in body_parts:
        raise InputError(f"body part {image.body_part} is not one the model was trained on ({', '.join(body_parts)})")


def distribution_check(model_input: np.ndarray, preprocessing: dict[str, Any]) -> dict[str, float]:
    """z-scores of the image's mean and contrast against the training images; raise
    :class:`InputError` when either lies beyond the package's out-of-distribution threshold."""
    stats = preprocessing.get("pixel_stats")
    if not stats:
        return {}
    z_mean = (float(model_input.mean()) - stats["mean_of_means"]) / stats["std_of_means"]
    z_std = (float(model_input.std()) - stats["mean_of_stds"]) / stats["std_of_stds"]
    limit = float(preprocessing.get("ood_z_threshold", 5.0))
    worst = max(abs(z_mean), abs(z_std))
    if worst > limit:
        which = "brightness" if abs(z_mean) >= abs(z_std) else "contrast"
        raise InputError(
            f"pixel statistics far from the training images ({which} z-score {worst:.1f} > {limit:g}): "
            "likely not the kind of image the model was trained on"
        )
    return {"z_mean": round(z_mean, 3), "z_std": round(z_std, 3)}
