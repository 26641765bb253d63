"""Notes into facts: problems, medications and allergies mentioned in notes, with medspaCy
ConText assertions and sections, reconciled with the structured data.

The pipeline is medspaCy's tokenizer, sectionizer and ConText (negated, historical,
hypothetical, family, uncertain, plus a ``DISCONTINUED`` rule set of ours) with spaCy's rule
sentencizer and line breaks as sentence bounds: medspaCy's PyRuSH sentencizer was ~70 ms per
note here, too slow for a per-patient budget of 300 ms. Targets are matched with a per-patient
phrase matcher built from the record's own coded displays plus shipped terms and
abbreviations (:data:`carelens.record.vocab.NOTE_TERMS`). The pipeline is built once per
process.

Reconciliation: a problem or medication mentioned only in notes becomes an item flagged
``note-only`` citing the note and the mention's character span; a note that says "no known
allergies" after an allergy was recorded, or that a medication was stopped while the record
lists it as active, becomes a ``conflict`` in needs-attention. Negated, family, hypothetical
and uncertain mentions never become the patient's facts.
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from carelens.core import Citation
from carelens.record.fields import codes, display
from carelens.record.model import Note, PatientRecord, resource_key
from carelens.record.schema import Section, Summary, SummaryItem
from carelens.record.sections import is_active_allergy, medication_concepts, no_known_allergy
from carelens.record.vocab import NKA_PHRASES, NOTE_TERMS

#: Section categories whose mentions are not the patient's current facts.
_FAMILY_SECTIONS = {"family_history"}
_ALLERGY_SECTIONS = {"allergies", "allergy"}
_DISCONTINUED = "DISCONTINUED"
_DISCONTINUED_FORWARD = ["stopped", "discontinued", "discontinue", "stop", "d/c", "held", "hold", "stopping"]
_DISCONTINUED_BACKWARD = ["was stopped", "was discontinued", "was held", "discontinued", "stopped"]
#: Triggers medspaCy's default ConText rules lack (common in clinical shorthand).
_UNCERTAIN_EXTRA = ["questionable", "suspect", "suspected", "differential", "ddx", "versus", "vs", "?"]
_NEGATED_EXTRA = ["(-)", "neg for", "negative for"]
_STOP_WORDS = re.compile(r"\b(stop|stopped|stopping|discontinue|discontinued|d/c|held|hold)\b")
_MED_NOISE = {
    "extended",
    "release",
    "oral",
    "tablet",
    "tablets",
    "capsule",
    "injection",
    "injectable",
    "solution",
    "suspension",
    "topical",
    "cream",
    "inhaler",
    "chewable",
    "delayed",
    "hour",
    "unit",
    "units",
    "human",
}


@dataclass(frozen=True)
class Mention:
    """A term found in a note with its ConText assertions and section."""

    note: Note
    start: int
    end: int
    text: str
    kind: str  # problem | medication | allergy | nka
    canonical: str
    section: str | None
    negated: bool
    historical: bool
    hypothetical: bool
    family: bool
    uncertain: bool
    discontinued: bool
    sentence: tuple[int, int]

    @property
    def about_patient_now(self) -> bool:
        """Not negated, family, hypothetical or uncertain (historical is allowed)."""
        return not (self.negated or self.family or self.hypothetical or self.uncertain) and (
            self.section not in _FAMILY_SECTIONS
        )

    def citation(self, whole_sentence: bool = False) -> Citation:
        span = self.sentence if whole_sentence else (self.start, self.end)
        return Citation(resource=self.note.id, note_span=span)


@lru_cache(maxsize=1)
def pipeline() -> Any:
    """The shared medspaCy pipeline (built once per process: loading spaCy takes seconds)."""
    with _lean_imports():
        import medspacy
        import spacy.util
    from medspacy.context import ConTextRule

    # spaCy imports every installed package's pipe factories (entry points) when it builds a
    # pipeline: presidio's Hugging Face pipe pulls in transformers (seconds per process). The
    # pipes used here are medspaCy's and spaCy's own, registered by importing them.
    spacy.util.registry._entry_point_factories.entry_points = False
    nlp = medspacy.load(medspacy_enable=["medspacy_sectionizer", "medspacy_context"])
    nlp.add_pipe("sentencizer", first=True)
    context = nlp.get_pipe("medspacy_context")
    context.add(
        [ConTextRule(t, _DISCONTINUED, direction="FORWARD") for t in _DISCONTINUED_FORWARD]
        + [ConTextRule(t, _DISCONTINUED, direction="BACKWARD") for t in _DISCONTINUED_BACKWARD]
        + [ConTextRule(t, "POSSIBLE_EXISTENCE", direction="FORWARD") for t in _UNCERTAIN_EXTRA]
        + [ConTextRule(t, "NEGATED_EXISTENCE", direction="FORWARD") for t in _NEGATED_EXTRA]
    )
    return nlp


@contextmanager
def _lean_imports() -> Iterator[None]:
    """While spaCy and medspaCy are first imported, two packages they would load are kept out:
    QuickUMLS, imported by medspaCy only to register a UMLS pipe carelens does not use (it pulls
    NLTK and SciPy's statistics), is a stand-in module; torch, which thinc imports whenever it is
    installed though spaCy's rule pipelines here never use it, is blocked (thinc then runs without
    it). Together ~3.5 CPU-s and ~330 MB less in every process that reads notes (each ``carelens
    run`` worker among them). Both are removed from the modules afterwards, so a later import gets
    the real package; when spaCy or torch is already loaded nothing is changed."""
    if {"spacy", "medspacy", "thinc", "torch", "quickumls"} & sys.modules.keys():
        yield
        return
    stand_in = types.ModuleType("quickumls")
    stand_in.spacy_component = types.ModuleType("quickumls.spacy_component")  # type: ignore[attr-defined]
    sys.modules["quickumls"] = stand_in
    sys.modules["torch"] = None  # type: ignore[assignment]  # import torch raises ImportError
    try:
        yield
    finally:
        del sys.modules["quickumls"], sys.modules["torch"]


#: Common titles medspaCy's defaults lack (Synthea and many EHR templates use them).
_EXTRA_TITLES = {
    "assessment and plan": "observation_and_plan",
    "plan": "observation_and_plan",
    "a/p": "observation_and_plan",
    "family hx": "family_history",
    "fhx": "family_history",
    "current medications": "medications",
    "medication list": "medications",
    "pmh": "past_medical_history",
}


@lru_cache(maxsize=1)
def section_titles() -> dict[str, str]:
    """medspaCy's default section titles (lower case, no colon) -> section category."""
    titles: dict[str, str] = dict(_EXTRA_TITLES)
    for rule in pipeline().get_pipe("medspacy_sectionizer").rules:
        titles.setdefault(rule.literal.lower().rstrip(": "), rule.category)
    return titles


