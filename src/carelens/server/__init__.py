"""The clinician workspace: FastAPI app with the JSON API, CDS Hooks, server-rendered
pages, authentication (tokens, sessions, roles, CSRF) and the audit trail.

Names are imported on first use so that ``carelens --help`` does not load FastAPI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from carelens.core.lazy import lazy_exports

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

__getattr__ = lazy_exports(__name__, _WHERE)
