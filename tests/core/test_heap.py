"""heap_kept: freed large buffers are reused inside the block and glibc's defaults come back after it."""

from __future__ import annotations

import platform
import resource
import sys

import pytest

from carelens.core.heap import heap_kept

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc's malloc only"
)

BUFFER = 64 << 20  # above glibc's largest dynamic mmap threshold (32 MiB): mapped afresh on every allocation
PAGES = BUFFER // resource.getpagesize()


def _page_faults(allocations: int = 5) -> int:
    """Minor page faults of allocating, filling and freeing ``allocations`` buffers one after another."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(allocations):
        buffer = bytearray(BUFFER)
        del buffer
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_large_buffers_are_reused_inside_the_block_and_unmapped_after_it() -> None:
    assert _page_faults() >= 5 * PAGES  # every buffer's pages faulted in afresh
    with heap_kept():
        assert _page_faults() < 2 * PAGES  # only the first buffer maps new pages
    assert _page_faults() >= 5 * PAGES  # defaults restored: the memory went back to the kernel


def test_a_nested_block_does_not_end_the_outer_one() -> None:
    with heap_kept():
        with heap_kept():
            pass
        assert _page_faults() < 2 * PAGES
