"""carelens.imaging: image data, MONAI networks, training, calibration, conformal sets, saliency and reports.

The public API is imported lazily (torch and MONAI load on first use), so that the command
line starts fast.
"""

from __future__ import annotations

from carelens.core.lazy import lazy_exports

_EXPORTS = {
    "ImageArrays": "carelens.imaging.data",
    "detect_task": "carelens.imaging.data",
    "load_npz": "carelens.imaging.data",
    "load_folder": "carelens.imaging.data",
    "load_dataset": "carelens.imaging.data",
    "LoadedImage": "carelens.imaging.io",
    "read_image": "carelens.imaging.io",
    "read_dicom": "carelens.imaging.io",
    "prepare_image": "carelens.imaging.io",
    "ARCHS": "carelens.imaging.networks",
    "build_model": "carelens.imaging.networks",
    "train_one_epoch": "carelens.imaging.engine",
    "predict_logits": "carelens.imaging.engine",
    "predict_proba": "carelens.imaging.engine",
    "logits_to_proba": "carelens.imaging.engine",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
