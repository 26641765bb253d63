"""Classes of false positives dropped after the CRF and the cues (words as data in
``data/deid_not_phi.json``): a place that is only a unit or generic word ("transfer to the vicu"), a
"place" with no letters ("2", "1700", "q3"), a CRF "place" of one English word that is no place or
name with no span beside it ("in worst case"; "Lake" of "Lake Dunmore" stays), a weekday (no PHI
under Safe Harbor), a bare one- or two-digit model "date" with no month,
ordinal, apostrophe or slash beside it ("ABG 7.45, 19, -9"), a "phone" ``ddd-dddd`` that is a
range of a measurement ("SVR 900-1300"), a place that is only a US state (Safe Harbor keeps states:
"back to California"), and a one-letter model "name" with no name beside it ("L rad aline", "R.T.").
Generic words at the ends of a place are trimmed off it ("Fairhaven [House]", "Ardmore [2]"), and
"Hospital" at its end ("Westbrook [Hospital]"): they are no identifier and the corpus gold leaves them
out. A model or cue "name" or "place" made only of drug names ("Levaquin", a typo "Klonapin") is
dropped unless a title precedes it."""

from __future__ import annotations

import re

from carelens.privacy.lexicon import is_drug, is_english, lexicon, word_lists
from carelens.privacy.stopwords import STOP_WORDS
from carelens.privacy.tokens import PhiSpan

_WORDS = re.compile(r"[^\W\d_]+")
_BARE_NUMBER = re.compile(r"\d{1,2}")
_RANGE = re.compile(r"(\d{3})-(\d{4})")


def _lists() -> dict[str, frozenset[str]]:
    return word_lists("deid_not_phi.json")


def _common(word: str, text: str, value: str) -> bool:
    """An English word that is no place of the lexicon ("worst", "golden": a surname too, but a place
    of one word is no surname), not capitalised in a mixed-case text ("Belgium") and no address word
    ("Apt")."""
    lex = lexicon()
    if value[0].isupper() and not value.isupper() and not text.isupper():
        return False
    return word not in _lists()["address_words"] and (
        is_english(word)
        or (
            word in lex.common_words
            and word not in lex.cities
            and word not in lex.states
            and word not in lex.place_first_words
            and word not in lex.us_places
        )
    )


def not_phi(text: str, spans: list[PhiSpan]) -> list[PhiSpan]:
    """``spans`` less the false-positive classes above, places trimmed of their generic words."""
    near = {s.start - 1 for s in spans} | {s.end + 1 for s in spans}  # a span one space away
    names = {p for s in spans if s.type == "NAME" and s.end - s.start > 1 for p in (s.start, s.end)}
    out = []
    for s in spans:
        if _false(text, s, near) or _lone_letter(text, s, names) or _drug(text, s):
            continue
        if s.type == "DATE" and s.source.startswith("model"):
            trimmed = _trim_date(text, s)
            if trimmed is None or _false(text, trimmed, near):
                continue
            s = trimmed
        if s.type in ("NAME", "LOCATION") and s.source.startswith("model"):
            s = _trim_stop_words(text, s)
        out.append(_trim_place(text, s) if s.type == "LOCATION" and s.source != "known" else s)
    return out


def _trim_stop_words(text: str, s: PhiSpan) -> PhiSpan:
    """A model name or place without stop words at its ends ("Dolores [on]", "VA [on]")."""
    lex = lexicon()

    def stop(m: re.Match[str]) -> bool:  # lower case ("Inc", "CO" stay); "bill" and "don" are names
        w = m.group(0).lower()
        return m.group(0).islower() and w in STOP_WORDS and not lex.is_name(w) and w not in lex.census_first

    words = list(_PLACE_WORD.finditer(text, s.start, s.end))
    while len(words) > 1 and stop(words[-1]):
        words.pop()
    while len(words) > 1 and stop(words[0]):
        words.pop(0)
    if not words or (words[0].start() == s.start and words[-1].end() == s.end):  # no word: a symbol alone
        return s
    return PhiSpan(words[0].start(), words[-1].end(), s.type, s.source)


_DATE_PART = re.compile(r"[^\W_]+")
_ORDINAL = re.compile(r"\d{1,2}(?:st|nd|rd|th)")
_CLOCK_RANGE = re.compile(r"(?:[01]\d|2[0-3])[0-5]\d\s*(?:-+>?|to)\s*(?:[01]\d|2[0-3])[0-5]\d")


def _trim_date(text: str, s: PhiSpan) -> PhiSpan | None:
    """A model date without words no date holds at its ends ("XRT 10/29", "ON 10/5"); None for a
    clock-time range ("1900-0700")."""
    if _CLOCK_RANGE.fullmatch(text, s.start, s.end):
        return None
    parts = list(_DATE_PART.finditer(text, s.start, s.end))
    allowed = _lists()["date_neighbours"]

    def wordy(m: re.Match[str]) -> bool:
        part = m.group(0).lower()
        return not part.isdigit() and part not in allowed and not _ORDINAL.fullmatch(part)

    while parts and wordy(parts[-1]):
        parts.pop()
    while parts and wordy(parts[0]):
        parts.pop(0)
    if not parts:
        return None
    if parts[0].start() == s.start and parts[-1].end() == s.end:
        return s
    return PhiSpan(parts[0].start(), parts[-1].end(), s.type, s.source)


