"""Response models of the JSON API and CDS Hooks: the OpenAPI schema documents every answer."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from carelens.server.data import PatientRow


class PatientList(BaseModel):
    """``GET /api/patients``: one page of patients and how many match in all; ``next``: the
    cursor of the page after it (``?after=``), None on the last page."""

    patients: list[PatientRow]
    total: int
    next: str | None = None


class Cohort(BaseModel):
    """``GET /api/cohort``: de-identified counts from the research lake; every count below the
    small-cell threshold (totals too) is ``"<k"``, with complementary suppression."""

    patients: int | str
    sex: dict[str, int | str]
    age_band: dict[str, int | str]
    conditions: dict[str, int | str]
    small_cell_threshold: int
    source: str
    carelens_version: str


class ModelCard(BaseModel):
    """A model card (the registry's fields; more may follow)."""

    model_config = ConfigDict(extra="allow")
    id: str | None = None
    name: str | None = None
    version: str | None = None


class ModelList(BaseModel):
    """``GET /api/models``."""

    models: list[ModelCard]


class AuditReport(BaseModel):
    """``GET /api/audit/verify`` and ``carelens audit verify --format json``."""

    ok: bool
    rows: int
    bad_row: int | None = None
    reason: str | None = None
    checkpoints: int = 0
    head: dict[str, Any] = Field(default_factory=dict)


class CdsService(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    hook: str
    title: str | None = None
    description: str
    prefetch: dict[str, str] = Field(default_factory=dict)


class CdsDiscovery(BaseModel):
    """``GET /cds-services``."""

    services: list[CdsService]


class Card(BaseModel):
    """A CDS Hooks card."""

    model_config = ConfigDict(extra="allow")
    uuid: str
    summary: str = Field(max_length=140)
    indicator: str
    detail: str | None = None
    source: dict[str, Any]
    links: list[dict[str, str]] = Field(default_factory=list)


class CdsCards(BaseModel):
    """The answer to a hook call."""

    cards: list[Card]


class Empty(BaseModel):
    """An empty JSON object (CDS Hooks feedback)."""
