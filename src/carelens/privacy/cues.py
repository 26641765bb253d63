"""Context cues after the CRF: a word the model's vocabulary does not know (the vocabulary holds only
words seen often outside PHI), in a position where notes put identifiers, is PHI: after a clinician's
title ("dr murphy", "NP DJURIC"), before a credential ("J. Yi, MD", "DAN A. FORMAN-LYONS, RRT") or
"aware", after a relative ("son, Ed", "dtr suzette"), before a place word ("Baltimore Rehab"); and
dates the CRF misses (month/year "7/81", month/day/year, a month/day after a dated event, month names).
The cue words are data (``data/deid_cues.json``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import pairwise

from carelens.privacy.crf import CrfToken
from carelens.privacy.lexicon import lexicon, word_lists
from carelens.privacy.stopwords import STOP_WORDS
from carelens.privacy.tokens import PhiSpan

# month/year with a year of 32-99, or month/day/year; not part of a longer run of numbers or a ratio
_MONTH_YEAR = re.compile(r"(?<![\d./'])(?:1[0-2]|0?[1-9])/(?:[3-9]\d)(?![\d/%.])")
_FULL = re.compile(r"(?<![\d./'])(?:1[0-2]|0?[1-9])/(?:3[01]|[12]\d|0?[1-9])/(?:\d{2}|\d{4})(?![\d/%])")
_MONTH_DAY = re.compile(r"(?<![\d./'])(?:1[0-2]|0?[1-9])/(?:3[01]|[12]\d|0?[1-9])(?![\d/%])")


def _cues() -> dict[str, frozenset[str]]:
    return word_lists("deid_cues.json")


def cue_spans(text: str, tokens: list[CrfToken], vocabulary: frozenset[str]) -> list[PhiSpan]:
    """NAME, LOCATION and DATE spans found by the cues above (``tokens``: the CRF's tokens)."""
    cues = _cues()
    lex = lexicon()
    words = [i for i, t in enumerate(tokens) if t.text[0].isalpha()]

    def unknown(i: int) -> bool:
        w = tokens[i].low
        if w in vocabulary or w in STOP_WORDS or w in lex.clinical_words or len(w) < 2:
            return False
        return (w not in lex.common_words or lex.is_name(w) or w in lex.us_places or w in lex.census_last
                or w in lex.census_first)  # fmt: skip

    def loose(i: int) -> bool:
        w = tokens[i].low
        return (
            w not in vocabulary
            and w not in STOP_WORDS
            and len(w) >= 2
            and (w not in lex.clinical_words or lex.is_name(w))
        )

    def gap(i: int, j: int) -> str:
        return text[tokens[i].end : tokens[j].start]

    out: list[PhiSpan] = []
    n = len(tokens)
    for k, i in enumerate(words):
        w = tokens[i].low
        nxt = words[k + 1] if k + 1 < len(words) else None
        prv = words[k - 1] if k else None
        near_next = nxt is not None and gap(i, nxt) in (" ", ". ", ", ", ": ", "-", " - ", ",", ":", "(")
        if w in cues["titles"] and near_next and nxt is not None and loose(nxt):
            out.append(PhiSpan(tokens[nxt].start, tokens[nxt].end, "NAME", "cue"))
            if k + 3 < len(words) and tokens[words[k + 2]].low == "and" and loose(words[k + 3]):  # "drs x and y"
                out.append(PhiSpan(tokens[words[k + 3]].start, tokens[words[k + 3]].end, "NAME", "cue"))
        if (
            w in cues["initial_titles"]
            and nxt is not None
            and len(tokens[nxt].text) == 1
            and gap(i, nxt) in (" ", ". ")
            and text[tokens[nxt].end : tokens[nxt].end + 1] in (".", " ", ",", "")
        ):  # "Mr. K.", "MS S. CARE"
            out.append(PhiSpan(tokens[nxt].start, tokens[nxt].end, "NAME", "cue"))
        if (
            w in cues["family"]
            and prv is not None
            and gap(prv, i) in (" (", ", ", " - ", "(")
            and unknown(prv)
            and tokens[prv].low not in lex.common_words
        ):  # "spoke with Dorota (wife)", "Kwame, son, called"
            out.append(PhiSpan(tokens[prv].start, tokens[prv].end, "NAME", "cue"))
        if w in cues["family_tails"] and prv is not None and gap(prv, i) == " " and unknown(prv):
            out.append(PhiSpan(tokens[prv].start, tokens[prv].end, "NAME", "cue"))
        if (
            w in cues["family"]
            and near_next
            and nxt is not None
            and gap(i, nxt).strip(" ,:-(") == ""
            and (unknown(nxt) or _cased_first_name(tokens[i].text, tokens[nxt].text))
        ):
            end = nxt
            after = words[k + 2] if k + 2 < len(words) else None
            if after is not None and gap(nxt, after) == " " and unknown(after):
                end = after
            out.append(PhiSpan(tokens[nxt].start, tokens[end].end, "NAME", "cue"))
        if (w in cues["credentials"] or w in cues["aware"]) and prv is not None:
            out += _backwards(text, tokens, words, k, unknown, "NAME", w in cues["credentials"])
        if w in cues["place_tails"]:
            out += _place_tail(text, tokens, words, k, unknown, cues["place_tail_heads"], cues["place_prefixes"])
        if w in cues["university"] and near_next and nxt is not None and tokens[nxt].low in lex.states:
            out.append(PhiSpan(tokens[i].start, tokens[nxt].end, "LOCATION", "cue"))
        if (
            len(w) == 1
            and nxt is not None
            and gap(i, nxt) == ". "
            and text[tokens[i].start - 1 : tokens[i].start] in (" ", "(", "")
        ):
            apostrophe = _APOSTROPHE_NAME.match(text, tokens[nxt].start)
            if apostrophe is not None and apostrophe.group(1).lower() not in vocabulary:  # "j. o'brien"
                out.append(PhiSpan(tokens[i].start, apostrophe.end(), "NAME", "cue"))
            elif unknown(nxt) and tokens[nxt].low not in lex.common_words:
                out.append(PhiSpan(tokens[i].start, tokens[nxt].end, "NAME", "cue"))
        moved = prv is not None and (
            tokens[prv].low in cues["move_verbs"]
            or (tokens[prv].low == "to" and k >= 2 and tokens[words[k - 2]].low in cues["move_verbs"])
        )
        if (
            (w in cues["place_cues"] or (w in ("to", "the") and moved))
            and near_next
            and nxt is not None
            and 2 <= len(tokens[nxt].low) <= 4
            and unknown(nxt)
            and tokens[nxt].low not in lex.common_words
            and not lex.is_name(tokens[nxt].low)
        ):
            out.append(PhiSpan(tokens[nxt].start, tokens[nxt].end, "LOCATION", "cue"))
        if (
            w == "st"
            and near_next
            and nxt is not None
            and tokens[nxt].low in lex.first_names
            and tokens[nxt].text[0].isupper()
        ):
            end = tokens[nxt].end
            if text.startswith(("'s", "’s"), end):  # "St Mary's"
                end += 2
            out.append(PhiSpan(tokens[i].start, end, "LOCATION", "cue"))
        if w in cues["phrase_cues"] and near_next and nxt is not None:
            out += _place_phrase(text, tokens, words, k + 1, vocabulary)
        if (
            w in cues["ward_cues"]
            and nxt is not None
            and gap(i, nxt) in (" ", ": ")
            and len(tokens[nxt].low) >= 4
            and unknown(nxt)
            and nxt + 2 < n
            and text[tokens[nxt].end : tokens[nxt + 1].start] in ("", " ")
            and tokens[nxt + 1].text.isdigit()
            and len(tokens[nxt + 1].text) == 1
        ):
            out.append(PhiSpan(tokens[nxt].start, tokens[nxt].end, "LOCATION", "cue"))
        if w in cues["months"] and (w not in STOP_WORDS) and _month_context(text, tokens, i, n):
            out.append(PhiSpan(tokens[i].start, tokens[i].end, "DATE", "cue"))
    out += _dates(text, tokens, cues["date_cues"])
    return out


def _cased_first_name(cue: str, word: str) -> bool:
    """A capitalised first name after a relative in mixed-case text ("Son, Ed, called"), even when the
    word is also an abbreviation ("ED")."""
    return not cue.isupper() and word.istitle() and len(word) >= 2 and word.lower() in lexicon().census_first


def _place_tail(
    text: str,
    tokens: list[CrfToken],
    words: list[int],
    k: int,
    unknown: Callable[[int], bool],
    heads: frozenset[str],
    prefixes: frozenset[str],
) -> list[PhiSpan]:
    """One or two unknown words before a place word ``words[k]`` ("Baltimore Rehab"), also before a
    head word ("Baltimore Med Ctr"), with a prefix word before them ("Greater", "North")."""

    def spaced(a: int, b: int) -> bool:  # words[a] and words[b] one space apart
        return text[tokens[words[a]].end : tokens[words[b]].start] == " "

    tail = k
    if k >= 1 and tokens[words[k - 1]].low in heads and spaced(k - 1, k):
        k -= 1
    if k < 1 or not spaced(k - 1, k) or not unknown(words[k - 1]):
        return []
    first = k - 1
    if first >= 1 and spaced(first - 1, first) and unknown(words[first - 1]):
        first -= 1
    if first >= 1 and spaced(first - 1, first) and tokens[words[first - 1]].low in prefixes:
        first -= 1
    return [PhiSpan(tokens[words[first]].start, tokens[words[tail]].end, "LOCATION", "cue")]


def _place_phrase(
    text: str, tokens: list[CrfToken], words: list[int], k: int, vocabulary: frozenset[str]
) -> list[PhiSpan]:
    """A US place of two or three words starting at ``words[k]`` ("in Bel Air", "from glen burnie"),
    one of them not a word of the CRF's vocabulary."""
    lex = lexicon()
    for size in (3, 2):
        group = words[k : k + size]
        if len(group) < size or any(text[tokens[a].end : tokens[b].start] != " " for a, b in pairwise(group)):
            continue
        lows = [tokens[j].low for j in group]
        if " ".join(lows) in lex.us_places and any(w not in vocabulary for w in lows):
            return [PhiSpan(tokens[group[0]].start, tokens[group[-1]].end, "LOCATION", "cue")]
    return []


def _backwards(
    text: str,
    tokens: list[CrfToken],
    words: list[int],
    k: int,
    unknown: Callable[[int], bool],
    kind: str,
    credential: bool,
) -> list[PhiSpan]:
    """Up to three unknown words (initials too) right before ``words[k]`` ("W. MAROTTA AWARE")."""
    first = None
    j = k - 1
    taken = 0
    while j >= 0 and taken < 4:
        i, after = words[j], words[j + 1]
        between = text[tokens[i].end : tokens[after].start]
        allowed = (" ", ". ", "-", ", ") if credential and j == k - 1 else (" ", ". ", "-")
        if between not in allowed:
            break
        initial = len(tokens[i].text) == 1
        if not (unknown(i) or (initial and between == ". ")) or (between == ". " and not initial):
            break
        first = i
        taken += 1
        j -= 1
    if first is None or (first == words[k - 1] and len(tokens[first].text) == 1):
        return []
    last = words[k - 1]
    return [PhiSpan(tokens[first].start, tokens[last].end, kind, "cue")]


def _month_context(text: str, tokens: list[CrfToken], i: int, n: int) -> bool:
    """A month name with a day or year next to it, or after "in"/"of"/"since"."""
    before = tokens[i - 1].low if i else ""
    after = tokens[i + 1] if i + 1 < n else None
    nxt_digit = (after is not None and after.text.isdigit()) or (
        after is not None and after.text in ",." and i + 2 < n and tokens[i + 2].text.isdigit()
    )
    return (
        nxt_digit
        or before in ("in", "of", "since", "early", "late", "mid")
        or (i + 2 < n and tokens[i + 1].low == "of" and tokens[i + 2].text.isdigit())
    )


def _dates(text: str, tokens: list[CrfToken], date_cues: frozenset[str]) -> list[PhiSpan]:
    out = [PhiSpan(m.start(), m.end(), "DATE", "cue") for r in (_FULL, _MONTH_YEAR) for m in r.finditer(text)]
    for m in _MONTH_DAY.finditer(text):
        before = text[max(0, m.start() - 20) : m.start()].split()
        if before and before[-1].lower().strip("?:-,") in date_cues:
            out.append(PhiSpan(m.start(), m.end(), "DATE", "cue"))
    return out


_APOSTROPHE_NAME = re.compile(r"[OoDd]['’]([A-Za-z]{3,})\b")
_RATIO = re.compile(r"(\d{1,2})/(\d{1,2})(/\d+%?)?")


def not_dates(text: str, spans: list[PhiSpan]) -> list[PhiSpan]:
    """Model ``a/b`` dates that are ratios: a fraction ("1/2 amp"), a pain score near "pain" ("3/10"), a
    ventilator setting ("PSV 10/5", "10/5/40%", "5/10 ... 40%")."""
    cues = _cues()
    out = []
    for s in spans:
        m = _RATIO.fullmatch(text, s.start, s.end) if s.type == "DATE" and s.source.startswith("model") else None
        if m is not None:
            a, b = int(m.group(1)), int(m.group(2))
            before = text[max(0, s.start - 25) : s.start].lower()
            after = text[s.end : s.end + 30].lower()
            if (
                (a < b <= 4)
                or (b == 10 and a <= 10 and "pain" in before + after)
                or (m.group(3) or "").endswith("%")
                or after[:1] == "%"
                or any(w in cues["settings"] for w in re.findall(r"[a-z-]+", before)[-3:])
            ):
                continue
        out.append(s)
    return out
