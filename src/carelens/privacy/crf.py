"""The learned layer: a linear-chain CRF (CRFsuite) over the tokens of a note.

Each token is described by its shape, case, affixes, dictionary memberships (real first names,
surnames, places, common and clinical words), its distributional word class at three levels
(``lexicon.word_classes``; a neighbour's coarsest class), what the rule and dictionary layers say about it,
and the same for its neighbours; the word itself is a feature only when it belongs to
``vocabulary`` (words seen often outside PHI in the training notes), so the model file holds no
corpus name. A token is PHI when its marginal probability of not being ``O`` reaches the
threshold (recall first; an English word of no name or place list needs ``english_threshold`` unless a
token beside it may be PHI). Classes: O, NAME, LOCATION, DATE, PHONE, AGE, ID.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np

from carelens.privacy import chain
from carelens.privacy.lexicon import is_english, is_misspelt, lexicon, word_classes
from carelens.privacy.tokens import PhiSpan, shape

MODEL_FILE = "deid_crf.crfsuite"
META_FILE = "deid_crf.json"
TOKEN = re.compile(r"[^\W\d_]+|\d+|[^\w\s]|_")


@dataclass(slots=True)
class CrfToken:
    start: int
    end: int
    text: str
    low: str


def crf_tokens(text: str) -> list[CrfToken]:
    """Letter runs, digit runs and single symbols (``7/22`` is three tokens)."""
    return [CrfToken(m.start(), m.end(), (word := m.group()), word.lower()) for m in TOKEN.finditer(text)]


def _base(tok: CrfToken, vocabulary: frozenset[str], hint: str | None) -> list[str]:
    """The features of a token on its own (also used, prefixed, for its neighbours)."""
    lex = lexicon()
    w = tok.low
    t = tok.text
    feats = [f"sh={shape(t)}", f"shl={shape(w)}"]
    if w in vocabulary:
        feats.append(f"w={w}")
    if t[0].isalpha():
        feats.append("up" if t.isupper() else ("title" if t[0].isupper() else "low"))
        n = len(w)
        feats.append(f"len={min(n, 8)}")
        if n >= 4:
            feats.append(f"s3={w[-3:]}")
        if w in lex.first_names:
            feats.append("first")
        if w in lex.last_names:
            feats.append("last")
        common = w in lex.common_words or w in lex.clinical_words
        rank = lex.census_last.get(w)
        if rank is not None:
            feats += ("cl", "cl<1k" if rank <= 1000 else ("cl<10k" if rank <= 10000 else "cl>10k"))
            if common:
                feats.append("cl&common")
        rank = lex.census_first.get(w)
        if rank is not None:
            feats += ("cf", "cf<300" if rank <= 300 else ("cf<1500" if rank <= 1500 else "cf>1500"))
            if common:
                feats.append("cf&common")
        if w in lex.cities or w in lex.states or w in lex.place_first_words:
            feats.append("place")
        if w in lex.us_places:
            feats.append("usplace")
        elif w in lex.us_place_words:
            feats.append("placepart")
        if w in lex.common_words:
            feats.append("common")
        if w in lex.clinical_words:
            feats.append("clinical")
        if w in lex.hospital_words:
            feats.append("hosp")
        if w in lex.state_abbrs:
            feats.append("st_abbr")
        feats += [f"c{i}={c}" for i, c in enumerate(word_classes().get(w, ()), 1)]
    elif t.isdecimal():  # not str.isdigit: superscripts ("x10³") are digits that int() refuses
        n = len(t)
        feats.append(f"dig={min(n, 6)}")
        if n <= 2:
            v = int(t)
            feats.append("d<=12" if v <= 12 else ("d<=31" if v <= 31 else "d>31"))
        elif n == 4 and 1900 <= int(t) <= 2100:
            feats.append("year")
    else:
        feats.append(f"p={t}")
    if hint:
        feats.append(f"r={hint}")
    return feats


# a token's cached features: its own, as a neighbour at each of _OFFSETS, word-or-shape and shape
_Features = tuple[tuple[str, ...], tuple[tuple[str, ...], ...], str, str]


def _describe(tok: CrfToken, vocabulary: frozenset[str], hint: str | None) -> _Features:
    """(own features, features as a neighbour at each of ``_OFFSETS``, word-or-shape and shape for bigrams)."""
    base = _base(tok, vocabulary, hint)
    shown = [f for f in base if _shown(f)]
    return tuple(base), tuple(tuple(f"{off}:{f}" for f in shown) for off in _OFFSETS), *_bigram_parts(tok, vocabulary)


def _shown(feature: str) -> bool:
    """Whether a token's feature is also a feature of its neighbours (prefixed with the offset)."""
    return feature[0] in "wrsp" or feature in _CONTEXT_FLAGS or feature.startswith(_CONTEXT_CLASS)