_HEADING = re.compile(r"^[ \t]*#*[ \t]*([A-Za-z][A-Za-z /&()-]{0,60}?)[ \t]*(?::|$)", re.M)


def sections_of(text: str) -> list[tuple[int, str]]:
    """(start offset, category) of each heading whose title is one of medspaCy's section titles,
    optionally after Markdown ``#`` marks: a line of its own, or a line starting "Title:". So
    "No Known Allergies." is not a heading, and "Allergies: penicillin" is one."""
    titles = section_titles()
    return [(m.start(), titles[m.group(1).lower()]) for m in _HEADING.finditer(text) if m.group(1).lower() in titles]


def _ingredient(name: str) -> str | None:
    for word in re.findall(r"[A-Za-z][A-Za-z\-]+", name):
        low = word.lower()
        if len(low) >= 4 and low not in _MED_NOISE:
            return low
    return None


def vocabulary(record: PatientRecord) -> dict[str, tuple[str, str]]:
    """Target terms for this patient: term -> (kind, canonical), from the record's coded data
    (condition names, medication ingredients, allergy substances) plus the shipped terms."""
    terms: dict[str, tuple[str, str]] = dict(NOTE_TERMS)
    for phrase in NKA_PHRASES:
        terms[phrase] = ("nka", "no known allergies")
    for cond in record.of_type("Condition"):
        name = display(cond.get("code"), "").lower()
        if len(name) >= 4:
            terms.setdefault(name, ("problem", name))
    for _, concept in medication_concepts(record):
        ingredient = _ingredient(display(concept, ""))
        if ingredient:
            terms.setdefault(ingredient, ("medication", ingredient))
    for allergy in record.of_type("AllergyIntolerance"):
        if no_known_allergy(allergy) is None:
            name = display(allergy.get("code"), "").lower()
            if len(name) >= 3:
                terms.setdefault(name, ("allergy", name))
    return terms


_BULLETS = "-*#•"


def _line_sentences(doc: Any) -> None:
    """Also start a sentence after a blank line, at a list item or heading on a new line, and
    after a semicolon (medication lists), so that ConText scopes stay within one statement."""
    for i, tok in enumerate(doc[:-1]):
        nxt = doc[i + 1]
        new_line = "\n" in tok.whitespace_ or (tok.is_space and "\n" in tok.text)
        if (tok.is_space and "\n\n" in tok.text) or (new_line and nxt.text[:1] in _BULLETS) or tok.text == ";":
            nxt.is_sent_start = True


#: Tokenised target terms, shared across patients (the shipped terms recur in every record).
_TERM_DOCS: dict[str, Any] = {}


