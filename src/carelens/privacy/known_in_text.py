"""The patient's own identifiers searched in a note: name words (typo tolerant), MRNs, phones and
ZIPs with any separators, addresses and cities word by word (the text de-identifier's layer;
:mod:`carelens.privacy.known` collects a patient's identifiers from FHIR resources)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from carelens.privacy.context import PatientContext
from carelens.privacy.tokens import PhiSpan, Tok


def known_spans(text: str, tokens: list[Tok], ctx: PatientContext) -> list[PhiSpan]:
    """The patient's own identifiers, searched explicitly (case, format and typo tolerant)."""
    out: list[PhiSpan] = []
    if not (ctx.names or ctx.identifiers or ctx.phones or ctx.zips or ctx.addresses or ctx.cities):
        return out
    parts, by_initial = _name_index(tuple(ctx.names))
    distinct = {tok.low for tok in tokens if tok.alpha and len(tok.low) >= 2}  # each word checked once
    names = {w for w in distinct if w in parts or (
        len(w) >= 4 and any(abs(len(p) - len(w)) <= 1 and _edit1(w, p) for p in by_initial.get(w[0], ())))}  # fmt: skip
    if names:
        out += [PhiSpan(tok.start, tok.end, "NAME", "known") for tok in tokens if tok.alpha and tok.low in names]
    # identifiers are found in the text with separators removed (compiling a loose pattern per value
    # would cost about a millisecond); the regex is the fallback where lower-casing changes lengths
    squeezed = _squeezed(text) if ctx.identifiers or ctx.phones or ctx.zips else _Squeezed("", None)
    for value, kind in [*((v, "MRN") for v in ctx.identifiers), *((v, "PHONE") for v in ctx.phones),
                        *((v, "ZIP") for v in ctx.zips)]:  # fmt: skip
        needle = _squeeze(value)
        if len(needle) < 4 or needle not in squeezed.text:
            continue
        if squeezed.offsets is not None:
            out += [PhiSpan(a, b, kind, "known") for a, b in _loose_find(text, squeezed, needle)]
        elif (rx := _loose_re(value)) is not None:
            out += [PhiSpan(m.start(), m.end(), kind, "known") for m in rx.finditer(text)]
    low = text.lower()
    for value, kind in [*((v, "ADDRESS") for v in ctx.addresses), *((v, "CITY") for v in ctx.cities)]:
        words = _value_words(value)
        if words and all(w in low for w in words):
            rx = _words_re(words)
            if len(low) == len(text):  # a match starts where its first word does
                out += [PhiSpan(m.start(), m.end(), kind, "known") for m in _matches_at(rx, text, low, words[0])]
            else:
                out += [PhiSpan(m.start(), m.end(), kind, "known") for m in rx.finditer(text)]
    return out


@lru_cache(maxsize=4096)
def _value_words(value: str) -> tuple[str, ...]:
    return tuple(w.lower() for w in re.findall(r"\w+", value))


def _matches_at(rx: re.Pattern[str], text: str, low: str, first: str) -> list[re.Match[str]]:
    """``rx.finditer(text)`` for a pattern whose matches start with ``first`` (``low`` is ``text`` lower-cased)."""
    found: list[re.Match[str]] = []
    end = 0
    i = low.find(first)
    while i >= 0:
        if i >= end and (m := rx.match(text, i)) is not None:
            found.append(m)
            end = m.end()
        i = low.find(first, i + 1)
    return found


_LOOSE_GAP = re.compile(r"[\s\-./()]+")
_ASCII_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


class _Squeezed(NamedTuple):
    """A text without the separators a loose identifier may contain, lower-cased, and the offset in
    the original of each character kept (None where lower-casing changed a length)."""

    text: str
    offsets: np.ndarray | None


# which code points _LOOSE_GAP removes (\s, i.e. str.isspace, and - . / ( )); none is above U+3000
_IS_SEPARATOR = np.zeros(0x3002, dtype=bool)
_IS_SEPARATOR[[ord(c) for c in "-./()\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000"]] = (
    True
)
_IS_SEPARATOR[0x2000:0x200B] = True


def _squeezed(text: str) -> _Squeezed:
    squeezed = _LOOSE_GAP.sub("", text).lower()
    points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    offsets = np.flatnonzero(~_IS_SEPARATOR[np.minimum(points, 0x3001)])
    return _Squeezed(squeezed, offsets if len(offsets) == len(squeezed) else None)


def _loose_find(text: str, squeezed: _Squeezed, needle: str) -> list[tuple[int, int]]:
    """Where ``needle`` occurs in ``text`` with at most two separators between its characters and no
    ASCII letter or digit on either side (what ``_loose_re`` matches)."""
    assert squeezed.offsets is not None
    found = []
    i = squeezed.text.find(needle)
    while i >= 0:
        pos = squeezed.offsets[i : i + len(needle)]
        start, end = int(pos[0]), int(pos[-1]) + 1
        if (
            int(np.diff(pos).max(initial=0)) <= 3
            and (start == 0 or text[start - 1] not in _ASCII_ALNUM)
            and (end == len(text) or text[end] not in _ASCII_ALNUM)
        ):
            found.append((start, end))
            i = squeezed.text.find(needle, i + len(needle))
        else:
            i = squeezed.text.find(needle, i + 1)
    return found


@lru_cache(maxsize=4096)
def _squeeze(value: str) -> str:
    """The characters a loose match of ``value`` has in a row once separators are removed."""
    return "".join(c for c in value if c.isalnum()).lower()


@lru_cache(maxsize=4096)
def _loose_re(value: str) -> re.Pattern[str] | None:
    chars = [c for c in value if c.isalnum()]
    if len(chars) < 4:
        return None
    body = r"[\s\-./()]{0,2}".join(re.escape(c) for c in chars)
    return re.compile(r"(?<![A-Za-z0-9])" + body + r"(?![A-Za-z0-9])", re.IGNORECASE)


@lru_cache(maxsize=4096)
def _name_index(names: tuple[str, ...]) -> tuple[frozenset[str], dict[str, tuple[str, ...]]]:
    """A patient's name words, and those of four letters or more by first letter (for typo matching)."""
    parts: set[str] = set()
    for name in names:
        parts |= {w.lower() for w in re.findall(r"[^\W\d_]+", name) if len(w) >= 2}
    by_initial: dict[str, list[str]] = {}
    for p in parts:
        if len(p) >= 4:
            by_initial.setdefault(p[0], []).append(p)
    return frozenset(parts), {k: tuple(v) for k, v in by_initial.items()}


@lru_cache(maxsize=4096)
def _words_re(words: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + r"\W{1,3}".join(re.escape(w) for w in words) + r"(?!\w)", re.IGNORECASE)


def _edit1(a: str, b: str) -> bool:
    """Edit distance at most one (substitution, insertion, deletion or adjacent swap)."""
    if a == b:
        return True
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i:] == b[i + 1 :]
