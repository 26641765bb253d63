"""Optional narrative by a language model, checked sentence by sentence.

Off by default. :func:`add_narrative` sends the summary's cited fact sheet (numbered ``F1``,
``F2``, ...) to any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, ...) and asks for
prose that cites fact ids after each sentence. Every sentence then goes through the citation
checker against the facts it cites: its numbers and dates must appear in them, and every
clinical name it uses (drug and problem names of the record and of carelens' vocabularies)
must appear in them. A sentence that cites no fact or fails the check is dropped and listed in
``dropped``; the endpoint being down becomes a warning, never a failed summary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from carelens.core import Citation
from carelens.record.checker import TEMPLATE_WORDS, EvidenceText, support_problem
from carelens.record.schema import Dropped, Summary, SummaryItem
from carelens.record.vocab import HIGH_ALERT, NOTE_TERMS

MAX_FACTS = 80
SYSTEM_PROMPT = (
    "You write a short clinical summary for a clinician meeting a new patient. Use ONLY the numbered "
    "facts given. After every sentence, cite the facts it uses in square brackets, like [F2] or [F1, F4]. "
    "Do not add any diagnosis, drug, number or date that is not in the cited facts. Plain sentences, no lists."
)
_FACT_IDS = re.compile(r"\[\s*(F\d+(?:\s*,\s*F\d+)*)\s*\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class Fact:
    """A numbered fact of the fact sheet: a checked summary item's text and citations."""

    id: str
    text: str
    citations: list[Citation]


def fact_sheet(summary: Summary) -> list[Fact]:
    """Needs-attention items first, then section items, numbered ``F1`` ... (at most MAX_FACTS)."""
    items = list(summary.needs_attention) + [i for s in summary.sections for i in s.items]
    return [Fact(f"F{n}", i.text, list(i.citations)) for n, i in enumerate(items[:MAX_FACTS], start=1)]


def clinical_names(facts: list[Fact]) -> set[str]:
    """Words that name drugs and problems: the facts' own words (less template words) and
    carelens' shipped vocabularies."""
    words = {w for f in facts for w in re.findall(r"[a-z][a-z\-]+", f.text.lower())} - TEMPLATE_WORDS
    for term in list(NOTE_TERMS) + list(HIGH_ALERT):
        words.update(w for w in re.findall(r"[a-z][a-z\-]+", term) if len(w) >= 3)
    return {w for w in words if len(w) >= 3}


def check_sentences(text: str, facts: list[Fact]) -> tuple[list[SummaryItem], list[Dropped]]:
    """Split model prose into sentences; keep those that cite facts which support them."""
    by_id = {f.id: f for f in facts}
    names = clinical_names(facts)
    kept, dropped = [], []
    for raw in _SENTENCE_END.split(text.strip()):
        raw = raw.strip()
        if not raw:
            continue
        ids = [i.strip() for group in _FACT_IDS.findall(raw) for i in group.split(",")]
        sentence = " ".join(_FACT_IDS.sub("", raw).split()).replace(" .", ".")
        if not sentence.strip(". "):
            continue
        cited = [by_id[i] for i in ids if i in by_id]
        if not cited:
            dropped.append(Dropped(text=sentence, reason="narrative: the sentence cites no known fact"))
            continue
        evidence = EvidenceText()
        for fact in cited:
            evidence.add_text(fact.text)
        problem = support_problem(sentence, [], evidence, names=names)
        if problem:
            dropped.append(Dropped(text=sentence, reason=f"narrative: {problem}"))
            continue
        citations = list({(c.resource, c.note_span): c for f in cited for c in f.citations}.values())
        kept.append(SummaryItem(text=sentence, citations=citations, source="narrative"))
    return kept, dropped


def chat_url(url: str) -> str:
    """The chat-completions URL of an endpoint given as a base (``.../v1``) or in full."""
    url = url.rstrip("/")
    return url if url.endswith("/chat/completions") else f"{url}/chat/completions"


def add_narrative(summary: Summary, url: str, model: str = "default", timeout: float = 60.0) -> Summary:
    """Ask the endpoint for prose over the fact sheet and keep only the checked sentences
    (in ``summary.narrative``); failures become a warning."""
    import httpx

    facts = fact_sheet(summary)
    if not facts:
        summary.warnings.append("narrative skipped: the summary has no facts")
        return summary
    body = {
        "model": model,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": "\n".join(f"{f.id}: {f.text}" for f in facts)},
        ],
    }
    try:
        response = httpx.post(chat_url(url), json=body, timeout=timeout)
        response.raise_for_status()
        content = response.json()["choices"][0]["message"]["content"]
    except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as err:
        summary.warnings.append(f"narrative endpoint gave no usable answer ({type(err).__name__})")
        return summary
    kept, dropped = check_sentences(str(content), facts)
    summary.narrative = kept
    summary.dropped += dropped
    return summary
