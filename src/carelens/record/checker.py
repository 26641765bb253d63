"""The citation checker: every statement must rest on what it cites.

An item passes when each citation resolves (a resource in the record; a note span inside the
note's text) and the cited material supports the text: its codes are codes of the cited
resources, and every date, number and name word in the text appears in the cited resources or
note spans. Items that fail are removed from the summary and listed in ``dropped`` with the
first reason. Sentences of the optional narrative are checked the same way against the facts
they cite, where only clinical names (not prose words) must appear.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from carelens.core import Citation
from carelens.record.model import PatientRecord
from carelens.record.schema import Dropped, Summary, SummaryItem

_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w])")
_WORD = re.compile(r"[a-z][a-z'\-]*[a-z]|[a-z]")

#: Words the summary's own templates add (not claims about the patient).
TEMPLATE_WORDS = frozenset(
    " ".join(
        [
            "a an the and or of on in to for from with by at as is are was were has had be not no but per onset",
            "resolved started stopped completed last ordered active hold criticality reaction reactions",
            "medication food environment biologic low high critical unnamed substance rising falling stable usual",
            "adult range abnormal worsening result recorded latest device goal care plan since needed encounter",
            "allergy allergies known high-risk high-alert alert risk medicine dose anticoagulant antiplatelet",
            "insulin sulfonylurea opioid chemotherapy antiarrhythmic immunosuppressant lithium sedative",
            "concentrated electrolyte conflict note notes mentioned only says said structured record records but",
            "while listed shows dated lists it problem",
        ]
    ).split()
)


@dataclass
class EvidenceText:
    """What a set of citations says: its strings' words, numbers, dates and codes."""

    words: set[str] = field(default_factory=set)
    numbers: list[float] = field(default_factory=list)
    dates: set[str] = field(default_factory=set)
    codes: set[str] = field(default_factory=set)

    def add_text(self, text: str) -> None:
        low = text.lower()
        self.words.update(_words(low))
        for found in _DATE.findall(text):
            self.dates.add(found)
            self.numbers.append(float(found[:4]))  # "since 2015" rests on 2015-06-01
        for match in _NUMBER.findall(_DATE.sub(" ", text)):
            self.numbers.append(float(match))
        if len(text) >= 4 and text[:4].isdigit():
            self.dates.add(text[:10])

    def add_resource(self, obj: Any) -> None:
        if isinstance(obj, dict):
            if isinstance(obj.get("code"), str) and "system" in obj:
                self.codes.add(f"{obj.get('system', '')}|{obj['code']}")
            for key, value in obj.items():
                if key in {"div", "data"}:  # narrative markup and attachments are not evidence
                    continue
                self.add_resource(value)
        elif isinstance(obj, list):
            for value in obj:
                self.add_resource(value)
        elif isinstance(obj, str):
            self.add_text(obj)
        elif isinstance(obj, int | float) and not isinstance(obj, bool):
            self.numbers.append(float(obj))

    def merge(self, other: EvidenceText) -> None:
        self.words |= other.words
        self.numbers += other.numbers
        self.dates |= other.dates
        self.codes |= other.codes

    def has_number(self, text: str) -> bool:
        value = float(text)
        decimals = len(text.split(".")[1]) if "." in text else 0
        tolerance = 0.5 * 10**-decimals + 1e-9
        return any(abs(n - value) <= tolerance for n in self.numbers)


def _words(text: str) -> set[str]:
    words = set(_WORD.findall(text))
    return words | {p for w in words if "-" in w for p in w.split("-") if p}


def citation_problem(citation: Citation, record: PatientRecord) -> str | None:
    """Why a citation does not resolve, or None."""
    if citation.resource not in record.resources:
        return "a citation does not resolve to a resource in the record"
    if citation.note_span is not None:
        note = record.note(citation.resource)
        start, end = citation.note_span
        if note is None:
            return "a note citation points to a resource that holds no readable note"
        if not (0 <= start < end <= len(note.text)):
            return "a note span lies outside the note's text"
    return None


