"""Settings of the workspace server (read from the environment, overridable in code)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carelens.core.config import get_settings
from carelens.core.errors import InputError


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


@dataclass
class ServerSettings:
    """What ``create_app`` needs.

    store: the carelens store (lake, outputs); db_url: the app database; session_ttl_s: how long
    a browser session lives (``CARELENS_SESSION_TTL``, default 30 min); max_body_bytes: larger
    request bodies are refused with 413; secure_cookies: mark cookies Secure and send HSTS
    (``CARELENS_SECURE_COOKIES=1``; on by itself for requests that arrive over HTTPS, directly or
    from a trusted proxy); public_url: the base URL users and EHRs reach the workspace at
    (``CARELENS_PUBLIC_URL``), used for every absolute link and as the CDS JWT audience, never the
    request's Host header; cds_clients: the JSON file of CDS clients allowed to sign JWTs
    (``CARELENS_CDS_CLIENTS``, see ``cds_jwt``); summarizer: "module:function" taking (source,
    patient) and returning the summary (default ``carelens.record:summarize``); data: a ready
    ``ClinicalData`` (tests, embedding).
    """

    store: Path
    db_url: str
    session_ttl_s: float = 1800.0
    max_body_bytes: int = 64 * 1024
    secure_cookies: bool = False
    public_url: str | None = None
    cds_clients: Path | None = None
    summarizer: str = "carelens.record:summarize"
    data: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        url = self.public_url
        if url is not None and (not re.match(r"^https?://[^/\s?#]+(/[^\s?#]*)?$", url) or url.endswith("/")):
            raise InputError(
                "CARELENS_PUBLIC_URL must be an absolute http(s) URL without a trailing slash, "
                "e.g. https://carelens.example.org"
            )

    @classmethod
    def from_env(cls, store: Path | None = None) -> ServerSettings:
        """Settings from ``CARELENS_*`` environment variables (store overridable)."""
        base = get_settings()
        root = Path(store) if store is not None else base.store
        db_url = os.environ.get("CARELENS_DB_URL") or (
            base.db_url if store is None else f"sqlite:///{(root / 'app.sqlite').resolve()}"
        )
        return cls(
            store=root,
            db_url=db_url,
            session_ttl_s=_env_float("CARELENS_SESSION_TTL", 1800.0),
            max_body_bytes=int(_env_float("CARELENS_MAX_BODY", 64 * 1024)),
            secure_cookies=os.environ.get("CARELENS_SECURE_COOKIES") == "1",
            public_url=os.environ.get("CARELENS_PUBLIC_URL") or None,
            cds_clients=Path(clients) if (clients := os.environ.get("CARELENS_CDS_CLIENTS")) else None,
            summarizer=os.environ.get("CARELENS_SUMMARIZER") or "carelens.record:summarize",
        )