def _bigram_parts(tok: CrfToken, vocabulary: frozenset[str]) -> tuple[str, str]:
    """A token's word (or its shape, for a word outside ``vocabulary``) and its shape, for ``_bigram``."""
    return (tok.low if tok.low in vocabulary else shape(tok.low)), shape(tok.low)


class Featurizer:
    """Feature lists of tokens (``_describe``), cached by (token text, hint): most tokens of a note are
    words seen before. The cache holds tuples of strings, which the garbage collector stops tracking (its
    full passes stay rare)."""

    def __init__(self, vocabulary: frozenset[str], max_cached: int = 200_000):
        self.vocabulary = vocabulary
        self.max_cached = max_cached
        self._cache: dict[tuple[str, str | None], _Features] = {}

    def token(self, tok: CrfToken, hint: str | None) -> _Features:
        key = (tok.text, hint)
        hit = self._cache.get(key)
        if hit is None:
            hit = _describe(tok, self.vocabulary, hint)
            if len(self._cache) >= self.max_cached:
                self._cache.clear()
            self._cache[key] = hit
        return hit


def features(text: str, tokens: list[CrfToken], hints: list[str | None], featurizer: Featurizer) -> list[list[str]]:
    """CRFsuite attribute lists, one per token: its own features and its neighbours' (+-2), then those of
    its place in the text (``_places``)."""
    cached = [featurizer.token(tok, h) for tok, h in zip(tokens, hints, strict=True)]
    places = _places(text, tokens)
    lines = places.lines.tolist()
    credential = places.credential_next.tolist()
    n = len(tokens)
    out = []
    for i in range(n):
        feats = ["bias", *cached[i][0], *(name for name, on in zip(_LINES, lines[i], strict=True) if on)]
        for k, off in enumerate(_OFFSETS):
            j = i + off
            if 0 <= j < n:
                feats += cached[j][1][k]
            else:
                feats.append(f"{off}:edge")
        feats += [_CUE_NAMES[c] for c in places.cues[max(0, i - 3) : i] if c >= 0]
        if credential[i]:
            feats.append("cred_next")
        if i:
            feats.append(_bigram(cached[i - 1][2], cached[i][3]))
        out.append(feats)
    return out


class _Places(NamedTuple):
    lines: np.ndarray  # tokens x _LINES: a line end (or the text's edge) before / after it, no space before / after
    cues: list[int]  # each token's index in _CUE_NAMES (-1: no cue word); a token sees those of the three before it
    credential_next: np.ndarray  # the next token is a credential ("Smith RN")


def _places(text: str, tokens: list[CrfToken]) -> _Places:
    """What a token's place in the text says (tokens cover every character but white space, so a gap
    between two tokens is white space or nothing)."""
    n = len(tokens)
    starts = np.fromiter((t.start for t in tokens), dtype=np.int64, count=n)
    ends = np.fromiter((t.end for t in tokens), dtype=np.int64, count=n)
    newlines = np.fromiter((m.start() for m in _NEWLINE.finditer(text)), dtype=np.int64)
    broken = np.ones(n + 1, dtype=bool)  # broken[i]: a line end in the gap before token i (the edges count)
    broken[1:n] = np.searchsorted(newlines, starts[1:]) > np.searchsorted(newlines, ends[:-1])
    glued = np.zeros(n + 1, dtype=bool)  # glued[i]: nothing between tokens i - 1 and i
    glued[1:n] = starts[1:] == ends[:-1]
    lines = np.stack([broken[:n], glued[:n] & ~broken[:n], broken[1:], glued[1:] & ~broken[1:]], axis=1)
    credential = np.zeros(n, dtype=bool)
    credential[:-1] = [t.low in _CREDENTIALS for t in tokens[1:]]
    return _Places(lines, [_CUE_KINDS.get(t.low, -1) for t in tokens], credential)


