"""Gated patterns: a costly regex tried only where a cheap one says a match could start.

Python's ``re`` scans quickly only for patterns that open with a plain character set; a pattern
that opens with ``\\b``, a look-behind or a case-insensitive word is tried at every position of
the text. A :class:`Gated` pattern scans with a *gate* that opens with a character set (the
characters a match can start with, then look-arounds that any match must satisfy) and runs the
full pattern only at those positions. Its ``finditer`` yields exactly the matches of the full
pattern's, provided every match starts at a position the gate accepts; ``tests/privacy`` checks
that on real and adversarial text for every gated pattern.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# Non-ASCII letters that case-insensitive matching folds onto ASCII ones (dotless i, long s,
# Kelvin sign, dotted capital I): a gate's character set must admit them too.
FOLDS_TO_ASCII = "\u0131\u017f\u212a\u0130"


class Gated:
    """``pattern`` tried only at the starts of ``gate``'s matches (each gate match is one character)."""

    def __init__(self, pattern: re.Pattern[str], gate: str) -> None:
        self.pattern = pattern
        self.gate = re.compile(gate)

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        """The non-overlapping matches of ``pattern`` in ``text``, as ``pattern.finditer`` gives them."""
        end = 0
        match = self.pattern.match
        for g in self.gate.finditer(text):
            start = g.start()
            if start >= end and (m := match(text, start)) is not None:
                end = m.end()
                yield m


def word_gate(words: str, word_start: bool = True) -> str:
    """A gate for a case-insensitive pattern that opens with one of ``words`` (space-separated;
    their first three characters are enough), at a word start unless ``word_start`` is false."""
    by_first: dict[str, set[str]] = {}
    for word in words.split():
        by_first.setdefault(word[0].lower(), set()).add(re.escape(word[1:3].lower()))
    chars = "".join(sorted({c for f in by_first for c in (f, f.upper())})) + FOLDS_TO_ASCII
    alternatives = "|".join(
        f"(?<={re.escape(first)})(?={'|'.join(sorted(rests, key=len, reverse=True))})"
        for first, rests in sorted(by_first.items())
    )
    boundary = r"(?<!\w.)" if word_start else ""
    return f"[{re.escape(chars)}]{boundary}(?i:{alternatives})"
