"""Progress bars on stderr for long work (hidden when stderr is not a terminal and
``CARELENS_PROGRESS`` is not set)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

from carelens.core.settings import load_settings

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """Iterate ``items`` with a progress bar on stderr."""
    show = sys.stderr.isatty() or load_settings().progress
    yield from tqdm(items, desc=desc, total=total, unit=unit, file=sys.stderr, disable=not show, leave=False)