def _bigram(left_word: str, own_shape: str) -> str:
    """The bigram feature of a token: its left neighbour's word (or shape) and its own shape."""
    return f"-1w|sh={left_word}|{own_shape}"


class TokenScores:
    """The CRF's state scores of a note's tokens from ``weights``: each distinct (token text, hint) has
    its own attributes' weights and its weights as a neighbour at each of ``_OFFSETS`` summed once and
    kept in a table (cleared when it holds ``max_cached`` rows); a note adds the rows of its tokens and of
    their neighbours, and the weights of what ``_places`` and the bigrams say."""

    def __init__(self, vocabulary: frozenset[str], weights: chain.ChainWeights, max_cached: int = 200_000) -> None:
        self.vocabulary = vocabulary
        self.weights = weights
        self.max_cached = max_cached
        self._rows: dict[tuple[str, str | None], int] = {}
        self._words: list[tuple[str, str]] = []  # each row's word-or-shape and shape
        self._ids: dict[str, tuple[int, ...]] = {}  # a feature name's attribute ids (``_attribute_ids``)
        self._pairs: dict[int, int] = {}  # (left row << 32) + row: the bigram's attribute id (``_bigram_ids``)
        self._table = np.zeros((1024, 1 + len(_OFFSETS), len(weights.labels)))
        self._edges = [weights.summed([f"{off}:edge"]) for off in _OFFSETS]
        self._bias = weights.summed(["bias"])
        self._lines = np.stack([weights.summed([name]) for name in _LINES])
        self._cues = np.stack([weights.summed([name]) for name in _CUE_NAMES])
        self._credential = weights.summed(["cred_next"])

    def scores(self, text: str, tokens: list[CrfToken], hints: list[str | None]) -> np.ndarray:
        """Tokens x labels: the state scores CRFsuite gives ``features(text, tokens, hints, ...)``."""
        if len(self._rows) + len(tokens) > self.max_cached:
            self._rows.clear()
            self._words.clear()
            self._ids.clear()
            self._pairs.clear()
        find = self._rows.get
        rows = [find((tok.text, h), -1) for tok, h in zip(tokens, hints, strict=True)]
        if -1 in rows:
            self._add(tokens, hints, rows)
        parts = self._table[rows]
        out = parts[:, 0] + self._bias
        for k, off in enumerate(_OFFSETS):
            d = abs(off)
            if off < 0:
                out[d:] += parts[:-d, k + 1]
                out[:d] += self._edges[k]
            else:
                out[:-d] += parts[d:, k + 1]
                out[-d:] += self._edges[k]
        places = _places(text, tokens)
        out += places.lines @ self._lines
        cues = np.zeros((len(tokens) + 3, len(_CUE_NAMES)))
        seen = [(i, c) for i, c in enumerate(places.cues) if c >= 0]
        if seen:
            at, kinds = zip(*seen, strict=True)
            cues[np.asarray(at) + 3, kinds] = 1
        out += (cues[:-3] + cues[1:-2] + cues[2:-1]) @ self._cues  # cue words among the three tokens before
        out[places.credential_next] += self._credential
        bigrams = self._bigram_ids(rows)
        np.add.at(
            out,
            [i for i, j in enumerate(bigrams, start=1) if j >= 0],
            self.weights.state[[j for j in bigrams if j >= 0]],
        )
        return out

    def _bigram_ids(self, rows: list[int]) -> list[int]:
        """The model's attribute id of the bigram feature of each token after the first (-1: none), kept
        per pair of rows."""
        known = self._pairs
        pairs = ((np.asarray(rows[:-1], dtype=np.int64) << 32) + np.asarray(rows[1:])).tolist()
        ids = [known.get(pair, -2) for pair in pairs]
        if -2 in ids:
            index, words = self.weights.attributes, self._words
            for i, pair in enumerate(pairs):
                if ids[i] == -2:
                    left, own = pair >> 32, pair & 0xFFFFFFFF
                    ids[i] = known[pair] = index.get(_bigram(words[left][0], words[own][1]), -1)
        return ids

    def _add(self, tokens: list[CrfToken], hints: list[str | None], rows: list[int]) -> None:
        """Rows for the tokens not in the table yet (``rows[i]`` -1), filled in place: each feature of a
        new token adds the weights of the model's attributes it is (``_ids``) to the token's row."""
        first = len(self._rows)
        owners: list[int] = []  # the row of each feature below
        ids: list[tuple[int, ...]] = []
        known = self._ids
        for i, (tok, hint) in enumerate(zip(tokens, hints, strict=True)):
            if rows[i] >= 0:
                continue
            key = (tok.text, hint)
            row = self._rows.get(key)
            if row is None:
                row = self._rows[key] = len(self._rows)
                self._words.append(_bigram_parts(tok, self.vocabulary))
                for name in _base(tok, self.vocabulary, hint):
                    found = known.get(name)
                    ids.append(found if found is not None else self._attribute_ids(name))
                    owners.append(row)
            rows[i] = row
        while len(self._rows) > len(self._table):
            self._table = np.concatenate([self._table, np.zeros_like(self._table)])
        self._table[first : len(self._rows)] = 0.0  # rows left from before a clear
        if ids:
            table = np.asarray(ids)  # features x parts: attribute ids, -1 where the model has none
            kept = table >= 0
            cells = (np.asarray(owners)[:, None] * table.shape[1] + np.arange(table.shape[1]))[kept]
            np.add.at(self._table.reshape(-1, self._table.shape[2]), cells, self.weights.state[table[kept]])

    def _attribute_ids(self, name: str) -> tuple[int, ...]:
        """The model's attribute ids of a token feature as the token's own and as a neighbour's at each of
        ``_OFFSETS`` (-1 where the model has no such attribute), kept in ``_ids``."""
        index = self.weights.attributes
        around = (index.get(f"{off}:{name}", -1) if _shown(name) else -1 for off in _OFFSETS)
        self._ids[name] = found = (index.get(name, -1), *around)
        return found


