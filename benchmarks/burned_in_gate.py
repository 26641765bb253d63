# ruff: noqa: E501
"""Benchmark: the research zone's burned-in text gate (``carelens.privacy.burned_in``) on real
radiographs and on burned-in canaries planted on them.

False-positive rate: the share of real radiographs (NIH ChestX-ray14 adult set, 256 px as shared
and enlarged 4x to 1024 px so that their own annotations, PORTABLE, AP, L, are at a clinical
size; the RSNA CR DICOM; the NIH 512 px PNG) the gate refuses. Miss rate: the share of canary
images it lets pass, a canary being a fake name, record number or date burned onto a real
radiograph in one of the DejaVu fonts, at a size, orientation (0, 90, 270 degrees) and contrast
(white, grey, dark on the image, dark on a light label, light on a dark label). The NIH images
are split by patient (the number before ``_`` in the file name, by a hash): the gate's constants
were chosen looking at the ``fit`` half only and the ``held-out`` half is reported apart; the
canary fonts are split too (Sans and Mono for fit, Serif and the condensed and bold faces held out).
Wall seconds per image include tesseract; the machine load is printed beside them.

    .venv/bin/python benchmarks/burned_in_gate.py [--images 120] [--canaries 240] [--write]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from carelens.core.config import shared_data_dir
from carelens.privacy.burned_in import gate_pixels, to_uint8

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FIT_FONTS = ("DejaVuSans.ttf", "DejaVuSansMono.ttf")
HELD_FONTS = ("DejaVuSerif.ttf", "DejaVuSansCondensed.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif-Bold.ttf",
              "DejaVuSansMono-Bold.ttf")  # fmt: skip
CONTRASTS = ("white", "grey", "dark", "dark on light label", "light on dark label")
GIVEN = ("JANE", "Maria", "ROBERT", "Wei", "Olusegun", "Anna", "KRZYSZTOF", "Fatima", "Liam", "Sofia")
FAINT = 32  # grey levels: a canary whose ink differs from the image by less is near invisible (dark on black)
FAMILY = ("DOE", "Garcia", "SMITH", "Nguyen", "Adeyemi", "Kowalski", "O'BRIEN", "Haddad", "Murphy", "Rossi")


def held_out(name: str) -> bool:
    """The patient's half (the ChestX-ray14 patient number, hashed)."""
    return hashlib.sha256(name.split("_")[0].encode()).digest()[0] % 2 == 1


def canary_text(rng: random.Random) -> str:
    g, f = rng.choice(GIVEN), rng.choice(FAMILY)
    return rng.choice((
        f"{f}^{g}", f"{f}, {g}", f"{g} {f}", f"MRN {rng.randint(10**6, 10**8)}", f"ID: {rng.randint(10**5, 10**7)}",
        f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/{rng.randint(1930, 2010)}", f"{f} {rng.randint(10**5, 10**7)}",
        f"DOB {rng.randint(1930, 2010)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
    ))  # fmt: skip