EvidenceCache = dict[tuple[str, tuple[int, int] | None], EvidenceText]


def _one_evidence(citation: Citation, record: PatientRecord) -> EvidenceText:
    ev = EvidenceText()
    resource = record.resources.get(citation.resource)
    if resource is None:
        return ev
    if citation.note_span is None:
        ev.add_resource(resource)
        return ev
    note = record.note(citation.resource)
    if note is not None:
        start, end = citation.note_span
        ev.add_text(note.text[start:end])
        if note.date:
            ev.add_text(note.date)
    return ev


def evidence_of(
    citations: Iterable[Citation], record: PatientRecord, cache: EvidenceCache | None = None
) -> EvidenceText:
    """The evidence of resolvable citations (a note span contributes only its own text and the
    note's date). ``cache`` keeps each citation's evidence across items of one check."""
    cache = {} if cache is None else cache
    ev = EvidenceText()
    for citation in citations:
        key = (citation.resource, citation.note_span)
        if key not in cache:
            cache[key] = _one_evidence(citation, record)
        ev.merge(cache[key])
    return ev


def support_problem(text: str, codes: list[str], ev: EvidenceText, names: set[str] | None = None) -> str | None:
    """Why the evidence does not support the text, or None.

    ``names``: check only these clinical words (narrative mode); by default every word of the
    text that is not a template word must be in the evidence.
    """
    for code in codes:
        if code not in ev.codes:
            return "a code is not a code of the cited resources"
    for found in _DATE.findall(text):
        if found not in ev.dates:
            return "a date is not in the cited evidence"
    for number in _NUMBER.findall(_DATE.sub(" ", text)):
        if not ev.has_number(number):
            return "a number is not in the cited evidence"
    words = _words(text.lower())
    claimed = (words & names) if names is not None else {w for w in words if w not in TEMPLATE_WORDS}
    missing = sorted(w for w in claimed if w not in ev.words)
    if missing:
        return f"{len(missing)} name words are not in the cited evidence"
    return None


def item_problem(item: SummaryItem, record: PatientRecord, cache: EvidenceCache | None = None) -> str | None:
    """Why an item fails the check, or None when every citation resolves and supports it."""
    cache = {} if cache is None else cache
    if not item.citations:
        return "the item cites nothing"
    for citation in item.citations:
        problem = citation_problem(citation, record)
        if problem:
            return problem
    ev = evidence_of(item.citations, record, cache)
    problem = support_problem(item.text, item.codes, ev)
    if problem:
        return problem
    claimed = {w for w in _words(item.text.lower()) if w not in TEMPLATE_WORDS}
    for citation in item.citations:  # each cited resource must be about the item, not padding
        if citation.note_span is not None:
            continue
        own = evidence_of([citation], record, cache)
        if (item.codes or claimed) and not (set(item.codes) & own.codes) and not (claimed & own.words):
            return "a citation shares no code or name with the item"
    return None


def check_summary(summary: Summary, record: PatientRecord) -> Summary:
    """Drop every item (in sections and needs-attention) that fails the check, listing it in
    ``dropped`` with its reason. Returns the same summary, changed in place."""
    cache: EvidenceCache = {}
    for section in summary.sections:
        section.items = _keep(section.items, record, summary.dropped, cache)
        if not section.items and section.empty_reason is None:
            section.empty_reason = "no verifiable information (items dropped, see dropped)"
    summary.needs_attention = _keep(summary.needs_attention, record, summary.dropped, cache)
    return summary


def _keep(
    items: list[SummaryItem], record: PatientRecord, dropped: list[Dropped], cache: EvidenceCache
) -> list[SummaryItem]:
    kept = []
    for item in items:
        problem = item_problem(item, record, cache)
        if problem is None:
            kept.append(item)
        else:
            dropped.append(Dropped(text=item.text, reason=problem))
    return kept
