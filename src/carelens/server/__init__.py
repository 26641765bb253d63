"""The clinician workspace: FastAPI app with the JSON API, CDS Hooks, server-rendered
pages, authentication (tokens, sessions, roles, CSRF) and the audit trail."""

from carelens.server.app import create_app
from carelens.server.data import BundleData, ClinicalData, PatientRow, SummaryUnavailable
from carelens.server.items import ReviewItem
from carelens.server.settings import ServerSettings

__all__ = [
    "BundleData",
    "ClinicalData",
    "PatientRow",
    "ReviewItem",
    "ServerSettings",
    "SummaryUnavailable",
    "create_app",
]
