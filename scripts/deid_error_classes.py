"""Classify the errors of a CV cache (``scripts/deid_cv.py train [--everyone]``) by cause: each false-positive
token and each missed gold token is put in one class (token shape and case, which word list holds it, the
span's type and source, whether the span also covers gold: a boundary convention), and the classes are
printed with their token counts. Aggregates only, unless ``--words`` (a fit-half cache only: then the
commonest false-positive words of each class too, words the gold does not mark, never the misses' words).
``--context``: each missed token's context instead, as classes (the word's list, a place or hospital list holding
it, its case, the cue list of the word before and after the gold span, the CRF's PHI probability, the gold span's
length); no word is printed.

    PYTHONPATH=src .venv/bin/python scripts/deid_error_classes.py /tmp/cv.pkl [--threshold 0.03] [--words 8] [--context]
"""

from __future__ import annotations

import argparse
import pickle
import sys
from collections import Counter
from pathlib import Path

from deid_cv import _fit_half, _key, evaluate

from carelens.core.config import shared_data_dir
from carelens.privacy.corpus import WORD, Note, per_type_total
from carelens.privacy.crf import crf_tokens
from carelens.privacy.lexicon import CLINICAL_WORDS, EPONYMS, is_drug, is_english, lexicon, word_lists
from carelens.privacy.names import case_mode
from carelens.privacy.stopwords import STOP_WORDS


def word_class(word: str, vocabulary: frozenset[str]) -> str:
    """Which list a word belongs to, first match wins (the order: most specific first)."""
    lex = lexicon()
    w = word.lower()
    if w.isdigit():
        return f"number{min(len(w), 5)}"
    if any(c.isdigit() for c in w):
        return "alnum"
    if w in EPONYMS:
        return "eponym/device"
    if w in CLINICAL_WORDS:
        return "clinical"
    if is_drug(w):
        return "drug"
    if w in word_lists("deid_not_phi.json")["unit_words"] or w in word_lists("deid_not_phi.json")["place_generic"]:
        return "unit/generic place"
    if w in word_lists("deid_not_phi.json")["date_neighbours"]:
        return "date word"
    if len(w) == 1:
        return "letter"
    if w in vocabulary:
        return "crf vocabulary"
    name = lex.is_name(w) or w in lex.census_first or w in lex.census_last
    place = w in lex.us_places or w in lex.cities or w in lex.states
    if name and (w in lex.common_words or is_english(w)):
        return "name & English"
    if name:
        return "name list only"
    if place:
        return "place list only"
    if w in lex.common_words or is_english(w):
        return "English"
    return "unlisted"


def _case(word: str) -> str:
    return "digit" if word[0].isdigit() else "UP" if word.isupper() else "Title" if word[0].isupper() else "low"


def classify(note: Note, spans: list, vocabulary: frozenset[str], fps: Counter, fns: Counter, words: Counter) -> None:
    mode = case_mode(note.text)
    gold = [(s, e, k) for s, e, k in note.spans]
    for m in WORD.finditer(note.text):
        a, b = m.span()
        kinds = [k for s, e, k in gold if s < b and a < e]
        hits = [s for s in spans if s.start < b and a < s.end]
        wc = word_class(m.group(0), vocabulary)
        if hits and not kinds:
            h = hits[0]
            boundary = any(g[0] < h.end and h.start < g[1] for g in gold)
            key = (h.type, h.source.rstrip("!"), "boundary" if boundary else "alone", wc, f"{_case(m.group(0))}/{mode}")
            fps[key] += 1
            words[(key, m.group(0).lower())] += 1
        counted = [k for k in kinds if k not in ("DateYear", "NotPHI")]
        if counted and not hits:
            near = any(s.start < b + 2 and a - 2 < s.end for s in spans)
            fns[(counted[0], "touching" if near else "none", wc, f"{_case(m.group(0))}/{mode}")] += 1


_CUE_LISTS = ("place_cues", "phrase_cues", "move_verbs", "family", "titles", "departments", "place_tails",
              "place_tail_heads", "employers_after")  # fmt: skip


def cue_class(word: str | None, vocabulary: frozenset[str]) -> str:
    """The cue lists (``data/deid_cues.json``) that hold a neighbour word, else its coarse class."""
    if word is None:
        return "line edge"
    w = word.lower()
    cues = word_lists("deid_cues.json")
    held = [k for k in _CUE_LISTS if w in cues[k]] + (["hospital words"] if w in lexicon().hospital_words else [])
    if held:
        return "+".join(held)
    if w.isdigit():
        return "number"
    for name, words in (("stop", STOP_WORDS), ("clinical", CLINICAL_WORDS), ("crf vocabulary", vocabulary)):
        if w in words:
            return name
    return "English" if is_english(w) else "other"


