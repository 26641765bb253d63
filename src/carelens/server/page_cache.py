"""Rendered patient pages kept in memory for the state they show, so that a page view under
load costs a few lookups instead of a template render.

The state of a patient page is its data version (input hash and saved AI outputs) and the
count and newest id of the patient's decisions and signed versions, read from the app
database on every view: a decision or sign-off made in any server process, or new data,
changes it, and the next view renders afresh. A page is rendered with placeholders for the
user and their CSRF token, filled in per request.
"""

from __future__ import annotations

import secrets
from collections.abc import Hashable
from dataclasses import dataclass

from markupsafe import escape

from carelens.server.auth import CLINICIAN, Principal

REVIEW_STATE_SQL = (
    "SELECT (SELECT count(*) FROM review_decisions WHERE patient_id = ?),"
    " (SELECT max(id) FROM review_decisions WHERE patient_id = ?),"
    " (SELECT count(*) FROM signed_summaries WHERE patient_id = ?),"
    " (SELECT max(id) FROM signed_summaries WHERE patient_id = ?)"
)


@dataclass(frozen=True)
class RenderedPage:
    """A patient page rendered for ``PageCache.marks``, with what its audit row names."""

    body: bytes
    model_version: str
    input_hash: str
    items: int


class PageCache:
    """The newest rendered page per patient, with the state it was rendered for."""

    def __init__(self) -> None:
        self._pages: dict[str, tuple[Hashable, RenderedPage]] = {}
        self.marks = Principal(0, "user-" + secrets.token_hex(16), CLINICIAN, csrf="csrf-" + secrets.token_hex(16))

    def get(self, pid: str, state: Hashable) -> RenderedPage | None:
        """The page rendered for exactly ``state``, or None."""
        found = self._pages.get(pid)
        return found[1] if found is not None and found[0] == state else None

    def put(self, pid: str, state: Hashable, page: RenderedPage) -> None:
        self._pages[pid] = (state, page)

    def fill(self, page: RenderedPage, who: Principal) -> bytes:
        """The page for ``who``: their name and CSRF token in place of the placeholders."""
        assert self.marks.csrf is not None
        body = page.body.replace(self.marks.csrf.encode(), str(escape(who.csrf or "")).encode())
        return body.replace(self.marks.username.encode(), str(escape(who.username)).encode())