_PLACE_WORD = re.compile(r"[^\W_]+")
_LETTER_NAME_GAP = re.compile(r"\.? ?")


_TITLE_BEFORE = re.compile(r"\b(?:dr|doctor|mr|mrs|ms|miss|prof)\.?\s*$", re.IGNORECASE)


def _drug(text: str, s: PhiSpan) -> bool:
    """A model or cue name or place whose words are all drug names, with no title before it."""
    if s.type not in ("NAME", "LOCATION") or s.source in ("known", "dict", "rule"):
        return False
    words = _WORDS.findall(text, s.start, s.end)
    return (
        bool(words)
        and all(is_drug(w.lower()) for w in words)
        and not _TITLE_BEFORE.search(text, max(0, s.start - 10), s.start)
    )


_TIME = re.compile(r"(?:[01]\d|2[0-3])[0-5]\d")
_TIME_RANGE = re.compile(r"\s*(?:-+>?|to)\s*(?:[01]\d|2[0-3])[0-5]\d\b|(?<=\d)\s*(?:-+>?|to)\s*$")


def _time_range(text: str, s: PhiSpan) -> bool:
    """A model "date" that is a clock time of a range ("1900-0700", "0700->1930")."""
    if not _TIME.fullmatch(text, s.start, s.end):
        return False
    return bool(_TIME_RANGE.match(text, s.end) or _TIME_RANGE.search(text[max(0, s.start - 9) : s.start]))


def _undated_words(value: str) -> bool:
    """A model "date" holding a word that no date holds ("X3", "XRT", "3P", "ON")."""
    words = _WORDS.findall(value)
    return bool(words) and "/" not in value and any(w.lower() not in _lists()["date_neighbours"] for w in words)


def _lone_letter(text: str, s: PhiSpan, names: set[int]) -> bool:
    """A one-letter "name" of the model with no other name one space or ". " away ("L rad al", "W&D")."""
    if s.type != "NAME" or not s.source.startswith("model") or s.end - s.start != 1:
        return False
    after = _LETTER_NAME_GAP.match(text, s.end)
    before = text[max(0, s.start - 2) : s.start]
    return not (after is not None and after.end() in names) and not (
        before.endswith(" ") and (s.start - 1 in names or s.start - 2 in names)
    )


def _trim_place(text: str, s: PhiSpan) -> PhiSpan:
    """``s`` without generic words at its ends ("Fairhaven House", "resides NH") nor a one-digit ward number
    after a word ("Ardmore 2"), when a specific word remains ("Unit 4719" stays whole)."""
    generic, tail_only = _lists()["place_generic"], _lists()["place_generic_tail"]
    words = list(_PLACE_WORD.finditer(text, s.start, s.end))

    def trimmable(m: re.Match[str], tail: bool) -> bool:
        w = m.group(0)
        if tail and w.isdigit():  # a ward's number ("Ardmore 2"), not a house number ("Sludevej 13")
            return len(w) == 1 and not words[0].group(0).isdigit()
        if tail and w.lower() in tail_only:
            return True
        return w.lower() in generic and not (not tail and len(words) > 1 and words[1].group(0).isdigit())

    while len(words) > 1 and trimmable(words[-1], True):
        words.pop()
    while len(words) > 1 and trimmable(words[0], False):
        words.pop(0)
    if not words or (words[0].start() == s.start and words[-1].end() == s.end):
        return s
    end = words[-1].end()
    if text.startswith(("'s", "’s"), end):  # "St. Mary's"
        end += 2
    return PhiSpan(words[0].start(), min(max(end, words[-1].end()), s.end), s.type, s.source)


def _false(text: str, s: PhiSpan, near: set[int]) -> bool:
    lists = _lists()
    value = text[s.start : s.end]
    if s.type == "LOCATION" and s.source != "known":
        words = [w.lower() for w in _WORDS.findall(value)]
        alone = s.end not in near and s.start not in near  # "Lake" in "Lake David" is a place
        if s.source == "model" and value.isalpha() and alone and _common(value.lower(), text, value):
            return True
        if value.isdecimal():  # a time ("1700") or a small number, not a zip code or house number
            return len(value) <= 2 or (len(value) == 4 and int(value[:2]) < 24 and int(value[2:]) < 60)
        if not any(c.isdigit() for c in value) and sum(c.isalpha() for c in value) < 2:
            return True
        state = value.lower()
        if s.source.startswith("model") and state in lexicon().states and state not in lists["state_cities"]:
            return True  # a state alone is no Safe Harbor identifier
        return bool(words) and all(w in lists["unit_words"] for w in words)
    if s.type == "DATE" and value.lower() in lists["weekdays"]:
        return True
    if s.type == "DATE" and s.source.startswith("model") and (_time_range(text, s) or _undated_words(value)):
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
