"""Find PHI in text: rules (``rules``), dictionaries (``names``), context cues (``cues``), the
patient's known identifiers (``known_in_text``) and a learned sequence model (a CRF, ``crf``),
combined with recall first.

``detect_phi(text, context)`` returns non-overlapping ``PhiSpan`` s sorted by position, with
offsets into ``text``. The rule and dictionary layers are the CRF's hints; what the CRF flags is
kept, plus identifiers with a shape (phones, e-mails, ids, full dates...), names right after a
title, what the context cues after the CRF find (``cues``: an unknown word after "dr" or a relative,
before a credential or "aware", month/year dates), names joined by "and" to a found name, the
other occurrences of a name or a place found with confidence, and the patient's own identifiers; model ``a/b``
dates that are ratios and one-word clinical spans are dropped. Overlapping proposals are merged (the
most specific type wins).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from carelens.privacy.batch import PLACE_TYPES
from carelens.privacy.context import PatientContext
from carelens.privacy.crf import CrfModel, crf_model, crf_tokens, token_hints
from carelens.privacy.cues import coordinated_names, cue_spans, not_dates
from carelens.privacy.filters import not_phi
from carelens.privacy.fold import fold, unfold
from carelens.privacy.known_in_text import known_spans
from carelens.privacy.lexicon import CLINICAL_WORDS, EPONYMS, is_english, lexicon
from carelens.privacy.names import VERY_COMMON, case_mode, name_spans
from carelens.privacy.rules import rule_spans
from carelens.privacy.tokens import PhiSpan, Tok, tokenize

# The order decides which type wins when spans of two types overlap.
TYPE_PRIORITY = [
    "EMAIL", "URL", "IP", "SSN", "PHONE", "FAX", "MRN", "ACCOUNT", "HEALTHPLAN", "LICENSE", "DEVICE", "VEHICLE",
    "DATE", "AGE", "ADDRESS", "ZIP", "HOSPITAL", "ORGANIZATION", "CITY", "STATE", "NAME", "ID", "LOCATION",
]  # fmt: skip
_RANK = {t: i for i, t in enumerate(TYPE_PRIORITY)}
# rule types kept as they are next to the CRF (identifiers with a shape)
SHAPED = frozenset(
    {
        "EMAIL",
        "URL",
        "IP",
        "SSN",
        "PHONE",
        "FAX",
        "MRN",
        "ACCOUNT",
        "HEALTHPLAN",
        "LICENSE",
        "DEVICE",
        "VEHICLE",
        "ZIP",
        "AGE",
        "ID",
    }
)


def detect_phi(
    text: str, context: PatientContext | None = None, model: bool = True, crf: CrfModel | None = None
) -> list[PhiSpan]:
    """Every PHI span in ``text`` (merged, sorted, offsets into ``text``).

    With the learned layer (``crf``, else the shipped model unless ``model`` is false) the rule and
    dictionary layers are the CRF's hints and only identifiers with a shape (``SHAPED``) are kept
    from the rules directly; without it, every layer's proposal is kept (recall first).
    """
    return merge_spans(proposals(text, context, model, crf), text)


def proposals(
    text: str, context: PatientContext | None = None, model: bool = True, crf: CrfModel | None = None
) -> list[PhiSpan]:
    """What ``detect_phi`` merges: every layer's spans, each with its source (``batch`` reads the
    confident names of a note from them). The layers read the note through ``fold`` (look-alike
    characters as what they look like); the spans are offsets into ``text``."""
    view, positions = fold(text)
    return unfold(_proposals(view, context, model, crf), positions)


def _proposals(text: str, context: PatientContext | None, model: bool, crf: CrfModel | None) -> list[PhiSpan]:
    if not text.strip():
        return []
    rules = rule_spans(text)
    tokens = tokenize(text)
    layers = rules + name_spans(text, tokens, lexicon(), case_mode(text))
    spans = known_spans(text, tokens, context) if context is not None else []
    clf = crf if crf is not None else (crf_model() if model else None)
    if clf is None:
        spans += layers
    else:
        ctoks = crf_tokens(text)
        spans += [
            s
            for s in not_phi(text, rules)
            if s.type in SHAPED
            or (s.type == "DATE" and _FULL_DATE.search(text, s.start, s.end) and text[s.end : s.end + 1] != "%")
        ]  # "10/5/40%" is a ventilator setting
        spans += _titled(text, layers, clf.vocabulary)
        spans += _last_first(tokens, text, clf.vocabulary)
        model_spans = not_dates(text, _drop_words(text, clf.spans(text, ctoks, token_hints(ctoks, layers))))
        spans += not_phi(text, model_spans + cue_spans(text, ctoks, clf.vocabulary))
        spans += coordinated_names(text, ctoks, spans, clf.vocabulary)
    spans += _propagate_names(tokens, spans, clf.vocabulary if clf is not None else frozenset(), case_mode(text))
    spans += _propagate_places(text, tokens, spans, clf.vocabulary if clf is not None else frozenset(), case_mode(text))
    return spans


def _propagate_places(
    text: str, tokens: list[Tok], spans: list[PhiSpan], vocabulary: frozenset[str], mode: str = "mixed"
) -> list[PhiSpan]:
    """A word of a place found with confidence (by a rule, a cue, a dictionary or the CRF at ``CONFIDENT``)
    is that place everywhere in the same text ("transferred to GH ... back to GH"), unless it is a word of the
    CRF's vocabulary, a stop, clinical or English word, or a common word of no place list; in mixed-case text,
    not where it is in lower case."""
    lex = lexicon()
    words: set[str] = set()
    for s in spans:
        if s.type in PLACE_TYPES and s.source != "model":
            words.update(t.low for t in tokenize(text[s.start : s.end]) if t.alpha)
    words = {
        w
        for w in words
        if len(w) >= 2
        and w not in VERY_COMMON
        and w not in vocabulary
        and not is_english(w)
        and (w not in lex.common_words or w in lex.us_places or w in lex.cities)
    }
    if not words:
        return []
    covered = {s.start for s in spans}
    return [
        PhiSpan(t.start, t.end, "LOCATION", "propagated")
        for t in tokens
        if t.alpha and t.low in words and t.start not in covered and not (mode == "mixed" and t.text.islower())
    ]


# a date with day, month and year ("1951-07-23", "07/23/1951", "July 23, 1951"): kept as the rule found it
_FULL_DATE = re.compile(r"\d{1,4}\W\d{1,2}\W\d{2,4}|[A-Za-z]{3,9}\.?\s+\d{1,2}(?:st|nd|rd|th)?,?\s+\d{4}")
_TITLE_BEFORE = re.compile(r"\b(?:dr|doctor|mr|mrs|ms|miss|prof)\.?\s*$", re.IGNORECASE)


def _titled(text: str, layers: list[PhiSpan], vocabulary: frozenset[str]) -> list[PhiSpan]:
    """Dictionary names right after a title ("Dr. May Chen", "MRS. OKAFOR"), and the names that follow
    those unless they are words of the CRF's vocabulary ("DR. OKAFOR AWARE")."""
    out: list[PhiSpan] = []
    for s in sorted(x for x in layers if x.type == "NAME"):
        after_kept = (
            bool(out) and text[out[-1].end : s.start] == " " and text[s.start : s.end].lower() not in vocabulary
        )
        if after_kept or _TITLE_BEFORE.search(text, max(0, s.start - 10), s.start):
            out.append(s)
    return out