def plant(img: Any, text: str, font: str, size: int, rotation: int, contrast: str, rng: random.Random) -> Any:
    """``img`` (8-bit grey) with ``text`` burned in near an edge."""
    face = ImageFont.truetype(str(FONT_DIR / font), size)
    _left, _top, right, bottom = face.getbbox(text)
    pad = max(2, size // 4)
    ink = Image.new("L", (right + 2 * pad, bottom + 2 * pad), 0)
    ImageDraw.Draw(ink).text((pad, pad), text, font=face, fill=255)
    label = Image.new("L", ink.size, 255)
    ink, label = ink.rotate(rotation, expand=True), label.rotate(rotation, expand=True)
    alpha = np.asarray(ink, np.float32) / 255
    box = np.asarray(label) > 127
    h, w = alpha.shape
    out = img.astype(np.float32)
    if h >= out.shape[0] - 4 or w >= out.shape[1] - 4:
        return None
    margin = max(2, out.shape[0] // 40)
    y = rng.choice((margin, out.shape[0] - h - margin, rng.randint(margin, out.shape[0] - h - margin)))
    x = (
        rng.choice((margin, out.shape[1] - w - margin))
        if y not in (margin, out.shape[0] - h - margin)
        else rng.randint(margin, out.shape[1] - w - margin)
    )
    region = out[y : y + h, x : x + w]
    if contrast == "dark on light label":
        region[box] = 235
    elif contrast == "light on dark label":
        region[box] = 15
    fill = {"white": 255.0, "grey": min(255.0, float(np.median(region)) + 90), "dark": 0.0,
            "dark on light label": 20.0, "light on dark label": 240.0}[contrast]  # fmt: skip
    out[y : y + h, x : x + w] = region * (1 - alpha) + fill * alpha
    return out.clip(0, 255).astype(np.uint8)


def real_images(data: Path, limit: int) -> list[tuple[str, str, Any]]:
    """(name, split, 8-bit image) of the real radiographs: each NIH image at 256 px and 1024 px."""
    import pydicom

    folder = data / "imaging" / "nih-adult-dev" / "images"
    names = sorted(p.name for p in folder.glob("*.png"))
    rng = random.Random(15)
    rng.shuffle(names)
    out = []
    for name in names[:limit]:
        img = np.asarray(Image.open(folder / name).convert("L"))
        split = "held-out" if held_out(name) else "fit"
        out.append((f"{name} 256", split, img))
        out.append((f"{name} 1024", split, np.asarray(Image.fromarray(img).resize((1024, 1024), Image.BICUBIC))))
    out.append(
        ("chest-cr-rsna.dcm", "held-out", to_uint8(pydicom.dcmread(data / "imaging" / "chest-cr-rsna.dcm").pixel_array))
    )
    png = np.asarray(Image.open(data / "imaging" / "chest-xray-nih-00000001_000.png").convert("L"))
    out.append(("chest-xray-nih-00000001_000.png", "held-out", png))
    return out


def canaries(reals: list[tuple[str, str, Any]], count: int) -> list[tuple[str, str, Any]]:
    rng = random.Random(1515)
    out = []
    while len(out) < count:
        name, split, img = rng.choice(reals)
        fonts = HELD_FONTS if split == "held-out" else FIT_FONTS
        side = img.shape[0]
        size = rng.choice((9, 11, 14) if side <= 256 else (12, 16, 22, 30))
        rotation, contrast, font = rng.choice((0, 0, 90, 270)), rng.choice(CONTRASTS), rng.choice(fonts)
        planted = plant(img, canary_text(rng), font, size, rotation, contrast, rng)
        if planted is not None:
            ink = "faint ink" if int(np.abs(planted.astype(np.int16) - img).max()) < FAINT else "clear ink"
            out.append((f"{name} {font} {size}px {rotation}deg {contrast} {ink}", split, planted))
    return out


def run(images: list[tuple[str, str, Any]]) -> tuple[list[tuple[str, str, str | None]], float]:
    """(name, split, reason the gate refused it or None) of each image; wall seconds per image."""
    out = []
    t0 = time.perf_counter()
    for name, split, img in images:
        out.append((name, split, gate_pixels(img).reason))
    return out, (time.perf_counter() - t0) / max(1, len(images))


def rate(results: list[tuple[str, str, str | None]], split: str, refused: bool) -> str:
    mine = [r for r in results if r[1] == split]
    n = sum(1 for r in mine if (r[2] is not None) == refused)
    return f"{n}/{len(mine)} = {n / max(1, len(mine)):.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=120, help="NIH images (each at 256 and 1024 px)")
    ap.add_argument("--canaries", type=int, default=240)
    ap.add_argument("--split", choices=("fit", "held-out", "both"), default="both", help="which half to run")
    ap.add_argument("--write", action="store_true", help="write benchmarks/results/burned_in_gate.md")
    ap.add_argument("--show", action="store_true", help="list each refused real image and each missed canary")
    args = ap.parse_args()
    data = shared_data_dir()
    if not (data / "imaging" / "nih-adult-dev").is_dir():
        sys.exit(f"no shared imaging data under {data}")
    reals = real_images(data, args.images)
    planted = canaries(reals, args.canaries)
    if args.split != "both":
        reals = [r for r in reals if r[1] == args.split]
        planted = [r for r in planted if r[1] == args.split]
    real, real_s = run(reals)
    fake, fake_s = run(planted)
    load = Path("/proc/loadavg").read_text().split()[:3]
    lines = [
        f"load {' '.join(load)} on {os.cpu_count()} cores; {len(reals)} real images, {len(planted)} canaries",
        "",
        "| set | fit | held-out | s/image (wall, incl. tesseract) |",
        "| --- | --- | --- | --- |",
        f"| real radiographs refused (false positives) | {rate(real, 'fit', True)} | {rate(real, 'held-out', True)} | {real_s:.3f} |",
        f"| canaries let through (misses) | {rate(fake, 'fit', False)} | {rate(fake, 'held-out', False)} | {fake_s:.3f} |",
        "",
        "| canary kind (both halves) | misses |",
        "| --- | --- |",
    ]
    kinds = [
        *(f" {c}" for c in CONTRASTS),
        " 0deg",
        " 90deg",
        " 270deg",
        *(f" {n}px" for n in (9, 11, 14, 12, 16, 22, 30)),
        " faint ink",
        " clear ink",
    ]
    for kind in kinds:
        mine = [r for r in fake if kind in r[0] and not (kind == " dark" and "label" in r[0])]
        if mine:
            n = sum(1 for r in mine if r[2] is None)
            lines.append(f"| {kind.strip()} | {n}/{len(mine)} |")
    print("\n".join(lines))
    if args.show:
        print("\nrefused real images:\n  " + "\n  ".join(f"{n}: {r}" for n, _s, r in real if r))
        print("\nmissed canaries:\n  " + "\n  ".join(n for n, _s, r in fake if r is None))
    if args.write:
        cmd = f"python benchmarks/burned_in_gate.py --images {args.images} --canaries {args.canaries} --write"
        out = Path(__file__).parent / "results" / "burned_in_gate.md"
        out.write_text(
            "# Burned-in text gate of the research zone\n\n"
            f"`{cmd}` on the shared data ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).\n\n"
            + "\n".join(lines)
            + "\n\nReal radiographs: NIH ChestX-ray14 adult images (each at its shared 256 px and enlarged to 1024 px, "
            "where its own PORTABLE / AP / L markers are at a clinical size but blurred by the enlargement), the RSNA "
            "CR DICOM and the NIH 512 px PNG. Canaries: a fake name, record number or date in a DejaVu font burned "
            "onto one of those images (fit fonts on fit patients, held-out fonts on held-out patients). A false "
            "positive is a real radiograph the gate refuses; a miss is a canary it lets through. Wall seconds per "
            "image include the tesseract processes.\n"
        )
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
