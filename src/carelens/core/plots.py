"""Figures for reports and cards: one place that picks the headless backend and writes the PNG."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


@contextmanager
def figure(target: Path | IO[bytes], size: tuple[float, float], dpi: int = 110) -> Iterator[tuple[Figure, Axes]]:
    """A figure and its axes; on leaving the block it is laid out, written as a PNG to ``target``
    (a path, whose folder is made, or a binary buffer) and closed, also when the block fails."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size, dpi=dpi)
    try:
        yield fig, ax
        fig.tight_layout()
        if isinstance(target, Path):
            target.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(target, format="png")
    finally:
        plt.close(fig)
