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


def _page_faults(allocations: int = 10) -> int:
    """Minor page faults of allocating, filling and freeing ``allocations`` buffers one after another."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(allocations):
        buffer = bytearray(BUFFER)
        del buffer
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


# Counts relative to each other: with transparent huge pages a buffer faults in 2 MiB pages, not 4 KiB ones.
def test_large_buffers_are_reused_inside_the_block_and_unmapped_after_it() -> None:
    outside = _page_faults()  # every buffer's pages faulted in afresh
    with heap_kept():
        inside = _page_faults()  # only the first buffer maps new pages
    after = _page_faults()  # defaults restored: the memory went back to the kernel
    assert inside * 3 < outside and inside * 3 < after


def test_a_nested_block_does_not_end_the_outer_one() -> None:
    outside = _page_faults()
    with heap_kept():
        with heap_kept():
            pass
        assert _page_faults() * 3 < outside
