"""Look-alike characters: a name, phone or date written with invisible, full-width, other-script or
dash characters is found and replaced as if written plainly; offsets stay those of the note."""

from __future__ import annotations

import unicodedata

import pytest

from carelens.privacy.fold import fold, unfold
from carelens.privacy.keys import KeyService
from carelens.privacy.text import deidentify_text
from carelens.privacy.tokens import PhiSpan

WIDE_DATE = "\uff13/\uff11\uff14/\uff12\uff10\uff11\uff19"  # 3/14/2019 in full-width digits
WIDE_NAME = "\uff31\uff55\uff49\uff58\uff4c\uff45\uff59"  # Quixley in full-width letters
ARABIC_DATE = "\u0663/\u0661\u0664/\u0662\u0660\u0661\u0669"  # 3/14/2019 in Arabic-Indic digits


def _visible(text: str) -> str:
    return "".join(c for c in text if unicodedata.category(c) != "Cf")


@pytest.mark.parametrize(
    "note,secrets",
    [
        ("Seen by Dr. Zebulon Quix\u200bley today.", ["Quixley", "Quix", "ley "]),  # zero-width space
        ("Seen by Dr. Zeb\u00adulon Quix\u00adley today.", ["Quixley", "Zebulon"]),  # soft hyphens
        ("Son Zebulon called 617\u2011555\u20110199 from home.", ["617-555-0199", "555-0199"]),  # no-break hyphens
        ("Wife reachable at 617\u2013555\u20130199.", ["617-555-0199", "555-0199"]),  # en dashes (word processors)
        (f"Admitted {WIDE_DATE} by Dr. {WIDE_NAME}.", ["3/14/2019", "Quixley"]),
        (f"Admitted {ARABIC_DATE} to the ICU.", ["3/14/2019"]),
        ("Seen 3/1\u200b4/2019 by Dr. Quixley.", ["3/14/2019", "Quixley"]),
    ],
)
def test_look_alike_characters_hide_no_identifier(note: str, secrets: list[str], keys: KeyService) -> None:
    res = deidentify_text(note, keys=keys)
    seen = fold(_visible(res.text))[0]
    for secret in secrets:
        assert fold(secret)[0] not in seen, (secret, res.text)
    assert all(note[s.start : s.end] == s.text for s in res.spans)


def test_superscripts_and_plain_text_are_left_as_written(keys: KeyService) -> None:
    note = "WBC 12 x10\u00b3/\u00b5L, BSA 1.9 m\u00b2 \u2014 stable."
    assert deidentify_text(note, keys=keys).text == note


def test_fold_maps_the_view_back_onto_the_note() -> None:
    note = "Dr. Quix\u200bley \uff13/\uff11\uff14 x10\u00b3"
    view, positions = fold(note)
    assert view == "Dr. Quixley 3/14 x10\u00b3" and positions is not None
    [span] = unfold([PhiSpan(4, 11, "NAME", "model")], positions)
    assert note[span.start : span.end] == "Quix\u200bley"
    assert fold("plain ASCII") == ("plain ASCII", None)
    assert fold("\uff21\uff22") == ("AB", None)  # same length: the view's offsets are the note's


def test_a_hidden_name_gets_the_surrogate_of_the_plain_one(keys: KeyService) -> None:
    res = deidentify_text("Dr. Quix\u200bley called. Later Dr. Quixley called again.", keys=keys)
    first, second = (s.replacement for s in res.spans if s.type == "NAME")
    assert first == second and "\u200b" not in res.text
