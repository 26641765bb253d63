"""Propagation across the notes of one batch (a "dynamic dictionary"): a name the detector finds with
confidence in one note (after a title, by a context cue, a known identifier, the CRF at
``crf.CONFIDENT``) is a name wherever it occurs in the batch's other notes, and so is a multi-word
place; common, clinical and English words, and very common first names that are words, are not.

``confident_names(text, proposals)`` reads one note's strings; ``add_batch_names(text, spans, names)``
labels their other occurrences in a note. The batch is two passes (collect, then apply), so memory
holds the strings only (at most ``MAX_NAMES``). Both read the note as the detectors do (``fold``: a name
with a zero-width space or soft hyphen inside is the plain name).
"""

from __future__ import annotations

import itertools
from bisect import bisect_right

from carelens.privacy.fold import fold, unfold
from carelens.privacy.lexicon import CLINICAL_WORDS, EPONYMS, lexicon
from carelens.privacy.names import VERY_COMMON
from carelens.privacy.tokens import PhiSpan, Tok, tokenize

MAX_NAMES = 100_000
CONFIDENT_SOURCES = frozenset({"model!", "known", "dict"})  # and "cue" for words of the name lists
PLACE_TYPES = frozenset({"LOCATION", "CITY", "HOSPITAL", "ORGANIZATION"})


def confident_names(
    text: str, proposals: list[PhiSpan], vocabulary: frozenset[str] = frozenset()
) -> set[tuple[str, ...]]:
    """The names (one word each) and multi-word places that ``proposals`` (unmerged, with sources)
    give with confidence, as tuples of lower-cased words; no word of ``vocabulary`` (the CRF's: words
    seen often outside PHI, "diuresis") is a name."""
    out: set[tuple[str, ...]] = set()
    for s in proposals:
        if s.source not in CONFIDENT_SOURCES and s.source != "cue":
            continue
        words = [t for t in tokenize(fold(text[s.start : s.end])[0]) if t.alpha]
        if s.type == "NAME":
            out.update(
                (t.low,)
                for t in words
                if _name_word(t) and t.low not in vocabulary and (s.source != "cue" or _listed(t.low))
            )
        elif (
            s.type in PLACE_TYPES
            and s.source in CONFIDENT_SOURCES
            and len(words) >= 2
            and any(_name_word(t) for t in words)
        ):
            out.add(tuple(t.low for t in words))
    return out


def _listed(word: str) -> bool:
    lex = lexicon()
    return lex.is_name(word) or word in lex.census_last


def _name_word(tok: Tok) -> bool:
    low = tok.low
    if len(low) < 3 or low in VERY_COMMON or low in CLINICAL_WORDS or low in EPONYMS:
        return False
    return low not in lexicon().common_words


def first_words(names: set[tuple[str, ...]]) -> frozenset[str]:
    """The first word of each of ``names`` (where ``add_batch_names`` looks further)."""
    return frozenset(name[0] for name in names)


def add_batch_names(
    text: str, spans: list[PhiSpan], names: set[tuple[str, ...]], firsts: frozenset[str] | None = None
) -> list[PhiSpan]:
    """The occurrences in ``text`` of the batch's ``names`` that no span of ``spans`` covers (``firsts``:
    their ``first_words``, when the caller keeps them for a batch)."""
    if not names:
        return []
    firsts = first_words(names) if firsts is None else firsts
    view, positions = fold(text)
    tokens = [t for t in tokenize(view) if t.alpha]
    found: list[PhiSpan] = []
    for i, tok in enumerate(tokens):
        if tok.low not in firsts:
            continue
        candidates: list[tuple[str, ...]] = [(tok.low,)] if (tok.low,) in names else []
        for n in (2, 3, 4):
            group = tokens[i : i + n]
            if len(group) == n and all(view[a.end : b.start] == " " for a, b in itertools.pairwise(group)):
                key = tuple(t.low for t in group)
                if key in names:
                    candidates.append(key)
        for key in candidates:
            found.append(
                PhiSpan(tok.start, tokens[i + len(key) - 1].end, "NAME" if len(key) == 1 else "LOCATION", "batch")
            )
    covered = sorted((s.start, s.end) for s in spans)
    return [s for s in unfold(found, positions) if not _inside(covered, s.start, s.end)]


def _inside(covered: list[tuple[int, int]], start: int, end: int) -> bool:
    k = bisect_right(covered, (start, 1 << 62)) - 1
    return k >= 0 and covered[k][0] <= start and covered[k][1] >= end
