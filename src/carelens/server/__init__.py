"""The clinician workspace: FastAPI app with the JSON API, CDS Hooks, server-rendered
pages, authentication (tokens, sessions, roles, CSRF) and the audit trail.

Names are imported on first use so that ``carelens --help`` does not load FastAPI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from carelens.server.app import create_app
    from carelens.server.data import BundleData, ClinicalData, PatientRow, SummaryUnavailable
    from carelens.server.items import ReviewItem
    from carelens.server.settings import ServerSettings

_WHERE = {
    "create_app": "carelens.server.app",
    "BundleData": "carelens.server.data",
    "ClinicalData": "carelens.server.data",
    "PatientRow": "carelens.server.data",
    "SummaryUnavailable": "carelens.server.data",
    "ReviewItem": "carelens.server.items",
    "ServerSettings": "carelens.server.settings",
}
__all__ = [
    "BundleData",
    "ClinicalData",
    "PatientRow",
    "ReviewItem",
    "ServerSettings",
    "SummaryUnavailable",
    "create_app",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module carelens.server has no attribute {name}")
    return getattr(importlib.import_module(_WHERE[name]), name)
