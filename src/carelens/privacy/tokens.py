"""Spans and tokens shared by the detector's layers (rules, dictionaries, the CRF)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from carelens.privacy import patterns as P


class PhiSpan(NamedTuple):
    """One identifier found in a text: ``text[start:end]``, its type and what found it."""

    start: int
    end: int
    type: str
    source: str = "rule"


@dataclass(slots=True)
class Tok:
    """A word (trailing digits kept), a number or a symbol; ``low`` is the lower-cased letters."""

    start: int
    end: int
    text: str
    low: str  # lower-cased letters only (Synthea's "Smith123" -> "smith")
    alpha: bool


def tokenize(text: str) -> list[Tok]:
    """Words (with trailing digits kept in the span), numbers and single symbols."""
    out = []
    for m in P.TOKEN.finditer(text):
        t = m.group(0)
        alpha = t[0].isalpha()
        low = t.rstrip("0123456789").lower().replace("’", "'") if alpha else t
        out.append(Tok(m.start(), m.end(), t, low, alpha))
    return out


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
