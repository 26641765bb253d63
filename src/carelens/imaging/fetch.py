"""Downloading a MedMNIST data set (for users with internet; carelens never downloads at run time otherwise)."""

from __future__ import annotations

from pathlib import Path

from carelens.core import InputError, UsageError

MEDMNIST_2D = (
    "pathmnist",
    "chestmnist",
    "dermamnist",
    "octmnist",
    "pneumoniamnist",
    "retinamnist",
    "breastmnist",
    "bloodmnist",
    "tissuemnist",
    "organamnist",
    "organcmnist",
    "organsmnist",
)
SIZES = (28, 64, 128, 224)
# MedMNIST+ on Zenodo (CC BY 4.0): 28 px files are NAME.npz, larger ones NAME_SIZE.npz.
ZENODO = "https://zenodo.org/records/10519652/files/{file}?download=1"


def medmnist_url(name: str, size: int = 28) -> str:
    """The download address of a 2-D MedMNIST set at ``size`` px."""
    if name not in MEDMNIST_2D:
        raise UsageError(f"unknown MedMNIST set {name!r}: choose one of {', '.join(MEDMNIST_2D)}")
    if size not in SIZES:
        raise UsageError(f"MedMNIST sizes are {', '.join(map(str, SIZES))} px")
    return ZENODO.format(file=f"{name}.npz" if size == 28 else f"{name}_{size}.npz")


def fetch_medmnist(name: str, out_dir: Path, size: int = 28) -> Path:
    """Download ``name`` into ``out_dir`` (skipped when already there) and check it loads; returns the file."""
    import httpx
    import numpy as np
    from tqdm import tqdm

    url = medmnist_url(name, size)
    target = out_dir / (f"{name}.npz" if size == 28 else f"{name}_{size}.npz")
    if target.exists():
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=60) as response:
            response.raise_for_status()
            total = int(response.headers.get("content-length", 0)) or None
            with partial.open("wb") as fh, tqdm(total=total, unit="B", unit_scale=True, desc=name) as bar:
                for chunk in response.iter_bytes():
                    fh.write(chunk)
                    bar.update(len(chunk))
    except httpx.HTTPError as err:
        partial.unlink(missing_ok=True)
        raise InputError(f"download of {name} failed ({type(err).__name__}): check the internet connection") from None
    try:
        with np.load(partial) as data:
            if "train_images" not in data.files:
                raise InputError(f"downloaded {name} is not a MedMNIST file (no train_images)")
    except (OSError, ValueError):
        partial.unlink(missing_ok=True)
        raise InputError(f"downloaded {name} is not a readable .npz file") from None
    partial.rename(target)
    return target
