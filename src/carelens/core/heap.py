"""Keep freed large buffers in the process heap while a network trains or reads a batch (glibc only).

glibc hands every freed block above its mmap threshold (at most 32 MiB) back to the kernel. A CNN's activations for
a batch of 64 radiographs are larger, so each batch mapped them afresh and the kernel zero-filled every page: a third
of the demo model's training CPU was page faults. :func:`heap_kept` raises the thresholds for a block and restores
glibc's defaults (then trims the heap) when the outermost block ends; elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import platform
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

KEPT_BYTES = 1 << 28  # blocks up to 256 MiB are reused instead of unmapped (any CNN batch here is smaller)
GLIBC_DEFAULT_BYTES = 128 * 1024  # glibc's M_TRIM_THRESHOLD and M_MMAP_THRESHOLD defaults
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3

_lock = threading.Lock()
_depth = 0


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(None)


def _thresholds(libc: ctypes.CDLL, size: int) -> None:
    libc.mallopt(_M_MMAP_THRESHOLD, size)
    libc.mallopt(_M_TRIM_THRESHOLD, size)


@contextmanager
def heap_kept() -> Iterator[None]:
    """Reuse freed blocks of up to :data:`KEPT_BYTES` inside the block (nested and threaded uses share one count)."""
    global _depth
    libc = _glibc()
    if libc is None:
        yield
        return
    with _lock:
        _depth += 1
        if _depth == 1:
            _thresholds(libc, KEPT_BYTES)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _thresholds(libc, GLIBC_DEFAULT_BYTES)
                libc.malloc_trim(0)
