"""False-positive classes dropped after the CRF and the cues (sentences written for these tests)."""

from __future__ import annotations

import pytest

from carelens.privacy.detect import detect_phi
from carelens.privacy.filters import not_phi
from carelens.privacy.tokens import PhiSpan


def _span(text: str, value: str, kind: str, source: str = "model") -> PhiSpan:
    start = text.index(value)
    return PhiSpan(start, start + len(value), kind, source)


def _kept(text: str, value: str, kind: str, source: str = "model") -> bool:
    return bool(not_phi(text, [_span(text, value, kind, source)]))


@pytest.mark.parametrize(
    ("text", "value", "kind", "source"),
    [
        ("Plan: transfer to the vicu once a bed opens.", "vicu", "LOCATION", "cue"),
        ("Insulin 3U at 1700, recheck later.", "1700", "LOCATION", "model"),
        ("In the worst case we may consider a line.", "worst", "LOCATION", "model"),
        ("Family hopes to visit Thursday afternoon.", "Thursday", "DATE", "model"),
        ("Gas 7.41, 38, 19, -4 on current settings.", "19", "DATE", "model"),
        ("His SVR ran in the 900-1300 range overnight.", "900-1300", "PHONE", "rule"),
        ("Tidal volumes TV 650-1100 on assist control.", "650-1100", "PHONE", "model"),
    ],
)
def test_false_positive_classes_are_dropped(text: str, value: str, kind: str, source: str) -> None:
    assert not _kept(text, value, kind, source)


@pytest.mark.parametrize(
    ("text", "value", "kind", "source"),
    [
        ("Moved here from Tacoma last spring.", "Tacoma", "LOCATION", "model"),
        ("Lives near the worst junction in town.", "worst", "LOCATION", "model!"),
        ("Hip repair in 14' with no issue.", "14", "DATE", "model"),
        ("Seen on the 5th of the month by ortho.", "5", "DATE", "model"),
        ("Admitted Oct 3 with chest pain.", "3", "DATE", "model"),
        ("Daughter asks to be called at 555-1234 tonight.", "555-1234", "PHONE", "rule"),
        ("Came over from Lake Ardmore rehab.", "Lake Ardmore", "LOCATION", "cue"),
    ],
)
def test_identifiers_beside_them_are_kept(text: str, value: str, kind: str, source: str) -> None:
    assert _kept(text, value, kind, source)


def test_detector_keeps_a_phone_and_drops_a_measurement_range() -> None:
    text = "SVR in the 900-1300 range today. Wife can be reached at 555-1234.\n"
    found = {text[s.start : s.end]: s.type for s in detect_phi(text)}
    assert found.get("555-1234") == "PHONE"
    assert "900-1300" not in found


def test_a_one_word_english_place_beside_another_span_is_kept() -> None:
    text = "LIVES AT 12 OAK ROW, LAKE DUNMORE, VT."
    lake, dunmore = _span(text, "LAKE", "LOCATION"), _span(text, "DUNMORE", "NAME")
    assert lake in not_phi(text, [lake, dunmore])
    assert lake not in not_phi(text, [lake])


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Lives in Oslo, Norway 0150 with her sister.", "0150 with"),
        ("Address: Οδός Μεγάλη 12, ΠΑΦΟΣ.", "ΠΑΦΟΣ"),
        ("Moved here from Belgium last spring.", "Belgium"),
        ("Lives at 4 Elm Row Apt 7.", "Apt"),
        ("Mail to 90210 please.", "90210"),
    ],
)
def test_places_in_other_scripts_countries_zips_and_address_words_are_kept(text: str, value: str) -> None:
    assert _kept(text, value, "LOCATION")


@pytest.mark.parametrize("kind", ["NAME", "LOCATION"])
def test_a_model_span_of_a_symbol_alone_does_not_crash_the_filters(kind: str) -> None:
    """A learned layer may flag glued symbols ("->", "-)"): the stop-word trim keeps such a span as it is."""
    text = "Called Dr. Okafor -> aware of the plan (pain 3/10 :-) better)."
    for symbols in ("->", "-)"):
        out = not_phi(text, [_span(text, symbols, kind)])
        assert all(text[s.start : s.end] == symbols for s in out)