def _matcher(nlp: Any, terms: dict[str, tuple[str, str]]) -> tuple[Any, dict[str, tuple[str, str]]]:
    from spacy.matcher import PhraseMatcher

    matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
    labels: dict[str, tuple[str, str]] = {}
    new = [t for t in terms if t not in _TERM_DOCS]
    _TERM_DOCS.update(zip(new, nlp.tokenizer.pipe(new), strict=True))
    for term, (kind, canonical) in terms.items():
        key = f"T{len(labels)}"
        labels[key] = (kind, canonical)
        matcher.add(key, [_TERM_DOCS[term]])
    return matcher, labels


def _section_at(sections: list[tuple[int, str]], offset: int) -> str | None:
    current = None
    for start, category in sections:
        if start > offset:
            break
        current = category
    return current


#: ``keep(kind, canonical, section, sentence)``: whether a target found in a sentence is worth
#: its ConText assertions (a filter that skips mentions that cannot change the summary).
Keep = Callable[[str, str, str | None, str], bool]


def extract_mentions(record: PatientRecord, limit: int | None = None, keep: Keep | None = None) -> list[Mention]:
    """Mentions in the newest ``limit`` notes (all when None), each note read once.

    ConText runs on each sentence that holds a target kept by ``keep`` (all by default; its
    scope never crosses a sentence), which keeps its cost proportional to what matters rather
    than to the note's length.
    """
    nlp = pipeline()  # first: it imports spaCy without what it need not load
    from spacy.tokens import Span
    from spacy.util import filter_spans

    matcher, labels = _matcher(nlp, vocabulary(record))
    sentencizer = nlp.get_pipe("sentencizer")
    context = nlp.get_pipe("medspacy_context")
    mentions = []
    for note in record.notes[:limit] if limit else record.notes:
        doc = nlp.make_doc(note.text)
        spans = filter_spans([Span(doc, s, e, label=m) for m, s, e in matcher(doc)])
        if not spans:
            continue
        doc = sentencizer(doc)
        _line_sentences(doc)
        sections = sections_of(note.text)
        by_sentence: dict[int, list[Span]] = {}
        for span in spans:
            by_sentence.setdefault(span.sent.start, []).append(span)
        for found in by_sentence.values():
            sent = found[0].sent
            if keep is not None:
                lowered = sent.text.lower()
                found = [f for f in found if keep(*labels[f.label_], _section_at(sections, f.start_char), lowered)]
                if not found:
                    continue
            sub = sent.as_doc()
            sub.ents = [Span(sub, f.start - sent.start, f.end - sent.start, label=f.label) for f in found]
            sub = context(sub)
            for ent in sub.ents:
                kind, canonical = labels[ent.label_]
                start = sent.start_char + ent.start_char
                mentions.append(
                    Mention(
                        note=note,
                        start=start,
                        end=sent.start_char + ent.end_char,
                        text=ent.text,
                        kind=kind,
                        canonical=canonical,
                        section=_section_at(sections, start),
                        negated=ent._.is_negated,
                        historical=ent._.is_historical,
                        hypothetical=ent._.is_hypothetical,
                        family=ent._.is_family,
                        uncertain=ent._.is_uncertain,
                        discontinued=any(m.category == _DISCONTINUED for m in ent._.modifiers),
                        sentence=(sent.start_char, sent.end_char),
                    )
                )
    return mentions


def _known(canonical: str, names: list[str]) -> bool:
    """Whether a mention's canonical name (``a|b`` alternatives) matches a structured name."""
    return any(alt in n or (len(n) >= 4 and n in alt) for alt in canonical.split("|") for n in names)


_PROCEDURE_AFTER = re.compile(r"\s*(screening|assessment|evaluation|scale|score|panel|test|questionnaire)\b")


def _names_a_procedure(m: Mention) -> bool:
    """ "depression screening (procedure)" names a procedure, not a problem."""
    after = m.note.text[m.end : m.note.text.find("\n", m.end) % (len(m.note.text) + 1)][:60].lower()
    return _PROCEDURE_AFTER.match(after) is not None or "(procedure)" in after or "(regime/therapy)" in after


def _day(note: Note) -> str:
    return (note.date or "")[:10]


def _note_only(m: Mention, what: str) -> SummaryItem:
    return SummaryItem(
        text=f"{m.text} ({what} mentioned in note of {_day(m.note)} only)"
        if m.note.date
        else f"{m.text} ({what} mentioned in a note only)",
        citations=[m.citation()],
        source="note",
        status="mentioned",
        date=_day(m.note) or None,
        flags=["note-only"],
    )