_OFFSETS = (-2, -1, 1, 2)
_TITLES = (
    "dr",
    "doctor",
    "mr",
    "mrs",
    "ms",
    "miss",
    "md",
    "rn",
    "np",
    "attending",
    "resident",
    "fellow",
    "pcp",
    "nurse",
    "intern",
)
_FAMILY = (
    "wife",
    "husband",
    "son",
    "daughter",
    "mother",
    "father",
    "mom",
    "dad",
    "sister",
    "brother",
    "friend",
    "niece",
    "nephew",
    "aunt",
    "uncle",
    "grandson",
    "granddaughter",
    "cousin",
    "neighbor",
    "hcp",
    "proxy",
    "partner",
    "fiance",
    "boyfriend",
    "girlfriend",
    "spouse",
)
_SPEECH = ("with", "per", "by", "called", "spoke", "talked", "paged", "notified", "informed", "aware", "discussed")
_PLACES = ("at", "to", "from", "in", "osh", "hospital", "transfer", "rehab", "lives", "home")
_CUE_WORDS = (("place", _PLACES), ("speech", _SPEECH), ("family", _FAMILY), ("title", _TITLES))
_CUE_NAMES = tuple(f"cue={kind}" for kind, _ in _CUE_WORDS)
_CUE_KINDS = {w: k for k, (_, words) in enumerate(_CUE_WORDS) for w in words}  # a word of two lists: the last
_LINES = ("bol", "glued_l", "eol", "glued_r")
_NEWLINE = re.compile("\n")
_CREDENTIALS = frozenset({"md", "rn", "np", "pa", "rrt", "phd", "lpn", "msw", "licsw", "licws", "pt", "ot", "slp"})
_CONTEXT_CLASS = "c1="  # neighbours show their coarsest word class (finer ones made the all-patient CV worse)
_CONTEXT_FLAGS = frozenset({"first", "last", "cl", "cf", "place", "usplace", "placepart", "common", "clinical",
                            "hosp", "up", "title", "low", "year", "d<=12", "d<=31", "st_abbr"})  # fmt: skip


