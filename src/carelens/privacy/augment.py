"""Surrogate-swap augmentation for training the CRF: copies of gold notes in which every word of a
name or place span is replaced by a word of carelens' own dictionaries (never the corpus'), so the
model learns names and places from their context and shape, not from the surrogates it was shown.

Each word of a ``NAME``/``LOCATION`` span is replaced by a word of the same kind: a first name by a
US Census first name, a surname by a Census surname, a place by a US place, and a word of no list
by an invented one (a rare Census surname with one letter changed, in no name, place or English
list), so the copies keep the share of unknown names the real notes have. Short words, digits,
hospital words ("GH", "Medical") and stop words stay. The same word gets the same replacement within
a note; the original's case (ALL CAPS, Title, lower) is kept; spans are re-computed. Seeded: the
same notes and seed give the same copies.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import cache

from carelens.privacy.corpus import CLASS_OF, Note
from carelens.privacy.lexicon import is_english, lexicon
from carelens.privacy.stopwords import STOP_WORDS

SWAPPED = frozenset({"NAME", "LOCATION"})
_WORD = re.compile(r"[^\W\d_]+")
_VOWELS = "aeiou"
_CONSONANTS = "bcdfghklmnprstvz"


@dataclass(frozen=True)
class _Pools:
    first: tuple[str, ...]
    last: tuple[str, ...]
    rare_last: tuple[str, ...]
    places: tuple[str, ...]


@cache
def _pools() -> _Pools:
    """The replacement words, sorted so that a seed gives the same draw on every machine."""
    lex = lexicon()
    last = tuple(sorted(w for w in lex.census_last if w.isalpha() and len(w) > 2))
    return _Pools(
        first=tuple(sorted(w for w in lex.census_first if w.isalpha() and len(w) > 2)),
        last=last,
        rare_last=tuple(w for w in last if lex.census_last[w] > 5000),
        places=tuple(sorted(p for p in lex.us_places if len(p) > 2 and p.replace(" ", "").isalpha())),
    )


def _kind(word: str, span_class: str) -> str | None:
    """What a word of a gold span is replaced by (None: kept)."""
    lex = lexicon()
    if len(word) <= 2 or word in STOP_WORDS or word in lex.hospital_words:
        return None
    if span_class == "LOCATION" and (word in lex.us_places or word in lex.cities or word in lex.states):
        return "place"
    if span_class == "LOCATION" and word in lex.common_words and word not in lex.census_first:
        return None  # "Holy", "Cross", "Square", "North": words of place names
    if word in lex.census_first or word in lex.first_names:
        return "first"
    if word in lex.census_last or word in lex.last_names:
        return "last"
    return "unknown"


def _invented(rng: random.Random) -> str:
    """A word that looks like a surname and is in no name, place or English list."""
    lex = lexicon()
    pool = _pools().rare_last
    while True:
        word = rng.choice(pool)
        i = rng.randrange(1, len(word))
        letters = _VOWELS if word[i] in _VOWELS else _CONSONANTS
        word = word[:i] + rng.choice(letters) + word[i + 1 :]
        if not (lex.is_name(word) or word in lex.census_last or word in lex.census_first or word in lex.us_places
                or word in lex.common_words or is_english(word)):  # fmt: skip
            return word


def _draw(kind: str, rng: random.Random) -> str:
    pools = _pools()
    if kind == "first":
        return rng.choice(pools.first)
    if kind == "last":
        return rng.choice(pools.last)
    if kind == "place":
        return rng.choice(pools.places)
    return _invented(rng)


def _cased(word: str, like: str) -> str:
    """``word`` in the case style of ``like``."""
    if like.isupper():
        return word.upper()
    if like.islower():
        return word
    return " ".join(w[:1].upper() + w[1:] for w in word.split(" "))


def swap_note(note: Note, rng: random.Random, suffix: str) -> Note:
    """A copy of ``note`` with the words of its name and place spans replaced (see the module doc)."""
    chosen: dict[tuple[str, str], str] = {}
    pieces: list[str] = []
    spans: list[tuple[int, int, str]] = []
    pos = 0
    shift = 0
    last_end = -1
    for start, end, kind in sorted(note.spans):
        span_class = CLASS_OF.get(kind, "")
        if start < last_end:  # overlapping gold: left as it is
            continue
        pieces.append(note.text[pos:start])
        new_start = start + shift
        segment = note.text[start:end]
        if span_class in SWAPPED:
            segment = _swap_words(segment, span_class, chosen, rng)
        pieces.append(segment)
        shift += len(segment) - (end - start)
        spans.append((new_start, end + shift, kind))
        pos = last_end = end
    pieces.append(note.text[pos:])
    return Note(note.id + suffix, note.patient, "".join(pieces), tuple(spans), note.synthetic)


def _swap_words(segment: str, span_class: str, chosen: dict[tuple[str, str], str], rng: random.Random) -> str:
    out = []
    pos = 0
    for m in _WORD.finditer(segment):
        word = m.group(0)
        low = word.lower()
        kind = _kind(low, span_class)
        if kind is None:
            continue
        key = (low, kind)
        if key not in chosen:
            chosen[key] = _draw(kind, rng)
        out += [segment[pos : m.start()], _cased(chosen[key], word)]
        pos = m.end()
    out.append(segment[pos:])
    return "".join(out)


def surrogate_copies(notes: list[Note], copies: int, seed: int = 14) -> list[Note]:
    """``copies`` surrogate-swapped copies of each note that has a name or place span (every other
    copy in ALL CAPS, as many real notes are); deterministic for a given ``seed``."""
    rng = random.Random(seed)
    out = []
    for note in notes:
        if not any(CLASS_OF.get(k) in SWAPPED for _, _, k in note.spans):
            continue
        for c in range(copies):
            copy = swap_note(note, rng, f"_swap{c}")
            if c % 2 == 1 and len(copy.text.upper()) == len(copy.text):
                copy = Note(copy.id, copy.patient, copy.text.upper(), copy.spans, copy.synthetic)
            out.append(copy)
    return out
