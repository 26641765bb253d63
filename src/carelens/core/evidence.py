"""Every AI output is a value with its evidence: what it rests on, how sure, which model."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field


class Citation(BaseModel):
    """A pointer to what a statement rests on: a FHIR resource (``"Condition/abc"``), and
    for text evidence the note's resource plus the character span ``[start, end)``."""

    resource: str
    note_span: tuple[int, int] | None = None


class Provenance(BaseModel):
    """Which model (id and version) made an output from which inputs (content hash)."""

    model_id: str
    model_version: str
    input_hash: str
    generated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class Evidence(BaseModel):
    """The evidence attached to one AI output: citations, a probability or confidence when
    the output has one, and the provenance of the model that made it."""

    citations: list[Citation] = Field(default_factory=list)
    confidence: float | None = None
    provenance: Provenance | None = None
