"""Classes of false positives dropped after the CRF and the cues (words as data in
``data/deid_not_phi.json``): a place that is only a unit or generic word ("transfer to the vicu"), a
"place" with no letters ("2", "1700", "q3"), a CRF "place" of one English word that is no place or
name with no span beside it ("in worst case"; "Lake" of "Lake Dunmore" stays), a weekday (no PHI
under Safe Harbor), a bare one- or two-digit model "date" with no month,
ordinal, apostrophe or slash beside it ("ABG 7.45, 19, -9"), and a "phone" ``ddd-dddd`` that is a
range of a measurement ("SVR 900-1300")."""

from __future__ import annotations

import re

from carelens.privacy.lexicon import lexicon, word_lists
from carelens.privacy.tokens import PhiSpan

_WORDS = re.compile(r"[^\W\d_]+")
_BARE_NUMBER = re.compile(r"\d{1,2}")
_RANGE = re.compile(r"(\d{3})-(\d{4})")


def _lists() -> dict[str, frozenset[str]]:
    return word_lists("deid_not_phi.json")


def _common(word: str, text: str, value: str) -> bool:
    """An English word that is no place or name of the lexicon ("worst", "explain"), not capitalised in
    a mixed-case text ("Belgium") and no address word ("Apt")."""
    lex = lexicon()
    if value[0].isupper() and not value.isupper() and not text.isupper():
        return False
    return (
        word not in _lists()["address_words"]
        and word in lex.common_words
        and word not in lex.cities
        and word not in lex.states
        and word not in lex.place_first_words
        and not lex.is_name(word)
    )


def not_phi(text: str, spans: list[PhiSpan]) -> list[PhiSpan]:
    """``spans`` less the false-positive classes above."""
    near = {s.start - 1 for s in spans} | {s.end + 1 for s in spans}  # a span one space away
    return [s for s in spans if not _false(text, s, near)]


def _false(text: str, s: PhiSpan, near: set[int]) -> bool:
    lists = _lists()
    value = text[s.start : s.end]
    if s.type == "LOCATION" and s.source != "known":
        words = [w.lower() for w in _WORDS.findall(value)]
        alone = s.end not in near and s.start not in near  # "Lake" in "Lake David" is a place
        if s.source == "model" and value.isalpha() and alone and _common(value.lower(), text, value):
            return True
        if value.isdigit():  # a time ("1700") or a small number, not a zip code or house number
            return len(value) <= 2 or (len(value) == 4 and int(value[:2]) < 24 and int(value[2:]) < 60)
        if not any(c.isdigit() for c in value) and sum(c.isalpha() for c in value) < 2:
            return True
        return bool(words) and all(w in lists["unit_words"] for w in words)
    if s.type == "DATE" and value.lower() in lists["weekdays"]:
        return True
    if s.type == "DATE" and s.source.startswith("model") and _BARE_NUMBER.fullmatch(value):
        before, after = text[max(0, s.start - 12) : s.start], text[s.end : s.end + 12]
        if "/" in text[max(0, s.start - 1) : s.end + 1] or text[s.end : s.end + 1] in ("'", "’"):
            return False
        near = {w.lower() for w in _WORDS.findall(before.rsplit("\n", 1)[-1] + " " + after.split("\n", 1)[0])}
        return not near & lists["date_neighbours"]
    if s.type == "PHONE" and s.source != "known":
        m = _RANGE.fullmatch(value)
        if m is not None and int(m.group(1)) < int(m.group(2)):
            seen = {w.lower() for w in _WORDS.findall(text[max(0, s.start - 25) : s.start])}
            return bool(seen & lists["range_words"]) or text[max(0, s.start - 7) : s.start].lower() == "in the "
    return False
