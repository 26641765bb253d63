"""Names and places the shipped CRF is unlikely to have seen in training, in the style of ICU nursing
notes (sentences written for these tests, not copied from any corpus): what the word classes
(``lexicon.word_classes``) are for. Each also keeps its clinical words."""

from __future__ import annotations

import pytest

from tests.privacy.flagging import masked


@pytest.mark.parametrize(
    ("text", "phi", "kept"),
    [
        ("Niece Evangelina called from home, updated re: plan, will visit in am.", ["Evangelina"], ["plan"]),
        ("SON THADDEUS AT BEDSIDE, QUESTIONS ANSWERED RE: TRACH.", ["THADDEUS"], ["TRACH"]),
        ("Husband Lorcan and sister Philippa in this afternoon, both aware of DNR.", ["Lorcan", "Philippa"], ["DNR"]),
        ("Discussed K 3.2 with Dr. Vukovich, will replete and recheck at 1800.", ["Vukovich"], ["replete"]),
        ("Pt lives with wife in Leominster, was independent with ADLs.", ["Leominster"], ["ADLs"]),
        ("Plan to transfer to Pembroke Hospital for rehab once off pressors.", ["Pembroke"], ["pressors"]),
        # no title or relative before the name
        ("Bed requested at Pembroke, awaiting callback.", ["Pembroke"], ["Bed", "callback"]),
        ("Lorcan spoke with team, agrees with plan, will bring meds from home.", ["Lorcan"], ["meds"]),
        ("Per Vukovich, hold tube feeds after MN for OR in am.", ["Vukovich"], ["tube", "feeds"]),
        ("Pt was at Whitinsville Rehab until last week.", ["Whitinsville"], ["Pt"]),
    ],
)
def test_unseen_names_and_places_are_found(text: str, phi: list[str], kept: list[str]) -> None:
    flagged = masked(text)
    for value in phi:
        start = text.index(value)
        assert "#" in flagged[start : start + len(value)], (value, flagged)
    for value in kept:
        start = text.index(value)
        assert flagged[start : start + len(value)] == value, (value, flagged)


@pytest.mark.parametrize(
    "text",
    [
        "Sats 94% on 4L NC, lasix 40 IV given with good UO, K repleted, Mg 1.8.",
        "Pt on heparin gtt, PTT 65, next check at 2200; coumadin started.",
    ],
)
def test_clinical_shorthand_around_them_is_kept(text: str) -> None:
    assert "#" not in masked(text), masked(text)