def _drop_words(text: str, spans: list[PhiSpan]) -> list[PhiSpan]:
    """Model spans that are not PHI after all: one clinical eponym ("Foley", "Cooley's") unless a title
    precedes it, an age of 89 or less ("67 yo", "45 year old") and a one-letter "place"."""
    out = []
    for s in spans:
        word = text[s.start : s.end].lower()
        if (word in EPONYMS or (word in CLINICAL_WORDS and not lexicon().is_name(word))) and not _TITLE_BEFORE.search(
            text, max(0, s.start - 10), s.start
        ):
            continue
        if word.isdigit() and int(word) <= 89 and _AGE_AFTER.match(text, s.end):
            continue
        if s.type == "LOCATION" and len(word) == 1 and word.isalpha():  # a side ("L IJ"), never a place
            continue
        out.append(s)
    return out


_AGE_AFTER = re.compile(r"\s*-?\s*(?:yo\b|y/o|y\.o\.|yr|year|years)", re.IGNORECASE)


def _last_first(tokens: list[Tok], text: str, vocabulary: frozenset[str] = frozenset()) -> list[PhiSpan]:
    """ "QUIXLEY, GLORIA" / "Quixley, Gloria": a capitalised word that is no ordinary or clinical word
    nor a word of the CRF's vocabulary ("DIURESIS, ADD"), a comma, and a first name, on one line."""
    lex = lexicon()
    out = []
    for i in range(len(tokens) - 2):
        a, comma, b = tokens[i], tokens[i + 1], tokens[i + 2]
        if comma.text != "," or not (a.alpha and b.alpha) or not (a.text[0].isupper() and b.text[0].isupper()):
            continue
        if text[a.end : comma.start] or text[comma.end : b.start] != " ":
            continue
        if b.low not in lex.first_names or b.low in VERY_COMMON:
            continue
        if len(a.low) < 3 or a.low in lex.common_words or a.low in VERY_COMMON or a.low in vocabulary:
            continue
        out.append(PhiSpan(a.start, b.end, "NAME", "dict"))
    return out


