"""Context cues after the CRF: a word the model's vocabulary does not know (the vocabulary holds only
words seen often outside PHI), in a position where notes put identifiers, is PHI: after a clinician's
title ("dr murphy", "NP DJURIC"), before a credential ("J. Yi, MD", "DAN A. FORMAN-LYONS, RRT") or
"aware", after a relative ("son, Ed", "dtr suzette") or "spoke with", before a place word ("Baltimore Rehab"),
a hospital's name on its own ("Sinai"), a two-letter acronym after "to" where letter case tells nothing; and
dates the CRF misses (month/year "7/81", month/day/year, a month/day after a dated event, month names).
The cue words are data (``data/deid_cues.json``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from itertools import pairwise

from carelens.privacy.crf import CrfToken
from carelens.privacy.gating import Gated
from carelens.privacy.lexicon import is_drug, is_misspelt, lexicon, word_lists
from carelens.privacy.names import case_mode
from carelens.privacy.stopwords import STOP_WORDS
from carelens.privacy.tokens import PhiSpan

# month/year with a year of 32-99, or month/day/year; not part of a longer run of numbers or a ratio
# (gated: tried only at a digit of one or two before a slash)
_SLASH_GATE = r"[0-9](?<![\d./].)(?=\d?/)"
_MONTH_YEAR = Gated(re.compile(r"(?<![\d./'])(?:1[0-2]|0?[1-9])/(?:[3-9]\d)(?![\d/%.])"), _SLASH_GATE)
_FULL = Gated(
    re.compile(r"(?<![\d./'])(?:1[0-2]|0?[1-9])/(?:3[01]|[12]\d|0?[1-9])/(?:\d{2}|\d{4})(?![\d/%])"), _SLASH_GATE
)
_MONTH_DAY = Gated(re.compile(r"(?<![\d./'])(?:1[0-2]|0?[1-9])/(?:3[01]|[12]\d|0?[1-9])(?![\d/%])"), _SLASH_GATE)


def _cues() -> dict[str, frozenset[str]]:
    return word_lists("deid_cues.json")


def cue_spans(text: str, tokens: list[CrfToken], vocabulary: frozenset[str]) -> list[PhiSpan]:
    """NAME, LOCATION and DATE spans found by the cues above (``tokens``: the CRF's tokens)."""
    cues = _cues()
    lex = lexicon()
    words = [i for i, t in enumerate(tokens) if t.text[0].isalpha()]

    def unknown(i: int) -> bool:
        w = tokens[i].low
        if w in vocabulary or w in STOP_WORDS or w in lex.clinical_words or len(w) < 2 or is_drug(w):
            return False
        return (w not in lex.common_words or lex.is_name(w) or w in lex.us_places or w in lex.census_last
                or w in lex.census_first) and not is_misspelt(w, rare=False)  # fmt: skip

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
    mixed = case_mode(text) == "mixed"  # letter case tells names from words
    triggers = _triggers()
    for k, i in enumerate(words):
        w = tokens[i].low
        if w not in triggers and len(w) != 1:
            continue
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
        after = words[k + 2] if k + 2 < len(words) else None
        if (
            w in cues["family"]
            and nxt is not None
            and _punctuation_gap(gap(i, nxt))  # "son, Ed", "SISTER ,MARISOL", "DAUGHTER--TAMSIN"
            and not (
                mixed
                and tokens[nxt].text.islower()
                and tokens[nxt].low in lex.common_words
                and tokens[nxt].low not in lex.census_first
            )  # "wife works at ...", "son called"
            and (
                unknown(nxt)
                or tokens[nxt].low in cues["stop_word_names"]  # "son bill"
                or _cased_first_name(tokens[i].text, tokens[nxt].text)
                or (  # "son ray ostrowski": a first name that is also a word, then a surname
                    tokens[nxt].low in lex.census_first
                    and tokens[nxt].low not in STOP_WORDS
                    and after is not None
                    and gap(nxt, after) == " "
                    and unknown(after)
                )
            )
        ):
            end = nxt
            if after is not None and gap(nxt, after) == " " and unknown(after):
                end = after
            out.append(PhiSpan(tokens[nxt].start, tokens[end].end, "NAME", "cue"))
        if (w in cues["credentials"] or w in cues["aware"]) and prv is not None:
            out += _backwards(text, tokens, words, k, unknown, "NAME", w in cues["credentials"])
        if w in cues["hospital_names"] and (not mixed or tokens[i].text[0].isupper()):  # "transferred from Mercy"
            out.append(PhiSpan(tokens[i].start, tokens[i].end, "LOCATION", "cue"))
        if w in cues["place_tails"]:
            out += _place_tail(text, tokens, words, k, unknown, cues["place_tail_heads"], cues["place_prefixes"])
            if (
                mixed
                and prv is not None
                and k >= 2
                and tokens[words[k - 2]].low in cues["place_cues"]
                and gap(prv, i) == " "
                and 2 <= len(tokens[prv].text) <= 5
                and tokens[prv].text.isupper()
                and tokens[prv].low not in vocabulary
                and tokens[prv].low not in cues["departments"]
            ):  # "at/from" + an acronym + a place word in mixed-case text ("from MS Rehab"), even a clinical word
                out.append(PhiSpan(tokens[prv].start, tokens[prv].end, "LOCATION", "cue"))
        if (
            w in cues["departments"]
            and prv is not None
            and gap(prv, i) == " "
            and 2 <= len(tokens[prv].text) <= 5
            and tokens[prv].text.isupper()
            and unknown(prv)
            and tokens[prv].low not in lex.common_words
        ):  # a hospital's acronym before one of its departments ("KMH EW", "KMH MICU")
            out.append(PhiSpan(tokens[prv].start, tokens[prv].end, "LOCATION", "cue"))
        if (
            w in cues["employment"]
            and nxt is not None
            and gap(i, nxt) == " "
            and tokens[nxt].low in cues["employers_after"]
        ):
            out += _employer(text, tokens, words, k + 2, vocabulary)
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
        acronym = w in cues["acronym_cues"] and not mixed and nxt is not None and len(tokens[nxt].low) == 2
        if (
            (w in cues["place_cues"] or (w in ("to", "the") and moved) or acronym)  # acronym: "DISPO TO XY"
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
        if (
            w == "with"
            and prv is not None
            and tokens[prv].low in cues["contact_verbs"]
            and nxt is not None
            and gap(i, nxt) == " "
            and _listed_name(tokens[nxt], vocabulary, mixed)
        ):  # "spoke with ignatius re: plan"
            out.append(PhiSpan(tokens[nxt].start, tokens[nxt].end, "NAME", "cue"))
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


@lru_cache(maxsize=1)
def _triggers() -> frozenset[str]:
    """Every word a cue of ``cue_spans`` opens with (a token of one letter opens one too): the loop passes
    any other word by."""
    lists = ("titles", "initial_titles", "family", "family_tails", "credentials", "aware", "hospital_names",
             "place_tails", "departments", "employment", "university", "place_cues", "acronym_cues", "phrase_cues",
             "ward_cues", "months")  # fmt: skip
    return frozenset().union(*(_cues()[name] for name in lists), ("to", "the", "st", "with"))


def _punctuation_gap(gap: str) -> bool:
    """Spaces and punctuation only ("", " ", ", ", " ,", "--", " ("), at most three characters."""
    return len(gap) <= 3 and "\n" not in gap and gap.strip(" ,.:;-(") == ""


def _employer(text: str, tokens: list[CrfToken], words: list[int], k: int, vocabulary: frozenset[str]) -> list[PhiSpan]:
    """One to three capitalised words from ``words[k]`` that are no word of the CRF's ``vocabulary``
    ("CEO OF QUELLCORP", "works for Acme Tool")."""
    group: list[int] = []
    for j in words[k : k + 3]:
        t = tokens[j]
        if not (t.text[0].isupper() and t.low not in vocabulary and t.low not in STOP_WORDS and len(t.low) >= 2):
            break
        if group and text[tokens[group[-1]].end : t.start] != " ":
            break
        group.append(j)
    return [PhiSpan(tokens[group[0]].start, tokens[group[-1]].end, "LOCATION", "cue")] if group else []


def coordinated_names(
    text: str, tokens: list[CrfToken], spans: list[PhiSpan], vocabulary: frozenset[str]
) -> list[PhiSpan]:
    """Names joined to a found name by "and" or "&", a title between allowed: "Drs Okonkwo and
    Vallejo", "MARA VELTRI AND DR. OKONKWO", "inez and bo": one or two words on the other side that
    are no word of ``vocabulary`` nor an English, clinical or stop word."""
    lex = lexicon()
    titles = _cues()["titles"] | _cues()["initial_titles"]

    def name_like(t: CrfToken) -> bool:
        w = t.low
        return (
            t.text[0].isalpha()
            and len(w) >= 2
            and w not in vocabulary
            and w not in STOP_WORDS
            and w not in lex.clinical_words
            and not is_drug(w)
            and (w not in lex.common_words or lex.is_name(w) or w in lex.census_last)
        )

    starts = {s.start for s in spans if s.type == "NAME"}
    ends = {s.end for s in spans if s.type == "NAME"}
    out: list[PhiSpan] = []
    n = len(tokens)
    for i, t in enumerate(tokens):
        if t.low not in ("and", "&") or i == 0 or i + 1 >= n:
            continue
        left, right = i - 1, i + 1
        if tokens[right].low in titles:
            right += 2 if right + 1 < n and tokens[right + 1].text == "." else 1
        if right >= n or text[tokens[left].end : t.start] != " ":
            continue
        if tokens[right].start in starts and name_like(tokens[left]):  # "MARA VELTRI and Dr. Okonkwo"
            first = (
                left - 1
                if left >= 1 and text[tokens[left - 1].end : tokens[left].start] == " " and name_like(tokens[left - 1])
                else left
            )
            out.append(PhiSpan(tokens[first].start, tokens[left].end, "NAME", "cue"))
        if tokens[left].end in ends and name_like(tokens[right]):  # "Okonkwo and Vallejo"
            last = (
                right + 1
                if right + 1 < n
                and text[tokens[right].end : tokens[right + 1].start] == " "
                and name_like(tokens[right + 1])
                else right
            )
            out.append(PhiSpan(tokens[right].start, tokens[last].end, "NAME", "cue"))
    return out


def _listed_name(tok: CrfToken, vocabulary: frozenset[str], mixed: bool) -> bool:
    """A word of a name list that is no word of the CRF's vocabulary, no stop or clinical word, and not in
    lower case in mixed-case text."""
    lex, w = lexicon(), tok.low
    return (
        (lex.is_name(w) or w in lex.census_first)
        and w not in vocabulary
        and w not in STOP_WORDS
        and w not in lex.clinical_words
        and not (mixed and tok.text.islower())
    )


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


_YEAR_APOSTROPHE = Gated(re.compile(r"(?<![\d.'’/])(\d{2})['’](?![\w'’\"])"), r"\d(?<![\d.'’/].)(?=\d['’])")
_WORD_BEFORE = re.compile(r"([A-Za-z]+)\W{0,2}$")


# two month/day dates glued ("10/03/10/04"), a month/day with a dotted year ("11/21.93"), a day or a
# range of days before a month name ("1->2 nov", "3 to 4 March")
_MD = r"(?:1[0-2]|0?[1-9])/(?:3[01]|[12]\d|0?[1-9])"
_GLUED = Gated(re.compile(rf"(?<![\d./]){_MD}/{_MD}(?![\d/%])|(?<![\d./]){_MD}\.\d{{2}}(?![\d./%])"), _SLASH_GATE)
# month names, not "may", "mar" (the medication record) nor "dec" ("O2 dec to 4L")
_MONTHS = (r"(?:january|february|march|april|june|july|august|september|october|november|december"
           r"|jan|feb|apr|jun|jul|aug|sep|sept|oct|nov)\b")  # fmt: skip
_DAY = r"(?:3[01]|[12]\d|0?[1-9])"
_DAYS_MONTH = Gated(
    re.compile(rf"(?<![\w./]){_DAY}(?:\s*(?:-+>?|to)\s*{_DAY})?(?=\s+{_MONTHS})", re.I),
    r"[0-9](?<![\w./].)(?=\d?[\s\-tT])",
)


def _dates(text: str, tokens: list[CrfToken], date_cues: frozenset[str]) -> list[PhiSpan]:
    out = [PhiSpan(m.start(), m.end(), "DATE", "cue") for r in (_FULL, _MONTH_YEAR, _GLUED, _DAYS_MONTH)
           for m in r.finditer(text)]  # fmt: skip
    distance = _cues()["distance_words"]
    for m in _YEAR_APOSTROPHE.finditer(text):  # "CVA 74'", "repair in 14'": a year; not "walked 20'"
        word = _WORD_BEFORE.search(text, max(0, m.start() - 20), m.start())
        if word is not None and word.group(1).lower() not in distance:
            out.append(PhiSpan(m.start(1), m.end(1), "DATE", "cue"))
    for m in _MONTH_DAY.finditer(text):
        before = text[max(0, m.start() - 20) : m.start()].split()
        if before and before[-1].lower().strip("?:-,") in date_cues:
            out.append(PhiSpan(m.start(), m.end(), "DATE", "cue"))
    return out


_APOSTROPHE_NAME = re.compile(r"[OoDd]['’]([A-Za-z]{3,})\b")


def _pain(before: str, words: list[str]) -> bool:
    """A pain score's context: a pain word near it, or "#" right before it ("#4/10")."""
    return before.endswith("#") or any(w in _cues()["pain_words"] for w in words)


_RATIO = re.compile(r"(\d{1,2})/(\d{1,2})(/\d+%?)?")


def not_dates(text: str, spans: list[PhiSpan]) -> list[PhiSpan]:
    """Model ``a/b`` dates that are ratios: a fraction ("1/2 amp"), no month ("40/19"), a pain score
    ("3/10" near "pain", "#4/10"), a murmur's grade ("3/6 SEM"), a ventilator setting ("PSV 10/5",
    "10/5 BIPAP", "10/5/40%", "5/10 ... 40%")."""
    cues = _cues()
    out = []
    for s in spans:
        m = _RATIO.fullmatch(text, s.start, s.end) if s.type == "DATE" and s.source.startswith("model") else None
        if m is not None:
            a, b = int(m.group(1)), int(m.group(2))
            before = text[max(0, s.start - 25) : s.start].lower()
            after = text[s.end : s.end + 30].lower()
            words_before = re.findall(r"[a-z0-9-]+", before)[-3:]
            words_after = re.findall(r"[a-z0-9]+", after)[:2]
            if (
                (a < b <= 4)
                or (a > 12 and not m.group(3))  # no month: "13/10", "40/19"
                or (b == 10 and a <= 10 and ("pain" in before + after or _pain(before, words_before + words_after)))
                or (b == 6 and a <= 6 and words_after[:1] and words_after[0] in cues["murmur_words"])
                or (m.group(3) or "").endswith("%")
                or after[:1] == "%"
                or any(w in cues["settings"] for w in words_before + words_after[:1])
            ):
                continue
        out.append(s)
    return out
