"""The summary as plain data: the JSON contract of ``carelens summarize``.

``{"patient", "sections": [{"code", "title", "empty_reason", "items": [{"text", "codes",
"citations": [{"resource", "note_span"}]}]}], "needs_attention": [...items...], "dropped":
[{"text", "reason"}]}``; the other keys are additions.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from carelens.core import Citation

ItemSource = Literal["structured", "note", "narrative"]


class SummaryItem(BaseModel):
    """One statement and what it rests on.

    ``source`` says where it comes from: structured data, a note only (``note``), or the
    optional language-model narrative. ``status`` is e.g. ``active``, ``stopped``,
    ``resolved``; ``flags`` are e.g. ``high``, ``critical``, ``note-only``, ``conflict``.
    """

    text: str
    codes: list[str] = Field(default_factory=list)
    citations: list[Citation] = Field(default_factory=list)
    source: ItemSource = "structured"
    status: str | None = None
    date: str | None = None
    flags: list[str] = Field(default_factory=list)


class Section(BaseModel):
    """An IPS section: LOINC ``code``, ``title``, items, and when empty, why (``empty_reason``:
    ``no known ...`` when the record says so, ``no information`` when it records nothing)."""

    code: str
    title: str
    empty_reason: str | None = None
    items: list[SummaryItem] = Field(default_factory=list)
    empty_citations: list[Citation] = Field(default_factory=list)
    omitted: int = 0


class Dropped(BaseModel):
    """An item the citation checker removed, and why."""

    text: str
    reason: str


class NotesRead(BaseModel):
    """How much of the notes the NLP read (it reads the newest ``limit`` notes)."""

    total: int = 0
    read: int = 0
    limit: int | None = None


class Summary(BaseModel):
    """A patient's summary in IPS order, with a needs-attention block and what was dropped."""

    patient: str
    generated_by: str
    sections: list[Section]
    needs_attention: list[SummaryItem] = Field(default_factory=list)
    dropped: list[Dropped] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    notes: NotesRead = Field(default_factory=NotesRead)
    narrative: list[SummaryItem] = Field(default_factory=list)

    def section(self, code: str) -> Section | None:
        """The section with this LOINC code, if present."""
        return next((s for s in self.sections if s.code == code), None)

    def items(self) -> list[SummaryItem]:
        """Every item of every section and of the needs-attention block."""
        return [i for s in self.sections for i in s.items] + list(self.needs_attention)
