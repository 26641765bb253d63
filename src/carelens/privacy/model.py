"""The learned layer: a token classifier (multinomial logistic regression) over word,
shape, affix, dictionary and context features.

Trained by carelens itself on generated notes (``carelens deid train``, see ``training``),
never on benchmark data, and shipped as a small JSON file (``data/token_model.json.gz``):
feature -> per-class weights. Prediction is a dictionary sum per token, fast enough for
hundreds of notes per second on one core.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import orjson

from carelens.privacy.lexicon import lexicon

if TYPE_CHECKING:
    from carelens.privacy.detect import PhiSpan, _Tok

MODEL_FILE = "token_model.json.gz"
CLASSES = ("O", "NAME", "LOCATION", "HOSPITAL")


_UPPER_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝ"
_LOWER_CHARS = "abcdefghijklmnopqrstuvwxyzßàáâãäåæçèéêëìíîïðñòóôõöøùúûüýÿ"
_SHAPE = str.maketrans(_UPPER_CHARS + _LOWER_CHARS + "0123456789",
                       "X" * len(_UPPER_CHARS) + "x" * len(_LOWER_CHARS) + "d" * 10)  # fmt: skip
_RUNS = re.compile(r"(.)\1{2,}")


@lru_cache(maxsize=1 << 16)
def shape(word: str) -> str:
    """``Smith`` -> ``Xxx``, ``MRN12345`` -> ``XXdd`` (runs longer than two shortened)."""
    return _RUNS.sub(_two, word.translate(_SHAPE))


def _two(run: re.Match[str]) -> str:
    return run.group(1) * 2


def token_features(tokens: list[_Tok], i: int, text: str, mode: str) -> list[str]:
    """The feature strings of token ``i`` (only alphabetic tokens are classified)."""
    lex = lexicon()
    tok = tokens[i]
    w = tok.low
    prev = tokens[i - 1].low if i > 0 else "<s>"
    prev2 = tokens[i - 2].low if i > 1 else "<s>"
    nxt = tokens[i + 1].low if i + 1 < len(tokens) else "</s>"
    nxt2 = tokens[i + 2].low if i + 2 < len(tokens) else "</s>"
    sh = shape(tok.text) if mode == "mixed" else shape(tok.text.lower())
    feats = [
        "bias", f"w={w}", f"sh={sh}", f"p3={w[:3]}", f"s3={w[-3:]}", f"s2={w[-2:]}", f"pw={prev}", f"nw={nxt}",
        f"pw2={prev2}", f"nw2={nxt2}", f"pw|nw={prev}|{nxt}", f"mode={mode}", f"len={min(len(w), 10)}",
    ]  # fmt: skip
    if w in lex.first_names:
        feats.append("first")
    if w in lex.last_names:
        feats.append("last")
    if w in lex.cities:
        feats.append("city")
    if w in lex.common_words:
        feats.append("common")
    if w in lex.clinical_words:
        feats.append("clinical")
    if i > 0 and "\n" in text[tokens[i - 1].end : tok.start]:
        feats.append("line_start")
    if mode == "mixed" and tok.text[:1].isupper():
        feats.append("cap")
        if w in lex.common_words:
            feats.append("cap_common")
    if prev in lex.first_names or prev in lex.last_names:
        feats.append("prev_name")
    if nxt in lex.first_names or nxt in lex.last_names:
        feats.append("next_name")
    return feats


@dataclass
class TokenModel:
    """Per-class weights of each feature; ``threshold`` on the PHI probability."""

    weights: dict[str, list[float]]
    classes: tuple[str, ...] = CLASSES
    threshold: float = 0.7

    def proba(self, feats: list[list[str]]) -> np.ndarray:
        """Class probabilities, one row per token's feature list (unknown features weigh nothing)."""
        index, matrix = self._matrix
        missing = len(matrix) - 1
        get = index.get
        rows = [get(f, missing) for token in feats for f in token]
        starts = np.cumsum([0] + [len(token) for token in feats[:-1]])
        z = np.add.reduceat(matrix[rows], starts, axis=0)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    @cached_property
    def _matrix(self) -> tuple[dict[str, int], np.ndarray]:
        """Feature -> row of a weight matrix whose last row (for unknown features) is zero."""
        index = {f: i for i, f in enumerate(self.weights)}
        matrix = np.zeros((len(index) + 1, len(self.classes)))
        if index:
            matrix[:-1] = np.array(list(self.weights.values()), dtype=float)
        return index, matrix

    def spans(self, text: str, tokens: list[_Tok], mode: str, known: set[tuple[int, int]]) -> list[PhiSpan]:
        """Spans of the alphabetic tokens the model calls PHI."""
        from carelens.privacy.detect import PhiSpan

        lex = lexicon()
        todo = []
        for i, tok in enumerate(tokens):
            if not tok.alpha or len(tok.low) < 2 or (tok.start, tok.end) in known:
                continue
            if tok.low in lex.clinical_words or (tok.low in lex.common_words and not lex.is_name(tok.low)):
                continue  # the model adds unknown words and names, never ordinary vocabulary
            todo.append(i)
        if not todo:
            return []
        p = self.proba([token_features(tokens, i, text, mode) for i in todo])
        out = []
        for i, row in zip(todo, p, strict=True):
            if 1.0 - row[0] >= self.threshold:
                tok = tokens[i]
                out.append(PhiSpan(tok.start, tok.end, self.classes[int(row[1:].argmax()) + 1], "model"))
        return out

    def save(self, path: Path) -> None:
        payload = {"classes": list(self.classes), "threshold": self.threshold,
                   "weights": {f: [round(x, 4) for x in w] for f, w in self.weights.items()}}  # fmt: skip
        path.write_bytes(gzip.compress(orjson.dumps(payload), mtime=0))

    @classmethod
    def load(cls, path: Path) -> TokenModel:
        payload = orjson.loads(gzip.decompress(path.read_bytes()))
        return cls(weights=payload["weights"], classes=tuple(payload["classes"]), threshold=payload["threshold"])


@lru_cache(maxsize=1)
def token_model() -> TokenModel | None:
    """The shipped model (None when carelens was installed without it)."""
    ref = resources.files("carelens.privacy").joinpath("data", MODEL_FILE)
    if not ref.is_file():
        return None
    with resources.as_file(ref) as path:
        return TokenModel.load(path)