def token_hints(tokens: list[CrfToken], spans: list[PhiSpan]) -> list[str | None]:
    """The type of the rule/dictionary span covering each token (None where no span does)."""
    hints: list[str | None] = [None] * len(tokens)
    if not spans:
        return hints
    spans = sorted(spans)
    j = 0
    for i, tok in enumerate(tokens):
        while j < len(spans) and spans[j].end <= tok.start:
            j += 1
        k = j
        while k < len(spans) and spans[k].start < tok.end:
            if spans[k].end > tok.start:
                hints[i] = f"{spans[k].source[:4]}:{spans[k].type}"
                break
            k += 1
    return hints


@dataclass
class CrfModel:
    """A trained CRFsuite tagger, its word vocabulary and its PHI threshold."""

    path: Path
    vocabulary: frozenset[str]
    threshold: float = 0.5
    word_threshold: float = 0.9  # for words of the vocabulary (seen often outside PHI)
    english_threshold: float = 0.5  # for English words of no name or place list
    date_hint_threshold: float = 0.002  # for tokens a date rule covers (the all-patient CV: dates 0.975 -> 0.988)

    @property
    def tagger(self):
        return _tagger(str(self.path))

    @cached_property
    def scorer(self) -> TokenScores:
        """State scores from the model file's weights (names from ``tagger.info()``: about 100 ms, once)."""
        return TokenScores(self.vocabulary, chain.read_weights(self.path, self.tagger.info()))

    def spans(self, text: str, tokens: list[CrfToken], hints: list[str | None]) -> list[PhiSpan]:
        """Runs of tokens whose probability of being PHI reaches ``threshold`` (a long text is
        tagged in pieces of about ``CHUNK`` tokens, cut at line ends, so memory stays bounded)."""
        out: list[PhiSpan] = []
        start = 0
        while start < len(tokens):
            end = _cut(text, tokens, start + CHUNK)
            out += self._tag(text, tokens[start:end], hints[start:end])
            start = end
        return out

    def marginals(self, text: str, tokens: list[CrfToken], hints: list[str | None]) -> np.ndarray:
        """Tokens x labels (``scorer.weights.labels``): the probability of each label of each token."""
        if not tokens:
            return np.zeros((0, len(self.scorer.weights.labels)))
        return chain.marginals(self.scorer.scores(text, tokens, hints), self.scorer.weights.transition)

    def _tag(self, text: str, tokens: list[CrfToken], hints: list[str | None]) -> list[PhiSpan]:
        return self.decide(text, tokens, hints, self.scorer.weights.labels, self.marginals(text, tokens, hints))

    def decide(
        self,
        text: str,
        tokens: list[CrfToken],
        hints: list[str | None],
        labels: Sequence[str],
        probabilities: np.ndarray,
    ) -> list[PhiSpan]:
        """The PHI spans of ``tokens`` given each label's probability (tokens x ``labels``): a token kept
        by ``keeps`` takes its likeliest label other than O."""
        o = labels.index("O")
        others = [j for j in range(len(labels)) if j != o]
        p = (1.0 - probabilities[:, o]).tolist()
        kinds = np.asarray(others)[probabilities[:, others].argmax(axis=1)].tolist() if len(tokens) else []
        out: list[PhiSpan] = []
        for i, tok in enumerate(tokens):
            if self.keeps(tok, p[i], p, i, hints[i]):
                out = _extend(out, text, tok, labels[kinds[i]], p[i])
        return out

    def keeps(
        self, tok: CrfToken, p_phi: float, p: list[float] | None = None, i: int = 0, hint: str | None = None
    ) -> bool:
        """Whether token ``i`` with this probability of PHI is PHI: ``threshold``, ``word_threshold`` for
        words of the vocabulary and ``english_threshold`` for English words that no name or place list
        holds ("golden", "shampoo") unless a token beside it may be PHI ("Union Memorial"; ``p``: the
        probabilities of all the tokens); ``date_hint_threshold`` where a rule calls the token a date
        (``hint``: its ``token_hints`` entry; a ratio the model then calls a date is dropped by ``cues.not_dates``)."""
        if p_phi < self.threshold:
            return p_phi >= self.date_hint_threshold and hint is not None and hint.endswith(":DATE")
        if tok.low in self.vocabulary:
            return p_phi >= self.word_threshold
        if p_phi >= self.english_threshold or not _english(tok.low):
            return True
        return p is not None and _beside(p, i) >= self.threshold


