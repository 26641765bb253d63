"""Content-addressed identifiers."""

from __future__ import annotations

import hashlib


def content_hash(data: bytes | str, length: int = 64) -> str:
    """SHA-256 hex digest of ``data`` (str is UTF-8 encoded), cut to ``length`` characters."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()[:length]


def stable_id(*parts: object, length: int = 16) -> str:
    """A short deterministic id from the given parts (joined with a separator that cannot
    appear by accident)."""
    return content_hash("\x1f".join(str(p) for p in parts), length)
