"""Settings of the workspace server (read from the environment, overridable in code)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carelens.core.settings import Settings


@dataclass
class ServerSettings:
    """What ``create_app`` needs.

    store: the carelens store (lake, outputs); db_url: the app database; session_ttl_s: how long
    a browser session lives (``CARELENS_SESSION_TTL``, default 30 min); max_body_bytes: larger
    request bodies are refused with 413; secure_cookies: mark cookies Secure (behind HTTPS);
    summarizer: "module:function" taking (source, patient) and returning the summary (default
    ``carelens.record:summarize``); data: a ready ``ClinicalData`` (tests, embedding).
    """

    store: Path
    db_url: str
    session_ttl_s: float = 1800.0
    max_body_bytes: int = 64 * 1024
    secure_cookies: bool = False
    summarizer: str = "carelens.record:summarize"
    data: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, store: Path | None = None) -> ServerSettings:
        """Settings from ``CARELENS_*`` environment variables (store overridable)."""
        base = Settings.from_env(store)
        return cls(
            store=base.store,
            db_url=base.db_url,
            session_ttl_s=base.session_ttl,
            max_body_bytes=int(base.max_body),
            secure_cookies=base.secure_cookies,
            summarizer=base.summarizer,
        )
