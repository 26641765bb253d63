"""The text the detectors read: look-alike characters folded to what they look like.

A name or number can hide from a detector behind characters a reader does not see or reads as plain
ones: a zero-width space or soft hyphen inside a surname ("Quix\u200bley"), a non-breaking or en dash in
a phone number ("617\u2011555\u20110199"), full-width or other scripts' digits in a date ("\uff13/\uff11\uff14").
:func:`fold` gives the detectors a view of the note with invisible format characters (Unicode
category Cf) left out, every decimal digit as its ASCII digit, dashes as "-" and full-width ASCII as
ASCII; :func:`unfold` maps spans found in the view back onto the note, so the replacement covers the
characters as written. Superscripts and other compatibility forms stay as they are ("x10\u00b3", "m\u00b2").
"""

from __future__ import annotations

import unicodedata

from carelens.privacy.tokens import PhiSpan

_DASHES = frozenset("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63")


class _Table(dict[int, int | None]):
    """``str.translate``'s table, filled on first sight of each character."""

    def __missing__(self, code: int) -> int | None:
        char = chr(code)
        category = unicodedata.category(char)
        value: int | None = code
        if category == "Cf":
            value = None
        elif category == "Nd":
            value = ord("0") + unicodedata.decimal(char)
        elif char in _DASHES:
            value = ord("-")
        elif 0xFF01 <= code <= 0xFF5E:  # full-width ASCII
            value = code - 0xFEE0
        elif code == 0x3000:  # ideographic space
            value = ord(" ")
        self[code] = value
        return value


_TABLE = _Table()


def fold(text: str) -> tuple[str, list[int] | None]:
    """The view of ``text`` the detectors read, and where each of its characters stands in ``text``
    (None: at the same place)."""
    if text.isascii():
        return text, None
    view = text.translate(_TABLE)
    if len(view) == len(text):
        return view, None
    return view, [i for i, char in enumerate(text) if _TABLE[ord(char)] is not None]


def unfold(spans: list[PhiSpan], positions: list[int] | None) -> list[PhiSpan]:
    """``spans`` of the view as spans of the text (a span covers the invisible characters inside it)."""
    if positions is None:
        return spans
    return [PhiSpan(positions[s.start], positions[s.end - 1] + 1, s.type, s.source) for s in spans if s.end > s.start]