def _beside(p: list[float], i: int) -> float:
    """The highest PHI probability of the two tokens either side of token ``i`` ("Luke's Memorial")."""
    return max(p[max(0, i - 2) : i] + p[i + 1 : i + 3], default=0.0)


def _english(word: str) -> bool:
    """An English word that no name or place list holds (web2 or the BERT vocabulary), or a typo of one."""
    lex = lexicon()
    if is_english(word) or is_misspelt(word):
        return True
    return (
        word in lex.common_words
        and not lex.is_name(word)
        and word not in lex.census_last
        and word not in lex.census_first
        and word not in lex.us_places
        and word not in lex.cities
        and word not in lex.states
    )


CONFIDENT = 0.9  # a model span is "model!" (confident) when each of its tokens is PHI with this probability


def _extend(out: list[PhiSpan], text: str, tok: CrfToken, kind: str, p_phi: float) -> list[PhiSpan]:
    """``out`` with ``tok`` joined to the last span (same type, a space or nothing between) or added."""
    source = "model!" if p_phi >= CONFIDENT else "model"
    last = out[-1] if out else None
    if last is not None and last.type == kind and _joins(text[last.end : tok.start]):
        out[-1] = PhiSpan(last.start, tok.end, kind, source if last.source == "model!" else "model")
    else:
        out.append(PhiSpan(tok.start, tok.end, kind, source))
    return out


CHUNK = 2000


def _joins(gap: str) -> bool:
    """Whether two PHI tokens of one type with ``gap`` between them are one identifier
    (``7/22`` is three tokens, ``July 2nd`` three, ``John Smith`` two)."""
    return gap == "" or gap == " "


def _cut(text: str, tokens: list[CrfToken], at: int) -> int:
    """The index of the first token of the next piece: at or after ``at``, after a line end when one
    comes within ``CHUNK`` // 2 tokens."""
    if at >= len(tokens):
        return len(tokens)
    for j in range(at, min(at + CHUNK // 2, len(tokens))):
        if "\n" in text[tokens[j - 1].end : tokens[j].start]:
            return j
    return at


@lru_cache(maxsize=4)
def _tagger(path: str):
    import pycrfsuite

    tagger = pycrfsuite.Tagger()
    tagger.open(path)
    return tagger


@lru_cache(maxsize=1)
def crf_model() -> CrfModel | None:
    """The shipped model (None when carelens was installed without it)."""
    data = resources.files("carelens.privacy").joinpath("data")
    ref, meta = data.joinpath(MODEL_FILE), data.joinpath(META_FILE)
    if not ref.is_file() or not meta.is_file():
        return None
    with resources.as_file(ref) as path:
        return load_crf(Path(path))


def load_crf(path: Path) -> CrfModel:
    """A model written by ``carelens deid train`` (``path``: its ``.crfsuite`` file, or the folder)."""
    import orjson

    if path.is_dir():
        path = path / MODEL_FILE
    info = orjson.loads(path.with_suffix(".json").read_bytes())
    return CrfModel(path, frozenset(info["vocabulary"]), info["threshold"])
