"""What a reader of the detector's output sees, for tests that name the words it must and must not flag."""

from __future__ import annotations

from carelens.privacy.detect import detect_phi


def masked(text: str) -> str:
    """``text`` with every detected span replaced by ``#``."""
    out = list(text)
    for s in detect_phi(text):
        out[s.start : s.end] = "#" * (s.end - s.start)
    return "".join(out)
