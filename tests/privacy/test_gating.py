"""The fast paths of the detector find exactly what their regular expressions find (they only save time)."""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest

from carelens.core.config import shared_data_dir
from carelens.demo import generate_cohort
from carelens.privacy import cues, dates, patterns
from carelens.privacy.gating import Gated, word_gate
from carelens.privacy.known_in_text import _IS_SEPARATOR, _LOOSE_GAP, _loose_find, _loose_re, _squeeze, _squeezed
from carelens.privacy.names import case_mode

GATED = {
    name: value
    for module in (patterns, dates, cues)
    for name, value in vars(module).items()
    if isinstance(value, Gated)
}

# Pieces that sit on the edges of the gates: case folds onto ASCII (long s, dotless i, Kelvin
# sign), cue words glued to values, separators before and after digits.
PIECES = [
    "mrn",
    "MRN#",
    "ssn",
    "SSN:",
    "Jan",
    "sept",
    "\u017fep",
    "\u0131",
    "\u212a",
    "\u0130d",
    "id",
    "ID",
    "age ",
    "aged ",
    "at ",
    "95",
    "101",
    "1",
    "9",
    "555",
    "-",
    "(",
    ")",
    "+",
    ".",
    "/",
    ":",
    "#",
    " ",
    "\n",
    ",",
    "a",
    "Z",
    "12345",
    "0",
    "tel",
    "Apt",
    "via",
    "St",
    "Box",
    "PSC",
    "lives at",
    "192.168.",
    "fe80:",
    "2020",
    "'",
    "_",
    "x",
    "Boston, MA 02115",
    "1HGCM82633A004352",
    "O'",
    "4th",
    "of",
    "phone",
    "zip",
    "blue cross",
    "Dr. ",
    "’",
    "to",
    "March",
]


# sentences written for this test, so every pattern matches something without the shared data
WRITTEN = [
    "Son deployed, mail to PSC 1234, Box 5678 or APO AE 09123; wife aware.",
    "Pt's daughter lives abroad (Via Garibaldi 12, Torino) and calls nightly.",
    "Sister visiting from Rue des Fleurs 8 in Lyon, unit 4b; call 617-555-0100 re: d/c plan.",
    "CVA 74', cath 10/03/10/04 and 11/21.93, MI 7/81, CABG 7/22/99, off 3 to 4 March, f/u 7/22.",
]


def fuzz_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(PIECES) for _ in range(rng.randint(1, 40))) for _ in range(n)]


@pytest.fixture(scope="module")
def texts(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    out = tmp_path_factory.mktemp("cohort")
    generate_cohort(out, patients=6, seed=5)
    found = [p.read_text() for p in sorted((out / "notes").glob("*.txt"))]
    data = shared_data_dir()
    if data is not None and (data / "deid" / "presidio_synth_dataset_v2.json").exists():
        rows = json.loads((data / "deid" / "presidio_synth_dataset_v2.json").read_text())
        found += [row["full_text"] for row in rows[:400]]
    return found + WRITTEN + fuzz_texts(3000)


def test_every_shape_pattern_of_the_rules_layer_is_gated() -> None:
    assert {"PHONE", "ID_CUE", "IPV4", "SSN", "AGE_OVER_89", "LONG_ID", "STREET", "DATES"} <= set(GATED)


@pytest.mark.parametrize("name", sorted(GATED))
def test_gated_matches_equal_full_matches(name: str, texts: list[str]) -> None:
    gated = GATED[name]
    found = 0
    for text in texts:
        full = [m.span() for m in gated.pattern.finditer(text)]
        assert [m.span() for m in gated.finditer(text)] == full, f"{name} differs on {text!r}"
        found += len(full)
    assert found > 0, f"{name} never matched: the comparison proves nothing"


def test_a_gate_that_misses_a_start_is_caught() -> None:
    """The comparison above can fail: a gate admitting only '+' loses a phone number."""
    narrow = Gated(patterns.PHONE.pattern, r"[+]")
    text = "call 617-555-0100 today"
    assert [m.group() for m in patterns.PHONE.finditer(text)] == ["617-555-0100"]
    assert list(narrow.finditer(text)) == []


def test_word_gate_admits_word_starts_of_its_words_only() -> None:
    gate = re.compile(word_gate("mrn policy"))
    assert [m.start() for m in gate.finditer("MRN: 1, xmrn, Policy#, pol")] == [0, 14, 23]


def test_separators_are_those_of_the_loose_pattern() -> None:
    """Every character the loose pattern skips, and no other, is a separator of the squeezed text."""
    skipped = {c for c in map(chr, range(0x3001)) if _LOOSE_GAP.fullmatch(c)}
    assert {chr(c) for c in np.flatnonzero(_IS_SEPARATOR)} == skipped
    assert _squeezed("MRN\u2003-0042").offsets is not None
    assert _squeezed("\u0130d 0042").offsets is None  # lower-casing İ adds a character: the regex is used


def test_loose_identifier_finder_equals_its_regex() -> None:
    rng = random.Random(1)
    values = ["MRN-0042-77", "617 555 0100", "02115", "ab12cd", "(555) 010-9999"]
    pieces = [*values, "0042", "77", "555", "-", " ", "  ", "   ", ".", "(", ")", "/", "a", "Z", "9", "MRN", "\n", ":"]
    compared = found = 0
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 25)))
        squeezed = _squeezed(text)
        assert squeezed.offsets is not None
        for value in values:
            rx = _loose_re(value)
            assert rx is not None
            expected = [m.span() for m in rx.finditer(text)]
            assert _loose_find(text, squeezed, _squeeze(value)) == expected, (value, text)
            compared += 1
            found += len(expected)
    assert compared == 15000 and found > 1000


def test_stop_words_are_scikit_learns() -> None:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    from carelens.privacy.stopwords import STOP_WORDS

    assert STOP_WORDS == ENGLISH_STOP_WORDS


def _case_mode_by_regex(text: str) -> str:
    head = text[:4000]
    upper, lower = len(re.findall(r"[A-ZÀ-Þ]", head)), len(re.findall(r"[a-zß-ÿ]", head))
    if upper + lower == 0:
        return "mixed"
    share = upper / (upper + lower)
    return "upper" if share > 0.6 else "lower" if share < 0.01 else "mixed"


def test_case_mode_counts_letters_as_the_regex_does(texts: list[str]) -> None:
    extra = ["ÀÉÎ ×÷ ßÿ", "ΑΒΓ ЖЗИ abc", "UPPER CASE NOTE ÷", "lower case ×", "", "12345"]
    modes = [case_mode(t) for t in texts + extra]
    assert modes == [_case_mode_by_regex(t) for t in texts + extra]
    assert {"upper", "lower", "mixed"} <= set(modes)