def layer_spans(text: str) -> list[PhiSpan]:
    """What the rule and dictionary layers propose (unmerged): the CRF's hints."""
    tokens = tokenize(text)
    return rule_spans(text) + name_spans(text, tokens, lexicon(), case_mode(text))


def _propagate_names(
    tokens: list[Tok], spans: list[PhiSpan], vocabulary: frozenset[str], mode: str = "mixed"
) -> list[PhiSpan]:
    """A word found as a name once is a name everywhere in the same text (unless it is an English word
    that is no known name, "bronch", or a word of the CRF's vocabulary); in mixed-case text, not where
    it is an English word in lower case ("MS S. CARE" but not "skin care")."""
    starts = {s.start: s for s in spans if s.type == "NAME"}
    lex = lexicon()
    names = set()
    for tok in tokens:
        span = starts.get(tok.start)
        if span is None or not tok.alpha or len(tok.low) < 3 or tok.low in VERY_COMMON or tok.low in vocabulary:
            continue
        if tok.low not in lex.common_words or lex.is_name(tok.low) or tok.low in lex.census_last:
            names.add(tok.low)
    covered = {s.start for s in spans}
    return [PhiSpan(t.start, t.end, "NAME", "propagated") for t in tokens
            if t.alpha and t.low in names and t.start not in covered
            and not (mode == "mixed" and t.text.islower() and t.low in lex.common_words)]  # fmt: skip


def merge_spans(spans: Iterable[PhiSpan], text: str) -> list[PhiSpan]:
    """Union overlapping spans (and name parts separated only by spaces); the most specific type wins.
    A name or place span that covers part of a word covers all of it ("zebulon123": a surrogate for
    "123" alone would leave "zebulon" glued to it)."""
    ordered = sorted((_whole_words(s, text) if s.type in _WORDY else s for s in spans), key=lambda s: (s.start, -s.end))
    merged: list[PhiSpan] = []
    for span in ordered:
        if span.end <= span.start:
            continue
        if merged:
            last = merged[-1]
            gap = text[last.end : span.start]
            name_like = {last.type, span.type} <= {"NAME", "CITY", "STATE", "LOCATION"} and "NAME" in {
                last.type,
                span.type,
            }
            joinable = (last.type == span.type == "NAME" and not gap.strip(" ,")) or (name_like and gap == " ")
            joinable = joinable and "\n" not in text[last.end : span.start] and span.start - last.end <= 2
            if span.start < last.end or joinable:
                kind = last.type if _RANK.get(last.type, 99) <= _RANK.get(span.type, 99) else span.type
                if name_like and span.start >= last.end:
                    kind = "NAME"
                if (
                    span.start < last.end
                    and span.type != last.type
                    and (last.end - last.start) < (span.end - span.start)
                ):
                    kind = span.type if _RANK.get(span.type, 99) < 16 or _RANK.get(last.type, 99) >= 16 else kind
                merged[-1] = PhiSpan(last.start, max(last.end, span.end), kind, last.source)
                continue
        merged.append(span)
    return merged


_WORDY = frozenset({"NAME", "LOCATION", "CITY", "STATE", "HOSPITAL", "ORGANIZATION"})


def _whole_words(span: PhiSpan, text: str) -> PhiSpan:
    """``span`` widened to the letters and digits glued to either end of it."""
    start, end = span.start, span.end
    while start > 0 and text[start - 1].isalnum():
        start -= 1
    while end < len(text) and text[end].isalnum():
        end += 1
    return span if (start, end) == (span.start, span.end) else PhiSpan(start, end, span.type, span.source)