def reconcile_notes(record: PatientRecord, summary: Summary, limit: int | None) -> None:
    """Read the notes and add what they say to ``summary``: note-only problems, medications and
    allergies (flagged), and conflicts with the structured data (in needs-attention)."""
    conditions = [display(c.get("code"), "").lower() for c in record.of_type("Condition")]
    meds: dict[str, list[dict[str, Any]]] = {}
    for req, concept in medication_concepts(record):
        meds.setdefault(display(concept, "").lower(), []).append(req)
    active_meds = [name for name, reqs in meds.items() if any(r.get("status") == "active" for r in reqs)]
    allergies = [a for a in record.of_type("AllergyIntolerance") if is_active_allergy(a) and not no_known_allergy(a)]
    allergy_names = [display(a.get("code"), "").lower() for a in allergies]

    def keep(kind: str, canonical: str, section: str | None, sentence: str) -> bool:
        """Only what can add a fact or a conflict needs ConText."""
        if kind == "nka":
            return True
        if kind == "problem":
            return not _known(canonical, conditions)
        if (section in _ALLERGY_SECTIONS or "allerg" in sentence) and not _known(canonical, allergy_names):
            return True
        if kind == "medication":
            return not _known(canonical, list(meds)) or (
                _known(canonical, active_meds) and _STOP_WORDS.search(sentence) is not None
            )
        return kind == "allergy" and not _known(canonical, allergy_names)

    mentions = extract_mentions(record, limit, keep)
    summary.notes.read = min(len(record.notes), limit) if limit else len(record.notes)
    summary.notes.limit = limit

    seen: set[tuple[str, ...]] = set()
    by_code = {s.code: s for s in summary.sections}
    _nka_statement(mentions, by_code["48765-2"])
    for m in mentions:
        if not m.about_patient_now:
            continue
        line = m.note.text[max(m.sentence[0], m.note.text.rfind("\n", 0, m.start) + 1) : m.start].lower()
        in_allergies = m.kind != "problem" and (m.section in _ALLERGY_SECTIONS or "allerg" in line)
        key = (m.kind if not in_allergies else "allergy", m.canonical)
        if m.kind == "nka":
            _nka_conflict(m, allergies, summary, seen)
        elif in_allergies or m.kind == "allergy":
            if not _known(m.canonical, allergy_names) and key not in seen:
                seen.add(key)
                _add(by_code["48765-2"], _note_only(m, "allergy"))
        elif m.kind == "problem":
            if not _known(m.canonical, conditions) and key not in seen and not _names_a_procedure(m):
                seen.add(key)
                target = by_code["11348-0"] if m.historical else by_code["11450-4"]
                _add(target, _note_only(m, "problem"))
        elif m.kind == "medication":
            matches = [r for name, reqs in meds.items() if _known(m.canonical, [name]) for r in reqs]
            if not matches and key not in seen:
                seen.add(key)
                _add(by_code["10160-0"], _note_only(m, "medication"))
            elif m.discontinued:
                _stopped_conflict(m, matches, summary, seen)


def _nka_statement(mentions: list[Mention], section: Section) -> None:
    """When nothing structured is known about allergies, a note's "no known allergies" is."""
    if section.items or section.empty_reason != "no information":
        return
    stated = next((m for m in mentions if m.kind == "nka" and m.about_patient_now), None)
    if stated is not None:
        section.empty_reason = "no known allergies (stated in a note)"
        section.empty_citations = [stated.citation()]


def _add(section: Section, item: SummaryItem) -> None:
    section.items.append(item)
    section.empty_reason = None


def _nka_conflict(m: Mention, allergies: list[dict[str, Any]], summary: Summary, seen: set) -> None:
    """One conflict for the newest note saying "no known allergies" after allergies were recorded."""
    earlier = [a for a in allergies if (a.get("recordedDate") or a.get("onsetDateTime") or "9999")[:10] <= _day(m.note)]
    if not earlier or ("nka",) in seen:
        return
    seen.add(("nka",))
    names = ", ".join(display(a.get("code")) for a in earlier)
    summary.needs_attention.append(
        SummaryItem(
            text=f"Conflict: note of {_day(m.note)} says {m.text}; structured record lists allergies: {names}",
            codes=[c for a in earlier for c in codes(a.get("code"))],
            citations=[m.citation(), *(Citation(resource=resource_key(a)) for a in earlier)],
            source="note",
            flags=["conflict"],
        )
    )


def _stopped_conflict(m: Mention, reqs: list[dict[str, Any]], summary: Summary, seen: set) -> None:
    live = [r for r in reqs if r.get("status") == "active"]
    start = max(((r.get("authoredOn") or "")[:10] for r in live), default="")
    if not live or _day(m.note) < start or ("stopped", m.canonical) in seen:
        return
    seen.add(("stopped", m.canonical))
    summary.needs_attention.append(
        SummaryItem(
            text=f"Conflict: note of {_day(m.note)} says stopped: {m.text}; structured record lists it active",
            citations=[m.citation(whole_sentence=True)] + [Citation(resource=resource_key(r)) for r in live],
            source="note",
            flags=["conflict"],
        )
    )