def miss_context(note: Note, spans: list, vocabulary: frozenset[str], store: dict, out: Counter) -> None:
    """One class per missed gold token: its lists, case, the words around its gold span, the CRF's P(PHI)."""
    text, lex = note.text, lexicon()
    ctoks = crf_tokens(text)
    labels, marginals = store[_key(text, ctoks)]
    o = labels.index("O")
    words = list(WORD.finditer(text))
    for s, e, kind in note.spans:
        if kind in ("DateYear", "NotPHI"):
            continue
        inside = [m for m in words if m.start() < e and s < m.end()]
        before = [m for m in words if m.end() <= s and "\n" not in text[m.end() : s]][-1:]
        after = [m for m in words if m.start() >= e and "\n" not in text[e : m.start()]][:1]
        for m in inside:
            if any(x.start < m.end() and m.start() < x.end for x in spans):
                continue
            w = m.group(0).lower()
            p = max(
                (1 - marginals[i][o] for i, t in enumerate(ctoks) if t.start < m.end() and m.start() < t.end), default=0
            )
            listed = (
                "US place" if w in lex.us_places else "city" if w in lex.cities
                else "hospital word" if w in lex.hospital_words else "-"
            )  # fmt: skip
            out[(kind, word_class(m.group(0), vocabulary), listed, f"{_case(m.group(0))}/{case_mode(text)}",
                 f"before: {cue_class(before[0].group(0) if before else None, vocabulary)}",
                 f"after: {cue_class(after[0].group(0) if after else None, vocabulary)}",
                 "p<0.001" if p < 0.001 else "p<0.01" if p < 0.01 else "p<0.03" if p < 0.03 else "p>=0.03",
                 f"gold span of {len(inside)}")] += 1  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache", type=Path)
    parser.add_argument("--threshold", type=float, default=0.03)
    parser.add_argument("--words", type=int, default=0, help="the commonest false-positive words of each class")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--context", action="store_true", help="the missed tokens' context classes instead")
    args = parser.parse_args()
    data = shared_data_dir()
    result = pickle.loads(args.cache.read_bytes())
    if data is None:
        sys.exit("shared data not found (../shared/data or CARELENS_SHARED_DATA)")
    if result.get("everyone") and args.words:
        sys.exit("--words reads notes: not on a cache of every patient (half of them are the held-out part)")
    notes = {n.id: n for n in _fit_half(data, result.get("everyone", False))}
    vocab = {i: f["vocabulary"] for f in result["folds"].values() for i in f["notes"]}
    fps: Counter = Counter()
    fns: Counter = Counter()
    words: Counter = Counter()
    if args.context:
        store = {k: v for f in result["folds"].values() for k, v in f["store"].items()}
        ctx: Counter = Counter()
        evaluate(notes, result, args.threshold, on_note=lambda n, s: miss_context(n, s, vocab[n.id], store, ctx))
        for key, n in ctx.most_common():
            print(f"  {n:4d} {' | '.join(key)}")
        return
    total = per_type_total(
        evaluate(notes, result, args.threshold, on_note=lambda n, s: classify(n, s, vocab[n.id], fps, fns, words))
    )
    print(f"recall {total.recall:.4f} precision {total.precision:.4f} fp {total.fp} tp {total.tp}")
    for title, counter, labels in (
        ("FALSE POSITIVES", fps, ("type", "source", "alone or beside gold", "word class", "case/note case")),
        ("MISSES", fns, ("gold type", "a span touching it", "word class", "case/note case")),
    ):
        print(f"\n{title}: {sum(counter.values())} tokens")
        for i, label in enumerate(labels):
            agg: Counter = Counter()
            for key, n in counter.items():
                agg[key[i]] += n
            print(f"  by {label}: " + ", ".join(f"{k} {n}" for k, n in agg.most_common()))
        for key, n in counter.most_common(args.top):
            line = f"  {n:4d} {' | '.join(key)}"
            if args.words and counter is fps:
                top = Counter({w: c for (k, w), c in words.items() if k == key}).most_common(args.words)
                line += "  <- " + " ".join(f"{w}:{c}" for w, c in top)
            print(line)


if __name__ == "__main__":
    main()
