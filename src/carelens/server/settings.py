"""Settings of the workspace server (read from the environment, overridable in code)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carelens.core.errors import InputError
from carelens.core.settings import Settings


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
    (``CARELENS_CDS_CLIENTS``, see ``cds_jwt``); summarizer: the name of a registered summariser
    (``CARELENS_SUMMARIZER``, see ``summarizers``; default ``record``); site: this site's
    name (``CARELENS_SITE``): reads of a model without a passed local validation here are marked
    "not validated at this site"; data: a ready ``ClinicalData`` (tests, embedding).
    """

    store: Path
    db_url: str
    session_ttl_s: float = 1800.0
    max_body_bytes: int = 64 * 1024
    secure_cookies: bool = False
    public_url: str | None = None
    cds_clients: Path | None = None
    summarizer: str = "record"
    site: str | None = None
    data: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from carelens.server.summarizers import check

        check(self.summarizer)
        url = self.public_url
        if url is not None and (not re.match(r"^https?://[^/\s?#]+(/[^\s?#]*)?$", url) or url.endswith("/")):
            raise InputError(
                "CARELENS_PUBLIC_URL must be an absolute http(s) URL without a trailing slash, "
                "e.g. https://carelens.example.org"
            )

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
            public_url=base.public_url,
            cds_clients=base.cds_clients,
            summarizer=base.summarizer,
            site=base.site,
        )
